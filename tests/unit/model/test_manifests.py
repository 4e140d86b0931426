import pytest

from deployer.model import manifests
from deployer.errors import ConfigError
from deployer.model.redact import Redactor

DEPLOYMENT = """---
# Source: mybinder/templates/static/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: static
spec:
  selector:
    matchLabels: {app: static}
  template:
    metadata:
      labels: {app: static}
    spec:
      containers:
        - name: nginx
          image: nginx:1.29.3
"""


def test_parse_keeps_the_template_source():
    objects = manifests.parse(DEPLOYMENT + "---\n# Source: x.yaml\n\n")
    assert [(o.ref, o.source) for o in objects] == [
        ("Deployment/static", "mybinder/templates/static/deployment.yaml")]


def test_valid_object_passes():
    assert manifests.validate(manifests.parse(DEPLOYMENT), "1.34").problems == []


def test_unknown_field_is_an_error_with_its_path():
    text = DEPLOYMENT.replace("image: nginx:1.29.3", "image: nginx:1.29.3\n          imagePullPolcy: Always")
    problems = manifests.validate(manifests.parse(text), "1.34").problems
    assert len(problems) == 1
    assert str(problems[0]) == ("Deployment/static (mybinder/templates/static/deployment.yaml): "
                                "spec.template.spec.containers[0]: unknown field 'imagePullPolcy'")


def test_wrong_type_and_every_error_reported():
    text = DEPLOYMENT.replace("kind: Deployment", "kind: Deployment\nspec_x: 1").replace(
        "selector:", "replicas: two\n  selector:")
    problems = manifests.validate(manifests.parse(text), "1.33").problems
    assert {p.path for p in problems} == {"", "spec.replicas"}


def test_removed_api_version_is_not_served():
    text = """apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: hub}
spec: {minAvailable: 1}
"""
    problems = manifests.validate(manifests.parse(text), "1.33").problems
    assert "policy/v1beta1 PodDisruptionBudget is not served by Kubernetes 1.33" in str(problems[0])


def test_custom_resources_are_listed_not_failed():
    text = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: le}\nspec: {}\n"
    checked = manifests.validate(manifests.parse(text), "1.34")
    assert checked.problems == [] and checked.custom == ["ClusterIssuer/le"]


def test_kubernetes_version_without_schemas():
    with pytest.raises(ConfigError, match="no Kubernetes schemas for version 1.99"):
        manifests.validate(manifests.parse(DEPLOYMENT), "1.99")


def test_redacted_text_masks_secret_data_and_known_values():
    text = """apiVersion: v1
kind: Secret
metadata: {name: hub}
data:
  token: c2VjcmV0LXRva2Vu
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  url: https://user:secret-token@example.org
"""
    out = manifests.redacted_text(manifests.parse(text), Redactor(["secret-token"]))
    assert "c2VjcmV0LXRva2Vu" not in out and "secret-token" not in out
    assert "token: '***'" in out and "https://user:***@example.org" in out


def test_a_quoted_value_is_masked_before_it_is_shortened():
    secret = "s3cr3t-" + "k" * 90
    text = DEPLOYMENT.replace("selector:", f"replicas: {secret}\n  selector:")
    problems = manifests.validate(manifests.parse(text), "1.34", Redactor([secret])).problems
    message = str(problems[0])
    assert "spec.replicas: expected" in message
    assert secret[:20] not in message and "***" in message
    unmasked = str(manifests.validate(manifests.parse(text), "1.34").problems[0])
    assert secret[:20] in unmasked and unmasked.endswith("...")


def test_redacted_text_masks_by_position_and_stays_valid_yaml():
    import yaml

    secret = "pässwörd " * 15
    text = """apiVersion: v1
kind: Secret
metadata: {name: hub}
stringData: {token: not-registered-anywhere}
data: {key: bm90LXJlZ2lzdGVyZWQ=}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: hub-config}
data:
  values.yaml: |
    auth:
      password: %s
""" % secret
    shown = manifests.redacted_text(manifests.parse(text), Redactor([secret]))
    docs = list(yaml.safe_load_all(shown))
    assert docs[0]["stringData"] == {"token": "***"} and docs[0]["data"] == {"key": "***"}
    assert "***" in docs[1]["data"]["values.yaml"]
    assert "w\\xF6rd" not in shown and "wörd" not in shown and "not-registered" not in shown


