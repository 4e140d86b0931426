"""Bring a member's prerequisite releases (stages/prerequisites.py renders them) up to date.

A deploy renders them with the member's chart (nothing changes on a cluster unless both
render), then, under the member's deploy lock and before the chart's preflight, brings each
one up to date: recover a release a cancelled run left pending, diff against the deployed
revision, and only when something changed `helm upgrade --install`, wait for its workloads,
and on failure roll back to the revision that served before (or uninstall a release that
never deployed) and stop: the chart's release is not touched.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from deployer.adapters.kube import KubeError
from deployer.errors import DeployError, DeployerError, Interrupted
from deployer.model import manifests
from deployer.model.federation import Member
from deployer.model.manifests import K8sObject
from deployer.model.redact import Redactor
from deployer.model.release import Revision, last_deployed
from deployer.model.report import DeployReport, Outcome, RollbackAction, RollbackResult
from deployer.model.workspace import Workspace
from deployer.stages import diff as diff_mod, release, rollout
from deployer.stages.prerequisites import RenderedPrerequisite


@dataclass
class Step:
    """What one deploy of a member gives a prerequisite's deploy."""

    ws: Workspace
    member: Member
    helm: object
    kube: object
    report: DeployReport
    say: Callable[[str], None]
    timeout: int
    dry_run: bool = False
    rollback: bool = True
    rollback_window: float = 120.0
    poll: float = 0.5
    retry_pause: float = 2.0
    cancel: threading.Event | None = None
    abort: threading.Event | None = None
    check_lock: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Applied:
    """What bringing one prerequisite up to date did."""

    name: str
    changed: bool
    before: int | None
    after: int | None


def apply(step: Step, rendered: RenderedPrerequisite) -> Applied:
    """Bring one prerequisite release up to date (see the module docstring)."""
    p = rendered.prerequisite
    target = replace(step.member, release=p.release, namespace=p.namespace)
    helm, name = step.helm, p.name
    with step.report.stage(f"{name}: preflight"):
        if not step.dry_run:
            recovered = release.recover_stranded(helm, target, step.timeout, step.ws.console)
            if recovered:
                step.report.notes.append(f"{name}: {recovered}")
        revisions = release.history(helm, target)
        before = last_deployed(revisions)
    with step.report.stage(f"{name}: diff"):
        live = helm.manifest(p.release, p.namespace, before.number) if before else ""
        changes = diff_mod.compute(live, list(rendered.objects), p.namespace, Redactor())
        step.ws.console.say(f"{step.member.name}: {name} {p.version} (release {p.release} in "
                            f"{p.namespace}): {changes.text()}")
    number = before.number if before else None
    if step.dry_run:
        return Applied(name, not changes.empty, number, number)
    items = rollout.workloads(list(rendered.objects), p.namespace)
    if changes.empty and before is not None and revisions[-1].number == before.number:
        with step.report.stage(f"{name}: wait"):   # ready before the chart relies on it
            _wait(step, items, step.cancel)
        step.say(f"{name}: no changes; upgrade skipped (revision {before.number})")
        return Applied(name, False, number, number)
    _check_cancel(step.cancel, f"before the {name} upgrade; nothing was changed")
    step.check_lock()
    existed = _existing_crds(step, rendered) if before is None else None
    try:
        with step.report.stage(f"{name}: upgrade"):
            helm.upgrade(p.release, str(rendered.chart), p.namespace,
                         rendered.values.values_yaml, step.timeout)
        with step.report.stage(f"{name}: wait"):
            _wait(step, items, step.cancel)
    except Exception as failure:  # noqa: BLE001 - whatever broke, the cluster is restored
        _after_failure(step, target, before, failure, rendered, existed)
    after = last_deployed(release.history(helm, target))
    step.say(f"{name}: deployed revision {after.number if after else '-'} ({p.chart} "
             f"{p.version})")
    step.report.notes.append(f"{name}: revision {number or '-'} -> "
                             f"{after.number if after else '-'} ({p.chart} {p.version})")
    return Applied(name, True, number, after.number if after else None)


