"""deploy, diff, rollback, status: the commands that reach clusters."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deployer.cli.common import (BREAK_LOCK, KUBECONFIG_OPTION, LOCK_TIMEOUT, MIRROR,
                                 TIMEOUT_OPTION, handles_errors, usage, workspace)


@handles_errors
def deploy(member_names: List[str] = typer.Argument(None, metavar="MEMBER...",
                                                    help="Members: names, comma lists or a role."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Stop after the diff."),
           no_rollback: bool = typer.Option(False, "--no-rollback",
                                            help="Keep a failed release as it is, to debug it."),
           lock_timeout: int = LOCK_TIMEOUT, break_lock: bool = BREAK_LOCK,
           timeout: int = TIMEOUT_OPTION,
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
           skip_smoke: bool = typer.Option(False, "--skip-smoke",
                                           help="Skip the post-deploy health checks."),
           report: Optional[Path] = typer.Option(None, "--report",
                                                 help="Write a JSON deploy report here."),
           jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                              help="Members deployed at once."),
           mirror: Optional[str] = MIRROR):
    """Deploy members (staging first); roll back automatically on failure."""
    from deployer.stages import pipeline, records

    ws = workspace()
    out = ws.console
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    if kubeconfig and len(chosen) > 1:
        raise usage("--kubeconfig reaches one cluster: deploy one member with it at a time")
    opts = pipeline.Options(dry_run=dry_run, rollback=not no_rollback, lock_timeout=lock_timeout,
                            break_lock=break_lock, timeout=timeout, kubeconfig=kubeconfig,
                            mirror=mirror, smoke=not skip_smoke)
    reports = pipeline.deploy_members(ws, chosen, opts, jobs)
    if report:
        try:
            records.write(report, reports, out)
            out.info(f"wrote {report}")
        except OSError as exc:
            out.error(f"cannot write the report {report}: {exc.strerror}")
    out.table(["member", "outcome", "revision", "seconds", "failed stage"],
              [[r.member, r.outcome, f"{r.revision_before or '-'} -> {r.revision_after or '-'}",
                f"{r.seconds:.1f}", r.failed_stage or "-"] for r in reports])
    if not all(r.outcome.ok for r in reports):
        raise typer.Exit(1)


@handles_errors
def diff(member: str = typer.Argument(..., help="Member name."),
         kubeconfig: Optional[Path] = KUBECONFIG_OPTION, mirror: Optional[str] = MIRROR):
    """Show what a deploy would change: objects added, changed, removed (secrets masked)."""
    from deployer.stages import pipeline

    ws = workspace()
    result = pipeline.diff_member(ws, ws.federation.member(member),
                                  pipeline.Options(kubeconfig=kubeconfig, mirror=mirror))
    ws.console.say(result.text())


@handles_errors
def rollback(member: str = typer.Argument(..., help="Member name."),
             to_revision: Optional[int] = typer.Option(None, "--to-revision",
                                                       help="Default: the revision before the "
                                                            "deployed one."),
             lock_timeout: int = LOCK_TIMEOUT, break_lock: bool = BREAK_LOCK,
             timeout: int = TIMEOUT_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION):
    """Roll a member's release back and wait until it has rolled out."""
    from deployer.stages import pipeline

    ws = workspace()
    opts = pipeline.Options(lock_timeout=lock_timeout, break_lock=break_lock, timeout=timeout,
                            kubeconfig=kubeconfig)
    ws.console.say(f"{member}: " + pipeline.rollback_member(ws, ws.federation.member(member),
                                                            opts, to_revision))


@handles_errors
def status(member_names: List[str] = typer.Argument(None, metavar="MEMBER..."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION):
    """Release, workloads, lock holder and certificate expiry of members, in one table."""
    from concurrent.futures import ThreadPoolExecutor

    from deployer.stages import status as status_mod

    ws = workspace()
    chosen = ws.federation.select(member_names or (), all_members=all_members or not member_names)
    if not chosen:
        raise usage("no member matches")
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        rows = list(pool.map(lambda m: status_mod.member_status(ws, m, kubeconfig), chosen))
    ws.console.table(status_mod.HEADERS, [r.row() for r in rows])
    for row in rows:
        if row.error:
            ws.console.warn(f"{row.member}: {row.error}")
    if any(r.error for r in rows):
        raise typer.Exit(1)
