"""The federation as data: config/federation.yaml, schema-checked, as typed members."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from deployer.errors import ConfigError
from deployer.model import fastschema
from deployer.model.yamlio import Document, format_path, load_file

SCHEMA_PATH = Path(__file__).with_name("federation.schema.json")
FEDERATION_FILE = "config/federation.yaml"
ROLES = ("staging", "production")
RUNS = ("binderhub", "redirector")
# Secret names of each domain's certificate when config/federation.yaml names none (the names
# releases have always used: renaming one makes cert-manager issue a new certificate).
DEFAULT_TLS = {"binder": "binder-tls", "hub": "hub-tls", "static": "static-tls",
               "federation": "federation-redirect-tls"}


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

    binder: str | None = None
    hub: str | None = None
    static: str | None = None
    federation: str | None = None
    binder_aliases: tuple[str, ...] = ()
    hub_aliases: tuple[str, ...] = ()

    def hosts(self) -> dict[tuple, str]:
        """Every host name by its key path under `domains:`: ("binder",) ... for a domain,
        ("binder_aliases", i) for an alias."""
        found: dict[tuple, str] = {
            (k,): v for k, v in (("binder", self.binder), ("hub", self.hub),
                                 ("static", self.static), ("federation", self.federation))
            if v}
        for kind in ("binder", "hub"):
            for i, alias in enumerate(getattr(self, f"{kind}_aliases")):
                found[(f"{kind}_aliases", i)] = alias
        return found


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
    # `preinstalled:` what the cluster runs besides the chart (IngressClasses, CRD API versions)
    preinstalled_ingress_classes: tuple[str, ...] = ()
    preinstalled_api_versions: tuple[str, ...] = ()
    runs: tuple[str, ...] = ("binderhub",)
    tls: dict = field(default_factory=lambda: dict(DEFAULT_TLS))  # domain kind -> Secret name
    abuse: dict = field(default_factory=dict)       # this member's additions to the ban lists

    @property
    def runs_binderhub(self) -> bool:
        return "binderhub" in self.runs

    @property
    def runs_redirector(self) -> bool:
        return "redirector" in self.runs

    @property
    def served_tls_kinds(self) -> tuple[str, ...]:
        """The domain kinds whose certificate the member serves."""
        return tuple((["binder", "hub"] if self.runs_binderhub else [])
                     + (["static"] if self.domains.static else [])
                     + (["federation"] if self.runs_redirector else []))

    def tls_secrets(self) -> dict[str, str]:
        """Domain kind -> the Secret holding its certificate, for the kinds the member serves."""
        return {kind: self.tls[kind] for kind in self.served_tls_kinds}

    @property
    def url(self) -> str:
        """The member's public URL: its BinderHub, or the redirector of a member that runs
        only the redirector."""
        return f"https://{self.domains.binder or self.domains.federation}"


@dataclass(frozen=True)
class Prerequisite:
    """A cluster-level release some members need before the chart (e.g. cert-manager, whose
    CRDs the chart's ClusterIssuer needs): a pinned chart from its own repository, installed
    as its own helm release. Its values: config/<name>/common.yaml, then
    config/<name>/<member>.yaml (both optional)."""

    name: str
    chart: str
    repository: str
    version: str
    namespace: str
    release: str
    members: tuple[str, ...] | None = None    # None: every member

    def values_files(self, member: "Member") -> tuple[str, str]:
        """The values files layered for `member`, first to last (relative to the root)."""
        return (f"config/{self.name}/common.yaml", f"config/{self.name}/{member.name}.yaml")


@dataclass(frozen=True)
class Federation:
    """All members, plus the parsed file for line lookups."""

    name: str
    chart: str
    members: dict[str, Member]
    document: Document = field(repr=False, compare=False)
    records: dict = field(default_factory=dict, compare=False)   # `records:` (schema-checked)
    prerequisites: dict[str, Prerequisite] = field(default_factory=dict, compare=False)

    def prerequisites_of(self, member: Member) -> list[Prerequisite]:
        """The prerequisite releases `member` gets, in the order they are declared."""
        return [p for p in self.prerequisites.values()
                if p.members is None or member.name in p.members]
    prime: str | None = None      # the redirector's prime member (`federation.prime`)
    abuse: dict = field(default_factory=dict, compare=False)     # the common ban lists

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


def load(root: Path, parse_cache: Path | None = None) -> Federation:
    """Read, schema-check and type config/federation.yaml under `root` (`parse_cache`: see
    yamlio.load_file)."""
    return from_document(load_file(root / FEDERATION_FILE, FEDERATION_FILE, cache=parse_cache))


def from_document(doc: Document) -> Federation:
    """Schema-check and type a parsed config/federation.yaml (from a file, or from a commit)."""
    check_schema(doc, SCHEMA_PATH)
    data = doc.data
    members = {name: _member(name, entry) for name, entry in data["members"].items()}
    fed = data["federation"]
    federation = Federation(name=fed["name"], chart=fed.get("chart", "mybinder"),
                            members=members, document=doc,
                            records=dict(data.get("records") or {}),
                            prime=_prime(fed.get("prime")),
                            abuse=dict(data.get("abuse") or {}),
                            prerequisites=_prerequisites(doc, members))
    check_data(federation)
    return federation


# Names a member may not take: config/<name>.yaml and secrets/<name>.yaml would be
# one of the shared files (secrets/common.yaml would be both its own secrets and every
# member's shared layer; config/federation.yaml would be used as Helm values).
RESERVED_NAMES = ("common", "dependencies", "federation")


def check_data(fed: Federation) -> None:
    """Every problem of the federation data the schema cannot see, in one ConfigError: the
    first (by line) as its message, the others listed after it."""
    problems = check_names(fed) + check_releases(fed) + check_roles(fed) + check_tls(fed) + \
        check_abuse(fed) + check_prerequisites(fed)
    if problems:
        raise combined(problems)


def combined(problems: list[ConfigError]) -> ConfigError:
    """One ConfigError for several: the first by line, then "(and N more: ...)" listing the
    others as file:line: key: message."""
    problems = sorted(problems, key=lambda e: e.line or 0)
    first = problems[0]
    if len(problems) > 1:
        # (a hint the first one ends with is not repeated for the others)
        rest = "; ".join(str(e) if e.hint != first.hint else
                         str(ConfigError(e.message, file=e.file, line=e.line, key=e.key))
                         for e in problems[1:])
        first.message += f" (and {len(problems) - 1} more: {rest})"
    return first


def check_prerequisites(fed: Federation) -> list[ConfigError]:
    """Prerequisite releases given to members that do not exist."""
    problems = []
    for name, p in fed.prerequisites.items():
        for i, member in enumerate(p.members or ()):
            if member not in fed.members:
                path = ("prerequisites", name, "members", i)
                problems.append(ConfigError(
                    f"unknown member {member!r} (members: {', '.join(fed.members)})",
                    file=fed.document.label, line=fed.line_of(*path), key=format_path(path)))
    return problems


def check_names(fed: Federation) -> list[ConfigError]:
    """Member names that would make a member's files one of the shared ones."""
    doc = fed.document
    problems = []
    for name in fed.members:
        path = ("members", name)
        if name in RESERVED_NAMES:
            problems.append(ConfigError(
                f"member name {name!r} is reserved: config/{name}.yaml and secrets/{name}.yaml "
                f"are shared files, not a member's (reserved: {', '.join(RESERVED_NAMES)})",
                file=doc.label, line=fed.line_of(*path), key=format_path(path),
                hint="rename the member"))
        elif name in fed.prerequisites:
            problems.append(ConfigError(
                f"member name {name!r} is also a prerequisite's name (config/{name}/, "
                f"--component {name}): give the member another name",
                file=doc.label, line=fed.line_of(*path), key=format_path(path)))
    return problems


def check_releases(fed: Federation) -> list[ConfigError]:
    """Two members that name the same cluster (the same provider settings, or the same
    kubeconfig file and context) may not deploy into the same namespace: with one release
    name each deploy would upgrade the other's release with its own values; with two, the
    chart's objects of fixed names (Deployment/static...) collide, and the deploy lock and
    the record of the verified revision, one per namespace, would be shared."""
    doc = fed.document
    problems = []
    seen: dict[tuple, Member] = {}
    for m in fed.members.values():
        cluster = dataclasses.replace(m.cluster, credentials=None)
        other = seen.setdefault((cluster, m.namespace), m)
        if other is not m:
            path = ("members", m.name, "release")
            what = (f"release {m.release!r}" if m.release == other.release else
                    f"its release {m.release!r} (and {other.name}'s {other.release!r})")
            problems.append(ConfigError(
                f"member {m.name!r} deploys {what} into namespace {m.namespace!r} of the same "
                f"cluster as member {other.name!r}: one namespace holds one member (the "
                "chart's objects, the deploy lock and the verified-revision record are per "
                "namespace)", file=doc.label, line=fed.line_of(*path), key=format_path(path),
                hint="give one of them another namespace (release: {namespace: ...})"))
    return problems


def check_tls(fed: Federation) -> list[ConfigError]:
    """`tls:` names only certificates the member serves, each a distinct Secret:
    cert-manager makes one Certificate per secretName and refuses a second Ingress that
    names the same one, so one host would never get a certificate."""
    doc = fed.document
    problems = []
    for m in fed.members.values():
        own = (doc.data["members"][m.name] or {}).get("tls") or {}
        served = m.served_tls_kinds
        for kind in own:
            if kind not in served:
                path = ("members", m.name, "tls", kind)
                why = ("it runs no BinderHub" if kind in ("binder", "hub") else
                       "it has no domains.static" if kind == "static" else
                       "it does not run the redirector")
                problems.append(ConfigError(
                    f"member {m.name!r} serves no {kind} certificate ({why}): remove tls.{kind}",
                    file=doc.label, line=fed.line_of(*path), key=format_path(path)))
        seen: dict[str, str] = {}
        for kind, secret in m.tls_secrets().items():
            if secret in seen:
                # point at the custom name (a default name has no line of its own)
                other = seen[secret]
                at = kind if kind in own else other if other in own else kind
                path = ("members", m.name, "tls", at) if at in own else ("members", m.name, "tls")
                problems.append(ConfigError(
                    f"{secret!r} is the TLS secret of both {other} and {kind}: cert-manager "
                    "issues one certificate per secret, so one host would get none",
                    file=doc.label, line=fed.line_of(*path), key=format_path(path),
                    hint="give each a distinct name (defaults: "
                         + ", ".join(f"{k}: {v}" for k, v in DEFAULT_TLS.items()) + ")"))
            else:
                seen[secret] = kind
    return problems


# BinderHub's own repo providers (binderhub/repoproviders.py); a provider class of one's own
# may be named too
BINDERHUB_PROVIDERS = ("GitHubRepoProvider", "GistRepoProvider", "GitRepoProvider",
                       "GitLabRepoProvider", "ZenodoProvider", "FigshareProvider",
                       "HydroshareProvider", "DataverseProvider", "CKANProvider")


def check_abuse(fed: Federation) -> list[ConfigError]:
    """Ban list entries: IPv4 networks (the user egress policy excepts them from 0.0.0.0/0)
    and regular expressions Python compiles (BinderHub matches specs with `re`)."""
    import ipaddress
    import re

    problems = []
    sections = [(("abuse",), fed.abuse)] + [
        (("members", m.name, "abuse"), m.abuse) for m in fed.members.values()]
    for base, abuse in sections:
        for i, cidr in enumerate(abuse.get("banned_cidrs") or ()):
            path = base + ("banned_cidrs", i)
            try:
                network = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                problems.append(ConfigError(
                    f"{cidr!r} is not a network: {exc}", file=fed.document.label,
                    line=fed.line_of(*path), key=format_path(path),
                    hint="expected an IPv4 network like 192.0.2.0/24"))
                continue
            if network.version != 4:
                problems.append(ConfigError(
                    f"{cidr!r} is an IPv6 network: the egress policy allows "
                    "0.0.0.0/0 except these, so only IPv4 networks fit",
                    file=fed.document.label, line=fed.line_of(*path), key=format_path(path)))
        for provider, specs in (abuse.get("banned_specs") or {}).items():
            known = {p.lower(): p for p in BINDERHUB_PROVIDERS}.get(provider.lower())
            if known and known != provider:       # BinderHub would never read this list
                path = base + ("banned_specs", provider)
                problems.append(ConfigError(
                    f"{provider} is not a BinderHub repo provider: did you mean {known}? "
                    "(class names are case-sensitive; this ban list would be ignored)",
                    file=fed.document.label, line=fed.line_of(*path), key=format_path(path)))
            for i, spec in enumerate(specs or ()):
                path = base + ("banned_specs", provider, i)
                try:
                    re.compile(spec)
                except re.error as exc:
                    problems.append(ConfigError(
                        f"{spec!r} is not a regular expression: {exc}",
                        file=fed.document.label, line=fed.line_of(*path),
                        key=format_path(path),
                        hint="BinderHub matches it case-insensitively from the "
                             "start of the spec: no inline (?i) needed"))
    return problems


def check_roles(fed: Federation) -> list[ConfigError]:
    """What members run, and the redirector's prime: every problem found."""
    doc = fed.document
    problems: list[ConfigError] = []

    def fail(message: str, *path, hint: str | None = None) -> None:
        problems.append(ConfigError(message, file=doc.label, line=fed.line_of(*path),
                                    key=format_path(path), hint=hint))

    for m in fed.members.values():
        path = ("members", m.name)
        if not m.runs_binderhub:
            if m.role == "staging":
                fail(f"staging member {m.name!r} must run BinderHub (staging's redirector "
                     "routes to staging itself)", *path, "runs")
            for key in ("binder", "hub", "binder_aliases", "hub_aliases"):
                if getattr(m.domains, key):
                    fail(f"member {m.name!r} runs no BinderHub (runs: {', '.join(m.runs)}): "
                         f"remove domains.{key}", *path, "domains", key)
            if m.in_federation:
                fail(f"member {m.name!r} runs no BinderHub, so the redirector sends it no "
                     "users: remove its federation block", *path, "federation")
            if m.smoke_repos or m.smoke_build:
                fail(f"member {m.name!r} runs no BinderHub: it cannot launch smoke repos",
                     *path, "smoke")
        if m.role == "staging" and m.in_federation:
            fail(f"staging member {m.name!r} takes no federation traffic: the redirector would "
                 "send public users to it; remove its federation block", *path, "federation")
        if m.runs_redirector and not m.domains.federation:
            fail(f"member {m.name!r} runs the redirector: it needs domains.federation",
                 *path, "domains")
        if m.domains.federation and not m.runs_redirector:
            fail(f"domains.federation is set but member {m.name!r} does not run the "
                 "redirector (add redirector to runs)", *path, "domains", "federation")
    problems.extend(_check_prime(fed))
    return problems


def _check_prime(fed: Federation) -> list[ConfigError]:
    """The redirector's prime: at most one problem (each check needs the ones before)."""
    doc = fed.document

    def fail(message: str, *path, hint: str | None = None) -> list[ConfigError]:
        return [ConfigError(message, file=doc.label, line=fed.line_of(*path),
                            key=format_path(path), hint=hint)]

    prime = doc.data["federation"].get("prime")
    needs_prime = [m.name for m in fed.members.values()
                   if m.runs_redirector and m.role != "staging"]
    if prime is None:
        if needs_prime:
            return fail(f"no prime member for the federation redirector (run by "
                        f"{', '.join(needs_prime)})", "federation",
                        hint="set federation.prime to the active member that runs BinderHub "
                             "where users go when the chosen member is down")
        return []
    if isinstance(prime, list):
        if len(prime) != 1:
            return fail(f"exactly one prime member, got {len(prime)}"
                        + (f" ({', '.join(map(str, prime))})" if prime else ""),
                        "federation", "prime")
        prime = prime[0]
    member = fed.members.get(prime)
    if member is None:
        return fail(f"prime member {prime!r} is not a member (members: "
                    f"{', '.join(fed.members)})", "federation", "prime")
    if not member.runs_binderhub:
        return fail(f"prime member {prime!r} runs no BinderHub (runs: {', '.join(member.runs)}): "
                    "the prime must launch the users it is sent", "federation", "prime")
    if member.role == "staging":
        return fail(f"prime member {prime!r} is a staging member: the prime takes public "
                    "traffic", "federation", "prime")
    if not (member.in_federation and member.active):
        return fail(f"prime member {prime!r} is not active in the federation (its federation "
                    "block is missing or says active: false)", "federation", "prime")
    return []


def check_schema(doc: Document, schema_path: Path) -> None:
    """Validate a document against the JSON Schema file `schema_path`; raise one ConfigError
    for the first problem (by line). What the schema's compiled fast check passes needs no
    more (see model/fastschema.py)."""
    schema, fast = schema_file(schema_path)
    if fastschema.passes(fast, doc.data):
        return
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    found = [(_describe(doc, err), _conditional(err)) for err in validator.iter_errors(doc.data)]
    if not found:
        return
    # An unknown key usually explains a "missing" one (a typo), so it goes first; a
    # requirement that holds only if another key has some value (if/then/else) comes after
    # the problems of that key itself (`runs: []` is the problem, not a domain it implies).
    found.sort(key=lambda f: (not f[0].message.startswith("unknown key"), f[1], f[0].line or 0))
    errors = [e for e, _ in found]
    first = errors[0]
    if len(errors) > 1:          # the others listed too (at most 5), so one run shows them
        listed = "; ".join(str(e) for e in errors[1:6])
        more = f"; and {len(errors) - 6} more" if len(errors) > 6 else ""
        first.message += f" (and {len(errors) - 1} more: {listed}{more})"
    raise first


def _conditional(err) -> bool:
    """Whether a schema error comes from a then/else branch (depends on another key)."""
    return any(part in ("then", "else") for part in err.absolute_schema_path)


@lru_cache(maxsize=None)
def schema_file(path: Path) -> tuple[dict, Any]:
    """A JSON Schema file of the deployer's and its compiled fast check (None where there is
    none), read once per process."""
    schema = json.loads(Path(path).read_text())
    return schema, fastschema.validator_for(schema)


def _prime(value) -> str | None:
    """`federation.prime`: a name, or a list of exactly one (more is check_roles' error)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, str) else None


def _prerequisites(doc: Document, members: dict[str, Member]) -> dict[str, Prerequisite]:
    """`prerequisites:` (members they name that do not exist: check_prerequisites)."""
    found = {}
    for name, entry in (doc.data.get("prerequisites") or {}).items():
        chosen = entry.get("members")
        found[name] = Prerequisite(name, entry["chart"], entry["repository"].rstrip("/"),
                                   str(entry["version"]), entry["namespace"],
                                   entry.get("release", name),
                                   tuple(chosen) if chosen is not None else None)
    return found


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
        domains=Domains(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in entry["domains"].items()}),
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
        preinstalled_ingress_classes=tuple(
            (entry.get("preinstalled") or {}).get("ingress_classes", ())),
        preinstalled_api_versions=tuple(
            (entry.get("preinstalled") or {}).get("api_versions", ())),
        runs=tuple(entry.get("runs") or (
            ("binderhub", "redirector") if entry["domains"].get("federation") else ("binderhub",))),
        tls={**DEFAULT_TLS, **(entry.get("tls") or {})},
        abuse=dict(entry.get("abuse") or {}),
    )


def _describe(doc: Document, err) -> ConfigError:
    """Turn a jsonschema error into a ConfigError naming file, line and key path."""
    path = tuple(err.absolute_path)
    inst = err.instance
    kind = err.validator
    hint = None
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
    elif kind == "type" and inst is None and not path:
        message = f"the file is empty (expected {err.validator_value} of settings)"
    elif kind == "type":
        message = f"expected {err.validator_value}, got {_type_name(inst)} {inst!r}"
        if err.validator_value == "string" and isinstance(inst, (int, float)) \
                and not isinstance(inst, bool):
            hint = "quote it: YAML reads 1.30 as the number 1.3"
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
    return ConfigError(message, file=doc.label, line=doc.line_of(path), key=format_path(path),
                       hint=hint)


def _type_name(value) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
