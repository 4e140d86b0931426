"""The kube adapter against the Kubernetes API double: errors as KubeError, and exec
credential plugins run with the workspace's environment, not the process's."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from deployer.adapters.kube import Kube, KubeError, NotFound
from deployer.console import Console
from deployer.errors import DeployError
from tests.fakes.kube_api import KubeAPI

TOKEN = "exec-plugin-token-5f2b9c"


@pytest.fixture
def token_api():
    with KubeAPI("1.34.2", token=TOKEN) as cluster:
        yield cluster


def _exec_kubeconfig(tmp_path: Path, cluster: KubeAPI, plugin: Path) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "gke",
        "clusters": [{"name": "c", "cluster": {"server": cluster.url}}],
        "contexts": [{"name": "gke", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin),
            "args": ["--cluster", "prod"], "env": [{"name": "PLUGIN_MODE", "value": "ci"}],
            "interactiveMode": "Never"}}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _plugin(tmp_path: Path) -> tuple[Path, Path]:
    seen = tmp_path / "plugin-env.json"
    plugin = tmp_path / "fake-auth-plugin"
    plugin.write_text(f"""#!{sys.executable}
import json, os, sys
json.dump({{"env": dict(os.environ), "argv": sys.argv[1:]}}, open({str(seen)!r}, "w"))
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1beta1",
                  "kind": "ExecCredential", "status": {{"token": {TOKEN!r}}}}}))
""")
    plugin.chmod(0o755)
    return plugin, seen


def test_exec_plugin_runs_with_the_workspace_env_not_the_process_env(tmp_path, token_api,
                                                                    monkeypatch):
    monkeypatch.setenv("DEPLOYER_LEAKED_FROM_SHELL", "yes")
    plugin, seen = _plugin(tmp_path)
    kubeconfig = _exec_kubeconfig(tmp_path, token_api, plugin)
    ws_env = {"PATH": os.defpath, "HOME": str(tmp_path), "CLOUDSDK_CONFIG": "/ws/gcloud"}
    console = Console()
    kube = Kube.from_kubeconfig(kubeconfig, env=ws_env, console=console)
    try:
        assert kube.read_lease("default", "nothing") is None   # authenticated: 404, not 401
    finally:
        kube.close()
    got = json.loads(seen.read_text())
    assert got["argv"] == ["--cluster", "prod"]
    assert got["env"]["CLOUDSDK_CONFIG"] == "/ws/gcloud" and got["env"]["PLUGIN_MODE"] == "ci"
    assert "DEPLOYER_LEAKED_FROM_SHELL" not in got["env"]
    assert json.loads(got["env"]["KUBERNETES_EXEC_INFO"])["kind"] == "ExecCredential"
    assert console.redact(f"Bearer {TOKEN}") == "Bearer ***", "the token is a secret"


def test_a_failing_exec_plugin_is_one_clear_error(tmp_path, token_api):
    plugin = tmp_path / "broken-plugin"
    plugin.write_text("#!/bin/sh\necho 'ERROR: gcloud auth login needed' >&2\nexit 1\n")
    plugin.chmod(0o755)
    with pytest.raises(DeployError) as info:
        Kube.from_kubeconfig(_exec_kubeconfig(tmp_path, token_api, plugin),
                             env={"PATH": os.defpath})
    assert "credential plugin broken-plugin failed (exit 1): ERROR: gcloud auth login needed" \
        in str(info.value)


def test_api_errors_are_kube_errors(kubeconfig, kube_api):
    kube = Kube.from_kubeconfig(kubeconfig)
    try:
        with pytest.raises(NotFound):
            kube.read_workload("Deployment", "nowhere", "hub")
        kube_api.faults.fail(r"/leases/", 403, times=1)
        with pytest.raises(KubeError) as info:
            kube.read_lease("ns", "deployer-lock")
        assert info.value.forbidden and not info.value.transient
        kube_api.go_away()
        with pytest.raises(KubeError) as info:
            kube.list_workloads("ns")
        assert info.value.status is None and info.value.transient
    finally:
        kube.close()


def test_an_api_server_that_does_not_answer_is_named_with_the_reason(kubeconfig, kube_api):
    kube = Kube.from_kubeconfig(kubeconfig)
    try:
        kube_api.go_away()  # nothing listens on its port any more
        for call in (lambda: kube.read_lease("ns", "deployer-lock"),
                     lambda: kube.read_workload("Deployment", "ns", "hub"),
                     lambda: kube.served_kinds("apps/v1")):
            with pytest.raises(KubeError) as info:
                call()
            assert info.value.message == \
                f"cannot reach the API server at {kube_api.url}: connection refused"
            assert info.value.status is None and info.value.transient
    finally:
        kube.close()


def test_an_unresolvable_api_server_says_so(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": "https://api.binder.invalid:6443"}}],
        "users": [{"name": "t", "user": {"token": "x"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}))
    with Kube.from_kubeconfig(path) as kube:
        with pytest.raises(KubeError) as info:
            kube.read_lease("ns", "deployer-lock", timeout=2)
    message = info.value.message
    assert message.startswith("cannot reach the API server at https://api.binder.invalid:6443: ")
    assert "HTTPSConnectionPool" not in message and "Caused by" not in message
