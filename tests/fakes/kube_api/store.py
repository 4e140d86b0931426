"""In-memory object store with resourceVersions, generations, selectors and watch history.

Simplifications (documented, deliberate): one global resourceVersion counter as etcd has;
deletion is immediate (finalizers are kept on the object but do not block deletion, except
that deleting a namespace deletes everything in it); the watch history keeps the last
HISTORY events and older resourceVersions get 410 Gone, like a compacted etcd.
"""
from __future__ import annotations

import copy
import datetime
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from .resources import ResourceType

HISTORY = 20000


class ApiError(Exception):
    """An error the server returns as a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}


@dataclass
class Event:
    rv: int
    key: tuple
    namespace: str
    type: str          # ADDED / MODIFIED / DELETED
    obj: dict


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects by (group, plural) -> (namespace, name)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1
        self.objects: dict[tuple, dict[tuple[str, str], dict]] = {}
        self.events: list[Event] = []
        self.applied: dict[tuple, dict[str, dict]] = {}   # (key, ns, name) -> manager -> config
        self.modified_at: dict[tuple, float] = {}           # (key, ns, name) -> monotonic time

    # -- reads ---------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict:
        with self.lock:
            obj = self.objects.get(rt.key, {}).get((namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.objects.get(rt.key, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None, labels: str = "",
             fields: str = "") -> tuple[list[dict], int]:
        label_match = parse_label_selector(labels)
        field_match = parse_field_selector(fields)
        with self.lock:
            items = [copy.deepcopy(o) for (ns, _), o in sorted(self.objects.get(rt.key, {})
                                                                .items())
                     if (namespace is None or ns == namespace) and label_match(o)
                     and field_match(o)]
            return items, self.rv

    # -- writes --------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str, obj: dict, *, dry_run: bool = False) -> dict:
        name = (obj.get("metadata") or {}).get("name")
        if not name and (obj.get("metadata") or {}).get("generateName"):
            name = obj["metadata"]["generateName"] + uuid.uuid4().hex[:5]
            obj["metadata"]["name"] = name
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value",
                           {"kind": rt.plural, "causes": [{"field": "metadata.name",
                                                           "reason": "FieldValueRequired"}]})
        with self.lock:
            if rt.namespaced and rt.kind != "Namespace" and not self._namespace_exists(namespace):
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            if (namespace, name) in self.objects.get(rt.key, {}):
                raise ApiError(409, "AlreadyExists",
                               f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" '
                               "already exists", {"name": name, "group": rt.group,
                                                  "kind": rt.plural})
            meta = obj.setdefault("metadata", {})
            meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=now(),
                        generation=1)
            if rt.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
            if rt.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
            if rt.kind == "Service":
                _default_service(obj, self.rv)
            _default_workload(rt.kind, obj)
            normalize_quantities(obj)
            if dry_run:
                meta["resourceVersion"] = str(self.rv)
                return copy.deepcopy(obj)
            return self._commit(rt, namespace, name, obj, "ADDED")

    def update(self, rt: ResourceType, namespace: str, name: str, obj: dict, *,
               status_only: bool = False, dry_run: bool = False) -> dict:
        with self.lock:
            current = self.objects.get(rt.key, {}).get((namespace, name))
            if current is None:
                raise not_found(rt, name)
            meta = obj.setdefault("metadata", {})
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new = copy.deepcopy(current)
            if status_only:
                new["status"] = copy.deepcopy(obj.get("status"))
            else:
                for key, value in obj.items():
                    if key not in ("metadata", "status"):
                        new[key] = copy.deepcopy(value)
                for key in [k for k in new if k not in obj and k not in
                            ("metadata", "status", "apiVersion", "kind")]:
                    del new[key]
                keep = {k: current["metadata"][k] for k in
                        ("uid", "creationTimestamp", "generation", "resourceVersion",
                         "namespace", "name", "deletionTimestamp") if k in current["metadata"]}
                new["metadata"] = {**copy.deepcopy(meta), **keep}
                _default_workload(rt.kind, new)
                if _spec_of(new) != _spec_of(current):
                    new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            normalize_quantities(new)
            if new == current:
                return copy.deepcopy(current)  # a no-op write keeps the resourceVersion
            if dry_run:
                return new
            return self._commit(rt, namespace, name, new, "MODIFIED")

    def delete(self, rt: ResourceType, namespace: str, name: str, *,
               dry_run: bool = False) -> dict:
        with self.lock:
            current = self.objects.get(rt.key, {}).get((namespace, name))
            if current is None:
                raise not_found(rt, name)
            if dry_run:
                return copy.deepcopy(current)
            del self.objects[rt.key][(namespace, name)]
            self.applied.pop((rt.key, namespace, name), None)
            self.rv += 1
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._event(rt.key, namespace, "DELETED", gone)
            if rt.kind == "Namespace":
                for key, objects in self.objects.items():
                    for (ns, obj_name) in [k for k in objects if k[0] == name]:
                        removed = objects.pop((ns, obj_name))
                        self.rv += 1
                        removed["metadata"]["resourceVersion"] = str(self.rv)
                        self._event(key, ns, "DELETED", removed)
            return gone

    def touch_status(self, rt: ResourceType, namespace: str, name: str, status: dict) -> None:
        """Controllers write status directly (no resourceVersion check)."""
        with self.lock:
            current = self.objects.get(rt.key, {}).get((namespace, name))
            if current is None or current.get("status") == status:
                return
            new = copy.deepcopy(current)
            new["status"] = status
            self._commit(rt, namespace, name, new, "MODIFIED")

    # -- watch ---------------------------------------------------------------------------
    def watch(self, rt: ResourceType, namespace: str | None, since: int | None, labels: str,
              fields: str, deadline: float, stop: threading.Event,
              initial: bool) -> Iterator[Event | None]:
        """Events after `since` (or synthetic ADDED for current objects when `initial`);
        yields None when the initial state has been sent, and periodically while idle."""
        label_match = parse_label_selector(labels)
        field_match = parse_field_selector(fields)
        with self.lock:
            if since is not None and self.events and since < self.events[0].rv - 1 \
                    and len(self.events) >= HISTORY:
                raise ApiError(410, "Expired", f"too old resource version: {since} "
                                               f"({self.events[0].rv - 1})")
            if initial:
                items, rv = self.list(rt, namespace, labels, fields)
                position = rv
            else:
                items, position = [], since if since is not None else self.rv
        for item in items:
            yield Event(int(item["metadata"]["resourceVersion"]), rt.key,
                        item["metadata"].get("namespace", ""), "ADDED", item)
        yield None
        while not stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                pending = [e for e in self.events if e.rv > position and e.key == rt.key]
                if not pending:
                    self.changed.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                    pending = [e for e in self.events if e.rv > position and e.key == rt.key]
            if not pending:
                yield None
                continue
            for event in pending:
                position = event.rv
                if (namespace is None or event.namespace == namespace) and \
                        label_match(event.obj) and field_match(event.obj):
                    yield event

    # -- internals -----------------------------------------------------------------------
    def _namespace_exists(self, namespace: str) -> bool:
        return ("", namespace) in self.objects.get(("", "namespaces"), {})

    def _commit(self, rt: ResourceType, namespace: str, name: str, obj: dict,
                kind: str) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        previous = self.objects.get(rt.key, {}).get((namespace, name))
        self.objects.setdefault(rt.key, {})[(namespace, name)] = obj
        if previous is None or previous["metadata"].get("generation") != \
                obj["metadata"].get("generation"):
            # a new generation restarts the simulated rollout (status writes do not)
            self.modified_at[(rt.key, namespace, name)] = time.monotonic()
        self._event(rt.key, namespace, kind, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _event(self, key: tuple, namespace: str, kind: str, obj: dict) -> None:
        self.events.append(Event(self.rv, key, namespace, kind, obj))
        if len(self.events) > HISTORY:
            del self.events[: len(self.events) - HISTORY]
        self.changed.notify_all()


def _spec_of(obj: dict) -> dict:
    """What bumps metadata.generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def not_found(rt: ResourceType, name: str) -> ApiError:
    group = f".{rt.group}" if rt.group else ""
    return ApiError(404, "NotFound", f'{rt.plural}{group} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt: ResourceType, name: str) -> ApiError:
    group = f".{rt.group}" if rt.group else ""
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {rt.plural}{group} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and try "
                    "again", {"name": name, "group": rt.group, "kind": rt.plural})


