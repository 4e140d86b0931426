"""A network call the caller may stop waiting for: run in a daemon thread, so an interrupt
or a deadline ends the wait at once, and the abandoned call ends on its own timeout without
holding the process at exit (concurrent.futures' workers are joined at exit)."""
from __future__ import annotations

import threading
from concurrent import futures
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")


def started(call: Callable[[], T], name: str) -> "Future[T]":
    """`call()` running in a daemon thread; its result (or exception) in the future."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def wait(future: Future, seconds: float) -> bool:
    """Whether `future` is done within `seconds` (its own exceptions are left to result():
    a call that itself timed out is not taken for the wait running out)."""
    return bool(futures.wait([future], timeout=seconds).done)
