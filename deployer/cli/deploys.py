"""deploy, diff, rollback, status: the commands that reach clusters."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from deployer.cli.common import (BREAK_LOCK, KUBECONFIG_OPTION, LOCK_TIMEOUT, MIRROR,
                                 PROXY_FROM_ENV, TIMEOUT_OPTION, env_proxies, handles_errors,
                                 usage, workspace)


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
           mirror: Optional[str] = MIRROR, proxy_from_env: bool = PROXY_FROM_ENV,
           component: Optional[str] = typer.Option(
               None, "--component", metavar="NAME",
               help="Deploy only this prerequisite release of the members (e.g. cert-manager, "
                    "from `prerequisites:` in config/federation.yaml), not the chart."),
           allow_older: bool = typer.Option(
               False, "--allow-older",
               help="Deploy even when this checkout is older than the commit of a "
                    "member's newest verified deploy (going back on purpose)."),
           record: bool = typer.Option(False, "--record",
                                       help="Also record each deploy where the federation's "
                                            "`records:` says (GitHub Deployments, Grafana "
                                            "annotations); never fails the deploy.")):
    """Deploy members (staging first); roll back automatically on failure."""
    from deployer.cli.interrupts import Interrupts
    from deployer.stages import pipeline, records

    ws = workspace()
    out = ws.console
    check_durations(timeout=timeout, lock_timeout=lock_timeout, jobs=jobs)
    chosen = ws.federation.select(member_names or (), all_members=all_members)
    if kubeconfig and len(chosen) > 1:
        raise usage("--kubeconfig reaches one cluster: deploy one member with it at a time")
    if component:
        chosen = _with_component(ws.federation, chosen, component, member_names or ())
    opts = pipeline.Options(dry_run=dry_run, rollback=not no_rollback, lock_timeout=lock_timeout,
                            break_lock=break_lock, timeout=timeout, kubeconfig=kubeconfig,
                            mirror=mirror, smoke=not skip_smoke,
                            smoke_proxies=env_proxies(ws.env) if proxy_from_env else None,
                            component=component, allow_older=allow_older)
    interrupts = Interrupts(out)
    adapters = pipeline.Adapters(cancel=interrupts.cancel, abort=interrupts.abort)
    with interrupts.handled():
        reports = pipeline.deploy_members(ws, chosen, opts, jobs, adapters=adapters)
    if report:
        try:
            records.write(report, reports, out)
            out.info(f"wrote {report}")
        except OSError as exc:
            out.error(f"cannot write the report {report}: {exc.strerror}")
    if record:
        for line in records.publish(ws, reports):
            out.info(f"recorded {line}")
    out.table(["member", "outcome", "revision", "seconds", "failed stage"],
              [[r.member, r.outcome, f"{r.revision_before or '-'} -> {r.revision_after or '-'}",
                f"{r.seconds:.1f}", r.failed_stage or "-"] for r in reports])
    if interrupts.exit_code is not None:
        raise typer.Exit(interrupts.exit_code)
    failed = [r for r in reports if not r.outcome.ok]
    if failed:
        # bad input (values that do not render or validate, secrets that do not decrypt)
        # changed nothing anywhere: exit 2, as for any other bad input
        bad_input = all(r.failed_stage in ("render", "validate") for r in failed)
        raise typer.Exit(2 if bad_input else 1)


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
                                                       help="Default: the newest earlier "
                                                            "revision that served, was not "
                                                            "rolled back from, and is not "
                                                            "what runs now (not the one it is "
                                                            "a \"Rollback to N\" of); the last "
                                                            "good one when a cancelled run left "
                                                            "the release pending-*."),
             lock_timeout: int = LOCK_TIMEOUT, break_lock: bool = BREAK_LOCK,
             timeout: int = TIMEOUT_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION):
    """Roll a member's release back and wait until it has rolled out."""
    from deployer.cli.interrupts import Interrupts
    from deployer.errors import DeployerError
    from deployer.stages import pipeline

    ws = workspace()
    check_durations(timeout=timeout, lock_timeout=lock_timeout)
    opts = pipeline.Options(lock_timeout=lock_timeout, break_lock=break_lock, timeout=timeout,
                            kubeconfig=kubeconfig)
    interrupts = Interrupts(ws.console)
    adapters = pipeline.Adapters(cancel=interrupts.cancel, abort=interrupts.abort)
    with interrupts.handled():
        try:
            done = pipeline.rollback_member(ws, ws.federation.member(member), opts, to_revision,
                                            adapters=adapters)
        except DeployerError as exc:
            if interrupts.exit_code is None:
                raise
            ws.console.error(str(exc))   # 130 for SIGINT, 143 for SIGTERM, as for deploy
            raise typer.Exit(interrupts.exit_code) from None
    ws.console.say(f"{member}: {done}")
    if interrupts.exit_code is not None:
        raise typer.Exit(interrupts.exit_code)


@handles_errors
def status(member_names: List[str] = typer.Argument(None, metavar="MEMBER..."),
           all_members: bool = typer.Option(False, "--all", help="Every member."),
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
           timeout: int = typer.Option(60, "--timeout",
                                       help="Seconds each helm read of a member may take.")):
    """Release, workloads, lock holder and certificate expiry of members, in one table."""
    from concurrent.futures import ThreadPoolExecutor

    from deployer.stages import status as status_mod

    ws = workspace()
    if timeout <= 0:
        raise usage(f"--timeout must be a positive number of seconds, not {timeout}")
    chosen = ws.federation.select(member_names or (), all_members=all_members or not member_names)
    if not chosen:
        raise usage("no member matches")
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        rows = list(pool.map(lambda m: status_mod.member_status(ws, m, kubeconfig, timeout),
                                  chosen))
    ws.console.table(status_mod.HEADERS, [r.row() for r in rows])
    # each of these makes the exit 1: one error line each, after the table
    for row in rows:
        if row.error:
            ws.console.error(f"{row.member}: {row.error}")
        for column in row.unread:
            ws.console.error(f"{row.member}: cannot read {column}")
    if any(r.error or r.unread for r in rows):
        raise typer.Exit(1)


def _with_component(fed, chosen: list, component: str, names) -> list:
    """The chosen members that get prerequisite `component`: a member named explicitly
    that does not get it is bad input; --all and roles keep only those that get it."""
    named = {part.strip() for name in names for part in name.split(",")} & set(fed.members)
    keep = []
    for member in chosen:
        has = [p.name for p in fed.prerequisites_of(member)]
        if component in has:
            keep.append(member)
        elif member.name in named:
            raise usage(f"--component {component}: member {member.name} has no such "
                        "prerequisite (config/federation.yaml `prerequisites:` gives it: "
                        f"{', '.join(has) or 'none'})")
    if not keep:
        raise usage(f"--component {component}: none of the chosen members gets it "
                    f"(prerequisites: {', '.join(fed.prerequisites) or 'none'})")
    return keep


def check_durations(*, timeout: float, lock_timeout: float, jobs: int | None = None) -> None:
    """Bad numbers are bad input: one line, exit 2."""
    if timeout <= 0:
        raise usage(f"--timeout must be a positive number of seconds, not {timeout}")
    if lock_timeout < 0:
        raise usage(f"--lock-timeout must be 0 or more seconds, not {lock_timeout}")
    if jobs is not None and jobs < 1:
        raise usage(f"--jobs must be 1 or more, not {jobs}")
