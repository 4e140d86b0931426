"""A compiled JSON Schema check (jsonschema-rs) in front of python-jsonschema.

Most documents are valid: jsonschema-rs says so in microseconds, and python-jsonschema (and
its imports) is not needed at all. A document it does not pass goes to python-jsonschema,
which finds every problem and says what is wrong in the project's words: a problem is always
described by python-jsonschema, so the messages are one implementation's.

Where the two could disagree, python-jsonschema decides: a schema jsonschema-rs cannot
compile, or that uses what the two read differently (see `trusted`), a value jsonschema-rs
cannot convert (a date, bytes, a set), and a document whose YAML made tuples (`!!omap`,
`!!pairs`: arrays to jsonschema-rs, not to python-jsonschema; the caller knows, see
manifests.parse). Formats are not asserted (as python-jsonschema
without a format checker), and nothing is fetched over the network (offline): a $ref must
resolve in the schema or in the resources given.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

# keywords whose value maps names to subschemas (the names are not keywords)
_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
         "dependencies"}
# keywords whose value is data, not a subschema
_DATA = {"enum", "const", "default", "examples"}
# where a subschema that jsonschema-rs reads more strictly could make it pass more: a negated
# or conditional subschema, one of several, a counted `contains`
_TURNING = {"not", "if", "oneOf", "contains"}
# keywords the two read differently (fractions, which properties a pattern names, what was
# "evaluated"), or that one of them does not know
_REFUSED = {"patternProperties", "multipleOf", "unevaluatedProperties", "unevaluatedItems",
            "$dynamicRef", "$recursiveRef", "minContains", "maxContains"}
_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}   # and .inf
# a pattern both read alike, or jsonschema-rs more strictly: literals, escaped literals,
# \d and \w (ASCII to jsonschema-rs, Unicode to Python), classes (negated ones of literals
# only), groups without flags, alternation, quantifiers, anchors ($ also before a final
# newline to Python), the dot
_PLAIN_PATTERN = re.compile(r"""(?:
      [^\\\[\](){}?*+|^$.]
    | \\[-.\\/()\[\]{}*+?^$|dw]
    | [()|?*+.^$]
    | \{\d+(?:,\d*)?\}
    | \[(?!\^)(?:[^\\\[\]]|\\[-.\\/\[\]^dw])+\]
    | \[\^(?:[^\\\[\]]|\\[-.\\/\[\]^])+\]
    )*""", re.VERBOSE)


def trusted(schema: Any) -> bool:
    """Whether jsonschema-rs passes no document of `schema` that python-jsonschema rejects,
    as its keywords show (every subschema is walked, the data of enum, const, default and
    examples is not): no keyword they read differently (see _REFUSED), numeric bounds only
    on integers, and patterns only as _PLAIN_PATTERN allows and never where reading them
    more strictly could make a document pass (under not, if, oneOf, contains)."""
    stack: list[tuple[Any, bool]] = [(schema, False)]
    while stack:
        node, turning = stack.pop()
        if isinstance(node, list):
            stack.extend((item, turning) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if _REFUSED & node.keys():
            return False
        if _BOUNDS & node.keys() and not _integers_only(node.get("type")):
            return False
        pattern = node.get("pattern")
        if pattern is not None and (turning or not isinstance(pattern, str)
                                    or "(?" in pattern
                                    or not _PLAIN_PATTERN.fullmatch(pattern)):
            return False
        for key, value in node.items():
            if key in _DATA:
                continue
            inner = turning or key in _TURNING
            if key in _MAPS and isinstance(value, dict):
                stack.extend((sub, inner) for sub in value.values())
            elif isinstance(value, (dict, list)):
                stack.append((value, inner))
    return True


def _integers_only(declared: Any) -> bool:
    types = [declared] if isinstance(declared, str) else declared
    return isinstance(types, list) and "integer" in types and "number" not in types


def registry(resources: Iterable[tuple[str, Any]], checked: bool = False) -> Any | None:
    """A jsonschema-rs registry of (URI, document) pairs, to compile many schemas against
    (built once: converting a large document costs milliseconds); None without jsonschema-rs,
    or when a document is not `trusted` (`checked`: the caller found they all are)."""
    resources = list(resources)
    if not checked and not all(trusted(document) for _, document in resources):
        return None
    try:
        import jsonschema_rs

        return jsonschema_rs.Registry(resources)
    except Exception:  # noqa: BLE001 - no fast check then
        return None


def validator_for(schema: dict, registry: Any | None = None) -> Any | None:
    """A compiled validator of `schema` (its draft as its $schema says; its $refs resolved
    in itself and in `registry`, made by `registry()`); None when jsonschema-rs is missing
    or cannot compile it, and for a schema it would not judge alike (see `trusted`)."""
    if not trusted(schema):
        return None
    try:
        import jsonschema_rs

        return jsonschema_rs.validator_for(schema, validate_formats=False, registry=registry,
                                           offline=True)
    except Exception:  # noqa: BLE001 - any failure to compile: python-jsonschema decides
        return None


def passes(validator: Any | None, instance: Any) -> bool:
    """True when the compiled `validator` finds `instance` valid; False when it does not, or
    cannot tell (no validator, a value it cannot convert): then ask python-jsonschema."""
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(instance))
    except Exception:  # noqa: BLE001
        return False


__all__ = ["passes", "registry", "trusted", "validator_for"]
