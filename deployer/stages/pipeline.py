"""The deploy pipeline of one member, and of several in parallel.

render -> validate -> credentials -> lock -> prerequisites -> preflight -> diff -> upgrade
-> wait -> smoke -> record. Prerequisite releases (config/federation.yaml `prerequisites:`,
e.g. cert-manager) are rendered with the chart and brought up to date first, under the same
lock (stages/prerequisites_apply.py); one that fails is rolled back and the chart is not
deployed. Any failure after the upgrade started rolls back to the revision that was deployed
before, waits for it, and exits 1 with a report of what failed and what was restored.
Nothing changes on a cluster before render + validate have passed.

The outside world (helm, the Kubernetes API, the smoke tests, chart preparation) comes in
through `Adapters`, so every branch of the pipeline can be exercised against fakes.
"""
from __future__ import annotations

import datetime
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from deployer.adapters import git as git_mod
from deployer.adapters.kube import KubeError
from deployer.console import Log
from deployer.errors import ConfigError, DeployError, DeployerError, Interrupted
from deployer.model import manifests, policy
from deployer.model import values as values_mod
from deployer.model.federation import Member
from deployer.model.manifests import K8sObject
from deployer.model.redact import Redactor
from deployer.model.release import (ReleaseStatus, Revision, last_deployed, restore_target,
                                    rolled_back_to, stranded)
from deployer.model.report import DeployReport, Outcome, RollbackAction, RollbackResult
from deployer.model.workspace import Workspace
from deployer.model.yamlio import dump
from deployer.stages import diff as diff_mod, release, rollout
from deployer.stages.lock import DeployLock, holder_identity
from deployer.stages.records import new_report

ROLLBACK_WINDOW = 120.0   # seconds the automatic rollback keeps retrying transient failures
VERIFIED_RECORD = "deployer-verified"   # ConfigMap: the last revision seen healthy


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
    rollback_window: float = ROLLBACK_WINDOW
    smoke_proxies: dict | None = None   # smoke tests through these proxies (else directly)
    component: str | None = None  # deploy only this prerequisite release, not the chart
    allow_older: bool = False     # deploy a checkout older than what the member runs


@dataclass
class Connection:
    """One member's cluster, as the pipeline uses it: helm releases and the API."""

    helm: object     # deployer.adapters.helm.Helm or a fake with the same release methods
    kube: object     # deployer.adapters.kube.Kube or a fake


@dataclass(frozen=True)
class Rendered:
    """A member's merged values, the YAML handed to helm, and (once validated) its objects."""

    values: values_mod.MemberValues
    values_yaml: str
    objects: tuple[K8sObject, ...] = ()


@dataclass
class Adapters:
    """The outside world of a deploy. The defaults are the real adapters; tests swap in fakes.

    `cancel` is set by the CLI's signal handler: waits stop at once and the run rolls back;
    `abort` (a second signal) also stops waiting for the rollback and retrying it.
    """

    prepare: Callable[[Workspace, str | None], object] = None          # -> PreparedChart
    render: Callable[[Workspace, Member, object], Rendered] = None
    validate: Callable[[Workspace, Member, object, Rendered], Rendered] = None
    connect: Callable[[Workspace, Member, Path | None], ContextManager[Connection]] = None
    smoke: Callable[..., None] = None   # (ws, member, timeout, log, cancel=Event)
    # (ws, member, [Prerequisite], mirror) -> [prerequisites.RenderedPrerequisite]
    prerequisites: Callable[..., list] = None
    cancel: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    poll: float = 0.5             # rollout polling interval
    retry_pause: float = 2.0      # first pause between rollback attempts (doubles)

    def __post_init__(self) -> None:
        self.prepare = self.prepare or _prepare
        self.render = self.render or _render
        self.validate = self.validate or _validate
        self.connect = self.connect or _connect
        self.smoke = self.smoke or _smoke
        self.prerequisites = self.prerequisites or _prerequisites


def deploy_members(ws: Workspace, members: list[Member], opts: Options,
                   jobs: int | None = None, adapters: Adapters | None = None
                   ) -> list[DeployReport]:
    """Deploy members in parallel; staging members go first and gate the production ones."""
    adapters = adapters or Adapters()
    prepared = adapters.prepare(ws, opts.mirror)
    staging = [m for m in members if m.role == "staging"]
    production = [m for m in members if m.role != "staging"]
    reports = _parallel(ws, staging, opts, prepared, jobs, adapters)
    if staging and not all(r.outcome.ok for r in reports):
        for member in production:
            skipped = new_report(ws.root, member, ws.env)
            skipped.outcome = Outcome.INTERRUPTED if adapters.cancel.is_set() else \
                Outcome.SKIPPED
            reports.append(skipped)
        return reports
    return reports + _parallel(ws, production, opts, prepared, jobs, adapters)


def deploy(ws: Workspace, member: Member, opts: Options, prepared,
           adapters: Adapters | None = None) -> DeployReport:
    """Run the whole pipeline for one member; the report says what happened."""
    run = MemberDeploy(ws, member, opts, prepared, adapters or Adapters())
    try:
        run.run()
    except Exception as exc:  # noqa: BLE001 - one member's failure must not stop the others
        run.fail(exc)
    return run.report


