"""`deploy.py plan` with real git: a temporary repository holding the example federation,
commits that touch each kind of path, and the members, stages, stacks and reasons they plan."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deployer.model.workspace import Workspace
from deployer.stages.plan import make_plan
from tests.support import REPO_PARTS, ROOT

PRODUCTION = ["gke", "aws", "hetzner-fsn", "uni-lab"]
EVERYONE = ["staging", *PRODUCTION]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(repo),
                                          "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                                          "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@x"}).stdout.strip()


@pytest.fixture
def history(tmp_path) -> Path:
    """A git repository with the example federation (and a Terraform stack) committed."""
    repo = tmp_path / "federation"
    repo.mkdir()
    for part in (*REPO_PARTS, "deployer", "README.md", "requirements.txt", "deploy.py"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, repo / part, ignore=shutil.ignore_patterns(
                "charts", "__pycache__", "*.tgz"))
        else:
            shutil.copy2(src, repo / part)
    for stack, module in (("hetzner-fsn", "hetzner-k3s"), ("gke", "gke-cluster")):
        (repo / "terraform/members" / stack).mkdir(parents=True)
        (repo / "terraform/members" / stack / "main.tf").write_text(
            f'module "cluster" {{\n  source = "../../modules/{module}"\n}}\n')
    for module in ("hetzner-k3s", "gke-cluster"):
        (repo / "terraform/modules" / module).mkdir(parents=True)
        (repo / "terraform/modules" / module / "main.tf").write_text("# module\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the federation")
    return repo


def change(repo: Path, edits: dict[str, str | None], message: str = "change") -> tuple[str, str]:
    """Commit `edits` (path -> new text, None deletes); (base, head) shas."""
    base = git(repo, "rev-parse", "HEAD")
    for rel, text in edits.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return base, git(repo, "rev-parse", "HEAD")


def planned(repo: Path, base: str, head: str = "HEAD", **kwargs) -> dict:
    ws = Workspace(root=repo, env={"PATH": "/usr/bin:/bin"})
    return make_plan(ws, base=base, head=head, **kwargs).to_json(ws)


def edit_yaml(repo: Path, rel: str, fn) -> str:
    data = yaml.safe_load((repo / rel).read_text())
    fn(data)
    return yaml.safe_dump(data, sort_keys=False)


def test_a_member_values_file_plans_that_member_only(history):
    base, head = change(history, {"config/aws.yaml": (history / "config/aws.yaml").read_text()
                                  + "static:\n  replicas: 3\n"})
    plan = planned(history, base, head)
    assert list(plan["members"]) == ["aws"]
    assert plan["members"]["aws"] == ["config/aws.yaml changed"]
    assert plan["matrices"]["staging"] == {"include": []}
    assert [r["member"] for r in plan["matrices"]["production"]["include"]] == ["aws"]
    assert plan["has"] == {"validate": True, "staging": False, "production": True,
                           "terraform": False}


def test_chart_values_plan_every_member_staging_first(history):
    base, head = change(history, {"mybinder/values.yaml":
                                  (history / "mybinder/values.yaml").read_text() + "\n# x\n"})
    plan = planned(history, base, head)
    assert list(plan["members"]) == EVERYONE
    assert [r["member"] for r in plan["matrices"]["staging"]["include"]] == ["staging"]
    assert [r["member"] for r in plan["matrices"]["production"]["include"]] == PRODUCTION
    row = plan["matrices"]["production"]["include"][0]
    assert row == {"member": "gke", "role": "production", "environment": "gke",
                   "provider": "gke", "reasons": "mybinder/values.yaml changed"}


@pytest.mark.parametrize("path", ["config/common.yaml", ".sops.yaml", "deployer/cli/app.py",
                                  "requirements.txt", "deploy.py"])
def test_shared_files_plan_every_member(history, path):
    base, head = change(history, {path: (history / path).read_text() + "\n# touched\n"})
    assert list(planned(history, base, head)["members"]) == EVERYONE


def test_member_secrets_and_kubeconfigs_belong_to_their_member(history):
    base, head = change(history, {
        "secrets/gke.yaml": (history / "secrets/gke.yaml").read_text() + "\n",
        "secrets/kubeconfigs/uni-lab.yaml":
            (history / "secrets/kubeconfigs/uni-lab.yaml").read_text() + "\n"})
    plan = planned(history, base, head)
    assert plan["members"] == {"gke": ["secrets/gke.yaml changed"],
                               "uni-lab": ["secrets/kubeconfigs/uni-lab.yaml changed"]}


def test_a_weight_change_reaches_every_redirector(history):
    text = edit_yaml(history, "config/federation.yaml",
                     lambda d: d["members"]["aws"]["federation"].update(weight=25))
    base, head = change(history, {"config/federation.yaml": text})
    plan = planned(history, base, head)
    assert set(plan["members"]) == {"aws", "gke", "staging"}
    assert plan["members"]["aws"] == ["config/federation.yaml: members.aws (federation) changed"]
    assert "gke runs the federation redirector" in plan["members"]["gke"][0]


def test_a_smoke_change_reaches_only_its_member(history):
    text = edit_yaml(history, "config/federation.yaml",
                     lambda d: d["members"]["aws"]["smoke"].update(timeout_seconds=900))
    base, head = change(history, {"config/federation.yaml": text})
    assert list(planned(history, base, head)["members"]) == ["aws"]


def test_the_federation_block_reaches_everyone_and_a_removed_member_is_noted(history):
    def edit(d):
        d["federation"]["name"] = "renamed-binder"
        del d["members"]["uni-lab"]
    base, head = change(history, {"config/federation.yaml":
                                  edit_yaml(history, "config/federation.yaml", edit),
                                  "config/uni-lab.yaml": None})
    plan = planned(history, base, head)
    assert list(plan["members"]) == ["staging", "gke", "aws", "hetzner-fsn"]
    assert any("uni-lab was removed" in note for note in plan["notes"])


def test_terraform_paths_plan_their_stacks(history):
    base, head = change(history, {
        "terraform/members/gke/main.tf": "# changed\n",
        "terraform/modules/hetzner-k3s/main.tf": "# changed module\n"})
    plan = planned(history, base, head)
    assert plan["members"] == {}
    assert plan["stacks"] == {"gke": ["terraform/members/gke/main.tf changed"],
                              "hetzner-fsn": ["terraform/modules/hetzner-k3s/main.tf changed "
                                              "(module hetzner-k3s)"]}
    assert [r["stack"] for r in plan["matrices"]["terraform"]["include"]] == ["gke",
                                                                             "hetzner-fsn"]


def test_docs_and_tests_deploy_nothing_and_unknown_paths_deploy_everything(history):
    base, head = change(history, {"README.md": "# docs\n", "docs/runbook.md": "# x\n"})
    plan = planned(history, base, head)
    assert plan["members"] == {} and sorted(plan["ignored"]) == ["README.md", "docs/runbook.md"]
    base, head = change(history, {"ops/new-thing.sh": "echo hi\n"})
    plan = planned(history, base, head)
    assert list(plan["members"]) == EVERYONE
    assert "not a known path" in plan["members"]["staging"][0]
    assert any("ops/new-thing.sh" in note for note in plan["notes"])


def test_a_rename_counts_both_paths(history):
    base = git(history, "rev-parse", "HEAD")
    git(history, "mv", "config/aws.yaml", "config/aws-old.yaml")
    git(history, "commit", "-q", "-m", "rename")
    plan = planned(history, base)
    assert "aws" in plan["members"] and "config/aws-old.yaml" in " ".join(plan["notes"])


def test_labels_override(history):
    base, head = change(history, {"config/aws.yaml":
                                  (history / "config/aws.yaml").read_text() + "\n"})
    skipped = planned(history, base, head, labels=["deploy:skip"])
    assert skipped["skipped"] and skipped["matrices"]["production"] == {"include": []}
    assert skipped["matrices"]["validate"]["include"], "still validated"
    everything = planned(history, base, head, labels=["deploy:all"])
    assert list(everything["members"]) == EVERYONE


def test_changed_files_list_and_unknown_base(history, tmp_path):
    listed = tmp_path / "changed.txt"
    listed.write_text("config/gke.yaml\nM\tsecrets/aws.yaml\n")
    head = git(history, "rev-parse", "HEAD")
    plan = planned(history, head, changed_files=listed)
    assert list(plan["members"]) == ["gke", "aws"]
    unknown = planned(history, "0" * 40)
    assert list(unknown["members"]) == EVERYONE
    assert "base commit is unknown" in unknown["members"]["gke"][0]


def test_the_cli_writes_matrices_summary_and_outputs(history, tmp_path):
    base, _ = change(history, {"config/gke.yaml": (history / "config/gke.yaml").read_text()
                               + "\n"})
    out, summary = tmp_path / "github-output", tmp_path / "summary.md"
    result = subprocess.run([str(ROOT / ".venv/bin/python"), str(ROOT / "deploy.py"), "--root",
                             str(history), "plan", "--base", base, "--json", "--summary",
                             summary, "--github-output", out], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data["members"]) == ["gke"]
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert json.loads(outputs["production"])["include"][0]["member"] == "gke"
    assert outputs["has_staging"] == "false" and outputs["has_production"] == "true"
    assert "| `gke` | production | production | config/gke.yaml changed |" in \
        summary.read_text()


def test_bad_refs_are_one_clear_line(history):
    result = subprocess.run([str(ROOT / ".venv/bin/python"), str(ROOT / "deploy.py"), "--root",
                             str(history), "plan", "--base", "no-such-ref"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --base no-such-ref: not a commit in this repository (hint: fetch enough "
        "history (actions/checkout with fetch-depth: 0))"]


def test_plan_on_the_projects_own_history():
    """`./deploy.py plan --base HEAD~1 --json` on this repository gives valid matrices."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "HEAD~1"],
                      capture_output=True).returncode != 0:
        pytest.skip("this checkout has a single commit (shallow clone)")
    result = subprocess.run([str(ROOT / "deploy.py"), "plan", "--base", "HEAD~1", "--json"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for job, matrix in data["matrices"].items():
        assert set(matrix) == {"include"} and isinstance(matrix["include"], list), job
        for row in matrix["include"]:
            assert row.get("member") or row.get("stack")
    assert data["has"] == {job: bool(m["include"]) for job, m in data["matrices"].items()}

