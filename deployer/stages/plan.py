"""`deploy.py plan`: the changed files (real git, or a list), the federation as it was at the
base commit, and the Terraform stacks on disk, handed to the pure rules in model/plan.py.

Two more sources, read from GitHub through the adapter when asked (token and repository
from the workspace's env, $GITHUB_TOKEN and $GITHUB_REPOSITORY):
- `labels_from_github`: the labels of the merged pull request(s) of the head commit, so a
  push to main honours `deploy:skip` / `deploy:all` as the PR's plan did;
- `since_deployed`: each member's base is the commit of its last successful GitHub
  Deployment (`deploy --record` writes them), so a member whose deploy failed, was
  cancelled or skipped is planned again by the next run, until it has caught up."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deployer.adapters.git import Git, GitError
from deployer.errors import ConfigError
from deployer.model import federation as federation_mod, plan as plan_mod
from deployer.model.federation import FEDERATION_FILE, Federation
from deployer.model.workspace import Workspace
from deployer.model.yamlio import load_text

ZERO_SHA = "0" * 40
UNKNOWN_BASE = "the base commit is unknown (a new branch or a force push)"
REPOSITORY = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass
class PlanResult:
    """A plan with the commits it compares and the federation as the head commit has it."""

    plan: plan_mod.Plan
    base: str | None
    head: str
    changes: list[plan_mod.Change]
    labels: list[str] = field(default_factory=list)
    deployed: dict[str, str | None] | None = None    # --since-deployed: member -> sha
    federation: Federation | None = None

    def to_json(self) -> dict:
        extra = {"deployed": self.deployed} if self.deployed is not None else {}
        return plan_mod.to_json(self.federation, self.plan, base=self.base, head=self.head,
                                changed=[c.path for c in self.changes], labels=self.labels,
                                **extra)

    def markdown(self) -> str:
        span = f"`{self.base[:10]}...{self.head[:10]}`" if self.base else f"`{self.head[:10]}`"
        if self.deployed is not None:
            span += " (each member since its last deploy)"
        return plan_mod.markdown(self.federation, self.plan, title=f"Deploy plan for {span}")


def make_plan(ws: Workspace, *, base: str | None, head: str = "HEAD",
              changed_files: Path | None = None, labels: list[str] = (),
              labels_from_github: bool = False, since_deployed: bool = False) -> PlanResult:
    """Decide what a merge of base...head must do.

    No `base` (and no `changed_files`): no change at all (a manual `--member` plan). An
    all-zero `base` (GitHub's `before` of a new branch) or one that is not a commit here
    (the `before` of a force push) plans every member, and says why. `since_deployed`
    replaces `base` with each member's last deployed commit. The federation and the
    Terraform stacks are read as `head` has them, whatever is checked out (the PR comment
    plans a PR's head from a checkout of the default branch)."""
    git = Git(ws.env, cwd=ws.root, timeout=60)
    head_sha = _resolve(git, head, "--head")
    fed = _federation_of(ws, git, head_sha)
    stacks = _stacks(git, head_sha)
    labels = [label.strip() for label in labels if label.strip()]
    base = (base or "").strip() or None
    if since_deployed and (base is not None or changed_files is not None):
        raise ConfigError("--since-deployed finds each member's base itself: give no --base "
                          "or --changed-files with it")
    if since_deployed and not fed.records.get("github_deployments"):
        raise ConfigError("--since-deployed reads the GitHub Deployments that deploy --record "
                          "writes: set records.github_deployments: true",
                          file=FEDERATION_FILE)
    deployed: dict[str, str | None] | None = None
    if labels_from_github or since_deployed:
        with _github(ws) as (client, repository):
            if labels_from_github:
                for _, names in client.merged_pulls_of(repository, head_sha):
                    labels += [n for n in names if n not in labels]
            if since_deployed:
                deployed = {name: client.last_successful_deployment(repository, name)
                            for name in fed.members}
    if deployed is not None:
        plan = _since_deployed(fed, stacks, git, head_sha, deployed, labels)
        return PlanResult(plan, None, head_sha, [], labels, deployed, fed)

    unknown, base_sha, fork_point = None, None, None
    if base is not None and base.strip("0") == "":
        unknown = UNKNOWN_BASE
    elif base is not None:
        base_sha = _try_resolve(git, base)
        if base_sha is None and not re.fullmatch(r"[0-9a-f]{40}", base.strip()):
            # only a commit hash can be missing after a force push; a name is a typo
            raise ConfigError(f"--base {base[:60]}: not a commit in this repository",
                              hint="give a branch, tag or commit this checkout has")
        if base_sha is None:
            unknown = (f"the base commit {base[:12]} is not in this checkout (a force push, "
                       "or history not fetched)")
        else:
            found = git.run("merge-base", base_sha, head_sha, check=False)
            fork_point = found.stdout.strip() if found.ok else None
            if not fork_point:
                unknown = f"the base commit {base[:12]} shares no history with the head"
                base_sha = None
    if changed_files is not None:
        changes, unknown = _read_changes(changed_files), None
    elif base_sha is not None:
        changes = diff(git, base_sha, head_sha)
    else:
        changes = []
    # the federation where head left base (what `git diff base...head` compares with), not
    # base's own: what base gained since (a member added) is no change of head's
    base_fed = _federation_at(git, fork_point) if base_sha else None
    plan = plan_mod.decide(fed, changes, labels=labels, base_federation=base_fed,
                           stacks=stacks, unknown_base=unknown)
    if unknown and unknown != UNKNOWN_BASE:
        plan.notes.insert(0, f"{unknown}: every member is planned")
    return PlanResult(plan, base_sha, head_sha, changes, labels, federation=fed)


def _since_deployed(fed: Federation, stacks: dict[str, str], git: Git, head_sha: str,
                    deployed: dict[str, str | None], labels: list[str]) -> plan_mod.Plan:
    """Each member planned when what changed since its last successful deploy touches it
    (the same rules as a diff), or when that deploy is unknown or not in head's history."""
    plan = plan_mod.Plan()
    since: dict[str, plan_mod.Plan] = {}      # one diff per distinct deployed commit
    newer: set[str] = set()                   # members that run a newer commit than head
    for name in fed.members:
        sha = deployed.get(name)
        if not sha:
            plan.member(name, "no successful deploy of it is recorded (GitHub Deployments)")
            continue
        found = _try_resolve(git, sha)
        if found is not None and found != head_sha and git.is_ancestor(head_sha, found):
            # a re-run of an older run: deploying its commit would take the member back
            newer.add(name)
            plan.notes.append(f"{name} runs {found[:10]}, which is newer than "
                              f"{head_sha[:10]}: it is not deployed (to go back on purpose: "
                              f"./deploy.py deploy {name} --allow-older from a checkout of "
                              "that commit, or ./deploy.py rollback)")
            continue
        if found is None or not git.is_ancestor(found, head_sha):
            plan.member(name, f"its last deployed commit {sha[:10]} is not in the history of "
                              f"{head_sha[:10]}")
            continue
        if found == head_sha:
            continue
        if found not in since:
            since[found] = plan_mod.decide(fed, diff(git, found, head_sha),
                                           base_federation=_federation_at(git, found),
                                           stacks=stacks)
        behind = since[found]
        if name in behind.members:
            for reason in behind.members[name].reasons:
                plan.member(name, f"{reason} (since its last deploy, {found[:10]})")
    for behind in since.values():
        plan.notes += [note for note in behind.notes if note not in plan.notes]
        plan.ignored += [path for path in behind.ignored if path not in plan.ignored]
    plan_mod.apply_labels(plan, fed, labels)
    for name in newer:        # not even for deploy:all: that would take them back
        plan.members.pop(name, None)
    return plan


def comment_pull_plans(ws: Workspace, *, head_sha: str, head_repo: str, marker: str,
                       repository: str | None = None,
                       remote: str = "origin") -> list[tuple[int, object]]:
    """The plan comment of the open pull request(s) whose head is `head_sha` of `head_repo`
    (what GitHub's workflow_run event says, not anything the PR's run wrote), recomputed
    here: the PR's head and base are fetched with git (objects only: nothing of the PR is
    checked out or run) and planned with this checkout's code, labels from the API.
    Returns (PR number, Comment) for each comment made or updated."""
    if not re.fullmatch(r"[0-9a-f]{40}", head_sha):
        raise ConfigError(f"--head-sha must be a full commit sha, not {head_sha[:50]!r}")
    if not REPOSITORY.fullmatch(head_repo):
        raise ConfigError(f"--head-repo must be owner/name, not {head_repo[:80]!r}")
    if not re.fullmatch(r"[\w][\w.-]*", remote):
        raise ConfigError(f"--remote must be a git remote's name, not {remote[:80]!r}")
    done = []
    with _github(ws, "comment", repository) as (client, repository):
        pulls = client.open_pulls_with_head(repository, head_sha, head_repo)
        if not pulls:
            ws.console.info(f"no open pull request of {repository} has head {head_sha[:10]} "
                            f"from {head_repo}: nothing to comment")
        for pull in pulls:
            fetch_pull(ws, pull.number, pull.base_ref, remote)
            result = make_plan(ws, base=pull.base_sha, head=pull.head_sha,
                               labels=list(pull.labels))
            done.append((pull.number, client.upsert_comment(repository, pull.number, marker,
                                                            result.markdown()[:60000])))
    return done


def fetch_pull(ws: Workspace, number: int, base_ref: str, remote: str = "origin") -> None:
    """`git fetch` a pull request's head (refs/pull/N/head, a fork's too) and its base
    branch: read-only git, nothing is checked out."""
    if not re.fullmatch(r"[\w.][\w./-]*", base_ref) or ".." in base_ref:
        raise ConfigError(f"pull request #{number}: unexpected base branch {base_ref[:80]!r}")
    git = Git(ws.env, cwd=ws.root, console=ws.console)
    git.run("fetch", "--quiet", "--no-tags", "--no-recurse-submodules", remote,
            f"+refs/pull/{int(number)}/head:refs/remotes/{remote}/pull/{int(number)}/head",
            f"+refs/heads/{base_ref}:refs/remotes/{remote}/{base_ref}")


@contextmanager
def _github(ws: Workspace, what: str = "--labels-from-github and --since-deployed",
            repository: str | None = None):
    """(client, repository) from the workspace's $GITHUB_TOKEN and $GITHUB_REPOSITORY
    (or `repository`)."""
    from deployer.adapters.github import DEFAULT_API, GitHub

    token = ws.env.get("GITHUB_TOKEN")
    repository = repository or ws.env.get("GITHUB_REPOSITORY") or ""
    if not token or not REPOSITORY.fullmatch(repository):
        raise ConfigError(f"{what} reads GitHub: $GITHUB_TOKEN and $GITHUB_REPOSITORY "
                          "(owner/name) are needed")
    with GitHub(token, api_url=ws.env.get("GITHUB_API_URL") or DEFAULT_API,
                console=ws.console) as client:
        yield client, repository


def diff(git: Git, base: str, head: str) -> list[plan_mod.Change]:
    """`git diff --name-status -M base...head` (what head changed since it left base)."""
    out = git.output("diff", "--name-status", "-M", "--no-color", "--no-ext-diff",
                     "--no-textconv", "-z", f"{base}...{head}")
    fields = out.split("\0") if out else []
    changes, i = [], 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        if status.startswith(("R", "C")):
            changes.append(plan_mod.Change(status[0], fields[i + 2], fields[i + 1]))
            i += 3
        else:
            changes.append(plan_mod.Change(status[0], fields[i + 1]))
            i += 2
    return changes


def _resolve(git: Git, ref: str, option: str) -> str:
    try:
        return git.output("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        raise ConfigError(f"{option} {ref}: not a commit in this repository",
                          hint="fetch enough history (actions/checkout with fetch-depth: 0)"
                          ) from None


def _try_resolve(git: Git, ref: str) -> str | None:
    """The commit `ref` names here, or None."""
    if ref.startswith("-"):
        return None
    result = git.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() if result.ok and result.stdout.strip() else None


def _federation_at(git: Git, sha: str) -> dict | None:
    """config/federation.yaml at `sha` as data (None when absent or unreadable)."""
    result = git.run("show", f"{sha}:{FEDERATION_FILE}", check=False)
    if not result.ok:
        return None
    try:
        data = load_text(result.stdout, f"{sha[:10]}:{FEDERATION_FILE}").data
    except ConfigError:
        return None
    return data if isinstance(data, dict) else None


def _federation_of(ws: Workspace, git: Git, sha: str) -> Federation:
    """config/federation.yaml as commit `sha` has it: the workspace's own when the file on
    disk is the same, else parsed and checked from the commit."""
    result = git.run("show", f"{sha}:{FEDERATION_FILE}", check=False)
    if not result.ok:
        raise ConfigError(f"{FEDERATION_FILE} is not in commit {sha[:10]}",
                          hint="--head must be a commit of this federation's repository")
    try:
        on_disk = (ws.root / FEDERATION_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        on_disk = None
    if on_disk == result.stdout:
        return ws.federation
    return federation_mod.from_document(load_text(result.stdout,
                                                  f"{sha[:10]}:{FEDERATION_FILE}"))


def _stacks(git: Git, sha: str) -> dict[str, str]:
    """Each Terraform stack (terraform/members/<name>/) at commit `sha` and the text of its
    .tf files."""
    listed = git.output("ls-tree", "-r", "-z", "--name-only", sha, "--", "terraform/members/")
    files: dict[str, list[str]] = {}
    for path in sorted(p for p in listed.split("\0") if p):
        parts = path.split("/")
        if len(parts) < 4:
            continue
        tf = files.setdefault(parts[2], [])
        if len(parts) == 4 and parts[3].endswith(".tf"):
            tf.append(path)
    return {name: "\n".join(git.output("show", f"{sha}:{path}") for path in paths)
            for name, paths in sorted(files.items())}


def _read_changes(path: Path) -> list[plan_mod.Change]:
    """A file of changed paths, one per line (or `STATUS<TAB>path` as git prints them)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the changed files list: {exc}", file=str(path)) from None
    changes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0][:1] in "ACDMRT" and len(parts[0]) <= 4:
            if parts[0][:1] in "RC" and len(parts) == 3:      # renamed or copied: old, new
                changes.append(plan_mod.Change(parts[0][:1], parts[2], parts[1]))
            else:
                changes.append(plan_mod.Change(parts[0][:1], parts[1]))
        else:
            changes.append(plan_mod.Change("M", line.strip()))
    return changes
