"""Rendered manifests: parse helm output, validate each object against the member's
Kubernetes version (kubernetes-validate's strict schemas: unknown fields are errors), and
redact them for display."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from deployer.errors import ConfigError, ToolError
from deployer.model import diskcache, fastschema
from deployer.model.memo import shared
from deployer.model.redact import MASK, Redactor
from deployer.model.yamlio import Unsure, data_from_events, simple_number

_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


@dataclass
class K8sObject:
    """One rendered object and the template it came from."""

    body: dict
    source: str = ""
    # its YAML has tags that make tuples (!!omap, !!pairs): python-jsonschema alone judges it
    tagged: bool = field(default=False, compare=False)
    # key paths written twice in one map (YAML loaders, helm's too, keep the last silently)
    duplicates: tuple[tuple, ...] = field(default=(), compare=False)

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", "?"))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", "?"))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", "?"))

    @property
    def ref(self) -> str:
        """Kind/name, as operators write it."""
        return f"{self.kind}/{self.name}"


@dataclass
class Problem:
    """A finding on a rendered object: what the member's Kubernetes would reject (or, among
    Checked.warnings, what it takes though the template surely did not mean it)."""

    obj: str
    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        path = f" {self.path}:" if self.path else ""
        return f"{self.obj}{where}:{path} {self.message}"


@dataclass
class Checked:
    """Result of validating a set of objects."""

    problems: list[Problem] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)  # custom resources: no built-in schema
    # what the API server takes but the template surely did not mean (keys written twice)
    warnings: list[Problem] = field(default_factory=list)


def parse(text: str) -> list[K8sObject]:
    """Split `helm template` output into objects (empty documents dropped). Each document is
    read as PyYAML's safe loader reads it (YAML 1.1, as the API server's YAML library): from
    libyaml's events where that is sure to give the same (_quick_body), by the loader itself
    otherwise."""
    import yaml

    loader_class = _tuple_marking_loader()
    objects = []
    for doc in re.split(r"^---\s*$", text, flags=re.MULTILINE):
        source = _SOURCE.search(doc)
        body, tagged = _quick_body(doc), False
        if body is _UNSURE:
            loader = loader_class(doc)
            try:
                body = loader.get_single_data()
            except yaml.YAMLError as exc:
                label = source.group(1) if source else "rendered manifests"
                raise ConfigError(f"template rendered invalid YAML: {exc}",
                                  file=label) from None
            except ValueError as exc:          # `0x_`, `2001-13-45`: YAML 1.1 says a number
                label = source.group(1) if source else "rendered manifests"
                raise ConfigError(f"template rendered invalid YAML: a plain value that looks "
                                  f"like a number or a date and is not one ({exc})", file=label,
                                  hint="quote the value in the template") from None
            finally:
                loader.dispose()
            tagged = loader.made_tuples
            duplicates = duplicate_keys(doc)
        else:
            duplicates = ()
        if isinstance(body, dict) and body:
            objects.append(K8sObject(body, source.group(1) if source else "", tagged=tagged,
                                     duplicates=duplicates))
    return objects


def duplicate_keys(doc: str) -> tuple[tuple, ...]:
    """Key paths a YAML document writes twice in one map (a key and the map it is in: the
    second value silently replaces the first in every loader, helm's included). Keys are
    compared as PyYAML's safe loader reads them; merge keys (`<<`) are not duplicates. Only
    documents that the quick reader left to the loader are asked (it refuses duplicates)."""
    import yaml
    from yaml.constructor import SafeConstructor

    try:
        root = yaml.compose(doc, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, ValueError):
        return ()
    construct = SafeConstructor()
    found = []
    budget = 100_000          # aliases make a small document a huge tree
    stack: list = [(root, ())]
    visited: set[int] = set()
    while stack and budget > 0:
        node, path = stack.pop()
        budget -= 1
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = [(item, path + (i,)) for i, item in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = construct.construct_object(key_node, deep=True)
                    if key in seen:
                        found.append(path + (key,))
                    seen.add(key)
                except Exception:  # noqa: BLE001 - an unhashable key: the loader reported it
                    continue
                children.append((value_node, path + (key,)))
        stack.extend(reversed(children))       # in document order: an alias's first path
    return tuple(dict.fromkeys(found))


_UNSURE = object()


def _quick_body(doc: str) -> Any:
    """One document built from libyaml's events (twice as fast as PyYAML's constructors),
    or _UNSURE where the loader must read it: tags, aliases, merge or duplicate keys, keys
    that are not strings, plain scalars other than strings, nulls, booleans and simple
    numbers (yamlio.data_from_events), and every error."""
    import yaml

    parser = getattr(yaml, "CSafeLoader", None)
    if parser is None:
        return _UNSURE
    loader = parser(doc)
    try:
        return data_from_events(loader, _yaml11_scalar())
    except (Unsure, yaml.YAMLError, ValueError):
        return _UNSURE
    finally:
        loader.dispose()


@lru_cache(maxsize=1)
def _yaml11_scalar():
    """How PyYAML's safe loader reads a plain scalar (its own resolver's patterns say which
    type), where that is a string, null, a boolean or a simple number; Unsure otherwise."""
    from yaml.resolver import Resolver

    resolvers = Resolver.yaml_implicit_resolvers
    bools = {"yes": True, "no": False, "true": True, "false": False, "on": True,
             "off": False}

    def scalar(value: str) -> Any:
        for tag, pattern in resolvers.get(value[:1], ()):
            if pattern.match(value):
                break
        else:
            return value                       # no pattern: a string
        kind = tag.rpartition(":")[2]
        if kind == "null":
            return None
        if kind == "bool":
            return bools[value.lower()]
        number = simple_number(value) if kind in ("int", "float") else None
        if number is not None:
            return number
        raise Unsure            # 0755, 0x1F, 1_000, 1:30, .inf, timestamps, <<, =
    return scalar


@lru_cache(maxsize=1)
def _tuple_marking_loader():
    """PyYAML's safe loader (the C one where there is one) that notes when a document made
    tuples (!!omap, !!pairs, however the tag is spelled): see K8sObject.tagged."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        made_tuples = False

    def marking(construct):
        def constructor(loader, node):
            loader.made_tuples = True
            yield from construct(loader, node)
        return constructor

    for tag, construct in (("tag:yaml.org,2002:omap", yaml.SafeLoader.construct_yaml_omap),
                           ("tag:yaml.org,2002:pairs", yaml.SafeLoader.construct_yaml_pairs)):
        Loader.add_constructor(tag, marking(construct))
    return Loader


