"""A member's helm release as data: revisions of `helm history` and their status."""
from __future__ import annotations

import enum
import re
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
    """The revision to go back to when the newest one is bad: the last one that served, or,
    for a rollback left pending-rollback, the revision that rollback was going to (the
    revision below it may be the broken one it was undoing)."""
    earlier = revisions[:-1]
    started = rollback_target(revisions)
    if started is not None:
        return started
    good = [r for r in earlier if r.status.good]
    return (last_deployed(earlier) or good[-1]) if good else None


_ROLLBACK_TO = re.compile(r"^Rollback to (?P<number>\d+)$")


def rollback_target(revisions: list[Revision]) -> Revision | None:
    """Where the rollback that left the newest revision pending-rollback was going. helm keeps
    that only in the revision's description ("Rollback to N", set when the rollback starts and
    replaced only when it fails), so None when the description does not name an earlier
    revision that served."""
    if not revisions or revisions[-1].status is not ReleaseStatus.PENDING_ROLLBACK:
        return None
    number = rolled_back_to(revisions[-1])
    return next((r for r in revisions[:-1] if r.number == number and r.status.good), None)


def rolled_back_to(revision: Revision) -> int | None:
    """The revision a rollback restored ("Rollback to N", helm's description of the revision
    a rollback creates), or None when `revision` is not a rollback's."""
    named = _ROLLBACK_TO.match(revision.description.strip())
    return int(named["number"]) if named else None
