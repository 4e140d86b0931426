"""The bump bot: find newer upstream releases, edit the files that pin them, validate the
edited tree, and keep one PR per dependency (or group) on GitHub up to date.

GitHub is asked as little as possible: the open PRs are listed once (one request), and a
dependency that is up to date, or whose open PR already proposes the newest version, costs
no request at all. A PR is the bot's only when it comes from a branch of the repository
itself and was opened by a bot account (the GitHub App the bot runs as), with a marker; a
person's PR or a fork's, whatever its body says, is never updated, closed or trusted. An
error of one unit (a dependency or group) fails that unit only. Releases come from chart
repositories and registries, not from GitHub (except for `kind: github-release`).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from deployer.errors import DeployerError
from deployer.model import bump as model
from deployer.model import dependencies as deps_mod
from deployer.model import versions
from deployer.model.workspace import Workspace

MAX_COMMITS_LOOKED_UP = 20     # commit -> PR look-ups per changelog (one request each)


class Action(str, Enum):
    """What the bot did (or, with --dry-run, would do) for one unit."""

    UP_TO_DATE = "up to date"
    OPEN = "open PR"
    UPDATE = "update PR"
    CURRENT = "PR is current"
    CLOSED_BEFORE = "skipped: closed unmerged before"
    HUMAN_BRANCH = "skipped: a person pushed to the branch"
    CLOSE_STALE = "close PR"
    WRITTEN = "edited files"
    FAILED = "failed"


@dataclass
class Outcome:
    """One unit's result."""

    unit: str
    action: Action
    bumps: list[model.Bump] = field(default_factory=list)
    pull: str | None = None                # the PR's URL
    draft: bool = False
    detail: str = ""

    def to_json(self) -> dict:
        return {
            "unit": self.unit, "action": self.action.value, "pull": self.pull,
            "draft": self.draft, "detail": self.detail,
            "bumps": [{
                "name": b.dependency.name, "kind": b.dependency.kind,
                "file": b.dependency.file, "from": b.before, "to": b.after,
                "app_from": b.app_before, "app_to": b.app_after, "major": b.major,
                "upstream_pulls": [{"number": p.number, "title": p.title, "url": p.html_url,
                                    "labels": list(p.labels)} for p in b.changelog.pulls],
                "compare": b.changelog.compare_url, "release": b.changelog.release_url,
            } for b in self.bumps],
        }


@dataclass
class BumpSettings:
    """How one run goes."""

    repository: str | None = None        # owner/name on GitHub (None: no PRs)
    base: str = "main"                   # the branch PRs go into
    dry_run: bool = False
    local: bool = False                  # edit the working tree instead of opening PRs
    validate: bool = True
    mirror: str | None = None            # chart mirror for validation
    only: list[str] = field(default_factory=list)


def run(ws: Workspace, settings: BumpSettings, *, registry, github=None,
        parent: str | None = None) -> list[Outcome]:
    """One run of the bot. `registry`: adapters.registry.Registry; `github`:
    adapters.github.GitHub or None (then no changelog and no PRs); `parent`: the commit the
    edits are made on (the checkout's HEAD)."""
    out = ws.console
    deps = deps_mod.load(ws.root)
    chosen = deps.select(settings.only)
    outcomes: list[Outcome] = []
    units: dict[str, model.Unit] = {}
    failures: dict[str, list[str]] = {}
    for dep in chosen:
        try:
            bump = find_bump(ws, dep, registry, github)
        except DeployerError as exc:
            out.error(f"{dep.name}: {exc}")
            failures.setdefault(dep.unit, []).append(f"{dep.name}: {exc}")
            continue
        if bump is None:
            continue
        out.info(f"{dep.name}: {bump.before} -> {bump.after}")
        units.setdefault(dep.unit, model.Unit(dep.unit, [])).bumps.append(bump)
    failed_units = set(failures)
    for name, problems in failures.items():   # a group is bumped whole or not at all
        outcomes.append(Outcome(name, Action.FAILED, units[name].bumps if name in units
                                else [], detail="; ".join(problems)))
    for unit in units.values():
        if unit.name not in failed_units:
            failed = _guarded(ws, unit, lambda u=unit: edit(ws, u))
            if failed is not None:
                outcomes.append(failed)
                failed_units.add(unit.name)
    pulls = None
    if github is not None and settings.repository and not settings.local:
        pulls = _bot_pulls(github, settings.repository)
    for unit in units.values():
        if unit.name in failed_units:
            continue
        outcomes.append(_guarded(ws, unit, lambda u=unit: _one_unit(ws, settings, u, github,
                                                                     pulls, parent)))
    if pulls is not None:
        outcomes += _close_stale(ws, settings, github, pulls, set(units), chosen, failed_units)
    up_to_date = {d.unit for d in chosen} - set(units) - failed_units
    outcomes += [Outcome(name, Action.UP_TO_DATE) for name in sorted(up_to_date)
                 if not any(o.unit == name for o in outcomes)]
    return outcomes


