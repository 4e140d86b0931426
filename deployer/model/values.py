"""Layered Helm values with provenance.

chart defaults <- config/common.yaml <- config/<member>.yaml <- secrets/common.yaml (sops,
optional) <- secrets/<member>.yaml (sops) <- values generated from config/federation.yaml.
Helm's merge rules: maps merge, lists and scalars replace, null deletes a key. A key the
generated layer sets may not be set by a common, member or secrets file (an error names both
places): federation data is changed in config/federation.yaml only.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterator

from deployer.errors import ConfigError
from deployer.model.federation import FEDERATION_FILE, Federation, Member
from deployer.model.redact import MASK, Redactor
from deployer.model.workspace import Workspace
from deployer.model.yamlio import Document, KeyPath, format_path

DELETED = object()  # marker for "a layer set this key to null"


@dataclass
class Layer:
    """One source of values: its data and where each key path was set."""

    name: str
    label: str
    data: dict
    lines: dict[KeyPath, int] = field(default_factory=dict)
    sources: dict[KeyPath, str] = field(default_factory=dict)  # per-key label override
    secret: bool = False

    def where(self, path: KeyPath) -> str:
        """`file:line` where this layer sets `path`."""
        if path in self.sources:
            return self.sources[path]
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        return f"{self.label}:{line}" if line else self.label


@dataclass
class Setting:
    """A layer's contribution to one key path, for `explain`."""

    layer: Layer
    path: KeyPath
    value: Any

    @property
    def where(self) -> str:
        return self.layer.where(self.path)


@dataclass
class MemberValues:
    """Everything known about one member's values."""

    member: Member
    layers: list[Layer]
    user: dict          # what is handed to helm (-f -): every layer but the chart defaults
    final: dict         # chart defaults merged in and nulls dropped: what templates see
    secret_paths: list[KeyPath]
    redactor: Redactor
    redactor_values: list = field(default_factory=list)  # the secret values themselves

    def for_helm(self, defaults: dict | None = None) -> dict:
        """The values handed to helm. Helm deletes a null only where the chart defaults have
        the key; a null over a key that only an earlier layer set is resolved here, so it
        deletes that key instead of reaching the chart schema as null."""
        base = self.layers[0].data if defaults is None else defaults
        return _resolve_nulls(self.user, base)

    def redacted(self, data: dict | None = None) -> dict:
        """`data` (default: final values) with every secret masked."""
        return self.redactor.tree(self.final if data is None else data, self.secret_paths)

    def explain(self, path: KeyPath) -> tuple[Any, list[Setting]]:
        """The final value at `path` (DELETED if unset) and every layer that touched it."""
        settings = []
        for layer in self.layers:
            for leaf, value in _leaves(layer.data):
                if _related(leaf, path, value):
                    settings.append(Setting(layer, leaf, value))
        return lookup(self.final, path), settings

    def is_secret(self, path: KeyPath) -> bool:
        """True if `path` or an ancestor/descendant came from a secrets layer."""
        return any(_related(p, path, None) for p in self.secret_paths)


COMMON_SECRETS = "secrets/common.yaml"
# subtrees the generated layer owns whole: a file adding a key inside one is a conflict too
_OWNED_TREES = (("federationRedirect", "hosts"),)


def secrets_file(member: Member) -> str:
    """Where a member's sops-encrypted values live, relative to the repository root."""
    return f"secrets/{member.name}.yaml"


