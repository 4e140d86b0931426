"""A member's helm release on its cluster: history, and recovery of stranded releases."""
from __future__ import annotations

from deployer.adapters.helm import RENDER_TIMEOUT
from deployer.console import Console
from deployer.model.federation import Member
from deployer.model.release import (Revision, last_deployed, restore_target, rollback_target,
                                    stranded)

__all__ = ["history", "last_deployed", "recover_stranded"]


def history(helm, member: Member, timeout: float = RENDER_TIMEOUT) -> list[Revision]:
    """Every revision of the member's release, oldest first, within `timeout` seconds."""
    return helm.history(member.release, member.namespace, timeout=timeout)


def recover_stranded(helm, member: Member, timeout: int, console: Console) -> str | None:
    """A release left pending-* by a cancelled run is rolled back to its last deployed
    revision (a rollback left pending-rollback is finished: to the revision it was going to),
    or uninstalled if it never deployed. Returns what was done, or None."""
    revisions = history(helm, member)
    stuck = stranded(revisions)
    if stuck is None:
        return None
    target = restore_target(revisions)
    if target is not None:
        started = " (finishing its rollback)" if rollback_target(revisions) else ""
        console.warn(f"{member.name}: release {member.release} revision {stuck.number} was left "
                     f"{stuck.status} by an interrupted run; rolling back to revision "
                     f"{target.number}{started}")
        helm.rollback(member.release, member.namespace, target.number, timeout)
        return f"recovered {stuck.status} revision {stuck.number} by rolling back to " \
               f"{target.number}"
    console.warn(f"{member.name}: release {member.release} was left {stuck.status} and never "
                 "deployed; uninstalling it")
    helm.uninstall(member.release, member.namespace, timeout)
    return f"uninstalled release left {stuck.status} (it never deployed)"
