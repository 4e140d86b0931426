"""Terraform stacks as data: one root per member (terraform/members/<member>/), what the
deployer passes it from config/federation.yaml, what a saved plan would change, which of
those changes need a person's explicit consent, and whether the roots agree with the
federation. Pure: files are read (python-hcl2), nothing is run."""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from deployer.errors import ConfigError
from deployer.model import diskcache
from deployer.model.federation import Federation, Member
from deployer.model.yamlio import decode

MEMBERS_DIR = "terraform/members"
MODULES_DIR = "terraform/modules"
# what the deployer passes every root as -var, from config/federation.yaml
FEDERATION_VARS = ("member_name", "domain", "kubernetes_version", "provider_kind")
# Destroying or replacing a resource needs --allow-destroy NAME, except for these, which
# hold nothing and are made again as they were (a fetch, a role binding, a key, rules)
DISPOSABLE_TYPES = ("ssh_resource", "google_project_iam_member", "hcloud_ssh_key",
                    "hcloud_firewall", "hcloud_server_network")
# providers whose clusters are made by a stack (a member with one of these must have a root)
STACK_REQUIRED = {"gke": "gke-cluster"}


@dataclass(frozen=True)
class Stack:
    """One member's root module."""

    member: str
    root: Path                      # absolute
    backend: str | None             # gcs, s3, local, ...; None: no backend block
    modules: dict[str, str]         # module call name -> source
    variables: tuple[str, ...]
    outputs: tuple[str, ...]

    def module_of_kind(self, kind: str) -> str | None:
        """The name of the module call whose source is modules/<kind>."""
        for name, source in self.modules.items():
            if source.rstrip("/").endswith(f"modules/{kind}"):
                return name
        return None


@dataclass(frozen=True)
class Change:
    """One resource change of a plan."""

    address: str
    type: str
    actions: tuple[str, ...]

    @property
    def kind(self) -> str:
        """create, update, delete, replace, read or no-op."""
        acts = set(self.actions)
        if {"delete", "create"} <= acts:
            return "replace"
        if acts == {"no-op"}:
            return "no-op"
        return self.actions[0] if self.actions else "no-op"


@dataclass
class PlanSummary:
    """What a saved plan would do; `digest` identifies its content for review."""

    member: str
    changes: list[Change] = field(default_factory=list)
    outputs_changed: list[str] = field(default_factory=list)
    digest: str = ""

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0, "replace": 0}
        for change in self.changes:
            if change.kind in out:
                out[change.kind] += 1
        return out

    def protected(self, allowed: tuple[str, ...] = ()) -> list[Change]:
        """Deletes or replaces (of clusters, node pools, servers, networks, registries,
        service accounts: anything but DISPOSABLE_TYPES) not named in `allowed` (by
        address, or by resource name)."""
        found = []
        for change in self.changes:
            if change.type not in DISPOSABLE_TYPES and change.kind in ("delete", "replace"):
                name = change.address.rsplit(".", 1)[-1]
                if change.address not in allowed and name not in allowed:
                    found.append(change)
        return found

    def to_json(self) -> dict:
        return {"member": self.member, "digest": self.digest, "counts": self.counts(),
                "changes": [{"address": c.address, "type": c.type, "action": c.kind}
                            for c in self.changes if c.kind != "no-op"],
                "outputs_changed": self.outputs_changed}


def summarize(member: str, show: dict) -> PlanSummary:
    """A PlanSummary from `terraform show -json PLAN`."""
    summary = PlanSummary(member)
    for rc in show.get("resource_changes") or []:
        if rc.get("mode") == "data":
            continue
        summary.changes.append(Change(rc.get("address", "?"), rc.get("type", "?"),
                                      tuple((rc.get("change") or {}).get("actions") or ())))
    summary.outputs_changed = sorted(
        name for name, oc in (show.get("output_changes") or {}).items()
        if set((oc or {}).get("actions") or ()) - {"no-op"})
    summary.digest = digest(show)
    return summary