def build(ws: Workspace, member: Member, secrets: Document,
          common_secrets: Document | None = None) -> MemberValues:
    """Load every layer for `member` and merge them as Helm does. `secrets` is the member's
    decrypted secrets file, `common_secrets` the decrypted secrets/common.yaml when there
    is one (parsed in memory by the caller, which ran sops)."""
    fed = ws.federation
    layers: list[Layer] = []
    chart_values = ws.chart_dir / "values.yaml"
    if chart_values.is_file():
        layers.append(_file_layer("chart defaults",
                                  ws.load_yaml(chart_values, ws.rel(chart_values))))
    layers.append(_file_layer("common", ws.load_yaml(ws.root / "config/common.yaml",
                                                    "config/common.yaml")))
    member_file = f"config/{member.name}.yaml"
    if not (ws.root / member_file).is_file():
        raise ConfigError(f"values file of member {member.name!r} not found", file=member_file,
                          hint="every member in config/federation.yaml needs config/<name>.yaml "
                               "(it may be empty: {})")
    layers.append(_file_layer("member", ws.load_yaml(ws.root / member_file, member_file)))
    if common_secrets is not None:
        layers.append(_file_layer("common secrets", _without_sops(common_secrets), secret=True))
    layers.append(_file_layer("secrets", _without_sops(secrets), secret=True))
    generated = generated_layer(fed, member, layers[0].data
                                if layers[0].name == "chart defaults" else None)
    check_overrides([layer for layer in layers if layer.name != "chart defaults"], generated)
    layers.append(generated)

    user: dict = {}
    for layer in layers[1:] if layers[0].name == "chart defaults" else layers:
        user = merge(user, layer.data)
    final = prune_nulls(merge(layers[0].data, user) if layers[0].name == "chart defaults"
                          else user)
    secret_layers = [layer for layer in layers if layer.secret]
    secret_values = [v for layer in secret_layers for _, v in _scalars(layer.data)]
    ws.console.add_secrets(secret_values)  # from here on, every printed line masks them
    return MemberValues(member=member, layers=layers, user=user, final=final,
                        secret_paths=[path for layer in secret_layers
                                      for path, _ in _leaves(layer.data)],
                        redactor=Redactor(secret_values), redactor_values=secret_values)


def serves_static(ws: Workspace, member: Member) -> bool:
    """Whether the member's static site is on (so it needs its certificate): it has
    domains.static and `static.enabled` is not false in the chart defaults,
    config/common.yaml or config/<member>.yaml. Cheap: secrets are not decrypted, so a
    `static.enabled` set only in a secrets file is not seen; an unreadable file counts
    as the site being on."""
    if not member.domains.static:
        return False
    enabled = True
    for path in (ws.chart_dir / "values.yaml", ws.root / "config/common.yaml",
                 ws.root / f"config/{member.name}.yaml"):
        try:
            value = lookup(ws.load_yaml(path, ws.rel(path)).data, ("static", "enabled"))
        except ConfigError:
            continue
        if isinstance(value, bool):
            enabled = value
    return enabled


def check_overrides(layers: list[Layer], generated: Layer) -> None:
    """A file layer that sets a key the generated layer sets (or one inside a map the
    generated layer owns whole) is a ConfigError naming both places."""
    owned = [path for path, _ in _leaves(generated.data)] + list(_OWNED_TREES)
    clashes = []
    for layer in layers:
        for leaf, value in _leaves(layer.data):
            for path in owned:
                if leaf[:len(path)] == path or (
                        path[:len(leaf)] == leaf and not isinstance(value, dict)):
                    clashes.append((layer, leaf, path))
                    break
    if not clashes:
        return
    layer, leaf, path = clashes[0]
    where = layer.where(leaf)
    file, _, line = where.rpartition(":")
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    inside = "" if path == leaf else f" ({format_path(path)})"
    raise ConfigError(
        f"also generated from federation data at {generated.where(path)}{inside}; "
        f"a values file may not override it{more}",
        file=file if line.isdigit() else where, line=int(line) if line.isdigit() else None,
        key=format_path(leaf),
        hint="change config/federation.yaml (domains, *_aliases, tls, abuse, prime) or "
             "remove the key from this file")


def generated_layer(fed: Federation, member: Member, defaults: dict | None = None) -> Layer:
    """Values derived from config/federation.yaml, each traced to the line it comes from.
    `defaults`: the chart's values.yaml, whose banned CIDRs the federation's ban list adds to."""
    sources: dict[KeyPath, str] = {}

    def src(*fed_path) -> str:
        """file:line of the key, or of its nearest parent that is written (a default)."""
        path = fed_path
        while path and fed.line_of(*path) is None:
            path = path[:-1]
        return f"{FEDERATION_FILE}:{fed.line_of(*path)}"

    d = member.domains
    hosts = _redirector_hosts(fed, member, sources, src)
    data: dict = {
        "federation": {
            "name": fed.name,
            "member": member.name,
            "role": member.role,
        },
        "binderhubEnabled": member.runs_binderhub,
        "federationRedirect": {
            "enabled": member.runs_redirector,
            "host": d.federation or "",
            "hosts": hosts if member.runs_redirector else {},
            "tls": {"secretName": member.tls["federation"]},
        },
        "static": {"host": d.static or "", "tls": {"secretName": member.tls["static"]}},
    }
    if not d.static:       # a member may still switch its static site off in its values
        data["static"]["enabled"] = False
    if member.runs_binderhub:
        binder_hosts = [d.binder, *d.binder_aliases]
        hub_hosts = [d.hub, *d.hub_aliases]
        data["binderhub"] = {
            "config": {"BinderHub": {"hub_url": f"https://{d.hub}"}},
            "ingress": {"hosts": binder_hosts,
                        "tls": [{"secretName": member.tls["binder"], "hosts": binder_hosts}]},
            "jupyterhub": {"ingress": {"hosts": hub_hosts,
                                       "tls": [{"secretName": member.tls["hub"],
                                                "hosts": hub_hosts}]}},
        }
    _ban_lists(fed, member, data, defaults, sources, src)
    sources.update(_member_sources(member, src))
    sources[("federation", "name")] = src("federation", "name")
    return Layer("generated", f"generated from {FEDERATION_FILE}", data, sources=sources)


