"""Redaction of secret values in value trees and in free text (logs, errors, manifests).

Two ways, used together:

- by position: in a parsed tree (Helm values, rendered objects) every string is checked in
  its decoded form, so however a serialiser later folds, escapes or quotes it, only *** is
  written; a string that is base64 of text holding a secret is masked whole; Secret objects'
  data/stringData and the key paths a secrets layer set are masked whatever their value;
- by search: free text (a tool's error, a log line) is searched for every encoding of each
  secret that helm, YAML and JSON produce: plain, base64 (padded, unpadded, URL-safe),
  JSON and YAML escapes of non-ASCII characters (\\u00e4, \\xE4), a multi-line secret line
  by line, a secret with spaces folded over several lines, and a secret cut short by a
  message that clips long values ("...").
"""
from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from typing import Any, Iterable

MASK = "***"
MIN_LENGTH = 4     # shorter strings (ports, "true") would mask half of every document
MIN_PREFIX = 12    # a clipped secret is masked when at least this much of it shows
_B64 = re.compile(r"^[A-Za-z0-9+/_\-\s]{16,}={0,2}\s*$")
_CLIP_MARKS = ("...", "\u2026")


class Redactor:
    """Knows the secret values of one run; masks them wherever they appear."""

    def __init__(self, values: Iterable[Any] = ()):
        secrets: set[str] = set()
        for value in values:
            if isinstance(value, bool) or value is None:
                continue
            text = str(value)
            if len(text.strip()) >= MIN_LENGTH:
                secrets.add(text)
        self._secrets = sorted(secrets, key=len, reverse=True)
        needles: set[str] = set()
        for text in self._secrets:
            needles.update(_encodings(text))
        self._needles = sorted((n for n in needles if len(n) >= MIN_LENGTH), key=len,
                               reverse=True)
        folded = [_folded_pattern(s) for s in self._secrets if re.search(r"\s", s.strip())]
        self._folded = re.compile("|".join(folded)) if folded else None
        self._prefixes = [s for s in self._secrets if len(s) > MIN_PREFIX]

    def knows(self, text: str) -> bool:
        """`text` is one of the run's secret values (set by an operator, not generated)."""
        return text in self._secrets

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, text: str) -> str:
        """`text` with every known secret, in any of its encodings, replaced by ***."""
        if not self._needles or not text:
            return text
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        if self._folded is not None:
            text = self._folded.sub(MASK, text)
        return self._clipped(text)

    def value(self, value: str) -> str:
        """One decoded string of a tree: masked where it holds a secret; masked whole when it
        is base64 of text that holds one."""
        if not self._needles:
            return value
        masked = self.text(value)
        if masked == value and _B64.match(value):
            decoded = _b64decode(value)
            if decoded is not None and self.text(decoded) != decoded:
                return MASK
        return masked

    def tree(self, data: Any, paths: Iterable[tuple] = ()) -> Any:
        """A copy of `data` with the given key paths masked and secret strings masked anywhere."""
        out = copy.deepcopy(data)
        for path in paths:
            _mask_path(out, path)
        return self._walk(out)

    def _walk(self, node: Any) -> Any:
        """Mask strings, mapping keys and numbers alike: a masked scalar becomes the string
        "***..." in every position, which a YAML or JSON serialiser then quotes ('***'), so
        the output stays valid YAML (a bare *** would be read as an alias)."""
        if isinstance(node, dict):
            out: dict = {}
            for key, value in node.items():
                masked_key = self._scalar(key)
                if masked_key != key:
                    masked_key = _unique(masked_key, out)
                out[masked_key] = self._walk(value)
            return out
        if isinstance(node, list):
            return [self._walk(v) for v in node]
        return self._scalar(node)

    def _scalar(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.value(node)
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            text = str(node)
            return MASK if self.text(text) != text else node
        return node

    def _clipped(self, text: str) -> str:
        """Mask the start of a secret that a message cut short ("abcdefghijklmn...")."""
        for secret in self._prefixes:
            head = secret[:MIN_PREFIX]
            start = text.find(head)
            while start != -1:
                length = MIN_PREFIX
                while start + length < len(text) and length < len(secret) and \
                        text[start + length] == secret[length]:
                    length += 1
                rest = text[start + length:]
                if length < len(secret) and (not rest.strip() or rest.startswith(_CLIP_MARKS)):
                    text = text[:start] + MASK + rest
                    start = text.find(head, start + len(MASK))
                else:
                    start = text.find(head, start + length)
        return text


def _unique(key: str, taken: dict) -> str:
    """A masked mapping key that does not collide with one already in the mapping."""
    n, candidate = 1, key
    while candidate in taken:
        n += 1
        candidate = f"{key} ({n})"
    return candidate


def _encodings(text: str) -> set[str]:
    """Every form in which `text` can appear in output of helm, YAML or JSON."""
    raw = text.encode()
    out = {text, text.strip()}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out.add(encoded.decode())
        out.add(encoded.decode().rstrip("="))
    out.add(json.dumps(text)[1:-1])
    out.add(json.dumps(text, ensure_ascii=True)[1:-1])
    if any(ord(c) > 126 or ord(c) < 32 for c in text):
        out.update(_yaml_escaped(text))
    if "\n" in text:
        out.update(line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_LENGTH)
    return out


def _yaml_escaped(text: str) -> set[str]:
    """Double-quoted YAML escapes of non-ASCII characters (\\xE4, \\u00E4, both cases)."""
    forms = set()
    for upper in (True, False):
        parts = []
        for char in text:
            code = ord(char)
            if 32 <= code <= 126:
                parts.append(char)
            elif char == "\n":
                parts.append("\\n")
            elif code < 0x100:
                parts.append(f"\\x{code:02X}" if upper else f"\\x{code:02x}")
            elif code < 0x10000:
                parts.append(f"\\u{code:04X}" if upper else f"\\u{code:04x}")
            else:
                parts.append(f"\\U{code:08X}" if upper else f"\\U{code:08x}")
        forms.add("".join(parts))
    return forms


def _folded_pattern(secret: str) -> str:
    """A regex for `secret` folded over lines: any whitespace run in it may be a line break
    with indentation, or a double-quoted scalar's `\\` continuation and escaped space."""
    words = secret.split()
    return r"(?:\s|\\)+".join(re.escape(w) for w in words)


def _b64decode(value: str) -> str | None:
    compact = "".join(value.split())
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(compact + "=" * (-len(compact) % 4)).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return None


def _mask_path(data: Any, path: tuple) -> None:
    node = data
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1] if path else None
    try:
        if last is not None and node[last] is not None:
            node[last] = MASK
    except (KeyError, IndexError, TypeError):
        return
