"""Policy invariants that no values schema can state."""
from __future__ import annotations

import re
from dataclasses import dataclass

from deployer.model.federation import FEDERATION_FILE, Federation
from deployer.model.values import DELETED, MemberValues, lookup
from deployer.model.yamlio import format_path

SINGLEUSER = ("binderhub", "jupyterhub", "singleuser")
# KubeSpawner's ByteSpecification: K/M/G/T are powers of 1024, as are Ki/Mi/Gi/Ti.
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?\s*$")
_UNITS = {None: 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


@dataclass
class Violation:
    """A broken invariant, with where to fix it."""

    where: str      # file:line
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}"


def check_member(mv: MemberValues) -> list[Violation]:
    """Invariants of one member's merged values."""
    found = []
    for resource, parse in (("memory", parse_bytes), ("cpu", _number)):
        base = SINGLEUSER + (resource,)
        guarantee = lookup(mv.final, base + ("guarantee",))
        limit = lookup(mv.final, base + ("limit",))
        if guarantee in (DELETED, None) or limit in (DELETED, None):
            continue
        parsed = {}
        for name, value in (("guarantee", guarantee), ("limit", limit)):
            try:
                parsed[name] = parse(value)
            except ValueError as exc:      # blame the value that is not a number
                found.append(Violation(_where(mv, base + (name,)), _key(base + (name,)),
                                       str(exc)))
        if len(parsed) < 2:
            continue
        g, lim = parsed["guarantee"], parsed["limit"]
        if g > lim:
            found.append(Violation(
                _where(mv, base + ("guarantee",)), ".".join(base + ("guarantee",)),
                f"guarantee {guarantee} is more than the limit {limit} "
                f"(limit set at {_where(mv, base + ('limit',))})"))
    return found


def check_federation(fed: Federation) -> dict[str, list[Violation]]:
    """Federation-wide invariants, by the member each one is about."""
    found: dict[str, list[Violation]] = {}

    def add(member: str, path: tuple, message: str) -> None:
        line = fed.line_of(*path)
        found.setdefault(member, []).append(
            Violation(f"{FEDERATION_FILE}:{line}", format_path(path), message))

    for m in fed.members.values():
        if m.in_federation and m.active and m.weight <= 0:
            add(m.name, ("members", m.name, "federation", "weight"),
                "an active member needs a weight > 0 (set active: false to take it out)")
    seen: dict[str, tuple[str, str]] = {}
    for m in fed.members.values():
        for where, domain in m.domains.hosts().items():   # aliases too
            kind = format_path(where)
            if domain in seen:       # both members' deploys would serve it: both fail
                other, other_kind, other_where = seen[domain]
                add(m.name, ("members", m.name, "domains") + where,
                    f"{domain} is also {other}'s {other_kind} domain; every domain must be distinct")
                if other != m.name:
                    add(other, ("members", other, "domains") + other_where,
                        f"{domain} is also {m.name}'s {kind} domain; every domain must be "
                        "distinct")
            else:
                seen[domain] = (m.name, kind, where)
    if not any(m.active and m.weight > 0 for m in fed.members.values() if m.in_federation):
        first = next(iter(fed.members))
        add(first, ("members",), "no active member with weight > 0: the federation serves nobody")
    return found


def parse_bytes(value) -> float:
    """KubeSpawner byte specification ("1G", "450M", 2147483648) -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _BYTES.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a byte size like 512M or 2G")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number of CPUs")
    return float(value)


def _where(mv: MemberValues, path: tuple) -> str:
    _, settings = mv.explain(path)
    exact = [s for s in settings if s.path == path]
    return (exact or settings)[-1].where if (exact or settings) else "(chart defaults)"


def _key(path: tuple) -> str:
    return ".".join(path)
