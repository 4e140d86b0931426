"""--build: a throwaway commit on a new branch of the smoke build repository (real git)."""
import subprocess

import pytest
import yaml

from deployer.stages import smoke
from deployer.errors import DeployError


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)


@pytest.fixture
def build_repo(tmp_path):
    """A bare repository with one commit, standing in for the GitHub test repository."""
    bare = tmp_path / "smoke-repo.git"
    seed = tmp_path / "seed"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    _git("init", "--quiet", "--initial-branch=main", str(seed))
    (seed / "requirements.txt").write_text("numpy\n")
    _git("add", ".", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@invalid", "commit", "--quiet", "-m", "seed",
         cwd=seed)
    _git("push", "--quiet", str(bare), "main", cwd=seed)
    return bare


def _configure(repo, bare):
    """Give the staging member a smoke build repository."""
    path = repo / "config/federation.yaml"
    data = yaml.safe_load(path.read_text())
    data["members"]["staging"]["smoke"]["build"] = {"remote": str(bare),
                                                    "spec": "gh/example-binder/smoke-test"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _branches(bare):
    return _git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=bare).stdout.split()


def test_throwaway_branch_is_pushed_then_deleted(repo, workspace, build_repo):
    _configure(repo, build_repo)
    member = workspace.federation.member("staging")
    with smoke.throwaway_commit(workspace, member, log=lambda *_: None) as spec:
        branch = spec.rsplit("/", 1)[1]
        assert spec == f"gh/example-binder/smoke-test/{branch}"
        assert branch.startswith("smoke-staging-") and branch in _branches(build_repo)
        message = _git("log", "-1", "--format=%s", branch, cwd=build_repo).stdout.strip()
        assert message == f"smoke test {branch}"
    assert _branches(build_repo) == ["main"]


def test_branch_is_deleted_when_the_launch_fails(repo, workspace, build_repo):
    _configure(repo, build_repo)
    with pytest.raises(RuntimeError):
        with smoke.throwaway_commit(workspace, workspace.federation.member("staging"),
                                    log=lambda *_: None):
            raise RuntimeError("launch failed")
    assert _branches(build_repo) == ["main"]


def test_member_without_a_build_repository(workspace):
    with pytest.raises(DeployError, match="no smoke.build repository"):
        with smoke.throwaway_commit(workspace, workspace.federation.member("gke")):
            pass
