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
from tests.fakes.github import GitHubDouble
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
    """A git repository with the example federation (and two small Terraform stacks of its
    own, not the repository's) committed."""
    repo = tmp_path / "federation"
    repo.mkdir()
    parts = [part for part in REPO_PARTS if part != "terraform"]
    for part in (*parts, "deployer", "README.md", "requirements.txt", "deploy.py", ".gitignore"):
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
    return make_plan(ws, base=base, head=head, **kwargs).to_json()


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
                   "provider": "gke", "cloud_login": True,
                   "reasons": "mybinder/values.yaml changed"}
    # members reached with a sops-encrypted kubeconfig (the bare-metal ones) are not
    cloud = {r["member"]: r["cloud_login"] for r in plan["matrices"]["validate"]["include"]}
    assert cloud == {"staging": True, "gke": True, "aws": True, "hetzner-fsn": False,
                     "uni-lab": False}


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
    # staging's redirector routes to staging alone: production weights do not reach it
    assert set(plan["members"]) == {"aws", "gke"}
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
        d["prerequisites"]["cert-manager"]["members"].remove("uni-lab")
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


@pytest.mark.parametrize("edit,where,var", [
    (lambda m: m.update(kubernetes_version="1.35"), "kubernetes_version", "kubernetes_version"),
    (lambda m: m["domains"].update(binder="fsn2.example-binder.org"), "domains.binder",
     "domain"),
    (lambda m: m.update(cluster={"provider": "gke", "project": "example-moved",
                                 "zone": "europe-west3-a",
                                 "name": m["release"]["name"]}),
     "cluster.provider", "provider_kind"),
], ids=["kubernetes_version", "domains.binder", "cluster.provider"])
def test_a_federation_value_a_stack_gets_as_a_var_plans_that_stack(history, edit, where, var):
    """kubernetes_version, domains.binder and cluster.provider reach the member's stack as
    -var: changing one in config/federation.yaml plans that stack (and deploys the
    member), with the reason; a member without a stack plans none."""
    def change_both(d):
        edit(d["members"]["hetzner-fsn"])
        edit(d["members"]["aws"])                  # no terraform/members/aws/
    base, head = change(history, {"config/federation.yaml":
                                  edit_yaml(history, "config/federation.yaml", change_both)})
    plan = planned(history, base, head)
    assert plan["stacks"] == {"hetzner-fsn": [
        f"config/federation.yaml: members.hetzner-fsn.{where} changed (-var {var})"]}
    assert [r["stack"] for r in plan["matrices"]["terraform"]["include"]] == ["hetzner-fsn"]
    assert {"hetzner-fsn", "aws"} <= set(plan["members"])


def test_other_federation_changes_plan_no_stack(history):
    """Weights, smoke tests, hub and static domains are not -vars of any stack."""
    def edit(d):
        d["members"]["hetzner-fsn"]["federation"]["weight"] = 5
        d["members"]["hetzner-fsn"]["domains"]["hub"] = "hub2.fsn.example-binder.org"
        d["members"]["gke"]["smoke"]["timeout_seconds"] = 900
    base, head = change(history, {"config/federation.yaml":
                                  edit_yaml(history, "config/federation.yaml", edit)})
    plan = planned(history, base, head)
    assert plan["stacks"] == {} and plan["has"]["terraform"] is False
    assert {"hetzner-fsn", "gke"} <= set(plan["members"])


def test_the_stack_vars_agree_with_what_terraform_passes(history):
    """The plan's key paths are the ones model/terraform.federation_vars reads."""
    from deployer.model.plan import TERRAFORM_KEYS, _at
    from deployer.model.terraform import federation_vars

    ws = Workspace(root=history, env={"PATH": "/usr/bin:/bin"})
    raw = yaml.safe_load((history / "config/federation.yaml").read_text())["members"]
    for name, member in ws.federation.members.items():
        passed = federation_vars(member)
        assert set(passed) == {"member_name", *TERRAFORM_KEYS}
        assert passed["member_name"] == name
        for var, keys in TERRAFORM_KEYS.items():
            assert passed[var] == _at(raw[name], keys), (name, var)