@pytest.mark.parametrize("kind,name,ok", [
    ("Deployment", "hub", True), ("ConfigMap", "a.b-c", True), ("Deployment", "Hub", False),
    ("Deployment", "hub_1", False), ("Service", "proxy.public", False),
    ("Service", "x" * 64, False), ("ConfigMap", "x" * 254, False),
    ("ClusterRole", "system:binderhub", True), ("Namespace", "-x", False),
    ("Service", "2i2c-static", False), ("Namespace", "2i2c", True),
])
def test_object_names_are_checked_as_the_api_server_does(kind, name, ok):
    obj = manifests.K8sObject({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}},
                              "mybinder/templates/x.yaml")
    problems = [p for p in manifests.validate([obj], "1.34").problems
                if p.path == "metadata.name"]
    assert (not problems) == ok, problems


def test_served_api_versions_are_the_ga_ones_of_the_version():
    from deployer.model.manifests import served_api_versions

    served = served_api_versions("1.33")
    assert {"policy/v1", "policy/v1/PodDisruptionBudget", "v1", "v1/Service", "apps/v1/Deployment",
            "networking.k8s.io/v1/IngressClass"} <= set(served)
    assert not any("beta" in v or "alpha" in v for v in served)
    assert not any(v.endswith("List") for v in served)
    assert "policy/v1beta1" not in served
    # resource.k8s.io went GA in 1.34
    assert "resource.k8s.io/v1" in served_api_versions("1.34")
    assert "resource.k8s.io/v1" not in served


def test_served_api_versions_kept_for_the_next_run_are_what_the_schemas_give(tmp_path):
    import json

    from deployer.model import manifests

    manifests._served.cache_clear()
    computed = manifests.served_api_versions("1.34")
    manifests._served.cache_clear()
    assert manifests.served_api_versions("1.34", tmp_path) == computed
    [entry] = (tmp_path / "kubernetes").iterdir()
    assert json.loads(entry.read_text()) == list(computed)
    # what the next run reads is what was kept (shown by changing it) ...
    entry.write_text(json.dumps(["v1", "v1/Service"]))
    manifests._served.cache_clear()
    assert manifests.served_api_versions("1.34", tmp_path) == ("v1", "v1/Service")
    # ... for that version only; an entry that is not a list of strings is made again
    assert manifests.served_api_versions("1.33", tmp_path) != ("v1", "v1/Service")
    entry.write_text('{"not": "a list"}')
    manifests._served.cache_clear()
    assert manifests.served_api_versions("1.34", tmp_path) == computed
    manifests._served.cache_clear()


def test_a_trusted_verdict_on_the_definitions_is_kept_for_the_next_run(tmp_path):
    """(walking all of a version's definitions takes milliseconds; the verdict is kept by
    the schema file's identity and the code that judged it)"""
    import json

    from deployer.model import fastschema, manifests

    version = manifests._schema_version("1.34")
    definitions = manifests._definitions_file(version)
    assert manifests._definitions_trusted(version, definitions, str(tmp_path)) is True
    kept = list((tmp_path / "kubernetes").iterdir())
    assert [json.loads(p.read_text()) for p in kept] == [True]
    # what is kept is what the next run reads: shown with a document it would not trust
    untrusted = {"$defs": {"x": {"type": "number", "multipleOf": 0.1}}}
    assert not fastschema.trusted(untrusted)
    assert manifests._definitions_trusted(version, untrusted, str(tmp_path)) is True
    assert manifests._definitions_trusted(version, untrusted, None) is False
    # an untrusted verdict is not kept (it is judged again, and the kept one stays)
    assert manifests._definitions_trusted(manifests._schema_version("1.33"), untrusted,
                                          str(tmp_path)) is False
    assert len(list((tmp_path / "kubernetes").iterdir())) == 1


# -- rendered documents read from libyaml's events, against PyYAML's safe loader ------------------

def _typed(node):
    if isinstance(node, dict):
        return ("map", [(_typed(k), _typed(v)) for k, v in node.items()])
    if isinstance(node, list):
        return ("seq", [_typed(v) for v in node])
    return (type(node).__name__, repr(node))


def _reads_alike(doc):
    """True when the quick reading took `doc` (and read it as the loader does)."""
    import yaml

    from deployer.model import manifests

    quick = manifests._quick_body(doc)
    try:
        loaded = yaml.load(doc, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, ValueError):
        assert quick is manifests._UNSURE, doc
        return False
    if quick is manifests._UNSURE:
        return False
    assert _typed(quick) == _typed(loaded), doc
    return True


