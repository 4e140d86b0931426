"""YAML reading with line numbers for every key, and plain-data dumping."""
from __future__ import annotations

import datetime
import io
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.errors import ConfigError

KeyPath = tuple  # a path of map keys (str) and list indexes (int)


@dataclass
class Document:
    """A parsed YAML file: plain data plus the 1-based line of every key path."""

    label: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def load_file(path: Path, label: str | None = None) -> Document:
    """Read and parse a YAML file; a missing or malformed file is a ConfigError.

    Parsed files are cached per process by (path, size, mtime): members share layers
    such as config/common.yaml. Callers must not modify the returned data."""
    label = label or str(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError("file not found", file=label) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=label) from None
    return _load_cached(str(path), label, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _load_cached(path: str, label: str, size: int, mtime_ns: int) -> Document:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=label) from None
    return load_text(text, label)


def load_text(text: str, label: str) -> Document:
    """Parse YAML text (one document) into plain data with key lines."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        node = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        raise ConfigError(f"malformed YAML: {problem}", file=label, line=line,
                          hint="check indentation and quoting") from None
    except YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=label) from None
    doc = Document(label, None)
    doc.data = _plain(node, (), doc.lines)
    return doc


def dump(data: Any) -> str:
    """Serialise plain data as block-style YAML, keys in insertion order."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)


def format_path(path: KeyPath) -> str:
    """Dotted form of a key path; list indexes as [n], dots in keys escaped."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = str(part).replace(".", "\\.")
            out += f".{part}" if out else part
    return out or "(top level)"


def parse_path(dotted: str) -> KeyPath:
    """Inverse of format_path: `a.b\\.c[0].d` -> ('a', 'b.c', 0, 'd')."""
    parts: list = []
    buf = ""
    i = 0
    while i < len(dotted):
        ch = dotted[i]
        if ch == "\\" and i + 1 < len(dotted):
            buf += dotted[i + 1]
            i += 2
            continue
        if ch == ".":
            if buf:
                parts.append(buf)
            buf = ""
        elif ch == "[" and "]" in dotted[i:]:
            if buf:
                parts.append(buf)
            buf = ""
            end = dotted.index("]", i)
            index = dotted[i + 1:end]
            parts.append(int(index) if index.isdigit() else index)
            i = end
        else:
            buf += ch
        i += 1
    if buf:
        parts.append(buf)
    return tuple(parts)


def _plain(node: Any, path: KeyPath, lines: dict) -> Any:
    """Convert ruamel round-trip nodes to dicts/lists/scalars, recording lines."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out = {}
        for raw_key, value in node.items():
            key = str(raw_key)
            if raw_key in node.lc.data:
                lines[path + (key,)] = node.lc.key(raw_key)[0] + 1
            out[key] = _plain(value, path + (key,), lines)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            if i in node.lc.data:
                lines[path + (i,)] = node.lc.item(i)[0] + 1
            out.append(_plain(value, path + (i,), lines))
        return out
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    return node
