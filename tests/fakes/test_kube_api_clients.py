"""The Kubernetes API test double with the real kubectl and the real kubernetes client."""
import json
import threading
import time

import pytest

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.29
"""


def test_version_and_discovery(kubectl):
    assert "Server Version: v1.34.2" in kubectl("version").stdout
    resources = kubectl("api-resources", "-o", "name").stdout.split()
    for name in ("deployments.apps", "leases.coordination.k8s.io", "priorityclasses.scheduling.k8s.io",
                 "networkpolicies.networking.k8s.io", "poddisruptionbudgets.policy",
                 "customresourcedefinitions.apiextensions.k8s.io", "secrets", "namespaces"):
        assert name in resources


def test_kubectl_apply_client_side_get_and_rollout_status(kubectl, kube_api):
    kubectl("apply", "-n", "default", "-f", "-", input=DEPLOYMENT)
    out = kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=20s").stdout
    assert 'deployment "web" successfully rolled out' in out
    table = kubectl("get", "deployments", "-n", "default").stdout
    assert "web" in table and "2/2" in table
    # an update bumps the generation; rollout status waits for the new one
    kubectl("apply", "-n", "default", "-f", "-", input=DEPLOYMENT.replace("nginx:1.29", "nginx:1.30"))
    obj = kube_api.object("deployments", "default", "web", "apps")
    assert obj["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=20s")
    assert kube_api.object("deployments", "default", "web", "apps")["status"][
        "observedGeneration"] == 2


def test_kubectl_server_side_apply_and_conflict(kubectl, kube_api):
    kubectl("apply", "--server-side", "-n", "default", "-f", "-", input=DEPLOYMENT)
    obj = kube_api.object("deployments", "default", "web", "apps")
    assert [m["manager"] for m in obj["metadata"]["managedFields"]] == ["kubectl"]
    # another manager setting the same field to another value conflicts...
    result = kubectl("apply", "--server-side", "--field-manager", "other", "-n", "default", "-f", "-",
                     input=DEPLOYMENT.replace("replicas: 2", "replicas: 5"), check=False)
    assert result.returncode != 0 and "conflict" in result.stderr.lower()
    # ...unless forced
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "other", "-n",
            "default", "-f", "-", input=DEPLOYMENT.replace("replicas: 2", "replicas: 5"))
    assert kube_api.object("deployments", "default", "web", "apps")["spec"]["replicas"] == 5


def test_kubectl_unknown_field_is_rejected_by_server_validation(kubectl):
    bad = DEPLOYMENT.replace("image: nginx:1.29", "image: nginx:1.29\n          imagePullPolcy: Always")
    result = kubectl("apply", "-n", "default", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in result.stderr \
        or "imagePullPolcy" in result.stderr


def test_client_list_with_selectors_and_status_objects(k8s_client, kube_api):
    client, api = k8s_client
    core = client.CoreV1Api(api)
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"tier": tier}), data={"k": name}))
    names = [c.metadata.name for c in core.list_namespaced_config_map(
        "default", label_selector="tier=front").items]
    assert names == ["a", "c"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        "default", label_selector="tier in (back)").items] == ["b"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        "default", field_selector="metadata.name=b").items] == ["b"]
    from kubernetes.client.rest import ApiException
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("missing", "default")
    assert info.value.status == 404
    assert json.loads(info.value.body)["reason"] == "NotFound"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="a")))
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "AlreadyExists"


def test_optimistic_concurrency_and_patches(k8s_client):
    client, api = k8s_client
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg"), data={"a": "1"}))
    stale = created.metadata.resource_version
    core.patch_namespaced_config_map("cfg", "default", {"data": {"b": "2"}})  # strategic merge
    from kubernetes.client.rest import ApiException
    created.data["a"] = "changed"
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("cfg", "default", created)  # stale resourceVersion
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "Conflict"
    current = core.read_namespaced_config_map("cfg", "default")
    assert current.data == {"a": "1", "b": "2"} and current.metadata.resource_version != stale
    core.patch_namespaced_config_map("cfg", "default", [{"op": "remove", "path": "/data/a"}])
    assert core.read_namespaced_config_map("cfg", "default").data == {"b": "2"}


def test_watch_stream_sees_changes(k8s_client):
    from kubernetes import watch

    client, api = k8s_client
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen = []

    def writer():
        time.sleep(0.3)
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="w"), data={"v": "1"}))
        core.patch_namespaced_config_map("w", "default", {"data": {"v": "2"}})
        core.delete_namespaced_config_map("w", "default")

    thread = threading.Thread(target=writer)
    thread.start()
    for event in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name,
                     (event["object"].data or {}).get("v")))
        if event["type"] == "DELETED":
            break
    thread.join()
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]


def test_lease_create_and_renew_with_conflicts(k8s_client, kube_api):
    import datetime

    client, api = k8s_client
    coord = client.CoordinationV1Api(api)
    now = datetime.datetime.now(datetime.timezone.utc)
    lease = coord.create_namespaced_lease("default", client.V1Lease(
        metadata=client.V1ObjectMeta(name="deploy-lock"),
        spec=client.V1LeaseSpec(holder_identity="ci-run-1", lease_duration_seconds=30,
                                acquire_time=now, renew_time=now)))
    # two holders read the same version; the first renewal wins, the second gets 409
    first = coord.read_namespaced_lease("deploy-lock", "default")
    second = coord.read_namespaced_lease("deploy-lock", "default")
    first.spec.renew_time = now + datetime.timedelta(seconds=5)
    coord.replace_namespaced_lease("deploy-lock", "default", first)
    second.spec.holder_identity = "laptop"
    from kubernetes.client.rest import ApiException
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("deploy-lock", "default", second)
    assert info.value.status == 409
    stored = coord.read_namespaced_lease("deploy-lock", "default")
    assert stored.spec.holder_identity == "ci-run-1"
    assert stored.spec.renew_time > lease.spec.renew_time
    # an injected conflict on a chosen object, as a racing writer would cause
    kube_api.faults.conflict("leases", "default", "deploy-lock")
    stored.spec.renew_time = now + datetime.timedelta(seconds=10)
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("deploy-lock", "default", stored)
    assert info.value.status == 409
    coord.replace_namespaced_lease("deploy-lock", "default", stored)  # the retry succeeds


def test_deployment_reads_ready_only_once_its_replica_set_is(kubectl, k8s_client):
    """As the deployment controller derives it: the first watch event in which a Deployment
    reads rolled out (what helm 4's kstatus waits for) comes after its current ReplicaSet is
    ready (what helm 3's --wait and the test after it read)."""
    from kubernetes import watch

    client, api = k8s_client
    apps = client.AppsV1Api(api)
    start = apps.list_namespaced_deployment("default").metadata.resource_version
    kubectl("apply", "-n", "default", "-f", "-", input=DEPLOYMENT)
    watching = watch.Watch()
    for event in watching.stream(apps.list_namespaced_deployment, "default",
                                 resource_version=start, timeout_seconds=10):
        deployment = event["object"]
        status = deployment.status
        if status and status.observed_generation == deployment.metadata.generation and \
                status.ready_replicas == 2:
            watching.stop()
            break
    else:
        pytest.fail("the Deployment never read ready")
    sets = apps.list_namespaced_replica_set("default").items
    assert [(rs.metadata.owner_references[0].name, rs.status.ready_replicas,
             rs.status.observed_generation == rs.metadata.generation) for rs in sets] == \
        [("web", 2, True)]
    # the ReplicaSet's last write (its ready status) came before the Deployment's
    assert int(sets[0].metadata.resource_version) < int(deployment.metadata.resource_version)