def _guarded(ws: Workspace, unit: model.Unit, step) -> Outcome | None:
    """`step()` for one unit; its DeployerError becomes that unit's FAILED outcome, so the
    other units still run."""
    try:
        return step()
    except DeployerError as exc:
        ws.console.error(f"{unit.name}: {exc}")
        return Outcome(unit.name, Action.FAILED, unit.bumps, detail=str(exc))


def find_bump(ws: Workspace, dep: deps_mod.Dependency, registry, github) -> model.Bump | None:
    """The newest allowed version of `dep`, if newer than the one written here."""
    cur = deps_mod.current(ws.root, dep)
    candidates, apps = _releases(dep, registry, github)
    latest = versions.newest(candidates, cur.version, prereleases=dep.prereleases,
                             hold_major=dep.hold_major)
    if latest is None:
        return None
    return model.Bump(cur, latest, apps.get(cur.version), apps.get(latest.text))


def edit(ws: Workspace, unit: model.Unit) -> None:
    """The unit's edited files (in memory), one scalar changed per dependency."""
    for bump in unit.bumps:
        dep = bump.dependency
        text = unit.files.get(dep.file)
        if text is None:
            text = _read_text(ws.root / dep.file)
        unit.files[dep.file] = deps_mod.replace_scalar(
            text, bump.current.path, deps_mod.with_version(bump.current, bump.after), dep.file)


def validate(ws: Workspace, unit: model.Unit, mirror: str | None) -> None:
    """`validate --all` on a copy of the repository with the unit's edits."""
    from deployer.stages import validate as validate_mod

    tmp = Path(tempfile.mkdtemp(prefix="bump-"))
    try:
        for part in ("config", "secrets", ".sops.yaml", ws.federation.chart):
            src = ws.root / part
            if src.is_dir():
                shutil.copytree(src, tmp / part, symlinks=True,
                                ignore=shutil.ignore_patterns("charts", "*.tgz"))
            elif src.is_file():
                shutil.copy2(src, tmp / part)
        for rel, text in unit.files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _write_text(tmp / rel, text)
        env = dict(ws.env)
        env.setdefault("DEPLOYER_CACHE_DIR", str(ws.root / ".deployer" / "charts"))
        edited = Workspace(root=tmp, env=env, console=ws.console)
        try:
            members = list(edited.federation.members.values())
            reports = validate_mod.validate_members(edited, members, mirror=mirror)
            unit.validation = [f"{r.member}: {e}" for r in reports for e in r.errors]
        except DeployerError as exc:
            unit.validation = [str(exc)]
        unit.validated = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def changelog(github, bump: model.Bump) -> None:
    """Fill in what changed upstream: merged PRs between two development builds' commits,
    or the release notes of a release."""
    dep = bump.dependency
    log = bump.changelog
    if not dep.upstream:
        return
    old, new = versions.parse(bump.before), bump.latest
    if github is None:
        log.note = "upstream changes not looked up (no GitHub token)"
        log.compare_url = None
        return
    if old is not None and old.commit and new.commit:
        _pulls_between(github, dep.upstream, old.commit, new.commit, log)
        return
    for tag in dict.fromkeys((new.text, f"v{new.text}" if not new.prefix else new.text)):
        found = github.release(dep.upstream, tag)
        if found is not None:
            log.release_notes, log.release_url = found
            return
    log.release_url = f"https://github.com/{dep.upstream}/releases"
    log.note = f"no GitHub release tagged {new.text}; see the upstream releases"


