"""What the bump bot proposes, as data and text: the bumps of one PR (a dependency or a
group), its title, commit message and body (version table, upstream changelog, warnings),
and the hidden marker by which a later run recognises its own PR and branch.

Upstream text (PR titles, labels, release notes) is pasted only after it is made inert: no
HTML comments (so it cannot carry a marker), no @mentions (so a bump PR pings nobody
upstream), and bare `#N` qualified as `owner/repo#N` (so it does not link this repository's
issue N). The bot writes its marker last, and reads the last one."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from deployer.model.dependencies import Current, Dependency
from deployer.model.versions import Version, is_major_bump

BRANCH_PREFIX = "bump/"
TRAILER = "Bumped-by: binderhub-deployer"
MARKER = "<!-- deployer-bump "
_MARKER = re.compile(r"<!-- deployer-bump (\{.*?\}) -->")
_MENTION = re.compile(r"(?<![\w@/])@(?=[A-Za-z0-9])")        # @name, @org/team; not a@b.c
_BARE_REF = re.compile(r"(?<![\w/#&])(?:#|GH-)(\d+)\b")      # #5, GH-5; not o/r#5, &#60;
LABELS = ("dependencies",)
MAX_PULLS_SHOWN = 30
MAX_NOTES = 6000


@dataclass(frozen=True)
class UpstreamPull:
    """A merged upstream pull request."""

    number: int
    title: str
    html_url: str
    labels: tuple[str, ...] = ()
    author: str = ""


@dataclass
class Changelog:
    """What changed upstream between the two versions of one dependency."""

    pulls: list[UpstreamPull] = field(default_factory=list)
    compare_url: str | None = None
    commits: int = 0                    # commits between the two builds
    commits_read: int = 0               # commits whose PRs were looked up
    release_notes: str | None = None
    release_url: str | None = None
    note: str | None = None             # why there is nothing more


@dataclass
class Bump:
    """One dependency moving from its current version to a newer one."""

    current: Current
    latest: Version
    app_before: str | None = None
    app_after: str | None = None
    changelog: Changelog = field(default_factory=Changelog)

    @property
    def dependency(self) -> Dependency:
        return self.current.dependency

    @property
    def before(self) -> str:
        return self.current.version

    @property
    def after(self) -> str:
        return self.latest.text

    @property
    def major(self) -> bool:
        return is_major_bump(self.before, self.after)


@dataclass
class Unit:
    """One PR: the bumps of one dependency, or of a group bumped together."""

    name: str
    bumps: list[Bump]
    files: dict[str, str] = field(default_factory=dict)      # edited path -> new text
    validation: list[str] = field(default_factory=list)      # errors on the edited tree
    validated: bool = False

    @property
    def branch(self) -> str:
        return BRANCH_PREFIX + self.name

    @property
    def versions(self) -> dict[str, str]:
        return {b.dependency.name: b.after for b in self.bumps}

    @property
    def labels(self) -> tuple[str, ...]:
        out = list(LABELS)
        for bump in self.bumps:
            for label in (bump.dependency.kind, *bump.dependency.labels):
                if label not in out:
                    out.append(label)
        return tuple(out)


def title(unit: Unit) -> str:
    """`Bump binderhub from A to B`, or for a group `Bump monitoring: a A -> B, c C -> D`."""
    if len(unit.bumps) == 1 and unit.bumps[0].dependency.name == unit.name:
        bump = unit.bumps[0]
        return f"Bump {unit.name} from {bump.before} to {bump.after}"
    parts = ", ".join(f"{b.dependency.name} {b.before} -> {b.after}" for b in unit.bumps)
    return f"Bump {unit.name}: {parts}"


def commit_message(unit: Unit) -> str:
    """The bump commit's message; the trailer marks the bot's own commits."""
    lines = [title(unit), ""]
    for bump in unit.bumps:
        lines.append(f"- {bump.dependency.name}: {bump.before} -> {bump.after} "
                     f"({bump.dependency.file})")
    return "\n".join(lines + ["", TRAILER])


def is_bot_commit(message: str | None) -> bool:
    """Whether a commit message carries the bot's trailer (on a line of its own)."""
    return TRAILER in (message or "").splitlines()


def marker(unit: Unit, commit: str | None) -> str:
    """The hidden line a later run reads: which unit, which versions, which commit the bot
    last pushed (anything else on the branch was pushed by a person)."""
    data = {"unit": unit.name, "versions": unit.versions, "commit": commit}
    return f"{MARKER}{json.dumps(data, sort_keys=True)} -->"


def with_marker(body: str, data: dict) -> str:
    """`body` with its (last) marker replaced by one holding `data` (appended when it has
    none)."""
    line = f"{MARKER}{json.dumps(data, sort_keys=True)} -->"
    found = _last_marker(body)
    if found:
        return body[:found.start()] + line + body[found.end():]
    return (body or "").rstrip("\n") + "\n" + line + "\n"


def read_marker(body: str | None) -> dict | None:
    """The marker of a PR body written by `marker` (the last one: the bot writes it last,
    after any upstream text); None when there is none."""
    found = _last_marker(body)
    if not found:
        return None
    try:
        data = json.loads(found.group(1))
    except ValueError:
        return None
    return data if isinstance(data, dict) and "unit" in data else None


