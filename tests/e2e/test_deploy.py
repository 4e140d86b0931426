"""The deploy engine end to end: the real CLI, helm, sops and kubernetes client against the
Kubernetes API test double. Members reach it through sops-encrypted kubeconfigs."""
import json

import pytest
import yaml

from deployer.adapters.kube import Kube
from deployer.console import Console
from deployer.stages.lock import DeployLock

from tests.support import helm_agnostic, write_secrets
from tests.fakes.http import QuietHandler, serve
from tests.fakes.kube_api import KubeAPI

CLUSTER_ISSUER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterissuers.cert-manager.io"},
    "spec": {"group": "cert-manager.io", "scope": "Cluster",
             "names": {"kind": "ClusterIssuer", "plural": "clusterissuers",
                       "singular": "clusterissuer", "listKind": "ClusterIssuerList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {
                               "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


class _Health(QuietHandler):
    """A member's public endpoints as the smoke checks read them (no launches here)."""

    status = 200

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        kind, body = "application/json", b'{"ok": true}'
        if path == "health":
            body = json.dumps({"ok": True, "checks": [
                {"service": "JupyterHub API", "ok": True},
                {"service": "Pod quota", "ok": True, "total_pods": 0, "quota": 100}]}).encode()
        elif path == "versions":
            body = json.dumps({"builder_info": {}, "binderhub": "1.0.0-test"}).encode()
        elif path == "badge_logo.svg":
            kind, body = "image/svg+xml", b"<svg/>"
        self.reply(type(self).status, kind, body)


@pytest.fixture
def health_server():
    handler = type("Health", (_Health,), {"status": 200})
    with serve(handler) as server:
        yield server, handler


@pytest.fixture
def fleet(repo, env, kube_api, health_server, tmp_path):
    """Every member on its own Kubernetes API double (as each member is its own cluster),
    reached through an encrypted kubeconfig; staging's double is `kube_api` itself and every
    member's is in `fleet.members`. Public health URLs served on 127.0.0.1."""
    import contextlib

    from deployer.model import federation as federation_mod

    server, _ = health_server
    health = f"http://127.0.0.1:{server.server_address[1]}"
    path = repo / "config/federation.yaml"
    data = yaml.safe_load(path.read_text())
    # these clusters have cert-manager's CRD already (installed by other means): no member
    # gets the cert-manager prerequisite release here (tests/e2e/test_prerequisites.py does)
    data.pop("prerequisites", None)
    kube_api.members = {}
    with contextlib.ExitStack() as stack:
        for name, member in data["members"].items():
            cluster = kube_api if name == "staging" else stack.enter_context(
                KubeAPI("1.34.2", rollout_delay=0.2))
            cluster.api.store.create(cluster.api.registry.by_kind(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition"), "", CLUSTER_ISSUER_CRD)
            cluster.api.registry.register_crd(CLUSTER_ISSUER_CRD)
            kube_api.members[name] = cluster
            context = member["cluster"].get("context", "test")
            member["cluster"] = {"provider": "kubeconfig",
                                 "kubeconfig": f"secrets/kubeconfigs/{name}.yaml",
                                 "context": context}
            # smoke checks reach this member's endpoints on 127.0.0.1; no launches here
            member["smoke"] = {"repos": [], "urls": {"binder": f"{health}/{name}",
                                                    "hub": f"{health}/{name}-hub",
                                                    "static": f"{health}/{name}-static"}}
            member["domains"].pop("federation", None)     # no redirector in these tests
            member.pop("runs", None)
            plain = cluster.kubeconfig(tmp_path / f"{name}.kubeconfig", context=context)
            write_secrets(repo, f"secrets/kubeconfigs/{name}.yaml", plain.read_text(), env)
            plain.unlink()
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        federation_mod.load(repo)  # still valid
        # nor does the bump bot look for a cert-manager version in the federation any more
        bumped = repo / "config/dependencies.yaml"
        listed = yaml.safe_load(bumped.read_text())
        listed["dependencies"].pop("cert-manager", None)
        bumped.write_text(yaml.safe_dump(listed, sort_keys=False))
        yield kube_api


def _report(path):
    return {d["member"]: d for d in json.loads(path.read_text())["deploys"]}


def _history(kube_api, release, namespace):
    """Release revisions and states, straight from helm's storage Secrets."""
    import base64
    import gzip

    out = []
    with kube_api.api.store.lock:
        for (ns, name), obj in kube_api.api.store.objects.get(("", "secrets"), {}).items():
            if ns == namespace and name.startswith(f"sh.helm.release.v1.{release}.v"):
                raw = base64.b64decode(base64.b64decode(obj["data"]["release"]))
                rel = json.loads(gzip.decompress(raw))
                out.append((rel["version"], rel["info"]["status"], rel["info"]["description"]))
    return sorted(out)


def test_fresh_install_upgrade_and_noop(cli, fleet, repo, tmp_path):
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "deployed"
    assert (staging["revision_before"], staging["revision_after"]) == (None, 1)
    assert staging["git_sha"] == ""  # the test's repo copy is not a git checkout
    for stage in ("render", "validate", "credentials", "lock", "preflight", "diff", "upgrade",
                  "wait", "smoke"):
        assert stage in staging["stages"], stage
    assert "Deployment/hub" in staging["diff"]["added"]
    assert fleet.object("deployments", "staging", "hub", "apps")["status"]["readyReplicas"] == 1
    assert fleet.object("leases", "staging", "deployer-lock", "coordination.k8s.io") is None

    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    staging = _report(report)["staging"]
    assert (staging["outcome"], staging["revision_before"], staging["revision_after"]) == (
        "deployed", 1, 2)
    assert staging["diff"] == {"added": [], "changed": ["Deployment/static"], "removed": []}
    assert "-  replicas: 2" in result.stdout and "+  replicas: 3" in result.stdout
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3

    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    assert _report(report)["staging"]["outcome"] == "unchanged"
    assert [r[0] for r in _history(fleet, "staging", "staging")] == [1, 2]


def test_dry_run_and_diff_change_nothing(cli, fleet, repo):
    result = cli("deploy", "staging", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "to add, 0 to change, 0 to remove" in result.stdout
    assert _history(fleet, "staging", "staging") == []
    diff = cli("diff", "staging")
    assert diff.returncode == 0, diff.stderr
    assert "added    Deployment/hub" in diff.stdout
    assert not [(m, p) for m, p in fleet.requests if m in ("POST", "PUT", "PATCH", "DELETE")]


def test_generated_hub_secrets_do_not_show_as_changes(cli, fleet, repo):
    """jupyterhub generates its hub secrets (proxy token, cookie secret) on every offline
    render; the diff renders against the cluster (helm `lookup` reads the live Secret through
    the API double), so a repeated diff is empty and a real change still shows."""
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    secret = fleet.object("secrets", "staging", "hub")
    assert set(secret["data"]) >= {"hub.config.ConfigurableHTTPProxy.auth_token",
                                   "hub.config.JupyterHub.cookie_secret"}
    diff = cli("diff", "staging")
    assert diff.returncode == 0, diff.stderr
    assert "no changes" in diff.stdout and "Secret/hub" not in diff.stdout, diff.stdout
    assert "could not render against the cluster" not in diff.stderr
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    diff = cli("diff", "staging")
    assert diff.returncode == 0, diff.stderr
    assert "changed  Deployment/static" in diff.stdout
    assert "Secret/hub" not in diff.stdout and "Deployment/hub" not in diff.stdout
    # a change of the hub's own settings shows (in the hub Secret, holding the values)
    data = yaml.safe_load(path.read_text())
    data["binderhub"].setdefault("jupyterhub", {}).setdefault("cull", {})["timeout"] = 900
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    diff = cli("diff", "staging")
    assert diff.returncode == 0, diff.stderr
    assert "changed  Secret/hub (secret values changed; not shown)" in diff.stdout, diff.stdout
    assert fleet.object("secrets", "staging", "hub")["data"] == secret["data"]


def test_without_cluster_lookups_the_diff_carries_generated_values_over(cli, fleet, repo):
    """When helm cannot render against the cluster (here: reading the hub Secret is
    forbidden), the diff says so and compares the offline render with the generated values
    taken from the live release: still no changes."""
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    fleet.faults.fail(r"^/api/v1/namespaces/staging/secrets/hub(\?|$)", 403, methods=("GET",))
    diff = cli("diff", "staging")
    assert diff.returncode == 0, diff.stderr
    assert "could not render against the cluster" in diff.stderr
    assert "no changes" in diff.stdout, diff.stdout
    assert "generated value(s)" in diff.stdout and "Secret/hub" not in diff.stdout


def test_failed_rollout_rolls_back_automatically(cli, fleet, repo, tmp_path):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    fleet.faults.never_ready("deployments", "staging", "static",
                             when=lambda obj: obj["spec"]["replicas"] == 3)
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "4", "--report", report)
    assert result.returncode == 1
    assert "wait failed: rollout did not finish within 4s: Deployment/static" in result.stderr
    assert "restored revision 1 (now revision 3)" in result.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "rolled back" and staging["failed_stage"] == "wait"
    assert staging["rollback"]["to"] == 1 and staging["rollback"]["revision"] == 3
    history = _history(fleet, "staging", "staging")
    # helm itself succeeded with revision 2; the rollout wait failed; revision 3 restores 1
    assert [(v, s) for v, s, _ in history] == [(1, "superseded"), (2, "superseded"),
                                               (3, "deployed")]
    assert history[-1][2] == "Rollback to 1"
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


def test_no_rollback_keeps_the_broken_release(cli, fleet, repo):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    fleet.faults.never_ready("deployments", "staging", "static")
    result = cli("deploy", "staging", "--timeout", "3", "--no-rollback")
    assert result.returncode == 1 and "--no-rollback" in result.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3


def test_failed_smoke_check_rolls_back(cli, fleet, repo, health_server):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    health_server[1].status = 404
    result = cli("deploy", "staging", "--timeout", "60")
    assert result.returncode == 1
    assert "smoke failed: smoke tests failed: binder front page" in result.stderr
    assert "HTTP 404" in result.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


@helm_agnostic
def test_a_revision_that_failed_its_smoke_tests_is_not_unchanged(cli, fleet, repo,
                                                                  health_server, tmp_path):
    """--no-rollback kept revision 2 after its smoke tests failed; the record still names 1.
    A deploy with no changes smoke-tests revision 2 before calling it unchanged."""
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    health_server[1].status = 404
    kept = cli("deploy", "staging", "--timeout", "60", "--no-rollback")
    assert kept.returncode == 1 and "smoke failed" in kept.stderr
    record = ("configmaps", "staging", "deployer-verified")
    assert fleet.object(*record)["data"]["revision"] == "1"
    report = tmp_path / "report.json"
    again = cli("deploy", "staging", "--timeout", "60", "--no-rollback", "--report", report)
    assert again.returncode == 1, again.stderr
    assert "upgrade skipped" not in again.stderr
    assert "revision 2 never passed its smoke tests (the last verified revision is 1)" in \
        again.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "failed (left as is: --no-rollback)"
    assert staging["failed_stage"] == "smoke"
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 1, result.stderr
    assert "smoke failed: smoke tests failed: binder front page" in result.stderr
    assert "restored revision 1 (now revision 3)" in result.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "rolled back" and staging["failed_stage"] == "smoke"
    assert (staging["rollback"]["to"], staging["rollback"]["revision"]) == (1, 3)
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    assert fleet.object(*record)["data"]["revision"] == "3"


def _git(repo, *args):
    import subprocess

    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@helm_agnostic
def test_a_checkout_older_than_what_the_member_runs_does_not_deploy_over_it(cli, fleet, repo):
    """A clone that was not pulled, or a re-run of an older workflow run: its commit is in
    the history of the member's newest verified deploy (a rollback keeps that commit).
    Refused before any change (a dry run only warns); --allow-older goes back on purpose. A
    newer commit, or one on another line of history, deploys as ever."""
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "old")
    old = _git(repo, "rev-parse", "HEAD")
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    _git(repo, "commit", "-qam", "new")
    new = _git(repo, "rev-parse", "HEAD")
    record = ("configmaps", "staging", "deployer-verified")
    _git(repo, "checkout", "-q", old)
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    assert fleet.object(*record)["data"]["git_sha"] == old
    _git(repo, "checkout", "-q", "main")
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0      # newer: deploys
    assert fleet.object(*record)["data"]["git_sha"] == new
    back = cli("rollback", "staging", "--timeout", "60")
    assert back.returncode == 0, back.stderr
    assert fleet.object(*record)["data"] == {**fleet.object(*record)["data"], "revision": "3",
                                             "git_sha": new}

    _git(repo, "checkout", "-q", old)
    refused = cli("deploy", "staging", "--timeout", "60", "--report", repo / "report.json")
    assert refused.returncode == 1
    assert _report(repo / "report.json")["staging"]["outcome"] == "refused: older checkout"
    assert (f"staging: this checkout ({old[:12]}) is older: the member's newest verified "
            f"deploy is of commit {new[:12]}, which has it in its history; nothing was "
            "changed") in refused.stderr
    assert "--allow-older" in refused.stderr
    assert [r[0] for r in _history(fleet, "staging", "staging")] == [1, 2, 3]
    assert fleet.object("leases", "staging", "deployer-lock", "coordination.k8s.io") is None
    dry = cli("deploy", "staging", "--dry-run")
    assert dry.returncode == 0 and "a deploy would be refused" in dry.stderr
    # --allow-older goes back on purpose: the newer commit runs again, then the older one
    _git(repo, "checkout", "-q", "main")
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3
    _git(repo, "checkout", "-q", old)
    allowed = cli("deploy", "staging", "--timeout", "60", "--allow-older")
    assert allowed.returncode == 0, allowed.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    assert fleet.object(*record)["data"]["git_sha"] == old

    # a commit on another line of history is not older: it deploys
    _git(repo, "checkout", "-q", "-b", "other")
    path.write_text(path.read_text() + "static:\n  replicas: 4\n")
    _git(repo, "commit", "-qam", "other")
    sideways = cli("deploy", "staging", "--timeout", "60")
    assert sideways.returncode == 0, sideways.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 4
    assert fleet.object(*record)["data"]["git_sha"] == _git(repo, "rev-parse", "HEAD")

    # a commit this clone does not have (a shallow checkout): a warning, not a refusal
    fleet.members["staging"].api.store.objects[("", "configmaps")][
        ("staging", "deployer-verified")]["data"]["git_sha"] = "f" * 40
    _git(repo, "checkout", "-q", "main")
    unknown = cli("deploy", "staging", "--timeout", "60")
    assert unknown.returncode == 0, unknown.stderr
    assert f"deploy is of commit {'f' * 12}, which this checkout does not have" in \
        unknown.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3


@helm_agnostic
def test_an_unverified_revision_that_passes_its_smoke_tests_is_recorded(cli, fleet, repo,
                                                                        health_server,
                                                                        tmp_path):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    health_server[1].status = 404
    assert cli("deploy", "staging", "--timeout", "60", "--no-rollback").returncode == 1
    health_server[1].status = 200        # whatever broke the endpoints is fixed
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "unchanged" and "smoke" in staging["stages"]
    assert staging["notes"] == ["revision 2 had never passed its smoke tests: smoke-tested it"]
    assert (staging["revision_before"], staging["revision_after"]) == (2, 2)
    assert fleet.object("configmaps", "staging", "deployer-verified")["data"]["revision"] == "2"
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    staging = _report(report)["staging"]
    assert staging["outcome"] == "unchanged" and "smoke" not in staging["stages"]
    assert [r[0] for r in _history(fleet, "staging", "staging")] == [1, 2]


def test_stranded_pending_release_is_recovered(cli, fleet, repo, kube_env, workspace,
                                               chart_mirror, tmp_path):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    # strand the release the way a cancelled CI run does: helm dies mid-upgrade
    import signal
    import subprocess
    import time

    from deployer.stages import chart
    from deployer.adapters import helm as helm_mod

    from tests.support import HELM_BINARY

    prepared = chart.prepare(workspace, helm_mod.Helm({**workspace.env, "DEPLOYER_CACHE_DIR":
                                                       str(tmp_path / "c")},
                                                      console=workspace.console, echo=False),
                             chart_mirror)
    fleet.faults.never_ready("deployments", "staging", "static")
    values = tmp_path / "v.yaml"
    values.write_text("static:\n  replicas: 5\n")
    proc = subprocess.Popen([str(HELM_BINARY), "upgrade", "staging", str(prepared.path),
                             "-n", "staging", "--reuse-values", "-f", str(values), "--wait",
                             "--timeout", "60s"], env=kube_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [s for _, s, _ in _history(
            fleet, "staging", "staging")][-1:] != ["pending-upgrade"]:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fleet.faults.clear()
    assert _history(fleet, "staging", "staging")[-1][1] == "pending-upgrade"
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "60", "--report", report)
    assert result.returncode == 0, result.stderr
    assert "left pending-upgrade by an interrupted run" in result.stderr
    staging = _report(report)["staging"]
    assert staging["notes"] == ["recovered pending-upgrade revision 2 by rolling back to 1"]
    history = _history(fleet, "staging", "staging")
    # helm keeps the stranded record; recovery put a rollback on top of it
    assert [s for _, s, _ in history] == ["superseded", "pending-upgrade", "deployed"]
    assert history[-1][2] == "Rollback to 1"


def test_a_rollback_left_pending_is_finished_to_its_target(cli, fleet, repo, kube_env,
                                                            tmp_path):
    """Interrupted twice, a deploy leaves its rollback pending: 1 superseded, 2 deployed (the
    broken revision), 3 pending-rollback ("Rollback to 1"). The next deploy finishes that
    rollback - to 1, not to the broken 2 below it - and goes on."""
    import signal
    import subprocess
    import time

    from tests.support import HELM_BINARY

    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    good = path.read_text()
    path.write_text(good + "static:\n  replicas: 3\n")
    restoring = {"stuck": False}       # while set, the restored spec does not come up either
    fleet.faults.never_ready("deployments", "staging", "static",
                             when=lambda obj: obj["spec"]["replicas"] == 3 or
                             restoring["stuck"])
    broken = cli("deploy", "staging", "--timeout", "3", "--no-rollback")
    assert broken.returncode == 1 and "--no-rollback" in broken.stderr
    restoring["stuck"] = True
    proc = subprocess.Popen([str(HELM_BINARY), "rollback", "staging", "1", "-n", "staging",
                             "--wait", "--timeout", "60s"], env=kube_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [s for _, s, _ in _history(
            fleet, "staging", "staging")][-1:] != ["pending-rollback"]:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    restoring["stuck"] = False
    assert _history(fleet, "staging", "staging") == [
        (1, "superseded", "Install complete"), (2, "deployed", "Upgrade complete"),
        (3, "pending-rollback", "Rollback to 1")]
    path.write_text(good)              # the bad change reverted
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "20", "--report", report)
    assert result.returncode == 0, result.stderr
    assert "left pending-rollback by an interrupted run; rolling back to revision 1" in \
        result.stderr
    staging = _report(report)["staging"]
    assert staging["notes"][0] == "recovered pending-rollback revision 3 by rolling back to 1"
    assert staging["outcome"] == "unchanged" and staging["revision_after"] == 4
    assert _history(fleet, "staging", "staging")[-1] == (4, "deployed", "Rollback to 1")
    static = fleet.object("deployments", "staging", "static", "apps")
    assert static["spec"]["replicas"] == 2 and static["status"]["readyReplicas"] == 2


def test_rollback_command_on_a_release_left_pending_upgrade(cli, fleet, repo):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    # helm cannot record the upgrade's outcome: revision 2 stays pending-upgrade
    fleet.faults.fail(r"/api/v1/namespaces/staging/secrets/sh\.helm\.release\.v1\.staging\.v2$",
                      500, methods=("PUT", "PATCH"), times=3)
    assert cli("deploy", "staging", "--timeout", "20", "--no-rollback").returncode == 1
    fleet.faults.clear()
    assert [s for _, s, _ in _history(fleet, "staging", "staging")] == [
        "superseded", "pending-upgrade"]
    result = cli("rollback", "staging", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert "rolled back to revision 1 (now revision 3)" in result.stdout
    assert _history(fleet, "staging", "staging")[-1] == (3, "deployed", "Rollback to 1")
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


def test_rollback_of_a_member_never_deployed_creates_nothing(cli, fleet):
    result = cli("rollback", "staging", "--timeout", "20")
    assert result.returncode == 1
    assert "no earlier revision of staging to roll back to" in result.stderr
    assert fleet.object("namespaces", "", "staging") is None
    assert not [(m, p) for m, p in fleet.requests if m in ("POST", "PUT", "PATCH", "DELETE")]


def test_rollback_after_an_automatic_rollback_skips_the_failed_and_the_restored_revision(
        cli, fleet, repo):
    """1 deployed, 2 failed (its upgrade failed), 3 "Rollback to 1": revision 2 never served
    and 1 is what runs now, so plain `rollback` has nowhere to go and says so, changing
    nothing. The default is the newest earlier revision that served and is not what runs
    now: after a good deploy on top of 4 ("Rollback to 1"), that is 4."""
    assert cli("deploy", "staging", "--timeout", "60", "--skip-smoke").returncode == 0
    path = repo / "config/staging.yaml"
    good = path.read_text()
    path.write_text(good + "static:\n  replicas: 3\n")
    # the server refuses the upgrade's change to Deployment/static once: helm marks 2 failed
    fleet.faults.fail(r"^/apis/apps/v1/namespaces/staging/deployments/static(\?|$)", 422,
                      methods=("PATCH", "PUT"), times=1)
    failed = cli("deploy", "staging", "--timeout", "20", "--skip-smoke")
    assert failed.returncode == 1, failed.stderr
    fleet.faults.clear()
    assert [(v, s) for v, s, _ in _history(fleet, "staging", "staging")] == [
        (1, "superseded"), (2, "failed"), (3, "deployed")]
    before = _history(fleet, "staging", "staging")
    writes = len([m for m, _ in fleet.requests if m in ("POST", "PUT", "PATCH", "DELETE")])
    result = cli("rollback", "staging", "--timeout", "20")
    assert result.returncode == 1, result.stderr
    assert ("revision 3 is already revision 1 again (Rollback to 1); no earlier good "
            "revision to roll back to") in result.stderr, result.stderr
    assert result.stderr.count("error") == 1, result.stderr
    assert _history(fleet, "staging", "staging") == before
    assert len([m for m, _ in fleet.requests
                if m in ("POST", "PUT", "PATCH", "DELETE")]) == writes
    # an explicit revision still wins
    explicit = cli("rollback", "staging", "--to-revision", "1", "--timeout", "20")
    assert explicit.returncode == 0, explicit.stderr
    assert "rolled back to revision 1 (now revision 4)" in explicit.stdout
    # a good deploy on top (5): the default is the newest earlier good revision that is not
    # what runs now - 4, itself 1 again, but different from 5
    path.write_text(good + "static:\n  replicas: 3\n")
    assert cli("deploy", "staging", "--timeout", "20", "--skip-smoke").returncode == 0
    again = cli("rollback", "staging", "--timeout", "20")
    assert again.returncode == 0, again.stderr
    assert "rolled back to revision 4 (now revision 6)" in again.stdout
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


def test_rollback_after_a_deploy_whose_smoke_tests_failed_skips_the_undone_revision(
        cli, fleet, repo, health_server):
    """Revision 2 upgraded fine but failed its smoke tests and was rolled back (3, "Rollback
    to 1"): helm calls it superseded, yet plain `rollback` must not bring it back."""
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    health_server[1].status = 404
    assert cli("deploy", "staging", "--timeout", "60").returncode == 1
    health_server[1].status = 200
    assert [(v, s) for v, s, _ in _history(fleet, "staging", "staging")] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]
    result = cli("rollback", "staging", "--timeout", "20")
    assert result.returncode == 1, result.stdout
    assert "revision 3 is already revision 1 again (Rollback to 1)" in result.stderr
    assert len(_history(fleet, "staging", "staging")) == 3
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


def test_rollback_of_a_release_uninstalled_with_its_history_kept(cli, fleet, repo, kube_env):
    """`helm uninstall --keep-history` marks the newest revision uninstalled and keeps the
    others. Plain `rollback` does not guess which one to reinstate: it says the release was
    uninstalled and which revisions exist, changing nothing; `--to-revision N` reinstates
    one (helm rollback does that for an uninstalled release)."""
    import subprocess

    from tests.support import HELM_BINARY

    assert cli("deploy", "staging", "--timeout", "60", "--skip-smoke").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    assert cli("deploy", "staging", "--timeout", "60", "--skip-smoke").returncode == 0
    subprocess.run([str(HELM_BINARY), "uninstall", "staging", "-n", "staging",
                    "--keep-history"], env=kube_env, check=True, capture_output=True)
    assert [(v, s) for v, s, _ in _history(fleet, "staging", "staging")] == [
        (1, "superseded"), (2, "uninstalled")]
    writes = len([m for m, _ in fleet.requests if m in ("POST", "PUT", "PATCH", "DELETE")])
    result = cli("rollback", "staging", "--timeout", "20")
    assert result.returncode == 1, result.stderr
    assert "no earlier revision" not in result.stderr, result.stderr
    assert ("release staging was uninstalled (revision 2); its history keeps revisions "
            "1 (superseded), 2 (uninstalled): use --to-revision N to reinstate one") in \
        result.stderr, result.stderr
    assert len([m for m, _ in fleet.requests
                if m in ("POST", "PUT", "PATCH", "DELETE")]) == writes
    assert fleet.object("deployments", "staging", "static", "apps") is None
    reinstated = cli("rollback", "staging", "--to-revision", "2", "--timeout", "20")
    assert reinstated.returncode == 0, reinstated.stderr
    assert "rolled back to revision 2 (now revision 3)" in reinstated.stdout
    assert _history(fleet, "staging", "staging")[-1] == (3, "deployed", "Rollback to 2")
    static = fleet.object("deployments", "staging", "static", "apps")
    assert static["spec"]["replicas"] == 3 and static["status"]["readyReplicas"] == 3
    assert fleet.object("configmaps", "staging", "deployer-verified")["data"]["revision"] == "3"

def test_second_deploy_waits_then_refuses(cli, fleet, kubeconfig):
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    lock = DeployLock(Kube(api), "staging", "https://ci.example/run/42", console=Console(),
                      log=lambda *_: None)
    with lock.held(5):
        result = cli("deploy", "staging", "--lock-timeout", "2", "--timeout", "30")
    api.close()
    assert result.returncode == 1
    assert "locked by https://ci.example/run/42 since" in result.stderr
    assert "waiting for the deploy lock" in result.stderr


@helm_agnostic
def test_an_api_server_that_does_not_answer_fails_soon_naming_the_reason(cli, fleet, tmp_path):
    import time

    fleet.go_away()  # staging's API server: nothing listens on its port any more
    reason = f"cannot reach the API server at {fleet.url}: connection refused"
    report = tmp_path / "report.json"
    started = time.monotonic()
    result = cli("deploy", "staging", "--timeout", "30", "--report", report,
                 "--lock-timeout", "600")
    assert time.monotonic() - started < 60, "not the whole --lock-timeout"
    assert result.returncode == 1
    assert f"error: staging: cannot take the deploy lock staging/deployer-lock: {reason} " \
        "(hint: check that the cluster is up" in result.stderr
    assert f"cannot take the deploy lock staging/deployer-lock ({reason}); retrying for" \
        in result.stderr
    deployed = _report(report)["staging"]
    assert deployed["failed_stage"] == "lock" and reason in deployed["error"]
    # rollback reads the release's history first (before the lock): it fails there, at once
    started = time.monotonic()
    result = cli("rollback", "staging", "--timeout", "30", "--lock-timeout", "600")
    assert time.monotonic() - started < 60 and result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: helm history failed")
    assert "connection refused" in result.stderr


@helm_agnostic
def test_a_member_whose_api_server_is_down_does_not_hold_the_others(cli, fleet, tmp_path):
    aws = fleet.members["aws"]
    aws.go_away()
    report = tmp_path / "report.json"
    result = cli("deploy", "production", "--timeout", "60", "--report", report)
    assert result.returncode == 1
    reports = _report(report)
    assert {m: r["outcome"] for m, r in reports.items()} == {
        "gke": "deployed", "aws": "failed", "hetzner-fsn": "deployed", "uni-lab": "deployed"}
    assert reports["aws"]["failed_stage"] == "lock"
    assert f"cannot reach the API server at {aws.url}: connection refused" \
        in reports["aws"]["error"]
    assert reports["aws"]["stages"]["lock"] < 30


def test_expired_client_certificate_is_refused_before_any_request(cli, fleet, repo, env,
                                                                  tmp_path):
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployer")])
    past = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(past)
            .not_valid_after(past + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    config = yaml.safe_load(fleet.kubeconfig(tmp_path / "k").read_text())
    config["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(
            cert.public_bytes(serialization.Encoding.PEM)).decode(),
        "client-key-data": base64.b64encode(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())).decode()}
    write_secrets(repo, "secrets/kubeconfigs/staging.yaml", yaml.safe_dump(config), env)
    before = len(fleet.requests)
    result = cli("deploy", "staging")
    assert result.returncode == 1
    assert "client certificate for member staging expired on 2026-01-01" in result.stderr
    assert len(fleet.requests) == before, "nothing may reach the cluster"


def test_api_errors_during_the_wait_are_retried_then_fail_and_roll_back(cli, fleet, repo,
                                                                        tmp_path):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    # the deployer's reads of the static Deployment (kubernetes client, not helm) fail for a
    # while: long enough to exhaust a 3 s wait polling every 0.5 s, short enough for the
    # rollback's wait to get through
    fleet.faults.fail(r"/apis/apps/v1/namespaces/staging/deployments/static$", 503, times=10,
                      methods=("GET",), user_agent="OpenAPI-Generator|python")
    report = tmp_path / "report.json"
    result = cli("deploy", "staging", "--timeout", "3", "--report", report)
    assert result.returncode == 1
    assert "API error while waiting (HTTP 503" in result.stderr
    assert "last API error: HTTP 503" in result.stderr
    assert _report(report)["staging"]["outcome"] == "rolled back"
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2


@helm_agnostic
def test_parallel_deploy_of_four_members_with_one_failing(cli, fleet, tmp_path):
    fleet.members["aws"].faults.never_ready("deployments", "aws", "hub")
    report = tmp_path / "report.json"
    result = cli("deploy", "production", "--timeout", "8", "--report", report)
    assert result.returncode == 1
    outcomes = {m: r["outcome"] for m, r in _report(report).items()}
    assert outcomes == {"gke": "deployed", "aws": "rolled back", "hetzner-fsn": "deployed",
                        "uni-lab": "deployed"}
    # uninstalled: it never deployed
    assert fleet.members["aws"].object("deployments", "aws", "hub", "apps") is None
    table = result.stdout
    assert "aws" in table and "rolled back" in table and table.count("deployed") >= 3


def test_staging_gates_production(cli, fleet, tmp_path):
    fleet.faults.never_ready("deployments", "staging", "hub")
    report = tmp_path / "report.json"
    result = cli("deploy", "staging,gke", "--timeout", "4", "--report", report)
    assert result.returncode == 1
    outcomes = {m: r["outcome"] for m, r in _report(report).items()}
    assert outcomes["gke"] == "skipped: staging did not deploy"
    assert fleet.members["gke"].object("deployments", "prod", "hub", "apps") is None


def test_rollback_and_status_commands(cli, fleet, repo):
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    result = cli("rollback", "staging", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert "rolled back to revision 1 (now revision 3)" in result.stdout
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 2
    bad = cli("rollback", "staging", "--to-revision", "9")
    assert bad.returncode == 1 and "has no revision 9" in bad.stderr
    status = cli("status", "staging", "gke")
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[2:]}
    assert "3" in lines["staging"].split() and "deployed" in lines["staging"]
    assert "free" in lines["staging"] and "not installed" in lines["gke"]


def test_status_with_credentials_that_may_not_read_the_release_shows_the_rest(cli, fleet):
    """A read-only role without Secrets (Kubernetes' own `view`) cannot read helm's release
    history: that column says so and the workloads and lock are still shown (exit 1)."""
    assert cli("deploy", "staging", "--timeout", "60", "--skip-smoke").returncode == 0
    fleet.faults.fail(r"^/api/v1/namespaces/staging/secrets(\?|$)", 403, methods=("GET",))
    status = cli("status", "staging")
    assert status.returncode == 1, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("staging"))
    assert "forbidden (HTTP 403)" in row and "unreachable" not in row, row
    assert "free" in row and "13/13" in row, row
    assert "error: staging: cannot read release: " in status.stderr
    assert 'secrets is forbidden: User "test" cannot list resource "secrets"' in status.stderr


def test_status_does_not_wait_for_an_api_server_that_never_answers(cli, fleet):
    """helm has no request timeout: a cluster that accepts connections and never answers
    held `status` (every member's row) for as long as helm's five minutes. Each helm read
    now has --timeout seconds; the other members are still shown."""
    import time

    fleet.faults.slow(r"/namespaces/staging/secrets\?labelSelector=", 30)
    started = time.monotonic()
    status = cli("status", "staging", "gke", "--timeout", "2")
    assert time.monotonic() - started < 20
    assert status.returncode == 1, status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[2:]}
    assert "unreachable" in rows["staging"] and "not installed" in rows["gke"], status.stdout
    assert "staging: helm history timed out after 2s" in status.stderr, status.stderr
    # what made the exit 1 is an error line, not a warning
    assert [line for line in status.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in status.stderr.splitlines() if "staging: helm history timed out" in line]
    assert "warning:" not in status.stderr, status.stderr
    assert cli("status", "gke", "--timeout", "0").returncode == 2


