"""YAML reading with line numbers for every key, and plain-data dumping."""
from __future__ import annotations

import datetime
import hashlib
import io
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.errors import ConfigError
from deployer.model import diskcache
from deployer.model.memo import shared

KeyPath = tuple  # a path of map keys (str) and list indexes (int)

MAX_BYTES = 4 * 1024 * 1024   # no values, federation or secrets file needs more
MAX_DEPTH = 64                # nesting levels
MAX_NODES = 200_000           # values after expanding aliases (a "billion laughs" file)
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {"str", "int", "float", "bool", "null"}


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


def load_file(path: Path, label: str | None = None, cache: Path | None = None) -> Document:
    """Read and parse a YAML file; a missing or malformed file is a ConfigError.

    Parsed files are kept per process by (path, size, mtime), parsed once however many
    threads ask at the same time: members share layers such as config/common.yaml. Callers
    must not modify the returned data. `cache` (a directory): what the file parses to is
    also kept there by the hash of its bytes (see _parse_key), for the next run. Only files
    in clear belong there (config, charts, .sops.yaml): a decrypted secret never comes
    through here (load_text), and a file sops encrypted is not kept."""
    label = label or str(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError("file not found", file=label) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=label) from None
    if not path.is_file():
        raise ConfigError("not a file", file=label)
    if stat.st_size > MAX_BYTES:
        raise ConfigError(f"file is {stat.st_size / 2**20:.1f} MiB; the limit is "
                          f"{MAX_BYTES // 2**20} MiB", file=label)
    return _load_cached(str(path), label, stat.st_size, stat.st_mtime_ns,
                        str(cache) if cache is not None else None)


@shared(maxsize=256)
def _load_cached(path: str, label: str, size: int, mtime_ns: int,
                 cache: str | None) -> Document:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=label) from None
    if len(raw) > MAX_BYTES:      # grew since it was measured
        raise ConfigError(f"file is {len(raw) / 2**20:.1f} MiB; the limit is "
                          f"{MAX_BYTES // 2**20} MiB", file=label)
    name = _parse_key(raw) if cache is not None else None
    kept = diskcache.DiskCache(cache)
    entry = kept.get(name)
    if isinstance(entry, dict):
        try:
            return Document(label, entry["data"],
                            {tuple(path): int(line) for path, line in entry["lines"]})
        except (KeyError, TypeError, ValueError):
            pass
    doc = load_text(decode(raw, label), label)
    if not (isinstance(doc.data, dict) and "sops" in doc.data):
        kept.put(name, {"data": doc.data, "lines": [[list(path), line]
                                                    for path, line in doc.lines.items()]})
    return doc


def _parse_key(raw: bytes) -> str | None:
    """What a parse depends on: the file's bytes, this module (how nodes become data and
    what is refused) and the parser's version; None (nothing kept) if those cannot be read."""
    code = _code_identity()
    return diskcache.key("yamlio v1", code, raw) if code else None


@lru_cache(maxsize=1)
def _code_identity() -> str | None:
    """This module's source and ruamel.yaml's version file (read, not imported: a cache hit
    should not pay for importing the parser)."""
    from importlib.util import find_spec

    try:
        digest = hashlib.sha256(Path(__file__).read_bytes())
        spec = find_spec("ruamel.yaml")
        if spec is None or not spec.origin:
            return None
        digest.update(Path(spec.origin).read_bytes())
    except (ImportError, OSError, ValueError):
        return None
    return digest.hexdigest()


def decode(raw: bytes, label: str) -> str:
    """UTF-8 text of a file; anything else is one ConfigError naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=label,
                          line=line, hint="save the file as UTF-8") from None


def load_text(text: str, label: str) -> Document:
    """Parse YAML text (one document) into plain data with key lines."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if len(text) > MAX_BYTES:
        raise ConfigError(f"document is {len(text) / 2**20:.1f} MiB; the limit is "
                          f"{MAX_BYTES // 2**20} MiB", file=label)
    yaml = YAML(typ="rt")
    try:
        node = yaml.load(io.StringIO(text))
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=label) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        raise ConfigError(f"malformed YAML: {problem}", file=label, line=line,
                          hint="check indentation and quoting") from None
    except YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=label) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged value that is not one
        raise ConfigError(f"malformed YAML: {exc}", file=label) from None
    doc = Document(label, None)
    try:
        doc.data = _plain(node, (), doc.lines, [MAX_NODES])
    except _Refused as exc:
        raise ConfigError(exc.message, file=label, line=doc.line_of(exc.path) if exc.path
                          else None, key=format_path(exc.path) if exc.path else None) from None
    return doc


class _Refused(Exception):
    """A node load_text does not accept (depth, size, tag), with where it is."""

    def __init__(self, message: str, path: KeyPath):
        super().__init__(message)
        self.message = message
        self.path = path


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


def _plain(node: Any, path: KeyPath, lines: dict, budget: list[int]) -> Any:
    """Convert ruamel round-trip nodes to dicts/lists/scalars, recording lines. Refuses
    nesting past MAX_DEPTH, more than MAX_NODES values once aliases are expanded, and tags
    other than YAML's core scalar tags (no !!python/..., !!binary, !!set, custom tags)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
    from ruamel.yaml.scalarbool import ScalarBoolean

    budget[0] -= 1
    if budget[0] < 0:
        raise _Refused(f"expands to more than {MAX_NODES} values (aliases repeated over and "
                       "over?)", ())
    if len(path) > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels", path[:4])
    tag = _tag(node)
    if tag is not None and not (tag.startswith(_CORE) and
                                tag[len(_CORE):] in _SCALAR_TAGS | {"map", "seq"}):
        raise _Refused(f"unsupported YAML tag {tag.replace(_CORE, '!!')}", path)
    if isinstance(node, TaggedScalar):
        return _core_scalar(node, path)
    if isinstance(node, CommentedMap):
        out = {}
        for raw_key, value in node.items():
            key = str(raw_key)
            if raw_key in node.lc.data:
                lines[path + (key,)] = node.lc.key(raw_key)[0] + 1
            out[key] = _plain(value, path + (key,), lines, budget)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            if i in node.lc.data:
                lines[path + (i,)] = node.lc.item(i)[0] + 1
            out.append(_plain(value, path + (i,), lines, budget))
        return out
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):     # an anchored boolean (an int to Python)
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    raise _Refused(f"unsupported YAML value of type {type(node).__name__} (!!binary, !!set, "
                   "!!omap... are not Helm values)", path)


def _tag(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None) if tag is not None else None
    return value if isinstance(value, str) else None


def _core_scalar(node, path: KeyPath) -> Any:
    """A scalar with an explicit core tag (!!str 3, !!int "4")."""
    kind = _tag(node)[len(_CORE):]
    text = str(node.value)
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text, 0)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return {"true": True, "false": False}[text.lower()]
        if kind == "null":
            return None
    except (ValueError, KeyError):
        pass
    raise _Refused(f"{text!r} is not a valid !!{kind}", path)
