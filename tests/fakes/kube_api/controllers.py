"""Controller simulation: workloads report rolled-out status after a delay, as on a cluster.

After an object's spec changes (a new metadata.generation), its status is left as a rollout
in progress for `delay` seconds, then written as complete: observedGeneration, replica
counts and the conditions kstatus and `kubectl rollout status` read. A workload marked
never-ready (Faults.never_ready) stays in progress forever. Services of type LoadBalancer get
an ingress IP, PersistentVolumeClaims are Bound, Jobs complete, Pods run.

Deployments get a ReplicaSet per pod template, as the deployment controller makes them: named
`<deployment>-<template hash>`, owned by the Deployment (a controller ownerReference with its
uid), labelled pod-template-hash, with the Deployment's replicas; older ones are scaled to 0
and all are deleted with their Deployment (garbage collection). helm 3's `--wait` reads
readiness from that ReplicaSet (helm 4's kstatus reads the Deployment, whose status reads
ready only once its current ReplicaSet does, as the controller derives it). Simplified: the
hash is not Kubernetes' FNV hash, no Pods are created for it, the Deployment's counts come
from its own spec (not summed over its ReplicaSets), older ReplicaSets scaled to 0 do not hold
its rollout back, and `spec.paused` is not modelled.
"""
from __future__ import annotations

import copy
import hashlib
import json
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
        deployments = {(ns, obj["metadata"].get("uid")) for key, ns, name, obj in snapshot
                       if key == ("apps", "deployments")}
        for key, ns, name, obj in snapshot:
            rt = next((t for t in registry.types if t.key == key), None)
            if rt is None:
                continue
            if key == ("apps", "deployments"):
                self.replica_sets(ns, name, obj)
            elif key == ("apps", "replicasets") and _owner(obj) and \
                    (ns, _owner(obj)["uid"]) not in deployments:
                store.delete(rt, ns, name)  # garbage collection of an orphan
                continue
            status = self.desired_status(key, ns, name, obj)
            if status is not None:
                store.touch_status(rt, ns, name, status)

    def replica_sets(self, ns: str, name: str, deployment: dict) -> None:
        """The deployment controller: the current template's ReplicaSet at the Deployment's
        replicas, every older one at 0."""
        store = self.api.store
        rt = next(t for t in self.api.registry.types if t.key == ("apps", "replicasets"))
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        digest = _template_hash(template)
        current = f"{name}-{digest}"
        uid = deployment["metadata"].get("uid")
        with store.lock:
            owned = {rs_name: obj for (rs_ns, rs_name), obj in
                     store.objects.get(rt.key, {}).items()
                     if rs_ns == ns and (_owner(obj) or {}).get("uid") == uid}
        replicas = spec.get("replicas", 1)
        if current not in owned:
            labeled = copy.deepcopy(template)
            labeled.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = \
                digest
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
            body = {"metadata": {
                "name": current, "labels": dict(labeled["metadata"]["labels"]),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": name, "uid": uid, "controller": True,
                                     "blockOwnerDeletion": True}]},
                "spec": {"replicas": replicas, "selector": selector, "template": labeled}}
            try:
                store.create(rt, ns, body)
            except Exception:  # the namespace is going away
                return
        for rs_name, obj in owned.items():
            want = replicas if rs_name == current else 0
            if (obj.get("spec") or {}).get("replicas") != want:
                new = copy.deepcopy(obj)
                new["spec"]["replicas"] = want
                new.pop("status", None)
                try:
                    store.update(rt, ns, rs_name, new)
                except Exception:
                    continue

    def desired_status(self, key, ns, name, obj):
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        generation = obj["metadata"].get("generation", 1)
        changed = self.api.store.modified_at.get((key, ns, name), 0)
        if key in WORKLOADS:
            never = self.api.faults.is_unready(key[1], ns, name, obj)
            owner = _owner(obj) if key == ("apps", "replicasets") else None
            if owner and owner.get("kind") == "Deployment":  # ready when its Deployment is
                parent = self.api.store.objects.get(("apps", "deployments"), {}).get(
                    (ns, owner["name"]))
                never = never or (parent is not None and self.api.faults.is_unready(
                    "deployments", ns, owner["name"], parent))
            settled = not never and time.monotonic() - changed >= self.delay
            if settled and key == ("apps", "deployments"):
                settled = self.replica_set_ready(ns, name, obj)
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


    def replica_set_ready(self, ns: str, name: str, deployment: dict) -> bool:
        """A Deployment's status follows its current ReplicaSet, as the deployment controller
        sums it: it reads ready only once that ReplicaSet (owned by this Deployment, not an
        orphan of an earlier one of the same name) has observed its spec and has all the
        Deployment's replicas ready."""
        spec = deployment.get("spec") or {}
        current = f"{name}-{_template_hash(spec.get('template') or {})}"
        with self.api.store.lock:
            rs = self.api.store.objects.get(("apps", "replicasets"), {}).get((ns, current))
        if rs is None or (_owner(rs) or {}).get("uid") != deployment["metadata"].get("uid"):
            return False
        status = rs.get("status") or {}
        wanted = spec.get("replicas", 1)
        return status.get("observedGeneration") == rs["metadata"].get("generation", 1) and \
            (rs.get("spec") or {}).get("replicas", 1) == wanted and \
            status.get("readyReplicas", 0) >= wanted


def _template_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _owner(obj: dict) -> dict | None:
    """The controller ownerReference of an object, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
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
