"""Pytest fixtures for the stand-in chart mirror (see tests/fakes/chart_repo.py).

Enable in tests/conftest.py with:

    from tests.fakes.fixtures import chart_mirror  # noqa: F401  (re-exported fixture)

(`pytest_plugins = [...]` is only honoured in the rootdir conftest, so import it instead.)
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import cert_manager_chart, chart_repo

HELM = str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm")


@pytest.fixture(scope="session")
def chart_mirror(tmp_path_factory) -> str:
    """Base URL (no trailing slash) of a Helm chart repository serving the stand-in charts.

    Built once per session (per xdist worker) with the real helm into a private tmp dir,
    using private HELM_CONFIG_HOME / HELM_CACHE_HOME / HELM_DATA_HOME; served by a
    `python -m http.server` subprocess on 127.0.0.1 that is stopped at session end.
    """
    base = tmp_path_factory.mktemp("chart-mirror")
    env = chart_repo.helm_env(base / "home")
    repo = chart_repo.build_repo(base / "build", HELM, env)
    cert_manager_chart.add_to_repo(repo, HELM, env)   # jetstack's chart, for prerequisites
    with chart_repo.serve(repo) as url:
        yield url
