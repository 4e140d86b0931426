"""Diff a member's rendered manifests against the live release (`helm get manifest`)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from deployer.model.manifests import K8sObject, parse, redacted_text
from deployer.model.redact import Redactor
from deployer.model.report import DiffSummary


@dataclass
class Change:
    """One object added, changed or removed."""

    action: str            # added / changed / removed
    ref: str               # Kind/name (namespace/Kind/name for other namespaces)
    diff: str = ""         # unified diff, secrets masked
    secret_only: bool = False  # changed, but only in values that are masked


@dataclass
class Diff:
    """Object-level summary plus unified diffs of changed objects."""

    changes: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> DiffSummary:
        """Refs per action, for reports."""
        def refs(action: str) -> tuple[str, ...]:
            return tuple(c.ref for c in self.changes if c.action == action)

        return DiffSummary(refs("added"), refs("changed"), refs("removed"))

    def text(self) -> str:
        """What an operator reads: one line per object, then the diffs."""
        if self.empty:
            return "no changes"
        lines = [f"  {c.action:8} {c.ref}" + (" (secret values changed; not shown)"
                                               if c.secret_only else "")
                 for c in self.changes]
        head = self.summary().counts()
        diffs = [c.diff for c in self.changes if c.diff]
        return "\n".join([head, *lines, *([""] + diffs if diffs else [])])


def compute(live_manifest: str, rendered: list[K8sObject], namespace: str,
            redactor: Redactor) -> Diff:
    """Compare the manifest of the deployed release with freshly rendered objects."""
    live = {_key(o, namespace): o for o in parse(live_manifest)}
    new = {_key(o, namespace): o for o in rendered}
    result = Diff()
    for key in sorted(set(live) | set(new), key=lambda k: (k[1], k[2], k[3])):
        old_obj, new_obj = live.get(key), new.get(key)
        ref = _ref(key, namespace)
        if old_obj is None:
            result.changes.append(Change("added", ref, _udiff("", new_obj, ref, redactor)))
        elif new_obj is None:
            result.changes.append(Change("removed", ref, _udiff(old_obj, "", ref, redactor)))
        elif old_obj.body != new_obj.body:
            text = _udiff(old_obj, new_obj, ref, redactor)
            result.changes.append(Change("changed", ref, text, secret_only=not text))
    return result


def _key(obj: K8sObject, namespace: str) -> tuple:
    group = obj.api_version.rpartition("/")[0]
    ns = (obj.body.get("metadata") or {}).get("namespace") or namespace
    return (group, obj.kind, ns, obj.name)


def _ref(key: tuple, namespace: str) -> str:
    _, kind, ns, name = key
    return f"{kind}/{name}" if ns == namespace else f"{ns}/{kind}/{name}"


def _udiff(old, new, ref: str, redactor: Redactor) -> str:
    before = redacted_text([old], redactor).splitlines(keepends=True)[2:] if old else []
    after = redacted_text([new], redactor).splitlines(keepends=True)[2:] if new else []
    if before == after:
        return ""
    return "".join(difflib.unified_diff(before, after, f"live/{ref}", f"rendered/{ref}", n=3))
