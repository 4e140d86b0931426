"""The federation as data: config/federation.yaml, schema-checked, as typed members."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from deployer.errors import ConfigError
from deployer.model.yamlio import Document, format_path, load_file

SCHEMA_PATH = Path(__file__).with_name("federation.schema.json")
FEDERATION_FILE = "config/federation.yaml"
ROLES = ("staging", "production")


@dataclass(frozen=True)
class Cluster:
    """How to reach a member's cluster; fields used depend on the provider."""

    provider: str
    name: str | None = None
    project: str | None = None
    zone: str | None = None
    region: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    resource_group: str | None = None   # aks
    subscription: str | None = None     # aks
    credentials: str | None = None      # gke/aks: a sops file with a service account/principal


@dataclass(frozen=True)
class Domains:
    """A member's public host names."""

    binder: str
    hub: str
    static: str
    federation: str | None = None


@dataclass(frozen=True)
class Member:
    """One BinderHub of the federation."""

    name: str
    role: str
    cluster: Cluster
    kubernetes_version: str
    release: str
    namespace: str
    domains: Domains
    in_federation: bool
    active: bool
    weight: int
    smoke_repos: tuple[str, ...] = ()
    smoke_timeout: int = 600
    smoke_urls: dict = field(default_factory=dict)
    smoke_code: str = "import sys; print(6 * 7, sys.version_info[0])"
    smoke_expect: str = "42 3"
    smoke_build: dict | None = None
    description: str = ""

    @property
    def url(self) -> str:
        """The member's public BinderHub URL."""
        return f"https://{self.domains.binder}"


@dataclass(frozen=True)
class Federation:
    """All members, plus the parsed file for line lookups."""

    name: str
    chart: str
    members: dict[str, Member]
    document: Document = field(repr=False, compare=False)
    records: dict = field(default_factory=dict, compare=False)   # `records:` (schema-checked)

    def member(self, name: str) -> Member:
        """The member called `name`; an unknown name is a ConfigError."""
        try:
            return self.members[name]
        except KeyError:
            known = ", ".join(self.members)
            raise ConfigError(f"unknown member {name!r} (members: {known})",
                              file=self.document.label, key="members") from None

    def select(self, names: Iterable[str] = (), *, all_members: bool = False) -> list[Member]:
        """Members by name or role ('staging', 'production'); all of them with all_members."""
        names = list(names)
        if all_members or not names:
            if names:
                raise ConfigError("give member names or --all, not both")
            if not all_members:
                raise ConfigError("no member given", hint="name members, a role, or pass --all")
            return list(self.members.values())
        chosen: dict[str, Member] = {}
        if not any(part.strip() for name in names for part in name.split(",")):
            raise ConfigError(f"no member given ({' '.join(map(repr, names))})",
                              hint="name members, a role, or pass --all")
        for name in names:
            for part in name.split(","):
                part = part.strip()
                if not part:
                    continue
                if part in ROLES and part not in self.members:
                    chosen.update({m.name: m for m in self.members.values() if m.role == part})
                else:
                    chosen[part] = self.member(part)
        return list(chosen.values())

    def line_of(self, *path: str | int) -> int | None:
        """Line in config/federation.yaml where a key path is set."""
        return self.document.line_of(tuple(path))


def load(root: Path) -> Federation:
    """Read, schema-check and type config/federation.yaml under `root`."""
    doc = load_file(root / FEDERATION_FILE, FEDERATION_FILE)
    check_schema(doc, _schema())
    data = doc.data
    members = {name: _member(name, entry) for name, entry in data["members"].items()}
    fed = data["federation"]
    return Federation(name=fed["name"], chart=fed.get("chart", "mybinder"), members=members,
                      document=doc, records=dict(data.get("records") or {}))


def check_schema(doc: Document, schema: dict) -> None:
    """Validate a document; raise one ConfigError for the first problem (by line)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = [_describe(doc, err) for err in validator.iter_errors(doc.data)]
    if not errors:
        return
    # An unknown key usually explains a "missing" one (a typo), so it goes first.
    errors.sort(key=lambda e: (not e.message.startswith("unknown key"), e.line or 0))
    first = errors[0]
    if len(errors) > 1:
        first.message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    raise first


@lru_cache(maxsize=None)
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _member(name: str, entry: dict) -> Member:
    cluster = Cluster(**entry["cluster"])
    fed = entry.get("federation")
    smoke = entry.get("smoke", {})
    return Member(
        name=name,
        role=entry["role"],
        cluster=cluster,
        kubernetes_version=entry["kubernetes_version"],
        release=entry["release"]["name"],
        namespace=entry["release"]["namespace"],
        domains=Domains(**entry["domains"]),
        in_federation=fed is not None,
        active=bool(fed and fed.get("active", True)),
        weight=fed["weight"] if fed else 0,
        smoke_repos=tuple(smoke.get("repos", ())),
        smoke_timeout=smoke.get("timeout_seconds", 600),
        smoke_urls=dict(smoke.get("urls", {})),
        smoke_code=smoke.get("code", Member.smoke_code),
        smoke_expect=smoke.get("expect", Member.smoke_expect),
        smoke_build=smoke.get("build"),
        description=entry.get("description", ""),
    )


def _describe(doc: Document, err) -> ConfigError:
    """Turn a jsonschema error into a ConfigError naming file, line and key path."""
    path = tuple(err.absolute_path)
    inst = err.instance
    kind = err.validator
    schema = err.schema if isinstance(err.schema, dict) else {}
    what = schema.get("description")
    if "propertyNames" in err.relative_schema_path:
        path = path + (inst,)
        message = f"invalid name {inst!r}: expected {what or err.message}"
    elif kind == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(schema.get("properties", {}))
        unknown = [k for k in inst if k not in schema.get("properties", {})]
        path = path + (unknown[0],)
        message = "unknown key" + (f" (expected one of: {', '.join(allowed)})" if allowed else "")
    elif kind == "required":
        missing = [k for k in err.validator_value if k not in inst]
        message = f"missing required key {missing[0]!r}"
    elif kind == "enum":
        options = ", ".join(str(v) for v in err.validator_value)
        message = f"expected one of: {options}; got {inst!r}"
    elif kind == "type":
        message = f"expected {err.validator_value}, got {_type_name(inst)} {inst!r}"
    elif kind == "pattern":
        message = f"expected {what or 'a value matching ' + err.validator_value}, got {inst!r}"
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                "exclusiveMaximum": "<"}[kind]
        message = f"expected a number {sign} {err.validator_value}, got {inst!r}"
    elif kind in ("minProperties", "minItems", "minLength"):
        message = f"must not be empty (got {inst!r})"
    else:
        message = err.message
    return ConfigError(message, file=doc.label, line=doc.line_of(path), key=format_path(path))


def _type_name(value) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
