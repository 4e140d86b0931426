"""Adapter-level fakes: a cluster in memory, as the deploy pipeline sees it through the helm
and kube adapters. They let every branch of the pipeline run in milliseconds.

Faithful where the pipeline depends on it (and checked by tests/fakes/test_adapters.py):
- FakeHelm keeps revisions like helm's release records: an upgrade supersedes the deployed
  revision, a failed upgrade leaves a `failed` revision on top, a rollback is a new revision
  with the target's manifest and values, an unknown release has an empty history;
- FakeKube's Leases have resourceVersions: a write with a stale one is Conflict, a missing
  namespace is NotFound with details kind `namespaces`, delete honours the precondition;
- workloads report the rollout state of the revision that is live: healthy, stuck (never
  ready) or failed (progress deadline exceeded).
Simplified: one release per cluster; workloads are whatever the live manifest lists.
"""
from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import Callable

import yaml

from deployer.adapters.helm import HelmError
from deployer.adapters.kube import Conflict, KubeError, Lease, NotFound, WorkloadState
from deployer.model.release import ReleaseStatus, Revision

HEALTHY, STUCK, FAILED = "healthy", "stuck", "failed"


@dataclass
class FakeRevision:
    number: int
    status: ReleaseStatus
    manifest: str
    values: dict
    health: str = HEALTHY
    description: str = ""


@dataclass
class Fault:
    """Raise `error` on the next `times` calls of `method` (times=None: always)."""

    method: str
    error: Exception
    times: int | None = 1
    after: Callable[[], None] | None = None   # run instead of raising once used up


class FakeCluster:
    """One member's cluster: a helm release and the API objects the pipeline reads."""

    def __init__(self, manifest: str, *, namespace: str = "staging"):
        self.manifest_text = manifest       # what an upgrade installs
        self.namespace = namespace
        self.next_health = HEALTHY          # health of the next upgrade's revision
        self.fail_after_apply: HelmError | None = None  # next upgrade applies, then fails
        self.revisions: list[FakeRevision] = []
        self.namespaces: set[str] = set()
        self.leases: dict[tuple[str, str], Lease] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self.faults: list[Fault] = []
        self.calls: list[str] = []
        self.hooks: dict[str, Callable[[], None]] = {}   # method -> run before it
        self.unserved: set[str] = set()     # kinds the API does not serve (no CRD)
        self.tls_secrets: dict[str, list] = {}   # namespace -> kube.TLSSecret
        self._version = 0
        self._lock = threading.RLock()
        self.helm = FakeHelm(self)
        self.kube = FakeKube(self)

    # -- test controls ------------------------------------------------------------------
    def fail(self, method: str, error: Exception, times: int | None = 1) -> None:
        self.faults.append(Fault(method, error, times))

    def installed(self, health: str = HEALTHY, values: dict | None = None,
                  manifest: str | None = None) -> FakeRevision:
        """A revision deployed earlier (before the test's deploy)."""
        return self._new_revision(manifest or self.manifest_text, values or {}, health)

    def steal_lock(self, holder: str = "someone-else@laptop") -> None:
        """Another deploy takes the lease over (as after our renewals stopped)."""
        with self._lock:
            for key, lease in list(self.leases.items()):
                self._version += 1
                self.leases[key] = lease.but(holder=holder, resource_version=str(self._version))

    def statuses(self) -> list[str]:
        return [r.status.value for r in self.revisions]

    def call(self, method: str) -> None:
        """Record a call; run its hook; raise an injected fault."""
        with self._lock:
            self.calls.append(method)
            hook = self.hooks.get(method)
        if hook is not None:
            hook()
        with self._lock:
            for fault in self.faults:
                if fault.method == method and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    raise fault.error

    # -- internals ----------------------------------------------------------------------
    def _new_revision(self, manifest: str, values: dict, health: str,
                      status: ReleaseStatus = ReleaseStatus.DEPLOYED,
                      description: str = "") -> FakeRevision:
        with self._lock:
            if status is ReleaseStatus.DEPLOYED:
                for rev in self.revisions:
                    if rev.status is ReleaseStatus.DEPLOYED:
                        rev.status = ReleaseStatus.SUPERSEDED
            rev = FakeRevision(len(self.revisions) + 1 if not self.revisions
                               else self.revisions[-1].number + 1, status, manifest,
                               dict(values), health, description)
            self.revisions.append(rev)
            return rev

    def live(self) -> FakeRevision | None:
        """The revision whose objects are on the cluster: the newest that was applied."""
        applied = [r for r in self.revisions if r.status is not ReleaseStatus.UNINSTALLED]
        return applied[-1] if applied else None