def test_a_member_added_with_its_stack_plans_the_stack(history):
    def edit(d):
        entry = yaml.safe_load(yaml.safe_dump(d["members"]["hetzner-fsn"]))
        entry["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-hel.yaml"
        entry["release"] = {"name": "hetzner-hel", "namespace": "hetzner-hel"}
        entry["domains"] = {k: v.replace("fsn", "hel") for k, v in entry["domains"].items()}
        d["members"]["hetzner-hel"] = entry
    base, head = change(history, {
        "config/federation.yaml": edit_yaml(history, "config/federation.yaml", edit),
        "terraform/members/hetzner-hel/main.tf":
            'module "cluster" {\n  source = "../../modules/hetzner-k3s"\n}\n'})
    plan = planned(history, base, head)
    assert plan["stacks"] == {"hetzner-hel": [
        "config/federation.yaml: member hetzner-hel added (-var member_name)",
        "terraform/members/hetzner-hel/main.tf added"]}


@pytest.mark.parametrize("path", ["secrets/terraform/hetzner-fsn.yaml",
                                  "secrets/terraform/hetzner-fsn.tfstate"])
def test_a_stacks_secrets_and_state_plan_that_stack_only(history, path):
    """secrets/terraform/<m>.yaml (the stack's secret variables) and .tfstate (its state on
    a local backend) plan stack m: no other stack, and no member's deploy."""
    old = history / path
    verb = "changed" if old.exists() else "added"
    base, head = change(history, {path: (old.read_text() if old.exists() else "") + "\n"})
    plan = planned(history, base, head)
    assert plan["stacks"] == {"hetzner-fsn": [f"{path} {verb}"]}
    assert plan["members"] == {}, "nothing is deployed (it was: 'not a known path')"
    assert plan["notes"] == []
    # a stack's secrets file for a member without a stack plans nothing, and says so
    base, head = change(history, {"secrets/terraform/aws.yaml": "x: 1\n"})
    plan = planned(history, base, head)
    assert plan["stacks"] == {} and plan["members"] == {}
    assert any("no stack terraform/members/aws/" in note for note in plan["notes"])
    # another file there is no stack's: every stack is planned (still no member deploys)
    base, head = change(history, {"secrets/terraform/shared.json": "{}\n"})
    plan = planned(history, base, head)
    assert sorted(plan["stacks"]) == ["gke", "hetzner-fsn"] and plan["members"] == {}


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


def test_a_bad_head_is_one_clear_line(history):
    result = run_cli(history, "plan", "--base", "HEAD", "--head", "no-such-ref")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --head no-such-ref: not a commit in this repository (hint: fetch enough "
        "history (actions/checkout with fetch-depth: 0))"]


def test_a_mistyped_base_name_is_one_clear_line(history):
    result = run_cli(history, "plan", "--base", "origin/mian")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --base origin/mian: not a commit in this repository (hint: give a branch, "
        "tag or commit this checkout has)"]


def test_a_base_this_checkout_lacks_plans_every_member_and_says_why(history):
    """After a force push, the push's `before` is a commit the checkout does not have: the
    plan deploys every member (and says why) instead of failing and deploying nothing."""
    gone = "1234567890abcdef" * 2 + "12345678"
    plan = planned(history, gone)
    assert list(plan["members"]) == EVERYONE
    assert "1234567890ab is not in this checkout" in plan["members"]["aws"][0]
    assert "every member is planned" in plan["notes"][0]
    # (a name that does not resolve is a typo, not a force push: see the test above)


def test_a_base_with_no_common_history_plans_every_member(history):
    git(history, "checkout", "-q", "--orphan", "elsewhere")
    git(history, "commit", "-q", "-m", "unrelated")
    other = git(history, "rev-parse", "HEAD")
    git(history, "checkout", "-q", "main")
    plan = planned(history, other)
    assert list(plan["members"]) == EVERYONE
    assert "shares no history" in plan["members"]["gke"][0]


def test_a_member_without_a_base_plans_that_member_only(history):
    """A manual dispatch (`plan --member X`, no --base) deploys X, not every member."""
    change(history, {"config/common.yaml": (history / "config/common.yaml").read_text()
                     + "\n# touched\n"})
    assert planned(history, None)["members"] == {}
    result = run_cli(history, "plan", "--member", "aws", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["members"] == {"aws": ["requested by hand (--member)"]}
    assert [r["member"] for r in data["matrices"]["production"]["include"]] == ["aws"]
    assert data["matrices"]["staging"] == {"include": []}
    by_role = json.loads(run_cli(history, "plan", "--member", "staging", "--json").stdout)
    assert list(by_role["members"]) == ["staging"]
    # an empty --base (an event without `before`) is no base either
    assert run_cli(history, "plan", "--base", "").returncode == 2


def run_cli(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv/bin/python"), str(ROOT / "deploy.py"), "--root",
                           str(repo), *map(str, args)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=120)


# -- GitHub as a source: the merged PR's labels, each member's last deploy -----------------
FED = "example/federation"


@pytest.fixture
def gh():
    with GitHubDouble() as double:
        double.add_repo(FED)
        yield double


def github_env(gh) -> dict:
    return {"GITHUB_TOKEN": gh.token, "GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": FED}


def planned_from_github(repo: Path, gh, **kwargs) -> dict:
    ws = Workspace(root=repo, env={"PATH": "/usr/bin:/bin", **github_env(gh)})
    return make_plan(ws, **kwargs).to_json()


def merged_pull(gh, sha: str, number: int, labels: list[str]) -> None:
    """A merged pull request labelled `labels` that commit `sha` belongs to."""
    gh.add_upstream_history(FED, [(None, f"PR {number}", number, f"PR {number}", labels)],
                            branch=f"merged-{number}")
    gh.associate_pull(FED, sha, number)


def test_a_push_honours_the_labels_of_its_merged_pull_request(history, gh):
    """Merging a `deploy:skip` PR deploys nothing: the push's plan reads the merged PR's
    labels from GitHub (GET /repos/{r}/commits/{sha}/pulls), not only the PR's plan."""
    base, head = change(history, {"config/aws.yaml": (history / "config/aws.yaml").read_text()
                                  + "\n"})
    gh.import_git(FED, history, head)           # pushed: GitHub knows the commits
    merged_pull(gh, head, 41, ["deploy:skip", "documentation"])
    before = len(gh.counted())
    plan = planned_from_github(history, gh, base=base, head=head, labels_from_github=True)
    assert plan["skipped"] and plan["matrices"]["production"] == {"include": []}
    assert plan["labels"] == ["deploy:skip", "documentation"]
    assert any("deploy:skip" in note for note in plan["notes"])
    assert len(gh.counted()) - before == 1, gh.counted()[before:]
    merged_pull(gh, base, 42, ["deploy:all"])
    everything = planned_from_github(history, gh, base=base, head=base,
                                     labels_from_github=True)
    assert list(everything["members"]) == EVERYONE
    # through the CLI, as deploy.yaml runs it; without a token it is a clear error
    result = run_cli(history, "plan", "--base", base, "--head", head, "--labels-from-github",
                     "--json", env=github_env(gh))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] is True
    result = run_cli(history, "plan", "--base", base, "--labels-from-github")
    assert result.returncode == 2 and "$GITHUB_TOKEN" in result.stderr


def record(gh, member: str, sha: str, *states: str) -> None:
    """A GitHub Deployment of `sha` to `member` with these statuses, as deploy --record."""
    from deployer.adapters.github import GitHub

    with GitHub(gh.token, api_url=gh.url, write_interval=0, request_interval=0) as client:
        repo = client.client.get_repo(FED)
        deployment = repo.create_deployment(sha, environment=member, required_contexts=[],
                                            auto_merge=False)
        for state in states:
            deployment.create_status(state)


def test_since_deployed_plans_each_member_from_its_last_successful_deploy(history, gh):
    """A member whose deploy failed, was rolled back or never happened stays planned until
    a run brings it up to date; one up to date is not planned."""
    c0 = git(history, "rev-parse", "HEAD")
    _, c1 = change(history, {"config/aws.yaml": (history / "config/aws.yaml").read_text()
                             + "\n"})
    _, c2 = change(history, {"config/gke.yaml": (history / "config/gke.yaml").read_text()
                             + "\n"})
    _, c3 = change(history, {"README.md": "# docs\n"})
    record(gh, "staging", c2, "success")
    record(gh, "staging", c3, "inactive")      # rolled back: staging runs c2's deploy
    record(gh, "aws", c0, "success")
    record(gh, "aws", c1, "success")           # marks c0's inactive, as GitHub does
    record(gh, "gke", c1, "success")
    record(gh, "gke", c3, "failure")           # failed: gke still runs c1
    record(gh, "uni-lab", "f" * 40, "success")  # not in this history (a force push)
    before = len(gh.counted())
    plan = planned_from_github(history, gh, base=None, since_deployed=True)
    assert plan["members"] == {
        "gke": [f"config/gke.yaml changed (since its last deploy, {c1[:10]})"],
        "hetzner-fsn": ["no successful deploy of it is recorded (GitHub Deployments)"],
        "uni-lab": [f"its last deployed commit ffffffffff is not in the history of "
                    f"{c3[:10]}"]}
    assert plan["deployed"] == {"staging": c2, "gke": c1, "aws": c1, "hetzner-fsn": None,
                                "uni-lab": "f" * 40}
    assert [r["member"] for r in plan["matrices"]["production"]["include"]] == \
        ["gke", "hetzner-fsn", "uni-lab"]
    assert plan["ignored"] == ["README.md"]
    requests = gh.counted()[before:]
    lists = [path for _, path in requests if "/deployments?" in path or
             path.endswith("/deployments 200")]
    assert len(lists) == 5, requests          # one list per member
    assert len(requests) == 11, requests      # + the statuses of the deployments looked at
    # deploy:all still deploys everyone; deploy:skip nothing
    assert list(planned_from_github(history, gh, base=None, since_deployed=True,
                                    labels=["deploy:all"])["members"]) == EVERYONE
    # through the CLI, as deploy.yaml runs it
    result = run_cli(history, "plan", "--since-deployed", "--json", env=github_env(gh))
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["members"]) == ["gke", "hetzner-fsn", "uni-lab"]
    bad = run_cli(history, "plan", "--since-deployed", "--base", c0, env=github_env(gh))
    assert bad.returncode == 2 and "--since-deployed" in bad.stderr


