"""The upstream projects the federation tracks (config/dependencies.yaml), where each one's
version lives in this repository, and the structural edit that bumps it.

Edits change one scalar in place: the YAML is parsed to find the exact node (a Chart.yaml
dependency's `version`, or a key path in a values file), only that node's characters are
replaced, in the quoting style it had, and the result is parsed again to prove that nothing
but that value changed. Comments, order, quoting and layout stay byte for byte.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from deployer.errors import ConfigError
from deployer.model.federation import check_schema
from deployer.model.yamlio import KeyPath, format_path, load_file, parse_path

DEPENDENCIES_FILE = "config/dependencies.yaml"
SCHEMA_PATH = Path(__file__).with_name("dependencies.schema.json")
KINDS = ("helm-chart", "oci-chart", "image", "github-release")


@dataclass(frozen=True)
class Dependency:
    """One upstream project: where its releases come from, where its version lives, and the
    policy for choosing the next one."""

    name: str
    kind: str
    source: str
    file: str
    chart_dependency: str | None = None
    key: str | None = None
    value: str = "version"                     # "version" or "image" (NAME:TAG)
    chart: str | None = None
    prereleases: bool = False
    hold_major: bool = False
    group: str | None = None
    upstream: str | None = None
    labels: tuple[str, ...] = ()
    description: str = ""
    line: int | None = field(default=None, compare=False)     # of its entry in the file

    @property
    def unit(self) -> str:
        """The name of the PR (and branch bump/<unit>) this dependency is bumped in."""
        return self.group or self.name

    @property
    def chart_name(self) -> str:
        return self.chart or self.chart_dependency or self.name


@dataclass(frozen=True)
class Current:
    """Where a dependency's version is written now: the file, the key path, the value."""

    dependency: Dependency
    path: KeyPath
    line: int | None
    raw: str               # the whole scalar (an image reference for value: image)
    version: str


@dataclass
class Dependencies:
    """config/dependencies.yaml, loaded and checked."""

    items: dict[str, Dependency] = field(default_factory=dict)

    def select(self, only: list[str] | None) -> list[Dependency]:
        """The dependencies (or groups) named in `only`, each with its whole group (a group
        is one PR, bumped whole); all when empty. Unknown names are a ConfigError listing the
        known ones."""
        if not only:
            return list(self.items.values())
        units = set()
        for name in only:
            found = [d for d in self.items.values() if name in (d.name, d.group)]
            if not found:
                known = ", ".join(sorted(self.items))
                raise ConfigError(f"--only {name}: no such dependency or group",
                                  file=DEPENDENCIES_FILE, hint=f"known: {known}")
            units.update(d.unit for d in found)
        return [d for d in self.items.values() if d.unit in units]


def load(root: Path) -> Dependencies:
    """config/dependencies.yaml of the repository at `root` (schema-checked)."""
    doc = load_file(root / DEPENDENCIES_FILE, DEPENDENCIES_FILE)
    check_schema(doc, SCHEMA_PATH)
    items = {}
    for name, entry in doc.data["dependencies"].items():
        line = doc.line_of(("dependencies", name))
        if ("key" in entry) == ("chart_dependency" in entry):
            raise ConfigError("give exactly one of `chart_dependency` (a Chart.yaml "
                              "dependency) or `key` (a key path in a values file)",
                              file=DEPENDENCIES_FILE, line=line, key=f"dependencies.{name}")
        if entry.get("value") == "image" and entry["kind"] != "image":
            raise ConfigError("value: image is for kind: image", file=DEPENDENCIES_FILE,
                              line=line, key=f"dependencies.{name}.value")
        _check_source(name, entry, doc.line_of(("dependencies", name, "source")))
        items[name] = Dependency(
            name=name, kind=entry["kind"], source=entry["source"].rstrip("/"),
            file=entry["file"], chart_dependency=entry.get("chart_dependency"),
            key=entry.get("key"), value=entry.get("value", "version"), chart=entry.get("chart"),
            prereleases=entry.get("prereleases", False),
            hold_major=entry.get("hold_major", False), group=entry.get("group"),
            upstream=entry.get("upstream"), labels=tuple(entry.get("labels") or ()),
            description=entry.get("description", ""), line=line)
    return Dependencies(items)


