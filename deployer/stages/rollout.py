"""Wait until every workload of a release has rolled out (through the kube adapter)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from deployer.adapters.kube import WORKLOAD_KINDS, KubeError, WorkloadState
from deployer.errors import DeployError, Interrupted
from deployer.model.manifests import K8sObject


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet or DaemonSet of the release."""

    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


class RolloutTimeout(DeployError):
    """The workloads did not all roll out within the timeout."""


def workloads(objects: list[K8sObject], namespace: str) -> list[Workload]:
    """The workloads among rendered objects."""
    return [Workload(o.kind, (o.body.get("metadata") or {}).get("namespace") or namespace, o.name)
            for o in objects if o.kind in WORKLOAD_KINDS and o.api_version == "apps/v1"]


def wait(kube, items: list[Workload], timeout: float, *, log: Callable[[str], None],
         poll: float = 0.5, prefix: str = "", cancel: threading.Event | None = None) -> None:
    """Poll every workload until rolled out; progress lines on change; DeployError on timeout
    (RolloutTimeout) or a rollout that failed for good. API errors (5xx, connection failures)
    are retried until the timeout. `cancel` set stops the wait at once (an interrupt)."""
    deadline = time.monotonic() + timeout
    pending = list(items)
    shown: dict[Workload, str] = {}
    last_error = ""
    errors = 0
    while pending:
        still = []
        for workload in pending:
            _check_cancel(cancel)
            try:
                obj = kube.read_workload(workload.kind, workload.namespace, workload.name,
                                         timeout=max(1.0, min(10.0, timeout)))
            except KubeError as exc:
                errors += 1
                last_error = exc.message
                if errors == 1 or errors % 10 == 0:
                    log(f"{prefix}API error while waiting ({last_error}); retrying")
                still.append(workload)
                continue
            done, state = state_of(obj)
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
            raise RolloutTimeout(f"rollout did not finish within {timeout:.0f}s: {waiting}{why}")
        if cancel is not None:
            if cancel.wait(poll):
                _check_cancel(cancel)
        else:
            time.sleep(poll)


def state_of(obj: WorkloadState) -> tuple[bool | None, str]:
    """(done, description); done None means failed for good (progress deadline exceeded)."""
    if obj.observed_generation < obj.generation:
        return False, "waiting for the controller to see the new spec"
    if obj.kind == "Deployment":
        if obj.deadline_exceeded is not None:
            return None, f"progress deadline exceeded: {obj.deadline_exceeded}".strip()
        done = obj.updated >= obj.replicas and obj.total <= obj.updated and \
            obj.available >= obj.updated
        return done, f"{obj.available}/{obj.replicas} available, {obj.updated} updated"
    if obj.kind == "StatefulSet":
        same_revision = not obj.update_revision or obj.update_revision == obj.current_revision
        done = obj.ready >= obj.replicas and obj.updated >= obj.replicas and same_revision
        return done, f"{obj.ready}/{obj.replicas} ready, {obj.updated} updated"
    done = obj.updated >= obj.replicas and obj.available >= obj.replicas
    return done, f"{obj.available}/{obj.replicas} available"


def health(kube, items: list[Workload]) -> tuple[bool, list[str], list[str]]:
    """Is every workload rolled out right now? (ok, what is not, what could not be read),
    one line each. A workload that does not exist is not rolled out; an API error is
    unknown, not a verdict."""
    problems, unknown = [], []
    for workload in items:
        try:
            done, state = state_of(kube.read_workload(workload.kind, workload.namespace,
                                                      workload.name))
        except KubeError as exc:
            (problems if exc.status == 404 else unknown).append(f"{workload.ref}: {exc.message}")
            continue
        if not done:
            problems.append(f"{workload.ref}: {state}")
    return not problems and not unknown, problems, unknown


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Interrupted("interrupted while waiting for the rollout")