# -- one unit against GitHub -----------------------------------------------------------------
def _one_unit(ws: Workspace, settings: BumpSettings, unit: model.Unit, github, pulls,
              parent: str | None) -> Outcome:
    out = ws.console
    if settings.local:
        if settings.validate:
            validate(ws, unit, settings.mirror)
        if not settings.dry_run:
            for rel, text in unit.files.items():
                _write_text(ws.root / rel, text)
        return Outcome(unit.name, Action.WRITTEN, unit.bumps, draft=bool(unit.validation),
                       detail="; ".join(unit.validation[:3]))
    existing = _open_pull_for(pulls, unit) if pulls is not None else None
    mark = model.read_marker(existing.body) if existing is not None else None
    if existing is not None and mark.get("versions") == unit.versions:
        if not settings.dry_run:
            _label(github, existing, unit)
        return Outcome(unit.name, Action.CURRENT, unit.bumps, existing.html_url,
                       existing.draft, f"#{existing.number} already proposes this")
    if existing is not None and mark.get("commit") != existing.head_sha and \
            not _bot_head(github, settings.repository, existing):
        return _human_branch(settings, github, existing, mark, unit)
    if existing is None and github is not None and settings.repository:
        closed = _closed_before(github, settings.repository, unit)
        if closed is not None:
            return Outcome(unit.name, Action.CLOSED_BEFORE, unit.bumps, closed.html_url,
                           detail=f"#{closed.number} proposed this and was closed unmerged; "
                                  "not reopened")
    if settings.validate:
        validate(ws, unit, settings.mirror)
    for bump in unit.bumps:
        try:
            changelog(github, bump)
        except DeployerError as exc:      # a changelog is worth a note, not a lost bump
            ws.console.warn(f"{bump.dependency.name}: upstream changes not read: {exc}")
            bump.changelog.note = f"upstream changes could not be read ({exc})"
    action = Action.UPDATE if existing is not None else Action.OPEN
    if settings.dry_run or github is None or not settings.repository:
        return Outcome(unit.name, action, unit.bumps,
                       existing.html_url if existing else None, bool(unit.validation),
                       "dry run" if settings.dry_run else "no GitHub repository or token")
    return _push(ws, settings, github, unit, existing, parent, out)


def _push(ws, settings, github, unit: model.Unit, existing, parent: str | None, out) -> Outcome:
    if not parent:
        raise DeployerError("the commit to base the bump on is unknown (not a git checkout?)")
    repo = settings.repository
    branch_head = github.branch_commit(repo, unit.branch) if existing is None else None
    if branch_head is not None and not model.is_bot_commit(branch_head[1]):
        return Outcome(unit.name, Action.HUMAN_BRANCH, unit.bumps,
                       detail=f"branch {unit.branch} exists with commits the bot did not "
                              "make; not overwritten")
    if branch_head is not None:      # an open PR for it the listing did not show as the bot's
        open_pull = _open_pull_on(github, repo, unit.branch)
        if open_pull is not None and not _is_bot_pull(open_pull, repo):
            who = open_pull.author or "a person"
            return Outcome(unit.name, Action.HUMAN_BRANCH, unit.bumps, open_pull.html_url,
                           detail=f"#{open_pull.number}, opened by {who}, is open for "
                                  f"{unit.branch}; not touched")
        existing = open_pull         # the bot's, its marker edited away: adopted
    sha = github.commit_files(repo, parent=parent, files=unit.files,
                              message=model.commit_message(unit))
    create_branch = existing is None and branch_head is None
    github.set_branch(repo, unit.branch, sha, create=create_branch)
    text = model.body(unit, sha)
    draft = bool(unit.validation)
    if existing is not None:
        github.update_pull(existing, title=model.title(unit), body=text)
        _label(github, existing, unit)
        if draft:
            github.comment_pull(existing, "`deploy.py validate --all` fails on the new "
                                          "version; see the PR description.")
        out.info(f"{unit.name}: updated {existing.html_url}")
        return Outcome(unit.name, Action.UPDATE, unit.bumps, existing.html_url, draft)
    pull = github.create_pull(repo, head=unit.branch, base=settings.base,
                              title=model.title(unit), body=text, draft=draft,
                              labels=unit.labels)
    out.info(f"{unit.name}: opened {pull.html_url}")
    return Outcome(unit.name, Action.OPEN, unit.bumps, pull.html_url, draft)


