"""YAML reading with line numbers for every key, and plain-data dumping."""
from __future__ import annotations

import datetime
import io
import re
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    """This module's source and the parsers' version files, ruamel.yaml's and PyYAML's (read,
    not imported: a cache hit should not pay for importing a parser)."""
    from importlib.util import find_spec

    try:
        origins = [getattr(find_spec(parser), "origin", None) for parser in ("ruamel.yaml", "yaml")]
    except (ImportError, ValueError):
        return None
    return diskcache.code_identity(__file__, *origins)


def decode(raw: bytes, label: str) -> str:
    """UTF-8 text of a file; anything else is one ConfigError naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=label,
                          line=line, hint="save the file as UTF-8") from None


def load_text(text: str, label: str, *, yaml11_words: bool = False) -> Document:
    """Parse YAML text (one document) into plain data with key lines: YAML 1.2, as ruamel.yaml
    reads it (the quick reading below where it is sure to agree). A value that is an unquoted
    YAML 1.1 boolean word (yes, no, on, off, y, n: YAML11_BOOLS) is refused, as helm would read
    it otherwise; `yaml11_words`: read them as the strings they are in YAML 1.2 (for files
    this tool only looks into, e.g. for values left in clear)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"document is {len(text) / 2**20:.1f} MiB; the limit is "
                          f"{MAX_BYTES // 2**20} MiB", file=label)
    quick = _load_plain(text, label)
    return quick if quick is not None else _load_careful(text, label, yaml11_words)