_REQ = re.compile(r"\s*([A-Za-z0-9./_-]+)\s*(notin|in)\s*\(([^)]*)\)\s*$")


def parse_label_selector(text: str):
    """Equality- and set-based label selectors -> predicate on an object."""
    checks = []
    for part in _split_selector(text or ""):
        part = part.strip()
        if not part:
            continue
        match = _REQ.match(part)
        if match:
            key, op, values = match.group(1), match.group(2), {
                v.strip() for v in match.group(3).split(",") if v.strip()}
            checks.append(lambda labels, k=key, o=op, vs=values:
                          (labels.get(k) in vs) if o == "in" else (labels.get(k) not in vs))
        elif "!=" in part:
            key, value = (s.strip() for s in part.split("!=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in part:
            key, value = (s.strip() for s in part.replace("==", "=").split("=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif part.startswith("!"):
            checks.append(lambda labels, k=part[1:].strip(): k not in labels)
        else:
            checks.append(lambda labels, k=part: k in labels)
    return lambda obj: all(c((obj.get("metadata") or {}).get("labels") or {}) for c in checks)


def parse_field_selector(text: str):
    """Field selectors (`metadata.name=x,status.phase!=Running`) -> predicate."""
    checks = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        negate = "!=" in part
        path, value = part.replace("==", "=").split("!=" if negate else "=", 1)
        checks.append((path.strip().split("."), value.strip(), negate))

    def match(obj: dict) -> bool:
        for path, value, negate in checks:
            node: Any = obj
            for p in path:
                node = node.get(p) if isinstance(node, dict) else None
            actual = "" if node is None else str(node).lower() if isinstance(node, bool) \
                else str(node)
            if (actual == value) == negate:
                return False
        return True

    return match


def _split_selector(text: str) -> list[str]:
    parts, depth, buf = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return parts


def _default_service(obj: dict, serial: int) -> None:
    """API-server defaulting of a Service: a cluster IP, TCP ports, target ports."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec.get("clusterIP") != "None" and spec["type"] != "ExternalName":
        ip = spec.get("clusterIP") or f"10.96.{(serial // 250) % 250}.{serial % 250 + 1}"
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


_QUANTITY_MAPS = {"requests", "limits", "capacity", "allocatable", "hard", "used",
                  "overhead", "claims_limits"}


def _default_workload(kind: str, obj: dict) -> None:
    """API-server defaulting of the workload fields clients dereference (helm 3's --wait reads
    replicas and the rolling-update limits): replicas 1, RollingUpdate with 25%/25% for
    Deployments, 1/0 for DaemonSets, partition 0 for StatefulSets."""
    spec = obj.get("spec")        # (a null field is an unset one, as the API server reads it)
    if kind not in ("Deployment", "DaemonSet", "StatefulSet") or not isinstance(spec, dict):
        return
    if kind != "DaemonSet":
        _default(spec, "replicas", 1)
        _default(spec, "revisionHistoryLimit", 10)
    if kind == "Deployment":
        strategy = _map(spec, "strategy")
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _map(strategy, "rollingUpdate")
            _default(rolling, "maxUnavailable", "25%")
            _default(rolling, "maxSurge", "25%")
        _default(spec, "progressDeadlineSeconds", 600)
    elif kind == "DaemonSet":
        strategy = _map(spec, "updateStrategy")
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _map(strategy, "rollingUpdate")
            _default(rolling, "maxUnavailable", 1)
            _default(rolling, "maxSurge", 0)
    else:
        strategy = _map(spec, "updateStrategy")
        _default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _map(strategy, "rollingUpdate").setdefault("partition", 0)
        _default(spec, "podManagementPolicy", "OrderedReady")


def _default(parent: dict, key: str, value) -> None:
    """Default a field that is missing or null."""
    if parent.get(key) is None:
        parent[key] = value


def _map(parent: dict, key: str) -> dict:
    """parent[key] as a map, made when it is missing or null (`rollingUpdate: null`, which
    the real binderhub chart renders)."""
    if not isinstance(parent.get(key), dict):
        parent[key] = {}
    return parent[key]


def normalize_quantities(obj) -> None:
    """The API server stores resource.Quantity values as canonical strings: a number sent
    for `resources.requests.cpu` comes back as "500m" or "2", as real servers answer."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _QUANTITY_MAPS and isinstance(value, dict):
                for name, amount in value.items():
                    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                        value[name] = _quantity(amount)
            else:
                normalize_quantities(value)
    elif isinstance(obj, list):
        for item in obj:
            normalize_quantities(item)


def _quantity(amount: float) -> str:
    if float(amount).is_integer():
        return str(int(amount))
    milli = round(amount * 1000)
    return f"{milli}m" if abs(milli - amount * 1000) < 1e-6 else f"{amount}"
