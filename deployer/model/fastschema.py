"""A compiled JSON Schema check (jsonschema-rs) in front of python-jsonschema.

Most documents are valid: jsonschema-rs says so in microseconds, and python-jsonschema (and
its imports) is not needed at all. A document it does not pass goes to python-jsonschema,
which finds every problem and says what is wrong in the project's words: a problem is always
described by python-jsonschema, so the messages are one implementation's. When the two could
disagree (a schema jsonschema-rs cannot compile, a value it cannot convert), the document
goes to python-jsonschema too. Formats are not asserted (as python-jsonschema without a
format checker), and nothing is fetched over the network (offline): a $ref must resolve in
the schema or in the resources given.
"""
from __future__ import annotations

from typing import Any, Iterable


def registry(resources: Iterable[tuple[str, Any]]) -> Any | None:
    """A jsonschema-rs registry of (URI, document) pairs, to compile many schemas against
    (built once: converting a large document costs milliseconds); None without jsonschema-rs."""
    try:
        import jsonschema_rs

        return jsonschema_rs.Registry(list(resources))
    except Exception:  # noqa: BLE001 - no fast check then
        return None


def validator_for(schema: dict, registry: Any | None = None) -> Any | None:
    """A compiled validator of `schema` (its draft as its $schema says; its $refs resolved
    in itself and in `registry`, made by `registry()`); None when jsonschema-rs is missing
    or cannot compile it."""
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


__all__ = ["passes", "registry", "validator_for"]
