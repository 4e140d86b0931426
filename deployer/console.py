"""What a workspace prints: every line goes through its Console, so every line is redacted.

A Console knows the secret values its workspace has seen (decrypted values, credentials),
and masks them in everything it prints unless the operator asked for --show-secrets. Each
Workspace owns one, so two workspaces in one process (the bump bot, `plan`) stay apart.
"""
from __future__ import annotations

import shlex
import sys
import threading
from typing import Callable, Iterable, Sequence, TextIO

from deployer.model.redact import Redactor

Log = Callable[[str], None]


class Console:
    """Redacting printer for one workspace (thread-safe: members print from workers)."""

    def __init__(self, *, reveal: bool = False, stdout: TextIO | None = None,
                 stderr: TextIO | None = None):
        self.reveal = reveal
        self._stdout = stdout
        self._stderr = stderr
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._redactor = Redactor()

    # -- secrets ----------------------------------------------------------------------------
    def add_secrets(self, values: Iterable) -> None:
        """Register secret values: from now on they are masked in every printed line."""
        new = {str(v) for v in values if v is not None and not isinstance(v, bool)}
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            self._redactor = Redactor(self._secrets)

    @property
    def redactor(self) -> Redactor:
        """A Redactor for every secret registered so far."""
        return self._redactor

    def redact(self, text: str) -> str:
        """`text` with every registered secret masked (unless --show-secrets)."""
        return text if self.reveal else self._redactor.text(text)

    # -- printing ---------------------------------------------------------------------------
    def say(self, text: str = "", *, err: bool = False) -> None:
        """Print one redacted line (or block) to stdout, or stderr with err=True."""
        stream = (self._stderr or sys.stderr) if err else (self._stdout or sys.stdout)
        line = self.redact(text)
        with self._lock:
            print(line, file=stream, flush=True)

    def info(self, text: str) -> None:
        """Progress for the operator, on stderr so stdout stays machine-readable."""
        self.say(text, err=True)

    def warn(self, text: str) -> None:
        """A yellow warning line on stderr."""
        self.say(self._colour(f"warning: {text}", "33"), err=True)

    def error(self, text: str) -> None:
        """One red error line on stderr."""
        self.say(self._colour(f"error: {text}", "31"), err=True)

    def command(self, argv: Sequence[str]) -> None:
        """Show an external command before running it, so the operator can re-run it."""
        self.info("$ " + shlex.join(str(a) for a in argv))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence], *,
              err: bool = False) -> None:
        """A plain aligned table (copy-pastes into issues and CI logs)."""
        rows = [[str(c) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        self.say("\n".join(lines), err=err)

    def prefixed(self, prefix: str) -> Log:
        """A progress logger whose lines start with `prefix` (a member name)."""
        return lambda text: self.info(f"{prefix}: {text}")

    def _colour(self, text: str, code: str) -> str:
        stream = self._stderr or sys.stderr
        return f"\033[{code}m{text}\033[0m" if stream.isatty() else text
