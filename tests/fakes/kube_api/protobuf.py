"""Kubernetes protobuf bodies (``application/vnd.kubernetes.protobuf``) to and from JSON dicts.

Typed client-go clients (helm's release storage, ``kubectl create ...``) send request bodies as
Kubernetes protobuf and never fall back to JSON, so the fake API server turns them into the dict
the JSON form of the same request would have given.

Wire format: the 4-byte magic ``k8s\\x00``, then a ``runtime.Unknown`` message whose ``typeMeta``
(apiVersion, kind) names the type and whose ``raw`` holds the typed message.

Field numbers and types below are copied from the generated .proto files, not guessed:

* runtime.Unknown / TypeMeta: kubernetes/kubernetes@203d8ac83844b8ea8ece8ece7630cb22ef8f327d
  staging/src/k8s.io/apimachinery/pkg/runtime/generated.proto
* meta/v1 (ObjectMeta, OwnerReference, ManagedFieldsEntry, FieldsV1, Time, MicroTime,
  DeleteOptions, Preconditions):
  kubeadapt/kubeadapt-k8s-pulse@2d3917ec4aff355100569f652478025504b4c297
  vendor/k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto (a recent vendored copy: it has
  ManagedFieldsEntry.subresource = 8 and DeleteOptions.ignoreStoreReadError... = 6; the
  kubernetes/kubernetes staging copy in the index predates FieldsV1)
* core/v1 (Secret, ConfigMap, Namespace, NamespaceSpec, NamespaceStatus, NamespaceCondition):
  the same commit, vendor/k8s.io/api/core/v1/generated.proto
* coordination/v1 (Lease, LeaseSpec): kubernetes/kubernetes@1672e6d6b8becd8b9595597d4957830f0fd07b7e
  staging/src/k8s.io/api/coordination/v1/generated.proto; which LeaseSpec fields are Go pointers
  from vendor/k8s.io/api/coordination/v1/types.go at the kubeadapt commit above.
* Time/MicroTime semantics: apimachinery pkg/apis/meta/v1/time_proto.go (a zero time is
  marshalled as an empty message and unmarshalled back to the zero time). Time's JSON form is
  RFC 3339 in whole seconds, MicroTime's has six fractional digits (RFC3339Micro), both in UTC.

Omission follows Go's JSON encoding of the decoded struct as far as the wire allows:
a field absent on the wire is absent from the dict; a field present on the wire is kept, except
that a zero value ("" / 0 / false / empty bytes) of a Go *value* field tagged ``omitempty``
(card ``OMIT`` below) is dropped - client-go writes every non-pointer scalar, so without this a
real body would carry ``generateName: ""``, ``generation: 0`` and the like, which JSON never shows.
Go pointer fields and fields without ``omitempty`` (card ``OPT``) keep zero values
(``immutable: false``, ``leaseTransitions: 0``). A Time/MicroTime sent as an empty message is the
zero time, which Go's JSON writes as ``null`` - except metadata.creationTimestamp, tagged
``omitempty,omitzero`` in current apimachinery, so dropped (kubectl 1.35's own JSON of a new
object has no creationTimestamp; tests/test_kube_protobuf.py checks decode against it).
"""
from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timedelta, timezone

MAGIC = b"k8s\x00"

# cards: OPT = singular, kept when present; OMIT = singular, dropped when zero (Go value field
# with omitempty); REP = repeated; MAP = map<string, TYPE> (repeated entry messages key=1 value=2)
OPT, OMIT, REP, MAP = "opt", "omit", "rep", "map"