def digest(show: dict) -> str:
    """A hash of what a plan changes (resources, their planned values, outputs, variables):
    equal for the same plan, different when anything it would do differs."""
    content = {
        "resource_changes": [{"address": rc.get("address"),
                              "actions": (rc.get("change") or {}).get("actions"),
                              "after": (rc.get("change") or {}).get("after"),
                              "after_unknown": (rc.get("change") or {}).get("after_unknown")}
                             for rc in show.get("resource_changes") or []],
        "output_changes": show.get("output_changes"),
        "variables": show.get("variables"),
    }
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def federation_vars(member: Member) -> dict[str, str]:
    """What every root gets from config/federation.yaml (never typed twice)."""
    # a member that runs only the redirector has no binder domain: its apex domain then
    return {"member_name": member.name,
            "domain": member.domains.binder or member.domains.federation,
            "kubernetes_version": member.kubernetes_version,
            "provider_kind": member.cluster.provider}


def load_stacks(root: Path, parse_cache: Path | None = None) -> dict[str, Stack]:
    """Every root under terraform/members/, read with python-hcl2 (see _hcl for
    `parse_cache`)."""
    base = Path(root) / MEMBERS_DIR
    if not base.is_dir():
        return {}
    return {d.name: load_stack(d.name, d, parse_cache) for d in sorted(base.iterdir())
            if d.is_dir()}


def load_stack(member: str, directory: Path, parse_cache: Path | None = None) -> Stack:
    """One root's backend, module calls, variables and outputs (override files included).
    Errors name its files as terraform/members/<member>/<file>."""
    backend = None
    modules: dict[str, str] = {}
    variables: list[str] = []
    outputs: list[str] = []
    files = sorted(directory.glob("*.tf"))
    files.sort(key=lambda p: p.stem.endswith("override"))   # overrides last, as Terraform
    for path in files:
        data = _hcl(path, parse_cache, label=f"{MEMBERS_DIR}/{member}/{path.name}")
        for block in data.get("terraform") or []:
            for backend_block in block.get("backend") or []:
                backend = next(iter(backend_block), backend)
        for block in data.get("module") or []:
            for name, body in block.items():
                if isinstance(body, dict) and body.get("source"):
                    modules[name] = str(body["source"])
        for block in data.get("variable") or []:
            variables += [n for n in block if n not in variables]
        for block in data.get("output") or []:
            outputs += [n for n in block if n not in outputs]
    return Stack(member, directory.resolve(), backend, modules, tuple(variables),
                 tuple(outputs))


def check_stacks(federation: Federation, stacks: dict[str, Stack], root: Path,
                 only: set[str] | None = None, parse_cache: Path | None = None) -> list[str]:
    """Where the roots and config/federation.yaml disagree, one line each (for the members
    and stacks named in `only`, or all)."""
    problems = []
    for name, stack in stacks.items():
        if only is not None and name not in only:
            continue
        where = f"{MEMBERS_DIR}/{name}"
        member = federation.members.get(name)
        if member is None:
            problems.append(f"{where}: no member {name!r} in config/federation.yaml (a stack "
                            "is named after the member whose cluster it makes)")
            continue
        if stack.backend is None:
            problems.append(f"{where}: no backend block (the state, secrets included, would "
                            "be written in clear next to the stack)")
        missing = [v for v in FEDERATION_VARS if v not in stack.variables]
        if missing:
            problems.append(f"{where}: declares no variable {', '.join(missing)} (the "
                            "deployer passes it from config/federation.yaml)")
        for module, source in stack.modules.items():
            if source.startswith((".", "/")) and not (stack.root / source).resolve().is_dir():
                problems.append(f"{where}: module {module}: source {source} does not exist")
        problems += _tfvars_problems(member, stack, where, parse_cache)
    for name, member in federation.members.items():
        if only is not None and name not in only:
            continue
        kind = STACK_REQUIRED.get(member.cluster.provider)
        if kind and name not in stacks:
            problems.append(f"config/federation.yaml: member {name} runs on "
                            f"{member.cluster.provider}, but there is no stack "
                            f"{MEMBERS_DIR}/{name} (module {kind}) to make its cluster")
        elif kind and not stacks[name].module_of_kind(kind):
            problems.append(f"{MEMBERS_DIR}/{name}: a {member.cluster.provider} member's stack "
                            f"must use modules/{kind}")
    return problems


# what _tfvars_problems reads of a tfvars file (and all a parse cache keeps of one)
TFVARS_CHECKED = (*FEDERATION_VARS, "project", "zone", "cluster_name", "k3s_version")


