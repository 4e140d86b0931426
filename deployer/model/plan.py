"""What a merge must do, decided from the files it changed: which members to validate and
deploy (staging first, then production), which Terraform stacks to plan, and why.

Every rule is derived from the repository's own layout and data - the federation's members,
their files, the chart directory, the stacks under terraform/ - never from a list of names:

    config/common.yaml, secrets/common.yaml, .sops.yaml, the chart, deployer/, deploy.py,
    runtime and tool pins                          -> every member
    config/<m>.yaml, secrets/<m>.yaml, a file a member's cluster or smoke build names
                                                   -> member m (every member naming it)
    config/<prerequisite>/common.yaml (or <m>.yaml) -> the members that get that prerequisite
                                                      release (or member m)
    config/federation.yaml                         -> the members whose entries changed; for
                                                      weights, domains, activity or the
                                                      redirector's prime, also every production
                                                      member that runs the redirector; the top-level
                                                      `federation:` or `abuse:` block -> every
                                                      member; a prerequisite -> the members
                                                      that get it (before or after the change);
                                                      a member's kubernetes_version,
                                                      domains.binder or cluster.provider (the
                                                      -vars of its stack) -> also its stack
    terraform/members/<stack>/**                   -> that stack; terraform/modules/<mod>/**
                                                      -> the stacks that use the module
    secrets/terraform/<stack>.yaml|.tfstate        -> that stack only (no member deploys);
                                                      another file there -> every stack
    docs, tests, benchmarks, workflows, dev pins   -> nothing to deploy
    anything else                                  -> every member (the safe default), said so

Labels override: `deploy:skip` deploys nothing, `deploy:all` deploys every member.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from deployer.model.federation import FEDERATION_FILE, Federation, Member

SKIP_LABEL = "deploy:skip"
ALL_LABEL = "deploy:all"
EVERY_MEMBER = ("config/common.yaml", "secrets/common.yaml", ".sops.yaml", "deploy.py",
                "deployer/**", "requirements.txt", "scripts/bootstrap", "scripts/install-tools",
                "Makefile")
NOTHING = ("*.md", "docs/**", "LICENSE*", "tests/**", "benchmarks/**", ".github/**",
           "requirements-dev.txt", ".gitignore", ".ci/**", "config/dependencies.yaml",
           "scripts/example")
# keys of a member's federation entry whose change reaches every redirector's config
REDIRECTOR_KEYS = ("federation", "domains", "prime", "role", "runs")
# the keys of a member's federation entry that its Terraform stack gets as -var (see
# model/terraform.federation_vars): -var name -> key path in the entry. member_name is the
# entry's own name: an added member plans its stack.
TERRAFORM_KEYS = {"domain": ("domains", "binder"),
                  "kubernetes_version": ("kubernetes_version",),
                  "provider_kind": ("cluster", "provider")}
TERRAFORM_SECRETS = "secrets/terraform/"


@dataclass(frozen=True)
class Change:
    """One changed path (`git diff --name-status`): A, M, D, R (renamed from old_path), C
    (copied from old_path)."""

    status: str
    path: str
    old_path: str | None = None


@dataclass
class Decision:
    """A member or stack the merge acts on, and every reason why."""

    name: str
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def summary(self, shown: int = 3) -> str:
        """The first reasons and how many more there are."""
        text = "; ".join(self.reasons[:shown])
        more = len(self.reasons) - shown
        return f"{text} (+{more} more)" if more > 0 else text


@dataclass
class Plan:
    """The decisions for one change set."""

    members: dict[str, Decision] = field(default_factory=dict)
    stacks: dict[str, Decision] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)     # paths that deploy nothing
    skipped: bool = False                                 # deploy:skip

    def member(self, name: str, reason: str) -> None:
        self.members.setdefault(name, Decision(name)).add(reason)

    def stack(self, name: str, reason: str) -> None:
        self.stacks.setdefault(name, Decision(name)).add(reason)


def decide(federation: Federation, changes: Iterable[Change], *, labels: Iterable[str] = (),
           base_federation: dict | None = None, stacks: dict[str, str] | None = None,
           unknown_base: str | None = None) -> Plan:
    """The plan for `changes`. `base_federation` is config/federation.yaml as it was (None
    when it did not exist or is unknown); `stacks` maps each Terraform stack to the text of
    its .tf files (to see which modules it uses). `unknown_base`, when given, says why the
    base commit is unknown: then every member and stack is planned, for that reason."""
    plan = Plan()
    stacks = stacks or {}
    everyone = list(federation.members)
    if unknown_base:
        for name in everyone:
            plan.member(name, unknown_base)
        for stack in stacks:
            plan.stack(stack, unknown_base)
    for change in changes:
        _apply(plan, federation, change, base_federation, stacks)
    apply_labels(plan, federation, labels)
    return plan


def apply_labels(plan: Plan, federation: Federation, labels: Iterable[str]) -> None:
    """`deploy:all` plans every member; `deploy:skip` deploys nothing (still validated)."""
    labels = {label.strip() for label in labels if label.strip()}
    if ALL_LABEL in labels:
        for name in federation.members:
            plan.member(name, f"label {ALL_LABEL}")
    if SKIP_LABEL in labels and not plan.skipped:
        plan.skipped = True
        plan.notes.append(f"label {SKIP_LABEL}: nothing is deployed (members are still "
                          "validated)")


def stages(federation: Federation, plan: Plan) -> dict[str, list[Member]]:
    """Members to deploy by stage: staging members first, then production members (which
    deploy only when the staging stage passed). Empty when the plan skips deploys."""
    chosen = [federation.members[n] for n in federation.members if n in plan.members]
    if plan.skipped:
        return {"staging": [], "production": []}
    return {"staging": [m for m in chosen if m.role == "staging"],
            "production": [m for m in chosen if m.role != "staging"]}


def cloud_login(member: Member) -> bool:
    """Whether the member's cluster is reached through a cloud login alone (GKE, EKS, AKS
    without a credentials file): a PR job reaches it with the cloud's read-only roles. A
    sops-encrypted kubeconfig or credentials file is never opened in a PR job (its age key
    is kept from PR runs), so such a member's diff is left to the deploy."""
    return member.cluster.provider != "kubeconfig" and not member.cluster.credentials


