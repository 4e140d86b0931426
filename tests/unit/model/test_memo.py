"""model.memo.shared: one computation per argument across threads; failures not kept."""
import threading
import time

import pytest

from deployer.model.memo import shared


def _race(fn, args_list):
    barrier = threading.Barrier(len(args_list))
    out = [None] * len(args_list)

    def go(i, args):
        barrier.wait()
        try:
            out[i] = fn(*args)
        except Exception as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_threads_asking_at_once_share_one_computation():
    calls = []

    @shared
    def slow(x):
        calls.append(x)
        time.sleep(0.1)
        return [x]

    out = _race(slow, [(1,)] * 8)
    assert calls == [1] and all(o is out[0] for o in out)


def test_another_argument_does_not_wait_for_a_slow_one():
    started = threading.Event()
    release = threading.Event()

    @shared
    def f(x):
        if x == "slow":
            started.set()
            release.wait(5)
        return x

    t = threading.Thread(target=f, args=("slow",))
    t.start()
    assert started.wait(5)
    assert f("fast") == "fast"
    assert t.is_alive()              # answered while the slow one still waits (not after it)
    release.set()
    t.join()


def test_a_failure_is_not_kept():
    attempts = []

    @shared
    def flaky(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise OSError("busy")
        return x

    with pytest.raises(OSError):
        flaky(1)
    assert flaky(1) == 1 and flaky(1) == 1
    assert attempts == [1, 1]


def test_a_value_computed_across_a_clear_is_not_kept():
    release = threading.Event()
    read_it = threading.Event()
    version = ["old"]

    @shared
    def read(x):
        seen = version[0]
        read_it.set()
        release.wait(5)
        return seen

    t = threading.Thread(target=read, args=(1,))
    t.start()
    assert read_it.wait(5)           # it has read "old" and is still computing
    version[0] = "new"
    read.cache_clear()
    release.set()
    t.join()
    assert read(1) == "new"


def test_with_maxsize_the_oldest_values_are_forgotten_first():
    calls = []

    @shared(maxsize=2)
    def square(x):
        calls.append(x)
        return x * x

    assert [square(x) for x in (1, 2, 1, 3)] == [1, 4, 1, 9]
    assert calls == [1, 2, 3]            # 1 was kept until 3 came: 1 (the oldest) goes
    assert square(2) == 4 and square(1) == 1
    assert calls == [1, 2, 3, 1]
    out = _race(square, [(x,) for x in range(10)] * 3)
    assert out == [x * x for x in range(10)] * 3