def _label(github, pull, unit: model.Unit) -> None:
    """Label a bot PR that carries none of the unit's labels: the request that labels a new
    PR can fail after the PR was opened, and the next run must not leave it unlabelled for
    good. A PR with any of them was labelled: a label a person removed stays removed (they
    feed the deploy plan, e.g. deploy:skip). GitHub's label names ignore case."""
    have = {label.lower() for label in pull.labels}
    if unit.labels and not have & {label.lower() for label in unit.labels} and \
            github is not None:
        github.add_labels(pull, tuple(unit.labels))


def _human_branch(settings, github, existing, mark: dict, unit: model.Unit) -> Outcome:
    """A person pushed to the bot's branch: say once what is newer, never force-push."""
    if not settings.dry_run and github is not None and mark.get("noticed") != unit.versions:
        github.comment_pull(existing, "A newer upstream version is out: " + ", ".join(
            f"{b.dependency.name} {b.after}" for b in unit.bumps) + ". This branch has commits "
            "from a person, so the bot does not overwrite it: update it by hand, or close "
            "this PR and the bot opens a fresh one.")
        # remember what was said, so the next run stays quiet
        github.update_pull(existing, title=existing.title,
                           body=model.with_marker(existing.body,
                                                  {**mark, "noticed": unit.versions}))
    return Outcome(unit.name, Action.HUMAN_BRANCH, unit.bumps, existing.html_url,
                   detail=f"#{existing.number} has commits the bot did not make; "
                          "not overwritten")


def _close_stale(ws, settings, github, pulls, outdated: set[str], chosen, failed) -> list:
    """Open bot PRs for units whose versions the base branch already has (merged by hand,
    or bumped in another PR): closed with a comment."""
    by_unit: dict[str, list] = {}
    for dep in chosen:
        by_unit.setdefault(dep.unit, []).append(dep)
    found = []
    for pull in pulls:
        mark = model.read_marker(pull.body)
        name = mark["unit"]
        if name not in by_unit or name in outdated or name in failed:
            continue
        try:
            closed = _close_if_landed(ws, settings, github, pull, mark, by_unit[name])
        except DeployerError as exc:
            ws.console.error(f"{name}: {exc}")
            closed = Outcome(name, Action.FAILED, pull=pull.html_url, detail=str(exc))
        if closed is not None:
            found.append(closed)
    return found


def _close_if_landed(ws, settings, github, pull, mark: dict, deps: list) -> Outcome | None:
    """Close one bot PR whose versions the base branch has; its outcome, or None."""
    name = mark["unit"]
    if not _base_has(ws, deps, mark.get("versions") or {}):
        return None
    if not settings.dry_run:
        github.close_pull(pull, f"`{settings.base}` already has "
                          + ", ".join(f"{k} {v}" for k, v in sorted(
                              (mark.get("versions") or {}).items()))
                          + " or newer; closing this PR.")
    return Outcome(name, Action.CLOSE_STALE, pull=pull.html_url,
                   detail=f"#{pull.number}: {settings.base} already has these versions or "
                          "newer")


