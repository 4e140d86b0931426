"""Wait, with the kubernetes client, until every workload of a release has rolled out."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from deployer.errors import DeployError
from deployer.model.manifests import K8sObject

KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet or DaemonSet of the release."""

    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def workloads(objects: list[K8sObject], namespace: str) -> list[Workload]:
    """The workloads among rendered objects."""
    return [Workload(o.kind, (o.body.get("metadata") or {}).get("namespace") or namespace, o.name)
            for o in objects if o.kind in KINDS and o.api_version == "apps/v1"]


def wait(api_client, items: list[Workload], timeout: float, *, log: Callable[[str], None],
         poll: float = 0.5, prefix: str = "") -> None:
    """Poll every workload until rolled out; progress lines on change; DeployError on timeout.
    API errors (5xx, connection failures) are retried until the timeout."""
    from kubernetes import client

    apps = client.AppsV1Api(api_client)
    readers = {"Deployment": apps.read_namespaced_deployment,
               "StatefulSet": apps.read_namespaced_stateful_set,
               "DaemonSet": apps.read_namespaced_daemon_set}
    deadline = time.monotonic() + timeout
    pending = list(items)
    shown: dict[Workload, str] = {}
    last_error = ""
    errors = 0
    while pending:
        still = []
        for workload in pending:
            try:
                obj = readers[workload.kind](workload.name, workload.namespace,
                                             _request_timeout=max(1.0, min(10.0, timeout)))
            except Exception as exc:  # noqa: BLE001 - transient API trouble is retried
                errors += 1
                last_error = _describe(exc)
                if errors == 1 or errors % 10 == 0:
                    log(f"{prefix}API error while waiting ({last_error}); retrying")
                still.append(workload)
                continue
            done, state = _state(workload.kind, obj)
            if shown.get(workload) != state:
                log(f"{prefix}{workload.ref}: {state}")
                shown[workload] = state
            if done is None:
                raise DeployError(f"{workload.ref} failed to roll out: {state}")
            if not done:
                still.append(workload)
        pending = still
        if not pending:
            return
        if time.monotonic() >= deadline:
            waiting = ", ".join(f"{w.ref} ({shown.get(w, last_error or 'no status')})"
                                for w in pending)
            why = f"; last API error: {last_error}" if last_error and errors else ""
            raise DeployError(f"rollout did not finish within {timeout:.0f}s: {waiting}{why}")
        time.sleep(poll)


def _state(kind: str, obj) -> tuple[bool | None, str]:
    """(done, description); done None means failed for good (progress deadline exceeded)."""
    spec, status = obj.spec, obj.status
    generation, observed = obj.metadata.generation or 0, status.observed_generation or 0
    if observed < generation:
        return False, "waiting for the controller to see the new spec"
    if kind == "Deployment":
        for cond in status.conditions or []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                return None, f"progress deadline exceeded: {cond.message or ''}".strip()
        want = spec.replicas if spec.replicas is not None else 1
        updated, available = status.updated_replicas or 0, status.available_replicas or 0
        total = status.replicas or 0
        done = updated >= want and total <= updated and available >= updated
        return done, f"{available}/{want} available, {updated} updated"
    if kind == "StatefulSet":
        want = spec.replicas if spec.replicas is not None else 1
        ready, updated = status.ready_replicas or 0, status.updated_replicas or 0
        same_revision = not status.update_revision or \
            status.update_revision == status.current_revision
        done = ready >= want and updated >= want and same_revision
        return done, f"{ready}/{want} ready, {updated} updated"
    desired = status.desired_number_scheduled or 0
    updated, available = status.updated_number_scheduled or 0, status.number_available or 0
    return updated >= desired and available >= desired, f"{available}/{desired} available"


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status:
        return f"HTTP {status} {getattr(exc, 'reason', '')}".strip()
    return type(exc).__name__ + (f": {str(exc)[:80]}" if str(exc) else "")
