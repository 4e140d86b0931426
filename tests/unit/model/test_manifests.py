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
