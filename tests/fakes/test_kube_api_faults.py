"""Fault injection: what the clients see is what a real, failing server would send."""
import json
import time

import pytest


def test_5xx_on_chosen_paths_is_a_status_object(k8s_client, kube_api):
    from kubernetes.client.rest import ApiException

    client, api = k8s_client
    apps = client.AppsV1Api(api)
    kube_api.faults.fail(r"/apis/apps/v1/namespaces/default/deployments", 503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            apps.list_namespaced_deployment("default")
        assert info.value.status == 503
        assert json.loads(info.value.body)["reason"] == "ServiceUnavailable"
    assert apps.list_namespaced_deployment("default").items == []  # the fault was used up
    # other paths were never affected
    assert client.CoreV1Api(api).list_namespace().items


def test_kubectl_reports_server_errors(kubectl, kube_api):
    kube_api.faults.fail(r"/api/v1/namespaces/default/configmaps", 500)
    result = kubectl("get", "configmaps", "-n", "default", check=False)
    assert result.returncode != 0
    assert "injected fault" in result.stderr or "InternalError" in result.stderr


def test_an_injected_403_is_worded_as_rbac_words_it(kubectl, kube_api):
    kube_api.faults.fail(r"/api/v1/namespaces/default/secrets", 403)
    result = kubectl("get", "secrets", "-n", "default", check=False)
    assert result.returncode != 0
    assert 'secrets is forbidden: User "test" cannot list resource "secrets" in API group ""' \
        ' in the namespace "default"' in result.stderr, result.stderr


def test_slow_responses_hit_client_timeouts(k8s_client, kube_api):
    import urllib3

    client, api = k8s_client
    core = client.CoreV1Api(api)
    # one slow answer: the client times out, retries, and the retry succeeds
    kube_api.faults.slow(r"/api/v1/namespaces$", 1.0, times=1)
    assert core.list_namespace(_request_timeout=0.3).items
    assert sum(1 for m, p in kube_api.requests if p.startswith("/api/v1/namespaces")
               and m == "GET") == 2
    # a server that stays slow: every retry times out and the caller gets the error
    kube_api.faults.slow(r"/api/v1/namespaces$", 1.0)
    start = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        core.list_namespace(_request_timeout=0.2)
    assert isinstance(info.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert time.monotonic() - start < 3
    kube_api.faults.clear()
    time.sleep(1.1)  # let the slowed handlers finish before the server stops


def test_conflict_on_a_chosen_object(kubectl, kube_api):
    kubectl("create", "configmap", "x", "-n", "default", "--from-literal=a=1")
    kube_api.faults.conflict("configmaps", "default", "x")
    result = kubectl("label", "configmap", "x", "-n", "default", "team=ops", check=False)
    assert result.returncode != 0 and "the object has been modified" in result.stderr
    kubectl("label", "configmap", "x", "-n", "default", "team=ops")


def test_server_going_away_and_coming_back(k8s_client, kube_api):
    import urllib3

    client, api = k8s_client
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="kept"), data={"a": "1"}))
    kube_api.go_away()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_config_map("default", _request_timeout=2)
    kube_api.come_back()
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["kept"]


def test_watch_is_cut_when_the_server_goes_away(k8s_client, kube_api):
    import threading

    from kubernetes import watch

    client, api = k8s_client
    core = client.CoreV1Api(api)
    ended = {}

    def follow():
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                          timeout_seconds=30):
                pass
            ended["how"] = "stream ended"
        except Exception as exc:  # noqa: BLE001 - any transport error shows the cut
            ended["how"] = type(exc).__name__

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.5)
    kube_api.go_away()
    thread.join(timeout=10)
    assert not thread.is_alive() and ended["how"]


def test_rbac_names_need_only_be_path_segments(k8s_client):
    """As the real server (ValidateRBACName): RBAC objects may be named with colons (the
    cert-manager chart's `cert-manager:leaderelection`), other kinds need DNS subdomains."""
    from kubernetes.client.rest import ApiException

    client, api = k8s_client
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    rule = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]
    rbac.create_namespaced_role("default", {"metadata": {"name": "cert-manager:leaderelection"},
                                            "rules": rule})
    rbac.create_cluster_role({"metadata": {"name": "cert-manager-controller:Issuers_1"},
                              "rules": rule})
    rbac.create_namespaced_role_binding("default", {
        "metadata": {"name": "cert-manager:leaderelection"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "cert-manager:leaderelection"},
        "subjects": [{"kind": "ServiceAccount", "name": "cert-manager",
                      "namespace": "default"}]})
    assert rbac.read_namespaced_role("cert-manager:leaderelection", "default").rules
    assert rbac.read_cluster_role("cert-manager-controller:Issuers_1").metadata.name
    rbac.delete_namespaced_role_binding("cert-manager:leaderelection", "default")
    for name, why in (("..", "may not be '..'"), ("a%b", "may not contain '%'"),
                      ("a/b%c", "may not contain '/'; may not contain '%'")):
        with pytest.raises(ApiException) as info:
            rbac.create_cluster_role({"metadata": {"name": name}, "rules": rule})
        assert info.value.status == 422
        assert why in json.loads(info.value.body)["message"]
    with pytest.raises(ApiException) as info:   # not an RBAC kind: still an RFC 1123 name
        core.create_namespaced_config_map("default", {"metadata": {"name": "a:b"}})
    assert info.value.status == 422 and "RFC 1123" in json.loads(info.value.body)["message"]
