"""Pytest fixtures for the Kubernetes API test double (tests/fakes/kube_api)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes.kube_api import KubeAPI

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"


@pytest.fixture
def kube_api():
    """A fresh API server on 127.0.0.1 (Kubernetes 1.34), stopped after the test."""
    with KubeAPI("1.34.2", rollout_delay=0.2) as cluster:
        yield cluster


@pytest.fixture
def kubeconfig(kube_api, tmp_path) -> Path:
    """A kubeconfig (0600) pointing at the test double."""
    return kube_api.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_env(kubeconfig, tmp_path) -> dict:
    """Environment for helm/kubectl: the kubeconfig and private helm homes."""
    home = tmp_path / "helm-home"
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
            "KUBECONFIG": str(kubeconfig), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"), "HELM_DATA_HOME": str(home / "data")}


@pytest.fixture
def kubectl(kube_env):
    """Run the real kubectl against the test double."""
    return _runner("kubectl", kube_env, 60)


@pytest.fixture
def helm(kube_env):
    """Run the real helm against the test double."""
    from tests.support import HELM_NAME

    return _runner(HELM_NAME, kube_env, 120)


def _runner(tool: str, env: dict, default_timeout: int):
    """A function running `tool ARGS` with `env`; raises with stderr unless check=False."""

    def run(*args, input=None, check=True, timeout=default_timeout):
        result = subprocess.run([str(TOOLS / tool), *map(str, args)], env=env, input=input,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(map(str, args))}: {result.stderr}")
        return result

    return run


@pytest.fixture
def k8s_client(kubeconfig):
    """The real kubernetes Python client, configured from the kubeconfig."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client, api_client
    api_client.close()
