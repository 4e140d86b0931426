"""HTTP front of the Kubernetes API test double (plain HTTP on 127.0.0.1).

Speaks the JSON wire protocol of the real API server to real clients (helm, kubectl, the
kubernetes Python client): discovery (legacy and aggregated v2), CRUD, list with selectors,
watch streams (chunked JSON lines, bookmarks, sendInitialEvents), the four patch types,
server-side apply, Status objects, Table output for kubectl, dry runs, and validation of
built-in kinds against the Kubernetes schemas of the server's version.

OpenAPI: /openapi/v3 serves, per group-version, the operations and their query parameters
but no component schemas. That is what helm and kubectl read to learn that the server does
field validation itself (the fieldValidation parameter on PATCH), so they leave validation
to the server, which checks every write against the Kubernetes schemas of its version (see
`Api._validate`). /openapi/v2 answers 404.
Protobuf is never sent: clients that ask for it also accept JSON, and get JSON.
"""
from __future__ import annotations

import copy
import datetime
import json
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from . import patch as patches
from .resources import BUILTIN, Registry, ResourceType
from .store import ApiError, Store, conflict, now

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


class Faults:
    """Failures a test injects; each rule may be limited to a number of requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.conflicts: dict[tuple, int] = {}
        self.unready: set[tuple] = set()
        self.unready_when: dict[tuple, object] = {}

    def fail(self, pattern: str, status: int = 503, *, times: int | None = None,
             methods: tuple[str, ...] = (), user_agent: str = "") -> None:
        """Answer requests whose path matches `pattern` (regex) with `status`; optionally
        only requests from clients whose User-Agent matches `user_agent` (regex)."""
        with self.lock:
            self.rules.append({"re": re.compile(pattern), "status": status, "times": times,
                               "methods": methods, "delay": 0.0,
                               "agent": re.compile(user_agent) if user_agent else None})

    def slow(self, pattern: str, seconds: float, *, times: int | None = None,
             methods: tuple[str, ...] = ()) -> None:
        """Delay requests whose path matches `pattern` by `seconds`."""
        with self.lock:
            self.rules.append({"re": re.compile(pattern), "status": None, "times": times,
                               "methods": methods, "delay": seconds, "agent": None})

    def conflict(self, plural: str, namespace: str, name: str, times: int = 1) -> None:
        """The next `times` writes to this object get 409 Conflict."""
        with self.lock:
            self.conflicts[(plural, namespace, name)] = times

    def never_ready(self, plural: str, namespace: str, name: str, when=None) -> None:
        """This workload never becomes ready (the controller leaves it unavailable) - or,
        with `when(obj) -> bool`, only while its spec is one `when` accepts (a bad revision:
        rolling back to a good spec makes it ready again)."""
        with self.lock:
            self.unready.add((plural, namespace, name))
            self.unready_when[(plural, namespace, name)] = when

    def is_unready(self, plural: str, namespace: str, name: str, obj: dict) -> bool:
        with self.lock:
            if (plural, namespace, name) not in self.unready:
                return False
            when = self.unready_when.get((plural, namespace, name))
        return when is None or bool(when(obj))

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.conflicts.clear()
            self.unready.clear()
            self.unready_when.clear()

    def match(self, method: str, path: str, agent: str = "") -> tuple[int | None, float]:
        with self.lock:
            for rule in self.rules:
                if rule["methods"] and method not in rule["methods"]:
                    continue
                if rule["agent"] and not rule["agent"].search(agent):
                    continue
                if not rule["re"].search(path) or rule["times"] == 0:
                    continue
                if rule["times"] is not None:
                    rule["times"] -= 1
                return rule["status"], rule["delay"]
        return None, 0.0

    def take_conflict(self, plural: str, namespace: str, name: str) -> bool:
        with self.lock:
            left = self.conflicts.get((plural, namespace, name), 0)
            if left:
                self.conflicts[(plural, namespace, name)] = left - 1
            return bool(left)


class Api:
    """Request semantics, independent of the HTTP plumbing."""

    def __init__(self, version: str = "1.34.2", token: str | None = None):
        self.version = version
        self.token = token
        self.store = Store()
        self.registry = Registry()
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []   # (method, path) log for assertions
        self.content_types: list[tuple[str, str, str]] = []
        self._validators: dict = {}
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.store.create(self.registry.by_kind("v1", "Namespace"), "", {
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
        self.store.create(self.registry.by_kind("v1", "Node"), "", {
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})

    # -- discovery -----------------------------------------------------------------------
    def version_info(self) -> dict:
        major, minor, *_ = self.version.split(".")
        return {"major": major, "minor": minor, "gitVersion": f"v{self.version}",
                "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
                "compiler": "gc", "platform": "linux/amd64"}

    def resource_list(self, group: str, version: str) -> dict | None:
        types = self.registry.in_group_version(group, version)
        if not types:
            return None
        resources = []
        for t in types:
            resources.append({"name": t.plural, "singularName": t.singular,
                              "namespaced": t.namespaced, "kind": t.kind, "verbs": list(t.verbs),
                              **({"shortNames": list(t.short_names)} if t.short_names else {}),
                              **({"categories": list(t.categories)} if t.categories else {})})
            for sub in t.subresources:
                kind = "Scale" if sub == "scale" else t.kind
                entry = {"name": f"{t.plural}/{sub}", "singularName": "", "namespaced":
                         t.namespaced, "kind": kind, "verbs": ["get", "patch", "update"]}
                if sub == "scale":
                    entry.update(group="autoscaling", version="v1")
                resources.append(entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}

    def group_list(self) -> dict:
        groups = []
        for group, versions in self.registry.groups().items():
            if not group:
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def aggregated(self, legacy: bool) -> dict:
        items = []
        for group, versions in self.registry.groups().items():
            if (group == "") != legacy:
                continue
            entries = []
            for version in versions:
                resources = []
                for t in self.registry.in_group_version(group, version):
                    resource = {
                        "resource": t.plural, "singularResource": t.singular,
                        "scope": "Namespaced" if t.namespaced else "Cluster",
                        "responseKind": {"group": group, "version": version, "kind": t.kind},
                        "verbs": list(t.verbs),
                        "subresources": [{"subresource": s, "verbs": ["get", "patch", "update"],
                                          "responseKind": {
                                              "group": "autoscaling" if s == "scale" else group,
                                              "version": "v1" if s == "scale" else version,
                                              "kind": "Scale" if s == "scale" else t.kind}}
                                         for s in t.subresources]}
                    if t.short_names:
                        resource["shortNames"] = list(t.short_names)
                    if t.categories:
                        resource["categories"] = list(t.categories)
                    resources.append(resource)
                entries.append({"version": version, "resources": resources,
                                "freshness": "Current"})
            items.append({"metadata": {"name": group}, "versions": entries})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {}, "items": items}

    # -- OpenAPI v3 (operations and parameters only) ---------------------------------------
    def openapi_root(self) -> dict:
        """The v3 index: one document per group-version, as /openapi/v3 lists them."""
        paths = {}
        for group, versions in self.registry.groups().items():
            for version in versions:
                rel = f"apis/{group}/{version}" if group else f"api/{version}"
                paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={self.store.rv}"}
        return {"paths": paths}

    def openapi_group_version(self, rel: str) -> dict | None:
        """A group-version's operations with their query parameters (fieldValidation, dryRun,
        fieldManager, force): clients use it to find that this server validates fields itself.
        Component schemas are not served; the server validates every write (see _validate)."""
        parts = rel.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        types = self.registry.in_group_version(group, version)
        if not types:
            return None
        params = [{"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        paths = {}
        for t in types:
            gvk = {"group": group, "version": version, "kind": t.kind}
            scope = f"{prefix}/namespaces/{{namespace}}" if t.namespaced else prefix
            item = {"x-kubernetes-group-version-kind": gvk, "parameters": params,
                    "responses": {"200": {"description": "OK"}}}
            paths[f"{scope}/{t.plural}/{{name}}"] = {
                "get": {**item, "x-kubernetes-action": "get"},
                "put": {**item, "x-kubernetes-action": "put"},
                "patch": {**item, "x-kubernetes-action": "patch"},
                "delete": {**item, "x-kubernetes-action": "delete"}}
            paths[f"{scope}/{t.plural}"] = {"post": {**item, "x-kubernetes-action": "post"},
                                            "get": {**item, "x-kubernetes-action": "list"}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{self.version}"},
                "paths": paths, "components": {"schemas": {}}}

    # -- objects -------------------------------------------------------------------------
    def create(self, rt: ResourceType, ns: str, body: dict, q: dict) -> tuple[dict, list[str]]:
        self._check_body(rt, ns, body)
        warnings = self._validate(rt, body, q)
        obj = self.store.create(rt, ns, body, dry_run=_dry(q))
        self._after_write(rt, obj)
        return obj, warnings

    def replace(self, rt: ResourceType, ns: str, name: str, sub: str, body: dict,
                q: dict) -> tuple[dict, list[str]]:
        self._check_body(rt, ns, body, name)
        if self.faults.take_conflict(rt.plural, ns, name):
            raise conflict(rt, name)
        warnings = [] if sub == "status" else self._validate(rt, body, q)
        obj = self.store.update(rt, ns, name, body, status_only=sub == "status",
                                dry_run=_dry(q))
        self._after_write(rt, obj)
        return obj, warnings

    def patch(self, rt: ResourceType, ns: str, name: str, sub: str, body: str,
              content_type: str, q: dict) -> tuple[dict, int, list[str]]:
        kind = content_type.split(";")[0].strip()
        if self.faults.take_conflict(rt.plural, ns, name):
            raise conflict(rt, name)
        if kind == "application/apply-patch+yaml":
            return self._apply(rt, ns, name, sub, body, q)
        live = self.store.get(rt, ns, name)
        try:
            data = json.loads(body or "null")
            if kind == "application/json-patch+json":
                new = patches.json_patch(live, data)
            elif kind == "application/merge-patch+json":
                new = patches.merge_patch(live, data)
            elif kind == "application/strategic-merge-patch+json":
                if rt not in BUILTIN:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "strategic merge patch is not supported for custom resources")
                new = patches.strategic_merge_patch(live, data)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: application/json-patch+json, "
                               f"application/merge-patch+json, application/apply-patch+yaml, "
                               f"application/strategic-merge-patch+json (got {kind})")
        except patches.PatchError as exc:
            raise ApiError(exc.code, "Invalid" if exc.code == 422 else "BadRequest",
                           str(exc)) from None
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON patch body: {exc}") from None
        if isinstance(data, dict) and (data.get("metadata") or {}).get("resourceVersion") and \
                data["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        new.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        warnings = [] if sub == "status" else self._validate(rt, new, q)
        obj = self.store.update(rt, ns, name, new, status_only=sub == "status", dry_run=_dry(q))
        self._after_write(rt, obj)
        return obj, 200, warnings

    def delete(self, rt: ResourceType, ns: str, name: str, q: dict,
               options: dict | None = None) -> dict:
        preconditions = (options or {}).get("preconditions") or {}
        with self.store.lock:
            if preconditions:  # DeleteOptions.preconditions: 409 Conflict when they do not hold
                meta = self.store.get(rt, ns, name)["metadata"]
                for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                    want = preconditions.get(field)
                    if want and want != meta.get(field):
                        raise ApiError(409, "Conflict", f"Precondition failed: {label} in "
                                                        f"precondition: {want}, {label} in object "
                                                        f"meta: {meta.get(field)}",
                                       {"name": name, "group": rt.group, "kind": rt.plural})
            obj = self.store.delete(rt, ns, name, dry_run=_dry(q))
        if rt.kind == "CustomResourceDefinition" and not _dry(q):
            self.registry.unregister_crd(obj)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural,
                            "uid": obj["metadata"].get("uid")}}

    # -- internals -----------------------------------------------------------------------
    def _apply(self, rt: ResourceType, ns: str, name: str, sub: str, body: str,
               q: dict) -> tuple[dict, int, list[str]]:
        manager = q.get("fieldManager")
        if not manager:
            raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: "
                                           "fieldManager: Required value: is required for apply "
                                           "patch")
        try:
            applied = yaml.safe_load(body or "") or {}
        except yaml.YAMLError as exc:
            raise ApiError(400, "BadRequest", f"error decoding YAML: {exc}") from None
        self._check_body(rt, ns, applied, name)
        key = (rt.key, ns, name)
        with self.store.lock:
            live = self.store.find(rt, ns, name)
            history = self.store.applied.setdefault(key, {}) if live else {}
            others = {m: c for m, c in history.items() if m != manager}
            try:
                merged = patches.apply(live, applied, manager, history.get(manager), others,
                                       q.get("force") == "true")
            except patches.PatchError as exc:
                raise ApiError(409, "Conflict", str(exc)) from None
            merged["apiVersion"], merged["kind"] = rt.group_version, rt.kind
            meta = merged.setdefault("metadata", {})
            meta["name"] = name
            if live is not None and _without_managed(merged) == _without_managed(live) and \
                    history.get(manager) == applied:
                return live, 200, []  # a no-op apply changes nothing, not even managedFields
            entries = [e for e in meta.get("managedFields") or [] if e.get("manager") != manager]
            entries.append({"manager": manager, "operation": "Apply",
                            "apiVersion": rt.group_version, "time": now(),
                            "fieldsType": "FieldsV1",
                            "fieldsV1": patches.managed_fields_v1(applied)})
            meta["managedFields"] = entries
            warnings = self._validate(rt, merged, q)
            if live is None:
                obj = self.store.create(rt, ns, merged, dry_run=_dry(q))
                code = 201
            else:
                meta["resourceVersion"] = live["metadata"]["resourceVersion"]
                obj = self.store.update(rt, ns, name, merged, status_only=sub == "status",
                                        dry_run=_dry(q))
                code = 200
            if not _dry(q):
                self.store.applied.setdefault(key, {})[manager] = copy.deepcopy(applied)
        self._after_write(rt, obj)
        return obj, code, warnings

    def _check_body(self, rt: ResourceType, ns: str, body: Any, name: str | None = None) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request is not an object")
        meta = body.get("metadata") or {}
        if body.get("kind") not in (None, rt.kind):
            raise ApiError(400, "BadRequest", f"the kind {body.get('kind')!r} of the object does "
                                              f"not match the URL ({rt.kind})")
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", f"the name of the object ({meta.get('name')}) does "
                                              f"not match the name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                                              "match the namespace sent on the request")
        obj_name = meta.get("name") or name or ""
        if not obj_name:
            return
        if rt.group == "rbac.authorization.k8s.io":
            # RBAC names need only be path segments (ValidateRBACName = IsValidPathSegmentName):
            # `cert-manager:leaderelection` is a valid Role name
            problem = (f"may not be '{obj_name}'" if obj_name in (".", "..") else
                       "; ".join(f"may not contain '{c}'" for c in "/%" if c in obj_name))
        elif not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", obj_name):
            problem = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.'")
        else:
            return
        if problem:
            raise ApiError(422, "Invalid", f'{rt.kind} "{obj_name}" is invalid: metadata.name: '
                                           f'Invalid value: "{obj_name}": {problem}',
                           {"name": obj_name, "kind": rt.plural,
                            "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name"}]})

    def _validate(self, rt: ResourceType, obj: dict, q: dict) -> list[str]:
        """Built-in kinds are checked against the Kubernetes schemas of this server's version:
        type errors are 422 Invalid; unknown fields are 400 with fieldValidation=Strict and a
        warning otherwise (the real server's Warn default)."""
        validator = self._validator(rt)
        if validator is None:
            return []
        body = {k: v for k, v in obj.items() if k != "status"}
        body["apiVersion"], body["kind"] = rt.group_version, rt.kind
        body["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                            if k != "managedFields"}
        unknown, invalid = [], []
        for err in validator.iter_errors(body):
            path = ".".join(str(p) for p in err.absolute_path)
            if err.validator == "additionalProperties":
                allowed = set(err.schema.get("properties") or {})
                for key in [k for k in err.instance if k not in allowed]:
                    unknown.append(f"{path}.{key}" if path else key)
            else:
                invalid.append({"field": path, "message": err.message[:200]})
        if invalid:
            first = invalid[0]
            raise ApiError(422, "Invalid", f'{rt.kind} "{(obj.get("metadata") or {}).get("name")}"'
                                           f' is invalid: {first["field"]}: {first["message"]}',
                           {"name": (obj.get("metadata") or {}).get("name"), "kind": rt.plural,
                            "causes": [{"reason": "FieldValueInvalid", **c} for c in invalid]})
        if unknown and q.get("fieldValidation") == "Strict":
            raise ApiError(400, "BadRequest", "strict decoding error: " + ", ".join(
                f'unknown field "{u}"' for u in unknown))
        return [f'unknown field "{u}"' for u in unknown]

    def _validator(self, rt: ResourceType):
        key = (rt.group_version, rt.kind)
        if key not in self._validators:
            self._validators[key] = _load_validator(self.version, rt)
        return self._validators[key]

    def _after_write(self, rt: ResourceType, obj: dict) -> None:
        if rt.kind == "CustomResourceDefinition":
            self.registry.register_crd(obj)
            status = {"conditions": [{"type": "Established", "status": "True",
                                      "reason": "InitialNamesAccepted"},
                                     {"type": "NamesAccepted", "status": "True"}],
                      "acceptedNames": (obj.get("spec") or {}).get("names", {})}
            self.store.touch_status(rt, "", obj["metadata"]["name"], status)


def _load_validator(version: str, rt: ResourceType):
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry as RefRegistry, Resource

    available = [v for v in utils.all_versions()
                 if tuple(map(int, v.split(".")[:2])) <= tuple(map(int, version.split(".")[:2]))]
    if not available:
        return None
    schema_version = available[-1]
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", rt.group_version)
    base = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = utils.schema_contents(f"{base}/{rt.kind.lower()}-{api}.json", schema_version)
    except FileNotFoundError:
        return None
    defs = utils.schema_contents(f"{base}/_definitions.json", schema_version)
    registry = Resource.from_contents(schema) @ (Resource.from_contents(defs) @ RefRegistry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _without_managed(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    for key in ("managedFields", "resourceVersion"):
        (out.get("metadata") or {}).pop(key, None)
    return out


def _dry(q: dict) -> bool:
    return q.get("dryRun") == "All"


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def table(rt: ResourceType, items: list[dict], rv: int, include: str) -> dict:
    """The meta.k8s.io/v1 Table kubectl asks for: NAME and AGE (READY for workloads)."""
    columns = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace."}]
    workload = rt.kind in ("Deployment", "StatefulSet")
    if workload:
        columns.append({"name": "Ready", "type": "string", "format": "", "priority": 0,
                        "description": "Ready replicas / desired replicas"})
    columns.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                    "description": "CreationTimestamp"})
    rows = []
    for obj in items:
        meta = obj.get("metadata") or {}
        cells = [meta.get("name")]
        if workload:
            status = obj.get("status") or {}
            cells.append(f"{status.get('readyReplicas', 0)}/"
                         f"{(obj.get('spec') or {}).get('replicas', 1)}")
        cells.append(_age(meta.get("creationTimestamp")))
        row = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": meta}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(rv)}, "columnDefinitions": columns, "rows": rows}


class Handler(BaseHTTPRequestHandler):
    """One HTTP connection; `self.server.api` holds the state."""

    protocol_version = "HTTP/1.1"
    api: Api

    def log_message(self, fmt: str, *args) -> None:  # quiet: tests read the request log
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- dispatch ------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        body = self._body()
        api.requests.append((method, self.path))
        api.content_types.append((method, self.path, self.headers.get("Content-Type", "")))
        content_type = self.headers.get("Content-Type", "")
        if body and "protobuf" in content_type:
            # typed client-go clients (helm's release storage, kubectl create) send protobuf
            from . import protobuf
            try:
                body = json.dumps(protobuf.decode(body)).encode()
            except ValueError as exc:
                return self._status(ApiError(415, "UnsupportedMediaType",
                                             f"cannot decode protobuf body: {exc}"))
        elif body and "cbor" in content_type:
            # like a server without CBOR support: client-go then retries as JSON
            return self._status(ApiError(415, "UnsupportedMediaType",
                                         "the body of the request was in an unknown format - "
                                         "accepted media types include: application/json, "
                                         f"application/yaml, application/vnd.kubernetes.protobuf "
                                         f"(got {content_type})"))
        try:
            status, delay = api.faults.match(method, self.path,
                                             self.headers.get("User-Agent", ""))
            if delay:
                time.sleep(delay)
            if status == 403:
                raise _forbidden(method, path, q)
            if status:
                raise ApiError(status, {500: "InternalError", 503: "ServiceUnavailable",
                                        429: "TooManyRequests", 504: "Timeout"}.get(
                    status, "InternalError"), f"injected fault for {method} {url.path}")
            if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._route(api, method, path, q, body)
        except ApiError as exc:
            self._status(exc)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug in the double: answer as a real server's 500 would
            self._status(ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}"))

    def _route(self, api: Api, method: str, path: str, q: dict, body: bytes) -> None:
        accept = self.headers.get("Accept", "")
        if path == "/version":
            return self._json(200, api.version_info())
        if path in ("/healthz", "/readyz", "/livez"):
            return self._raw(200, b"ok", "text/plain")
        if path == "/openapi/v3":
            return self._json(200, api.openapi_root())
        if path.startswith("/openapi/v3/"):
            doc = api.openapi_group_version(path[len("/openapi/v3/"):])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(200, doc)
        if path.startswith("/openapi"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource "
                                            "(OpenAPI v2 is not served by this test double)")
        if path == "/api":
            if "as=APIGroupDiscoveryList" in accept and "v=v2" in accept:
                return self._json(200, api.aggregated(legacy=True), AGGREGATED)
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [{
                                        "clientCIDR": "0.0.0.0/0",
                                        "serverAddress": self.headers.get("Host", "")}]})
        if path == "/apis":
            if "as=APIGroupDiscoveryList" in accept and "v=v2" in accept:
                return self._json(200, api.aggregated(legacy=False), AGGREGATED)
            return self._json(200, api.group_list())
        # each segment is percent-decoded, as the real server does (`a%3Ab` names `a:b`)
        parts = [urllib.parse.unquote(part) for part in path.strip("/").split("/")]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            versions = api.registry.groups().get(parts[1])
            if not versions:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            gvs = [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in versions]
            return self._json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                    "versions": gvs, "preferredVersion": gvs[0]})
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            listing = api.resource_list(group, version)
            if listing is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(200, listing)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else None, \
            rest[2] if len(rest) > 2 else ""
        if plural == "namespaces" and namespace is not None and not rest[1:]:
            # /api/v1/namespaces/NAME/status and the like were consumed as a namespace
            plural, name, namespace = "namespaces", namespace, None
        rt = api.registry.by_path(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = namespace or "" if rt.namespaced else ""
        if method == "GET" and name is None:
            if q.get("watch") in ("true", "1"):
                return self._watch(api, rt, namespace if rt.namespaced else None, q)
            items, rv = api.store.list(rt, namespace if rt.namespaced else None,
                                       q.get("labelSelector", ""), q.get("fieldSelector", ""))
            if "as=Table" in accept:
                return self._json(200, table(rt, items, rv, q.get("includeObject", "")))
            return self._json(200, {"kind": f"{rt.kind}List", "apiVersion": rt.group_version,
                                    "metadata": {"resourceVersion": str(rv)}, "items": items})
        if method == "GET":
            obj = api.store.get(rt, ns, name)
            if sub == "scale":
                obj = _scale(obj)
            if "as=Table" in accept:
                return self._json(200, table(rt, [obj], api.store.rv, q.get("includeObject", "")))
            return self._json(200, obj)
        if method == "POST" and name is None:
            obj, warnings = api.create(rt, ns, self._parse(body), q)
            return self._json(201, obj, warnings=warnings)
        if method == "PUT" and name is not None:
            obj, warnings = api.replace(rt, ns, name, sub, self._parse(body), q)
            return self._json(200, obj, warnings=warnings)
        if method == "PATCH" and name is not None:
            obj, code, warnings = api.patch(rt, ns, name, sub, body.decode(),
                                            self.headers.get("Content-Type", ""), q)
            return self._json(code, obj, warnings=warnings)
        if method == "DELETE" and name is not None:
            options = self._parse(body) if body else None   # DeleteOptions (JSON or protobuf)
            return self._json(200, api.delete(rt, ns, name, q, options))
        if method == "DELETE":
            items, _ = api.store.list(rt, namespace if rt.namespaced else None,
                                      q.get("labelSelector", ""), q.get("fieldSelector", ""))
            for item in items:
                api.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"],
                           q)
            return self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success"})
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")

    # -- watch ---------------------------------------------------------------------------
    def _watch(self, api: Api, rt: ResourceType, namespace: str | None, q: dict) -> None:
        rv = q.get("resourceVersion", "")
        initial_events = q.get("sendInitialEvents") == "true"
        since = int(rv) if rv not in ("", "0") else None
        initial = initial_events or since is None
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = float(q.get("timeoutSeconds") or 1800)
        stop = self.server.stopping  # type: ignore[attr-defined]
        events = api.store.watch(rt, namespace, since, q.get("labelSelector", ""),
                                 q.get("fieldSelector", ""), time.monotonic() + timeout, stop,
                                 initial)
        first = next(events)  # raises 410 before any byte is written
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent_initial_end = False
        last_bookmark = time.monotonic()
        pending = [first]
        for event in _chain(pending, events):
            if stop.is_set():
                break
            if event is None:
                due = bookmarks and time.monotonic() - last_bookmark > 1.0
                if initial_events and not sent_initial_end:
                    self._bookmark(rt, api.store.rv, initial_end=True)
                    sent_initial_end = True
                elif due:
                    self._bookmark(rt, api.store.rv)
                    last_bookmark = time.monotonic()
                continue
            self._chunk(json.dumps({"type": event.type, "object": event.obj}).encode() + b"\n")
        self._chunk(b"")

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._chunk(json.dumps({"type": "BOOKMARK", "object": {
            "kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}}).encode() + b"\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- plumbing ------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _parse(self, body: bytes) -> dict:
        try:
            data = yaml.safe_load(body.decode() or "{}")
        except yaml.YAMLError as exc:
            raise ApiError(400, "BadRequest", f"error decoding the request body: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of the request is not an object")
        return data

    def _json(self, code: int, data: dict, content_type: str = "application/json",
              warnings: list[str] | None = None) -> None:
        self._raw(code, json.dumps(data).encode(), content_type, warnings)

    def _raw(self, code: int, payload: bytes, content_type: str,
             warnings: list[str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for warning in warnings or []:
            self.send_header("Warning", f'299 - "{warning}"')
        self.end_headers()
        self.wfile.write(payload)

    def _status(self, exc: ApiError) -> None:
        self._json(exc.code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": exc.message, "reason": exc.reason,
                              "details": exc.details, "code": exc.code})


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _forbidden(method: str, path: str, q: dict) -> ApiError:
    """An injected 403 as RBAC's authorizer words it (reason Forbidden, `<resource> is
    forbidden: User "..." cannot <verb> resource ...`), the message clients print."""
    parts = [p for p in path.split("/") if p]
    group, rest = ("", parts[2:]) if parts[:1] == ["api"] else \
        ("/".join(parts[1:2]), parts[3:])
    namespace = ""
    if len(rest) > 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    verb = _VERBS.get(method) or ("watch" if q.get("watch") in ("1", "true") else
                                  "get" if name else "list")
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    subject = f'{resource} "{name}"' if name else resource
    return ApiError(403, "Forbidden",
                    f'{subject} is forbidden: User "test" cannot {verb} resource '
                    f'"{resource}" in API group "{group}"{where}',
                    {"name": name, "group": group, "kind": resource})


def _chain(first: list, rest):
    yield from first
    yield from rest


def _scale(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}


class HttpServer(ThreadingHTTPServer):
    """Threaded server that can drop every open connection (to simulate going away)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api: Api):
        self.api = api
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body back until the client's delayed ACK (~40 ms per request), which a
        # real API server (Go's net/http sets TCP_NODELAY) never does.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.conn_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()