def validate(objects: Iterable[K8sObject], kube_version: str,
             redactor: Redactor | None = None, cache: Path | None = None) -> Checked:
    """Check every object against the schemas of `kube_version` (all errors, not the first).
    Values quoted in messages are masked by `redactor` before they are shortened. `cache`
    (a directory): where what was learnt of the schemas is kept for the next run."""
    redactor = redactor or Redactor()
    result = Checked()
    version = _schema_version(kube_version)
    kept = str(cache) if cache is not None else None
    for obj in objects:
        result.warnings.extend(
            Problem(obj.ref, obj.source, _dotted(path), "this key is written twice in one map: "
                    "helm keeps the last value and drops the other without a word")
            for path in obj.duplicates)
        for key in ("apiVersion", "kind"):
            if not obj.body.get(key):
                result.problems.append(Problem(obj.ref, obj.source, key, "missing"))
        if not (obj.body.get("metadata") or {}).get("name"):
            result.problems.append(Problem(obj.ref, obj.source, "metadata.name", "missing"))
        if result.problems and result.problems[-1].obj == obj.ref:
            continue
        bad_name = _name_problem(obj.kind, str(obj.body["metadata"]["name"]))
        if bad_name:
            result.problems.append(Problem(obj.ref, obj.source, "metadata.name", bad_name))
        if _kind_schema(version, obj.kind, obj.api_version) is None:
            if _is_custom(obj.api_version):
                result.custom.append(obj.ref)
            else:
                result.problems.append(Problem(
                    obj.ref, obj.source, "apiVersion",
                    f"{obj.api_version} {obj.kind} is not served by Kubernetes {kube_version}"))
            continue
        if not obj.tagged and fastschema.passes(_fast_validator(version, obj.kind,
                                                                obj.api_version, kept),
                                                obj.body):
            continue
        validator = _validator(version, obj.kind, obj.api_version)
        for err in sorted(validator.iter_errors(obj.body), key=lambda e: list(e.path)):
            result.problems.append(Problem(obj.ref, obj.source, _dotted(err.absolute_path),
                                           _message(err, redactor)))
    return result


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")      # Service names start with a letter
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAMED = {"Namespace"}                                  # DNS-1123 labels
_PATH_NAMED = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}   # any path segment


def _name_problem(kind: str, name: str) -> str | None:
    """What the API server would say of an object name (as helm lint checks it)."""
    if kind == "CertificateSigningRequest":
        return None
    if kind == "Service":
        if len(name) > 63 or not _DNS_1035.match(name):
            return (f"{name!r} is not a valid Service name: at most 63 lower-case letters, "
                    "digits and '-', starting with a letter and ending with a letter or digit")
        return None
    if kind in _PATH_NAMED:
        return None if name not in (".", "..") and "/" not in name and "%" not in name \
            else f"{name!r} is not a valid {kind} name"
    if kind in _LABEL_NAMED:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (f"{name!r} is not a valid {kind} name: at most 63 lower-case letters, "
                    "digits and '-', starting and ending with a letter or digit")
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (f"{name!r} is not a valid name: at most 253 lower-case letters, digits, "
                "'-' and '.', starting and ending with a letter or digit")
    return None


