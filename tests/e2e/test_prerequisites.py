"""Prerequisite releases end to end: the cert-manager chart (a stand-in of jetstack's, served
by the stand-in chart repository) deployed per member as its own helm release by the real
CLI and helm against an empty Kubernetes API double, before the federation's chart."""
import pytest
import yaml

from tests.e2e.test_deploy import _history, _report
from tests.fakes.kube_api import KubeAPI
from tests.support import write_secrets

MEMBER = "staging"


@pytest.fixture
def bare(repo, env, tmp_path):
    """staging on an empty cluster (no cert-manager, no CRDs), which gets the cert-manager
    prerequisite at v1.19.5; its public checks are not run (--skip-smoke)."""
    with KubeAPI("1.34.2", rollout_delay=0.2) as cluster:
        path = repo / "config/federation.yaml"
        data = yaml.safe_load(path.read_text())
        data["prerequisites"]["cert-manager"]["members"] = [MEMBER]
        data["prerequisites"]["cert-manager"]["version"] = "v1.19.5"
        member = data["members"][MEMBER]
        member["cluster"] = {"provider": "kubeconfig",
                             "kubeconfig": f"secrets/kubeconfigs/{MEMBER}.yaml",
                             "context": "test"}
        member["domains"].pop("federation", None)
        plain = cluster.kubeconfig(tmp_path / "plain.kubeconfig")
        write_secrets(repo, f"secrets/kubeconfigs/{MEMBER}.yaml", plain.read_text(), env)
        plain.unlink()
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        yield cluster


def _set_version(repo, version):
    path = repo / "config/federation.yaml"
    data = yaml.safe_load(path.read_text())
    data["prerequisites"]["cert-manager"]["version"] = version
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _writes(cluster, start=0):
    return [(m, p) for m, p in cluster.requests[start:]
            if m in ("POST", "PUT", "PATCH", "DELETE")]


def test_component_installs_cert_manager_then_the_chart_passes_preflight(cli, bare, repo,
                                                                         tmp_path):
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60",
                 "--report", report)
    assert result.returncode == 0, result.stderr
    done = _report(report)[MEMBER]
    assert (done["outcome"], done["revision_before"], done["revision_after"]) == (
        "deployed", None, 1)
    # its own release, in its own namespace; the chart's release was not touched
    assert [r[:2] for r in _history(bare, "cert-manager", "cert-manager")] == [(1, "deployed")]
    assert _history(bare, "staging", "staging") == []
    # the CRDs are served now, and the workloads rolled out with release-prefixed names
    assert bare.object("customresourcedefinitions", "", "clusterissuers.cert-manager.io",
                       "apiextensions.k8s.io") is not None
    assert "ClusterIssuer" in {t.kind for t in bare.api.registry.in_group_version(
        "cert-manager.io", "v1")}
    for name in ("cert-manager", "cert-manager-webhook", "cert-manager-cainjector"):
        deployment = bare.object("deployments", "cert-manager", name, "apps")
        assert deployment["status"]["readyReplicas"] == 1, name
    assert "upgrade --install cert-manager" in result.stderr + result.stdout
    # the lock was the member's own, and it was released
    assert bare.object("leases", "staging", "deployer-lock", "coordination.k8s.io") is None

    result = cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke", "--report", report)
    assert result.returncode == 0, result.stderr
    assert "does not serve" not in result.stderr
    done = _report(report)[MEMBER]
    assert done["outcome"] == "deployed" and done["revision_after"] == 1
    assert bare.object("clusterissuers", "", "letsencrypt-prod", "cert-manager.io")
    # nothing changed in cert-manager: no upgrade, still revision 1
    assert "cert-manager: no changes; upgrade skipped" in result.stdout + result.stderr
    assert [r[0] for r in _history(bare, "cert-manager", "cert-manager")] == [1]


