"""A cache for values computed once per run and read from many member threads."""
from __future__ import annotations

import functools
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def shared(fn: Callable[..., T]) -> Callable[..., T]:
    """Like functools.cache, but a value is computed once even when several threads ask for
    it first at the same time (lru_cache lets each compute it; under the GIL that multiplies
    a slow first call by the number of members). The others wait for the first."""
    cached = functools.lru_cache(maxsize=None)(fn)
    lock = threading.RLock()

    @functools.wraps(fn)
    def wrapper(*args):
        with lock:
            return cached(*args)

    wrapper.cache_clear = cached.cache_clear      # type: ignore[attr-defined]
    return wrapper
