"""A member's helm release as data: revisions of `helm history` and their status."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class ReleaseStatus(str, enum.Enum):
    """The status helm records for a revision (helm's own words)."""

    DEPLOYED = "deployed"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    UNINSTALLING = "uninstalling"
    UNINSTALLED = "uninstalled"
    PENDING_INSTALL = "pending-install"
    PENDING_UPGRADE = "pending-upgrade"
    PENDING_ROLLBACK = "pending-rollback"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, text: str) -> "ReleaseStatus":
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def pending(self) -> bool:
        """Left mid-operation (a cancelled run): must be recovered before the next upgrade."""
        return self.value.startswith("pending-")

    @property
    def good(self) -> bool:
        """Was (or is) the serving revision at some point."""
        return self in (ReleaseStatus.DEPLOYED, ReleaseStatus.SUPERSEDED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Revision:
    """One entry of `helm history`."""

    number: int
    status: ReleaseStatus
    chart: str = ""
    app_version: str = ""
    updated: str = ""
    description: str = ""

    @classmethod
    def from_helm(cls, entry: dict) -> "Revision":
        """From one item of `helm history -o json`."""
        return cls(int(entry["revision"]), ReleaseStatus.parse(str(entry.get("status", ""))),
                   str(entry.get("chart", "")), str(entry.get("app_version", "")),
                   str(entry.get("updated", "")), str(entry.get("description", "")))


def last_deployed(revisions: list[Revision]) -> Revision | None:
    """The revision currently serving (status deployed), if any."""
    deployed = [r for r in revisions if r.status is ReleaseStatus.DEPLOYED]
    return deployed[-1] if deployed else None


def stranded(revisions: list[Revision]) -> Revision | None:
    """The newest revision when a cancelled run left it pending-*, else None."""
    return revisions[-1] if revisions and revisions[-1].status.pending else None


def restore_target(revisions: list[Revision]) -> Revision | None:
    """The revision to go back to when the newest one is bad: the last one that served."""
    earlier = revisions[:-1]
    good = [r for r in earlier if r.status.good]
    return (last_deployed(earlier) or good[-1]) if good else None
