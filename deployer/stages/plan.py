"""`deploy.py plan`: the changed files (real git, or a list), the federation as it was at the
base commit, and the Terraform stacks on disk, handed to the pure rules in model/plan.py."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.git import Git, GitError
from deployer.errors import ConfigError
from deployer.model import plan as plan_mod
from deployer.model.federation import FEDERATION_FILE
from deployer.model.workspace import Workspace
from deployer.model.yamlio import load_text

ZERO_SHA = "0" * 40


@dataclass
class PlanResult:
    """A plan with the commits it compares."""

    plan: plan_mod.Plan
    base: str | None
    head: str
    changes: list[plan_mod.Change]

    def to_json(self, ws: Workspace) -> dict:
        return plan_mod.to_json(ws.federation, self.plan, base=self.base, head=self.head,
                                changed=[c.path for c in self.changes])

    def markdown(self, ws: Workspace) -> str:
        span = f"`{self.base[:10]}...{self.head[:10]}`" if self.base else f"`{self.head[:10]}`"
        return plan_mod.markdown(ws.federation, self.plan, title=f"Deploy plan for {span}")


def make_plan(ws: Workspace, *, base: str | None, head: str = "HEAD",
              changed_files: Path | None = None, labels: list[str] = ()) -> PlanResult:
    """Decide what a merge of base...head must do."""
    git = Git(ws.env, cwd=ws.root, timeout=60)
    head_sha = _resolve(git, head, "--head")
    base_known = bool(base) and base.strip("0") != ""
    base_sha = _resolve(git, base, "--base") if base_known else None
    if changed_files is not None:
        changes = _read_changes(changed_files)
    elif base_sha is not None:
        changes = diff(git, base_sha, head_sha)
    else:
        changes = []
    base_fed = _federation_at(git, base_sha) if base_sha else None
    plan = plan_mod.decide(ws.federation, changes, labels=labels, base_federation=base_fed,
                           stacks=_stacks(ws.root), base_known=base_known or
                           changed_files is not None)
    return PlanResult(plan, base_sha, head_sha, changes)


def diff(git: Git, base: str, head: str) -> list[plan_mod.Change]:
    """`git diff --name-status -M base...head` (what head changed since it left base)."""
    out = git.output("diff", "--name-status", "-M", "--no-color", "-z", f"{base}...{head}")
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


def _stacks(root: Path) -> dict[str, str]:
    """Each Terraform stack (terraform/members/<name>/) and the text of its .tf files."""
    base = root / "terraform" / "members"
    if not base.is_dir():
        return {}
    return {d.name: "\n".join(p.read_text(errors="replace") for p in sorted(d.glob("*.tf")))
            for d in sorted(base.iterdir()) if d.is_dir()}


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
            if parts[0].startswith("R") and len(parts) == 3:
                changes.append(plan_mod.Change("R", parts[2], parts[1]))
            else:
                changes.append(plan_mod.Change(parts[0][:1], parts[1]))
        else:
            changes.append(plan_mod.Change("M", line.strip()))
    return changes
