"""A compiled JSON Schema check (jsonschema-rs) in front of python-jsonschema.

Most documents are valid: jsonschema-rs says so in microseconds, and python-jsonschema (and
its imports) is not needed at all. A document it does not pass goes to python-jsonschema,
which finds every problem and says what is wrong in the project's words: a problem is always
described by python-jsonschema, so the messages are one implementation's.

Where the two could disagree, python-jsonschema decides: a schema jsonschema-rs cannot
compile, or that uses what the two read differently (see `trusted`: `multipleOf` with
fractions, `patternProperties`, and patterns whose classes are ASCII to one and Unicode to
the other), a value jsonschema-rs cannot convert (a date, bytes, a set), and a document whose
YAML made tuples (`!!omap`, `!!pairs`: arrays to jsonschema-rs, not to python-jsonschema;
the caller knows, see manifests.parse). Formats are not asserted (as python-jsonschema
without a format checker), and nothing is fetched over the network (offline): a $ref must
resolve in the schema or in the resources given.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_ONE = ("not", "if", "then", "else", "additionalProperties", "contains", "propertyNames",
        "unevaluatedProperties", "unevaluatedItems", "additionalItems", "items")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
# digit, word and space classes are ASCII to jsonschema-rs and Unicode to Python: the
# positive ones only make it stricter (python-jsonschema then decides), a negated one (also
# inside [^...]) would let more through; word boundaries, Unicode properties, hex and control
# escapes and POSIX classes are read differently or not at all
_RISKY_PATTERN = re.compile(r"\\[DWSpPbBcx]|\[\[:|\[\^[^\]]*\\[dws]")


def trusted(schema: Any) -> bool:
    """Whether jsonschema-rs passes no document of `schema` that python-jsonschema rejects, as
    far as its keywords show (walked, not trusted blindly): no `multipleOf`, no
    `patternProperties`, no pattern with a class or escape the two read differently."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "multipleOf" in node or "patternProperties" in node:
            return False
        pattern = node.get("pattern")
        if isinstance(pattern, str) and _RISKY_PATTERN.search(pattern):
            return False
        for key in _MAPS:
            value = node.get(key)
            if isinstance(value, dict):
                stack.extend(value.values())
        for key in _ONE:
            value = node.get(key)
            if isinstance(value, dict):
                stack.append(value)
        for key in _MANY:
            value = node.get(key)
            if isinstance(value, list):
                stack.extend(value)
    return True


def registry(resources: Iterable[tuple[str, Any]]) -> Any | None:
    """A jsonschema-rs registry of (URI, document) pairs, to compile many schemas against
    (built once: converting a large document costs milliseconds); None without jsonschema-rs."""
    resources = list(resources)
    if not all(trusted(document) for _, document in resources):
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