def _load_careful(text: str, label: str, yaml11_words: bool = False) -> Document:
    """ruamel.yaml's reading of `text` (any YAML; every error named with its line)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True            # a quoted 'no' is a string; a plain no is refused
    try:
        node = yaml.load(io.StringIO(text))
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=label) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        duplicate = _DUPLICATE.match(problem)
        if duplicate:        # (ruamel.yaml quotes both values: never shown, they may be secret)
            raise ConfigError(f"malformed YAML: the key {duplicate.group(1)!r} is written twice "
                              "in one map", file=label, line=line,
                              hint="keep one of them (or indent one under another key)") from None
        raise ConfigError(f"malformed YAML: {problem}", file=label, line=line,
                          hint="check indentation and quoting") from None
    except YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=label) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged value that is not one
        raise ConfigError(f"malformed YAML: {exc}", file=label) from None
    except IndexError:     # ruamel.yaml reads `+_` as a number, and fails on it
        raise ConfigError("malformed YAML: a plain value of only a sign and underscores",
                          file=label, hint="quote it") from None
    except (NotImplementedError, AssertionError):  # its comment handling, at times (what it
        # says quotes the comment, which in a secrets file may hold a secret: not shown)
        raise ConfigError("malformed YAML: ruamel.yaml cannot read it: it fails on a comment "
                          "in this file (a limit of that parser; the YAML itself may be valid)",
                          file=label,
                          hint="put a comment that sits between a key and its value on a line "
                               "of its own, and check the indentation around comments") from None
    doc = Document(label, None)
    try:
        doc.data = _plain(node, (), doc.lines, [MAX_NODES], yaml11_words)
    except _Refused as exc:
        raise ConfigError(exc.message, file=label, line=doc.line_of(exc.path) if exc.path
                          else None, key=format_path(exc.path) if exc.path else None) from None
    return doc


_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value', re.S)


class _Refused(Exception):
    """A node load_text does not accept (depth, size, tag), with where it is."""

    def __init__(self, message: str, path: KeyPath):
        super().__init__(message)
        self.message = message
        self.path = path


# -- the quick reading: libyaml's events, for documents it reads as ruamel.yaml does ----------
#
# ruamel.yaml (pure Python, YAML 1.2) costs tens of milliseconds to import and to read a file;
# libyaml reads the same file in well under one. libyaml speaks YAML 1.1, so its events are
# used only where the two cannot differ; anything else - tags, aliases, merge keys,
# directives, duplicate keys, complex keys, deep nesting, characters the versions treat
# differently, a plain scalar that is not plainly a string, a simple number, a boolean or
# null in YAML 1.2, and every error - is read by ruamel.yaml as before (tests/unit/model/
# test_yamlio.py compares the two on every YAML file of the repository and of the upstream
# charts, and on variations of them).

# characters libyaml and ruamel.yaml may read differently: tabs (each allows them in places
# the other does not), NEL and the Unicode line and paragraph separators (line breaks in YAML
# 1.1 only), a byte-order mark, and anything that is not printable
_UNSURE_ASCII = re.compile("[^\n\r\x20-\x7e]")
_UNSURE_TEXT = ("[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                "\U00010000-\U0010ffff]")   # compiled only for text that is not ASCII
# where libyaml takes what ruamel.yaml refuses: a directive (%YAML 1.1, %TAG: ruamel.yaml reads
# with them), a comment right after a block scalar's header (`|#`), a quoted key right before
# its colon in a flow (`["a":b]`)
_UNSURE_SYNTAX = re.compile(r"^%|[|>][-+0-9]*#|[\"']:\S", re.MULTILINE)
_INT = re.compile(r"0|-?[1-9][0-9]*")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
# what else ruamel.yaml's resolver reads as a YAML 1.2 number or timestamp (its patterns, read
# with re.X; the tests try every short scalar of these characters against ruamel.yaml): a
# plain scalar like these is left to ruamel.yaml
_NUMBER_OR_TIME = r"""(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)
    |[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
     (?:[Tt]|[ \t]+)[0-9][0-9]?
     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)"""
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {"true": True, "True": True, "TRUE": True,
          "false": False, "False": False, "FALSE": False}
# plain words YAML 1.1 reads as booleans and YAML 1.2 as strings: helm and kubectl (YAML 1.1)
# would read `enabled: no` as false, this reader as "no"; such a value is refused (see _plain)
YAML11_BOOLS = {**{w: True for w in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")},
                **{w: False for w in ("n", "N", "no", "No", "NO", "off", "Off", "OFF")}}


@lru_cache(maxsize=None)
def _compiled(pattern: str, flags: int = 0) -> re.Pattern:
    """A pattern compiled on first use (these take milliseconds, and most runs need neither)."""
    return re.compile(pattern, flags)


class Unsure(Exception):
    """A quick reading from libyaml's events cannot be sure it reads a document as the
    careful reading does (see data_from_events)."""


def _load_plain(text: str, label: str) -> Document | None:
    """`text` read through libyaml's events, or None when ruamel.yaml must read it."""
    unsure = _UNSURE_ASCII if text.isascii() else _compiled(_UNSURE_TEXT)
    if unsure.search(text) or _UNSURE_SYNTAX.search(text):
        return None
    try:
        import yaml
        parser = yaml.CSafeLoader             # AttributeError: PyYAML built without libyaml
    except (ImportError, AttributeError):
        return None
    doc = Document(label, None)
    loader = parser(text)
    try:
        doc.data = data_from_events(loader, _plain_scalar, doc.lines, _plain_key)
    except (Unsure, yaml.YAMLError, ValueError):
        return None
    finally:
        loader.dispose()
    return doc


