"""Redaction of secret values in value trees and in free text (logs, errors, manifests)."""
from __future__ import annotations

import base64
import copy
import json
from typing import Any, Iterable

MASK = "***"
MIN_LENGTH = 4  # shorter strings (ports, "true") would mask half of every document


class Redactor:
    """Knows the secret values of one run; masks them wherever they appear."""

    def __init__(self, values: Iterable[Any] = ()):
        needles: set[str] = set()
        for value in values:
            if isinstance(value, bool) or value is None:
                continue
            text = str(value)
            if len(text) < MIN_LENGTH:
                continue
            needles.add(text)
            raw = text.encode()
            needles.add(base64.b64encode(raw).decode())
            needles.add(base64.b64encode(raw).decode().rstrip("="))
            if "\n" in text or '"' in text or "\\" in text:
                # serialisers rewrite such values: JSON-escaped, or one line at a time
                needles.add(json.dumps(text)[1:-1])
                needles.update(line.strip() for line in text.splitlines()
                               if len(line.strip()) >= MIN_LENGTH)
        self._needles = sorted(needles, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._needles)

    def text(self, text: str) -> str:
        """`text` with every known secret (plain or base64) replaced by ***."""
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def tree(self, data: Any, paths: Iterable[tuple] = ()) -> Any:
        """A copy of `data` with the given key paths masked and secret strings masked anywhere."""
        out = copy.deepcopy(data)
        for path in paths:
            _mask_path(out, path)
        return self._walk(out)

    def _walk(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self._walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._walk(v) for v in node]
        if isinstance(node, str):
            return self.text(node)
        return node


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
