"""The real helm v4 (server-side apply, kstatus --wait, Secret release storage) against the
Kubernetes API test double — or helm 3 (client-side three-way merge, --wait through the
Deployment's ReplicaSet) with DEPLOYER_HELM=helm3, as `make test` runs it a second time: install, upgrade, no-op, wait, timeout, rollback, history, list,
uninstall, on a small chart and on the project's mybinder chart."""
import json
import time

import pytest

CHART_YAML = "apiVersion: v2\nname: small\nversion: 0.1.0\n"
TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: small-config
data:
  greeting: {{ .Values.greeting | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: small
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: small}
  template:
    metadata:
      labels: {app: small}
    spec:
      containers:
        - name: web
          image: nginx:1.29
---
apiVersion: v1
kind: Service
metadata:
  name: small
spec:
  selector: {app: small}
  ports:
    - port: 80
"""


@pytest.fixture
def small_chart(tmp_path):
    chart = tmp_path / "small"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "values.yaml").write_text("replicas: 1\ngreeting: hello\n")
    (chart / "templates" / "all.yaml").write_text(TEMPLATE)
    return chart


def _history(helm, release="small", ns="demo"):
    return json.loads(helm("history", release, "-n", ns, "-o", "json").stdout)


def test_install_upgrade_noop_rollback_uninstall(helm, small_chart, kube_api):
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace", "--wait",
         "--timeout", "30s")
    assert kube_api.object("deployments", "demo", "small", "apps")["spec"]["replicas"] == 1
    releases = json.loads(helm("list", "-n", "demo", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [
        ("small", "1", "deployed")]
    # release storage: one Secret per revision, labelled as helm labels them
    secret = kube_api.object("secrets", "demo", "sh.helm.release.v1.small.v1")
    assert secret["metadata"]["labels"]["owner"] == "helm"
    assert secret["type"] == "helm.sh/release.v1"
    assert any("protobuf" in content_type for method, path, content_type in
               kube_api.api.content_types if method == "POST" and path.endswith("/secrets")), \
        "helm's typed Secret client sends protobuf; the double must have decoded it"

    helm("upgrade", "small", small_chart, "-n", "demo", "--set", "replicas=3", "--wait",
         "--timeout", "30s")
    deployment = kube_api.object("deployments", "demo", "small", "apps")
    assert deployment["spec"]["replicas"] == 3 and deployment["metadata"]["generation"] == 2
    assert deployment["status"]["readyReplicas"] == 3

    before = kube_api.object("deployments", "demo", "small", "apps")["metadata"]["resourceVersion"]
    helm("upgrade", "small", small_chart, "-n", "demo", "--reuse-values", "--wait",
         "--timeout", "30s")
    after = kube_api.object("deployments", "demo", "small", "apps")["metadata"]["resourceVersion"]
    assert before == after, "a no-op upgrade must not change the objects"
    assert [h["status"] for h in _history(helm)] == ["superseded", "superseded", "deployed"]

    helm("rollback", "small", "1", "-n", "demo", "--wait", "--timeout", "30s")
    assert kube_api.object("deployments", "demo", "small", "apps")["spec"]["replicas"] == 1
    history = _history(helm)
    assert [h["revision"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["status"] == "deployed" and "Rollback to 1" in history[-1]["description"]

    helm("uninstall", "small", "-n", "demo", "--wait", "--timeout", "30s")
    assert kube_api.object("deployments", "demo", "small", "apps") is None
    assert kube_api.object("secrets", "demo", "sh.helm.release.v1.small.v1") is None
    assert json.loads(helm("list", "-n", "demo", "-o", "json").stdout) == []


def test_removed_template_objects_are_deleted_on_upgrade(helm, small_chart, kube_api):
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace")
    template = small_chart / "templates" / "all.yaml"
    template.write_text(template.read_text().split("---\napiVersion: v1\nkind: Service")[0])
    helm("upgrade", "small", small_chart, "-n", "demo")
    assert kube_api.object("services", "demo", "small") is None
    assert kube_api.object("configmaps", "demo", "small-config") is not None


def test_wait_times_out_on_a_workload_that_never_becomes_ready(helm, small_chart, kube_api):
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace", "--wait",
         "--timeout", "30s")
    kube_api.faults.never_ready("deployments", "demo", "small")
    start = time.monotonic()
    result = helm("upgrade", "small", small_chart, "-n", "demo", "--set", "replicas=2",
                  "--wait", "--timeout", "3s", check=False)
    assert result.returncode != 0
    assert "context deadline exceeded" in result.stderr or "timed out" in result.stderr.lower()
    assert 3 <= time.monotonic() - start < 30
    # helm leaves the previous revision "deployed" when an upgrade fails
    assert [h["status"] for h in _history(helm)] == ["deployed", "failed"]
    # rolling back restores revision 1, which the (still never-ready) controller holds back:
    kube_api.faults.clear()
    helm("rollback", "small", "1", "-n", "demo", "--wait", "--timeout", "30s")
    assert kube_api.object("deployments", "demo", "small", "apps")["spec"]["replicas"] == 1
    assert _history(helm)[-1]["status"] == "deployed"


def test_server_going_away_mid_upgrade_strands_the_release(helm, small_chart, kube_api):
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace", "--wait",
         "--timeout", "30s")
    kube_api.faults.never_ready("deployments", "demo", "small")
    import subprocess
    import threading

    outcome = {}

    def upgrade():
        outcome["result"] = helm("upgrade", "small", small_chart, "-n", "demo", "--set",
                                 "replicas=4", "--wait", "--timeout", "5s", check=False)

    thread = threading.Thread(target=upgrade)
    thread.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # wait until helm is waiting on the rollout
        deployment = kube_api.object("deployments", "demo", "small", "apps")
        if deployment and deployment["spec"]["replicas"] == 4:
            break
        time.sleep(0.05)
    kube_api.go_away()
    thread.join(timeout=60)
    assert outcome["result"].returncode != 0
    kube_api.faults.clear()
    kube_api.come_back()
    history = _history(helm)
    assert history[-1]["status"] == "pending-upgrade", history
    del subprocess


MYBINDER_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusterissuers.cert-manager.io
spec:
  group: cert-manager.io
  scope: Cluster
  names: {kind: ClusterIssuer, plural: clusterissuers, singular: clusterissuer, listKind: ClusterIssuerList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
      subresources: {status: {}}
"""


def test_mybinder_chart_installs_and_upgrades(helm, kubectl, kube_api, workspace, chart_mirror,
                                              tmp_path):
    from deployer.stages import chart
    from deployer.adapters import helm as helm_mod
    from deployer.stages.render import member_values
    from deployer.model.yamlio import dump

    kubectl("apply", "-f", "-", input=MYBINDER_CRD)
    env = {**workspace.env, "DEPLOYER_CACHE_DIR": str(tmp_path / "cache")}
    prepared = chart.prepare(workspace, helm_mod.Helm(env, console=workspace.console, echo=False), chart_mirror)
    member = workspace.federation.member("staging")
    values_file = tmp_path / "values.yaml"
    values_file.write_text(dump(member_values(workspace, member).for_helm(prepared.defaults())))
    values_file.chmod(0o600)
    helm("upgrade", "--install", "staging", prepared.path, "-n", "staging", "--create-namespace",
         "-f", values_file, "--wait", "--timeout", "60s")
    hub = kube_api.object("deployments", "staging", "hub", "apps")
    assert hub is not None and hub["status"]["readyReplicas"] == 1
    issuer = kube_api.object("clusterissuers", "", "letsencrypt-prod", "cert-manager.io")
    assert issuer["spec"]["acme"]["email"] == "ops@example-binder.org"
    assert kube_api.object("priorityclasses", "", "binderhub-core", "scheduling.k8s.io")
    helm("upgrade", "staging", prepared.path, "-n", "staging", "-f", values_file, "--set",
         "static.replicas=3", "--wait", "--timeout", "60s")
    assert kube_api.object("deployments", "staging", "static", "apps")["spec"]["replicas"] == 3
    assert [h["status"] for h in _history(helm, "staging", "staging")] == ["superseded",
                                                                           "deployed"]


def test_deployments_get_replica_sets_and_api_defaults(helm, small_chart, kube_api):
    """What helm 3's --wait reads: the Deployment's current ReplicaSet (owned, hashed) and
    the defaulted rolling-update limits; older ReplicaSets scale to 0; all go with it."""
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace", "--wait",
         "--timeout", "30s")
    deployment = kube_api.object("deployments", "demo", "small", "apps")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}

    def owned():
        with kube_api.api.store.lock:
            sets = [obj for (ns, _), obj in
                    kube_api.api.store.objects.get(("apps", "replicasets"), {}).items()
                    if ns == "demo"]
        return {rs["metadata"]["name"]: rs for rs in sets
                if rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]}

    first = owned()
    assert len(first) == 1
    (name, rs), = first.items()
    digest = rs["metadata"]["labels"]["pod-template-hash"]
    assert name == f"small-{digest}" and rs["spec"]["replicas"] == 1
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    assert rs["status"]["readyReplicas"] == 1
    template = small_chart / "templates" / "all.yaml"
    template.write_text(template.read_text().replace("nginx:1.29", "nginx:1.30"))
    helm("upgrade", "small", small_chart, "-n", "demo", "--wait", "--timeout", "30s")
    second = owned()
    assert len(second) == 2 and second[name]["spec"]["replicas"] == 0
    helm("uninstall", "small", "-n", "demo", "--wait", "--timeout", "30s")
    deadline = time.monotonic() + 10
    while owned() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert owned() == {}, "ReplicaSets are garbage-collected with their Deployment"


def test_null_fields_are_defaulted_as_unset(helm, small_chart, kube_api):
    """The real binderhub chart renders `strategy: {rollingUpdate: null}`: the API server
    reads a null as unset and defaults it (helm 4 sends it by server-side apply)."""
    template = small_chart / "templates" / "all.yaml"
    template.write_text(template.read_text().replace(
        "spec:\n  replicas: {{ .Values.replicas }}\n",
        "spec:\n  replicas: {{ .Values.replicas }}\n  strategy:\n    rollingUpdate: null\n", 1))
    assert "rollingUpdate: null" in template.read_text()
    helm("install", "small", small_chart, "-n", "demo", "--create-namespace", "--wait",
         "--timeout", "30s")
    deployment = kube_api.object("deployments", "demo", "small", "apps")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