def _ban_lists(fed: Federation, member: Member, data: dict, defaults: dict | None,
               sources: dict, src) -> None:
    """The federation's ban lists plus the member's additions (each entry once): banned
    CIDRs add to the chart's own (cloud metadata, private ranges); banned specs go to each
    BinderHub repo provider's `banned_specs`. Nothing is generated without ban list data."""
    common, own = fed.abuse, member.abuse
    if "banned_cidrs" in common or "banned_cidrs" in own:
        base = lookup(defaults or {}, ("networkPolicy", "egress", "bannedCIDRs"))
        merged = _unique([*(base if isinstance(base, list) else []),
                          *(common.get("banned_cidrs") or []), *(own.get("banned_cidrs") or [])])
        data["networkPolicy"] = {"egress": {"bannedCIDRs": merged}}
        where = ("members", member.name, "abuse", "banned_cidrs") \
            if "banned_cidrs" in own else ("abuse", "banned_cidrs")
        sources[("networkPolicy", "egress", "bannedCIDRs")] = src(*where)
    if not member.runs_binderhub:
        return
    providers = {**(common.get("banned_specs") or {}), **(own.get("banned_specs") or {})}
    for provider in providers:
        mine = (own.get("banned_specs") or {}).get(provider) or []
        specs = _unique([*((common.get("banned_specs") or {}).get(provider) or []), *mine])
        data["binderhub"].setdefault("config", {})[provider] = {"banned_specs": specs}
        where = ("members", member.name, "abuse", "banned_specs", provider) if mine \
            else ("abuse", "banned_specs", provider)
        sources[("binderhub", "config", provider, "banned_specs")] = src(*where)


def _unique(items: list) -> list:
    return list(dict.fromkeys(items))


def _without_sops(doc: Document) -> Document:
    return Document(doc.label, {k: v for k, v in (doc.data or {}).items() if k != "sops"},
                    doc.lines)


def _redirector_hosts(fed: Federation, member: Member, sources: dict, src) -> dict:
    """The redirector's hosts. Staging's redirector routes to staging alone (so smoke tests
    exercise it), staging its own prime; production redirectors route across every member
    in the federation, the prime being the one config/federation.yaml names."""
    routed = [member] if member.role == "staging" else [
        m for m in fed.members.values() if m.in_federation]
    prime = member.name if member.role == "staging" else fed.prime
    hosts = {}
    for other in routed:
        weight = (other.weight if other.active else 0) if other.in_federation else 100
        hosts[other.name] = {
            "url": other.url,
            "weight": weight,
            "health": f"{other.url}/health",
            "versions": f"{other.url}/versions",
        }
        base = ("federationRedirect", "hosts", other.name)
        if other.name == prime:
            hosts[other.name]["prime"] = True
            sources[base + ("prime",)] = src("members", member.name) \
                if member.role == "staging" else src("federation", "prime")
        sources[base] = src("members", other.name, "federation")
        sources[base + ("weight",)] = src("members", other.name, "federation", "weight")
        for key in ("url", "health", "versions"):
            sources[base + (key,)] = src("members", other.name, "domains", "binder")
    return hosts