def data_from_events(loader: Any, scalar: Callable[[str], Any],
                     lines: dict | None = None,
                     key_scalar: Callable[[str], Any] | None = None) -> Any:
    """Plain data from a libyaml parser's events (`loader`: a CSafeLoader of one document),
    plain scalars read by `scalar` (which raises Unsure for what it cannot be sure of; plain
    keys by `key_scalar` when given), the line of every key and list item put in `lines`. Raises Unsure for anything but maps,
    lists and untagged scalars with string keys: tags, aliases, merge and duplicate keys,
    directives, a second document, nesting past MAX_DEPTH, more than MAX_NODES values. No
    recursion: nesting is a stack."""
    import yaml

    root: list = []
    # frames: [container, its path, the key read and waiting for its value (maps)]
    stack: list[list] = [[root, (), None]]
    budget = MAX_NODES
    documents = 0
    while True:
        event = loader.get_event()
        kind = type(event)
        if kind is yaml.StreamEndEvent:
            break
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1 or event.version or event.tags:
                raise Unsure
            continue
        if kind in (yaml.StreamStartEvent, yaml.DocumentEndEvent):
            continue
        if kind in (yaml.MappingEndEvent, yaml.SequenceEndEvent):
            stack.pop()
            continue
        budget -= 1
        if budget < 0 or len(stack) > MAX_DEPTH or kind is yaml.AliasEvent \
                or event.tag is not None or event.anchor is not None:
            raise Unsure    # (libyaml ends an anchor's name at `:`; PyYAML refuses a
            #                  duplicate anchor)
        frame = stack[-1]
        container, path = frame[0], frame[1]
        if container.__class__ is dict and frame[2] is None:       # a key
            if kind is not yaml.ScalarEvent:
                raise Unsure
            key = event.value if event.style else (key_scalar or scalar)(event.value)
            if key.__class__ is not str or key in container or \
                    (not event.style and key == "<<"):
                raise Unsure
            frame[2] = key
            if lines is not None:
                lines[path + (key,)] = event.start_mark.line + 1
            continue
        if kind is yaml.ScalarEvent:
            value = event.value if event.style else scalar(event.value)
            if event.style in ("|", ">") and (not value or value[0] == "\n"):
                raise Unsure    # blank lines first: ruamel.yaml refuses some libyaml takes
        elif kind is yaml.MappingStartEvent:
            value = {}
        elif kind is yaml.SequenceStartEvent:
            value = []
        else:
            raise Unsure
        if container.__class__ is dict:
            here = path + (frame[2],)
            container[frame[2]] = value
            frame[2] = None
        else:
            here = path + (len(container),)
            if container is not root and lines is not None:
                lines[here] = event.start_mark.line + 1
            container.append(value)
        if kind is not yaml.ScalarEvent:
            stack.append([value, here if container is not root else (), None])
    return root[0] if root else None


def simple_number(value: str) -> int | float | None:
    """`12`, `-3`, `0.25` as the number every YAML version reads them as; None for any other
    text (no sign +, leading zeros, underscores, exponent, .inf...)."""
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return None


def _plain_scalar(value: str) -> Any:
    """A plain (unquoted) scalar as YAML 1.2 reads it, where that is sure."""
    if value in _NULLS:
        return None
    first = value[0]
    if first in "tTfF" and value in _BOOLS:
        return _BOOLS[value]
    if first in "yYnNoO" and value in YAML11_BOOLS:
        raise Unsure                           # refused, with its line, by the careful reading
    if first in "-+0123456789.":
        number = simple_number(value)
        if number is not None:
            return number
        if _compiled(_NUMBER_OR_TIME, re.X).fullmatch(value):
            raise Unsure                       # 0x1F, 1_000, 1e3, .inf, 2025-01-01...
    elif value in ("<<", "="):
        raise Unsure
    return value


def _plain_key(value: str) -> Any:
    """A plain key as YAML 1.2 reads it: as _plain_scalar, but the YAML 1.1 boolean words are
    the strings they are (only values that are such words are refused)."""
    return value if value in YAML11_BOOLS else _plain_scalar(value)


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


def _plain(node: Any, path: KeyPath, lines: dict, budget: list[int],
           yaml11_words: bool = False) -> Any:
    """Convert ruamel round-trip nodes to dicts/lists/scalars, recording lines. Refuses
    nesting past MAX_DEPTH, more than MAX_NODES values once aliases are expanded, and tags
    other than YAML's core scalar tags (no !!python/..., !!binary, !!set, custom tags)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
    from ruamel.yaml.scalarbool import ScalarBoolean
    from ruamel.yaml.scalarstring import PlainScalarString

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
        known = node.lc.data or {}          # None for a map of nothing but a merge key
        for raw_key, value in node.items():
            key = str(raw_key)
            if raw_key in known:
                lines[path + (key,)] = node.lc.key(raw_key)[0] + 1
            out[key] = _plain(value, path + (key,), lines, budget, yaml11_words)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            if i in node.lc.data:
                lines[path + (i,)] = node.lc.item(i)[0] + 1
            out.append(_plain(value, path + (i,), lines, budget, yaml11_words))
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
        if node in YAML11_BOOLS and type(node) in (str, PlainScalarString) \
                and not yaml11_words:
            meant = str(YAML11_BOOLS[node]).lower()
            raise _Refused(f"{node} (unquoted) is {meant} to helm and kubectl (YAML 1.1) but "
                           f"the word '{node}' to YAML 1.2, which this tool reads: write {meant} "
                           f"for the boolean, or '{node}' (quoted) for the word", path)
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