def test_since_deployed_with_every_member_up_to_date_plans_nothing(history, gh):
    head = git(history, "rev-parse", "HEAD")
    for member in EVERYONE:
        record(gh, member, head, "success")
    plan = planned_from_github(history, gh, base=None, since_deployed=True)
    assert plan["members"] == {} and plan["has"]["production"] is False
    # without deploy records there is nothing to plan from: an error, not "deploy all"
    change(history, {"config/federation.yaml": edit_yaml(
        history, "config/federation.yaml", lambda d: d["records"].update(
            github_deployments=False))})
    result = run_cli(history, "plan", "--since-deployed", env=github_env(gh))
    assert result.returncode == 2 and "records.github_deployments" in result.stderr


# -- the PR plan comment: found from the event, recomputed from git -------------------------
MARKER = "<!-- binderhub-deployer:plan -->"


def test_the_pr_comment_is_recomputed_for_the_pr_the_event_names(history, gh, tmp_path):
    """pr-comment.yaml trusts nothing a PR's run wrote: `comment --head-sha --head-repo`
    finds the open PR with that head in that repository, fetches its head and base with
    git and posts the plan computed here. A fork PR with the same head commit, and a
    person's comment that starts with the marker, change nothing."""
    git(history, "checkout", "-q", "-b", "feature")
    _, head = change(history, {"config/aws.yaml": (history / "config/aws.yaml").read_text()
                               + "\n"})
    git(history, "checkout", "-q", "main")
    gh.import_git(FED, history, "main")
    gh.import_git(FED, history, "feature", branch="feature")
    ours = gh.open_pull(FED, "feature", title="aws values")["number"]
    gh.add_fork(FED, "mallory")
    theirs = gh.open_pull(FED, "feature", head_repo="mallory/federation",
                          user="mallory")["number"]
    gh.add_comment(FED, ours, f"{MARKER}\nnothing to deploy, trust me", user="mallory")
    # the origin GitHub serves: the PR's head only as refs/pull/N/head
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--no-local", "--bare", "--single-branch", "-b", "main",
        str(history), str(origin))
    git(history, "push", "-q", str(origin), f"{head}:refs/pull/{ours}/head")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", "--no-local", str(origin), str(checkout))
    assert subprocess.run(["git", "-C", str(checkout), "cat-file", "-e", head]).returncode != 0
    env = github_env(gh)
    result = run_cli(checkout, "comment", "--head-sha", head, "--head-repo", FED, env=env)
    assert result.returncode == 0, result.stderr
    comments = {c["id"]: c for c in gh.repos[FED].comments.values()}
    bots = [c for c in comments.values() if c.get("user") != "mallory"]
    assert len(bots) == 1 and bots[0]["issue"] == ours
    body = bots[0]["body"]
    assert body.startswith(MARKER) and "| `aws` | production | production | " \
        "config/aws.yaml changed |" in body and "`gke`" not in body
    assert f"{MARKER}\nnothing to deploy, trust me" in [c["body"] for c in comments.values()]
    assert not any(c["issue"] == theirs for c in comments.values())
    # a label on the PR is in the recomputed plan; the comment is updated, not duplicated
    gh.handle("POST", f"/repos/{FED}/issues/{ours}/labels", {}, {"labels": ["deploy:skip"]})
    assert run_cli(checkout, "comment", "--head-sha", head, "--head-repo", FED,
                   env=env).returncode == 0
    bots = [c for c in gh.repos[FED].comments.values() if c.get("user") != "mallory"]
    assert len(bots) == 1 and "validate only" in bots[0]["body"]
    # the event of another repository's (a fork's) run never reaches this PR's comment
    result = run_cli(checkout, "comment", "--head-sha", head, "--head-repo", "eve/federation",
                     env=env)
    assert result.returncode == 0 and "nothing to comment" in result.stderr
    assert len(gh.repos[FED].comments) == 2
    bad = run_cli(checkout, "comment", "--head-sha", "HEAD", "--head-repo", FED, env=env)
    assert bad.returncode == 2 and "full commit sha" in bad.stderr


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



