"""The one way the deployer runs a program.

Every external command (helm, sops, git, kubectl, gcloud, aws, pip) goes through `run`:

- the exact command is printed first (secrets redacted by the workspace's Console), with the
  tool's short name instead of its full path, so an operator can copy and re-run it;
- the child gets an explicit environment (never os.environ) and a timeout;
- stdout and stderr are captured; a failure is a ProcessError naming the tool, its exit code
  and the last line it printed (redacted);
- children run in their own process group, so an interrupted deploy can stop them
  (`terminate_all`) without the terminal's Ctrl-C killing helm half-way through a write;
  where util-linux `setpriv` exists they also get SIGTERM if the deployer itself is killed
  (SIGKILL at the end of a CI cancellation), so no helm outlives it unseen.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from deployer.console import Console
from deployer.errors import DeployerError, ToolError

DEFAULT_TIMEOUT = 300.0
# A short, CPU-bound run of a Go program (an offline helm render, a sops decryption): Go's
# collector costs it a quarter to a third of its CPU there, for a heap of tens of MB at most.
# It is turned off for those (unless the environment sets GOGC or GOMEMLIMIT itself); it
# still runs before the heap reaches GOMEMLIMIT.
SHORT_GO_RUN = {"GOGC": "off", "GOMEMLIMIT": "512MiB"}


def short_go_run(env: Mapping[str, str]) -> Mapping[str, str]:
    """`env` for a short Go run (see SHORT_GO_RUN); an operator's own GOGC or GOMEMLIMIT wins."""
    if "GOGC" in env or "GOMEMLIMIT" in env:
        return env
    return {**SHORT_GO_RUN, **env}


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


@dataclass(frozen=True)
class Result:
    """A finished program: its command, exit code and captured output (not redacted)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ProcessError(DeployerError):
    """A program exited non-zero; the message names it and its last line of output."""

    exit_code = 1

    def __init__(self, tool: str, result: Result, *, console: Console | None = None,
                 hint: str | None = None, what: str | None = None, lines: int = 1):
        self.tool = tool
        self.result = result
        self.stderr = result.stderr
        self.returncode = result.returncode
        detail = last_lines(result.stderr or result.stdout, lines)
        if console is not None:
            detail = console.redact(detail)
        verb = what or (f"{tool} {result.argv[1]}" if len(result.argv) > 1 else tool)
        super().__init__(f"{verb} failed (exit {result.returncode}): {detail}", hint=hint)


def run(argv: Sequence[str | Path], *, env: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT,
        console: Console | None = None, stdin: str | None = None, cwd: str | Path | None = None,
        echo: bool = True, check: bool = True, tool: str | None = None,
        hint: str | None = None, pass_fds: tuple[int, ...] = (),
        errors: str = "strict") -> Result:
    """Run `argv` with `env`, capturing output; see the module docstring. `pass_fds`: open
    files the child shares (a lock it must hold too). `errors`: how output that is not
    UTF-8 is decoded (as str.decode's `errors`)."""
    argv = tuple(str(a) for a in argv)
    name = tool or Path(argv[0]).name
    if echo and console is not None:
        console.command([name, *argv[1:]])
    if timeout is None or timeout <= 0:
        raise ToolError(f"{name}: a timeout must be a positive number of seconds")
    argv = (_executable(argv[0], env, name, hint), *argv[1:])
    try:
        proc = subprocess.Popen(_with_parent_death_signal(argv), env=dict(env), cwd=cwd,
                                text=True, errors=errors,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, pass_fds=pass_fds)
    except OSError as exc:
        raise ToolError(f"cannot run {name}: {exc.strerror or exc}", hint=hint) from None
    with _children_lock:
        _children.add(proc)
    try:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise ToolError(f"{name} {argv[1] if len(argv) > 1 else ''} timed out after "
                            f"{timeout:g}s".replace("  ", " "), hint=hint) from None
        except UnicodeEncodeError as exc:   # input that is no text (never quoted: a secret)
            _stop(proc)
            raise ToolError(f"cannot run {name}: its input is not valid text ({exc.reason} "
                            f"at character {exc.start + 1})", hint=hint) from None
        except BaseException:  # KeyboardInterrupt, SystemExit from a signal handler
            _stop(proc)
            raise
    finally:
        with _children_lock:
            _children.discard(proc)
    result = Result(argv, proc.returncode, out or "", err or "")
    if check and not result.ok:
        raise ProcessError(name, result, console=console, hint=hint)
    return result


def run_attached(argv: Sequence[str | Path], *, env: Mapping[str, str],
                 timeout: float | None, console: Console | None = None,
                 cwd: str | Path | None = None, tool: str | None = None,
                 grace: float = 5.0) -> int:
    """Run an interactive program (an editor through `sops edit`) on the terminal. The one
    place without a timeout (None): a person is typing. It stays in the deployer's process
    group (the terminal's foreground, for the editor). When the wait ends with an exception
    (a signal handler's, see cli/interrupts.py), the program gets SIGTERM (SIGKILL after
    `grace` s) and is waited for before the exception goes on: the caller's cleanup then
    runs after it, not beside it."""
    argv = tuple(str(a) for a in argv)
    name = tool or Path(argv[0]).name
    if console is not None:
        console.command([name, *argv[1:]])
    try:
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd)
    except OSError as exc:
        raise ToolError(f"cannot run {name}: {exc.strerror or exc}") from None
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_attached(proc, grace)
        raise ToolError(f"{name} did not finish within {timeout:g}s") from None
    except BaseException:
        _stop_attached(proc, grace)
        raise


@contextlib.contextmanager
def signals_held(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
    """Hold `signals` for the block (the main thread's mask), so a cleanup that must finish
    (removing a decrypted copy, replacing a file) is not cut short by a handler that
    raises; one that came meanwhile is delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def running() -> int:
    """How many children are running now (for tests and the interrupt handler)."""
    with _children_lock:
        return len(_children)


def terminate_all(grace: float = 10.0) -> None:
    """Stop every running child: SIGTERM to its process group, SIGKILL after `grace` s."""
    with _children_lock:
        children = list(_children)
    for proc in children:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in children:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)


def _executable(program: str, env: Mapping[str, str], name: str, hint: str | None) -> str:
    """The program's path, looked up on the child's PATH (never the deployer's own)."""
    if "/" in program:
        found = program if os.access(program, os.X_OK) and os.path.isfile(program) else None
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
    if not found:
        raise ToolError(f"cannot run {name}: {program} not found or not executable", hint=hint)
    return found


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        candidate = Path(directory) / "setpriv"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _with_parent_death_signal(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`setpriv --pdeathsig TERM -- argv` when setpriv is there (Linux), else argv."""
    setpriv = _setpriv()
    return (setpriv, "--pdeathsig", "TERM", "--", *argv) if setpriv else argv


def last_lines(text: str, count: int = 1) -> str:
    """The last `count` non-empty lines of `text`, joined with ' | '."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "no output"


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End a child whose communicate() failed or timed out: SIGTERM to its group, SIGKILL
    after `grace` s. It is waited for, not communicated with again: a communicate() that
    failed may have left its input half-converted (a str where it expects bytes: a second
    call raises TypeError). Our ends of its pipes are closed first, so a child blocked
    writing output gets EPIPE instead of waiting for a reader."""
    _signal(proc, signal.SIGTERM)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except (OSError, ValueError):
            pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        proc.wait()


def _stop_attached(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to an attached program (it shares our process group: only to it), SIGKILL
    after `grace` s; waited for."""
    with signals_held():
        try:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except OSError:
            pass


def _signal(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
