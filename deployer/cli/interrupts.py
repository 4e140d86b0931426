"""SIGINT and SIGTERM while a command changes clusters (deploy, rollback).

The first signal sets `cancel`: waits stop at once, a helm operation that is running is
let finish (killing it would strand the release), whatever was started is rolled back, locks
are released, private kubeconfigs removed, and the report says `interrupted`. A second
signal sets `abort` too and stops running programs: the rollback is not waited for, but
locks and temporary files are still cleaned up by the workers as they unwind. CI cancels
with SIGINT, then SIGTERM, then SIGKILL after a grace period: what a SIGKILL can leave
behind is a release stuck `pending-*`, which the next deploy's preflight recovers.

`secrets edit` has them (and SIGHUP) raise instead: the editor is stopped and the decrypted
copy removed on the way out (see Interrupts(raises=True)).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from deployer.adapters import process
from deployer.console import Console
from deployer.errors import Interrupted

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class Interrupts:
    """Signals turned into events the pipeline watches."""

    def __init__(self, console: Console, *, stop_programs: bool = True,
                 signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                 raises: bool = False):
        """`stop_programs`: a second signal stops running programs (not for Terraform,
        which would lose state); `signals`: the ones handled; `raises`: the first signal
        raises Interrupted where the main thread is (a program it waits for is stopped,
        `finally` blocks run: see process.run_attached), later ones are only noted, so
        that cleanup is not cut short (for `secrets edit`)."""
        self.console = console
        self.stop_programs = stop_programs
        self.raises = raises
        self.signals = signals
        self.cancel = threading.Event()
        self.abort = threading.Event()
        self.received: int | None = None

    @property
    def exit_code(self) -> int | None:
        """130 after SIGINT, 143 after SIGTERM, None when no signal came."""
        return EXIT_CODES.get(self.received) if self.received is not None else None

    @contextlib.contextmanager
    def handled(self) -> Iterator["Interrupts"]:
        """Install the handlers for the duration of the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.raises:
            if self.received is None:
                self.received = signum
                self.cancel.set()
                raise interrupted(signum)
            return
        if not self.stop_programs:
            self.received = self.received or signum
            self.cancel.set()
            self.console.warn(f"{name}: the running terraform command is let finish (killing "
                              "it would lose what it created from the state); then stopping")
            return
        if not self.cancel.is_set():
            self.received = signum
            self.cancel.set()
            self.console.warn(f"{name}: stopping - waits end now, what was started is rolled "
                              "back, locks are released (send it again to stop faster)")
            return
        self.abort.set()
        self.console.warn(f"{name} again: stopping running programs; the rollback is not "
                          "waited for (locks and temporary files are still cleaned up)")
        threading.Thread(target=process.terminate_all, kwargs={"grace": 2.0},
                         daemon=True).start()


def interrupted(signum: int, message: str | None = None, **where) -> Interrupted:
    """An Interrupted error for `signum`, with its exit code (130, 143, 129)."""
    error = Interrupted(message or f"interrupted by {signal.Signals(signum).name}", **where)
    error.exit_code = EXIT_CODES.get(signum, 130)
    return error