# message name -> {field number: (json name, type, card)}; a type is a scalar type name or the
# name of another message here. Time, MicroTime and FieldsV1 get JSON forms of their own.
SCHEMA: dict[str, dict[int, tuple[str, str, str]]] = {
    # k8s.io.apimachinery.pkg.runtime
    "Unknown": {1: ("typeMeta", "TypeMeta", OPT), 2: ("raw", "bytes", OPT),
                3: ("contentEncoding", "string", OPT), 4: ("contentType", "string", OPT)},
    "TypeMeta": {1: ("apiVersion", "string", OPT), 2: ("kind", "string", OPT)},
    # k8s.io.apimachinery.pkg.apis.meta.v1
    "ObjectMeta": {
        1: ("name", "string", OMIT), 2: ("generateName", "string", OMIT),
        3: ("namespace", "string", OMIT), 4: ("selfLink", "string", OMIT),
        5: ("uid", "string", OMIT), 6: ("resourceVersion", "string", OMIT),
        7: ("generation", "int64", OMIT), 8: ("creationTimestamp", "Time", OMIT),
        9: ("deletionTimestamp", "Time", OPT), 10: ("deletionGracePeriodSeconds", "int64", OPT),
        11: ("labels", "string", MAP), 12: ("annotations", "string", MAP),
        13: ("ownerReferences", "OwnerReference", REP), 14: ("finalizers", "string", REP),
        17: ("managedFields", "ManagedFieldsEntry", REP),
    },
    "OwnerReference": {
        5: ("apiVersion", "string", OPT), 1: ("kind", "string", OPT), 3: ("name", "string", OPT),
        4: ("uid", "string", OPT), 6: ("controller", "bool", OPT),
        7: ("blockOwnerDeletion", "bool", OPT),
    },
    "ManagedFieldsEntry": {
        1: ("manager", "string", OMIT), 2: ("operation", "string", OMIT),
        3: ("apiVersion", "string", OMIT), 4: ("time", "Time", OPT),
        6: ("fieldsType", "string", OMIT), 7: ("fieldsV1", "FieldsV1", OPT),
        8: ("subresource", "string", OMIT),
    },
    "FieldsV1": {1: ("Raw", "bytes", OPT)},
    "Time": {1: ("seconds", "int64", OPT), 2: ("nanos", "int32", OPT)},
    "MicroTime": {1: ("seconds", "int64", OPT), 2: ("nanos", "int32", OPT)},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int64", OPT), 2: ("preconditions", "Preconditions", OPT),
        3: ("orphanDependents", "bool", OPT), 4: ("propagationPolicy", "string", OPT),
        5: ("dryRun", "string", REP),
        6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "bool", OPT),
    },
    "Preconditions": {1: ("uid", "string", OPT), 2: ("resourceVersion", "string", OPT)},
    # k8s.io.api.core.v1
    "Secret": {
        1: ("metadata", "ObjectMeta", OPT), 5: ("immutable", "bool", OPT),
        2: ("data", "bytes", MAP), 4: ("stringData", "string", MAP), 3: ("type", "string", OMIT),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", OPT), 4: ("immutable", "bool", OPT),
        2: ("data", "string", MAP), 3: ("binaryData", "bytes", MAP),
    },
    "Namespace": {1: ("metadata", "ObjectMeta", OPT), 2: ("spec", "NamespaceSpec", OPT),
                  3: ("status", "NamespaceStatus", OPT)},
    "NamespaceSpec": {1: ("finalizers", "string", REP)},
    "NamespaceStatus": {1: ("phase", "string", OMIT),
                        2: ("conditions", "NamespaceCondition", REP)},
    "NamespaceCondition": {
        1: ("type", "string", OPT), 2: ("status", "string", OPT),
        4: ("lastTransitionTime", "Time", OPT), 5: ("reason", "string", OMIT),
        6: ("message", "string", OMIT),
    },
    # k8s.io.api.coordination.v1
    "Lease": {1: ("metadata", "ObjectMeta", OPT), 2: ("spec", "LeaseSpec", OPT)},
    "LeaseSpec": {
        1: ("holderIdentity", "string", OPT), 2: ("leaseDurationSeconds", "int32", OPT),
        3: ("acquireTime", "MicroTime", OPT), 4: ("renewTime", "MicroTime", OPT),
        5: ("leaseTransitions", "int32", OPT), 6: ("strategy", "string", OPT),
        7: ("preferredHolder", "string", OPT),
    },
}

# (apiVersion, kind) -> message; DeleteOptions is registered in every group version.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Namespace"): "Namespace",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
}
ANY_VERSION_KINDS = {"DeleteOptions": "DeleteOptions"}

_VARINT = {"int32", "int64", "uint32", "uint64", "bool", "enum"}
_FIXED64 = {"fixed64": "<Q", "sfixed64": "<q", "double": "<d"}
_FIXED32 = {"fixed32": "<I", "sfixed32": "<i", "float": "<f"}
_WIRE = {**{t: 0 for t in _VARINT}, **{t: 1 for t in _FIXED64}, **{t: 5 for t in _FIXED32},
         "string": 2, "bytes": 2}
_ZERO = {"string": "", "bytes": "", "bool": False, **{t: 0 for t in _VARINT - {"bool"}},
         **{t: 0 for t in _FIXED64}, **{t: 0 for t in _FIXED32}}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- decoding ------------------------------------------------------------------------------------