def test_a_normal_deploy_installs_then_upgrades_cert_manager_only_when_it_changed(
        cli, bare, repo, tmp_path):
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke", "--report", report)
    assert result.returncode == 0, result.stderr
    done = _report(report)[MEMBER]
    assert (done["outcome"], done["revision_after"]) == ("deployed", 1)
    stages = list(done["stages"])
    assert stages.index("lock") < stages.index("cert-manager: upgrade") < \
        stages.index("preflight") < stages.index("upgrade")
    assert [r[:2] for r in _history(bare, "cert-manager", "cert-manager")] == [(1, "deployed")]

    # the same again: neither release is upgraded, and nothing is written but the lock
    start = len(bare.requests)
    result = cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke", "--report", report)
    assert result.returncode == 0, result.stderr
    assert _report(report)[MEMBER]["outcome"] == "unchanged"
    assert [r[0] for r in _history(bare, "cert-manager", "cert-manager")] == [1]
    written = {p.split("?")[0] for _, p in _writes(bare, start)}
    assert written and all("/leases" in p or "/configmaps" in p for p in written), written

    # values changed (config/cert-manager/staging.yaml): upgraded first, then the chart
    (repo / "config/cert-manager/staging.yaml").write_text("webhook:\n  timeoutSeconds: 10\n")
    result = cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke", "--report", report)
    assert result.returncode == 0, result.stderr
    assert "ValidatingWebhookConfiguration/cert-manager-webhook" in result.stdout
    done = _report(report)[MEMBER]
    assert (done["outcome"], done["revision_before"], done["revision_after"]) == (
        "deployed", 1, 1)                     # the chart unchanged, cert-manager upgraded
    assert "cert-manager: revision 1 -> 2 (cert-manager v1.19.5)" in done["notes"]
    assert [r[0] for r in _history(bare, "cert-manager", "cert-manager")] == [1, 2]
    hook = bare.object("validatingwebhookconfigurations", "", "cert-manager-webhook",
                       "admissionregistration.k8s.io")
    assert hook["webhooks"][0]["timeoutSeconds"] == 10

    # the pinned version bumped: upgraded to the new chart
    _set_version(repo, "v1.19.6")
    result = cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke", "--report", report)
    assert result.returncode == 0, result.stderr
    history = _history(bare, "cert-manager", "cert-manager")
    assert [r[:2] for r in history][-1] == (3, "deployed")
    deployment = bare.object("deployments", "cert-manager", "cert-manager", "apps")
    assert deployment["metadata"]["labels"]["helm.sh/chart"] == "cert-manager-v1.19.6"


