"""A cache for values computed once per run and read from many member threads."""
from __future__ import annotations

import functools
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
_MISSING = object()


def shared(fn: Callable[..., T] | None = None, *, maxsize: int | None = None):
    """Like functools.cache, but a value is computed once even when several threads ask for
    it first at the same time (lru_cache lets each compute it; under the GIL that multiplies
    a slow first call by the number of members). The others wait for the first; calls with
    other arguments do not wait for it. An exception is not cached: the next call tries
    again. A value computed while cache_clear ran is returned but not kept. `maxsize`: at
    most that many values are kept, the oldest forgotten first (@shared(maxsize=N))."""
    if fn is None:
        return lambda f: _shared(f, maxsize)
    return _shared(fn, maxsize)


def _shared(fn: Callable[..., T], maxsize: int | None) -> Callable[..., T]:
    results: dict = {}
    locks: dict = {}
    guard = threading.Lock()
    generation = [0]

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return results[args]
        except KeyError:
            pass
        with guard:
            lock = locks.setdefault(args, threading.RLock())
            started = generation[0]
        with lock:
            found = results.get(args, _MISSING)
            if found is not _MISSING:
                return found
            value = fn(*args)
            with guard:
                if generation[0] == started:
                    results[args] = value
                    while maxsize is not None and len(results) > maxsize:
                        oldest = next(iter(results))
                        del results[oldest]
                        locks.pop(oldest, None)
            return value

    def cache_clear() -> None:
        with guard:
            generation[0] += 1
            results.clear()
            locks.clear()

    wrapper.cache_clear = cache_clear      # type: ignore[attr-defined]
    return wrapper