class MemberDeploy:
    """One member's deploy, step by step; `report` records every step and the outcome."""

    def __init__(self, ws: Workspace, member: Member, opts: Options, prepared,
                 adapters: Adapters):
        self.ws, self.member, self.opts = ws, member, opts
        self.prepared, self.adapters = prepared, adapters
        self.report = new_report(ws.root, member, ws.env)
        self.say = ws.console.prefixed(member.name)
        self.rendered: Rendered | None = None
        self.conn: Connection | None = None
        self.lock: DeployLock | None = None
        self.before: Revision | None = None
        self.revisions: list[Revision] = []
        self.prerequisites: list = []   # prerequisites.RenderedPrerequisite, in order
        self.applied: list = []         # prerequisites_apply.Applied: what this run did

    # -- the steps, in order ------------------------------------------------------------
    def run(self) -> None:
        """render -> validate -> connect -> lock -> prerequisites -> preflight -> diff ->
        upgrade and verify."""
        self.render_and_validate()
        self.checkpoint("before reaching the cluster; nothing was changed")
        with ExitStack() as stack:
            self.connect(stack)
            if not self.opts.dry_run:  # a dry run only reads: no lock, nothing written
                self.take_lock(stack)
            self.check_not_older()
            self.checkpoint("before the preflight; nothing was changed")
            applied = self.applied = self.deploy_prerequisites()
            if self.opts.component:
                self.component_outcome(applied)
                return
            self.preflight()
            changes = self.diff()
            if self.opts.dry_run:
                self.report.outcome = Outcome.DRY_RUN
                return
            if changes.empty and self.serving_is_latest():
                healthy = self.serving_is_trusted()
                if healthy is None:
                    upgraded = [a.name for a in applied if a.changed]
                    # a prerequisite release that was upgraded is a deploy all the same
                    self.report.outcome = Outcome.DEPLOYED if upgraded else Outcome.UNCHANGED
                    self.report.revision_after = self.before.number
                    self.say("no changes; upgrade skipped" + (
                        f" (upgraded: {', '.join(upgraded)})" if upgraded else ""))
                    return
                self.verify_serving_revision(healthy)
                return
            self.upgrade_and_verify()

    def render_and_validate(self) -> None:
        """Merged values, then helm template + lint + schemas + policy: nothing on a cluster
        changes unless this passes. The member's prerequisite releases render here too."""
        wanted = [p for p in self.ws.federation.prerequisites_of(self.member)
                  if self.opts.component in (None, p.name)]
        if self.opts.component and not wanted:
            raise ConfigError(f"{self.member.name} has no prerequisite "
                              f"{self.opts.component!r}", file="config/federation.yaml",
                              key="prerequisites")
        with self.report.stage("render"):
            if wanted:
                self.prerequisites = list(self.adapters.prerequisites(
                    self.ws, self.member, wanted, self.opts.mirror))
                self.check_prerequisites()
            if self.opts.component:
                return   # only the prerequisite: the chart is neither rendered nor deployed
            rendered = self.adapters.render(self.ws, self.member, self.prepared)
        with self.report.stage("validate"):
            self.rendered = self.adapters.validate(self.ws, self.member, self.prepared, rendered)

    def check_prerequisites(self) -> None:
        """The prerequisites' objects against the Kubernetes schemas, as `validate` checks
        them: a bad value stops the deploy (exit 2) before anything connects."""
        from deployer.stages import prerequisites

        problems = prerequisites.schema_problems(self.prerequisites, self.member,
                                                 self.ws.cache_dir)
        if len(problems) == 1:
            raise ConfigError(f"{problems[0]}; nothing was changed on the cluster")
        for line in problems:     # each once; the error sums them up
            self.ws.console.error(f"{self.member.name}: {line}")
        if problems:
            raise ConfigError(f"{len(problems)} problems in the prerequisites above; nothing "
                              "was changed on the cluster")

    def deploy_prerequisites(self) -> list:
        """Each prerequisite release brought up to date (upgraded only when its diff is not
        empty), under the member's lock; a failure is rolled back and stops the deploy."""
        from deployer.stages import prerequisites_apply

        step = prerequisites_apply.Step(
            self.ws, self.member, self.conn.helm, self.conn.kube, self.report, self.say,
            self.opts.timeout, dry_run=self.opts.dry_run, rollback=self.opts.rollback,
            rollback_window=self.opts.rollback_window, poll=self.adapters.poll,
            retry_pause=self.adapters.retry_pause, cancel=self.adapters.cancel,
            abort=self.adapters.abort, check_lock=self.check_lock)
        applied = []
        for rendered in self.prerequisites:
            self.checkpoint(f"before the {rendered.prerequisite.name} release")
            applied.append(prerequisites_apply.apply(step, rendered))
        return applied

    def component_outcome(self, applied: list) -> None:
        """The report of a `--component` deploy: that release's revisions."""
        done = applied[0]
        self.report.revision_before, self.report.revision_after = done.before, done.after
        self.report.outcome = Outcome.DRY_RUN if self.opts.dry_run else \
            Outcome.DEPLOYED if done.changed else Outcome.UNCHANGED

    def connect(self, stack: ExitStack) -> None:
        """Credentials for the member's cluster (a private kubeconfig, removed on exit)."""
        with self.report.stage("credentials"):
            self.conn = stack.enter_context(
                self.adapters.connect(self.ws, self.member, self.opts.kubeconfig))

    def take_lock(self, stack: ExitStack) -> None:
        """The member namespace's deploy lock, renewed while the deploy runs."""
        with self.report.stage("lock"):
            self.lock = DeployLock(self.conn.kube, self.member.namespace,
                                   holder_identity(self.ws.env), console=self.ws.console,
                                   log=self.say, cancel=self.adapters.cancel)
            stack.enter_context(self.lock.held(self.opts.lock_timeout,
                                               break_lock=self.opts.break_lock))

    def check_not_older(self) -> None:
        """A checkout older than the commit of the member's newest verified deploy (the
        `deployer-verified` record's; a rollback keeps it) does not deploy over it (a clone
        not pulled, a re-run of an older workflow run): nothing is changed. `--allow-older`
        goes back on purpose; `rollback` returns to an earlier revision. A dry run only
        warns."""
        here = self.report.git_sha
        if not here or self.opts.allow_older:
            return
        record = self._verified_record()  # unreadable: reported where it is needed
        running = str(record.get("git_sha") or "")
        if not running or running == here:
            return
        older = git_mod.is_ancestor(self.ws.root, self.ws.env, here, running)
        what = f"the member's newest verified deploy is of commit {running[:12]}"
        if older is None:
            self.ws.console.warn(f"{self.member.name}: {what}, which this checkout does not "
                                 f"have: cannot tell whether this checkout ({here[:12]}) is "
                                 "older (git fetch to compare)")
            return
        if not older:
            return
        message = f"this checkout ({here[:12]}) is older: {what}, which has it in its history"
        if self.opts.dry_run:
            self.ws.console.warn(f"{self.member.name}: {message}; a deploy would be refused")
            return
        self.report.outcome = Outcome.REFUSED
        raise DeployError(f"{message}; nothing was changed",
                          hint="deploy from an up-to-date checkout (git pull), or pass "
                               "--allow-older to go back to this commit on purpose "
                               f"(./deploy.py rollback {self.member.name} returns to an "
                               "earlier revision)")

    def preflight(self) -> None:
        """The cluster serves every kind the release needs; recover a release a cancelled run
        left pending-*; read the history."""
        helm = self.conn.helm
        with self.report.stage("preflight"):
            self.check_served_kinds()
            if not self.opts.dry_run:
                recovered = release.recover_stranded(helm, self.member, self.opts.timeout,
                                                     self.ws.console)
                if recovered:
                    self.report.notes.append(recovered)
                    self.wait_for(self.live_objects())
                    self.trust_recovered()
            self.revisions = release.history(helm, self.member)
            self.before = last_deployed(self.revisions)
            self.report.revision_before = self.before.number if self.before else None

    def trust_recovered(self) -> None:
        """A stranded release rolled back to the verified revision (and waited for) is that
        revision again: recorded as verified, so it is not smoke-tested as a new one."""
        record = self._verified_record()
        verified = _revision_of(record)
        newest = release.history(self.conn.helm, self.member)[-1:]
        if verified is not None and newest and newest[0].status.good and \
                rolled_back_to(newest[0]) == verified:
            # the verified revision again; the newest verified deploy's commit stays recorded
            self.record_verified(newest[0].number, git_sha=record.get("git_sha", ""))

    def check_served_kinds(self) -> None:
        """Every kind the rendered release holds is served by the cluster (a custom resource
        needs its CRD: a ClusterIssuer needs cert-manager): otherwise stop before helm, so
        nothing is half-installed and there is nothing to roll back."""
        needed: dict[str, set[str]] = {}
        for obj in self.rendered.objects:
            needed.setdefault(obj.api_version, set()).add(obj.kind)
        provided = manifests.crd_kinds(self.rendered.objects) | set(self.prepared.crd_kinds())
        if self.opts.dry_run:  # a real deploy installs them before this check
            for rendered in self.prerequisites:
                provided |= rendered.crd_kinds()
        missing = []
        for group_version, kinds in sorted(needed.items()):
            kinds = {k for k in kinds if (group_version, k) not in provided}
            if not kinds:
                continue
            served = self._discover(group_version)
            missing += [(kind, group_version) for kind in sorted(kinds)
                        if served is None or kind not in served]
        if missing:
            what = ", ".join(f"{kind} ({gv})" for kind, gv in missing)
            groups = {gv.split("/")[0] for _, gv in missing}
            hint = ("install cert-manager (with its CRDs) on the cluster first: declare it "
                    "under `prerequisites:` in config/federation.yaml (then ./deploy.py deploy "
                    f"{self.member.name} --component cert-manager installs it alone)"
                    if groups == {"cert-manager.io"} else
                    "install the operators or CRDs that define them on the cluster first")
            raise DeployError(f"the cluster does not serve {what}, which the release needs; "
                              "nothing was changed", hint=hint)

    def _discover(self, group_version: str):
        """The kinds the cluster serves under a group version; a transient API error (429,
        5xx, no answer) is retried a few times before it fails the deploy."""
        for attempt in range(4):
            try:
                return self.conn.kube.served_kinds(group_version)
            except KubeError as exc:
                if not exc.transient or attempt == 3:
                    raise
                time.sleep(self.adapters.retry_pause * (attempt + 1))
        return None

    def diff(self) -> diff_mod.Diff:
        """Rendered objects against the revision that serves, secrets masked."""
        with self.report.stage("diff"):
            changes = diff_against(self.ws, self.conn.helm, self.member, self.before,
                                   list(self.rendered.objects), self.rendered.values,
                                   chart=self.prepared, values_yaml=self.rendered.values_yaml)
            self.report.diff = changes.summary()
            self.ws.console.say(f"{self.member.name}: {changes.text()}")
        return changes

    def serving_is_latest(self) -> bool:
        """The serving revision is the newest one (no failed revision on top of it)."""
        return self.before is not None and self.revisions[-1].number == self.before.number

    def serving_is_trusted(self) -> bool | None:
        """None when the unchanged serving revision may be left as it is: the record names it
        as verified. Otherwise whether its workloads are rolled out, for the check it needs
        (verify_serving_revision): a revision never verified (a deploy with --no-rollback
        whose smoke tests failed, or one killed before they finished) is smoke-tested before
        it is called unchanged. When the record cannot be read, or there is no smoke test to
        run (--skip-smoke), the workloads' health alone decides."""
        readable, verified = self.read_verified()
        if verified == self.before.number:
            return None
        healthy = self.serving_is_healthy()
        if healthy and (not readable or not self.opts.smoke):
            return None
        if healthy:
            self.ws.console.warn(f"{self.member.name}: no changes, but revision "
                                 f"{self.before.number} never passed its smoke tests (" + (
                                     f"the last verified revision is {verified}"
                                     if verified is not None else "none is recorded as "
                                     "verified") + "): smoke-testing it")
        return healthy

    def verified_revision(self) -> int | None:
        """The last revision this deployer saw roll out and pass its smoke tests (its record
        in the member namespace), or None when there is none or it cannot be read."""
        return self.read_verified()[1]

    def read_verified(self) -> tuple[bool, int | None]:
        """(could the record be read, the revision it names as verified or None)."""
        readable, data = self._read_record()
        return readable, _revision_of(data)

    def _verified_record(self) -> dict:
        """The verified record's data ({} when there is none or it cannot be read)."""
        return self._read_record()[1]

    def _read_record(self) -> tuple[bool, dict]:
        """(could the `deployer-verified` record be read, its data)."""
        try:
            return True, dict(self.conn.kube.read_config_map(self.member.namespace,
                                                             VERIFIED_RECORD) or {})
        except DeployerError:
            return False, {}

    def record_verified(self, revision: int | None, git_sha: str | None = None) -> None:
        """Remember that `revision` rolled out (and passed the smoke tests): a later run with
        no changes then trusts it even when a pod is briefly unready. `git_sha`: the commit of
        the member's newest verified deploy (this run's, unless said: a rollback keeps the
        recorded one), which check_not_older compares a checkout with."""
        if revision is None or self.opts.dry_run:
            return
        try:
            self.conn.kube.write_config_map(
                self.member.namespace, VERIFIED_RECORD,
                {"revision": str(revision),
                 "git_sha": self.report.git_sha if git_sha is None else git_sha,
                 "at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                     timespec="seconds")},
                labels={"app.kubernetes.io/managed-by": "binderhub-federation-deployer"})
        except DeployerError as exc:
            self.ws.console.warn(f"{self.member.name}: could not record revision {revision} as "
                                 f"verified ({exc.message}); the next run checks it again")

    def serving_is_healthy(self) -> bool:
        """Is every workload of the serving revision rolled out? Asked when the revision was
        never verified: an empty diff alone does not mean healthy, since a deploy killed
        during its rollout wait leaves a revision that never became ready. Only clear
        evidence counts: API errors are retried, and one that persists is not a verdict."""
        items = self.workloads(self.rendered.objects)
        problems: list[str] = []
        for attempt in range(3):
            ok, problems, unknown = rollout.health(self.conn.kube, items)
            if ok or not unknown:
                break
            time.sleep(self.adapters.poll * 2 ** attempt)
        if unknown and not problems:
            self.ws.console.warn(f"{self.member.name}: no changes; could not read the workloads "
                                 f"of revision {self.before.number} ({'; '.join(unknown)})")
            return True
        if not ok:
            self.ws.console.warn(f"{self.member.name}: no changes, but revision "
                                 f"{self.before.number} never finished rolling out: "
                                 f"{'; '.join(problems)}")
        return ok

    def verify_serving_revision(self, healthy: bool) -> None:
        """Serve the unchanged revision only once it rolls out and passes the smoke tests;
        otherwise roll back to the last verified revision (or the one that served before).
        A release with no earlier revision is left as it is: never uninstalled. `healthy`:
        it is rolled out already and only its smoke tests are missing (then it is still
        `unchanged` when they pass)."""
        current = self.before
        verified = self.verified_revision()
        earlier = [r for r in self.revisions if r.number < current.number and r.status.good]
        target = next((r for r in earlier if r.number == verified), None) or \
            (earlier[-1] if earlier else None)
        self.report.revision_before = current.number
        self.report.outcome = Outcome.UPGRADING
        self.check_lock()
        try:
            if healthy:
                self.smoke()   # rolled out already (or its workloads cannot be read now)
            else:
                self.wait_and_smoke()
        except Exception as failure:  # noqa: BLE001 - whatever broke, the cluster is restored
            if target is None:
                self.report.outcome = Outcome.FAILED
                raise DeployError(f"revision {current.number} is not healthy "
                                  f"({_message(failure)}) and there is no earlier revision to "
                                  "go back to; it is left as it is",
                                  hint="fix the values and deploy again, or see "
                                       f"./deploy.py status {self.member.name}") from None
            self.before = target
            self.after_failure(failure)
        self.report.revision_after = current.number
        if healthy:
            self.report.outcome = Outcome.UNCHANGED
            self.report.notes.append(f"revision {current.number} had never passed its smoke "
                                     "tests: smoke-tested it")
        else:
            self.report.outcome = Outcome.DEPLOYED
            self.report.notes.append(f"revision {current.number} had not finished rolling "
                                     "out: waited for it" + (" and smoke-tested it"
                                                             if self.opts.smoke else ""))
        self.record_verified(current.number)
        self.say(f"revision {current.number} is healthy now" + (
            "; upgrade skipped" if healthy else ""))

    def upgrade_and_verify(self) -> None:
        """helm upgrade, wait for the rollout, smoke-test; on failure restore the revision
        that served before."""
        self.report.outcome = Outcome.UPGRADING
        self.checkpoint("before the upgrade; nothing was changed")
        self.check_lock()
        try:
            with self.report.stage("upgrade"):
                self.conn.helm.upgrade(self.member.release, str(self.prepared.path),
                                       self.member.namespace, self.rendered.values_yaml,
                                       self.opts.timeout)
            self.wait_and_smoke()
        except Exception as failure:  # noqa: BLE001 - whatever broke, the cluster is restored
            self.after_failure(failure)
        after = last_deployed(release.history(self.conn.helm, self.member))
        self.report.revision_after = after.number if after else None
        self.report.outcome = Outcome.DEPLOYED
        self.record_verified(self.report.revision_after)
        self.say(f"deployed revision {self.report.revision_after}")

    def wait_and_smoke(self) -> None:
        """Wait for the release's workloads, then run the smoke gate."""
        with self.report.stage("wait"):
            self.wait_for(self.rendered.objects, cancel=self.adapters.cancel)
        self.smoke()

    def smoke(self) -> None:
        """The smoke gate (unless --skip-smoke)."""
        if self.opts.smoke:
            with self.report.stage("smoke"):
                self.checkpoint("before the smoke tests")
                self.adapters.smoke(self.ws, self.member,
                                    min(self.opts.timeout, self.member.smoke_timeout), self.say,
                                    cancel=self.adapters.cancel,
                                    proxies=self.opts.smoke_proxies)

    # -- failure ------------------------------------------------------------------------
    def after_failure(self, failure: Exception) -> None:
        """Something broke after the upgrade started: roll back (unless told not to) and
        raise a DeployError saying what failed, what was restored, and which prerequisite
        releases this run upgraded stay as they are."""
        try:
            self._after_failure(failure)
        except DeployerError as exc:
            stays = self.upgraded_prerequisites()
            if stays:
                self.report.notes.append(stays)
                exc.message = f"{exc.message}; {stays}"
                exc.args = (exc.message,)
            raise

    def _after_failure(self, failure: Exception) -> None:
        exc = failure if isinstance(failure, DeployerError) else DeployError(
            f"unexpected {type(failure).__name__}: {failure}")
        interrupted = isinstance(failure, Interrupted)
        current = self._history_or_none()
        self.report.revision_after = current[-1].number if current else None
        failed = self.report.failed_stage or "upgrade"
        if not self.opts.rollback:
            self.report.outcome = Outcome.LEFT_AS_IS
            raise DeployError(f"{failed} failed: {exc.message}; the release is left as it is "
                              "for debugging (--no-rollback)") from None
        if self.before is None and current == []:
            self.report.outcome = Outcome.INTERRUPTED if interrupted else Outcome.FAILED
            self.report.rollback = RollbackResult(None, None, RollbackAction.NOTHING)
            what = rejected_object(exc.message)
            raise DeployError(f"{failed} failed: {what + ': ' if what else ''}{exc.message}; "
                              f"nothing was deployed (the release {self.member.release} was "
                              "never created)") from None
        try:
            self.check_lock()
            self.roll_back(exc)
        except Interrupted:
            self.report.outcome = Outcome.INTERRUPTED
            raise Interrupted(f"{failed} failed: {exc.message}; interrupted again: the rollback "
                              f"to revision {self.before.number if self.before else '-'} was "
                              "started but not waited for",
                              hint=f"check ./deploy.py status {self.member.name}") from None
        except DeployerError as rollback_exc:
            self.report.outcome = Outcome.ROLLBACK_FAILED
            raise DeployError(f"{failed} failed: {exc.message}; the rollback to revision "
                              f"{self.before.number if self.before else '-'} failed too: "
                              f"{rollback_exc.message}",
                              hint="the member needs a person: see ./deploy.py status "
                                   f"{self.member.name} and helm history") from None
        if interrupted:
            self.report.outcome = Outcome.INTERRUPTED
        restored = (f"restored revision {self.before.number} (now revision "
                    f"{self.report.rollback.revision})" if self.before else
                    "the release never deployed and was uninstalled")
        raise (Interrupted if interrupted else DeployError)(
            f"{failed} failed: {exc.message}; {restored}") from None

    def upgraded_prerequisites(self) -> str:
        """What stays of this run's prerequisite upgrades when the chart's upgrade fails: they
        are not rolled back with it (the chart's previous revision runs on them as well)."""
        upgraded = [a for a in self.applied if a.changed]
        if not upgraded:
            return ""
        return ", ".join(f"{a.name} stays at revision {a.after if a.after else '-'}"
                         for a in upgraded) + " (upgraded by this run; not rolled back)"

    def roll_back(self, cause: DeployerError) -> None:
        """Restore the revision that served before this run and wait for it, retrying
        transient failures (API outages, 5xx) with backoff for `rollback_window` seconds."""
        failed_stage = self.report.failed_stage
        self.ws.console.warn(f"{self.member.name}: {failed_stage} failed ({cause.message}); "
                             "rolling back")
        start = time.monotonic()
        pause = self.adapters.retry_pause
        with self.report.stage("rollback"):
            while True:
                self.check_lock()   # a lost lock is not retried: someone else deploys now
                try:
                    self.report.rollback = self._restore()
                    break
                except DeployerError as exc:
                    left = self.opts.rollback_window - (time.monotonic() - start)
                    if left <= 0 or self.adapters.abort.is_set():
                        raise
                    self.say(f"rollback attempt failed ({exc.message}); retrying in "
                             f"{min(pause, left):.0f}s")
                    if self.adapters.abort.wait(min(pause, left)):
                        raise
                    pause = min(pause * 2, 30)
        self.report.rollback.seconds = round(time.monotonic() - start, 3)
        self.report.outcome = Outcome.ROLLED_BACK
        self.report.failed_stage = failed_stage

    def _restore(self) -> RollbackResult:
        """One attempt at restoring `before` (or removing a release that never deployed)."""
        helm, member = self.conn.helm, self.member
        revisions = release.history(helm, member)
        if self.before is None:
            if revisions:
                helm.uninstall(member.release, member.namespace, self.opts.timeout)
            return RollbackResult(None, None, RollbackAction.UNINSTALLED)
        newest = revisions[-1] if revisions else None
        already = newest is not None and newest.status.value == "deployed" and \
            newest.number > self.before.number and \
            helm.manifest(member.release, member.namespace, newest.number) == \
            helm.manifest(member.release, member.namespace, self.before.number)
        if not already:  # a previous attempt's rollback may have gone through already
            helm.rollback(member.release, member.namespace, self.before.number,
                          self.opts.timeout)
        self.wait_for(self.live_objects(), cancel=self.adapters.abort)
        now = release.history(helm, member)
        restored = now[-1].number if now else None
        # the newest verified deploy's commit stays recorded (not this failed run's)
        self.record_verified(restored, git_sha=self._verified_record().get("git_sha", ""))
        return RollbackResult(self.before.number, restored, RollbackAction.ROLLED_BACK)

    def fail(self, exc: Exception) -> None:
        """Record an exception that ended the run (the report keeps the outcome so far)."""
        message = str(exc) if isinstance(exc, DeployerError) else \
            f"unexpected {type(exc).__name__}: {exc}"
        self.report.error = message
        if self.report.outcome in (Outcome.NOT_STARTED, Outcome.UPGRADING):
            self.report.outcome = Outcome.INTERRUPTED if isinstance(exc, Interrupted) \
                else Outcome.FAILED
        self.ws.console.error(f"{self.member.name}: {message}")

    # -- helpers ------------------------------------------------------------------------
    def checkpoint(self, when: str) -> None:
        """An interrupt stops the run here (before the next step starts)."""
        _check_cancel(self.adapters.cancel, when)

    def check_lock(self) -> None:
        """Another deploy took the lock over (ours expired): change nothing more."""
        if self.lock is not None and not self.lock.verify():
            raise DeployError("lost the deploy lock to another deploy; stopping without "
                              "changing anything further",
                              hint="see ./deploy.py status for the holder")

    def workloads(self, objects) -> list[rollout.Workload]:
        return rollout.workloads(list(objects), self.member.namespace)

    def live_objects(self) -> list[K8sObject]:
        """The objects of the release as helm recorded its current revision."""
        return manifests.parse(self.conn.helm.manifest(self.member.release,
                                                       self.member.namespace))

    def wait_for(self, objects, cancel: threading.Event | None = None) -> None:
        rollout.wait(self.conn.kube, self.workloads(objects), self.opts.timeout, log=self.say,
                     prefix="  ", poll=self.adapters.poll, cancel=cancel)

    def _history_or_none(self) -> list[Revision] | None:
        try:
            return release.history(self.conn.helm, self.member)
        except DeployerError:
            return None  # the API may be what failed; the rollback is tried regardless


def diff_against(ws: Workspace, helm, member: Member, before: Revision | None,
                 objects: list[K8sObject], mv: values_mod.MemberValues,
                 chart=None, values_yaml: str | None = None) -> diff_mod.Diff:
    """Rendered objects against the revision that serves (not a failed one on top), with
    the secrets of that revision masked too (a rotated secret's old value must not show).

    With `chart` (the prepared chart) and `values_yaml`, the release is rendered again against
    the cluster (helm's `lookup` answers), so values the charts generate (hub tokens, cookie
    secret) are the live ones, as the upgrade will render them; the capabilities are the
    member's, as for the offline render (`helm template` would use helm's built-in ones). If
    that render fails, the offline objects are compared with those generated values carried
    over from the live release."""
    if before is None:
        return diff_mod.compute("", objects, member.namespace, mv.redactor)
    generated = True
    render_live = getattr(helm, "render_live", None)
    if chart is not None and values_yaml is not None and render_live is not None:
        try:
            from deployer.stages.validate import api_versions
            objects = manifests.parse(render_live(
                member.release, str(chart.path), member.namespace, values_yaml,
                member.kubernetes_version, api_versions(chart, member, ws.cache_dir)))
            generated = False
        except DeployerError as exc:
            why = (exc.message.splitlines() or [""])[0]
            ws.console.warn(f"{member.name}: could not render against the cluster ({why}); "
                            "diffing the offline render, generated values taken from the "
                            "live release")
    live_values = helm.values(member.release, member.namespace, before.number)
    old_secrets = [values_mod.lookup(live_values, path) for path in mv.secret_paths]
    old_secrets = [v for v in old_secrets if v is not values_mod.DELETED and
                   not isinstance(v, (dict, list))]
    ws.console.add_secrets(old_secrets)
    redactor = Redactor(list(mv.redactor_values) + old_secrets)
    live = helm.manifest(member.release, member.namespace, before.number)
    return diff_mod.compute(live, objects, member.namespace, redactor, generated=generated)


def diff_member(ws: Workspace, member: Member, opts: Options,
                adapters: Adapters | None = None) -> diff_mod.Diff:
    """Render + validate, then compare with the deployed release (no lock, no changes)."""
    adapters = adapters or Adapters()
    prepared = adapters.prepare(ws, opts.mirror)
    rendered = adapters.render(ws, member, prepared)
    rendered = _validate(ws, member, prepared, rendered, strict=False)
    with adapters.connect(ws, member, opts.kubeconfig) as conn:
        before = last_deployed(release.history(conn.helm, member))
        return diff_against(ws, conn.helm, member, before, list(rendered.objects),
                            rendered.values, chart=prepared,
                            values_yaml=rendered.values_yaml)


def rollback_member(ws: Workspace, member: Member, opts: Options,
                    to_revision: int | None = None, adapters: Adapters | None = None) -> str:
    """Roll the release back (to `to_revision`, default: the newest earlier revision that
    served, was not rolled back from and is not what runs now, or the last good one when a
    cancelled run left the release pending-*)."""
    adapters = adapters or Adapters()
    say = ws.console.prefixed(member.name)
    with adapters.connect(ws, member, opts.kubeconfig) as conn:
        # nothing to roll back to: stop before the lock, which would create the namespace
        _rollback_target(member, release.history(conn.helm, member), to_revision)
        lock = DeployLock(conn.kube, member.namespace, holder_identity(ws.env),
                          console=ws.console, log=say, cancel=adapters.cancel)
        with lock.held(opts.lock_timeout, break_lock=opts.break_lock):
            revisions = release.history(conn.helm, member)
            to_revision = _rollback_target(member, revisions, to_revision)
            conn.helm.rollback(member.release, member.namespace, to_revision, opts.timeout)
            objects = manifests.parse(conn.helm.manifest(member.release, member.namespace))
            rollout.wait(conn.kube, rollout.workloads(objects, member.namespace), opts.timeout,
                         log=say, prefix="  ", poll=adapters.poll, cancel=adapters.cancel)
            now = release.history(conn.helm, member)
            try:
                # the newest verified deploy's commit is kept: a checkout older than it is
                # still refused (the way forward from a rollback is a new commit)
                kept = (conn.kube.read_config_map(member.namespace, VERIFIED_RECORD)
                        or {}).get("git_sha", "")
                conn.kube.write_config_map(member.namespace, VERIFIED_RECORD,
                                           {"revision": str(now[-1].number),
                                            "rolled_back_to": str(to_revision),
                                            "git_sha": kept})
            except DeployerError as exc:
                ws.console.warn(f"{member.name}: could not record the restored revision as "
                                f"verified ({exc.message})")
            return f"rolled back to revision {to_revision} (now revision {now[-1].number})"


_NO_KIND = re.compile(r'no matches for kind "(?P<kind>[^"]+)" in version "(?P<version>[^"]+)"')
_OBJECT = re.compile(r'\b(?P<kind>[A-Z][A-Za-z]+)(?:\.[a-z0-9.-]+)? "(?P<name>[^"]+)"')


def rejected_object(message: str) -> str:
    """Which object the server refused, from helm's error ("" when it does not say)."""
    missing = _NO_KIND.search(message)
    if missing:
        return (f"the cluster does not serve {missing['kind']} ({missing['version']}); install "
                "the CRDs the release needs first")
    found = _OBJECT.search(message)
    if found:
        return f"the server rejected {found['kind']} {found['name']!r}"
    return ""


def _revision_of(record: dict) -> int | None:
    """The revision a `deployer-verified` record names (None: none, or not a number)."""
    try:
        return int(record.get("revision", ""))
    except (TypeError, ValueError):
        return None


def _rollback_target(member: Member, revisions: list[Revision], wanted: int | None) -> int:
    current = last_deployed(revisions)
    if wanted is None and stranded(revisions) is not None:
        # a cancelled run left the newest revision pending-*: back to the last good revision
        # (for a pending rollback, the one it was going to), as the deploy's preflight does
        target = restore_target(revisions)
        if target is None:
            raise DeployError(f"no earlier revision of {member.release} to roll back to "
                              f"(revision {revisions[-1].number} is {revisions[-1].status} and "
                              "none before it served)",
                              hint="see `helm history` or --to-revision")
        return target.number
    if wanted is None:
        return _last_good_other(member, revisions, current)
    if wanted not in {r.number for r in revisions}:
        raise DeployError(f"release {member.release} has no revision {wanted} "
                          f"(has {', '.join(str(r.number) for r in revisions) or 'none'})")
    return wanted


def _last_good_other(member: Member, revisions: list[Revision], current: Revision | None) -> int:
    """The newest earlier revision that served, was not undone, and is not what runs now: a
    revision the current one is a rollback to ("Rollback to N", followed through rollbacks
    of rollbacks) runs the same release, so rolling back to it would change nothing; a
    revision the next one rolled back from (a deploy whose rollout or smoke tests failed) was
    undone."""
    if current is None and revisions and revisions[-1].status is ReleaseStatus.UNINSTALLED:
        # `helm uninstall --keep-history`: removed on purpose, so which revision to reinstate
        # is the operator's choice (helm rollback reinstates any of them)
        kept = ", ".join(f"{r.number} ({r.status})" for r in revisions[-10:])
        kept = f"{revisions[0].number}-{revisions[-11].number}, {kept}" \
            if len(revisions) > 10 else kept
        raise DeployError(f"release {member.release} was uninstalled (revision "
                          f"{revisions[-1].number}); its history keeps revisions {kept}: use "
                          "--to-revision N to reinstate one")
    if current is None:
        raise DeployError(f"no earlier revision of {member.release} to roll back to",
                          hint="see `helm history` or --to-revision")
    numbered = {r.number: r for r in revisions}
    same = _same_release(current, numbered)
    # a revision the next one rolled back from was undone: its rollout or smoke tests failed
    # (helm still calls it superseded), or an operator took it back on purpose
    undone = {r.number for r, after in zip(revisions, revisions[1:])
              if rolled_back_to(after) not in (None, r.number)}
    older = [r for r in revisions if r.number < current.number and r.status.good
             and r.number not in undone and not (_same_release(r, numbered) & same)]
    if older:
        return older[-1].number
    restored = rolled_back_to(current)
    if restored is not None:
        raise DeployError(f"cannot roll back {member.release}: revision {current.number} is "
                          f"already revision {restored} again ({current.description.strip()}); "
                          "no earlier good revision to roll back to",
                          hint="see `helm history` or --to-revision")
    raise DeployError(f"no earlier revision of {member.release} to roll back to",
                      hint="see `helm history` or --to-revision")


def _same_release(revision: Revision, numbered: dict[int, Revision]) -> set[int]:
    """`revision` and the revisions it restores, following "Rollback to N" down the history."""
    seen = {revision.number}
    number = rolled_back_to(revision)
    while number is not None and number not in seen and number in numbered:
        seen.add(number)
        number = rolled_back_to(numbered[number])
    return seen


def _parallel(ws, members, opts, prepared, jobs, adapters) -> list[DeployReport]:
    if not members:
        return []
    with ThreadPoolExecutor(max_workers=jobs or len(members)) as pool:
        return list(pool.map(lambda m: deploy(ws, m, opts, prepared, adapters), members))


def ca_bundle(env) -> str | None:
    """The CA bundle the operator's environment names for HTTPS, if any."""
    return env.get("REQUESTS_CA_BUNDLE") or env.get("SSL_CERT_FILE") or None


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, DeployerError) else f"{type(exc).__name__}: {exc}"