def test_a_failing_cert_manager_upgrade_is_rolled_back_and_stops_the_deploy(
        cli, bare, repo, tmp_path):
    assert cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke").returncode == 0
    chart_before = _history(bare, "staging", "staging")
    # the new version's webhook never becomes ready (its pods crash, say)
    bare.faults.never_ready(
        "deployments", "cert-manager", "cert-manager-webhook",
        when=lambda obj: obj["metadata"]["labels"].get("helm.sh/chart") ==
        "cert-manager-v1.19.6")
    _set_version(repo, "v1.19.6")
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")   # a chart change too
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--timeout", "3", "--skip-smoke", "--report", report)
    assert result.returncode == 1
    done = _report(report)[MEMBER]
    assert done["outcome"] == "rolled back"
    assert done["failed_stage"] == "cert-manager: wait"
    assert done["rollback"]["to"] == 1 and done["rollback"]["revision"] == 3
    assert "Deployment/cert-manager-webhook" in result.stderr
    assert "restored release cert-manager revision 1 (now revision 3)" in result.stderr
    assert "the chart was not deployed" in result.stderr
    # cert-manager back on v1.19.5 (revision 3 = revision 1); the chart's release untouched
    history = _history(bare, "cert-manager", "cert-manager")
    assert [r[:2] for r in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert "Rollback to 1" in history[2][2]
    webhook = bare.object("deployments", "cert-manager", "cert-manager-webhook", "apps")
    assert webhook["metadata"]["labels"]["helm.sh/chart"] == "cert-manager-v1.19.5"
    assert _history(bare, "staging", "staging") == chart_before
    assert bare.object("deployments", "staging", "static", "apps")["spec"]["replicas"] != 3
    assert bare.object("leases", "staging", "deployer-lock", "coordination.k8s.io") is None


def test_the_lock_is_held_while_cert_manager_deploys(cli, bare, repo):
    holder = {}

    def check(obj):
        lease = bare.object("leases", "staging", "deployer-lock", "coordination.k8s.io")
        holder.setdefault("seen", (lease or {}).get("spec", {}).get("holderIdentity"))
        return False

    bare.faults.never_ready("deployments", "cert-manager", "cert-manager", when=check)
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert holder.get("seen"), "the member's deploy lock was held while cert-manager rolled out"


def test_unknown_component_and_bad_values_change_nothing(cli, bare, repo):
    result = cli("deploy", MEMBER, "--component", "cert-manger")
    assert result.returncode == 2
    assert "--component cert-manger: member staging has no such prerequisite" in result.stderr
    assert "cert-manager" in result.stderr
    (repo / "config/cert-manager/common.yaml").write_text("crds:\n  enabled: true\n"
                                                          "installCrds: true\n")
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60")
    assert result.returncode == 2
    assert "config/cert-manager/common.yaml" in result.stderr and "installCrds" in result.stderr
    assert not _writes(bare)


def test_a_dry_run_on_an_empty_cluster_shows_both_releases_and_writes_nothing(cli, bare):
    result = cli("deploy", MEMBER, "--dry-run")
    assert result.returncode == 0, result.stderr
    # cert-manager's CRDs would be installed first, so the chart's ClusterIssuer passes
    assert "does not serve" not in result.stderr
    assert "cert-manager v1.19.5 (release cert-manager in cert-manager):" in result.stdout
    assert "added    CustomResourceDefinition/clusterissuers.cert-manager.io" in result.stdout
    assert "added    Deployment/cert-manager-webhook" in result.stdout
    assert "added    Deployment/hub" in result.stdout
    assert not _writes(bare)


def test_validate_renders_the_prerequisites_of_the_members_that_get_them(cli, repo):
    result = cli("validate", "uni-lab", "staging")
    assert result.returncode == 0, result.stderr
    assert "helm template cert-manager" in result.stderr + result.stdout
    (repo / "config/cert-manager/uni-lab.yaml").write_text("webhook: {}\ninstallCrds: true\n")
    result = cli("validate", "uni-lab", "staging")
    assert result.returncode != 0
    line = next(x for x in result.stderr.splitlines() if "installCrds" in x)
    assert "uni-lab" in line and "config/cert-manager/uni-lab.yaml:2" in line, line
    assert "staging" not in line


def test_status_shows_the_prerequisite_release(cli, bare):
    result = cli("status", MEMBER)
    assert "cert-manager not installed" in result.stdout, result.stdout
    assert cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60").returncode == 0
    result = cli("status", MEMBER)
    assert "cert-manager 1 deployed (cert-manager-v1.19.5)" in result.stdout, result.stdout


def test_status_with_an_unreadable_prerequisite_release_exits_1(cli, bare):
    """A prerequisite release the credentials may not read is an unread column like any
    other: marked in its column, named on stderr, exit 1; the rest is still shown."""
    assert cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60").returncode == 0
    bare.faults.fail(r"^/api/v1/namespaces/cert-manager/secrets(\?|$)", 403, methods=("GET",))
    result = cli("status", MEMBER)
    assert result.returncode == 1, (result.stdout, result.stderr)
    row = next(line for line in result.stdout.splitlines() if line.startswith(MEMBER))
    assert "cert-manager unreadable (" in row and "not installed" in row, row
    assert f"error: {MEMBER}: cannot read prerequisite cert-manager: " in result.stderr, \
        result.stderr


def test_component_with_a_role_keeps_the_members_that_get_it(cli, repo):
    result = cli("deploy", "production", "--component", "cert-manager", "--dry-run")
    # only the k3s members get cert-manager in the example (their clusters are unreachable
    # here: what matters is that gke and aws are not tried)
    assert "gke" not in result.stdout + result.stderr.replace("gke-gcloud", "")
    assert "hetzner-fsn" in result.stdout + result.stderr
    result = cli("deploy", "gke", "--component", "cert-manager")
    assert result.returncode == 2
    assert "member gke has no such prerequisite" in result.stderr
    result = cli("deploy", "--all", "--component", "traefik")
    assert result.returncode == 2 and "none of the chosen members gets it" in result.stderr


def test_a_prerequisite_object_the_kubernetes_schema_rejects_stops_deploy_before_connecting(
        cli, bare, repo):
    # helm's values schema lets it through; the Kubernetes schema of the webhook does not
    (repo / "config/cert-manager/staging.yaml").write_text("webhook:\n  timeoutSeconds: ten\n")
    assert cli("validate", MEMBER).returncode == 1
    for args in (("--component", "cert-manager"), ("--skip-smoke",)):
        result = cli("deploy", MEMBER, *args, "--timeout", "60")
        assert result.returncode == 2, result.stderr
        line = next(x for x in result.stderr.splitlines() if "timeoutSeconds" in x)
        assert "cert-manager release:" in line and "config/cert-manager/staging.yaml" in line
        assert "nothing was changed on the cluster" in result.stderr
    assert bare.requests == []    # nothing connected, not even to read


def test_a_lock_lost_while_cert_manager_fails_stops_at_once_without_rolling_back(
        cli, bare, repo, tmp_path):
    import time

    assert cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60").returncode == 0

    def taken_over(obj):
        # while the new webhook fails to become ready, another deploy takes the lock over
        if obj["metadata"]["labels"].get("helm.sh/chart") != "cert-manager-v1.19.6":
            return False
        lease = bare.api.store.objects.get(("coordination.k8s.io", "leases"), {}).get(
            ("staging", "deployer-lock"))
        if lease is not None:
            lease["spec"]["holderIdentity"] = "https://ci.example/run/43"
        return True

    bare.faults.never_ready("deployments", "cert-manager", "cert-manager-webhook",
                            when=taken_over)
    _set_version(repo, "v1.19.6")
    report = tmp_path / "report.json"
    start = time.monotonic()
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "3",
                 "--report", report)
    assert result.returncode == 1
    assert time.monotonic() - start < 30, "not retried for the rollback window"
    assert "lost the deploy lock" in result.stderr
    assert "release cert-manager was not rolled back" in result.stderr
    assert "retrying" not in result.stderr
    assert _report(report)[MEMBER]["outcome"] == "rollback failed"
    # nothing changed after the lock was lost: the failed revision stays, no rollback
    assert [r[0] for r in _history(bare, "cert-manager", "cert-manager")] == [1, 2]


