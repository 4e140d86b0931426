"""Kubernetes protobuf bodies in the API test double: round trips, wire details, real kubectl."""
from __future__ import annotations

import base64
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fakes.kube_api import protobuf
from tests.fakes.kube_api.protobuf import decode, encode

KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"
BINARY = bytes([0, 1, 2, 0xFE, 0xFF]) + "é".encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def round_trip(obj: dict) -> dict:
    body = encode(obj)
    assert body.startswith(b"k8s\x00")
    back = decode(body)
    assert back == obj
    assert json.loads(json.dumps(back)) == back  # plain JSON types only
    return back


# -- hand-made protobuf, independent of protobuf.encode --------------------------------------------
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field(number: int, value) -> bytes:
    """A varint field for an int, a length-delimited one for bytes/str."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


# -- round trips ---------------------------------------------------------------------------------
def test_secret_round_trip():
    round_trip({
        "kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "apps",
                     "labels": {"owner": "helm", "name": "web", "version": "1"},
                     "annotations": {"a.example.org/x": "", "note": "ünïcode ✓"}},
        "immutable": False,  # a Go pointer: false is kept
        "data": {"release": b64(BINARY), "empty": ""},
        "stringData": {"plain": "text"},
        "type": "helm.sh/release.v1",
    })


def test_configmap_round_trip():
    round_trip({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "cfg", "namespace": "default"},
        "immutable": True,
        "data": {"config.yaml": "a: 1\nb: [x, y]\n"},
        "binaryData": {"blob.bin": b64(BINARY)},
    })


def test_namespace_round_trip():
    round_trip({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating", "conditions": [
            {"type": "NamespaceDeletionContentFailure", "status": "False",
             "lastTransitionTime": "2025-03-04T05:06:07Z", "reason": "ContentDeleted",
             "message": "All content successfully deleted"}]},
    })


def test_lease_round_trip():
    back = round_trip({
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "leader", "namespace": "kube-system"},
        "spec": {"holderIdentity": "node-1_4f2a", "leaseDurationSeconds": 15,
                 "acquireTime": "2025-01-02T03:04:05.123456Z",
                 "renewTime": "2025-01-02T03:04:20.000001Z", "leaseTransitions": 0,
                 "strategy": "OldestEmulationVersion", "preferredHolder": "node-2"},
    })
    assert back["spec"]["leaseTransitions"] == 0  # pointer field: a sent zero stays


def test_delete_options_round_trip():
    for api_version in ("meta.k8s.io/v1", "v1"):  # DeleteOptions is registered in every group
        round_trip({
            "kind": "DeleteOptions", "apiVersion": api_version,
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "0f6a1a8e-2d4c-4d3b-9c1e-1234567890ab",
                              "resourceVersion": "42"},
            "orphanDependents": False,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        })


def test_object_meta_with_everything():
    round_trip({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {
            "name": "cfg", "generateName": "cfg-", "namespace": "default",
            "selfLink": "/api/v1/namespaces/default/configmaps/cfg",
            "uid": "7d2e4c8a-1b2c-4d5e-8f90-abcdefabcdef", "resourceVersion": "1234",
            "generation": 3, "creationTimestamp": "2024-12-31T23:59:59Z",
            "deletionTimestamp": "2025-01-01T00:00:30Z", "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web"}, "annotations": {"k": "v"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                 "uid": "11111111-2222-3333-4444-555555555555", "controller": True,
                 "blockOwnerDeletion": False},
                {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u2"}],
            "finalizers": ["example.org/cleanup", "kubernetes"],
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                 "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {".": {}, "f:config.yaml": {}},
                              "f:metadata": {"f:labels": {"f:app": {}}}}},
                {"manager": "controller", "operation": "Update", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}},
                 "subresource": "status"}],
        },
        "data": {"k": "v"},
    })


# -- Go's wire habits ----------------------------------------------------------------------------
def test_go_writes_zero_value_fields_which_json_omits():
    """client-go writes every non-pointer field; the dict keeps only what JSON would show."""
    meta = (field(1, "ns1") + field(2, "") + field(3, "") + field(4, "") + field(5, "")
            + field(6, "") + field(7, 0) + field(8, b""))  # creationTimestamp: zero time
    raw = field(1, meta) + field(2, b"") + field(3, field(1, ""))
    assert decode(envelope("v1", "Namespace", raw)) == {
        "kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns1"},
        "spec": {}, "status": {}}
    # pointer fields and fields without omitempty keep their zero values
    secret = field(1, field(1, "s")) + field(5, 0) + field(3, "")
    assert decode(envelope("v1", "Secret", secret)) == {
        "kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "immutable": False}
    owner = field(13, field(5, "") + field(1, "Pod") + field(3, "") + field(4, ""))
    assert decode(envelope("v1", "Secret", field(1, owner)))["metadata"]["ownerReferences"] == [
        {"apiVersion": "", "kind": "Pod", "name": "", "uid": ""}]


def test_negative_integers_are_ten_byte_twos_complement():
    body = encode({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": -1})
    assert b"\x08" + b"\xff" * 9 + b"\x01" in body
    assert decode(body)["gracePeriodSeconds"] == -1
    lease = field(2, field(2, -7))  # int32 leaseDurationSeconds = -7, sign-extended to 10 bytes
    obj = decode(envelope("coordination.k8s.io/v1", "Lease", lease))
    assert obj["spec"] == {"leaseDurationSeconds": -7}
    assert decode(envelope("coordination.k8s.io/v1", "Lease", field(2, field(5, 2**31 + 5))))[
        "spec"]["leaseTransitions"] == -(2**31) + 5  # int32 wraps like Go's int32()


def test_time_and_micro_time():
    # Time keeps whole seconds (Go drops nanos when decoding); MicroTime keeps microseconds
    meta = field(8, field(1, 1735689600) + field(2, 999_999_999)) + field(9, b"")
    obj = decode(envelope("v1", "Secret", field(1, meta)))
    assert obj["metadata"] == {"creationTimestamp": "2025-01-01T00:00:00Z",
                               "deletionTimestamp": None}  # a zero *Time is JSON null
    spec = field(3, field(1, 1735689600) + field(2, 123_456_789)) + field(4, field(1, 0))
    assert decode(envelope("coordination.k8s.io/v1", "Lease", field(2, spec)))["spec"] == {
        "acquireTime": "2025-01-01T00:00:00.123456Z",
        "renewTime": "1970-01-01T00:00:00.000000Z"}
    # a message sent in two pieces merges, as protobuf says
    split = field(3, field(1, 1735689600)) + field(3, field(2, 5_000))
    assert decode(envelope("coordination.k8s.io/v1", "Lease", field(2, split)))["spec"] == {
        "acquireTime": "2025-01-01T00:00:00.000005Z"}


def test_fields_v1_raw_json():
    entry = field(1, "helm") + field(2, "Update") + field(6, "FieldsV1") + field(
        7, field(1, b'{"f:data":{"f:release":{}},"f:metadata":{"f:labels":{".":{}}}}'))
    obj = decode(envelope("v1", "Secret", field(1, field(17, entry))))
    assert obj["metadata"]["managedFields"] == [{
        "manager": "helm", "operation": "Update", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:release": {}}, "f:metadata": {"f:labels": {".": {}}}}}]
    with pytest.raises(ValueError, match="FieldsV1"):
        decode(envelope("v1", "Secret", field(1, field(17, field(7, field(1, b"{nope"))))))


def test_map_entries_and_unknown_fields():
    entries = (field(2, field(1, "a") + field(2, b"\x00\xff")) + field(2, field(2, b"x"))
               + field(2, field(1, "novalue")) + field(2, field(1, "a") + field(2, b"last")))
    unknown = (varint(99 << 3) + varint(5) + varint(98 << 3 | 1) + b"\x00" * 8
               + varint(97 << 3 | 5) + b"\x00" * 4 + field(96, b"whatever"))
    obj = decode(envelope("v1", "Secret", unknown + field(1, field(1, "s") + unknown) + entries))
    # the last duplicate key wins; a missing key or value is the zero value; unknowns are skipped
    assert obj == {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"},
                   "data": {"a": b64(b"last"), "": b64(b"x"), "novalue": ""}}


def test_packed_and_unpacked_repeated_scalars(monkeypatch):
    monkeypatch.setitem(protobuf.SCHEMA, "Probe", {
        1: ("ints", "int64", "rep"), 2: ("flags", "bool", "rep"), 3: ("doubles", "double", "rep"),
        4: ("fixed", "fixed32", "rep"), 5: ("words", "string", "rep")})
    monkeypatch.setitem(protobuf.KINDS, ("test/v1", "Probe"), "Probe")
    packed = field(1, varint(1) + varint(-2) + varint(300))
    unpacked = field(1, 7) + field(1, -8)
    raw = (packed + unpacked + field(2, b"\x01\x00") + field(2, 1)
           + field(3, b"\x00\x00\x00\x00\x00\x00\xf8\x3f")  # packed double 1.5
           + varint(3 << 3 | 1) + b"\x00\x00\x00\x00\x00\x00\x04\x40"  # unpacked double 2.5
           + varint(4 << 3 | 5) + b"\x07\x00\x00\x00" + field(5, "x") + field(5, ""))
    assert decode(envelope("test/v1", "Probe", raw)) == {
        "kind": "Probe", "apiVersion": "test/v1", "ints": [1, -2, 300, 7, -8],
        "flags": [True, False, True], "doubles": [1.5, 2.5], "fixed": [7], "words": ["x", ""]}
    assert decode(encode({"kind": "Probe", "apiVersion": "test/v1", "ints": [-1, 2],
                          "doubles": [0.25], "fixed": [9]}))["ints"] == [-1, 2]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="k8s"):
        decode(b'{"kind": "Secret"}')
    with pytest.raises(ValueError, match="'Pod'"):
        decode(envelope("v1", "Pod", field(1, field(1, "p"))))
    with pytest.raises(ValueError, match="'Lease'"):
        decode(envelope("coordination.k8s.io/v1beta1", "Lease", b""))
    with pytest.raises(ValueError, match="'Pod'"):
        encode({"kind": "Pod", "apiVersion": "v1"})
    with pytest.raises(ValueError, match="truncated"):
        decode(envelope("v1", "Secret", field(1, field(1, "name"))[:-2]))
    with pytest.raises(ValueError, match="wire type"):
        decode(envelope("v1", "Secret", field(1, 5)))  # metadata as a varint
    with pytest.raises(ValueError, match="no kind"):
        decode(b"k8s\x00" + field(2, b""))
    with pytest.raises(ValueError, match="encoding"):
        decode(envelope("v1", "Secret", b"") + field(3, "gzip"))
    with pytest.raises(ValueError, match="bogus"):
        encode({"kind": "Secret", "apiVersion": "v1", "bogus": 1})


def test_json_inside_unknown():
    body = envelope("v1", "Secret", b'{"metadata": {"name": "s"}}') + field(4, "application/json")
    assert decode(body) == {"metadata": {"name": "s"}, "kind": "Secret", "apiVersion": "v1"}


# -- what the real kubectl sends -------------------------------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    posts: list = []

    def log_message(self, *args):
        pass

    def _json(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api":
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            verbs = ["create", "get", "list"]
            return self._json(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": False,
                 "kind": "Namespace", "verbs": verbs},
                {"name": "secrets", "singularName": "secret", "namespaced": True,
                 "kind": "Secret", "verbs": verbs},
                {"name": "configmaps", "singularName": "configmap", "namespaced": True,
                 "kind": "ConfigMap", "verbs": verbs}]})
        if path == "/openapi/v3":
            return self._json(200, {"paths": {}})
        self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type", "")
        self.posts.append((self.path, content_type, body))
        try:
            obj = decode(body) if "protobuf" in content_type else json.loads(body)
        except ValueError:
            return self._json(500, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "code": 500})
        self._json(201, obj)


@pytest.fixture
def recorder(tmp_path):
    """An HTTP server recording POST bodies, and a kubeconfig (token auth) pointing at it."""
    handler = type("Recorder", (_Recorder,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: rec
  cluster: {{server: "http://127.0.0.1:{server.server_port}"}}
users:
- name: rec
  user: {{token: test-only-token}}
contexts:
- name: rec
  context: {{cluster: rec, user: rec, namespace: default}}
current-context: rec
""")
    kubeconfig.chmod(0o600)

    def kubectl(*args):
        result = subprocess.run([str(KUBECTL), *args, "--kubeconfig", str(kubeconfig)],
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    yield kubectl, handler.posts
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("args, path, kind, check", [
    (["create", "namespace", "pb-ns"], "/api/v1/namespaces", "Namespace",
     lambda obj: obj["metadata"] == {"name": "pb-ns"}),
    (["create", "secret", "generic", "s", "--from-literal=a=b", "-n", "default"],
     "/api/v1/namespaces/default/secrets", "Secret",
     lambda obj: obj["metadata"] == {"name": "s", "namespace": "default"}
     and obj["data"] == {"a": b64(b"b")}),
])
def test_real_kubectl_create_sends_protobuf(recorder, args, path, kind, check):
    kubectl, posts = recorder
    kubectl(*args)
    assert len(posts) == 1
    url, content_type, body = posts[0]
    assert url.split("?")[0] == path
    # kubectl 1.35's typed clients send protobuf (no JSON fallback)
    assert content_type == "application/vnd.kubernetes.protobuf"
    obj = decode(body)
    assert obj["kind"] == kind and obj["apiVersion"] == "v1"
    assert check(obj)
    # the very dict kubectl's own JSON gives for the object
    assert obj == json.loads(kubectl(*args, "--dry-run=client", "-o", "json"))


def test_real_kubectl_configmap_with_binary_data(recorder, tmp_path):
    kubectl, posts = recorder
    (tmp_path / "blob.bin").write_bytes(BINARY[:4] + b"\x80\x81")
    args = ["create", "configmap", "cm", "-n", "default", "--from-literal=greeting=hello",
            f"--from-file=blob.bin={tmp_path / 'blob.bin'}"]
    kubectl(*args)
    (_, content_type, body), = posts
    assert content_type == "application/vnd.kubernetes.protobuf"
    obj = decode(body)
    assert obj["data"] == {"greeting": "hello"}
    assert obj["binaryData"] == {"blob.bin": b64(BINARY[:4] + b"\x80\x81")}
    assert obj == json.loads(kubectl(*args, "--dry-run=client", "-o", "json"))
