"""Diff a member's rendered manifests against the live release (`helm get manifest`).

Charts generate some values at render time when none is given (z2jh's hub Secret: proxy token,
cookie secret, CryptKeeper keys; grafana's admin password) and keep the live ones through
helm's `lookup`, which only answers when rendering against the cluster. The deploy renders the
diff that way (pipeline.diff_against); when it cannot, `compute(..., generated=True)` carries
the live values of those generated fields over before comparing, so they do not show as
changed on every run.

Pod-template checksums of such Secrets are never compared: on install the chart hashes a
second, different random render of the Secret, so the live checksum matches no content and
would show as changed on the next run although the Secret is the same. A real change to
the Secret still shows (as a change of the Secret).
"""
from __future__ import annotations

import copy
import difflib
import re
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
    notes: list[str] = field(default_factory=list)

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
            return "\n".join(["no changes", *self.notes])
        lines = [f"  {c.action:8} {c.ref}" + (" (secret values changed; not shown)"
                                               if c.secret_only else "")
                 for c in self.changes]
        head = self.summary().counts()
        diffs = [c.diff for c in self.changes if c.diff]
        return "\n".join([head, *lines, *self.notes, *([""] + diffs if diffs else [])])


def compute(live_manifest: str, rendered: list[K8sObject], namespace: str,
            redactor: Redactor, generated: bool = False) -> Diff:
    """Compare the manifest of the deployed release with freshly rendered objects.
    `generated`: the objects were rendered without the cluster (no `lookup`): values the
    charts generate at render time are taken from the live objects before comparing
    (checksum annotations of generated Secrets are carried over in any case)."""
    live = {_key(o, namespace): o for o in parse(live_manifest) if not is_hook(o)}
    # helm keeps hooks (grafana's test pod, cert-manager's startupapicheck) out of the
    # release manifest: rendered hooks would show as added on every run
    hooks = [o for o in rendered if is_hook(o)]
    new = {_key(o, namespace): o for o in rendered if not is_hook(o)}
    result = Diff()
    carried = 0
    for key in sorted(set(live) | set(new), key=lambda k: (k[1], k[2], k[3])):
        old_obj, new_obj = live.get(key), new.get(key)
        ref = _ref(key, namespace)
        if old_obj is not None and new_obj is not None:
            new_obj, n = carry_generated(old_obj, new_obj, secrets=generated,
                                         operator_set=redactor.knows)
            carried += n
        if old_obj is None:
            result.changes.append(Change("added", ref, _udiff("", new_obj, ref, redactor)))
        elif new_obj is None:
            result.changes.append(Change("removed", ref, _udiff(old_obj, "", ref, redactor)))
        elif old_obj.body != new_obj.body:
            text = _udiff(old_obj, new_obj, ref, redactor)
            result.changes.append(Change("changed", ref, text, secret_only=not text))
    if hooks:
        result.notes.append(f"  ({len(hooks)} hook object(s) not compared: helm runs them and "
                            "does not keep them in the release)")
    if carried:
        result.notes.append(f"  ({carried} generated value(s) (chart-generated secrets or their "
                            "checksums) taken from the live release, not compared)")
    return result


# Values the dependency charts generate when none is set (kept live through `lookup`):
# Secret data keys, and pod-template annotations that are checksums of them.
GENERATED_SECRET_KEYS = re.compile(
    r"^(hub\.config\.(ConfigurableHTTPProxy\.auth_token|JupyterHub\.cookie_secret|"
    r"CryptKeeper\.keys)|hub\.services\.[^.]+\.apiToken|admin-password)$")
GENERATED_ANNOTATIONS = ("checksum/secret", "checksum/auth-token")


def is_hook(obj: K8sObject) -> bool:
    """A helm hook (`helm.sh/hook` annotation): not part of the release's manifest."""
    annotations = (obj.body.get("metadata") or {}).get("annotations")
    return isinstance(annotations, dict) and "helm.sh/hook" in annotations


def carry_generated(old: K8sObject, new: K8sObject, secrets: bool = True,
                    operator_set=lambda text: False) -> tuple[K8sObject, int]:
    """`new` with the live values (from `old`) of generated fields (the Secret keys only when
    `secrets`; the checksum annotations always); and how many differed. A Secret value an
    operator set (`operator_set(value)`: one of the run's secrets, e.g. a rotated
    grafana.adminPassword) is not generated: its change is compared."""
    body = copy.deepcopy(new.body)
    count = 0
    if secrets and new.kind == "Secret":
        for section in ("data", "stringData"):
            before, after = old.body.get(section) or {}, body.get(section) or {}
            for key in list(after):
                if GENERATED_SECRET_KEYS.match(key) and key in before and \
                        before[key] != after[key] and \
                        not operator_set(_plain(after[key], section)):
                    after[key] = before[key]
                    count += 1
    template = ((body.get("spec") or {}).get("template") or {}).get("metadata") or {}
    old_template = ((old.body.get("spec") or {}).get("template") or {}).get("metadata") or {}
    after, before = template.get("annotations") or {}, old_template.get("annotations") or {}
    for key in GENERATED_ANNOTATIONS:
        if key in after and key in before and after[key] != before[key]:
            after[key] = before[key]
            count += 1
    return (K8sObject(body, new.source) if count else new), count


def _plain(value, section: str) -> str:
    """A Secret value as set: `data` is base64."""
    import base64
    import binascii

    if section != "data":
        return str(value)
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return str(value)


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