def _after_failure(step: Step, target: Member, before: Revision | None,
                   failure: Exception, rendered: RenderedPrerequisite,
                   existed: "_ExistingCRDs | None" = None) -> None:
    """Restore the prerequisite's previous revision (or remove a release that never deployed,
    and the CRDs it created that nothing uses yet), wait for it, and raise a DeployError
    saying what failed, what was restored and what was left behind."""
    exc = failure if isinstance(failure, DeployerError) else DeployError(
        f"unexpected {type(failure).__name__}: {failure}")
    name = step.report.failed_stage or f"{target.release}: upgrade"
    rel = target.release
    if not step.rollback:
        step.report.outcome = Outcome.LEFT_AS_IS
        raise DeployError(f"{name} failed: {exc.message}; release {rel} is left as it is for "
                          "debugging (--no-rollback); the chart was not deployed") from None
    step.ws.console.warn(f"{step.member.name}: {name} failed ({exc.message}); rolling back")
    start, pause = time.monotonic(), step.retry_pause
    with step.report.stage(f"{rel}: rollback"):
        while True:
            try:    # a lost lock is not retried: someone else deploys now
                step.check_lock()
            except DeployerError as lost:
                step.report.outcome = Outcome.ROLLBACK_FAILED
                raise DeployError(f"{name} failed: {exc.message}; release {rel} was not "
                                  f"rolled back: {lost.message}", hint=lost.hint) from None
            try:
                result = _restore(step, target, before, rendered, existed)
                break
            except Interrupted:
                step.report.outcome = Outcome.INTERRUPTED
                raise
            except DeployerError as rollback_exc:
                left = step.rollback_window - (time.monotonic() - start)
                def gave_up(how: str) -> DeployError:
                    step.report.outcome = Outcome.ROLLBACK_FAILED
                    return DeployError(
                        f"{name} failed: {exc.message}; the rollback of release {rel} {how}: "
                        f"{rollback_exc.message}",
                        hint=f"the member needs a person: see helm history {rel} "
                             f"--namespace {target.namespace}")

                if left <= 0 or (step.abort is not None and step.abort.is_set()):
                    raise gave_up("failed too") from None
                step.say(f"rollback attempt failed ({rollback_exc.message}); retrying in "
                         f"{min(pause, left):.0f}s")
                if step.abort is not None and step.abort.wait(min(pause, left)):
                    raise gave_up("was stopped (interrupted twice)") from None
                if step.abort is None:
                    time.sleep(min(pause, left))
                pause = min(pause * 2, 30)
    result.seconds = round(time.monotonic() - start, 3)
    step.report.rollback = result
    step.report.outcome = Outcome.INTERRUPTED if isinstance(failure, Interrupted) else \
        Outcome.ROLLED_BACK
    step.report.failed_stage = name
    restored = (f"restored release {rel} revision {result.to} (now revision {result.revision})"
                if result.action is RollbackAction.ROLLED_BACK else
                f"release {rel} never deployed: {result.action}" +
                (f" ({result.detail})" if result.detail else ""))
    raise (Interrupted if isinstance(failure, Interrupted) else DeployError)(
        f"{name} failed: {exc.message}; {restored}; the chart was not deployed") from None


def _restore(step: Step, target: Member, before: Revision | None,
             rendered: RenderedPrerequisite,
             existed: "_ExistingCRDs | None" = None) -> RollbackResult:
    helm = step.helm
    revisions = release.history(helm, target)
    if before is None:
        action = RollbackAction.NOTHING
        if revisions:
            helm.uninstall(target.release, target.namespace, step.timeout)
            action = RollbackAction.UNINSTALLED
        return RollbackResult(None, None, action,
                              detail=_remove_unused_crds(step, target, rendered, existed))

    newest = revisions[-1] if revisions else None
    if newest is None or newest.number != before.number:
        helm.rollback(target.release, target.namespace, before.number, step.timeout)
    live = manifests.parse(helm.manifest(target.release, target.namespace))
    _wait(step, rollout.workloads(live, target.namespace), step.abort)
    now = release.history(helm, target)
    return RollbackResult(before.number, now[-1].number if now else None,
                          RollbackAction.ROLLED_BACK)


