"""The deploy pipeline of one member, and of several in parallel.

credentials -> lock -> preflight -> render + validate -> diff -> upgrade -> wait -> smoke
-> record. Any failure after the upgrade started rolls back to the revision that was
deployed before, waits for it, and exits 1 with a report of what failed and what was
restored. Nothing changes on a cluster before render + validate have passed.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from deployer.stages import chart as chart_mod
from deployer.adapters import clusters
from deployer.stages import diff as diff_mod
from deployer.model import manifests
from deployer import output
from deployer.model import policy
from deployer.stages import release
from deployer.stages import rollout
from deployer.stages import smoke
from deployer.model import values as values_mod
from deployer.errors import DeployError, DeployerError
from deployer.model.federation import Member
from deployer.adapters.helm import Helm
from deployer.stages.lock import DeployLock, holder_identity
from deployer.stages.records import DeployReport, new_report
from deployer.model.redact import Redactor
from deployer.stages.validate import check_member
from deployer.model.workspace import Workspace
from deployer.model.yamlio import dump


@dataclass(frozen=True)
class Options:
    """What the operator asked for (deploy's command line)."""

    dry_run: bool = False
    rollback: bool = True
    lock_timeout: float = 600
    break_lock: bool = False
    timeout: int = 600            # helm operations and the rollout wait, seconds
    kubeconfig: Path | None = None
    mirror: str | None = None
    smoke: bool = True


def deploy_members(ws: Workspace, members: list[Member], opts: Options,
                   jobs: int | None = None) -> list[DeployReport]:
    """Deploy members in parallel; staging members go first and gate the production ones."""
    helm = Helm(ws.env)
    prepared = chart_mod.prepare(ws, helm, opts.mirror)
    staging = [m for m in members if m.role == "staging"]
    production = [m for m in members if m.role != "staging"]
    reports = _parallel(ws, staging, opts, prepared, jobs)
    if staging and any(r.outcome not in ("deployed", "unchanged", "dry run") for r in reports):
        for member in production:
            skipped = new_report(ws.root, member, ws.env)
            skipped.outcome = "skipped: staging did not deploy"
            reports.append(skipped)
        return reports
    return reports + _parallel(ws, production, opts, prepared, jobs)


def deploy(ws: Workspace, member: Member, opts: Options,
           prepared: chart_mod.PreparedChart) -> DeployReport:
    """Run the whole pipeline for one member; the report says what happened."""
    report = new_report(ws.root, member, ws.env)
    say = _logger(member)
    try:
        _run(ws, member, opts, prepared, report, say)
    except Exception as exc:  # noqa: BLE001 - one member's failure must not stop the others
        message = str(exc) if isinstance(exc, DeployerError) else \
            f"unexpected {type(exc).__name__}: {exc}"
        report.error = message
        if report.outcome in ("not started", "upgrading"):
            report.outcome = "failed"
        output.error(f"{member.name}: {message}")
    return report


def _run(ws: Workspace, member: Member, opts: Options, prepared: chart_mod.PreparedChart,
         report: DeployReport, say) -> None:
    with report.stage("render"):
        mv = values_mod.build(ws, member)
        values_yaml = dump(mv.for_helm(prepared.defaults()))
    with report.stage("validate"):
        problems = policy.check_federation(ws.federation).get(member.name, [])
        checked, rendered = check_member(ws, Helm(ws.env, echo=False), prepared, member,
                                         problems, mv)
        if not checked.ok or rendered is None:
            for line in checked.errors:
                output.error(f"{member.name}: {line}")
            raise DeployError(f"validation failed with {len(checked.errors)} error(s); "
                              "nothing was changed on the cluster")
    with ExitStack() as stack:
        with report.stage("credentials"):
            access = stack.enter_context(clusters.access(ws, member,
                                                         kubeconfig=opts.kubeconfig))
            helm = Helm(access.env, context=access.context)
            api = access.api_client()
            stack.callback(api.close)
        lock = None
        if not opts.dry_run:  # a dry run only reads: no lock, nothing written
            with report.stage("lock"):
                lock = DeployLock(api, member.namespace, holder_identity(ws.env), log=say)
                stack.enter_context(lock.held(opts.lock_timeout, break_lock=opts.break_lock))
        _deploy_locked(ws, member, opts, prepared, report, say, helm, api, lock,
                       rendered.objects, values_yaml, mv)


def _deploy_locked(ws: Workspace, member: Member, opts: Options, prepared,
                   report: DeployReport, say, helm: Helm, api, lock, objects,
                   values_yaml: str, mv) -> None:
    with report.stage("preflight"):
        recovered = release.recover_stranded(helm, member, opts.timeout)
        if recovered:
            report.notes.append(recovered)
            rollout.wait(api, rollout.workloads(
                manifests.parse(helm.manifest(member.release, member.namespace)),
                member.namespace), opts.timeout, log=say, prefix="  ")
        revisions = release.history(helm, member)
        before = release.last_deployed(revisions)
        report.revision_before = before.number if before else None
    with report.stage("diff"):
        changes = _diff(helm, member, before, objects, mv)
        report.diff = changes.summary()
        output.say(f"{member.name}: {changes.text()}")
    if opts.dry_run:
        report.outcome = "dry run"
        return
    latest_is_serving = before is not None and revisions[-1].number == before.number
    if changes.empty and latest_is_serving:
        report.outcome = "unchanged"
        report.revision_after = before.number
        say("no changes; upgrade skipped")
        return
    report.outcome = "upgrading"
    _check_lock(lock)
    try:
        with report.stage("upgrade"):
            helm.upgrade(member.release, str(prepared.path), member.namespace, values_yaml,
                         opts.timeout)
        with report.stage("wait"):
            rollout.wait(api, rollout.workloads(objects, member.namespace), opts.timeout,
                         log=say, prefix="  ")
        if opts.smoke:
            with report.stage("smoke"):
                smoke.gate(ws.federation, member, timeout=min(opts.timeout,
                                                              member.smoke_timeout), log=say)
    except Exception as failure:  # noqa: BLE001 - whatever broke, the cluster is restored
        exc = failure if isinstance(failure, DeployerError) else DeployError(
            f"unexpected {type(failure).__name__}: {failure}")
        try:
            current = release.history(helm, member)
            report.revision_after = current[-1].number if current else None
        except DeployerError:
            pass  # the API may be what failed; the rollback is tried regardless
        if not opts.rollback:
            report.outcome = "failed (left as is: --no-rollback)"
            raise DeployError(f"{report.failed_stage} failed: {exc.message}; the release is "
                              "left as it is for debugging (--no-rollback)") from None
        try:
            _check_lock(lock)
            _roll_back(member, opts, report, say, helm, api, before, exc)
        except DeployerError as rollback_exc:
            report.outcome = "rollback failed"
            raise DeployError(f"{report.failed_stage} failed: {exc.message}; the rollback to "
                              f"revision {before.number if before else '-'} failed too: "
                              f"{rollback_exc.message}",
                              hint="the member needs a person: see ./deploy.py status "
                                   f"{member.name} and helm history") from None
        raise DeployError(
            f"{report.failed_stage} failed: {exc.message}; " + (
                f"restored revision {before.number} (now revision {report.rollback['revision']})"
                if before else "the release never deployed and was uninstalled")) from None
    after = release.last_deployed(release.history(helm, member))
    report.revision_after = after.number if after else None
    report.outcome = "deployed"
    say(f"deployed revision {report.revision_after}")


def _diff(helm: Helm, member: Member, before, objects, mv) -> diff_mod.Diff:
    """Rendered objects against the revision that serves (not a failed one on top), with
    the secrets of that revision masked too (a rotated secret's old value must not show)."""
    if before is None:
        return diff_mod.compute("", objects, member.namespace, mv.redactor)
    live_values = helm.values(member.release, member.namespace, before.number)
    old_secrets = [values_mod.lookup(live_values, path) for path in mv.secret_paths]
    old_secrets = [v for v in old_secrets if v is not values_mod.DELETED and
                   not isinstance(v, (dict, list))]
    output.add_secrets(old_secrets)
    redactor = Redactor(list(mv.redactor_values) + old_secrets)
    live = helm.manifest(member.release, member.namespace, before.number)
    return diff_mod.compute(live, objects, member.namespace, redactor)


def _check_lock(lock) -> None:
    """Another deploy took the lock over (ours expired): change nothing more."""
    if lock is not None and lock.lost:
        raise DeployError("lost the deploy lock to another deploy; stopping without changing "
                          "anything further", hint="see ./deploy.py status for the holder")


def _roll_back(member: Member, opts: Options, report: DeployReport, say, helm: Helm, api,
               before, cause: DeployerError) -> None:
    """Restore the revision that was deployed before this run, and wait for it."""
    output.warn(f"{member.name}: {report.failed_stage} failed ({cause.message}); rolling back")
    start = time.perf_counter()
    failed_stage = report.failed_stage
    with report.stage("rollback"):
        if before is None:
            helm.uninstall(member.release, member.namespace, opts.timeout)
            report.rollback = {"to": None, "revision": None, "action": "uninstalled"}
        else:
            helm.rollback(member.release, member.namespace, before.number, opts.timeout)
            objects = manifests.parse(helm.manifest(member.release, member.namespace))
            rollout.wait(api, rollout.workloads(objects, member.namespace), opts.timeout,
                         log=say, prefix="  ")
            now = release.history(helm, member)
            report.rollback = {"to": before.number, "revision": now[-1].number if now else None,
                               "action": "rolled back"}
    report.rollback["seconds"] = round(time.perf_counter() - start, 3)
    report.outcome = "rolled back"
    report.failed_stage = failed_stage


def _parallel(ws, members, opts, prepared, jobs) -> list[DeployReport]:
    if not members:
        return []
    with ThreadPoolExecutor(max_workers=jobs or len(members)) as pool:
        return list(pool.map(lambda m: deploy(ws, m, opts, prepared), members))


def _logger(member: Member):
    return lambda text: output.info(f"{member.name}: {text}")


def diff_member(ws: Workspace, member: Member, opts: Options) -> diff_mod.Diff:
    """Render + validate, then compare with the deployed release (no lock, no changes)."""
    prepared = chart_mod.prepare(ws, Helm(ws.env), opts.mirror)
    mv = values_mod.build(ws, member)
    checked, rendered = check_member(ws, Helm(ws.env, echo=False), prepared, member, [], mv)
    if rendered is None:
        raise DeployError("cannot render: " + "; ".join(checked.errors))
    for line in checked.errors:
        output.warn(f"{member.name}: {line}")
    with clusters.access(ws, member, kubeconfig=opts.kubeconfig) as access:
        helm = Helm(access.env, context=access.context)
        before = release.last_deployed(release.history(helm, member))
        return _diff(helm, member, before, rendered.objects, mv)


def rollback_member(ws: Workspace, member: Member, opts: Options,
                    to_revision: int | None = None) -> str:
    """Roll the release back (to `to_revision`, default: the one before the deployed one)."""
    with clusters.access(ws, member, kubeconfig=opts.kubeconfig) as access:
        helm = Helm(access.env, context=access.context)
        api = access.api_client()
        say = _logger(member)
        try:
            lock = DeployLock(api, member.namespace, holder_identity(ws.env), log=say)
            with lock.held(opts.lock_timeout, break_lock=opts.break_lock):
                revisions = release.history(helm, member)
                current = release.last_deployed(revisions)
                if to_revision is None:
                    older = [r for r in revisions if current and r.number < current.number
                             and r.status in ("superseded", "deployed")]
                    if not older:
                        raise DeployError(f"no earlier revision of {member.release} to roll "
                                          "back to", hint="see `helm history` or --to-revision")
                    to_revision = older[-1].number
                elif to_revision not in {r.number for r in revisions}:
                    raise DeployError(f"release {member.release} has no revision {to_revision} "
                                      f"(has {', '.join(str(r.number) for r in revisions)})")
                helm.rollback(member.release, member.namespace, to_revision, opts.timeout)
                objects = manifests.parse(helm.manifest(member.release, member.namespace))
                rollout.wait(api, rollout.workloads(objects, member.namespace), opts.timeout,
                             log=say, prefix="  ")
                now = release.history(helm, member)
                return f"rolled back to revision {to_revision} (now revision {now[-1].number})"
        finally:
            api.close()
