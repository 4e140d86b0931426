"""The deploy lock: a coordination.k8s.io/v1 Lease in the member's namespace.

Two deploys of the same member (a teammate's laptop and CI) must never run at once. The
deploy takes a Lease named `deployer-lock` in the member namespace, renews it while it runs
and deletes it when done:

    with DeployLock(kube, "staging", holder_identity(env), console=console).held(600):
        ...   # upgrade, wait, smoke

A Lease that has not been renewed for leaseDurationSeconds belongs to a deploy that died and is
taken over; one held by our own identity (a re-run of the same CI run, the same laptop after a
crash) is taken at once; `break_lock=True` (--break-lock) deletes whatever Lease is there.
Every write carries the resourceVersion that was read, so two deployers racing for the Lease
cannot both win: the loser gets 409 Conflict, re-reads and waits. An API server that does not
answer at all (down, unreachable) holds no lock: it is retried with backoff for
`unreachable_for` seconds (15 by default, never beyond the lock timeout), then the deploy
stops saying why (`cannot reach the API server at https://...: connection refused`).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import pwd
import socket
import threading
import time
from typing import Callable, Iterator, Mapping

from deployer.adapters.kube import Conflict, Kube, KubeError, Lease, NotFound
from deployer.console import Console
from deployer.errors import DeployError, Interrupted

UTC = datetime.timezone.utc
_BREAK_HINT = "wait for that deploy to finish, or pass --break-lock if it is dead"
_RBAC_HINT = "check the credentials' RBAC for leases"
_REACH_HINT = ("check that the cluster is up and its API server reachable from here: the "
               "kubeconfig's server address, a VPN, the cluster's authorized networks")
_MAX_BACKOFF = 5.0  # seconds between two attempts to reach an API server that does not answer


def holder_identity(env: Mapping[str, str]) -> str:
    """Who holds the lock: the CI run's URL (with job and attempt) in GitHub Actions, else
    user@host with the process id - two terminals of one person are two deploys."""
    if env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        url = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
        extra = ", ".join(f"{label} {env[key]}" for key, label in
                          (("GITHUB_JOB", "job"), ("GITHUB_RUN_ATTEMPT", "attempt"))
                          if env.get(key))
        return f"{url} ({extra})" if extra else url
    user = env.get("USER") or env.get("LOGNAME")
    if not user:
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except (OSError, KeyError):  # no passwd entry (some containers)
            user = "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


class DeployLock:
    """One member namespace's deploy lock, held by `holder`.

    `log` receives progress lines (default: the console's info); warnings (a broken or lost
    lock, a failed release) always go to the console's warn and name the namespace.
    """

    def __init__(self, kube: Kube, namespace: str, holder: str, *, console: Console,
                 name: str = "deployer-lock", duration: int = 60, poll: float = 1.0,
                 log: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None, unreachable_for: float = 15.0):
        self.kube = kube
        self.namespace = namespace
        self.holder = holder
        self.name = name
        self.duration = int(duration)
        self.poll = poll
        self.console = console
        self.log = log or console.info
        self.cancel = cancel                 # set: stop waiting for the lock (an interrupt)
        self.unreachable_for = unreachable_for  # how long an API server may not answer at all
        self._request_timeout = max(2.0, self.duration / 3)
        self._mutex = threading.Lock()       # guards _held_lease (renew thread vs release)
        self._held_lease: Lease | None = None  # our last write; None = not held
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public API ----------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        """True once a renewal found the Lease held by someone else (or deleted)."""
        return self._lost.is_set()

    @property
    def held_now(self) -> bool:
        """True while we hold the Lease (acquired, not released, not lost)."""
        with self._mutex:
            return self._held_lease is not None

    def verify(self) -> bool:
        """Read the Lease now: is it still ours? (Before every change to the cluster: the
        renewal thread only looks every duration/3 seconds.) An API error says nothing
        either way, so the lock counts as still held until the renewal decides."""
        if self.lost:
            return False
        with self._mutex:
            if self._held_lease is None:
                return False
        try:
            lease = self.kube.read_lease(self.namespace, self.name,
                                         timeout=self._request_timeout)
        except Exception:  # noqa: BLE001 - no answer is no evidence either way
            return not self.lost
        if lease is None or lease.holder != self.holder:
            self._lose(lease.holder if lease else None)
            return False
        return True

    def acquire(self, timeout: float, *, break_lock: bool = False) -> None:
        """Take the lock, waiting up to `timeout` seconds for another holder to let go; an
        API server that does not answer is retried for `unreachable_for` seconds only."""
        deadline = time.monotonic() + timeout
        self._lost.clear()
        if break_lock:
            try:
                self._break()
            except KubeError as exc:
                raise DeployError(f"cannot break the deploy lock {self._where()}: "
                                  f"{exc.message}",
                                  hint=_REACH_HINT if exc.status is None else _RBAC_HINT
                                  ) from None
        announced = False
        errors = 0                           # API errors in a row, for the retry lines
        silent_since: float | None = None    # when the API server stopped answering at all
        while True:
            pause = self.poll
            try:
                lease = self.kube.read_lease(self.namespace, self.name,
                                             timeout=self._request_timeout)
                if lease is None:
                    if self._create():
                        return
                    continue  # created by someone else in between: look at theirs
                if lease.holder == self.holder:
                    if self._take(lease, transition=False):
                        self.log(f"took the deploy lock {self._where()} again as {self.holder} "
                                 f"(it was already ours)")
                        return
                    continue
                if self._expired(lease):
                    if self._take(lease, transition=True):
                        self.log(f"took over a stale deploy lock from {lease.holder} (renewed "
                                 f"{_show(lease.renew_time)}) in {self._where()}")
                        return
                    continue  # 409: someone else won the race; re-read and wait for them
                errors, silent_since = 0, None  # the API answers: wait for the holder
                if not announced:
                    self.log(f"waiting for the deploy lock held by {lease.holder} since "
                             f"{_show(lease.acquire_time)}")
                    announced = True
                if time.monotonic() >= deadline:
                    raise DeployError(
                        f"member namespace {self.namespace} is locked by {lease.holder} since "
                        f"{_show(lease.acquire_time)} (last renewed {_show(lease.renew_time)})",
                        hint=_BREAK_HINT)
            except KubeError as exc:
                if not exc.transient:
                    raise DeployError(f"cannot take the deploy lock {self._where()}: "
                                      f"{exc.message}", hint=_RBAC_HINT) from None
                errors += 1
                now = time.monotonic()
                if exc.status is None:  # no answer at all: not a lock someone holds
                    silent_since = now if silent_since is None else silent_since
                    give_up = min(deadline, silent_since + self.unreachable_for)
                    if now >= give_up:
                        raise DeployError(f"cannot take the deploy lock {self._where()}: "
                                          f"{exc.message}", hint=_REACH_HINT) from None
                    pause = min(self.poll * 2 ** min(errors - 1, 10), _MAX_BACKOFF,
                                give_up - now)
                    if errors == 1 or errors % 5 == 0:
                        self.log(f"cannot take the deploy lock {self._where()} "
                                 f"({exc.message}); retrying for {give_up - now:.0f}s more")
                elif now >= deadline:
                    raise DeployError(f"cannot take the deploy lock {self._where()}: the API "
                                      f"keeps failing ({exc.message})") from None
                else:
                    silent_since = None  # an answer, if not a good one: the API server is up
                    if errors == 1 or errors % 10 == 0:
                        self.log(f"API error while taking the deploy lock {self._where()} "
                                 f"({exc.message}); retrying")
            pause = max(0.0, min(pause, deadline - time.monotonic()))
            if self.cancel is not None:
                if self.cancel.wait(pause):
                    raise Interrupted("interrupted while waiting for the deploy lock "
                                      f"{self._where()}")
            else:
                time.sleep(pause)

    def release(self) -> None:
        """Stop renewing and delete the Lease, but only if it is still ours."""
        self._stop_renewing()
        with self._mutex:
            lease, self._held_lease = self._held_lease, None
        if lease is None:
            if self.lost:
                self.log(f"the deploy lock {self._where()} was taken by someone else; "
                         f"not releasing it")
            return
        try:
            self.kube.delete_lease(self.namespace, self.name,
                                   resource_version=lease.resource_version,
                                   timeout=self._request_timeout)
        except (NotFound, Conflict) as exc:
            self.log(f"the deploy lock {self._where()} is no longer ours "
                     f"({'deleted' if isinstance(exc, NotFound) else 'changed'} by someone "
                     f"else); left as it is")
            return
        except Exception as exc:  # noqa: BLE001 - release never masks the deploy's own outcome
            self.console.warn(f"could not release the deploy lock {self._where()} "
                              f"({_describe(exc)}); it expires by itself {self.duration}s after "
                              f"its last renewal")
            return
        self.log(f"released the deploy lock {self._where()}")

    @contextlib.contextmanager
    def held(self, timeout: float, *, break_lock: bool = False) -> Iterator["DeployLock"]:
        """Acquire, renew every duration/3 s in a daemon thread, release on exit."""
        self.acquire(timeout, break_lock=break_lock)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"deploy-lock-{self.namespace}")
        self._thread.start()
        try:
            yield self
        finally:
            self.release()

    # -- acquiring -----------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _create(self) -> bool:
        """Create the Lease (and the namespace when missing); False when it already exists."""
        now = _now()
        lease = Lease(self.namespace, self.name, holder=self.holder, duration=self.duration,
                      acquire_time=now, renew_time=now, transitions=0)
        for _ in range(2):
            try:
                created = self.kube.create_lease(lease, timeout=self._request_timeout)
            except Conflict:
                return False
            except NotFound as exc:
                if exc.details.get("kind") != "namespaces":
                    raise
                self.log(f"creating namespace {self.namespace} for the deploy lock")
                self.kube.create_namespace(self.namespace, timeout=self._request_timeout)
                continue
            self._set_held(created)
            self.log(f"took the deploy lock {self._where()} as {self.holder}")
            return True
        raise DeployError(f"cannot create the deploy lock {self._where()}: namespace "
                          f"{self.namespace} disappears as soon as it is created")

    def _take(self, lease: Lease, *, transition: bool) -> bool:
        """Replace `lease` with ours; False on 409/404 (someone else wrote it since)."""
        now = _now()
        ours = lease.but(holder=self.holder, duration=self.duration, acquire_time=now,
                         renew_time=now,
                         transitions=lease.transitions + (1 if transition else 0))
        try:
            new = self.kube.replace_lease(ours, timeout=self._request_timeout)
        except (Conflict, NotFound):
            return False
        self._set_held(new)
        return True

    def _set_held(self, lease: Lease) -> None:
        with self._mutex:
            self._held_lease = lease

    def _expired(self, lease: Lease) -> bool:
        last = lease.renew_time or lease.acquire_time
        if last is None:
            return True
        duration = lease.duration or self.duration
        return last + datetime.timedelta(seconds=duration) < _now()

    def _break(self) -> None:
        """--break-lock: delete whatever Lease is there, saying whose it was."""
        lease = self.kube.read_lease(self.namespace, self.name, timeout=self._request_timeout)
        if lease is None:
            self.log(f"--break-lock: there is no deploy lock in {self._where()} to break")
            return
        try:
            self.kube.delete_lease(self.namespace, self.name, timeout=self._request_timeout)
        except NotFound:
            pass
        self.console.warn(f"broke the deploy lock {self._where()} held by {lease.holder} since "
                          f"{_show(lease.acquire_time)} (last renewed "
                          f"{_show(lease.renew_time)}); if that deploy is still running, two "
                          f"deploys now run at once")

    # -- renewing ------------------------------------------------------------------------
    def _renew_loop(self) -> None:
        interval = self.duration / 3
        while not self._stop.wait(interval):
            try:
                if not self._renew():
                    return
            except Exception as exc:  # noqa: BLE001 - 5xx, connection errors: next tick
                self.log(f"renewing the deploy lock {self._where()} failed "
                         f"({_describe(exc)}); retrying in {interval:g}s")

    def _renew(self) -> bool:
        """One renewal; False when the lock is lost (stop renewing)."""
        for _ in range(3):
            with self._mutex:
                held = self._held_lease
                if held is None or self._stop.is_set():
                    return False
                body = held.but(renew_time=_now())
            try:
                lease = self.kube.replace_lease(body, timeout=self._request_timeout)
            except (Conflict, NotFound) as exc:
                current = self.kube.read_lease(self.namespace, self.name,
                                               timeout=self._request_timeout) \
                    if isinstance(exc, Conflict) else None
                if current is not None and current.holder == self.holder:
                    with self._mutex:  # written by us elsewhere: continue from its version
                        if self._held_lease is not None:
                            self._held_lease = current
                    continue
                return self._lose(current.holder if current else None)
            with self._mutex:
                if self._held_lease is not None:
                    self._held_lease = lease
            return True
        return True  # still conflicting: try again on the next tick

    def _lose(self, holder: str | None) -> bool:
        with self._mutex:
            self._held_lease = None
        self._lost.set()
        who = f"is now held by {holder}" if holder else "was deleted"
        self.console.warn(f"lost the deploy lock {self._where()}: it {who}; another deploy may "
                          f"be running at the same time")
        return False

    def _stop_renewing(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self._request_timeout + 1)


# -- helpers --------------------------------------------------------------------------------
def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def _show(when: datetime.datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else "<unknown>"


def _describe(exc: Exception) -> str:
    return exc.message if isinstance(exc, KubeError) else f"{type(exc).__name__}: {exc}"
