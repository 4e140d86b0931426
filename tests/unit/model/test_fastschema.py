"""The compiled schema check in front of python-jsonschema: whatever it passes, python-jsonschema
passes too (so no problem is ever missed), tried on valid documents and on every small
mutation of them (a wrong type, an unknown field, a missing key, a string with a trailing
newline) against the real Kubernetes schemas and the federation schema."""
import copy
import datetime

import jsonschema
import pytest
import yaml

from deployer.model import fastschema, manifests
from tests.support import ROOT

OBJECTS = list(yaml.safe_load_all("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: hub, labels: {app: binder}, annotations: {checksum/config: abc}}
spec:
  replicas: 1
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}
  selector: {matchLabels: {app: binder}}
  template:
    metadata: {labels: {app: binder}}
    spec:
      securityContext: {runAsUser: 1000, fsGroup: 1000}
      containers:
        - name: hub
          image: quay.io/jupyterhub/k8s-hub:4.2.0
          args: [jupyterhub, --config, /etc/jupyterhub/jupyterhub_config.py]
          ports: [{containerPort: 8081, name: http}]
          env:
            - {name: PYTHONUNBUFFERED, value: "1"}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: hub, key: token}}
          resources: {requests: {cpu: 200m, memory: 512Mi}, limits: {memory: 1Gi}}
          readinessProbe: {httpGet: {path: /hub/health, port: http}, periodSeconds: 2}
          volumeMounts: [{name: config, mountPath: /etc/jupyterhub}]
      volumes: [{name: config, configMap: {name: hub}}]
