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


def test_pr_checks_plan_the_merge_commit_they_run_on():
    """validate and diff run on the merge checkout (refs/pull/N/merge): the plan must read the
    federation there too, or a member main added after the branch forked is never checked."""
    step = next(s for s in _load(ROOT / ".github/workflows/pr.yaml")["jobs"]["plan"]["steps"]
                if "./deploy.py plan" in s.get("run", ""))
    assert step["env"]["HEAD"] == "${{ github.sha }}"
    # its first parent, the base branch as merged: the payload's base.sha can be older (it
    # does not move on a label event), and base.sha...merge would then hold main's commits
    assert "BASE" not in step["env"]
    # an assignment of its own, so that bash -e stops the step when rev-parse fails (inside
    # the plan's arguments it would hand plan an empty base: nothing planned, a green check)
    assert 'base=$(git rev-parse "$HEAD^1")' in step["run"]
    assert './deploy.py plan --base "$base" --head "$HEAD"' in step["run"]


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
    # no concurrency group: GitHub cancels a pending run when another queues in its group,
    # and a run for an older head (which posts nothing) could cancel the current head's
    assert "concurrency" not in _load(path) and "concurrency" not in job
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


def test_every_matrix_field_a_workflow_reads_is_one_the_plan_gives():
    """A misspelt `matrix.x` is an empty string to GitHub: a step's `if:` would silently
    never (or always) run."""
    from deployer.model import federation, plan

    fed = federation.load(ROOT)
    decided = plan.Plan()
    for name in fed.members:
        decided.member(name, "test")
    decided.stack("gke", "test")
    fields = {job: {key for row in found["include"] for key in row}
              for job, found in plan.matrices(fed, decided).items()}
    for path in WORKFLOWS:
        for name, job in (_load(path).get("jobs") or {}).items():
            matrix = (job.get("strategy") or {}).get("matrix")
            if not isinstance(matrix, str):
                continue
            source = re.search(r"needs\.plan\.outputs\.(\w+)", matrix).group(1)
            used = set(re.findall(r"matrix\.(\w+)", yaml.safe_dump(job)))
            assert used <= fields[source], \
                f"{path.name}:{name} reads matrix.{sorted(used - fields[source])}"


def test_pr_diff_opens_no_sops_encrypted_cluster_file():
    """PR jobs' age key opens the values files only (README: Keys): a member reached with a
    sops-encrypted kubeconfig or credentials file is noted, not diffed (the job would fail on
    every PR that touches it); the others log in to their cloud's read-only roles."""
    from deployer.model import federation, plan

    fed = federation.load(ROOT)
    assert {n: plan.cloud_login(m) for n, m in fed.members.items()} == {
        "staging": True, "gke": True, "aws": True, "hetzner-fsn": False, "uni-lab": False}
    steps = _load(ROOT / ".github/workflows/pr.yaml")["jobs"]["diff"]["steps"]
    for step in steps:
        condition = str(step.get("if", ""))
        if "./deploy.py" in step.get("run", "") or "secrets." in yaml.safe_dump(step) or \
                "uses" in step:
            assert condition.startswith("matrix.cloud_login") or \
                condition == "${{ matrix.cloud_login }}", step
    noted = [s for s in steps if s.get("if") == "${{ !matrix.cloud_login }}"]
    assert len(noted) == 1 and "GITHUB_STEP_SUMMARY" in noted[0]["run"]
    assert "secrets." not in yaml.safe_dump(noted[0])
    for provider in ("gke", "eks", "aks"):
        assert any(f"matrix.provider == '{provider}'" in str(s.get("if", "")) and
                   "READER" in yaml.safe_dump(s) for s in steps), provider


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


TERRAFORM = ROOT / ".github/workflows/terraform.yaml"
APPLY_SECRETS = {"SOPS_AGE_KEY", "HCLOUD_TOKEN", "TERRAFORM_STATE_ACCESS_KEY_ID",
                 "TERRAFORM_STATE_SECRET_ACCESS_KEY"}
READ_SECRETS = {"TERRAFORM_PLAN_AGE_KEY", "HCLOUD_READ_TOKEN",
                "TERRAFORM_STATE_READ_ACCESS_KEY_ID", "TERRAFORM_STATE_READ_SECRET_ACCESS_KEY"}


def _secrets_of(job: dict) -> set[str]:
    return set(re.findall(r"secrets\.([A-Z0-9_]+)", yaml.safe_dump(job)))


