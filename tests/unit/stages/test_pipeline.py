"""Every branch of the deploy pipeline, against the adapter-level fakes (tests/fakes/adapters.py).

The same paths run end to end with the real helm against the Kubernetes API double in
tests/e2e/test_deploy.py; here each failure is injected exactly where it matters."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from deployer.adapters.helm import HelmError
from deployer.console import Console
from deployer.errors import DeployError, Interrupted
from deployer.model import manifests
from deployer.model import values as values_mod
from deployer.model.release import ReleaseStatus
from deployer.model.report import Outcome, RollbackAction
from deployer.model.yamlio import load_text
from deployer.stages import pipeline
from deployer.stages.lock import DeployLock
from tests.fakes.adapters import FAILED, HEALTHY, STUCK, FakeCluster, FakeSmoke, api_down

MANIFEST = """---
# Source: mybinder/templates/static/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: static
  namespace: staging
spec:
  replicas: 2
---
# Source: mybinder/templates/static/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: static-config
  namespace: staging
data:
  greeting: hello
"""
OLD_MANIFEST = MANIFEST.replace("greeting: hello", "greeting: hi")
SECRETS = "binderhub:\n  registry:\n    password: s3cret-value\n"


class Harness:
    """A workspace, one fake cluster per member, and pipeline adapters wired to them."""

    def __init__(self, workspace):
        self.ws = workspace
        self.clusters: dict[str, FakeCluster] = {}
        self.smoke = FakeSmoke()
        self.validation_error: str | None = None
        self.connected: list[str] = []
        self.adapters = pipeline.Adapters(
            prepare=lambda ws, mirror: SimpleNamespace(path=Path("mybinder"),
                                                       crd_kinds=lambda: ()),
            render=self._render, validate=self._validate, connect=self._connect,
            smoke=self.smoke, prerequisites=lambda ws, member, wanted, mirror: [],
            poll=0.001, retry_pause=0.001)

    def cluster(self, name: str = "staging") -> FakeCluster:
        if name not in self.clusters:
            member = self.ws.federation.member(name)
            self.clusters[name] = FakeCluster(MANIFEST.replace("namespace: staging",
                                                               f"namespace: {member.namespace}"),
                                              namespace=member.namespace)
        return self.clusters[name]

    def deploy(self, *names: str, **options):
        options.setdefault("timeout", 0.05)
        options.setdefault("lock_timeout", 0.05)
        options.setdefault("rollback_window", 0.05)
        members = [self.ws.federation.member(n) for n in names or ("staging",)]
        reports = pipeline.deploy_members(self.ws, members, pipeline.Options(**options),
                                          adapters=self.adapters)
        return reports if len(reports) > 1 else reports[0]

    def _render(self, ws, member, prepared):
        mv = values_mod.build(ws, member, load_text(SECRETS, f"secrets/{member.name}.yaml"))
        return pipeline.Rendered(mv, "static:\n  replicas: 2\n")

    def _validate(self, ws, member, prepared, rendered):
        if self.validation_error:
            raise DeployError(self.validation_error)
        objects = manifests.parse(self.cluster(member.name).manifest_text)
        return pipeline.Rendered(rendered.values, rendered.values_yaml, tuple(objects))

    @contextmanager
    def _connect(self, ws, member, kubeconfig):
        self.connected.append(member.name)
        cluster = self.cluster(member.name)
        yield pipeline.Connection(cluster.helm, cluster.kube)


@pytest.fixture
def h(workspace):
    return Harness(workspace)


def test_first_install_deploys_smokes_and_releases_the_lock(h):
    report = h.deploy()
    cluster = h.cluster()
    assert report.outcome is Outcome.DEPLOYED and report.outcome.ok
    assert (report.revision_before, report.revision_after) == (None, 1)
    assert cluster.statuses() == ["deployed"]
    assert h.smoke.runs == ["staging"]
    assert cluster.leases == {}, "the lock is released"
    assert report.diff.added and not report.diff.changed
    assert list(report.stages) == ["render", "validate", "credentials", "lock", "preflight",
                                   "diff", "upgrade", "wait", "smoke"]


def test_upgrade_supersedes_the_serving_revision(h):
    h.cluster().installed(manifest=OLD_MANIFEST)
    report = h.deploy()
    assert report.outcome is Outcome.DEPLOYED
    assert h.cluster().statuses() == ["superseded", "deployed"]
    assert report.diff.changed == ("ConfigMap/static-config",)


def test_no_changes_on_a_healthy_member_skips_the_upgrade(h):
    h.cluster().installed()
    h.cluster().config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "1"}
    report = h.deploy()
    assert report.outcome is Outcome.UNCHANGED
    assert "upgrade" not in h.cluster().calls and h.smoke.runs == []
    assert report.revision_after == 1


def test_no_changes_but_a_revision_that_never_rolled_out_is_not_unchanged(h):
    """A deploy killed during its rollout wait left revision 2 serving but never ready."""
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed(health=STUCK)
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK
    assert report.rollback.to == 1 and report.rollback.action is RollbackAction.ROLLED_BACK
    assert cluster.statuses() == ["superseded", "superseded", "deployed"]
    assert cluster.revisions[-1].manifest == OLD_MANIFEST
    assert "rollout did not finish" in report.error


def test_no_changes_and_a_slow_revision_that_becomes_healthy_is_verified(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    broken = cluster.installed(health=STUCK)
    reads = []

    def recover():   # the pods come up while the deploy waits
        reads.append(1)
        if len(reads) > 2:
            broken.health = HEALTHY

    cluster.hooks["read_workload"] = recover
    report = h.deploy(timeout=5)
    assert report.outcome is Outcome.DEPLOYED, report.error
    assert "upgrade" not in cluster.calls, "the same revision, verified: no new one"
    assert h.smoke.runs == ["staging"]
    assert any("had not finished rolling out" in note for note in report.notes)


def test_failed_upgrade_rolls_back_to_the_serving_revision(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.fail_after_apply = HelmError(["upgrade"], "Error: UPGRADE FAILED: timed out", 1)
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK
    assert report.failed_stage == "upgrade"
    assert cluster.statuses() == ["superseded", "failed", "deployed"]
    assert cluster.revisions[-1].manifest == OLD_MANIFEST
    assert "upgrade failed: helm upgrade failed (exit 1)" in report.error
    assert "restored revision 1 (now revision 3)" in report.error


def test_first_install_rejected_before_anything_exists_says_nothing_was_deployed(h):
    cluster = h.cluster()
    cluster.fail("upgrade", HelmError(["upgrade"], 'Error: INSTALLATION FAILED: unable to build '
                                      'kubernetes objects from release manifest: resource '
                                      'mapping not found for name: "letsencrypt" namespace: "" '
                                      'from "": no matches for kind "ClusterIssuer" in version '
                                      '"cert-manager.io/v1"', 1))
    report = h.deploy()
    assert report.outcome is Outcome.FAILED
    assert "nothing was deployed" in report.error and "ClusterIssuer" in report.error
    assert "rollback failed" not in report.error
    assert "uninstall" not in cluster.calls and cluster.revisions == []


def test_a_kind_the_cluster_does_not_serve_stops_the_deploy_before_helm(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.unserved = {"ConfigMap"}        # as a ClusterIssuer without cert-manager's CRDs
    report = h.deploy()
    assert report.outcome is Outcome.FAILED and report.failed_stage == "preflight"
    assert "does not serve ConfigMap (v1)" in report.error and "nothing was changed" in \
        report.error
    assert "upgrade" not in cluster.calls and "rollback" not in cluster.calls
    assert cluster.statuses() == ["deployed"] and cluster.leases == {}


def test_rollout_timeout_rolls_back(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK and report.failed_stage == "wait"
    assert "rollout did not finish within" in report.error
    assert cluster.revisions[-1].health == HEALTHY and cluster.statuses()[-1] == "deployed"


def test_rollout_that_fails_for_good_rolls_back_at_once(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = FAILED
    report = h.deploy(timeout=30)
    assert report.outcome is Outcome.ROLLED_BACK
    assert "progress deadline exceeded" in report.error
    assert report.stages["wait"] < 5, "a failed rollout does not wait for the timeout"


def test_failed_smoke_tests_roll_back(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    h.smoke.failure = DeployError("smoke tests failed: binder front page: HTTP 502")
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK and report.failed_stage == "smoke"
    assert "HTTP 502" in report.error
    assert cluster.revisions[-1].manifest == OLD_MANIFEST


def test_an_unexpected_exception_still_rolls_back(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    h.smoke.failure = RuntimeError("bug in a check")
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK
    assert "unexpected RuntimeError: bug in a check" in report.error


def test_rollback_that_keeps_failing_needs_a_person(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    cluster.fail("rollback", HelmError(["rollback"], "Error: etcdserver: request timed out", 1),
                 times=None)
    report = h.deploy()
    assert report.outcome is Outcome.ROLLBACK_FAILED and not report.outcome.ok
    assert "the rollback to revision 1 failed too" in report.error
    assert "needs a person" in report.error
    assert cluster.leases == {}, "the lock is released even then"


def test_rollback_is_retried_through_a_short_outage(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    cluster.fail("rollback", HelmError(["rollback"], "Error: the server is currently unable "
                                       "to handle the request", 1), times=2)
    report = h.deploy(rollback_window=5)
    assert report.outcome is Outcome.ROLLED_BACK, report.error
    assert cluster.calls.count("rollback") == 3
    assert cluster.statuses() == ["superseded", "superseded", "deployed"]


def test_rollback_wait_survives_api_errors(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    calls = []

    def outage_after_rollback():
        calls.append(1)
        if "rollback" in cluster.calls and len(calls) < 40:
            raise api_down()

    cluster.hooks["read_workload"] = outage_after_rollback
    report = h.deploy(rollback_window=5)
    assert report.outcome is Outcome.ROLLED_BACK, report.error


def test_lock_lost_before_the_upgrade_changes_nothing(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.hooks["values"] = cluster.steal_lock     # during the diff
    report = h.deploy()
    assert report.outcome is Outcome.FAILED
    assert "lost the deploy lock" in report.error
    assert "upgrade" not in cluster.calls
    assert [lease.holder for lease in cluster.leases.values()] == ["someone-else@laptop"]


def test_lock_held_by_another_deploy_waits_then_refuses(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.namespaces.add("staging")
    DeployLock(cluster.kube, "staging", "ci-run-42", console=Console()).acquire(1)
    report = h.deploy()
    assert report.outcome is Outcome.FAILED and "locked by ci-run-42" in report.error
    assert "upgrade" not in cluster.calls


def test_no_rollback_leaves_the_failed_release(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    report = h.deploy(rollback=False)
    assert report.outcome is Outcome.LEFT_AS_IS
    assert "rollback" not in cluster.calls and cluster.statuses() == ["superseded", "deployed"]


def test_dry_run_takes_no_lock_and_changes_nothing(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    report = h.deploy(dry_run=True)
    assert report.outcome is Outcome.DRY_RUN
    assert not {"upgrade", "create_lease", "rollback"} & set(cluster.calls)
    assert report.diff.changed == ("ConfigMap/static-config",)


def test_stranded_pending_release_is_recovered_first(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    stuck = cluster.installed(health=STUCK)
    stuck.status = ReleaseStatus.PENDING_UPGRADE
    cluster.revisions[0].status = ReleaseStatus.DEPLOYED
    report = h.deploy()
    assert report.outcome is Outcome.DEPLOYED, report.error
    assert any("recovered pending-upgrade revision 2" in n for n in report.notes)
    assert cluster.statuses() == ["superseded", "pending-upgrade", "superseded", "deployed"]


def test_validation_failure_never_reaches_the_cluster(h):
    h.validation_error = "validation failed with 1 error(s); nothing was changed on the cluster"
    report = h.deploy()
    assert report.outcome is Outcome.FAILED and report.failed_stage == "validate"
    assert h.connected == []


def test_staging_gates_production(h):
    h.cluster("staging").next_health = STUCK
    reports = h.deploy("staging", "gke", "aws")
    assert [r.outcome for r in reports] == [Outcome.ROLLED_BACK, Outcome.SKIPPED,
                                            Outcome.SKIPPED]
    assert reports[0].rollback.action is RollbackAction.UNINSTALLED, "a first install is removed"
    assert h.connected == ["staging"]


def test_one_failing_production_member_does_not_stop_the_others(h):
    h.cluster("gke").next_health = STUCK
    reports = {r.member: r for r in h.deploy("staging", "gke", "aws", "hetzner-fsn")}
    assert reports["staging"].outcome is Outcome.DEPLOYED
    assert reports["gke"].outcome is Outcome.ROLLED_BACK
    assert reports["aws"].outcome is Outcome.DEPLOYED
    assert reports["hetzner-fsn"].outcome is Outcome.DEPLOYED


def test_interrupt_during_the_wait_rolls_back_and_says_interrupted(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK
    cancel = h.adapters.cancel
    reads = []

    def interrupt_while_waiting():
        reads.append(1)
        if len(reads) == 3 and "rollback" not in cluster.calls:
            cancel.set()

    cluster.hooks["read_workload"] = interrupt_while_waiting
    report = h.deploy(timeout=30)
    assert report.outcome is Outcome.INTERRUPTED
    assert report.stages["wait"] < 5
    assert cluster.revisions[-1].manifest == OLD_MANIFEST, "what was started is rolled back"
    assert cluster.leases == {}
    assert isinstance(Interrupted("x"), DeployError)


# -- an unchanged release: trusted when verified, checked when not -----------------------------
def test_a_deploy_records_the_verified_revision(h):
    h.deploy()
    record = h.cluster().config_maps[("staging", pipeline.VERIFIED_RECORD)]
    assert record["revision"] == "1"


def test_a_verified_revision_with_a_pod_briefly_down_is_left_alone(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed(health=STUCK)            # e.g. a node drained right now
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "2"}
    report = h.deploy()
    assert report.outcome is Outcome.UNCHANGED
    assert h.smoke.runs == [] and "rollback" not in cluster.calls


def test_a_revision_that_never_passed_its_smoke_tests_is_smoke_tested(h):
    """--no-rollback kept revision 2 after its smoke tests failed (the record still names 1):
    rolled out, unchanged, but not trusted until its smoke tests pass."""
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "1"}
    report = h.deploy()
    assert report.outcome is Outcome.UNCHANGED, report.error
    assert h.smoke.runs == ["staging"] and "wait" not in report.stages
    assert not {"upgrade", "rollback"} & set(cluster.calls)
    assert report.notes == ["revision 2 had never passed its smoke tests: smoke-tested it"]
    assert cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)]["revision"] == "2"


@pytest.mark.parametrize("recorded", ["1", "9"], ids=["the verified one", "another"])
def test_a_revision_that_fails_its_smoke_tests_again_goes_back_to_the_verified_one(h,
                                                                                   recorded):
    """The record keeps the newest verified deploy's commit through the rollback, whichever
    revision it named."""
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": recorded,
                                                                  "git_sha": "a" * 40}
    h.smoke.failure = DeployError("smoke tests failed: binder front page: HTTP 404")
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK and report.rollback.to == 1
    assert report.failed_stage == "smoke" and "restored revision 1" in report.error
    assert cluster.revisions[-1].manifest == OLD_MANIFEST
    # revision 1 again: recorded with the commit revision 1 was deployed from
    assert cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] == {
        **cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)], "revision": "3",
        "git_sha": "a" * 40}


def test_a_revision_that_fails_its_smoke_tests_with_no_rollback_is_left(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "1"}
    h.smoke.failure = DeployError("smoke tests failed: binder front page: HTTP 404")
    report = h.deploy(rollback=False)
    assert report.outcome is Outcome.LEFT_AS_IS and "--no-rollback" in report.error
    assert "rollback" not in cluster.calls and cluster.statuses()[-1] == "deployed"
    assert cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)]["revision"] == "1"


def test_skip_smoke_leaves_a_rolled_out_unverified_revision_unchanged(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "1"}
    report = h.deploy(smoke=False)
    assert report.outcome is Outcome.UNCHANGED and h.smoke.runs == []
    assert cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)]["revision"] == "1"


def test_an_api_blip_is_no_reason_to_roll_back(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.fail("read_config_map", api_down(), times=1)   # the record: no verdict either
    cluster.fail("read_workload", api_down(), times=1)
    h.smoke.failure = DeployError("smoke tests failed: GitHub is down")
    report = h.deploy()
    assert report.outcome is Outcome.UNCHANGED
    assert h.smoke.runs == [] and "rollback" not in cluster.calls


def test_an_api_outage_is_reported_not_judged(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed()
    cluster.fail("read_workload", api_down(), times=None)
    report = h.deploy()
    assert report.outcome is Outcome.UNCHANGED and "rollback" not in cluster.calls


def test_an_unhealthy_only_revision_is_never_uninstalled(h):
    cluster = h.cluster()
    cluster.installed(health=STUCK)
    report = h.deploy()
    assert report.outcome is Outcome.FAILED
    assert "no earlier revision to go back to; it is left as it is" in report.error
    assert "uninstall" not in cluster.calls and cluster.statuses() == ["deployed"]


def test_an_unhealthy_revision_goes_back_to_the_last_verified_one(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)                  # 1: verified
    cluster.installed(manifest=OLD_MANIFEST.replace("hi", "hey"))   # 2: never verified
    cluster.installed(health=STUCK)                           # 3: killed during its wait
    cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)] = {"revision": "1"}
    report = h.deploy()
    assert report.outcome is Outcome.ROLLED_BACK and report.rollback.to == 1
    assert cluster.revisions[-1].manifest == OLD_MANIFEST
    assert cluster.config_maps[("staging", pipeline.VERIFIED_RECORD)]["revision"] == "4"


def test_a_lost_lock_in_the_verify_path_changes_nothing(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.installed(health=STUCK)
    cluster.hooks["values"] = cluster.steal_lock
    report = h.deploy()
    assert report.outcome is Outcome.FAILED and "lost the deploy lock" in report.error
    assert "rollback" not in cluster.calls and "rollback failed" not in report.error


def test_rollback_retries_stop_when_the_lock_is_lost(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK

    def fail_then_steal():
        if cluster.calls.count("rollback") == 1:
            cluster.steal_lock()
            raise HelmError(["rollback"], "Error: the server is currently unable", 1)

    cluster.hooks["rollback"] = fail_then_steal
    report = h.deploy(rollback_window=5)
    assert report.outcome is Outcome.ROLLBACK_FAILED
    assert cluster.calls.count("rollback") == 1, "no rollback after the lock was lost"
    assert "lost the deploy lock" in report.error


def test_an_interrupt_before_the_upgrade_changes_nothing(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    h.adapters.cancel.set()
    report = h.deploy(timeout=30)
    assert report.outcome is Outcome.INTERRUPTED
    assert "nothing was changed" in report.error
    assert not {"upgrade", "rollback", "create_lease"} & set(cluster.calls)


def test_a_second_interrupt_stops_waiting_for_the_rollback(h):
    cluster = h.cluster()
    cluster.installed(manifest=OLD_MANIFEST)
    cluster.next_health = STUCK

    def target_is_slow_too():   # the restored revision takes long to come up
        cluster.revisions[0].health = STUCK
        threading.Timer(0.05, h.adapters.abort.set).start()

    cluster.hooks["rollback"] = target_is_slow_too
    cluster.hooks["upgrade"] = h.adapters.cancel.set     # Ctrl-C while helm upgrades
    report = h.deploy(timeout=30, rollback_window=60)
    assert report.outcome is Outcome.INTERRUPTED
    assert "the rollback to revision 1 was started but not waited for" in report.error
    assert report.stages["rollback"] < 5
    assert cluster.calls.count("rollback") == 1 and cluster.leases == {}