def _crds(cluster):
    with cluster.api.store.lock:
        return sorted(name for _, name in cluster.api.store.objects.get(
            ("apiextensions.k8s.io", "customresourcedefinitions"), {}))


@pytest.mark.parametrize("in_use", [False, True])
def test_a_failed_first_install_removes_the_crds_it_created_unless_in_use(
        cli, bare, repo, tmp_path, in_use):
    def bad(obj):
        if in_use:   # someone created a ClusterIssuer meanwhile: its CRD must stay
            with bare.api.store.lock:
                bare.api.store.objects.setdefault(("cert-manager.io", "clusterissuers"), {})[
                    ("", "letsencrypt")] = {
                    "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                    "metadata": {"name": "letsencrypt", "resourceVersion": "1", "uid": "u1"},
                    "spec": {}}
        return True

    bare.faults.never_ready("deployments", "cert-manager", "cert-manager-webhook", when=bad)
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "3",
                 "--report", report)
    assert result.returncode == 1
    done = _report(report)[MEMBER]
    assert done["rollback"]["action"] == "uninstalled"
    assert _history(bare, "cert-manager", "cert-manager") == []
    detail = done["rollback"]["detail"]
    assert "namespace cert-manager left in place" in detail and detail in result.stderr
    crds = _crds(bare)
    if in_use:
        assert crds == ["clusterissuers.cert-manager.io"]
        assert "CRDs kept (in use or not its own): clusterissuers.cert-manager.io" in detail
        assert "unused CRD(s) it created" in detail
    else:
        assert crds == [] and "unused CRD(s) it created" in detail and "kept" not in detail


def _crd_uids(cluster):
    with cluster.api.store.lock:
        return {name: obj["metadata"]["uid"] for (_, name), obj in cluster.api.store.objects.get(
            ("apiextensions.k8s.io", "customresourcedefinitions"), {}).items()}


def test_a_failed_first_install_keeps_the_crds_an_earlier_install_left(
        cli, bare, repo, env, tmp_path):
    import subprocess

    from tests.support import HELM_BINARY

    # an earlier cert-manager was installed, then uninstalled: its CRDs stay (resource-policy
    # keep), still annotated with this release; one Issuer uses them
    assert cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60").returncode == 0
    kubeconfig = bare.kubeconfig(tmp_path / "helm.kubeconfig")
    subprocess.run([str(HELM_BINARY), "uninstall", "cert-manager", "-n", "cert-manager",
                    "--kubeconfig", str(kubeconfig)], env=env, check=True, capture_output=True,
                   timeout=120)
    assert _history(bare, "cert-manager", "cert-manager") == []
    earlier = _crd_uids(bare)
    assert len(earlier) == 6
    with bare.api.store.lock:
        bare.api.store.objects.setdefault(("cert-manager.io", "issuers"), {})[
            ("staging", "local")] = {
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": "local", "namespace": "staging", "resourceVersion": "1",
                         "uid": "u1"}, "spec": {"selfSigned": {}}}
    # the install adopts them, then fails
    bare.faults.never_ready("deployments", "cert-manager", "cert-manager-webhook")
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "3",
                 "--report", report)
    assert result.returncode == 1
    done = _report(report)[MEMBER]
    assert (done["outcome"], done["rollback"]["action"]) == ("rolled back", "uninstalled")
    assert _crd_uids(bare) == earlier, "CRDs that existed before the run were deleted"
    detail = done["rollback"]["detail"]
    assert "deleted" not in detail, detail
    assert f"CRDs there before this run kept: {', '.join(sorted(earlier))}" in detail


