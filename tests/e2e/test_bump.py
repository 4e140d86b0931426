"""`./deploy.py bump` end to end: the real CLI, git, helm (validation of the edited tree)
and sops, releases from a real chart repository and a real OCI registry on 127.0.0.1, and
PRs through the real PyGithub against the GitHub REST double."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes import cert_manager_chart, chart_repo
from tests.fakes.github import GitHubDouble
from tests.fakes.oci_registry import OciRegistry, registry_available

HELM = str(Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm")
REPO = "example/federation"
DEV_OLD = chart_repo.BINDERHUB.version
DEV_NEW = "1.0.0-0.dev.git.3990.h9a1b2c3d"


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """A chart repository with newer binderhub and traefik versions (that traefik needs a
    Kubernetes no member runs, so validation fails), and a registry with repo2docker tags."""
    reason = registry_available()
    if reason:
        # scripts/bootstrap --dev installs it; in CI a skip would hide a missing install
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    base = tmp_path_factory.mktemp("bump-releases")
    extra = [chart_repo.StandIn("binderhub", DEV_NEW, kube_version=">=1.28.0-0",
                                subcharts=(chart_repo.JUPYTERHUB,),
                                subchart_repository=chart_repo.JUPYTERHUB_REPO),
             chart_repo.StandIn("traefik", "41.2.0", app_version="v3.6.4",
                                kube_version=">=1.40.0-0")]
    repo = chart_repo.build_repo(base / "build", HELM, chart_repo.helm_env(base / "home"),
                                 extra=extra)
    # validate --all renders the cert-manager prerequisite of the k3s members
    cert_manager_chart.add_to_repo(repo, HELM, chart_repo.helm_env(base / "home"))
    with chart_repo.serve(repo) as charts, OciRegistry(base) as oci:
        oci.push_image_tags("jupyterhub/repo2docker", ["2025.08.0", "2025.10.0", "latest"])
        yield charts, oci


@pytest.fixture
def setup(releases, repo, env):
    """The repo copy as a git checkout whose HEAD GitHub has, dependencies pointed at the
    local release sources, and the upstream binderhub history."""
    charts, oci = releases
    deps = repo / "config" / "dependencies.yaml"
    deps.write_text(f"""\
dependencies:
  binderhub:
    kind: helm-chart
    source: {charts}
    file: mybinder/Chart.yaml
    chart_dependency: binderhub
    prereleases: true
    upstream: jupyterhub/binderhub
  traefik:
    kind: helm-chart
    source: {charts}
    file: mybinder/Chart.yaml
    chart_dependency: traefik
  repo2docker:
    kind: image
    source: {oci.host}/jupyterhub/repo2docker
    file: config/common.yaml
    key: binderhub.config.KubernetesBuildExecutor.build_image
    value: image
""")
    git_env = {**env, "GIT_AUTHOR_NAME": "Operator", "GIT_AUTHOR_EMAIL": "op@example.org",
               "GIT_COMMITTER_NAME": "Operator", "GIT_COMMITTER_EMAIL": "op@example.org"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "federation"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=git_env,
                       capture_output=True)
    with GitHubDouble() as gh:
        gh.add_repo(REPO)
        head = gh.import_git(REPO, repo)
        gh.add_repo("jupyterhub/binderhub")
        gh.add_upstream_history("jupyterhub/binderhub", [
            ("383374de", "Merge pull request #1901", 1901, "older work", []),
            (None, "Merge pull request #1905", 1905, "Build with pinned buildkit", ["ci"]),
            ("9a1b2c3d", "Merge pull request #1910", 1910, "Fix the launch timeout", ["bug"]),
        ])
        extra = {"GITHUB_TOKEN": gh.token, "GITHUB_API_URL": gh.url,
                 "GITHUB_REPOSITORY": REPO, "DEPLOYER_CHART_MIRROR": charts}
        yield gh, oci, extra, head


def test_dry_run_json_lists_each_outdated_dependency_and_the_upstream_prs(setup, cli):
    gh, oci, extra, _head = setup
    result = cli("bump", "--dry-run", "--json", "--no-validate", "--plain-http-registry",
                 oci.host, extra_env=extra)
    assert result.returncode == 0, result.stderr
    outcomes = {o["unit"]: o for o in json.loads(result.stdout)["outcomes"]}
    assert {u: o["action"] for u, o in outcomes.items()} == {
        "binderhub": "open PR", "traefik": "open PR", "repo2docker": "open PR"}
    (bh,) = outcomes["binderhub"]["bumps"]
    assert (bh["from"], bh["to"]) == (DEV_OLD, DEV_NEW)
    assert [p["number"] for p in bh["upstream_pulls"]] == [1905, 1910]
    assert bh["compare"].endswith("/compare/383374de...9a1b2c3d")
    (r2d,) = outcomes["repo2docker"]["bumps"]
    assert (r2d["from"], r2d["to"]) == ("2025.08.0", "2025.10.0")
    assert outcomes["traefik"]["bumps"][0]["app_to"] == "v3.6.4"
    assert [m for m, _ in gh.requests if m != "GET"] == []          # nothing written
    assert not gh.pulls(REPO)


def test_prs_with_validation_then_a_quiet_rerun(setup, cli, repo):
    gh, oci, extra, head = setup
    before = (repo / "mybinder" / "Chart.yaml").read_text()
    result = cli("bump", "--plain-http-registry", oci.host, extra_env=extra)
    assert result.returncode == 0, result.stderr
    pulls = {p["head"]["ref"]: p for p in gh.pulls(REPO, state="open")}
    assert set(pulls) == {"bump/binderhub", "bump/traefik", "bump/repo2docker"}
    binderhub, traefik = pulls["bump/binderhub"], pulls["bump/traefik"]
    assert not binderhub["draft"] and "`deploy.py validate --all` passes" in binderhub["body"]
    # the traefik release needs a newer Kubernetes than any member: a draft, with the error
    assert traefik["draft"] and "**fails**" in traefik["body"]
    assert "kubeVersion" in traefik["body"] or "Kubernetes" in traefik["body"]
    chart = gh.file_at(REPO, "bump/binderhub", "mybinder/Chart.yaml")
    assert chart == before.replace(DEV_OLD, DEV_NEW)
    assert gh.repos[REPO].objects[binderhub["head"]["sha"]]["parents"] == [head]
    assert (repo / "mybinder" / "Chart.yaml").read_text() == before   # checkout untouched
    assert "draft" in result.stdout and "open PR" in result.stdout

    gh.requests.clear()
    again = cli("bump", "--plain-http-registry", oci.host, extra_env=extra)
    assert again.returncode == 0, again.stderr
    assert len(gh.counted()) <= 2, gh.counted()
    assert len(gh.pulls(REPO)) == 3
    assert again.stdout.count("PR is current") == 3


def test_a_registry_that_is_down_fails_that_dependency_only(setup, cli, repo):
    gh, oci, extra, _head = setup
    result = cli("bump", "--dry-run", "--no-validate", extra_env=extra)   # https: refused
    assert result.returncode == 1
    assert "repo2docker" in result.stderr and "failed" in result.stdout
    assert "binderhub" in result.stdout and "open PR" in result.stdout
    assert "Traceback" not in result.stderr


def test_bad_dependencies_file_is_one_line_exit_2(setup, cli, repo):
    _gh, _oci, extra, _head = setup
    deps = repo / "config" / "dependencies.yaml"
    deps.write_text(deps.read_text().replace("kind: image", "kind: imaeg"))
    result = cli("bump", "--dry-run", extra_env=extra)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: config/dependencies.yaml:")
    assert len(result.stderr.strip().splitlines()) == 1

