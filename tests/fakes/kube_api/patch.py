"""The patch flavours of the Kubernetes API.

- JSON patch (RFC 6902): complete (add, remove, replace, move, copy, test).
- JSON merge patch (RFC 7386): complete.
- Strategic merge patch: simplified. Lists of maps whose items carry a known merge key
  (containers and volumes by name, ports by containerPort/port, ...) are merged by that key;
  other lists are replaced. `$patch: delete` on a list item or map and `$patch: replace` on a
  map are honoured; `$setElementOrder/...` and `$retainKeys` directives are dropped.
- Server-side apply: see `apply`. Simplified field ownership: the server remembers, per field
  manager, the last configuration it applied; a field that manager applied before and omits
  now is removed; a field another Apply manager set to a different value is a conflict unless
  force=true. Lists are owned atomically (no per-item ownership of associative lists).
"""
from __future__ import annotations

import copy
from typing import Any

# merge keys of common associative lists (strategic merge patch)
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "volumeMounts": "mountPath", "env": "name", "ports": None,
    "imagePullSecrets": "name", "hostAliases": "ip", "tolerations": None,
    "conditions": "type", "finalizers": None, "ownerReferences": "uid",
}


class PatchError(Exception):
    """A patch that cannot be applied (the server answers 422 or 409)."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Simplified strategic merge patch (see module docstring)."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "delete":
            return None
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
                continue
            if value is None:
                out.pop(key, None)
                continue
            merged = strategic_merge_patch(out.get(key), value, key)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(field, patch + target)
        if key:
            return _merge_list(target, patch, key)
        if field in ("finalizers",):
            return list(dict.fromkeys(target + patch))
    return copy.deepcopy(patch)


def json_patch(target: Any, operations: list) -> Any:
    """RFC 6902 JSON patch."""
    doc = copy.deepcopy(target)
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations", 400)
    for op in operations:
        kind = op.get("op")
        path = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            doc = _add(_remove(doc, path), path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _get(doc, _pointer(op["from"]))
            doc = _add(_remove(doc, _pointer(op["from"])), path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, _pointer(op["from"]))))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test operation failed at {op.get('path')}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}", 400)
    return doc


def apply(live: dict | None, applied: dict, manager: str, previous: dict | None,
          others: dict[str, dict], force: bool) -> dict:
    """Server-side apply of `applied` by `manager` onto `live` (None: create).

    `previous` is what this manager applied last time; `others` maps other Apply managers
    to what they applied. Raises PatchError(409) on a conflict without force."""
    if not force:
        conflicts = []
        for other, config in others.items():
            for path, value in _leaves(applied):
                theirs = _lookup(config, path)
                if theirs is not _MISSING and theirs != value:
                    conflicts.append(f'conflict with "{other}": .{".".join(map(str, path))}')
        if conflicts:
            raise PatchError("Apply failed with %d conflict%s: %s" % (
                len(conflicts), "s" if len(conflicts) > 1 else "", "; ".join(conflicts)), 409)
    base = copy.deepcopy(live) if live else {}
    if previous:
        for path, _ in _leaves(previous):
            if _lookup(applied, path) is _MISSING and not _owned_by_others(path, others):
                _delete(base, path)
    return _overlay(base, applied)


def managed_fields_v1(obj: Any) -> dict:
    """The FieldsV1 set (f:key / .) describing the fields of `obj`."""
    if isinstance(obj, dict):
        return {f"f:{k}": managed_fields_v1(v) for k, v in obj.items()
                if k not in ("apiVersion", "kind")} if obj else {}
    if isinstance(obj, list):
        return {".": {}} if obj else {}
    return {}


_MISSING = object()


def _overlay(base: Any, top: Any) -> Any:
    if isinstance(top, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = _overlay(base.get(key), value)
        return out
    return copy.deepcopy(top)


def _leaves(data: Any, prefix: tuple = ()):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            if prefix == () and key in ("apiVersion", "kind"):
                continue
            if prefix == ("metadata",) and key in ("name", "namespace"):
                continue
            yield from _leaves(value, prefix + (key,))
    elif prefix:
        yield prefix, data


def _lookup(data: Any, path: tuple) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _delete(data: Any, path: tuple) -> None:
    for part in path[:-1]:
        if not isinstance(data, dict) or part not in data:
            return
        data = data[part]
    if isinstance(data, dict):
        data.pop(path[-1], None)


def _owned_by_others(path: tuple, others: dict[str, dict]) -> bool:
    return any(_lookup(config, path) is not _MISSING for config in others.values())


def _merge_key(field: str, items: list) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    key = MERGE_KEYS.get(field, "name" if all("name" in i for i in items) else None)
    if field == "ports":
        key = "containerPort" if all("containerPort" in i for i in items) else (
            "port" if all("port" in i for i in items) else None)
    return key if key and all(key in i for i in items if i.get("$patch") != "delete") else None


def _merge_list(target: list, patch: list, key: str) -> list:
    out = [copy.deepcopy(i) for i in target]
    for item in patch:
        match = next((i for i, t in enumerate(out) if t.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if match is not None:
                out.pop(match)
        elif match is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[match] = strategic_merge_patch(out[match], item)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}", 400)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent):
            raise PatchError(f"index {index} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add at /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, list):
            parent.pop(int(last))
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError):
        raise PatchError(f"path /{'/'.join(parts)} does not exist") from None
    return doc