def matrices(federation: Federation, plan: Plan) -> dict[str, dict]:
    """GitHub Actions matrices ({"include": [...]}) for each job that fans out."""
    def row(member: Member) -> dict:
        return {"member": member.name, "role": member.role, "environment": member.name,
                "provider": member.cluster.provider, "cloud_login": cloud_login(member),
                "reasons": plan.members[member.name].summary()}

    by_stage = stages(federation, plan)
    validate = [federation.members[n] for n in federation.members if n in plan.members]
    return {
        "validate": {"include": [row(m) for m in validate]},
        "staging": {"include": [row(m) for m in by_stage["staging"]]},
        "production": {"include": [row(m) for m in by_stage["production"]]},
        "terraform": {"include": [{"stack": s, "reasons": d.summary()}
                                  for s, d in sorted(plan.stacks.items())]},
    }


def to_json(federation: Federation, plan: Plan, **extra) -> dict:
    """The whole plan as data: matrices, decisions with reasons, notes."""
    found = matrices(federation, plan)
    return {
        **extra,
        "skipped": plan.skipped,
        "members": {n: plan.members[n].reasons for n in federation.members
                    if n in plan.members},
        "stacks": {n: d.reasons for n, d in sorted(plan.stacks.items())},
        "matrices": found,
        "has": {job: bool(m["include"]) for job, m in found.items()},
        "notes": plan.notes,
        "ignored": plan.ignored,
    }


def markdown(federation: Federation, plan: Plan, title: str = "Deploy plan") -> str:
    """A table for the PR comment and the job summary."""
    by_stage = stages(federation, plan)
    stage_of = {m.name: stage for stage, members in by_stage.items() for m in members}
    lines = [f"### {title}", ""]
    if not plan.members and not plan.stacks:
        lines.append("Nothing to deploy: " + (
            "only files that deploy nothing changed." if plan.ignored else "no changes."))
    if plan.members:
        lines += ["| member | role | stage | why |", "|---|---|---|---|"]
        for name in federation.members:
            if name in plan.members:
                member = federation.members[name]
                stage = stage_of.get(name, "validate only" if plan.skipped else "-")
                lines.append(f"| `{name}` | {member.role} | {stage} | "
                             f"{_md(plan.members[name].summary())} |")
    if plan.stacks:
        lines += ["", "| terraform stack | why |", "|---|---|"]
        lines += [f"| `{s}` | {_md(d.summary())} |"
                  for s, d in sorted(plan.stacks.items())]
    if plan.notes:
        lines += [""] + [f"- {_md(note)}" for note in plan.notes]
    if plan.ignored:
        shown = ", ".join(f"`{p}`" for p in plan.ignored[:10])
        more = f" and {len(plan.ignored) - 10} more" if len(plan.ignored) > 10 else ""
        lines += ["", f"Deploy nothing: {shown}{more}."]
    return "\n".join(lines) + "\n"


