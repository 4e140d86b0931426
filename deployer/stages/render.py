"""Render members: merged values (secrets decrypted by sops, in memory) and, with the chart,
the manifests helm produces."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters import sops
from deployer.errors import ConfigError
from deployer.model import manifests
from deployer.model import values as values_mod
from deployer.model.federation import Member
from deployer.model.workspace import Workspace
from deployer.model.yamlio import dump, load_text


@dataclass
class RenderOutput:
    """One member's render output, already redacted unless the workspace shows secrets."""

    member: Member
    values: values_mod.MemberValues
    values_text: str
    manifests_text: str | None = None


def member_values(ws: Workspace, member: Member) -> values_mod.MemberValues:
    """Every values layer of `member` merged, its secrets file (and secrets/common.yaml when
    there is one) decrypted in memory."""
    rel = values_mod.secrets_file(member)
    plaintext = sops.decrypt(ws.root, rel, ws.env)
    return values_mod.build(ws, member, load_text(plaintext, rel), _common_secrets(ws))


def _common_secrets(ws: Workspace):
    """secrets/common.yaml decrypted (None when there is none): once per run and version of
    the file, however many members are rendered, kept in memory only."""
    path = ws.root / values_mod.COMMON_SECRETS
    if not path.is_file():
        return None
    stat = path.stat()
    key = ("common secrets", stat.st_mtime_ns, stat.st_size)
    with _COMMON_LOCK:
        if key not in ws.memo:
            check_common_recipients(ws)
            ws.memo[key] = load_text(sops.decrypt(ws.root, values_mod.COMMON_SECRETS, ws.env),
                                     values_mod.COMMON_SECRETS)
        return ws.memo[key]


_COMMON_LOCK = threading.Lock()


def check_common_recipients(ws: Workspace) -> None:
    """secrets/common.yaml reaches every member: it must be encrypted (and .sops.yaml must
    keep encrypting it) to every recipient of every member's secrets file, or some member's
    operators could not deploy."""
    rules = sops.creation_rules(ws.root)
    rel = values_mod.COMMON_SECRETS
    ruled = _rule_recipients(rules, rel)
    if ruled is None:
        raise ConfigError(f"{rel} matches no creation rule", file=sops.SOPS_CONFIG,
                          key="creation_rules",
                          hint="add a rule for ^secrets/common\\.yaml$ (before the rule for "
                               "other secrets) listing every member's recipients")
    actual = set(sops.recipients(ws.root / rel))
    for member in ws.federation.members.values():
        wanted = set(_rule_recipients(rules, values_mod.secrets_file(member)) or ())
        for have, what in ((set(ruled), f"its rule in {sops.SOPS_CONFIG} does"),
                           (actual, "the file is")):
            missing = wanted - have
            if missing:
                raise ConfigError(
                    f"{rel} must reach every member, but {what} not encrypt to "
                    f"{', '.join(sorted(missing))} (a recipient of "
                    f"{values_mod.secrets_file(member)})",
                    file=sops.SOPS_CONFIG if have is not actual else rel, key="creation_rules",
                    hint="list every member's recipients in the rule for secrets/common.yaml, "
                         "then `./deploy.py secrets rotate-recipients secrets/common.yaml`")


def _rule_recipients(rules: list[dict], rel: str) -> list[str] | None:
    """The age recipients of the first rule matching `rel` (as sops picks it)."""
    rule = sops.matching_rule(rules, rel)
    if rule is None:
        return None
    found = []
    for group in [rule] + list(rule.get("key_groups") or []):
        age = group.get("age") if isinstance(group, dict) else None
        if isinstance(age, str):
            age = age.split(",")
        found += [a.strip() for a in age or [] if str(a).strip()]
    return found


def render(ws: Workspace, member: Member, *, with_manifests: bool = False,
           mirror: str | None = None) -> RenderOutput:
    """Merge the member's values; with_manifests also renders the chart with the real helm."""
    mv = member_values(ws, member)
    shown = mv.final if ws.show_secrets else mv.redacted()
    result = RenderOutput(member=member, values=mv, values_text=dump(shown))
    if with_manifests:
        from deployer.adapters import helm
        from deployer.stages import chart, validate

        runner = helm.Helm(ws.env, console=ws.console)
        prepared = chart.prepare(ws, runner, mirror)
        objects = validate.render_member(ws, runner, prepared, member, mv).objects
        result.manifests_text = (manifests.plain_text(objects) if ws.show_secrets
                                 else manifests.redacted_text(objects, mv.redactor))
    return result


def write(result: RenderOutput, out: Path, *, show_secrets: bool) -> list[Path]:
    """Write DIR/<member>/{values,manifests}.yaml, mode 0600: they hold secret-derived
    objects (masked unless show_secrets, but still no business of other users)."""
    target_dir = out / result.member.name
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"--output {out}: not a directory", file=str(out)) from None
    except OSError as exc:
        raise ConfigError(f"--output {out}: cannot create {target_dir}: {exc.strerror}",
                          file=str(out)) from None
    mode = 0o600
    files = [("values.yaml", result.values_text)]
    if result.manifests_text is not None:
        files.append(("manifests.yaml", result.manifests_text))
    written = []
    for name, text in files:
        path = target_dir / name
        tmp = target_dir / f".{name}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # never an old mode
        except OSError as exc:
            raise ConfigError(f"--output {out}: cannot write {path}: {exc.strerror}",
                              file=str(out)) from None
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written