def test_rotated_secret_is_masked_in_diff_and_report(cli, fleet, repo, env, tmp_path):
    old, new = "old-rotated-secret-1234", "new-rotated-secret-5678"

    def secrets_with(value):
        write_secrets(repo, "secrets/staging.yaml",
                      "binderhub:\n  jupyterhub:\n    hub:\n      extraEnv:\n"
                      f"        TOKEN: {value}\n", env)

    secrets_with(old)
    assert cli("deploy", "staging", "--timeout", "60").returncode == 0
    secrets_with(new)
    report = tmp_path / "report.json"
    for result in (cli("diff", "staging"),
                   cli("deploy", "staging", "--timeout", "60", "--report", report)):
        assert result.returncode == 0, result.stderr
        for text in (result.stdout, result.stderr, report.read_text() if report.exists() else ""):
            assert old not in text and new not in text
    assert _report(report)["staging"]["outcome"] == "deployed"


def test_a_cluster_without_the_cert_manager_crds_fails_before_helm(cli, fleet, repo, tmp_path):
    # a second member's cluster where cert-manager was never installed
    with KubeAPI("1.34.2", rollout_delay=0.2) as bare:
        config = bare.kubeconfig(tmp_path / "bare.kubeconfig")
        result = cli("deploy", "staging", "--kubeconfig", config, "--timeout", "60",
                     "--skip-smoke")
        assert result.returncode == 1
        assert "does not serve ClusterIssuer (cert-manager.io/v1)" in result.stderr
        assert "install cert-manager" in result.stderr and "nothing was changed" in \
            result.stderr
        assert "--component cert-manager" in result.stderr   # how, with this deployer
        assert "helm upgrade" not in result.stderr and "rollback" not in result.stderr.lower()
        assert bare.object("leases", "staging", "deployer-lock", "coordination.k8s.io") is None
        assert _history(bare, "staging", "staging") == []


