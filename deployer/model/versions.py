"""Versions as upstream projects write them, ordered by semver (not by date).

Helm charts, image tags and release tags are parsed leniently into semver: a leading `v`
is kept aside, missing minor/patch parts are 0, leading zeros of calendar versions
(`2025.08.0`) are dropped for ordering only. Development builds such as BinderHub's
`1.0.0-0.dev.git.3983.h383374de` are semver pre-releases (`packaging` rejects them), and the
git commit they were built from (`383374de`) is read from their last identifier.
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass
from typing import Iterable

_LENIENT = re.compile(r"^(?P<prefix>v?)(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
                      r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$")
# `h383374de` (chartpress: ...git.<n>.h<sha>) or `g3e4f5a6` (git describe: ...-12.g3e4f5a6)
_COMMIT = re.compile(r"(?:^|[.-])[hg]([0-9a-f]{7,40})$")


@dataclass(frozen=True)
class Version:
    """One upstream version: its text as written, and its semver for ordering."""

    text: str
    prefix: str
    key: object          # semver.Version
    parts: int = 3       # numeric core parts as written: 2025.08.0 has 3, 20240101 has 1

    @property
    def prerelease(self) -> bool:
        """A pre-release or development build (anything with a `-suffix`)."""
        return self.key.prerelease is not None

    @property
    def major(self) -> int:
        return self.key.major

    @property
    def commit(self) -> str | None:
        """The git commit a development build was made from (a short sha), if it says."""
        for part in (self.key.prerelease, self.key.build):
            if part:
                found = _COMMIT.search(part)
                if found:
                    return found.group(1)
        return None

    def __lt__(self, other: "Version") -> bool:
        return self.key < other.key

    def __str__(self) -> str:
        return self.text


def parse(text: object) -> Version | None:
    """`text` as a Version; None for tags that are not versions (`latest`, `sha-1a2b`)."""
    import semver

    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        return None
    text = str(text).strip()
    found = _LENIENT.match(text)
    if not found:
        return None
    core = ("major", "minor", "patch")
    parts = [int(found.group(k) or 0) for k in core]
    try:
        key = semver.Version(*parts, prerelease=found.group("pre"), build=found.group("build"))
    except (ValueError, TypeError):
        return None
    return Version(text, found.group("prefix"), key,
                   sum(1 for k in core if found.group(k) is not None))


def newest(candidates: Iterable[str], current: str, *, prereleases: bool = False,
           hold_major: bool = False) -> Version | None:
    """The newest candidate that is newer than `current` and that the policy allows: no
    pre-releases unless `prereleases`, the same major version when `hold_major`, and the
    same shape as the current version (its `v` prefix and number of core parts, so that a
    tag such as `20240101` never beats `2025.10.0`). None when `current` is the newest."""
    now = parse(current)
    if now is None:
        return None
    best = None
    for text in candidates:
        candidate = parse(text)
        if candidate is None or not same_shape(candidate, now):
            continue
        if candidate.prerelease and not prereleases:
            continue
        if hold_major and candidate.major != now.major:
            continue
        if not now < candidate:
            continue
        if best is None or best < candidate:
            best = candidate
    return best


def same_shape(a: Version, b: Version) -> bool:
    """Whether two versions are written alike: the same `v` prefix, as many core parts."""
    return a.prefix == b.prefix and a.parts == b.parts


def is_major_bump(old: str, new: str) -> bool:
    """Whether `new` changes the major version of `old` (a breaking change by semver)."""
    a, b = parse(old), parse(new)
    return a is not None and b is not None and b.major > a.major


@lru_cache(maxsize=1024)
def satisfies(version: str, constraint: str) -> bool | None:
    """Whether `version` (e.g. a member's Kubernetes `1.34`) meets a chart's `kubeVersion`
    constraint as Helm reads it (Masterminds semver: `>=1.22.0-0`, `^1.8.0-0`, `~1.30`,
    `>= 1.19 < 1.35`, `1.2 - 1.4`, `1.x`, `a || b`). None when the constraint cannot be
    read (the caller then says so rather than guessing)."""
    have = _core(version)
    if have is None:
        return None
    try:
        return any(all(_check(have, op, bound) for op, bound in _terms(group))
                   for group in constraint.split("||"))
    except ValueError:
        return None


def _core(version: object) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a version, all a constraint compares (a pre-release or build
    suffix is left out, as Helm does for kubeVersion); None for what parse() refuses."""
    if isinstance(version, str):
        found = _LENIENT.match(version.strip())
        if found and not found.group("pre") and not found.group("build"):
            return (int(found.group("major")), int(found.group("minor") or 0),
                    int(found.group("patch") or 0))
    parsed = parse(version)          # a suffix: is it one semver takes?
    return None if parsed is None else (parsed.key.major, parsed.key.minor, parsed.key.patch)


_TERM = re.compile(r"(\^|~>|~|>=|=>|<=|=<|!=|>|<|=)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2}"
                   r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)")


def _terms(group: str) -> list[tuple[str, tuple]]:
    """(operator, (major, minor, patch, given parts)) of one AND group."""
    group = group.strip()
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", group)
    if hyphen:
        return [(">=", _bound(hyphen.group(1))), ("<=", _bound(hyphen.group(2)))]
    out, at = [], 0
    text = group.replace(",", " ")
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        found = _TERM.match(text, at)
        if not found:
            raise ValueError(f"cannot read constraint {group!r}")
        out.append((found.group(1) or "=", _bound(found.group(2))))
        at = found.end()
    if not out:
        raise ValueError("empty constraint")
    return out


def _bound(text: str) -> tuple:
    core = re.split(r"[-+]", text, maxsplit=1)[0]
    parts = core.split(".")
    given = 0
    nums = []
    for part in parts:
        if part in ("x", "X", "*"):
            break
        nums.append(int(part))
        given += 1
    while len(nums) < 3:
        nums.append(0)
    return (*nums, given)


def _check(have: tuple, op: str, bound: tuple) -> bool:
    """`have` (major, minor, patch) against one term; plain versions compare as tuples."""
    major, minor, patch, given = bound
    low = (major, minor, patch)
    if op in ("=", "!=") and given < 3:            # 1.x / 1.30: a range
        inside = _in_range(have, low, given)
        return inside if op == "=" else not inside
    if op == "^":
        if given == 0:
            return True
        high = ((major + 1, 0, 0) if major > 0 or given == 1 else
                (0, minor + 1, 0) if minor > 0 or given == 2 else
                (0, 0, patch + 1))
        return low <= have < high
    if op in ("~", "~>"):
        high = (major + 1, 0, 0) if given <= 1 else (major, minor + 1, 0)
        return low <= have < high
    if op in (">", "<=", "=<") and given < 3:      # >1.30 means >= 1.31; <=1.30 means < 1.31
        nxt = (major + 1, 0, 0) if given <= 1 else (major, minor + 1, 0)
        return have >= nxt if op == ">" else have < nxt
    compare = {"=": have == low, "!=": have != low, ">": have > low, "<": have < low,
               ">=": have >= low, "=>": have >= low, "<=": have <= low, "=<": have <= low}
    return compare[op]


def _in_range(have: tuple, low: tuple, given: int) -> bool:
    if given == 0:
        return True
    high = (low[0] + 1, 0, 0) if given == 1 else (low[0], low[1] + 1, 0)
    return low <= have < high


__all__ = ["Version", "parse", "newest", "same_shape", "is_major_bump", "satisfies"]
