"""A member's helm release on its cluster: history, and recovery of stranded releases."""
from __future__ import annotations

from dataclasses import dataclass

from deployer import output
from deployer.model.federation import Member
from deployer.adapters.helm import Helm

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass(frozen=True)
class Revision:
    """One entry of `helm history`."""

    number: int
    status: str
    chart: str
    app_version: str
    updated: str
    description: str


def history(helm: Helm, member: Member) -> list[Revision]:
    """Every revision of the member's release, oldest first."""
    return [Revision(int(h["revision"]), h.get("status", ""), h.get("chart", ""),
                     h.get("app_version", ""), h.get("updated", ""), h.get("description", ""))
            for h in helm.history(member.release, member.namespace)]


def last_deployed(revisions: list[Revision]) -> Revision | None:
    """The revision currently serving (status deployed), if any."""
    deployed = [r for r in revisions if r.status == "deployed"]
    return deployed[-1] if deployed else None


def recover_stranded(helm: Helm, member: Member, timeout: int) -> str | None:
    """A release left pending-* by a cancelled run is rolled back to its last deployed
    revision (or uninstalled if it never deployed). Returns what was done, or None."""
    revisions = history(helm, member)
    if not revisions or revisions[-1].status not in PENDING:
        return None
    stuck = revisions[-1]
    good = [r for r in revisions[:-1] if r.status in ("deployed", "superseded")]
    if good:
        target = last_deployed(revisions[:-1]) or good[-1]
        output.warn(f"{member.name}: release {member.release} revision {stuck.number} was left "
                    f"{stuck.status} by an interrupted run; rolling back to revision "
                    f"{target.number}")
        helm.rollback(member.release, member.namespace, target.number, timeout)
        return f"recovered {stuck.status} revision {stuck.number} by rolling back to " \
               f"{target.number}"
    output.warn(f"{member.name}: release {member.release} was left {stuck.status} and never "
                "deployed; uninstalling it")
    helm.uninstall(member.release, member.namespace, timeout)
    return f"uninstalled release left {stuck.status} (it never deployed)"
