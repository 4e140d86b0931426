"""The GitHub Actions workflows: linted by the real actionlint (with shellcheck for run:
scripts) and checked against GitHub's workflow schema (check-jsonschema), offline; and their
structure: stages in order, one concurrency group per member, least permissions, actions
pinned by commit, every matrix from `deploy.py plan`, no member named in a workflow."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
BIN = Path(os.path.dirname(os.path.realpath(__file__))).parents[1] / ".venv" / "bin"
TOOLS_ENV = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(ROOT)}
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _tool(name: str) -> str:
    path = ROOT / ".venv" / "bin" / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: run scripts/bootstrap --dev")
    return str(path)


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on:` as True
    return data


def _lint(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("actionlint"), "-shellcheck", _tool("shellcheck"),
                           *map(str, paths)], capture_output=True, text=True, env=TOOLS_ENV,
                          cwd=ROOT)


def _schema(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, env=TOOLS_ENV, cwd=ROOT)


def test_there_are_workflows():
    names = {p.name for p in WORKFLOWS}
    assert {"pr.yaml", "pr-comment.yaml", "deploy.yaml", "watch-dependencies.yaml",
            "terraform.yaml"} <= names


def test_actionlint_and_shellcheck_pass():
    result = _lint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_schema_passes():
    result = _schema(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("breakage,checker", [
    ("run: echo $UNQUOTED_VAR_IN_SHELL_$((", "actionlint"),
    ("run: cd $HOME/dir && ls $UNQUOTED", "shellcheck"),
    ("runs-on: ubuntu-24.04\n    needs: no-such-job", "actionlint"),
    ("uses: 42", "schema"),
])
def test_a_broken_workflow_fails_the_checks(tmp_path, breakage, checker):
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    job = ("name: broken\non: push\npermissions:\n  contents: read\njobs:\n  b:\n"
           "    runs-on: ubuntu-24.04\n    steps:\n      - " + breakage + "\n")
    if breakage.startswith("runs-on"):
        job = ("name: broken\non: push\njobs:\n  b:\n    " + breakage +
               "\n    steps:\n      - run: echo hi\n")
    broken.write_text(job)
    if checker == "schema":
        assert _schema([broken]).returncode != 0
    else:
        result = _lint([broken])
        assert result.returncode != 0
        if checker == "shellcheck":
            assert "shellcheck reported issue" in result.stdout, result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_least_permissions_pinned_actions_and_no_member_names(path):
    from deployer.model.federation import load

    data = _load(path)
    assert data.get("permissions") == {"contents": "read"}, "top-level permissions"
    assert "pull_request_target" not in (data["on"] or {})
    text = path.read_text()
    for uses in re.findall(r"uses:\s*([^\s#]+)", text):
        assert SHA_PINNED.match(uses), f"{uses} is not pinned to a commit"
    # a member name that is also a role, a provider or a job name ("staging", "gke") cannot
    # be told apart by reading; the others must not appear, and every member argument of
    # a deploy.py command is a variable from the matrix
    members = load(ROOT).members
    ambiguous = {"staging", "production", "gke", "eks", "kubeconfig"}
    for name in set(members) - ambiguous:
        assert not re.search(rf"\b{re.escape(name)}\b(?![-\w])", _code_only(text)), \
            f"member {name!r} is named in {path.name}"
    for command, arg in re.findall(r"\./deploy\.py\s+(deploy|validate|diff|rollback|smoke)"
                                   r"\s+(\S+)", text):
        assert arg.startswith('"$'), f"{path.name}: ./deploy.py {command} {arg}"


def test_deploy_stages_run_in_order_with_a_concurrency_group_per_member():
    jobs = _load(ROOT / ".github/workflows/deploy.yaml")["jobs"]
    assert jobs["staging"]["needs"] == "plan"
    assert jobs["production"]["needs"] == ["plan", "staging"]
    gate = jobs["production"]["if"]
    # runs after a failed or skipped staging job is evaluated, but never in a cancelled run
    assert "needs.staging.result == 'success'" in gate and "!cancelled()" in gate
    assert "always()" not in gate
    for stage in ("staging", "production"):
        job = jobs[stage]
        assert job["strategy"]["fail-fast"] is False
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.plan.outputs.{stage}) }}}}"
        # the environment gives secrets and approvals; `deploy --record` records the one
        # GitHub Deployment
        assert job["environment"] == {"name": "${{ matrix.environment }}",
                                      "deployment": False}
        assert job["concurrency"] == {"group": "deploy-${{ matrix.member }}",
                                      "cancel-in-progress": False}
        assert job["permissions"]["deployments"] == "write"
        run = " ".join(step.get("run", "") for step in job["steps"])
        assert './deploy.py deploy "$MEMBER" --record --report' in run


def test_deploy_runs_one_at_a_time_and_plans_from_the_last_deploys():
    """One run per branch at a time (an older run never deploys over a newer one); the
    push's plan starts from each member's last successful deploy, so a cancelled pending
    run, a failed or a skipped deploy is caught up by the next run; the merged PR's labels
    apply; a manual dispatch of one member plans that member only."""
    data = _load(ROOT / ".github/workflows/deploy.yaml")
    assert data["concurrency"] == {"group": "deploy-${{ github.ref }}",
                                   "cancel-in-progress": False}
    plan = data["jobs"]["plan"]
    assert plan["permissions"] == {"contents": "read", "deployments": "read",
                                   "pull-requests": "read"}
    step = next(s for s in plan["steps"] if s.get("id") == "plan")
    assert step["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    commands = [line.strip() for line in step["run"].replace("\\\n", " ").splitlines()
                if "./deploy.py plan" in line]
    push = [c for c in commands if "--labels-from-github" in c]
    assert len(push) == 1 and "--since-deployed" in push[0]
    assert not any("--base" in c for c in commands), commands
    member = [c for c in commands if "--member" in c]
    assert member and "--since-deployed" not in member[0]
    assert data["on"]["workflow_dispatch"]["inputs"]["member"]["required"] is False


def test_pr_checks_follow_labels_and_hand_the_commenter_nothing():
    data = _load(ROOT / ".github/workflows/pr.yaml")
    assert data["on"]["pull_request"]["types"] == ["opened", "synchronize", "reopened",
                                                   "labeled", "unlabeled"]
    text = (ROOT / ".github/workflows/pr.yaml").read_text()
    assert "upload-artifact" not in text


def test_the_commenter_trusts_only_the_event_and_recomputes_the_plan():
    """A fork's run could upload any PR number and text: the commenter reads no artifact,
    finds the PR from the workflow_run event's head commit and repository and computes the
    plan itself."""
    path = ROOT / ".github/workflows/pr-comment.yaml"
    job = _load(path)["jobs"]["comment"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "artifact" not in path.read_text()
    step = next(s for s in job["steps"] if "./deploy.py comment" in s.get("run", ""))
    assert step["run"].strip() == \
        './deploy.py comment --head-sha "$HEAD_SHA" --head-repo "$HEAD_REPO"'
    assert step["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert step["env"]["HEAD_REPO"] == \
        "${{ github.event.workflow_run.head_repository.full_name }}"


def test_every_matrix_comes_from_the_plan():
    for path in WORKFLOWS:
        for name, job in (_load(path).get("jobs") or {}).items():
            matrix = (job.get("strategy") or {}).get("matrix")
            if matrix is not None:
                assert isinstance(matrix, str) and "fromJSON(needs.plan.outputs." in matrix, \
                    f"{path.name}:{name} has a hand-written matrix"


def test_jobs_that_hold_secrets_never_run_fork_code():
    jobs = _load(ROOT / ".github/workflows/pr.yaml")["jobs"]
    for name, job in jobs.items():
        if "secrets." in yaml.safe_dump(job):
            assert "github.event.pull_request.head.repo.full_name == github.repository" in \
                job.get("if", ""), f"pr.yaml:{name} uses secrets on fork PRs"
    comment = _load(ROOT / ".github/workflows/pr-comment.yaml")
    assert list(comment["on"]) == ["workflow_run"]
    steps = comment["jobs"]["comment"]["steps"]
    assert not any("ref" in (s.get("with") or {}) for s in steps), \
        "the commenter checks out the default branch, never the PR's code"


def test_every_deploy_py_command_in_a_workflow_exists():
    from deployer.cli.app import app
    from typer.main import get_command

    commands = set(get_command(app).commands)
    for path in WORKFLOWS:
        for used in re.findall(r"\./deploy\.py\s+([a-z-]+)", path.read_text()):
            assert used in commands, f"{path.name} runs ./deploy.py {used}, which does not exist"


def test_the_bump_bot_runs_alone_with_an_app_token():
    data = _load(ROOT / ".github/workflows/watch-dependencies.yaml")
    assert set(data["on"]) == {"schedule", "workflow_dispatch"}
    assert data["on"]["workflow_dispatch"]["inputs"]["dry-run"]["type"] == "boolean"
    assert data["concurrency"] == {"group": "watch-dependencies", "cancel-in-progress": False}
    steps = data["jobs"]["bump"]["steps"]
    assert steps[0]["uses"].startswith("actions/create-github-app-token@")
    bump = next(s for s in steps if "./deploy.py bump" in s.get("run", ""))
    # PRs opened with GITHUB_TOKEN would trigger no PR checks: the App's token is used
    assert bump["env"]["GITHUB_TOKEN"] == "${{ steps.app-token.outputs.token }}"
    assert "github.token" not in (ROOT / ".github/workflows/watch-dependencies.yaml").read_text()
    assert "permissions" not in data["jobs"]["bump"], "the bot writes with the App token only"


def test_terraform_applies_only_reviewed_plans_behind_an_environment():
    data = _load(ROOT / ".github/workflows/terraform.yaml")
    jobs = data["jobs"]
    assert set(data["on"]) >= {"pull_request", "push", "schedule"}
    assert jobs["terraform-plan"]["needs"] == "plan"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in \
        jobs["terraform-plan"]["if"]                       # no secrets for fork PRs
    apply = jobs["apply"]
    assert apply["needs"] == ["plan", "terraform-plan"]
    assert apply["environment"] == "terraform-${{ matrix.stack }}"
    assert apply["concurrency"] == {"group": "terraform-${{ matrix.stack }}",
                                    "cancel-in-progress": False}
    assert apply["concurrency"] == jobs["terraform-plan"]["concurrency"]
    runs = " ".join(s.get("run", "") for s in apply["steps"])
    assert './deploy.py terraform apply "$STACK"' in runs and "--allow-destroy" not in runs
    assert "--fail-on-changes" in " ".join(s.get("run", "") for s in jobs["drift"]["steps"])


def _code_only(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_shellcheck_is_the_real_binary():
    out = subprocess.run([_tool("shellcheck"), "--version"], capture_output=True, text=True)
    assert "ShellCheck" in out.stdout and shutil.which("actionlint", path=str(BIN))
