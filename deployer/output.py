"""Everything the CLI prints goes through here, so every line is redacted."""
from __future__ import annotations

import shlex
import sys
import threading
from typing import Iterable, Sequence

from deployer.model.redact import Redactor

_lock = threading.Lock()
_secrets: set[str] = set()
_redactor = Redactor()
_reveal = False


def add_secrets(values: Iterable) -> None:
    """Register secret values: from now on they are masked in every printed line."""
    global _redactor
    with _lock:
        _secrets.update(str(v) for v in values if v is not None and not isinstance(v, bool))
        _redactor = Redactor(_secrets)


def reveal(on: bool) -> None:
    """--show-secrets: stop masking (the operator asked for plaintext)."""
    global _reveal
    _reveal = on


def redact(text: str) -> str:
    """`text` with every registered secret masked (unless --show-secrets)."""
    return text if _reveal else _redactor.text(text)


def say(text: str = "", *, err: bool = False) -> None:
    """Print one redacted line (or block) to stdout, or stderr with err=True."""
    stream = sys.stderr if err else sys.stdout
    print(redact(text), file=stream, flush=True)


def info(text: str) -> None:
    """Progress for the operator, on stderr so stdout stays machine-readable."""
    say(text, err=True)


def warn(text: str) -> None:
    """A yellow warning line on stderr."""
    say(_colour(f"warning: {text}", "33"), err=True)


def error(text: str) -> None:
    """One red error line on stderr."""
    say(_colour(f"error: {text}", "31"), err=True)


def command(argv: Sequence[str]) -> None:
    """Show an external command before running it, so the operator can re-run it."""
    info("$ " + shlex.join(str(a) for a in argv))


def table(headers: Sequence[str], rows: Iterable[Sequence], *, err: bool = False) -> None:
    """A plain aligned table (copy-pastes into issues and CI logs)."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    say(line.rstrip(), err=err)
    say("  ".join("-" * w for w in widths), err=err)
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), err=err)


def _colour(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if sys.stderr.isatty() else text