def current(root: Path, dep: Dependency) -> Current:
    """The version written in this repository now, and where."""
    doc = load_file(root / dep.file, dep.file)
    where = f"dependencies.{dep.name}"
    if dep.chart_dependency:
        entries = (doc.data or {}).get("dependencies") if isinstance(doc.data, dict) else None
        for i, entry in enumerate(entries or []):
            if isinstance(entry, dict) and entry.get("name") == dep.chart_dependency:
                path: KeyPath = ("dependencies", i, "version")
                break
        else:
            raise ConfigError(f"{dep.file} has no dependency named {dep.chart_dependency!r}",
                              file=DEPENDENCIES_FILE, line=dep.line,
                              key=f"{where}.chart_dependency",
                              hint=f"the names in {dep.file}: " + ", ".join(
                                  str(e.get("name")) for e in entries or []
                                  if isinstance(e, dict)))
    else:
        path = parse_path(dep.key)
    value = _get(doc.data, path)
    if value is None and path not in doc.lines:
        raise ConfigError(f"{dep.file} has no key {format_path(path)}", file=DEPENDENCIES_FILE,
                          line=dep.line, key=f"{where}.key",
                          hint="the key path of the version, dots inside a key escaped (\\.)")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or value == "":
        raise ConfigError(f"expected a version here, got {value!r}", file=dep.file,
                          line=doc.line_of(path), key=format_path(path),
                          hint=f"{DEPENDENCIES_FILE}: {where}")
    raw = str(value)
    version = raw
    if "@" in raw:
        raise ConfigError(f"pinned by digest ({raw.rpartition('@')[2][:19]}...): digest pins "
                          "cannot be bumped by tag", file=dep.file, line=doc.line_of(path),
                          key=format_path(path), hint=f"pin the tag alone, or remove "
                                                      f"{where} from {DEPENDENCIES_FILE}")
    if dep.value == "image":
        name, sep, tag = raw.rpartition(":")
        if not sep or "/" in tag:
            raise ConfigError(f"expected an image reference NAME:TAG, got {raw!r}", file=dep.file,
                              line=doc.line_of(path), key=format_path(path))
        version = tag
    return Current(dep, path, doc.line_of(path), raw, version)


def with_version(cur: Current, version: str) -> str:
    """The scalar that holds `version` where `cur` holds the current one."""
    if cur.dependency.value == "image":
        return cur.raw.rpartition(":")[0] + ":" + version
    return version


def replace_scalar(text: str, path: KeyPath, new: str, label: str) -> str:
    """`text` with the scalar at `path` replaced by the string `new`, in the same quoting
    style; every other byte unchanged. Raises ConfigError when the node is not a plain,
    single- or double-quoted scalar, or when the edit would change anything else."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        before = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {str(exc).splitlines()[0]}", file=label) from None
    node = _node(root, path)
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, "'", '"'):
        raise ConfigError("not a one-line scalar: cannot edit it in place", file=label,
                          key=format_path(path))
    start, end = node.start_mark.index, node.end_mark.index
    edited = text[:start] + _render(new, node.style, node.tag) + text[end:]
    expected = _set(before, path, new)
    after = yaml.safe_load(edited)
    if after != expected:
        raise ConfigError("editing the version would change other values", file=label,
                          key=format_path(path))
    return edited


# -- helpers ----------------------------------------------------------------------------------
def _check_source(name: str, entry: dict, line: int | None) -> None:
    kind, source = entry["kind"], entry["source"]
    ok = {"helm-chart": source.startswith(("https://", "http://")),
          "oci-chart": source.startswith("oci://") and source.count("/") >= 3,
          "image": "://" not in source and "/" in source and ":" not in source.split("/")[-1],
          "github-release": source.count("/") == 1 and "://" not in source}[kind]
    if not ok:
        expected = {"helm-chart": "a chart repository URL (https://...)",
                    "oci-chart": "oci://HOST/PATH/CHART",
                    "image": "an image name without a tag (HOST/REPOSITORY)",
                    "github-release": "a GitHub repository (OWNER/REPO)"}[kind]
        raise ConfigError(f"expected {expected} for kind {kind}, got {source!r}",
                          file=DEPENDENCIES_FILE, line=line, key=f"dependencies.{name}.source")


def _get(data, path: KeyPath):
    for part in path:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def _set(data, path: KeyPath, value):
    """A copy of `data` with `path` set to `value` (only the containers on the path are
    copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, list):
        copy = list(data)
    else:
        copy = dict(data)
    copy[head] = _set(data[head], rest, value)
    return copy


def _node(root, path: KeyPath):
    import yaml

    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node = value
                    break
            else:
                return None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and \
                part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def _render(value: str, style: str | None, tag: str) -> str:
    """`value` written in a scalar `style`; a plain scalar that would read as another type
    (`2025.10` is a float) is double-quoted instead."""
    import yaml

    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value)
    try:
        if yaml.safe_load(value) == value and "\n" not in value and "#" not in value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)


__all__ = ["DEPENDENCIES_FILE", "Dependency", "Dependencies", "Current", "load", "current",
           "with_version", "replace_scalar"]