def decode(body: bytes) -> dict:
    """The object in a Kubernetes protobuf body, as the JSON API would represent it."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body: missing the 'k8s\\x00' prefix")
    unknown = _message(body[len(MAGIC):], "Unknown", raw_bytes=True)
    type_meta = unknown.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if unknown.get("contentEncoding"):
        raise ValueError(f"cannot decode {kind or 'object'}: content encoding "
                         f"{unknown['contentEncoding']!r} is not supported")
    raw = unknown.get("raw", b"")
    content_type = unknown.get("contentType", "")
    if "json" in content_type:  # runtime.Unknown may also carry JSON
        obj = json.loads(raw or b"{}")
        if not isinstance(obj, dict):
            raise ValueError(f"cannot decode {kind or 'object'}: JSON raw is not an object")
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", api_version)
        return obj
    if content_type and "protobuf" not in content_type:
        raise ValueError(f"cannot decode {kind or 'object'}: raw content type {content_type!r}")
    name = _message_name(api_version, kind)
    return {"kind": kind, "apiVersion": api_version, **_message(raw, name)}


def _message_name(api_version: str, kind: str) -> str:
    if not kind:
        raise ValueError("cannot decode a protobuf body whose typeMeta has no kind")
    name = KINDS.get((api_version, kind)) or ANY_VERSION_KINDS.get(kind)
    if name is None:
        raise ValueError(f"cannot decode protobuf for kind {kind!r} (apiVersion "
                         f"{api_version!r}): only "
                         f"{', '.join(sorted({k for _, k in KINDS} | set(ANY_VERSION_KINDS)))} "
                         "are described")
    return name


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf: varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("malformed protobuf: varint longer than 10 bytes")


def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(buf):
        raise ValueError("truncated protobuf: field runs past the end")
    return buf[pos:pos + n], pos + n


def _fields(buf: bytes):
    """(field number, wire type, value) for each field: an int for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("malformed protobuf: field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = _take(buf, pos, 8)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = _take(buf, pos, n)
        elif wire == 5:
            value, pos = _take(buf, pos, 4)
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(typ: str, wire: int, value, raw_bytes: bool = False):
    if wire != _WIRE[typ]:
        raise ValueError(f"malformed protobuf: {typ} sent with wire type {wire}")
    if typ == "string":
        return value.decode("utf-8", errors="replace")
    if typ == "bytes":
        return bytes(value) if raw_bytes else base64.b64encode(value).decode("ascii")
    if typ == "bool":
        return value != 0
    if typ in ("int64", "enum"):
        return _signed(value, 64)
    if typ == "int32":
        return _signed(value, 32)
    if typ == "uint32":
        return value & 0xFFFFFFFF
    if typ == "uint64":
        return value & 0xFFFFFFFFFFFFFFFF
    return struct.unpack((_FIXED64 | _FIXED32)[typ], value)[0]


def _packed(typ: str, value: bytes) -> list:
    """The elements of a packed repeated scalar field."""
    out, pos = [], 0
    if _WIRE[typ] == 0:
        while pos < len(value):
            item, pos = _varint(value, pos)
            out.append(_scalar(typ, 0, item))
    else:
        size = 8 if _WIRE[typ] == 1 else 4
        if len(value) % size:
            raise ValueError(f"malformed protobuf: packed {typ} of {len(value)} bytes")
        out = [_scalar(typ, _WIRE[typ], value[i:i + size]) for i in range(0, len(value), size)]
    return out


def _convert(typ: str, wire: int, value, raw_bytes: bool = False):
    """One wire value of a field of type typ, in its JSON form."""
    if typ not in SCHEMA:
        return _scalar(typ, wire, value, raw_bytes)
    if wire != 2:
        raise ValueError(f"malformed protobuf: message {typ} sent with wire type {wire}")
    return _message(bytes(value), typ, raw_bytes)


def _time(buf: bytes, micro: bool):
    if not buf:
        return None  # the zero time: Go's JSON writes null
    fields = _message(buf, "Time", raw_bytes=True)
    seconds, nanos = fields.get("seconds", 0), fields.get("nanos", 0) if micro else 0
    try:
        when = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as exc:
        raise ValueError(f"time out of range: {seconds}s") from exc
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _message(buf: bytes, name: str, raw_bytes: bool = False):
    if name in ("Time", "MicroTime") and not raw_bytes:
        return _time(buf, micro=name == "MicroTime")
    schema = SCHEMA[name]
    singles: dict[int, object] = {}
    messages: dict[int, bytearray] = {}  # a repeated singular message merges: concatenate bytes
    lists: dict[int, list] = {}
    maps: dict[int, dict] = {}
    for number, wire, value in _fields(buf):
        spec = schema.get(number)
        if spec is None:
            continue  # unknown fields are skipped, as Go does
        _, typ, card = spec
        if card == MAP:
            if wire != 2:
                raise ValueError(f"malformed protobuf: map entry sent with wire type {wire}")
            key, item = "", _ZERO.get(typ, {})  # a missing key or value is the zero value
            for n, w, v in _fields(value):
                if n == 1:
                    key = _scalar("string", w, v)
                elif n == 2:
                    item = _convert(typ, w, v, raw_bytes)
            maps.setdefault(number, {})[key] = item
        elif card == REP:
            if typ not in SCHEMA and wire == 2 and typ not in ("string", "bytes"):
                lists.setdefault(number, []).extend(_packed(typ, value))
            else:
                lists.setdefault(number, []).append(_convert(typ, wire, value, raw_bytes))
        elif typ in SCHEMA:
            if wire != 2:
                raise ValueError(f"malformed protobuf: message {typ} sent with wire type {wire}")
            messages.setdefault(number, bytearray()).extend(value)
        else:
            singles[number] = _convert(typ, wire, value, raw_bytes)
    for number, data in messages.items():
        typ = schema[number][1]
        if typ == "FieldsV1" and not raw_bytes:
            raw = _message(bytes(data), "FieldsV1", raw_bytes=True).get("Raw", b"")
            try:
                singles[number] = json.loads(raw) if raw else None
            except ValueError as exc:
                raise ValueError(f"FieldsV1 is not JSON: {exc}") from exc
        elif typ in ("Time", "MicroTime"):
            singles[number] = _time(bytes(data), micro=typ == "MicroTime")
        else:
            singles[number] = _message(bytes(data), typ, raw_bytes)
    out = {}
    for number in schema:  # schema order, like the Go struct's JSON
        json_name, typ, card = schema[number]
        if number in singles:
            value = singles[number]
            if card == OMIT and (value is None or value in ("", 0, False)):
                continue
            out[json_name] = value
        elif number in lists:
            out[json_name] = lists[number]
        elif number in maps:
            out[json_name] = maps[number]
    return out


# -- encoding (the inverse; used by tests to build bodies like client-go's) -----------------------
def encode(obj: dict) -> bytes:
    """A Kubernetes protobuf body for obj (a JSON-form dict with apiVersion and kind)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = _message_name(api_version, kind)
    raw = _encode_message({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, name)
    type_meta = _encode_message({"apiVersion": api_version, "kind": kind}, "TypeMeta")
    # like Go, which writes every non-pointer field of runtime.Unknown
    return MAGIC + (_key(1, 2) + _len(type_meta) + _key(2, 2) + _len(raw)
                    + _key(3, 2) + _len(b"") + _key(4, 2) + _len(b""))


def _uvarint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative ints: 10-byte two's complement, as Go writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _len(data: bytes) -> bytes:
    return _uvarint(len(data)) + data


def _encode_scalar(typ: str, value, raw_bytes: bool = False) -> bytes:
    if typ == "string":
        return _len(str(value).encode("utf-8"))
    if typ == "bytes":
        return _len(value if raw_bytes else base64.b64decode(value, validate=True))
    if typ == "bool":
        return _uvarint(1 if value else 0)
    if typ in _VARINT:
        return _uvarint(int(value))
    return struct.pack((_FIXED64 | _FIXED32)[typ], value)


def _encode_time(value, micro: bool) -> bytes:
    if value is None:
        return b""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = when - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    fields = {"seconds": seconds}
    if micro and delta.microseconds:
        fields["nanos"] = delta.microseconds * 1000
    return _encode_message(fields, "Time")


def _encode_value(typ: str, value, raw_bytes: bool = False) -> bytes:
    """The payload of one field value (a length-delimited body for messages)."""
    if typ in ("Time", "MicroTime"):
        return _len(_encode_time(value, micro=typ == "MicroTime"))
    if typ == "FieldsV1":
        raw = b"" if value is None else json.dumps(value, separators=(",", ":")).encode()
        return _len(_encode_message({"Raw": raw}, "FieldsV1", raw_bytes=True))
    if typ in SCHEMA:
        return _len(_encode_message(value, typ, raw_bytes))
    return _encode_scalar(typ, value, raw_bytes)


def _encode_message(obj: dict, name: str, raw_bytes: bool = False) -> bytes:
    schema = SCHEMA[name]
    by_name = {spec[0]: number for number, spec in schema.items()}
    unknown = set(obj) - set(by_name)
    if unknown:
        raise ValueError(f"{name} has no field(s) {', '.join(sorted(unknown))}")
    out = bytearray()
    for number in sorted(by_name[k] for k in obj):
        json_name, typ, card = schema[number]
        value = obj[json_name]
        wire = 2 if typ in SCHEMA or typ in ("string", "bytes") else _WIRE[typ]
        if card == MAP:
            for key in sorted(value):  # Go sorts map keys
                entry = (_key(1, 2) + _encode_scalar("string", key)
                         + _key(2, wire) + _encode_value(typ, value[key], raw_bytes))
                out += _key(number, 2) + _len(entry)
        elif card == REP:
            for item in value:
                out += _key(number, wire) + _encode_value(typ, item, raw_bytes)
        elif value is not None or typ in ("Time", "MicroTime", "FieldsV1"):
            out += _key(number, wire) + _encode_value(typ, value, raw_bytes)
    return bytes(out)
