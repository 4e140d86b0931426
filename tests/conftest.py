"""Shared fixtures: a private copy of the example federation, an env for the real tools, the CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (HELM_NAME, KEYS, OPERATOR_KEY, OTHER_KEY, PARTNER_KEY,  # noqa: F401
                           REPO_PARTS, ROOT, public_key, write_secrets)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A copy of the example federation repository that a test may change freely."""
    dest = tmp_path / "repo"
    dest.mkdir()
    for part in REPO_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("charts", "*.tgz"))
        elif src.is_file():
            shutil.copy2(src, dest / part)
    return dest


@pytest.fixture
def env(tmp_path) -> dict:
    """Environment for the real binaries: the operator's TEST-ONLY key, private helm homes."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "SOPS_AGE_KEY_FILE": str(OPERATOR_KEY),
        "DEPLOYER_TOOLS_DIR": str(ROOT / ".tools" / "bin"),
        "DEPLOYER_HELM": HELM_NAME,
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


@pytest.fixture
def workspace(repo, env):
    """A Workspace over the repo copy, as the CLI would build it."""
    from deployer.model.workspace import Workspace

    return Workspace(root=repo, env=env)


@pytest.fixture
def cli_command(repo, env, chart_mirror, tmp_path_factory):
    """(argv prefix, env) that run the real CLI against the repo copy; chart dependencies
    come from the stand-in repository, prepared charts are shared per worker."""
    base = {**env, "DEPLOYER_CHART_MIRROR": chart_mirror,
            "DEPLOYER_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "prepared-charts")}
    return [sys.executable, str(ROOT / "deploy.py"), "--root", str(repo)], base


@pytest.fixture
def cli(cli_command, repo):
    """Run the real CLI (./deploy.py) as a subprocess against the repo copy."""
    prefix, base = cli_command

    def run(*args: str, extra_env: dict | None = None, input: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *map(str, args)], env={**base, **(extra_env or {})},
                              input=input, capture_output=True, text=True, cwd=cwd or repo,
                              timeout=300)

    return run


from tests.fakes.fixtures import chart_mirror  # noqa: E402,F401  (session-wide stand-in chart repo)
from tests.fakes.kube_fixtures import (  # noqa: E402,F401  (Kubernetes API test double)
    helm, k8s_client, kube_api, kube_env, kubeconfig, kubectl)


def pytest_collection_modifyitems(items):
    """Tests under tests/e2e/ run the real CLI, helm and sops against the test doubles."""
    import pytest as _pytest

    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(_pytest.mark.e2e)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: the real CLI and binaries against the test "
                                       "doubles (tests/e2e/)")
    config.addinivalue_line("markers", "binder_double(**options): options of the test's "
                                       "BinderHubDouble (tests/e2e/test_smoke.py)")