@dataclass
class _ExistingCRDs:
    """The rendered CRDs that existed before a first install: name -> uid; and those that
    could not be read then (name -> why), which are never deleted."""

    uids: dict[str, str]
    unknown: dict[str, str]


def _crds(rendered: RenderedPrerequisite) -> list[K8sObject]:
    return [obj for obj in rendered.objects if obj.kind == "CustomResourceDefinition"]


def _existing_crds(step: Step, rendered: RenderedPrerequisite) -> _ExistingCRDs:
    """Before a first install: which of its CRDs are there already (an earlier install's,
    kept by `helm.sh/resource-policy: keep`, or another tool's). A cleanup leaves them."""
    existed = _ExistingCRDs({}, {})
    for obj in _crds(rendered):
        try:
            found = step.kube.crd(obj.name)
        except KubeError as exc:
            existed.unknown[obj.name] = f"could not read it before the install: {exc.message}"
            continue
        if found is not None:
            existed.uids[obj.name] = found[0]
    return existed


def _remove_unused_crds(step: Step, target: Member, rendered: RenderedPrerequisite,
                        existed: _ExistingCRDs | None) -> str:
    """After a failed first install: the CRDs this install created survive its uninstall
    (`helm.sh/resource-policy: keep`). Those that did not exist before the install (or were
    replaced since: another uid), carry this release's annotations and no custom resource
    uses yet are deleted, so a retry starts from the cluster as it was; all others are kept,
    and so is one that cannot be checked (an API error is reported, never raised: the
    uninstall itself succeeded). Returns what was left behind, for the error and report."""
    existed = existed or _ExistingCRDs({}, {})
    deleted, there, kept, unchecked = [], [], [], []
    for obj in _crds(rendered):
        if obj.name in existed.unknown:
            unchecked.append(f"CRD {obj.name} kept ({existed.unknown[obj.name]})")
            continue
        spec = obj.body.get("spec") or {}
        versions = [v["name"] for v in spec.get("versions") or []
                    if isinstance(v, dict) and v.get("name") and v.get("served", True)]
        plural = (spec.get("names") or {}).get("plural")
        try:
            found = step.kube.crd(obj.name)
            if found is None:
                continue
            uid, annotations = found
            if existed.uids.get(obj.name) == uid:
                there.append(obj.name)
                continue
            ours = annotations.get("meta.helm.sh/release-name") == target.release and \
                annotations.get("meta.helm.sh/release-namespace") == target.namespace
            if not ours or not plural or any(
                    step.kube.has_custom_objects(spec.get("group"), v, plural)
                    for v in versions):
                kept.append(obj.name)
                continue
            step.kube.delete_crd(obj.name)
        except KubeError as exc:
            unchecked.append(f"CRD {obj.name} kept (could not check: {exc.message})")
            continue
        deleted.append(obj.name)
    parts = []
    if deleted:
        parts.append(f"deleted the {len(deleted)} unused CRD(s) it created")
    if there:
        parts.append(f"CRDs there before this run kept: {', '.join(sorted(there))}")
    if kept:
        parts.append(f"CRDs kept (in use or not its own): {', '.join(sorted(kept))}")
    parts.extend(unchecked)
    parts.append(f"namespace {target.namespace} left in place")
    return "; ".join(parts)


def _wait(step: Step, items, cancel) -> None:
    rollout.wait(step.kube, items, step.timeout, log=step.say, prefix="  ", poll=step.poll,
                 cancel=cancel)


def _check_cancel(cancel: threading.Event | None, when: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Interrupted(f"interrupted {when}")