def redacted_text(objects: Iterable[K8sObject], redactor: Redactor) -> str:
    """Objects as YAML, masked by position: every Secret's data and stringData values, and
    every string that holds a known secret (in its decoded form, so YAML's folding and
    escaping cannot let it through). The result is valid YAML."""
    import yaml

    docs = []
    for obj in objects:
        body = redacted_body(obj, redactor)
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
        docs.append(f"---\n# Source: {obj.source}\n{text}")
    return "".join(docs)


def redacted_body(obj: K8sObject, redactor: Redactor) -> dict:
    """A masked copy of one object's body (see redacted_text)."""
    body = obj.body
    if obj.kind == "Secret":
        body = dict(body)
        for key in ("data", "stringData"):
            if isinstance(body.get(key), dict):
                body[key] = {k: MASK for k in body[key]}
    return redactor.tree(body)


def plain_text(objects: Iterable[K8sObject]) -> str:
    """Objects as YAML, unredacted (for --show-secrets)."""
    import yaml

    return "".join(f"---\n# Source: {o.source}\n"
                   + yaml.safe_dump(o.body, sort_keys=False, default_flow_style=False)
                   for o in objects)


@lru_cache(maxsize=1)
def supported_versions() -> list[str]:
    """Kubernetes versions kubernetes-validate has schemas for (read from its package data:
    importing it would import python-jsonschema, which a valid run does not need)."""
    found = set()
    for entry in _schemas_root().iterdir():
        match = re.match(r"^v(\d+\.\d+\.\d+)-", entry.name)
        if match and entry.is_dir():
            found.add(match.group(1))
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


@lru_cache(maxsize=1)
def _schemas_root() -> Path:
    from importlib.util import find_spec

    spec = find_spec("kubernetes_validate")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ToolError("the Python package kubernetes-validate (the Kubernetes schemas) is "
                        "not installed", hint="run scripts/bootstrap")
    root = Path(locations[0]) / "kubernetes-json-schema"
    if not root.is_dir():
        raise ToolError(f"no Kubernetes schemas in {root} (kubernetes-validate is installed "
                        "without its schema files)", hint="run scripts/bootstrap")
    return root


def _schema_file(version: str, name: str) -> dict:
    """One of kubernetes-validate's strict schemas of `version` (FileNotFoundError if none)."""
    with open(_schemas_root() / f"v{version}-local-strict" / name, encoding="utf-8") as handle:
        return json.load(handle)


def served_api_versions(kube_version: str, cache: Path | None = None) -> tuple[str, ...]:
    """The built-in API versions a cluster of `kube_version` serves with default settings, as
    helm's --api-versions takes them: every group/version and group/version/Kind. Read from
    kubernetes-validate's schemas for that version (once per version; with `cache`, a
    directory, kept there for the next run, by the schema file's identity: reading that file
    costs more than the rest of what a render waits for). Alpha and beta versions are left
    out: since Kubernetes 1.24 new beta APIs are off by default, and the older ones that were
    on are gone from the versions it has schemas for."""
    return _served(_schema_version(kube_version), str(cache) if cache is not None else None)


@shared
def _served(version: str, cache: str | None) -> tuple[str, ...]:
    kept = _kept(cache)
    name = _kept_name("served api versions v1", version) if cache is not None else None
    found = kept.get(name)
    if isinstance(found, list) and all(isinstance(item, str) for item in found):
        return tuple(found)
    served: set[str] = set()
    definitions = _definitions_doc(version)
    for schema in definitions.values():
        props = (schema or {}).get("properties") or {}
        if not {"apiVersion", "kind", "metadata"} <= set(props):
            continue
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            group, ver, kind = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")
            if not re.fullmatch(r"v\d+", ver) or not kind or kind.endswith("List"):
                continue
            group_version = f"{group}/{ver}" if group else ver
            served.update((group_version, f"{group_version}/{kind}"))
    result = tuple(sorted(served))
    kept.put(name, list(result))
    return result


def _kept(cache: str | None) -> diskcache.DiskCache:
    """Where what this module learns of kubernetes-validate's schemas is kept."""
    return diskcache.DiskCache(Path(cache) / "kubernetes" if cache is not None else None)


def _kept_name(what: str, version: str) -> str | None:
    """The name of what was learnt of `version`'s schema file: by the file's identity and
    the code that learnt it (this module and fastschema)."""
    identity = diskcache.file_identity(_schemas_root() / f"v{version}-local-strict" /
                                       "_definitions.json")
    code = _code_identity()
    return diskcache.key(what, version, identity, code) if identity and code else None