def _check_cancel(cancel: threading.Event, when: str) -> None:
    if cancel.is_set():
        raise Interrupted(f"interrupted {when}")


# -- the real adapters ----------------------------------------------------------------------
def _prepare(ws: Workspace, mirror: str | None):
    from deployer.adapters.helm import Helm
    from deployer.stages import chart

    return chart.prepare(ws, Helm(ws.env, console=ws.console), mirror)


def _render(ws: Workspace, member: Member, prepared) -> Rendered:
    from deployer.stages.render import member_values

    mv = member_values(ws, member)
    return Rendered(mv, dump(mv.for_helm(prepared.defaults())))


def _validate(ws: Workspace, member: Member, prepared, rendered: Rendered, *,
              strict: bool = True) -> Rendered:
    """helm template + lint + Kubernetes schemas + policy. strict: any error stops the deploy
    (else only a failed render does, and the rest are warnings, as for `diff`)."""
    from deployer.adapters.helm import Helm
    from deployer.stages.validate import check_member

    problems = policy.check_federation(ws.federation).get(member.name, []) if strict else []
    checked, objects = check_member(ws, Helm(ws.env, console=ws.console, echo=False), prepared,
                                    member, problems, rendered.values)
    for line in checked.warnings:          # as `validate` shows them; they stop nothing
        ws.console.warn(f"{member.name}: {line}")
    if objects is None:
        if not strict:
            raise DeployError("cannot render: " + "; ".join(checked.errors))
    elif not strict:
        for line in checked.errors:
            ws.console.warn(f"{member.name}: {line}")
        return Rendered(rendered.values, rendered.values_yaml, tuple(objects.objects))
    if not checked.ok or objects is None:
        for line in checked.errors:
            ws.console.error(f"{member.name}: {line}")
        raise DeployError(f"validation failed with {len(checked.errors)} error(s); "
                          "nothing was changed on the cluster")
    return Rendered(rendered.values, rendered.values_yaml, tuple(objects.objects))


@contextmanager
def _connect(ws: Workspace, member: Member, kubeconfig: Path | None) -> Iterator[Connection]:
    from deployer.adapters import clusters
    from deployer.adapters.helm import Helm

    with clusters.access(ws, member, kubeconfig=kubeconfig) as access:
        helm = Helm(access.env, console=ws.console, context=access.context)
        with access.kube() as kube:
            yield Connection(helm, kube)


def _prerequisites(ws: Workspace, member: Member, wanted: list, mirror: str | None) -> list:
    from deployer.adapters.helm import Helm
    from deployer.stages import prerequisites

    return prerequisites.render(ws, Helm(ws.env, console=ws.console), member, wanted, mirror)


def _smoke(ws: Workspace, member: Member, timeout: float, log: Log,
           cancel: threading.Event | None = None, proxies: dict | None = None) -> None:
    from deployer.stages import smoke

    smoke.gate(ws.federation, member, timeout=timeout, log=log, cancel=cancel,
               proxies=proxies, ca_bundle=ca_bundle(ws.env))