# -- the rules --------------------------------------------------------------------------------
def _apply(plan: Plan, fed: Federation, change: Change, base_fed: dict | None,
           stacks: dict[str, str]) -> None:
    # a rename changes both paths; a copy leaves its source as it was
    paths = [change.path] + ([change.old_path] if change.old_path and
                             change.status[:1] != "C" else [])
    for path in paths:
        _apply_path(plan, fed, path, change, base_fed, stacks)


def _apply_path(plan: Plan, fed: Federation, path: str, change: Change, base_fed: dict | None,
                stacks: dict[str, str]) -> None:
    verb = {"A": "added", "D": "deleted", "R": "renamed"}.get(change.status[:1], "changed")
    chart = fed.chart.rstrip("/")
    if path == FEDERATION_FILE:
        _federation_change(plan, fed, base_fed, stacks)
        return
    if _matches(path, EVERY_MEMBER) or path.startswith(chart + "/"):
        for name in fed.members:
            plan.member(name, f"{path} {verb}")
        return
    prerequisite = _prerequisite_file(fed, path)
    if prerequisite is not None:
        for name in prerequisite:
            plan.member(name, f"{path} {verb}")
        return
    owners = _member_files(fed, path)
    if owners:
        for owner in owners:
            plan.member(owner, f"{path} {verb}")
        return
    if path.startswith("terraform/"):
        _terraform_change(plan, path, verb, stacks)
        return
    if path.startswith(TERRAFORM_SECRETS):
        _terraform_secret_change(plan, path, verb, stacks)
        return
    if _matches(path, NOTHING):
        plan.ignored.append(path)
        return
    for name in fed.members:
        plan.member(name, f"{path} {verb} (not a known path: deployed everywhere to be safe)")
    plan.notes.append(f"{path} is not a path the plan knows; every member is deployed")


def _prerequisite_file(fed: Federation, path: str) -> list[str] | None:
    """The members whose prerequisite release a values file under config/<name>/ feeds
    (None when the path is no prerequisite's)."""
    for prereq in fed.prerequisites.values():
        folder = f"config/{prereq.name}/"
        if not path.startswith(folder):
            continue
        users = [m.name for m in fed.members.values() if prereq in fed.prerequisites_of(m)]
        own = path[len(folder):].removesuffix(".yaml")
        return [own] if own in users else users
    return None


def _member_files(fed: Federation, path: str) -> list[str]:
    """The members a file belongs to: their values, their secrets, the kubeconfig, cloud
    credentials or smoke build key they name (several members may name one file)."""
    owners = []
    for name, member in fed.members.items():
        own = {f"config/{name}.yaml", f"secrets/{name}.yaml",
               f"secrets/kubeconfigs/{name}.yaml"}
        if member.cluster.kubeconfig:
            own.add(member.cluster.kubeconfig)
        if member.cluster.credentials:
            own.add(member.cluster.credentials)
        if member.smoke_build and member.smoke_build.get("deploy_key"):
            own.add(member.smoke_build["deploy_key"])
        if path in own:
            owners.append(name)
    return owners