def _service_accounts(job: dict) -> set[str]:
    return {s["with"]["service_account"] for s in job["steps"]
            if s.get("uses", "").startswith("google-github-actions/auth@")}


def test_terraform_applies_only_reviewed_plans_behind_an_environment():
    data = _load(TERRAFORM)
    jobs = data["jobs"]
    assert set(data["on"]) >= {"pull_request", "push", "schedule"}
    assert set(jobs) == {"plan", "pr-plan", "merge-plan", "apply", "drift"}
    # the merge's plan and apply: one fixed, pre-created environment (a name made from the
    # matrix would be created by GitHub, without reviewers, for a stack a PR adds)
    merge, apply = jobs["merge-plan"], jobs["apply"]
    assert merge["needs"] == "plan" and "github.event_name == 'push'" in merge["if"]
    assert apply["needs"] == ["plan", "merge-plan"]
    assert "needs.merge-plan.result == 'success'" in apply["if"]
    for job in (merge, apply):
        assert job["environment"] == "terraform"
        assert job["concurrency"] == {"group": "terraform-${{ matrix.stack }}",
                                      "cancel-in-progress": False}
        assert _secrets_of(job) == APPLY_SECRETS
        assert _service_accounts(job) == {"${{ vars.GCP_TERRAFORM_SERVICE_ACCOUNT }}"}
    runs = " ".join(s.get("run", "") for s in apply["steps"])
    assert './deploy.py terraform apply "$STACK"' in runs and "--allow-destroy" not in runs
    # an approval can wait 30 days: the plan (and the kubeconfig) outlive it
    uploads = [s for j in (merge, apply) for s in j["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 2 and all(s["with"]["retention-days"] == 30 for s in uploads)


def test_terraform_pull_requests_and_drift_never_get_the_apply_credentials():
    """A PR plan runs the PR's own deploy.py and workflow: it gets the read-only identity
    in the environment terraform-plan, and never shares a concurrency group with the
    merge's plan and apply (a PR push would cancel a pending apply)."""
    jobs = _load(TERRAFORM)["jobs"]
    pr, drift = jobs["pr-plan"], jobs["drift"]
    assert pr["needs"] == "plan"
    assert "github.event_name == 'pull_request'" in pr["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in \
        pr["if"]                                           # no secrets for fork PRs
    assert pr["concurrency"] == {
        "group": "terraform-plan-${{ github.event.pull_request.number }}-${{ matrix.stack }}",
        "cancel-in-progress": True}
    for job in (pr, drift):
        assert job["environment"] == "terraform-plan"
        assert _secrets_of(job) == READ_SECRETS
        assert not _secrets_of(job) & APPLY_SECRETS
        assert _service_accounts(job) == {"${{ vars.GCP_TERRAFORM_READER_SERVICE_ACCOUNT }}"}
        step = next(s for s in job["steps"] if "./deploy.py terraform plan" in s.get("run", ""))
        assert step["env"]["SOPS_AGE_KEY"] == "${{ secrets.TERRAFORM_PLAN_AGE_KEY }}"
        assert step["env"]["HCLOUD_TOKEN"] == "${{ secrets.HCLOUD_READ_TOKEN }}"
        assert step["env"]["TF_CLI_ARGS_plan"] == "-lock=false"   # state is only read
        assert not any(s.get("uses", "").startswith("actions/upload-artifact@")
                       for s in job["steps"])
    assert "--fail-on-changes" in " ".join(s.get("run", "") for s in drift["steps"])
    # no job in this workflow reads a repository-wide secret: only environments hold them
    for name, job in jobs.items():
        if _secrets_of(job):
            assert job.get("environment") in ("terraform", "terraform-plan"), name


def _shell(data: dict, job: dict, step: dict) -> str | None:
    return (step.get("shell") or ((job.get("defaults") or {}).get("run") or {}).get("shell")
            or ((data.get("defaults") or {}).get("run") or {}).get("shell"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_a_step_that_pipes_fails_when_its_command_fails(path):
    """GitHub's default shell is `bash -e` (no pipefail): `cmd | tee` would be green when
    cmd failed. A step that pipes says `shell: bash` (bash -eo pipefail), by itself or
    through `defaults`."""
    data = _load(path)
    for name, job in (data.get("jobs") or {}).items():
        for step in job.get("steps") or []:
            code = _code_only(step.get("run", "")).replace("||", "")
            if "|" in code:
                assert _shell(data, job, step) == "bash", \
                    f"{path.name}:{name}: a step pipes without pipefail"


def test_terraform_plans_show_every_resource_change_in_the_job_summary(tmp_path):
    """stdout and the per-resource lines on stderr go to the summary; a failed plan still
    writes its summary, then fails the step. Run with bash -eo pipefail, as GitHub does."""
    jobs = _load(TERRAFORM)["jobs"]
    for name in ("pr-plan", "merge-plan", "drift"):
        step = next(s for s in jobs[name]["steps"] if "./deploy.py terraform plan" in
                    s.get("run", ""))
        script = step["run"]
        assert "2>&1 | tee plan.txt" in script and "GITHUB_STEP_SUMMARY" in script, name
        for fails in (False, True):
            fake = tmp_path / "deploy.py"
            fake.write_text("#!/bin/sh\necho 'member create update'\n"
                            "echo 'stack: create module.cluster.hcloud_server.this' >&2\n"
                            + ("exit 3\n" if fails else ""))
            fake.chmod(0o755)
            summary = tmp_path / f"summary-{name}-{fails}.md"
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                     script], cwd=tmp_path, capture_output=True, text=True,
                                    env={"PATH": "/usr/bin:/bin", "STACK": "s",
                                         "GITHUB_STEP_SUMMARY": str(summary)})
            assert result.returncode == (3 if fails else 0), (name, result.stderr)
            text = summary.read_text()
            assert "member create update" in text, name
            assert "stack: create module.cluster.hcloud_server.this" in text, name
            assert ("exit 3" in text) is fails, name


def _code_only(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_shellcheck_is_the_real_binary():
    out = subprocess.run([_tool("shellcheck"), "--version"], capture_output=True, text=True)
    assert "ShellCheck" in out.stdout and shutil.which("actionlint", path=str(BIN))


# -- scripts/bootstrap, the first step of every workflow job ---------------------------------
@pytest.mark.parametrize("installed,stopped", [
    ({"openssh-server", "openssh-client"}, ["docker-registry"]),
    (set(), ["docker-registry", "ssh"]),
    ({"docker-registry", "openssh-server"}, []),
])
def test_bootstrap_stops_only_services_it_installed(tmp_path, installed, stopped):
    """`scripts/bootstrap --dev` as root installs the registry and OpenSSH for the tests and
    stops the system services a fresh install starts - but never a service of a package
    the machine already had (a host's own sshd is how people reach it). Run for real on a
    PATH of stand-ins for apt-get, dpkg-query, systemctl and id that log what they are
    asked."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts/bootstrap", repo / "scripts/bootstrap")
    (repo / "requirements.txt").write_text("")
    (repo / "requirements-dev.txt").write_text("")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "sha256sum", "cut", "basename", "dirname", "touch", "mkdir"):
        found = shutil.which(tool, path="/usr/bin:/bin")
        assert found, tool
        (bin_dir / tool).symlink_to(found)

    def stub(path: Path, body: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/bash\necho \"$(basename \"$0\") $*\" >> {log}\n{body}\n")
        path.chmod(0o755)

    stub(repo / ".venv/bin/python", "exit 0")
    stub(repo / ".tools/node/node_modules/.bin/configurable-http-proxy", "exit 0")
    stub(repo / ".tools/checkov/bin/checkov", "exit 0")
    stub(bin_dir / "id", "echo 0")
    stub(bin_dir / "apt-cache", "exit 0")
    stub(bin_dir / "apt-get", "exit 0")
    stub(bin_dir / "systemctl", "exit 0")              # every unit reports active
    cases = " ".join(f'"{pkg}"' for pkg in sorted(installed)) or '"-none-"'
    stub(bin_dir / "dpkg-query",
         f'pkg="${{!#}}"; case "$pkg" in {cases.replace(" ", "|")}) '
         'echo -n "install ok installed";; *) exit 1;; esac')
    result = subprocess.run([str(bin_dir / "bash"), str(repo / "scripts/bootstrap"), "--dev"],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    wanted = [p for p in ("docker-registry", "skopeo", "openssh-server", "openssh-client")
              if p not in installed]
    install = [c for c in calls if c.startswith("apt-get install")]
    assert len(install) == 1 and install[0].split()[-len(wanted):] == wanted, calls
    disabled = [c.split()[-1] for c in calls if c.startswith("systemctl disable")]
    assert disabled == stopped, calls