---
apiVersion: v1
kind: Service
metadata: {name: binder}
spec:
  type: LoadBalancer
  selector: {app: binder}
  ports: [{name: http, port: 80, targetPort: 8585, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: user-egress}
spec:
  podSelector: {matchLabels: {component: singleuser-server}}
  policyTypes: [Egress]
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]
      ports: [{port: 443, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: binder, annotations: {cert-manager.io/cluster-issuer: letsencrypt}}
spec:
  ingressClassName: traefik
  tls: [{hosts: [binder.example.org], secretName: binder-tls}]
  rules:
    - host: binder.example.org
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: binder, port: {number: 80}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: hub}
spec: {minAvailable: 1, selector: {matchLabels: {component: hub}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: hub}
data: {config.yaml: "a: 1\\n"}
"""))


def _mutations(doc, path=()):
    """(path, mutated copy) for every small change to one node of `doc`."""
    def at(root, path):
        node = root
        for part in path:
            node = node[part]
        return node

    def changed(change):
        out = copy.deepcopy(doc)
        change(out)
        return out

    node = at(doc, path)
    if isinstance(node, dict):
        yield path + ("+unknown",), changed(lambda d: at(d, path).__setitem__("unknownField", 1))
        for key in list(node):
            yield path + (key, "-"), changed(lambda d, k=key: at(d, path).pop(k))
            yield from _mutations(doc, path + (key,))
    elif isinstance(node, list):
        for i in range(len(node)):
            yield from _mutations(doc, path + (i,))
        if path:
            yield path + ("[]",), changed(lambda d: _set(d, path, []))
    if path:
        for wrong in ({"x": 1}, [1], 12345, "text", None, True, False, 1.5, 1.0, 2**70,
                      "text\n", "ü", "٣"):
            if type(wrong) is not type(node) or wrong != node:     # (True == 1 in Python)
                yield path + (repr(wrong),), changed(lambda d, w=wrong: _set(d, path, w))
        if isinstance(node, str):
            yield path + ("+newline",), changed(lambda d: _set(d, path, node + "\n"))


def _set(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _agree(fast, slow, doc) -> tuple[int, int]:
    """Check every mutation; (how many the fast check passed, how many it sent on)."""
    passed = sent = 0
    for path, mutated in _mutations(doc):
        if fastschema.passes(fast, mutated):
            passed += 1
            errors = list(slow.iter_errors(mutated))
            assert not errors, f"the fast check passed {path}: {errors[0].message}"
        else:
            sent += 1
    return passed, sent


@pytest.mark.parametrize("kube", ["1.33", "1.34"])
@pytest.mark.parametrize("obj", list(OBJECTS), ids=lambda o: o["kind"])
def test_what_the_fast_check_passes_of_a_kubernetes_object_python_jsonschema_passes(obj, kube):
    version = manifests._schema_version(kube)
    fast = manifests._fast_validator(version, obj["kind"], obj["apiVersion"])
    slow = manifests._validator(version, obj["kind"], obj["apiVersion"])
    assert fast is not None
    assert fastschema.passes(fast, obj) and not list(slow.iter_errors(obj))
    passed, sent = _agree(fast, slow, obj)
    assert sent > 10 and passed > 0, (passed, sent)


@pytest.mark.parametrize("module,path,least", [
    ("federation", "config/federation.yaml", 100), ("dependencies", "config/dependencies.yaml", 50)])
def test_what_the_fast_check_passes_of_a_config_file_python_jsonschema_passes(module, path,
                                                                           least):
    import importlib

    loader = importlib.import_module(f"deployer.model.{module}")
    data = yaml.safe_load((ROOT / path).read_text())
    from deployer.model.federation import schema_file

    schema, fast = schema_file(loader.SCHEMA_PATH)
    slow = jsonschema.validators.validator_for(schema)(schema)
    assert fastschema.passes(fast, data) and not list(slow.iter_errors(data))
    passed, sent = _agree(fast, slow, data)
    assert sent > least and passed > 0, (passed, sent)


S2020 = "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("schema,instance", [
    ({"type": "number", "multipleOf": 0.1}, 0.3),
    ({"type": "string", "pattern": "^\\D$"}, "٣"),                  # \D is ASCII to one
    ({"type": "string", "pattern": "^[^\\d]$"}, "٣"),
    ({"type": "string", "pattern": "^[^\\]\\d]$"}, "٣"),
    ({"type": "string", "pattern": "(?i)^[^a-z]$"}, "İ"),
    ({"type": "string", "pattern": "^\\s$"}, "\ufeff"),
    ({"type": "string", "pattern": "^\\p{L}$"}, "a"),
    ({"not": {"pattern": "^\\d$"}}, "١"),                            # stricter, then negated
    ({"not": {"pattern": "^a$"}}, "a\n"),                           # Python's $ and a newline
    ({"if": {"pattern": "^\\w+$"}, "then": {"maxLength": 1}}, "éé"),
    ({"oneOf": [{"pattern": "^\\w+$"}, {"minLength": 1}]}, "é"),
    ({"maximum": 5}, float("inf")),
    ({"type": "object", "patternProperties": {"^\\d": {"type": "string"}}}, {"٣": 1}),
    ({"$schema": "http://json-schema.org/draft-07/schema#",         # draft 7 dependencies
      "dependencies": {"a": {"properties": {"b": {"multipleOf": 0.01}}}}}, {"a": 1, "b": 0.07}),
    ({"$ref": "#/x-elsewhere/y", "x-elsewhere": {"y": {"multipleOf": 0.01}}}, 0.07),
])
def test_a_schema_the_two_read_differently_is_left_to_python_jsonschema(schema, instance):
    schema = {"$schema": S2020, **schema}
    assert not fastschema.trusted(schema)
    assert fastschema.validator_for(schema) is None
    assert fastschema.registry([("https://example.org/s.json", schema)]) is None
    # (and it is a real difference: python-jsonschema rejects what jsonschema-rs would pass)
    import jsonschema_rs

    try:
        fast = jsonschema_rs.validator_for(schema, validate_formats=False)
    except Exception:  # noqa: BLE001 - jsonschema-rs cannot even compile it
        return
    slow = jsonschema.validators.validator_for(schema)(schema)
    try:
        assert fast.is_valid(instance) and list(slow.iter_errors(instance))
    except Exception:  # noqa: BLE001 - or Python cannot compile its pattern
        assert "\\p" in str(schema)


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^[-\\w._()]{1,89}[-\\w_()]$"},
    {"type": "string", "pattern": "^https?://[^/]+(/.*)?$"},
    {"type": "string", "pattern": "^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$"},
    {"type": "integer", "minimum": 0, "maximum": 1000},
    {"type": ["integer", "null"], "minimum": 0},
    {"if": {"properties": {"a": {"const": 1}}}, "then": {"pattern": "^\\w+$"}},
    {"type": "object", "properties": {"pattern": {"type": "string"},      # names, not keywords
                                      "multipleOf": {"type": "number"}}},
])
def test_a_schema_read_alike_or_more_strictly_by_jsonschema_rs_is_trusted(schema):
    schema = {"$schema": S2020, **schema}
    assert fastschema.trusted(schema) and fastschema.validator_for(schema) is not None


def test_every_kubernetes_schema_the_example_needs_is_trusted():
    for kube in ("1.33", "1.34"):
        version = manifests._schema_version(kube)
        assert fastschema.trusted(manifests._definitions_file(version))
        assert manifests._fast_registry(version) is not None


def test_an_object_whose_yaml_makes_tuples_is_judged_by_python_jsonschema_alone():
    # tuples are arrays to jsonschema-rs and not to python-jsonschema
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array",
              "items": {"type": "array"}}
    assert fastschema.passes(fastschema.validator_for(schema), [("a", "b")])
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors([("a", "b")]))
    # the YAML tags that make them mark the object; its problems are python-jsonschema's
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
            "data: !!omap [{a: b}]\n")
    [obj] = manifests.parse(text)
    assert obj.tagged and obj.body["data"] == [("a", "b")]
    [problem] = manifests.validate([obj], "1.34").problems
    assert problem.path == "data"
    assert not manifests.parse(text.replace("!!omap [{a: b}]", "{a: b}"))[0].tagged
    # however the tag is spelled
    for spelled in ("!!om%61p [{a: b}]", "!<tag:yaml.org%2C2002:omap> [{a: b}]",
                    "!!pairs [{a: b}]"):
        [obj] = manifests.parse(text.replace("!!omap [{a: b}]", spelled))
        assert obj.tagged and obj.body["data"] == [("a", "b")], spelled


def test_anything_the_fast_check_cannot_judge_goes_to_python_jsonschema():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"a": {"type": "string"}}}
    fast = fastschema.validator_for(schema)
    assert fastschema.passes(fast, {"a": "x"}) and not fastschema.passes(fast, {"a": 1})
    assert not fastschema.passes(fast, {"a": datetime.date(2026, 1, 1)})   # not JSON
    assert not fastschema.passes(fast, {"a": b"bytes"})
    assert not fastschema.passes(None, {"a": "x"})                         # nothing compiled
    # a $ref to anything not given is never fetched: no fast check for that schema
    remote = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": "http://127.0.0.1:9/elsewhere.json"}
    assert fastschema.validator_for(remote) is None


def test_a_kind_name_is_never_a_path():
    version = manifests._schema_version("1.34")
    for kind, api in (("../all", "v1"), ("Deployment", "apps/../../v1"), ("x/y", "v1"),
                      ("", "v1")):
        assert manifests._kind_schema(version, kind, api) is None
    assert manifests._kind_schema(version, "Deployment", "apps/v1") is not None
    assert manifests._kind_schema(version, "Deployment", "extensions/v1") is None