def test_the_quick_reading_of_rendered_documents_is_the_safe_loaders():
    import itertools

    from tests.unit.model.test_yamlio import SCALARS, _corpus

    files = [p.read_text(encoding="utf-8") for p in _corpus()]
    assert sum(_reads_alike(text) for text in files) > 30
    taken = 0
    for scalar in SCALARS + ["yes", "No", "ON", "off", "y", "0755", "0o17", "09", "1e3",
                             "1.0e+3", "190:20:30", "2001-12-14t21:59:43.10-05:00", "-.inf"]:
        for text in (f"key: {scalar}\n", f"list:\n  - {scalar}\n", f"{scalar}: v\n",
                     f"- {scalar}\n", f"a:\n  b: {scalar}\n  c: [x]\n"):
            taken += _reads_alike(text)
    assert taken > 300
    alphabet = "01789.-+_:eExXobT ~nNtfyYO"
    for size in (1, 2, 3):
        for chars in itertools.product(alphabet, repeat=size):
            scalar = "".join(chars)
            if scalar == scalar.strip() and not scalar.startswith(("- ", ": ")):
                _reads_alike(f"k: {scalar}\n")


def test_a_value_the_loader_cannot_construct_is_one_error_naming_the_template():
    from deployer.model import manifests

    for value in ("0x_", "2001-13-45"):
        with pytest.raises(ConfigError) as info:
            manifests.parse(f"---\n# Source: c/templates/a.yaml\nkind: X\nx: {value}\n")
        assert info.value.file == "c/templates/a.yaml"
        assert "template rendered invalid YAML" in str(info.value)


def test_what_the_quick_reading_leaves_to_the_loader_is_read_as_before():
    from deployer.model import manifests

    text = ("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: a}\ndata:\n  mode: 0755\n  when: 2001-12-14\n"
            "---\n# Source: c/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: &m {name: b}\nother: *m\nlist: !!omap [{x: 1}]\n")
    first, second = manifests.parse(text)
    assert first.body["data"] == {"mode": 493, "when": __import__("datetime").date(2001, 12, 14)}
    assert second.body["other"] is second.body["metadata"] and second.tagged
    assert not first.tagged and first.source == "c/templates/a.yaml"


def test_a_key_written_twice_in_one_map_is_found_with_its_path():
    text = ("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\n"
            "metadata:\n  name: a\n  labels:\n    app: x\n    tier: web\n    app: x\n"
            "data:\n  list: |\n    app: not a key\n"
            "---\n# Source: c/templates/b.yaml\napiVersion: v1\nkind: List\nmetadata: {name: b}\n"
            "items:\n  - {kind: ConfigMap, metadata: {name: c}, kind: Secret}\n"
            "---\n# Source: c/templates/ok.yaml\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: ok}\n")
    first, second, third = manifests.parse(text)
    assert first.duplicates == (("metadata", "labels", "app"),)
    assert first.body["metadata"]["labels"] == {"app": "x", "tier": "web"}   # read as before
    assert second.duplicates == (("items", 0, "kind"),)
    assert third.duplicates == ()
    checked = manifests.validate([first], "1.34")
    assert checked.problems == []                       # the API server takes it: a warning
    assert [str(w) for w in checked.warnings] == [
        "ConfigMap/a (c/templates/a.yaml): metadata.labels.app: this key is written twice in "
        "one map: helm keeps the last value and drops the other without a word"]


def test_keys_are_compared_as_the_loader_reads_them():
    # YAML 1.1: `on` and `true` are one key; `"1"` and `1` are two; merge keys and the keys
    # they bring are not duplicates; an alias is walked once
    assert manifests.duplicate_keys("a:\n  on: 1\n  true: 2\n") == (("a", True),)
    assert manifests.duplicate_keys("a:\n  '1': x\n  1: y\n") == ()
    assert manifests.duplicate_keys(
        "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\nn:\n  <<: [*b]\n  <<: *b\n") == ()
    assert manifests.duplicate_keys("a: &a {k: 1, k: 2}\nb: *a\nc: [*a, *a]\n") == (("a", "k"),)
    assert manifests.duplicate_keys("[unclosed\n") == ()