def _tfvars_problems(member: Member, stack: Stack, where: str,
                     parse_cache: Path | None = None) -> list[str]:
    """A variables file (.tfvars or .tfvars.json) must not restate (and so contradict) what
    federation.yaml says. Each file is checked on its own, whichever value Terraform would
    end up with: a file that contradicts the federation is named even when a later one
    sets it right."""
    problems = []
    for path in variable_files(stack.root):
        label = f"{where}/{path.name}"
        data = _variables(path, parse_cache, label)

        def at(key: str) -> str:
            line = data[key][1]
            return f"{label}:{line}" if line else label

        for key in FEDERATION_VARS:
            if key in data:
                problems.append(f"{at(key)}: sets {key}, which comes from "
                                "config/federation.yaml; remove it there")
        for key, value in (("project", member.cluster.project), ("zone", member.cluster.zone),
                           ("cluster_name", member.cluster.name)):
            if key in data and value is not None and data[key][0] != value:
                problems.append(f"{at(key)}: {key} {data[key][0]!r} is not the "
                                f"cluster.{'name' if key == 'cluster_name' else key} "
                                f"{value!r} of {member.name} in config/federation.yaml")
        k3s = data["k3s_version"][0] if "k3s_version" in data else None
        if isinstance(k3s, str) and not k3s.lstrip("v").startswith(
                member.kubernetes_version + "."):
            problems.append(f"{at('k3s_version')}: k3s_version {k3s} is not Kubernetes "
                            f"{member.kubernetes_version} (kubernetes_version of {member.name} "
                            "in config/federation.yaml)")
    return problems


def variable_files(directory: Path) -> list[Path]:
    """A root's variables files in the order Terraform reads them, a later value winning:
    terraform.tfvars, terraform.tfvars.json, then *.auto.tfvars and *.auto.tfvars.json in
    lexical order of their names; then the others (read only when named by -var-file)."""
    def order(path: Path) -> tuple[int, str]:
        if path.name in ("terraform.tfvars", "terraform.tfvars.json"):
            return (0 if path.name == "terraform.tfvars" else 1, "")
        return (2 if path.name.endswith((".auto.tfvars", ".auto.tfvars.json")) else 3,
                path.name)

    return sorted((p for pattern in ("*.tfvars", "*.tfvars.json")
                   for p in directory.glob(pattern) if p.is_file()), key=order)


def _variables(path: Path, parse_cache: Path | None,
               label: str) -> dict[str, tuple[object, int | None]]:
    """What a variables file sets of TFVARS_CHECKED: name -> (value, its line where known).
    A .tfvars file is HCL (python-hcl2 gives no lines of attributes), a .tfvars.json file
    one JSON object. Only these settings are kept in the parse cache, under the file's path,
    inode, size and times (see _hcl)."""
    if path.name.endswith(".json"):
        data = _parsed(path, parse_cache, TFVARS_CHECKED, label, (_JSON_FORMAT,),
                       _parse_json_vars)
        return {k: (v[0], v[1]) for k, v in data.items()
                if isinstance(v, list) and len(v) == 2}
    return {k: (v, None) for k, v in
            _hcl(path, parse_cache, keep=TFVARS_CHECKED, label=label).items()}


def _hcl(path: Path, parse_cache: Path | None = None,
         keep: tuple[str, ...] | None = None, label: str | None = None) -> dict:
    """A file parsed with python-hcl2. With `parse_cache` (a directory), what a file parses
    to is kept there as JSON under the hash of its bytes (and of the parser's version and
    options): an unchanged file is not parsed again, a changed one is. `keep`: only these
    top-level keys are returned and kept (a tfvars file may hold a token: only the settings
    the checks read go to the cache, under the file's path, inode, size and times rather than
    a hash of its bytes, from which a short token could be guessed back). A cache entry that
    cannot be read is parsed again. `label`: the file as errors name it (relative to the
    repository)."""
    return _parsed(path, parse_cache, keep, label, (_hcl2_version(), _PARSE_FORMAT),
                   _parse_hcl)


def _parsed(path: Path, parse_cache: Path | None, keep: tuple[str, ...] | None,
            label: str | None, identity: tuple[str, ...],
            parse: Callable[[str, str], dict]) -> dict:
    """`parse` of a file's text, through the parse cache as _hcl describes; `identity`
    names the parser and the shape of what it gives."""
    label = label or str(path)
    try:
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            raw = handle.read()
            after = os.fstat(handle.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=label) from None
    text = decode(raw, label).replace("\r\n", "\n").replace("\r", "\n")  # as open() reads
    if keep is None:
        name = diskcache.key(*identity, raw)
    else:
        name = _stat_key(path, before, keep, identity) if _same_stat(before, after) else None
    cache = diskcache.DiskCache(parse_cache)
    cached = cache.get(name)
    if isinstance(cached, dict):
        return cached
    data = parse(text, label)
    if keep is not None:
        data = {k: data[k] for k in keep if k in data}
    cache.put(name, data)
    return data