def _federation_change(plan: Plan, fed: Federation, base_fed: dict | None,
                       stacks: dict[str, str]) -> None:
    head = fed.document.data or {}
    if not isinstance(base_fed, dict):
        for name in fed.members:
            plan.member(name, f"{FEDERATION_FILE} changed (no earlier version to compare)")
        for stack in stacks:
            plan.stack(stack, f"{FEDERATION_FILE} changed (no earlier version to compare)")
        return
    # top-level blocks every member's values come from (federation, abuse, ...); `records`
    # only says where deploys are recorded; `prerequisites` reach the members that get them
    # (below)
    for block in sorted((set(head) | set(base_fed)) - {"members", "records", "prerequisites"}):
        if head.get(block) != base_fed.get(block):
            for name in fed.members:
                plan.member(name, f"{FEDERATION_FILE}: the {block} block changed")
    old_members = base_fed.get("members") or {}
    new_members = head.get("members") or {}
    old_pre, new_pre = base_fed.get("prerequisites") or {}, head.get("prerequisites") or {}
    for pname in sorted(set(old_pre) | set(new_pre)):
        before, after = old_pre.get(pname), new_pre.get(pname)
        if before == after:
            continue
        users = set()
        for entry in (before, after):
            if isinstance(entry, dict):
                chosen = entry.get("members")
                users |= set(fed.members) if chosen is None else set(chosen) & set(fed.members)
        for name in sorted(users, key=list(fed.members).index):
            plan.member(name, f"{FEDERATION_FILE}: prerequisites.{pname} changed")
    # staging's redirector routes to staging alone: other members' changes never reach it
    redirectors = [n for n, m in fed.members.items()
                   if m.runs_redirector and m.role != "staging"]
    for name, entry in new_members.items():
        before = old_members.get(name)
        if before is None:
            plan.member(name, f"{FEDERATION_FILE}: member {name} added")
            if name in stacks:
                plan.stack(name, f"{FEDERATION_FILE}: member {name} added (-var member_name)")
            if _routed(entry):
                # the redirector routes to it: every member that runs one is redeployed
                for other in redirectors:
                    if other != name:
                        plan.member(other, f"{FEDERATION_FILE}: member {name} added; {other} "
                                           "runs the federation redirector")
            continue
        if before == entry:
            continue
        if name in stacks:
            fed_vars = [var for var, keys in TERRAFORM_KEYS.items()
                        if _var(before, keys) != _var(entry, keys)]
            for var in fed_vars:
                where = ".".join(TERRAFORM_KEYS[var])
                plan.stack(name, f"{FEDERATION_FILE}: members.{name}.{where} changed "
                                 f"(-var {var})")
        keys = sorted(k for k in set(before) | set(entry) if before.get(k) != entry.get(k))
        plan.member(name, f"{FEDERATION_FILE}: members.{name} ({', '.join(keys)}) changed")
        # production redirectors route only to members with a federation block (before or
        # after the change): staging's entry, or another unrouted member's, never reaches them
        routed = [k for k in keys if k in REDIRECTOR_KEYS] \
            if _routed(before) or _routed(entry) else []
        for other in redirectors:
            if other != name and routed:
                plan.member(other, f"{FEDERATION_FILE}: members.{name}.{routed[0]} changed; "
                                   f"{other} runs the federation redirector")
    for name in old_members:
        if name not in new_members:
            plan.notes.append(f"member {name} was removed from {FEDERATION_FILE}: its release "
                              "is not uninstalled by a deploy (do it by hand)")
            for other in redirectors if _routed(old_members[name]) else []:
                plan.member(other, f"{FEDERATION_FILE}: member {name} removed; {other} runs "
                                   "the federation redirector")


def _routed(entry) -> bool:
    """Whether production redirectors route to a member with this federation entry (it has a
    `federation:` block, as Member.in_federation)."""
    return isinstance(entry, dict) and entry.get("federation") is not None


def _var(entry, keys: tuple[str, ...]):
    """A -var's value in a federation entry: the binder domain, or the apex domain of a
    member that runs only the redirector (as model/terraform.federation_vars)."""
    value = _at(entry, keys)
    return _at(entry, ("domains", "federation")) if value is None and \
        keys == TERRAFORM_KEYS["domain"] else value


def _at(entry, keys: tuple[str, ...]):
    """The value at a key path of a federation entry (None where it is missing)."""
    for key in keys:
        entry = entry.get(key) if isinstance(entry, dict) else None
    return entry


def _terraform_secret_change(plan: Plan, path: str, verb: str,
                             stacks: dict[str, str]) -> None:
    """secrets/terraform/<stack>.yaml (its secret variables) or .tfstate (its state on a
    local backend): that stack, and no member's deploy."""
    name, dot, kind = path[len(TERRAFORM_SECRETS):].rpartition(".")
    if dot and "/" not in name and kind in ("yaml", "yml", "tfstate"):
        if name in stacks:
            plan.stack(name, f"{path} {verb}")
        else:
            plan.notes.append(f"{path}: there is no stack terraform/members/{name}/ to plan")
        return
    for stack in stacks:
        plan.stack(stack, f"{path} {verb} (not a stack's secrets or state: every stack is "
                          "planned to be safe)")
    plan.notes.append(f"{path} is not secrets/terraform/<stack>.yaml or .tfstate; every "
                      "stack is planned")


def _terraform_change(plan: Plan, path: str, verb: str, stacks: dict[str, str]) -> None:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "members":
        plan.stack(parts[2], f"{path} {verb}")
        return
    if len(parts) > 2 and parts[1] == "modules":
        users = [s for s, text in stacks.items() if f"modules/{parts[2]}" in text]
        for stack in users:
            plan.stack(stack, f"{path} {verb} (module {parts[2]})")
        if not users:
            plan.notes.append(f"{path}: no stack uses module {parts[2]}")
        return
    for stack in stacks:
        plan.stack(stack, f"{path} {verb}")


def _matches(path: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/**"):
            if path.startswith(pattern[:-2]):
                return True
        elif fnmatch.fnmatchcase(path, pattern) or path == pattern:
            return True
    return False


def _md(text: str) -> str:
    return text.replace("|", "\\|")


__all__ = ["Change", "Plan", "decide", "apply_labels", "stages", "matrices", "to_json",
           "markdown"]