def test_kinds_a_chart_ships_crds_for_pass_the_preflight(cli, fleet, repo):
    # a chart that ships a CRD in crds/ (as the real traefik chart does) and uses it
    (repo / "mybinder" / "crds").mkdir()
    (repo / "mybinder" / "crds" / "middlewares.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "middlewares.traefik.io"},
        "spec": {"group": "traefik.io", "scope": "Namespaced",
                 "names": {"kind": "Middleware", "plural": "middlewares",
                           "singular": "middleware", "listKind": "MiddlewareList"},
                 "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True}}}]}}))
    (repo / "mybinder" / "templates" / "middleware.yaml").write_text(
        "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: headers\n"
        "  namespace: {{ .Release.Namespace }}\nspec:\n  headers: {}\n")
    result = cli("deploy", "staging", "--timeout", "60", "--skip-smoke")
    assert "does not serve" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert fleet.object("middlewares", "staging", "headers", "traefik.io") is not None


@helm_agnostic
def test_a_discovery_outage_is_retried_then_named_not_taken_for_a_missing_kind(
        cli, fleet, repo):
    fleet.api.faults.fail(r"^/apis/cert-manager\.io/v1$", 503)
    result = cli("deploy", "staging", "--timeout", "60", "--skip-smoke")
    assert result.returncode == 1
    assert "discovery of cert-manager.io/v1: HTTP 503" in result.stderr
    assert "does not serve" not in result.stderr


def test_validation_warnings_are_shown_by_deploy_and_stop_nothing(cli, fleet, repo):
    path = repo / "mybinder/templates/static/deployment.yaml"
    path.write_text(path.read_text().replace("replicas: {{ $st.replicas }}",
                                             "replicas: {{ $st.replicas }}\n  replicas: 3"))
    result = cli("deploy", "staging", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert ("warning: staging: Deployment/static (mybinder/templates/static/deployment.yaml): "
            "spec.replicas: this key is written twice in one map") in result.stderr
    assert fleet.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3