def test_prerequisite_values_and_pins_plan_the_members_that_get_them(history):
    # config/cert-manager/common.yaml feeds every member that gets cert-manager
    path = "config/cert-manager/common.yaml"
    base, head = change(history, {path: (history / path).read_text() + "\n# touched\n"})
    plan = planned(history, base, head)
    assert plan["members"] == {"hetzner-fsn": [f"{path} changed"],
                               "uni-lab": [f"{path} changed"]}
    # a member's own layer feeds that member only
    base, head = change(history, {"config/cert-manager/uni-lab.yaml": "replicaCount: 2\n"})
    assert planned(history, base, head)["members"] == {
        "uni-lab": ["config/cert-manager/uni-lab.yaml added"]}
    # the pin (a bump) reaches its members; giving it to another member reaches that one too
    text = edit_yaml(history, "config/federation.yaml",
                     lambda d: d["prerequisites"]["cert-manager"].update(
                         version="v1.19.7", members=["hetzner-fsn", "uni-lab", "aws"]))
    base, head = change(history, {"config/federation.yaml": text})
    plan = planned(history, base, head)
    assert list(plan["members"]) == ["aws", "hetzner-fsn", "uni-lab"]
    assert plan["members"]["aws"] == [
        "config/federation.yaml: prerequisites.cert-manager changed"]