def test_a_crd_the_cleanup_cannot_check_is_kept_and_the_rollback_succeeds(
        cli, bare, repo, tmp_path):
    # the deployer may not list ClusterIssuers (403): that CRD is kept, the others go
    bare.faults.fail(r"^/apis/cert-manager\.io/v1/clusterissuers", 403, methods=("GET",),
                     user_agent="OpenAPI-Generator")
    bare.faults.never_ready("deployments", "cert-manager", "cert-manager-webhook")
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "3",
                 "--report", report)
    assert result.returncode == 1
    assert "failed too" not in result.stderr and "retrying" not in result.stderr
    done = _report(report)[MEMBER]
    assert (done["outcome"], done["rollback"]["action"]) == ("rolled back", "uninstalled")
    detail = done["rollback"]["detail"]
    assert "CRD clusterissuers.cert-manager.io kept (could not check: " in detail, detail
    assert "deleted the 5 unused CRD(s) it created" in detail, detail
    assert _crds(bare) == ["clusterissuers.cert-manager.io"]


def test_a_second_signal_stops_a_retried_cert_manager_rollback_at_once(
        cli, cli_command, bare, repo, tmp_path):
    import signal
    import time

    from tests.e2e.test_interrupts import _start, _wait_for

    assert cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60").returncode == 0
    broken = []

    def bad(obj):
        if obj["metadata"]["labels"].get("helm.sh/chart") != "cert-manager-v1.19.6":
            return False
        if not broken:   # from now on helm cannot read its releases: the rollback fails
            broken.append(True)
            bare.faults.fail(r"/secrets", 503, user_agent="[Hh]elm")
        return True

    bare.faults.never_ready("deployments", "cert-manager", "cert-manager-webhook", when=bad)
    _set_version(repo, "v1.19.6")
    proc, lines, _, reader = _start(cli_command, repo, tmp_path, "deploy", MEMBER,
                                    "--component", "cert-manager", "--timeout", "3")
    # the third attempt failed: the pause before the fourth is 8 s
    _wait_for(lambda: sum("rollback attempt failed" in line for line in lines) >= 3, 90,
              "the third rollback attempt to fail")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.wait(timeout=60)
    elapsed = time.monotonic() - sent
    reader.join(5)
    stderr = "".join(lines)
    assert elapsed < 4, f"the pause between attempts ignored the second signal ({elapsed:.1f}s)"
    assert "rollback of release cert-manager was stopped" in stderr, stderr[-2000:]


def test_a_failed_chart_upgrade_says_the_upgraded_cert_manager_stays(cli, bare, repo,
                                                                      tmp_path):
    assert cli("deploy", MEMBER, "--timeout", "60", "--skip-smoke").returncode == 0
    _set_version(repo, "v1.19.6")
    path = repo / "config/staging.yaml"
    path.write_text(path.read_text() + "static:\n  replicas: 3\n")
    bare.faults.never_ready("deployments", "staging", "static",
                            when=lambda obj: obj["spec"]["replicas"] == 3)
    report = tmp_path / "report.json"
    result = cli("deploy", MEMBER, "--timeout", "3", "--skip-smoke", "--report", report)
    assert result.returncode == 1
    stays = "cert-manager stays at revision 2 (upgraded by this run; not rolled back)"
    line = next(x for x in result.stderr.splitlines() if "restored revision 1" in x)
    assert stays in line, line
    done = _report(report)[MEMBER]
    assert done["outcome"] == "rolled back" and stays in done["notes"]
    assert [r[:2] for r in _history(bare, "cert-manager", "cert-manager")][-1] == (2, "deployed")


def test_a_prerequisite_schema_problem_is_printed_once(cli, bare, repo):
    path = repo / "config/cert-manager/staging.yaml"
    # one bad value, rendered into two webhook configurations: each problem once, then a sum
    path.write_text("webhook:\n  timeoutSeconds: ten\n")
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60")
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if "timeoutSeconds" in x]
    assert len(lines) == 2 and len(set(lines)) == 2, result.stderr
    assert {x.split(": ")[3].split("/")[0] for x in lines} == {
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}, lines
    assert "staging: 2 problems in the prerequisites above; nothing was changed on the " \
        "cluster" in result.stderr
    # one problem: one line, which is the error
    path.write_text("cainjector:\n  replicaCount: two\n")
    result = cli("deploy", MEMBER, "--component", "cert-manager", "--timeout", "60")
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if "replicas" in x]
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith("; nothing was changed on the cluster"), lines
    assert bare.requests == []