def _last_marker(body: str | None) -> re.Match | None:
    """The last marker-shaped comment of `body`."""
    found = None
    for found in _MARKER.finditer(body or ""):
        pass
    return found


def inert(text: str, upstream: str | None) -> str:
    """Upstream text made safe to paste into a PR body: HTML comments opened or closed
    nowhere, @mentions that ping nobody, bare `#N` (and `GH-N`) as `upstream#N`."""
    while "<!--" in text or "-->" in text:
        text = text.replace("<!--", "").replace("-->", "")
    text = _MENTION.sub("@\u200b", text)
    return _BARE_REF.sub(lambda m: f"{upstream}#{m.group(1)}" if upstream
                         else f"#\u200b{m.group(1)}", text)


def body(unit: Unit, commit: str | None) -> str:
    """The PR body: version table, warnings, validation, upstream changes, marker."""
    lines = [f"This PR bumps **{unit.name}**. Merging it deploys the change (staging first, "
             "then production).", "",
             "| dependency | file | version | appVersion |", "|---|---|---|---|"]
    for b in unit.bumps:
        app = (f"{b.app_before or '?'} → {b.app_after or '?'}"
               if (b.app_before or b.app_after) else "-")
        lines.append(f"| {b.dependency.name} | `{b.dependency.file}` | "
                     f"`{b.before}` → `{b.after}` | {app} |")
    for b in unit.bumps:
        if b.major:
            lines += ["", f"> [!WARNING]\n> **{b.dependency.name}: a new major version** "
                          f"({b.before} → {b.after}). Read the upstream changelog for breaking "
                          "changes before merging."]
    if unit.validation:
        shown = "\n".join(unit.validation[:20])
        lines += ["", "> [!CAUTION]\n> `deploy.py validate --all` **fails** on this change, so "
                      "this PR is a draft. Fix the values (push to this branch) before merging.",
                  "", "```", _fence_safe(shown), "```"]
    elif unit.validated:
        lines += ["", "`deploy.py validate --all` passes on this change."]
    for b in unit.bumps:
        lines += ["", f"### {b.dependency.name}: changes upstream", ""]
        lines += _changelog_lines(b)
    lines += ["", "_Opened by `deploy.py bump`. Pushing to this branch is fine: the bot will "
                  "then comment instead of overwriting it._", marker(unit, commit)]
    return "\n".join(lines) + "\n"


def _changelog_lines(b: Bump) -> list[str]:
    log = b.changelog
    upstream = b.dependency.upstream
    out = []
    if log.pulls:
        for pr in log.pulls[:MAX_PULLS_SHOWN]:
            labels = "".join(f" `{_label(label, upstream)}`" for label in pr.labels)
            by = f" by {_profile(pr)}" if pr.author else ""
            out.append(f"- {_md(inert(pr.title, upstream))} [#{pr.number}]({pr.html_url})"
                       f"{by}{labels}")
        if len(log.pulls) > MAX_PULLS_SHOWN:
            out.append(f"- … and {len(log.pulls) - MAX_PULLS_SHOWN} more")
    if log.commits and log.commits_read < log.commits:
        out.append(f"- PRs of the first {log.commits_read} of {log.commits} commits are "
                   "listed")
    if log.compare_url:
        out.append(f"- All changes: [{b.before}...{b.after}]({log.compare_url})")
    if log.release_notes is not None:
        notes = inert(log.release_notes, upstream).strip()
        if len(notes) > MAX_NOTES:
            notes = notes[:MAX_NOTES] + "\n\n… (cut; see the release)"
        out += [f"Release notes ([{b.after}]({log.release_url})):", "",
                "\n".join("> " + line for line in notes.splitlines()) or "> (empty)"]
    elif log.release_url:
        out.append(f"- Release: {log.release_url}")
    if log.note:
        out.append(f"- {inert(log.note, upstream)}")
    return out or ["- (no upstream repository configured: see the project's changelog)"]


def _label(name: str, upstream: str | None) -> str:
    """An upstream label's name, fit for a code span."""
    return inert(name.replace("`", "'"), upstream)


def _profile(pr: UpstreamPull) -> str:
    """A link to the author's profile, without the @ that would ping them."""
    login = re.sub(r"[^A-Za-z0-9\[\]-]", "", pr.author)
    where = urlsplit(pr.html_url)
    site = f"{where.scheme}://{where.netloc}" if where.netloc else "https://github.com"
    if login.endswith("[bot]"):
        return f"[{login}]({site}/apps/{login[:-len('[bot]')]})"
    return f"[{login}]({site}/{login})"


def _md(text: str) -> str:
    return (text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", " "))


def _fence_safe(text: str) -> str:
    return text.replace("```", "'''")


__all__ = ["Bump", "Unit", "Changelog", "UpstreamPull", "title", "commit_message",
           "is_bot_commit", "marker", "read_marker", "with_marker", "inert", "body",
           "BRANCH_PREFIX", "TRAILER"]
