"""Render a member: merged values now, rendered manifests once the chart stage is wired in."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import values as values_mod
from .federation import Member
from .workspace import Workspace
from .yamlio import dump


@dataclass
class Rendered:
    """One member's render output, redacted unless the workspace shows secrets."""

    member: Member
    values: values_mod.MemberValues
    values_text: str


def render(ws: Workspace, member: Member) -> Rendered:
    """Build the member's values and serialise them (masked unless --show-secrets)."""
    mv = values_mod.build(ws, member)
    shown = mv.final if ws.show_secrets else mv.redacted()
    return Rendered(member=member, values=mv, values_text=dump(shown))


def write(result: Rendered, out: Path, *, show_secrets: bool) -> list[Path]:
    """Write DIR/<member>/values.yaml; files holding plaintext secrets are created 0600."""
    target_dir = out / result.member.name
    target_dir.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if show_secrets else 0o644
    written = []
    for name, text in [("values.yaml", result.values_text)]:
        path = target_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        written.append(path)
    return written