def _base_has(ws: Workspace, deps: list, proposed: dict) -> bool:
    """Whether every version a PR proposes is already written here (or a newer one); False
    when it proposes a dependency not among `deps` (one that was not checked)."""
    if set(proposed) - {dep.name for dep in deps}:
        return False
    for dep in deps:
        want = versions.parse(proposed.get(dep.name))
        have = versions.parse(deps_mod.current(ws.root, dep).version)
        if want is not None and (have is None or have < want):
            return False
    return True


# -- helpers ----------------------------------------------------------------------------------
def _releases(dep: deps_mod.Dependency, registry, github) -> tuple[list[str], dict]:
    """The candidate versions of `dep` and their appVersions (charts only)."""
    if dep.kind == "helm-chart":
        found = registry.chart_versions(dep.source, dep.chart_name)
        return [c.version for c in found], {c.version: c.app_version for c in found}
    if dep.kind == "oci-chart":
        # OCI tags cannot hold `+`: helm pushes chart version 1.0+build as tag 1.0_build
        return [t.replace("_", "+") for t in registry.tags(dep.source)], {}
    if dep.kind == "image":
        return registry.tags(dep.source), {}
    if github is None:
        raise DeployerError(f"{dep.name}: GitHub releases need a GitHub token "
                            "($GITHUB_TOKEN)")
    return [tag for tag, _pre in github.release_tags(dep.source)], {}


def _pulls_between(github, upstream: str, old: str, new: str, log: model.Changelog) -> None:
    found = github.compare(upstream, old, new, limit=250)
    log.compare_url = found.html_url
    log.commits = found.total
    seen = set()
    for sha, _message in list(reversed(found.commits))[:MAX_COMMITS_LOOKED_UP]:
        log.commits_read += 1
        for pr in github.commit_pulls(upstream, sha):
            if pr.number not in seen:
                seen.add(pr.number)
                log.pulls.append(pr)
    log.pulls.sort(key=lambda p: p.number)


def _bot_pulls(github, repository: str) -> list:
    """The bot's open PRs (one request for up to 100 open PRs)."""
    return [p for p in github.pulls(repository, state="open")
            if _is_bot_pull(p, repository) and p.head_ref.startswith(model.BRANCH_PREFIX)
            and model.read_marker(p.body)]


def _is_bot_pull(pull, repository: str) -> bool:
    """Whether a PR can be the bot's: from a branch of the repository itself (not a fork),
    opened by a bot account (the bot runs as a GitHub App: `<app>[bot]`, type Bot)."""
    return (pull.head_repo or "").lower() == repository.lower() and pull.author_type == "Bot"


def _bot_head(github, repository: str | None, pull) -> bool:
    """Whether the head commit of a bot PR whose marker names another commit is the bot's
    own (its body update failed after the branch moved): one request."""
    if github is None or not repository:
        return False
    return model.is_bot_commit(github.commit_message(repository, pull.head_sha))


def _open_pull_on(github, repository: str, branch: str):
    """The open PR whose head is `branch` of the repository itself, if any (one request)."""
    found = github.pulls(repository, state="open", head=branch, limit=1)
    return found[0] if found else None


def _open_pull_for(pulls, unit: model.Unit):
    for pull in pulls:
        mark = model.read_marker(pull.body)
        if pull.head_ref == unit.branch and mark and mark.get("unit") == unit.name:
            return pull
    return None


def _closed_before(github, repository: str, unit: model.Unit):
    """A PR for exactly these versions that a person closed without merging."""
    for pull in github.pulls(repository, state="closed", head=unit.branch, limit=30):
        mark = model.read_marker(pull.body)
        if not pull.merged and mark and mark.get("versions") == unit.versions and \
                _is_bot_pull(pull, repository):
            return pull
    return None


def _read_text(path: Path) -> str:
    """A file's text with its line endings as they are (CRLF stays CRLF)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _write_text(path: Path, text: str) -> None:
    """Replace a file with `text`, line endings written as given."""
    tmp = path.with_name(f".{path.name}.bump")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    tmp.replace(path)


__all__ = ["Action", "Outcome", "BumpSettings", "run", "find_bump", "edit", "validate",
           "changelog"]