class FakeHelm:
    """The release methods of deployer.adapters.helm.Helm, on a FakeCluster."""

    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster

    def history(self, release: str, namespace: str, timeout: float = 300) -> list[Revision]:
        self.cluster.call("history")
        return [Revision(r.number, r.status, "mybinder-0.1.0", "", "2026-12-02T00:00:00Z",
                         r.description) for r in self.cluster.revisions]

    def manifest(self, release: str, namespace: str, revision: int | None = None) -> str:
        self.cluster.call("manifest")
        rev = self._revision(revision)
        return rev.manifest if rev else ""

    def values(self, release: str, namespace: str, revision: int | None = None) -> dict:
        self.cluster.call("values")
        rev = self._revision(revision)
        return dict(rev.values) if rev else {}

    def upgrade(self, release: str, chart: str, namespace: str, values_yaml: str,
                timeout: int) -> None:
        c = self.cluster
        c.call("upgrade")
        values = yaml.safe_load(values_yaml) or {}
        error, c.fail_after_apply = c.fail_after_apply, None
        if error is not None:   # helm wrote the objects, then failed: a `failed` revision
            c._new_revision(c.manifest_text, values, c.next_health, ReleaseStatus.FAILED,
                            description=f"Upgrade failed: {error.stderr.strip()}")
            raise error
        c._new_revision(c.manifest_text, values, c.next_health, description="Upgrade complete")

    def rollback(self, release: str, namespace: str, revision: int, timeout: int) -> None:
        self.cluster.call("rollback")
        target = self._revision(revision)
        if target is None:
            raise HelmError(["rollback"], "Error: release: not found", 1)
        self.cluster._new_revision(target.manifest, target.values, target.health,
                                   description=f"Rollback to {revision}")

    def uninstall(self, release: str, namespace: str, timeout: int) -> None:
        self.cluster.call("uninstall")
        if not self.cluster.revisions:
            raise HelmError(["uninstall"], f"Error: uninstall: Release not loaded: {release}: "
                                           "release: not found", 1)
        self.cluster.revisions.clear()

    def _revision(self, number: int | None) -> FakeRevision | None:
        revs = self.cluster.revisions
        if number is None:  # as `helm get`: the newest record, whatever its status
            return revs[-1] if revs else None
        return next((r for r in revs if r.number == number), None)