def _member_sources(member: Member, src) -> dict[KeyPath, str]:
    """Where in config/federation.yaml each generated per-member value comes from."""
    name = member.name
    sources: dict[KeyPath, str] = {
        ("federation", "member"): src("members", name),
        ("federation", "role"): src("members", name, "role"),
        ("binderhubEnabled",): src("members", name, "runs"),
        ("federationRedirect", "enabled"): src("members", name, "runs"),
        ("federationRedirect", "tls", "secretName"): src("members", name, "tls", "federation"),
        ("static", "enabled"): src("members", name, "domains", "static"),
        ("static", "tls", "secretName"): src("members", name, "tls", "static"),
        ("federationRedirect", "host"): src("members", name, "domains", "federation"),
        ("federationRedirect", "hosts"): src("members"),
        ("static", "host"): src("members", name, "domains", "static"),
        ("binderhub", "config", "BinderHub", "hub_url"): src("members", name, "domains", "hub"),
    }
    for kind, ingress in (("binder", ("binderhub", "ingress")),
                          ("hub", ("binderhub", "jupyterhub", "ingress"))):
        sources[ingress + ("hosts",)] = src("members", name, "domains", f"{kind}_aliases") \
            if getattr(member.domains, f"{kind}_aliases") else \
            src("members", name, "domains", kind)
        sources[ingress + ("tls",)] = src("members", name, "tls", kind)
    return sources


def merge(base: dict, override: dict) -> dict:
    """Helm's merge of two value maps: maps merge, anything else (null too) replaces."""
    out = dict(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def prune_nulls(data: Any) -> Any:
    """Drop keys whose value is null, as Helm does when it applies user values to defaults."""
    if isinstance(data, dict):
        return {k: prune_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [prune_nulls(v) for v in data]
    return data


def _resolve_nulls(user: Any, defaults: Any) -> Any:
    """Keep a null only where `defaults` has the key (Helm then drops the default)."""
    if not isinstance(user, dict):
        return user
    out = {}
    for key, value in user.items():
        has_default = isinstance(defaults, dict) and defaults.get(key) is not None
        if value is None:
            if has_default:
                out[key] = None
        else:
            out[key] = _resolve_nulls(value, defaults.get(key) if isinstance(defaults, dict)
                                      else None)
    return out


def lookup(data: Any, path: KeyPath) -> Any:
    """The value at `path`, or DELETED when any part is missing."""
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        elif isinstance(node, list) and isinstance(part, str) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return DELETED
    return node


def scalar_on(data: Any, path: KeyPath) -> tuple[KeyPath, Any] | None:
    """The first ancestor of `path` in `data` that holds a scalar (so nothing can be inside
    it) and its value, or None when `path` runs through maps and lists only."""
    node = data
    for depth, part in enumerate(path):
        if isinstance(node, dict):
            if part not in node:
                return None
        elif isinstance(node, list):
            index = int(part) if isinstance(part, str) and part.isdigit() else part
            if not isinstance(index, int) or not -len(node) <= index < len(node):
                return None
            part = index
        else:
            return tuple(path[:depth]), node
        node = node[part]
    return None


def kind_of(value: Any) -> str:
    """What a value is, in words: 'a string', 'a number', 'a boolean', 'a list', ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return "null" if value is None else f"a {type(value).__name__}"


def describe(value: Any, secret: bool) -> str:
    """One-line rendering of a value for explain output."""
    if value is DELETED:
        return "(not set)"
    if secret and value is not None:
        return MASK
    if value is None:
        return "null (deletes the key)"
    if isinstance(value, (dict, list)):
        import json
        text = json.dumps(value, default=str)
        return text if len(text) <= 100 else text[:97] + "..."
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(
        value, bool) else str(value)


def _file_layer(name: str, doc: Document, secret: bool = False) -> Layer:
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a map of Helm values, got {type(data).__name__}",
                          file=doc.label, line=1)
    return Layer(name, doc.label, data, lines=doc.lines, secret=secret)


def _leaves(data: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """(path, value) of every non-map value and every empty map; lists are leaves."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, prefix + (key,))
    elif prefix:
        yield prefix, data


def _scalars(data: Any) -> Iterator[tuple[KeyPath, Any]]:
    """Every scalar inside `data`, descending into lists too."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from ((p, v) for p, v in _scalars(value))
    elif isinstance(data, list):
        for value in data:
            yield from _scalars(value)
    else:
        yield (), data


def _related(leaf: KeyPath, query: KeyPath, value: Any) -> bool:
    """Does setting `leaf` affect `query`? Equal, inside it, or an ancestor that replaces it."""
    if leaf == query or leaf[:len(query)] == query:
        return True
    return query[:len(leaf)] == leaf and not isinstance(value, dict)


__all__ = ["MemberValues", "Layer", "Setting", "build", "merge", "prune_nulls", "lookup",
           "scalar_on", "kind_of", "describe", "DELETED", "format_path"]