@lru_cache(maxsize=1)
def _code_identity() -> str | None:
    """This module's code and fastschema's: what learns from the schemas."""
    return diskcache.code_identity(__file__, fastschema.__file__)


def _definitions_doc(version: str) -> dict:
    doc = _definitions_file(version)
    return doc.get("$defs") or doc.get("definitions") or {}


@shared
def _definitions_file(version: str) -> dict:
    """The version's _definitions.json, parsed once (it is several MB)."""
    return _schema_file(version, "_definitions.json")


def _schema_version(kube_version: str) -> str:
    """The newest schema set not newer than the member's version; error if none fits."""
    wanted = tuple(int(x) for x in kube_version.split(".")[:2])
    candidates = [v for v in supported_versions() if tuple(int(x) for x in v.split(".")[:2])
                  <= wanted]
    if not candidates or tuple(int(x) for x in supported_versions()[-1].split(".")[:2]) < wanted:
        raise ConfigError(f"no Kubernetes schemas for version {kube_version} "
                          f"(have {supported_versions()[0]} to {supported_versions()[-1]})",
                          hint="upgrade kubernetes-validate in requirements.txt")
    return candidates[-1]


_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"   # its $id, what kinds $ref


@shared
def _definitions(version: str) -> Any:
    from referencing import Registry, Resource

    return Resource.from_contents(_definitions_file(version)) @ Registry()


@shared
def _kind_schema(version: str, kind: str, api_version: str) -> dict | None:
    """The strict schema of `kind` in `api_version`, or None when the version serves no such
    kind (the strict schemas say apiVersion must match: a known kind under a wrong group is
    missing)."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    name = f"{kind.lower()}-{api}.json"
    if len(name) > 200 or not re.fullmatch(r"[a-z0-9]+-[a-z0-9]+(-[a-z0-9]+)?\.json", name):
        return None                                   # not a name a schema file has
    try:
        schema = _schema_file(version, name)
    except OSError:                                   # none (or none readable) by that name
        return None
    enum = ((schema.get("properties") or {}).get("apiVersion") or {}).get("enum")
    if enum and api_version not in enum:
        return None
    return schema


@shared
def _fast_registry(version: str, cache: str | None = None) -> Any:
    definitions = _definitions_file(version)
    if not _definitions_trusted(version, definitions, cache):
        return None
    return fastschema.registry([(definitions.get("$id") or _DEFINITIONS_URI, definitions)],
                               checked=True)


def _definitions_trusted(version: str, definitions: dict, cache: str | None) -> bool:
    """fastschema.trusted() of the version's definitions (walking all of them takes several
    milliseconds): kept in `cache` once it holds."""
    kept = _kept(cache)
    name = _kept_name("trusted definitions v1", version) if cache is not None else None
    if kept.get(name) is True:
        return True
    verdict = fastschema.trusted(definitions)
    if verdict:
        kept.put(name, True)
    return verdict


@shared
def _fast_validator(version: str, kind: str, api_version: str,
                    cache: str | None = None) -> Any:
    """jsonschema-rs's compiled check of a kind (see model/fastschema.py), or None."""
    return fastschema.validator_for(_kind_schema(version, kind, api_version),
                                    _fast_registry(version, cache))


@shared
def _validator(version: str, kind: str, api_version: str):
    """python-jsonschema's validator of a kind: what says what is wrong with an object."""
    import jsonschema
    from referencing import Resource

    schema = _kind_schema(version, kind, api_version)
    registry = Resource.from_contents(schema) @ _definitions(version)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _is_custom(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." in group and not group.endswith(".k8s.io")


def _dotted(path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def _message(err, redactor: Redactor) -> str:
    if err.validator == "additionalProperties":
        allowed = set((err.schema.get("properties") or {}))
        unknown = [k for k in err.instance if k not in allowed]
        return f"unknown field {', '.join(map(repr, unknown))}"
    if err.validator == "type":
        return f"expected {err.validator_value}, got {clip(redactor.text(json.dumps(err.instance)))}"
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in (err.instance or {})]
        return f"missing required field {', '.join(map(repr, missing))}"
    return clip(redactor.text(err.message), 200)


def clip(text: str, limit: int = 60) -> str:
    """`text` shortened to `limit` characters, marked with "..." when cut."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def crd_kinds(objects: Iterable["K8sObject"]) -> set[tuple[str, str]]:
    """(group/version, kind) of the custom resources the CRD objects among `objects` define."""
    found = set()
    for obj in objects:
        if obj.kind != "CustomResourceDefinition":
            continue
        spec = obj.body.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            if kind and isinstance(version, dict) and version.get("name") and \
                    version.get("served", True):
                found.add((f"{spec.get('group')}/{version['name']}", kind))
    return found