def _parse_hcl(text: str, label: str) -> dict:
    import hcl2
    from hcl2 import SerializationOptions

    try:
        return hcl2.loads(text, serialization_options=SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False)) or {}
    except Exception as exc:  # the parser raises its own (lark) exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        line = getattr(exc, "line", None)
        line = line if isinstance(line, int) and line > 0 else None
        # lark's "... at line 2, column 7." becomes file:2: ... (column 7)
        at = _LARK_AT.search(first)
        if at and line:
            first = f"{first[:at.start()]} (column {at.group(1)})"
        raise ConfigError(f"not valid HCL: {first[:200]}", file=label, line=line,
                          hint="check the brackets and quotes up to there") from None


_LARK_AT = re.compile(r",? at line \d+,? col(?:umn)? (\d+)\.?$")


def _parse_json_vars(text: str, label: str) -> dict:
    """A .tfvars.json file: one JSON object of variable name -> value; name -> [value, the
    line of its name]."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError("not valid JSON: nested too deeply", file=label) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=label,
                          line=exc.lineno,
                          hint="Terraform reads a .tfvars.json file as JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"not a JSON object but {_json_kind(data)}", file=label,
                          hint='a .tfvars.json file is one object: {"variable": value, ...}')
    lines = _json_key_lines(text)
    return {key: [value, lines.get(key)] for key, value in data.items()}


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _json_key_lines(text: str) -> dict[str, int]:
    """The line of each top-level name of a JSON object (`text`, known valid); a name given
    twice: its last line, as its last value is the one read."""
    from json.decoder import scanstring

    decoder = json.JSONDecoder()
    lines: dict[str, int] = {}
    at = _JSON_SPACE.match(text, 0).end() + 1                    # past "{"
    while True:
        at = _JSON_SPACE.match(text, at).end()
        if text[at] == "}":
            return lines
        key, end = scanstring(text, at + 1)
        lines[key] = text.count("\n", 0, at) + 1
        at = _JSON_SPACE.match(text, end).end() + 1              # past ":"
        _, at = decoder.raw_decode(text, _JSON_SPACE.match(text, at).end())
        at = _JSON_SPACE.match(text, at).end()
        if text[at] == ",":
            at += 1


def _stat_key(path: Path, stat: os.stat_result, keep: tuple[str, ...],
              identity: tuple[str, ...]) -> str:
    """A key that tells a file's versions apart without reading its content."""
    return diskcache.key(*identity, repr(keep), os.path.abspath(path),
                         diskcache.stat_text(stat))


def _same_stat(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_size, one.st_mtime_ns, one.st_ctime_ns) == \
        (other.st_size, other.st_mtime_ns, other.st_ctime_ns)


@lru_cache(maxsize=1)
def _hcl2_version() -> str:
    """What identifies the installed parser: its version file and grammar (read, not
    imported: importing python-hcl2 and its metadata costs more than a cached parse saves)."""
    from importlib.util import find_spec

    spec = find_spec("hcl2")
    if spec is None or not spec.origin:
        return "python-hcl2 missing"
    base = Path(spec.origin).parent
    digest = hashlib.sha256()
    for name in ("version.py", "hcl2.lark"):
        try:
            digest.update((base / name).read_bytes())
        except OSError:
            digest.update(f"no {name}".encode())
    return "python-hcl2 " + digest.hexdigest()


# what _hcl keeps in its cache: bump when the options or the shape of the data change
_PARSE_FORMAT = "strip_string_quotes explicit_blocks=False v1"
# what _variables keeps of a .tfvars.json file: name -> [value, line]
_JSON_FORMAT = "tfvars.json [value, line] v1"


__all__ = ["Stack", "Change", "PlanSummary", "summarize", "digest", "federation_vars",
           "load_stacks", "load_stack", "check_stacks", "variable_files", "DISPOSABLE_TYPES",
           "MEMBERS_DIR"]
