"""The deploy lock: a coordination.k8s.io/v1 Lease in the member's namespace.

Two deploys of the same member (a teammate's laptop and CI) must never run at once. The
deploy takes a Lease named `deployer-lock` in the member namespace, renews it while it runs
and deletes it when done:

    with DeployLock(api_client, "staging", holder_identity(os.environ)).held(timeout=600):
        ...   # upgrade, wait, smoke

A Lease that has not been renewed for leaseDurationSeconds belongs to a deploy that died and is
taken over; one held by our own identity (a re-run of the same CI run, the same laptop after a
crash) is taken at once; `break_lock=True` (--break-lock) deletes whatever Lease is there.
Every write carries the resourceVersion that was read, so two deployers racing for the Lease
cannot both win: the loser gets 409 Conflict, re-reads and waits.
"""
from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import json
import socket
import threading
import time
from typing import Callable, Iterator, Mapping

from deployer import output
from deployer.errors import DeployError

UTC = datetime.timezone.utc
_BREAK_HINT = "wait for that deploy to finish, or pass --break-lock if it is dead"


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
            user = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            user = "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


class DeployLock:
    """One member namespace's deploy lock, held by `holder`.

    `log` receives progress lines (default: deployer.output.info); warnings (a broken or lost
    lock, a failed release) always go to deployer.output.warn and name the namespace.
    """

    def __init__(self, api_client, namespace: str, holder: str, *, name: str = "deployer-lock",
                 duration: int = 60, poll: float = 1.0,
                 log: Callable[[str], None] | None = None):
        from kubernetes import client

        self.namespace = namespace
        self.holder = holder
        self.name = name
        self.duration = int(duration)
        self.poll = poll
        self.log = log or output.info
        self._coordination = client.CoordinationV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._request_timeout = max(2.0, self.duration / 3)
        self._mutex = threading.Lock()       # guards the fields below (renew thread vs release)
        self._rv: str | None = None          # resourceVersion of our last write, None = not held
        self._acquire_time: datetime.datetime | None = None
        self._transitions = 0
        self._metadata: dict = {}
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public API ----------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        """True once a renewal found the Lease held by someone else (or deleted)."""
        return self._lost.is_set()

    def acquire(self, timeout: float, *, break_lock: bool = False) -> None:
        """Take the lock, waiting up to `timeout` seconds for another holder to let go."""
        deadline = time.monotonic() + timeout
        self._lost.clear()
        if break_lock:
            try:
                self._break()
            except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
                raise DeployError(f"cannot break the deploy lock {self._where()}: "
                                  f"{_describe(exc)}",
                                  hint="check the credentials' RBAC for leases") from None
        announced = False
        while True:
            try:
                lease = self._read()
                if lease is None:
                    if self._create():
                        return
                    continue  # created by someone else in between: look at theirs
                spec = lease.spec
                holder = spec.holder_identity if spec else None
                if holder == self.holder:
                    if self._take(lease, transition=False):
                        self.log(f"took the deploy lock {self._where()} again as {self.holder} "
                                 f"(it was already ours)")
                        return
                    continue
                if self._expired(lease):
                    if self._take(lease, transition=True):
                        self.log(f"took over a stale deploy lock from {holder} (renewed "
                                 f"{_show(spec.renew_time if spec else None)}) in "
                                 f"{self._where()}")
                        return
                    continue  # 409: someone else won the race; re-read and wait for them
                if not announced:
                    self.log(f"waiting for the deploy lock held by {holder} since "
                             f"{_show(spec.acquire_time)}")
                    announced = True
                if time.monotonic() >= deadline:
                    raise DeployError(
                        f"member namespace {self.namespace} is locked by {holder} since "
                        f"{_show(spec.acquire_time)} (last renewed {_show(spec.renew_time)})",
                        hint=_BREAK_HINT)
            except DeployError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by _transient
                if not _transient(exc):
                    raise DeployError(f"cannot take the deploy lock {self._where()}: "
                                      f"{_describe(exc)}",
                                      hint="check the credentials' RBAC for leases") from exc
                if time.monotonic() >= deadline:
                    raise DeployError(f"cannot take the deploy lock {self._where()}: the API "
                                      f"keeps failing ({_describe(exc)})") from exc
            time.sleep(max(0.0, min(self.poll, deadline - time.monotonic())))

    def release(self) -> None:
        """Stop renewing and delete the Lease, but only if it is still ours."""
        self._stop_renewing()
        with self._mutex:
            rv, self._rv = self._rv, None
        if rv is None:
            if self.lost:
                self.log(f"the deploy lock {self._where()} was taken by someone else; "
                         f"not releasing it")
            return
        from kubernetes import client

        try:
            self._coordination.delete_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._request_timeout,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version=rv)))
        except Exception as exc:  # noqa: BLE001 - release never masks the deploy's own outcome
            status = getattr(exc, "status", None)
            if status in (404, 409):
                self.log(f"the deploy lock {self._where()} is no longer ours "
                         f"({'deleted' if status == 404 else 'changed'} by someone else); "
                         f"left as it is")
            else:
                output.warn(f"could not release the deploy lock {self._where()} "
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

    def _read(self):
        """The Lease as the client models it, or None."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self) -> bool:
        """Create the Lease (and the namespace when missing); False when it already exists."""
        from kubernetes.client.exceptions import ApiException

        now = _now()
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(acquire_time=now, renew_time=now, transitions=0)}
        for _ in range(2):
            try:
                lease = self._coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._request_timeout)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                if exc.status == 404 and _details(exc).get("kind") == "namespaces":
                    self._create_namespace()
                    continue
                raise
            self._held(lease, now, 0)
            self.log(f"took the deploy lock {self._where()} as {self.holder}")
            return True
        raise DeployError(f"cannot create the deploy lock {self._where()}: namespace "
                          f"{self.namespace} disappears as soon as it is created")

    def _create_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException

        self.log(f"creating namespace {self.namespace} for the deploy lock")
        try:
            self._core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": self.namespace}},
                                        _request_timeout=self._request_timeout)
        except ApiException as exc:
            if exc.status != 409:  # created meanwhile by someone else: fine
                raise

    def _take(self, lease, *, transition: bool) -> bool:
        """Replace `lease` with ours; False on 409 (someone else wrote it since we read it)."""
        from kubernetes.client.exceptions import ApiException

        now = _now()
        transitions = (lease.spec.lease_transitions or 0) if lease.spec else 0
        if transition:
            transitions += 1
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": _metadata(lease),
                "spec": self._spec(acquire_time=now, renew_time=now, transitions=transitions)}
        try:
            new = self._coordination.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self._request_timeout)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        self._held(new, now, transitions)
        return True

    def _held(self, lease, acquire_time: datetime.datetime, transitions: int) -> None:
        with self._mutex:
            self._rv = lease.metadata.resource_version
            self._metadata = _metadata(lease)
            self._acquire_time = acquire_time
            self._transitions = transitions

    def _expired(self, lease) -> bool:
        spec = lease.spec
        if spec is None:
            return True
        last = _aware(spec.renew_time) or _aware(spec.acquire_time)
        if last is None:
            return True
        duration = spec.lease_duration_seconds or self.duration
        return last + datetime.timedelta(seconds=duration) < _now()

    def _break(self) -> None:
        """--break-lock: delete whatever Lease is there, saying whose it was."""
        from kubernetes.client.exceptions import ApiException

        lease = self._read()
        if lease is None:
            self.log(f"--break-lock: there is no deploy lock in {self._where()} to break")
            return
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        try:
            self._coordination.delete_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._request_timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
        output.warn(f"broke the deploy lock {self._where()} held by {holder} since "
                    f"{_show(spec.acquire_time if spec else None)} (last renewed "
                    f"{_show(spec.renew_time if spec else None)}); if that deploy is still "
                    f"running, two deploys now run at once")

    def _spec(self, *, acquire_time: datetime.datetime, renew_time: datetime.datetime,
              transitions: int) -> dict:
        """A LeaseSpec; the client sends the aware UTC datetimes as RFC 3339 MicroTime."""
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration,
                "acquireTime": acquire_time, "renewTime": renew_time,
                "leaseTransitions": transitions}

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
        from kubernetes.client.exceptions import ApiException

        for _ in range(3):
            with self._mutex:
                if self._rv is None or self._stop.is_set():
                    return False
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {**self._metadata, "resourceVersion": self._rv},
                        "spec": self._spec(acquire_time=self._acquire_time,
                                           renew_time=_now(),
                                           transitions=self._transitions)}
            try:
                lease = self._coordination.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self._request_timeout)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
                current = self._read() if exc.status == 409 else None
                holder = current.spec.holder_identity if current and current.spec else None
                if current is not None and holder == self.holder:
                    with self._mutex:  # written by us elsewhere: continue from its version
                        self._rv = current.metadata.resource_version
                        self._metadata = _metadata(current)
                    continue
                return self._lose(holder)
            with self._mutex:
                if self._rv is not None:
                    self._rv = lease.metadata.resource_version
            return True
        return True  # still conflicting: try again on the next tick

    def _lose(self, holder: str | None) -> bool:
        with self._mutex:
            self._rv = None
        self._lost.set()
        who = f"is now held by {holder}" if holder else "was deleted"
        output.warn(f"lost the deploy lock {self._where()}: it {who}; another deploy may be "
                    f"running at the same time")
        return False

    def _stop_renewing(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self._request_timeout + 1)


# -- helpers --------------------------------------------------------------------------------
def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def _aware(when) -> datetime.datetime | None:
    """A timezone-aware UTC datetime (the client parses MicroTime; a string is parsed here)."""
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _show(when) -> str:
    aware = _aware(when)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ") if aware else "<unknown>"


def _metadata(lease) -> dict:
    """The metadata a replace carries: name, namespace, resourceVersion, labels, annotations."""
    meta = lease.metadata
    out = {"name": meta.name, "namespace": meta.namespace,
           "resourceVersion": meta.resource_version}
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    return out


def _details(exc) -> dict:
    try:
        return (json.loads(exc.body or "{}") or {}).get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return {}


def _transient(exc: Exception) -> bool:
    """5xx, 429 and connection errors are worth retrying; other API errors are not."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return exc.status == 429 or (exc.status or 0) >= 500 or not exc.status
    return isinstance(exc, (HTTPError, OSError))


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status:
        try:
            message = (json.loads(getattr(exc, "body", None) or "{}") or {}).get("message")
        except (TypeError, ValueError, AttributeError):
            message = None
        return f"HTTP {status}: {message or getattr(exc, 'reason', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