def test_a_member_added_to_the_federation_reaches_every_redirector(history):
    def edit(d):
        entry = yaml.safe_load(yaml.safe_dump(d["members"]["hetzner-fsn"]))
        entry["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-hel.yaml"
        entry["release"] = {"name": "hetzner-hel", "namespace": "hetzner-hel"}
        entry["domains"] = {k: v.replace("fsn", "hel") for k, v in entry["domains"].items()}
        d["members"]["hetzner-hel"] = entry
    base, head = change(history, {
        "config/federation.yaml": edit_yaml(history, "config/federation.yaml", edit)})
    plan = planned(history, base, head)
    # staging's redirector routes to staging alone: a new member does not reach it
    assert set(plan["members"]) == {"hetzner-hel", "gke"}
    assert plan["members"]["gke"] == [
        "config/federation.yaml: member hetzner-hel added; gke runs the federation redirector"]


def test_a_member_added_outside_the_federation_reaches_only_itself(history):
    def edit(d):
        entry = yaml.safe_load(yaml.safe_dump(d["members"]["hetzner-fsn"]))
        del entry["federation"]
        entry["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-hel.yaml"
        entry["release"] = {"name": "hetzner-hel", "namespace": "hetzner-hel"}
        entry["domains"] = {k: v.replace("fsn", "hel") for k, v in entry["domains"].items()}
        d["members"]["hetzner-hel"] = entry
    base, head = change(history, {
        "config/federation.yaml": edit_yaml(history, "config/federation.yaml", edit)})
    assert list(planned(history, base, head)["members"]) == ["hetzner-hel"]


def planned_federation_edit(repo: Path, fn) -> dict:
    """The plan of one commit that edits config/federation.yaml with `fn`."""
    base, head = change(repo, {"config/federation.yaml":
                               edit_yaml(repo, "config/federation.yaml", fn)})
    return planned(repo, base, head)


def test_a_change_of_a_member_no_redirector_routes_to_reaches_no_redirector(history):
    """Production redirectors route only to members with a federation block: a change of
    staging's domains, or of another unrouted member's, or its removal, deploys that member
    alone (gke's values do not change), not the production redirector."""
    def staging_domain(d):
        d["members"]["staging"]["domains"]["binder"] = "stage.example-binder.org"
    assert list(planned_federation_edit(history, staging_domain)["members"]) == ["staging"]

    def unrouted(d):
        del d["members"]["aws"]["federation"]
    assert "gke" in planned_federation_edit(history, unrouted)["members"], \
        "aws left the redirector"

    def aws_domain(d):
        d["members"]["aws"]["domains"]["binder"] = "aws2.example-binder.org"
    assert list(planned_federation_edit(history, aws_domain)["members"]) == ["aws"]

    def removed(d):
        del d["members"]["aws"]
    plan = planned_federation_edit(history, removed)
    assert plan["members"] == {} and any("aws was removed" in n for n in plan["notes"])


def test_the_head_commit_not_the_checkout_gives_the_federation_and_stacks(history):
    """The PR comment plans a PR's head from a checkout of the default branch: a weight
    change, a member added and a stack added by the PR are planned as the head has them
    (the checkout's federation.yaml used to make the plan say "no changes")."""
    main = git(history, "rev-parse", "HEAD")
    git(history, "checkout", "-q", "-b", "feature")

    def edit(d):
        d["members"]["aws"]["federation"]["weight"] = 25
        entry = yaml.safe_load(yaml.safe_dump(d["members"]["hetzner-fsn"]))
        entry["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-hel.yaml"
        entry["release"] = {"name": "hetzner-hel", "namespace": "hetzner-hel"}
        entry["domains"] = {k: v.replace("fsn", "hel") for k, v in entry["domains"].items()}
        d["members"]["hetzner-hel"] = entry
    _, head = change(history, {
        "config/federation.yaml": edit_yaml(history, "config/federation.yaml", edit),
        "config/hetzner-hel.yaml": "{}\n",
        "terraform/members/hetzner-hel/main.tf":
            'module "cluster" {\n  source = "../../modules/hetzner-k3s"\n}\n'})
    git(history, "checkout", "-q", "main")
    plan = planned(history, main, head)
    assert list(plan["members"]) == ["gke", "aws", "hetzner-hel"]
    assert plan["members"]["aws"] == [
        "config/federation.yaml: members.aws (federation) changed"]
    assert plan["stacks"] == {"hetzner-hel": [
        "config/federation.yaml: member hetzner-hel added (-var member_name)",
        "terraform/members/hetzner-hel/main.tf added"]}
    result = run_cli(history, "plan", "--base", main, "--head", head)
    assert result.returncode == 0, result.stderr
    assert "| `hetzner-hel` | production | production |" in result.stdout
    # a head whose federation.yaml is broken is one clear error naming the commit
    git(history, "checkout", "-q", "feature")
    _, broken = change(history, {"config/federation.yaml": "members: [\n"})
    git(history, "checkout", "-q", "main")
    result = run_cli(history, "plan", "--base", main, "--head", broken)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {broken[:10]}:config/federation.yaml")


def test_a_file_several_members_name_plans_each_of_them(history):
    """A kubeconfig, cloud credentials or smoke build key that several members name (two
    namespaces of one cluster, one service account for one project) plans every member that
    names it: the first one found used to be the only one, and credentials were no member's
    (every member was deployed)."""
    build = {"remote": "git@github.com:example/smoke.git", "spec": "gh/example/smoke",
             "deploy_key": "secrets/smoke-deploy-key.yaml"}

    def share(d):
        d["members"]["uni-lab"]["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-fsn.yaml"
        for name in ("staging", "gke"):
            d["members"][name]["cluster"]["credentials"] = "secrets/credentials/deployer.json"
        for name in ("gke", "aws"):
            d["members"][name]["smoke"]["build"] = dict(build)
    change(history, {"config/federation.yaml":
                     edit_yaml(history, "config/federation.yaml", share)})
    Workspace(root=history, env={}).federation      # the federation is valid
    for path, members in (("secrets/kubeconfigs/hetzner-fsn.yaml", ["hetzner-fsn", "uni-lab"]),
                          ("secrets/credentials/deployer.json", ["staging", "gke"]),
                          ("secrets/smoke-deploy-key.yaml", ["gke", "aws"])):
        old = history / path
        base, head = change(history, {path: (old.read_text() if old.exists() else "") + "\n"})
        plan = planned(history, base, head)
        assert list(plan["members"]) == members, path
        assert plan["notes"] == [], path


def test_since_deployed_never_takes_a_member_back_to_an_older_commit(history, gh):
    """A re-run of an older deploy run plans from its own (older) commit: a member that
    already runs a newer commit is not deployed (it used to be: "not in the history"),
    and the plan says why; a member behind it still is."""
    _, c1 = change(history, {"config/aws.yaml": (history / "config/aws.yaml").read_text()
                             + "\n"})
    _, c2 = change(history, {"config/common.yaml":
                             (history / "config/common.yaml").read_text() + "\n# x\n"})
    for member in EVERYONE:
        record(gh, member, c2, "success")
    record(gh, "aws", "f" * 40, "success")       # a force-pushed-away commit: still planned
    plan = planned_from_github(history, gh, base=None, head=c1, since_deployed=True)
    assert plan["members"] == {"aws": [
        f"its last deployed commit ffffffffff is not in the history of {c1[:10]}"]}
    assert f"gke runs {c2[:10]}, which is newer than {c1[:10]}: it is not deployed (to go " \
        "back on purpose: ./deploy.py deploy gke --allow-older from a checkout of that " \
        "commit, or ./deploy.py rollback)" in plan["notes"]
    assert plan["matrices"]["staging"] == {"include": []}
    # not even deploy:all takes them back (every deploy would be refused as older)
    plan = planned_from_github(history, gh, base=None, head=c1, since_deployed=True,
                               labels=["deploy:all"])
    assert list(plan["members"]) == ["aws"]


def test_a_file_name_that_is_not_utf8_is_planned_not_a_crash(history):
    """git may print any bytes as a path: plan used to stop with a UnicodeDecodeError
    traceback. The name is shown escaped and planned by the same rules."""
    import os

    docs, config = os.fsdecode(b"docs/caf\xe9.md"), os.fsdecode(b"config/caf\xe9.yaml")
    base, head = change(history, {docs: "# x\n"})
    plan = planned(history, base, head)
    assert plan["members"] == {} and plan["ignored"] == ["docs/caf\\xe9.md"]
    base, head = change(history, {config: "x: 1\n"})
    result = run_cli(history, "plan", "--base", base, "--head", head, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data["members"]) == EVERYONE and data["changed"] == ["config/caf\\xe9.yaml"]


def test_what_the_base_branch_gained_since_is_no_change_of_the_head(history):
    """`plan --base origin/main` on a branch after main added a member: the branch's own
    federation change is compared with the federation where it left main, so the new
    member is not reported "removed" (and the redirector not deployed for it)."""
    fork = git(history, "rev-parse", "HEAD")
    git(history, "checkout", "-q", "-b", "feature")
    _, head = change(history, {"config/federation.yaml": edit_yaml(
        history, "config/federation.yaml",
        lambda d: d["members"]["aws"]["federation"].update(weight=25))})
    git(history, "checkout", "-q", "main")

    def added(d):
        entry = yaml.safe_load(yaml.safe_dump(d["members"]["hetzner-fsn"]))
        entry["cluster"]["kubeconfig"] = "secrets/kubeconfigs/hetzner-hel.yaml"
        entry["release"] = {"name": "hetzner-hel", "namespace": "hetzner-hel"}
        entry["domains"] = {k: v.replace("fsn", "hel") for k, v in entry["domains"].items()}
        d["members"]["hetzner-hel"] = entry
    _, main = change(history, {"config/federation.yaml":
                               edit_yaml(history, "config/federation.yaml", added),
                               "config/hetzner-hel.yaml": "{}\n"})
    git(history, "checkout", "-q", "feature")
    plan = planned(history, "main")
    assert plan["base"] == main and plan["head"] == head
    assert plan["members"] == {
        "gke": ["config/federation.yaml: members.aws.federation changed; gke runs the "
                "federation redirector"],
        "aws": ["config/federation.yaml: members.aws (federation) changed"]}
    assert plan["notes"] == [], "hetzner-hel was not removed by the branch"
    assert fork != main


def test_a_changed_files_list_from_git_names_the_new_path_of_a_copy(history, tmp_path):
    """`git diff --name-status -C` prints `C75<TAB>old<TAB>new`: the new path is the
    change (it used to be read as the old path alone)."""
    listed = tmp_path / "changed.txt"
    listed.write_text("C75\tconfig/gke.yaml\tconfig/aws.yaml\nR100\tsecrets/aws.yaml\t"
                      "secrets/uni-lab.yaml\n")
    plan = planned(history, git(history, "rev-parse", "HEAD"), changed_files=listed)
    assert plan["changed"] == ["config/aws.yaml", "secrets/uni-lab.yaml"]
    assert plan["members"] == {"aws": ["config/aws.yaml changed", "secrets/aws.yaml renamed"],
                               "uni-lab": ["secrets/uni-lab.yaml renamed"]}
