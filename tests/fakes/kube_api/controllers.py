"""Controller simulation: workloads report rolled-out status after a delay, as on a cluster.

After an object's spec changes (a new metadata.generation), its status is left as a rollout
in progress for `delay` seconds, then written as complete: observedGeneration, replica
counts and the conditions kstatus and `kubectl rollout status` read. A workload marked
never-ready (Faults.never_ready) stays in progress forever. Services of type LoadBalancer get
an ingress IP, PersistentVolumeClaims are Bound, Jobs complete, Pods run.
"""
from __future__ import annotations

import threading
import time

from .store import now

WORKLOADS = {("apps", "deployments"), ("apps", "daemonsets"), ("apps", "statefulsets"),
             ("apps", "replicasets")}


class Controllers(threading.Thread):
    """Background thread reconciling status every `tick` seconds."""

    def __init__(self, api, delay: float = 0.2, tick: float = 0.05):
        super().__init__(name="kube-api-controllers", daemon=True)
        self.api = api
        self.delay = delay
        self.tick = tick
        self.halt = threading.Event()
        self.written: dict[tuple, tuple[int, bool]] = {}  # object -> (generation, settled)

    def run(self) -> None:
        while not self.halt.wait(self.tick):
            try:
                self.reconcile()
            except Exception:  # a controller never takes the server down
                continue

    def reconcile(self) -> None:
        store, registry = self.api.store, self.api.registry
        with store.lock:
            snapshot = [(key, ns, name, obj) for key, objects in store.objects.items()
                        for (ns, name), obj in objects.items()]
        for key, ns, name, obj in snapshot:
            rt = next((t for t in registry.types if t.key == key), None)
            if rt is None:
                continue
            status = self.desired_status(key, ns, name, obj)
            if status is not None:
                store.touch_status(rt, ns, name, status)

    def desired_status(self, key, ns, name, obj):
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        generation = obj["metadata"].get("generation", 1)
        changed = self.api.store.modified_at.get((key, ns, name), 0)
        if key in WORKLOADS:
            never = self.api.faults.is_unready(key[1], ns, name, obj)
            settled = not never and time.monotonic() - changed >= self.delay
            if self.written.get((key, ns, name)) == (generation, settled) and \
                    status.get("observedGeneration") == generation:
                return None
            self.written[(key, ns, name)] = (generation, settled)
            return _workload(key[1], spec, generation, settled)
        if key == ("", "services") and spec.get("type") == "LoadBalancer":
            if not (status.get("loadBalancer") or {}).get("ingress"):
                return {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        if key == ("", "persistentvolumeclaims") and status.get("phase") != "Bound":
            return {"phase": "Bound", "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
                    "capacity": (spec.get("resources") or {}).get("requests", {})}
        if key == ("batch", "jobs") and not status.get("succeeded"):
            return {"succeeded": 1, "startTime": now(), "completionTime": now(),
                    "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                   {"type": "Complete", "status": "True"}]}
        if key == ("", "pods") and status.get("phase") != "Running":
            return {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"},
                                                        {"type": "ContainersReady",
                                                         "status": "True"}]}
        return None


def _workload(plural: str, spec: dict, generation: int, settled: bool) -> dict:
    replicas = spec.get("replicas", 1)
    ready = replicas if settled else 0
    if plural == "daemonsets":
        return {"observedGeneration": generation, "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1, "updatedNumberScheduled": 1,
                "numberReady": 1 if settled else 0, "numberAvailable": 1 if settled else 0,
                "numberUnavailable": 0 if settled else 1, "numberMisscheduled": 0}
    if plural == "statefulsets":
        revision = f"rev-{generation}"
        return {"observedGeneration": generation, "replicas": replicas,
                "readyReplicas": ready, "currentReplicas": replicas if settled else 0,
                "updatedReplicas": replicas, "availableReplicas": ready,
                "currentRevision": revision if settled else f"rev-{generation - 1}",
                "updateRevision": revision}
    conditions = [
        {"type": "Available", "status": "True" if settled else "False",
         "reason": "MinimumReplicasAvailable" if settled else "MinimumReplicasUnavailable",
         "lastUpdateTime": now(), "lastTransitionTime": now()},
        {"type": "Progressing", "status": "True",
         "reason": "NewReplicaSetAvailable" if settled else "ReplicaSetUpdated",
         "lastUpdateTime": now(), "lastTransitionTime": now()},
    ]
    return {"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            **({"conditions": conditions} if plural == "deployments" else {})}