class FakeKube:
    """The methods of deployer.adapters.kube.Kube the pipeline, lock and status use."""

    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- workloads ----------------------------------------------------------------------
    def read_workload(self, kind: str, namespace: str, name: str, *,
                      timeout: float | None = None) -> WorkloadState:
        self.cluster.call("read_workload")
        for state in self._workloads():
            if (state.kind, state.namespace or namespace, state.name) == (kind, namespace, name):
                return state
        raise NotFound(f"HTTP 404: {kind.lower()}s \"{name}\" not found", status=404)

    def list_workloads(self, namespace: str) -> list[WorkloadState]:
        self.cluster.call("list_workloads")
        return [w for w in self._workloads() if w.namespace == namespace]

    # -- discovery ----------------------------------------------------------------------
    def served_kinds(self, group_version: str):
        """Every kind, except the ones the test took away (`cluster.unserved`)."""
        self.cluster.call("served_kinds")
        unserved = self.cluster.unserved

        class _AllBut:
            def __contains__(self, kind) -> bool:
                return kind not in unserved

        return _AllBut()

    def _workloads(self) -> list[WorkloadState]:
        live = self.cluster.live()
        if live is None:
            return []
        out = []
        for doc in yaml.safe_load_all(live.manifest):
            if not doc or doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
                continue
            meta = doc.get("metadata") or {}
            want = (doc.get("spec") or {}).get("replicas", 1)
            ns = meta.get("namespace") or self.cluster.namespace
            common = dict(kind=doc["kind"], namespace=ns, name=meta["name"], generation=2,
                          observed_generation=2, replicas=want, total=want)
            if live.health == HEALTHY:
                out.append(WorkloadState(**common, updated=want, ready=want, available=want))
            elif live.health == STUCK:
                out.append(WorkloadState(**common, updated=want, ready=0, available=0))
            else:
                out.append(WorkloadState(**common, updated=want, deadline_exceeded=(
                    f'ReplicaSet "{meta["name"]}-1" has timed out progressing.')))
        return out

    # -- leases -------------------------------------------------------------------------
    def read_lease(self, namespace: str, name: str, *, timeout: float | None = None):
        self.cluster.call("read_lease")
        return self.cluster.leases.get((namespace, name))

    def create_lease(self, lease: Lease, *, timeout: float | None = None) -> Lease:
        self.cluster.call("create_lease")
        c = self.cluster
        with c._lock:
            if lease.namespace not in c.namespaces:
                raise NotFound(f'HTTP 404: namespaces "{lease.namespace}" not found', status=404,
                               details={"kind": "namespaces", "name": lease.namespace})
            key = (lease.namespace, lease.name)
            if key in c.leases:
                raise Conflict(f'HTTP 409: leases "{lease.name}" already exists', status=409,
                               details=_details(lease.name))
            c._version += 1
            c.leases[key] = lease.but(resource_version=str(c._version))
            return c.leases[key]

    def replace_lease(self, lease: Lease, *, timeout: float | None = None) -> Lease:
        self.cluster.call("replace_lease")
        c = self.cluster
        with c._lock:
            key = (lease.namespace, lease.name)
            current = c.leases.get(key)
            if current is None:
                raise NotFound(f'HTTP 404: leases "{lease.name}" not found', status=404,
                               details=_details(lease.name))
            if lease.resource_version != current.resource_version:
                raise Conflict("HTTP 409: the object has been modified", status=409,
                               details=_details(lease.name))
            c._version += 1
            c.leases[key] = lease.but(resource_version=str(c._version))
            return c.leases[key]

    def delete_lease(self, namespace: str, name: str, *, resource_version: str | None = None,
                     timeout: float | None = None) -> None:
        self.cluster.call("delete_lease")
        c = self.cluster
        with c._lock:
            current = c.leases.get((namespace, name))
            if current is None:
                raise NotFound(f'HTTP 404: leases "{name}" not found', status=404,
                               details=_details(name))
            if resource_version is not None and resource_version != current.resource_version:
                raise Conflict("HTTP 409: Precondition failed", status=409,
                               details=_details(name))
            del c.leases[(namespace, name)]

    def create_namespace(self, namespace: str, *, timeout: float | None = None) -> None:
        self.cluster.call("create_namespace")
        self.cluster.namespaces.add(namespace)

    def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        self.cluster.call("read_config_map")
        found = self.cluster.config_maps.get((namespace, name))
        return dict(found) if found is not None else None

    def write_config_map(self, namespace: str, name: str, data: dict[str, str],
                         labels: dict[str, str] | None = None) -> None:
        self.cluster.call("write_config_map")
        self.cluster.config_maps[(namespace, name)] = dict(data)

    def list_tls_secrets(self, namespace: str):
        self.cluster.call("list_tls_secrets")
        return list(self.cluster.tls_secrets.get(namespace, []))


def _details(name: str) -> dict:
    return {"name": name, "group": "coordination.k8s.io", "kind": "leases"}


def api_down(status: int = 503) -> KubeError:
    """The error an unavailable API server gives."""
    return KubeError(f"HTTP {status}: the server is currently unable to handle the request",
                     status=status)


@dataclass
class FakeSmoke:
    """The smoke gate: passes, or fails with `failure`, and counts its runs."""

    failure: Exception | None = None
    runs: list[str] = field(default_factory=list)

    def __call__(self, ws, member, timeout: float, log, cancel=None, proxies=None) -> None:
        self.runs.append(member.name)
        if self.failure is not None:
            raise self.failure


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
