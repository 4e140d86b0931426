"""The stand-in chart mirror: real helm packages, a real chart repository, faithful schemas."""
from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.fakes import chart_repo
from tests.support import needs_upstream
from tests.fakes.chart_repo import (BINDERHUB, CRYPTNONO, GRAFANA, JUPYTERHUB, PROMETHEUS,
                                    STANDINS, TRAEFIK)
# Re-exported fixture; harmless if tests/conftest.py imports it as well.
from tests.fakes.fixtures import HELM, chart_mirror  # noqa: F401

K8S_VERSIONS = ("1.33.0", "1.34.0")

# mybinder-style values for the binderhub chart (as the umbrella chart passes them down).
BINDERHUB_VALUES = {
    "replicas": 2,
    "imageBuilderType": "dind",
    "service": {"type": "ClusterIP"},
    "registry": {"url": "https://registry.example.org", "username": "robot",
                 "password": "REGISTRY-PASSWORD-123"},
    "config": {
        "BinderHub": {"use_registry": True, "hub_url": "https://hub.staging.example.org",
                      "image_prefix": "registry.example.org/binder-"},
        "GitHubRepoProvider": {"access_token": "GH-TOKEN-456"},
    },
    "extraPodSpec": {"priorityClassName": "binderhub-core"},
    "extraEnv": {
        "EVENT_LOG_NAME": "binderhub-events-text",
        "GOOGLE_APPLICATION_CREDENTIALS": {
            "valueFrom": {"secretKeyRef": {"name": "events-archiver-secret",
                                           "key": "service-account.json"}}},
    },
    "extraVolumes": [{"name": "secrets", "secret": {"secretName": "events-archiver-secret"}}],
    "extraVolumeMounts": [{"name": "secrets", "mountPath": "/secrets", "readOnly": True}],
    "imageCleaner": {"imageGCThresholdType": "absolute",
                     "imageGCThresholdHigh": 40000000000, "imageGCThresholdLow": 30000000000},
    "ingress": {"enabled": True, "annotations": {"kubernetes.io/ingress.class": "nginx"},
                "https": {"enabled": True, "type": "kube-lego"},
                "hosts": ["staging.example.org"]},
    "resources": {"requests": {"cpu": 0.2, "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    "jupyterhub": {
        "cull": {"every": 660, "timeout": 600, "maxAge": 21600},
        "hub": {
            "cookieSecret": "COOKIE-789",
            "extraPodSpec": {"priorityClassName": "binderhub-core"},
            "networkPolicy": {"enabled": True},
            "config": {"BinderSpawner": {"cors_allow_origin": "*"}},
            "service": {"annotations": {"prometheus.io/scrape": "true",
                                        "prometheus.io/path": "/hub/metrics"}},
            "db": {"pvc": {"storageClassName": "standard"}},
        },
        "proxy": {
            "secretToken": "PROXY-TOKEN-000",
            "service": {"type": "ClusterIP"},
            "chp": {
                "extraCommandLineFlags": [
                    "--error-target=http://$(PROXY_PATCHES_SERVICE_HOST):"
                    "$(PROXY_PATCHES_SERVICE_PORT)/hub/error"],
                "extraPodSpec": {"priorityClassName": "binderhub-core"},
                "resources": {"requests": {"cpu": 0.1, "memory": "200Mi"}},
                "nodeSelector": {"pool": "core"},
            },
        },
        "ingress": {"enabled": True, "annotations": {"kubernetes.io/tls-acme": "true"},
                    "hosts": ["hub.staging.example.org"],
                    "tls": [{"secretName": "kubelego-tls-hub",
                             "hosts": ["hub.staging.example.org"]}]},
        "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
        "singleuser": {
            "defaultUrl": None,
            "cloudMetadata": {"blockWithIptables": False},
            "memory": {"guarantee": "450M", "limit": "2G"},
            "cpu": {"guarantee": 0.01, "limit": 1},
            "networkPolicy": {"enabled": True, "egress": [],
                              "egressAllowRules": {"nonPrivateIPs": False}},
        },
    },
}

OTHER_VALUES = {
    "cryptnono": {"priorityClassName": "binderhub-core",
                  "detectors": {"execwhacker": {"configs": {
                      "banned": {"bannedCommandStrings": ["xmrig"]}}}}},
    "traefik": {"deployment": {"replicas": 2}, "service": {"spec": {"type": "ClusterIP"}},
                "ingressClass": {"enabled": True, "isDefaultClass": False},
                "ports": {"web": {"exposedPort": 8080}}},
    "prometheus": {"alertmanager": {"enabled": False},
                   "prometheus-pushgateway": {"enabled": False},
                   "server": {"podLabels": {"hub.jupyter.org/network-access-hub": "true"},
                              "strategy": {"type": "Recreate"}, "retention": "90d",
                              "ingress": {"enabled": True,
                                          "annotations": {"kubernetes.io/tls-acme": "true"},
                                          "hosts": ["prometheus.staging.example.org"],
                                          "tls": [{"secretName": "kubelego-tls-prometheus",
                                                   "hosts": ["prometheus.staging.example.org"]}]}}},
    "grafana": {"adminUser": "admin", "adminPassword": "GRAFANA-PW",
                "deploymentStrategy": {"type": "Recreate"},
                "persistence": {"enabled": True, "size": "1Gi"},
                "ingress": {"enabled": True, "hosts": ["grafana.staging.example.org"],
                            "tls": [{"secretName": "kubelego-tls-grafana",
                                     "hosts": ["grafana.staging.example.org"]}]}},
}


# ---------------------------------------------------------------------------------- helpers

@pytest.fixture
def helm_env(tmp_path) -> dict:
    """Private HELM_* homes for every helm call of one test."""
    return chart_repo.helm_env(tmp_path / "helm-home")


def helm(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([HELM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def pull(url: str, name: str, version: str, dest: Path, env: dict) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    helm(env, "pull", "--repo", url, name, "--version", version, "--destination", dest)
    tgz = dest / f"{name}-{version}.tgz"
    assert tgz.is_file(), sorted(p.name for p in dest.iterdir())
    return tgz


def template(chart: Path, values: dict, tmp_path: Path, env: dict, check: bool = True,
             release: str = "staging", namespace: str = "staging"):
    vfile = tmp_path / f"values-{os.urandom(4).hex()}.yaml"
    vfile.write_text(yaml.safe_dump(values))
    # the API versions of a supported cluster, as the deployer passes them (the binderhub
    # chart's PDB is policy/v1 only when the cluster serves it)
    return helm(env, "template", release, chart, "--namespace", namespace, "-f", vfile,
                "--api-versions", "policy/v1/PodDisruptionBudget", check=check)


def objects(rendered: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def find(objs: list[dict], kind: str, name: str) -> dict:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {[(o['kind'], o['metadata']['name']) for o in objs]}"
    return hits[0]


def assert_valid_k8s(objs: list[dict]) -> None:
    assert objs
    for obj in objs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except Exception as e:  # report which object failed
                raise AssertionError(
                    f"{obj['kind']}/{obj['metadata']['name']} invalid for k8s {version}: {e}")


def coalesce(defaults, override):
    """Helm's merge of user values over chart defaults (a null override deletes the key)."""
    if not (isinstance(defaults, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    out = copy.deepcopy(defaults)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------------------------- the repo

def test_index_lists_each_standin_with_exact_version(chart_mirror):
    with urllib.request.urlopen(f"{chart_mirror}/index.yaml", timeout=10) as resp:
        index = yaml.safe_load(resp.read())
    entries = index["entries"]
    expected = {
        "binderhub": "1.0.0-0.dev.git.3983.h383374de",
        "jupyterhub": "5.0.0-0.dev.git.7491.h82a53148",
        "traefik": "41.1.1",
        "prometheus": "29.20.0",
        "grafana": "10.5.15",
        "cryptnono": "0.3.1",
    }
    assert chart_repo.VERSIONS == expected
    assert {c.name for c in STANDINS} == {"binderhub", "traefik", "prometheus", "grafana",
                                          "cryptnono"}
    for name, version in expected.items():
        assert [e["version"] for e in entries[name]] == [version]
        (entry,) = entries[name]
        assert entry["urls"] == [f"{name}-{version}.tgz"]  # relative: servable anywhere
        assert entry["digest"]
    (bh,) = entries["binderhub"]
    assert bh["dependencies"] == [{"name": "jupyterhub", "version": JUPYTERHUB.version,
                                   "repository": "https://jupyterhub.github.io/helm-chart"}]
    assert "condition" not in bh["dependencies"][0]


@needs_upstream
def test_helm_pull_binderhub_bundles_jupyterhub(chart_mirror, tmp_path, helm_env):
    tgz = pull(chart_mirror, "binderhub", BINDERHUB.version, tmp_path / "pulled", helm_env)
    # The source had charts/jupyterhub-<v>.tgz; `helm package` (v4, like v3) stores a bundled
    # subchart *expanded* as charts/jupyterhub/ -- as in the real published binderhub package.
    with tarfile.open(tgz) as tar:
        names = set(tar.getnames())
        assert not [n for n in names if n.endswith(".tgz")]
        assert {"binderhub/Chart.yaml", "binderhub/values.yaml", "binderhub/values.schema.json",
                "binderhub/charts/jupyterhub/Chart.yaml",
                "binderhub/charts/jupyterhub/values.yaml",
                "binderhub/charts/jupyterhub/values.schema.json"} <= names
        schema = json.load(tar.extractfile("binderhub/values.schema.json"))
        values = yaml.safe_load(tar.extractfile("binderhub/values.yaml"))
        jh_chart = yaml.safe_load(tar.extractfile("binderhub/charts/jupyterhub/Chart.yaml"))
        jh_schema = json.load(tar.extractfile("binderhub/charts/jupyterhub/values.schema.json"))
    assert schema == chart_repo.schema_json(chart_repo.BINDERHUB_SCHEMA)
    # the real defaults, with chartpress's placeholder tags set to the version as published
    assert values == yaml.safe_load(chart_repo.BINDERHUB_DEFAULTS.read_text().replace(
        "set-by-chartpress", BINDERHUB.version))
    assert (jh_chart["name"], jh_chart["version"]) == ("jupyterhub", JUPYTERHUB.version)
    assert jh_schema == chart_repo.schema_json(chart_repo.JUPYTERHUB_SCHEMA)
    show = yaml.safe_load(helm(helm_env, "show", "chart", tgz).stdout)
    assert show["version"] == BINDERHUB.version
    assert show["dependencies"] == [{"name": "jupyterhub", "version": JUPYTERHUB.version,
                                     "repository": "https://jupyterhub.github.io/helm-chart"}]


@needs_upstream
def test_build_repo_layout(tmp_path, helm_env):
    repo = chart_repo.build_repo(tmp_path / "build", HELM, helm_env)
    assert repo == tmp_path / "build" / "repo"
    assert sorted(p.name for p in repo.iterdir()) == sorted(
        ["index.yaml", *(f"{c.name}-{c.version}.tgz" for c in chart_repo.PUBLISHED)])
    src = tmp_path / "build" / "src"
    assert sorted(p.name for p in (src / "binderhub" / "charts").iterdir()) == [
        f"jupyterhub-{JUPYTERHUB.version}.tgz"]
    for c in chart_repo.PUBLISHED:
        assert (src / c.name / "Chart.yaml").is_file()
    assert json.loads((src / "binderhub" / "values.schema.json").read_text()) == \
        chart_repo.schema_json(chart_repo.BINDERHUB_SCHEMA)
    # rebuilding into the same place replaces, never accumulates
    chart_repo.build_repo(tmp_path / "build", HELM, helm_env)
    assert len(list(repo.glob("*.tgz"))) == len(chart_repo.PUBLISHED)


@needs_upstream
def test_schema_json_is_upstreams_cleanup():
    for path in (chart_repo.BINDERHUB_SCHEMA, chart_repo.JUPYTERHUB_SCHEMA):
        raw = yaml.safe_load(path.read_text())
        cleaned = chart_repo.schema_json(path)
        assert "description" in json.dumps(raw)

        def walk(node, raw_node):
            assert "description" not in node
            assert set(node) == set(raw_node) - {"description"}
            for key, sub in node.get("properties", {}).items():
                if isinstance(sub, dict):
                    walk(sub, raw_node["properties"][key])

        walk(cleaned, raw)
        assert cleaned["additionalProperties"] is False


@needs_upstream
def test_standin_defaults_satisfy_real_schemas():
    jh_schema = chart_repo.schema_json(chart_repo.JUPYTERHUB_SCHEMA)
    bh_schema = chart_repo.schema_json(chart_repo.BINDERHUB_SCHEMA)
    jh_defaults = yaml.safe_load(chart_repo.JUPYTERHUB_VALUES)
    bh_defaults = yaml.safe_load(chart_repo.BINDERHUB_DEFAULTS.read_text())
    jsonschema.validate(jh_defaults, jh_schema)
    jsonschema.validate(bh_defaults, bh_schema)
    # binderhub's `jupyterhub:` defaults over z2jh's, then mybinder-style values on top
    merged = coalesce(jh_defaults, bh_defaults["jupyterhub"])
    jsonschema.validate(merged, jh_schema)
    jsonschema.validate(coalesce(merged, BINDERHUB_VALUES["jupyterhub"]), jh_schema)
    jsonschema.validate(coalesce(bh_defaults, BINDERHUB_VALUES), bh_schema)
    for key in jh_schema["required"]:
        assert key in jh_defaults
    assert jh_defaults["hub"]["baseUrl"] == "/"
    assert jh_defaults["ingress"]["enabled"] is False
    assert jh_defaults["cull"]["enabled"] is True


# ---------------------------------------------------------------------------------- schemas

@pytest.fixture
def binderhub_tgz(chart_mirror, tmp_path, helm_env) -> Path:
    return pull(chart_mirror, "binderhub", BINDERHUB.version, tmp_path / "pulled", helm_env)


@needs_upstream
def test_typo_under_binderhub_root_fails_schema(binderhub_tgz, tmp_path, helm_env):
    proc = template(binderhub_tgz, {"imageBuilderTyp": "dind"}, tmp_path, helm_env, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in proc.stderr
    assert "binderhub:" in proc.stderr
    assert "additional properties 'imageBuilderTyp' not allowed" in proc.stderr


@needs_upstream
def test_string_cpu_limit_fails_jupyterhub_schema(binderhub_tgz, tmp_path, helm_env):
    values = {"jupyterhub": {"singleuser": {"cpu": {"limit": "1"}}}}
    proc = template(binderhub_tgz, values, tmp_path, helm_env, check=False)
    assert proc.returncode != 0
    assert "jupyterhub:" in proc.stderr
    assert "at '/singleuser/cpu/limit': got string, want null or number" in proc.stderr


@needs_upstream
@pytest.mark.parametrize("values", [
    {"enabled": True},                                    # binderhub root is closed
    {"jupyterhub": {"proxy": {"nodeSelector": {"a": "b"}}}},  # old mybinder key
    {"jupyterhub": {"singleuser": {"schedulerStrategy": "pack"}}},
    {"jupyterhub": {"cull": {"timeout": "600"}}},
    {"imageBuilderType": "docker"},
], ids=["bh-enabled", "proxy-nodeSelector", "schedulerStrategy", "cull-string", "builder-enum"])
def test_other_invalid_values_fail(binderhub_tgz, tmp_path, helm_env, values):
    proc = template(binderhub_tgz, values, tmp_path, helm_env, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in proc.stderr


# ---------------------------------------------------------------------------------- rendering

def test_binderhub_defaults_render_valid_k8s(binderhub_tgz, tmp_path, helm_env):
    objs = objects(template(binderhub_tgz, {}, tmp_path, helm_env).stdout)
    assert_valid_k8s(objs)
    assert not [o for o in objs if o["kind"] == "Ingress"]
    for o in objs:
        assert o["metadata"]["namespace"] == "staging"
    find(objs, "PodDisruptionBudget", "binderhub")
    secret = find(objs, "Secret", "hub")
    # as the real chart: unset tokens are generated (a new random value on every render)
    assert set(secret["data"]) >= {"values.yaml", "hub.config.ConfigurableHTTPProxy.auth_token",
                                   "hub.config.JupyterHub.cookie_secret",
                                   "hub.config.CryptKeeper.keys"}
    again = find(objects(template(binderhub_tgz, {}, tmp_path, helm_env).stdout), "Secret", "hub")
    for key in ("hub.config.JupyterHub.cookie_secret", "hub.config.CryptKeeper.keys"):
        assert again["data"][key] != secret["data"][key]
        assert re.fullmatch(r"[0-9a-f]{64}", base64.b64decode(secret["data"][key]).decode())
    # the objects the real charts render by default
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {("NetworkPolicy", "hub"), ("NetworkPolicy", "proxy"), ("NetworkPolicy", "singleuser"),
            ("DaemonSet", "staging-image-cleaner")} <= kinds
    assert ("DaemonSet", "staging-dind") not in kinds  # imageBuilderType: host by default


def test_binderhub_valid_values_render_valid_k8s(binderhub_tgz, tmp_path, helm_env):
    objs = objects(template(binderhub_tgz, BINDERHUB_VALUES, tmp_path, helm_env).stdout)
    assert_valid_k8s(objs)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {("Deployment", "binder"), ("Service", "binder"), ("Ingress", "binderhub"),
            ("Secret", "binder-secret"), ("Secret", "binder-build-docker-config"),
            ("PodDisruptionBudget", "binderhub"), ("Deployment", "hub"), ("Deployment", "proxy"),
            ("Service", "hub"), ("Service", "proxy-public"), ("Secret", "hub"),
            ("ConfigMap", "hub"), ("Ingress", "jupyterhub")} <= kinds

    binder = find(objs, "Deployment", "binder")
    assert binder["spec"]["replicas"] == 2
    assert binder["metadata"]["labels"]["release"] == "staging"
    pod = binder["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "binderhub-core"
    # published as chartpress publishes: images tagged with the chart's version
    assert pod["containers"][0]["image"] == "quay.io/jupyterhub/k8s-binderhub:" + BINDERHUB.version
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["EVENT_LOG_NAME"]["value"] == "binderhub-events-text"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"]["valueFrom"]["secretKeyRef"]["name"] == \
        "events-archiver-secret"

    ingress = find(objs, "Ingress", "binderhub")
    assert ingress["metadata"]["annotations"] == {"kubernetes.io/tls-acme": "true",
                                                  "kubernetes.io/ingress.class": "nginx"}
    assert ingress["spec"]["rules"][0]["host"] == "staging.example.org"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"
    assert ingress["spec"]["tls"] == [{"secretName": "kubelego-tls-binder-staging",
                                       "hosts": ["staging.example.org"]}]

    stash = yaml.safe_load(find(objs, "Secret", "binder-secret")["stringData"]["values.yaml"])
    assert stash["config"]["GitHubRepoProvider"]["access_token"] == "GH-TOKEN-456"
    assert stash["imageBuilderType"] == "dind"
    docker = json.loads(base64.b64decode(
        find(objs, "Secret", "binder-build-docker-config")["data"]["config.json"]))
    auth = docker["auths"]["https://registry.example.org"]["auth"]
    assert base64.b64decode(auth).decode() == "robot:REGISTRY-PASSWORD-123"

    hub_secret = {k: base64.b64decode(v).decode()
                  for k, v in find(objs, "Secret", "hub")["data"].items()}
    assert hub_secret["hub.config.ConfigurableHTTPProxy.auth_token"] == "PROXY-TOKEN-000"
    assert hub_secret["hub.config.JupyterHub.cookie_secret"] == "COOKIE-789"

    cm = find(objs, "ConfigMap", "hub")["data"]
    cull = json.loads(cm["cull.json"])
    assert (cull["enabled"], cull["users"], cull["every"], cull["timeout"], cull["maxAge"]) == \
        (True, True, 660, 600, 21600)
    assert json.loads(cm["singleuser-resources.json"]) == {
        "cpu": {"guarantee": 0.01, "limit": 1}, "memory": {"guarantee": "450M", "limit": "2G"}}
    assert json.loads(cm["hub-config.json"])["BinderSpawner"]["cors_allow_origin"] == "*"

    for name in ("hub", "proxy"):
        spec = find(objs, "Deployment", name)["spec"]["template"]["spec"]
        assert spec["priorityClassName"] == "binderhub-core"
    proxy = find(objs, "Deployment", "proxy")["spec"]["template"]["spec"]
    assert proxy["nodeSelector"] == {"pool": "core"}
    assert any("PROXY_PATCHES_SERVICE_HOST" in a for a in proxy["containers"][0]["command"])
    assert find(objs, "Service", "proxy-public")["spec"]["type"] == "ClusterIP"
    jh_ingress = find(objs, "Ingress", "jupyterhub")
    assert jh_ingress["spec"]["rules"][0]["host"] == "hub.staging.example.org"
    assert jh_ingress["spec"]["tls"][0]["secretName"] == "kubelego-tls-hub"
    assert find(objs, "PersistentVolumeClaim", "hub-db-dir")["spec"]["storageClassName"] == \
        "standard"


@pytest.mark.parametrize("standin", [TRAEFIK, PROMETHEUS, GRAFANA, CRYPTNONO],
                         ids=lambda c: c.name)
def test_other_standins_render_valid_k8s(chart_mirror, tmp_path, helm_env, standin):
    tgz = pull(chart_mirror, standin.name, standin.version, tmp_path / "pulled", helm_env)
    for values in ({}, OTHER_VALUES[standin.name]):
        objs = objects(template(tgz, values, tmp_path, helm_env).stdout)
        assert_valid_k8s(objs)
        for o in objs:
            if o["kind"] != "IngressClass":
                assert o["metadata"]["namespace"] == "staging"
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    # names as the real charts' fullname helpers make them: <release>-<chart>
    if standin is TRAEFIK:
        assert {("Deployment", "staging-traefik"), ("Service", "staging-traefik"),
                ("IngressClass", "staging-traefik")} <= kinds
        assert find(objs, "Deployment", "staging-traefik")["spec"]["replicas"] == 2
        assert find(objs, "Service", "staging-traefik")["spec"]["type"] == "ClusterIP"
        assert find(objs, "IngressClass", "staging-traefik")["metadata"]["annotations"] == {
            "ingressclass.kubernetes.io/is-default-class": "false"}
    elif standin is PROMETHEUS:
        assert {("Deployment", "staging-prometheus-server"),
                ("ConfigMap", "staging-prometheus-server"),
                ("Ingress", "staging-prometheus-server"),
                ("Deployment", "staging-kube-state-metrics"),
                ("DaemonSet", "staging-prometheus-node-exporter")} <= kinds
        assert ("Deployment", "staging-prometheus-pushgateway") not in kinds  # disabled
        dep = find(objs, "Deployment", "staging-prometheus-server")
        assert dep["spec"]["template"]["metadata"]["labels"][
            "hub.jupyter.org/network-access-hub"] == "true"
        assert "--storage.tsdb.retention.time=90d" in \
            dep["spec"]["template"]["spec"]["containers"][0]["args"]
    elif standin is CRYPTNONO:
        ds = find(objs, "DaemonSet", "staging-cryptnono")
        assert [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]] == [
            "execwhacker", "monero"]
        cm = find(objs, "ConfigMap", "staging-cryptnono")["data"]
        assert json.loads(cm["execwhacker-banned.json"]) == {"bannedCommandStrings": ["xmrig"]}
    else:
        assert {("Deployment", "staging-grafana"), ("Secret", "staging-grafana"),
                ("Ingress", "staging-grafana"),
                ("PersistentVolumeClaim", "staging-grafana")} <= kinds
        data = find(objs, "Secret", "staging-grafana")["data"]
        assert base64.b64decode(data["admin-password"]).decode() == "GRAFANA-PW"
        assert base64.b64decode(data["admin-user"]).decode() == "admin"


# ---------------------------------------------------------------------------------- umbrella

def test_umbrella_chart_resolves_through_mirror(chart_mirror, tmp_path, helm_env):
    """`helm dependency update` works against the mirror URL with no `helm repo add`."""
    chart = tmp_path / "umbrella"
    (chart / "templates").mkdir(parents=True)
    deps = [
        {"name": "binderhub", "version": BINDERHUB.version, "repository": chart_mirror,
         "condition": "binderhubEnabled"},
        {"name": "traefik", "version": TRAEFIK.version, "repository": chart_mirror,
         "condition": "traefikEnabled"},
        {"name": "prometheus", "version": PROMETHEUS.version, "repository": chart_mirror,
         "condition": "prometheus.enabled"},
        {"name": "grafana", "version": GRAFANA.version, "repository": chart_mirror,
         "condition": "grafana.enabled"},
        {"name": "cryptnono", "version": CRYPTNONO.version, "repository": chart_mirror,
         "condition": "cryptnono.enabled"},
    ]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v2", "name": "umbrella", "version": "0.0.1", "dependencies": deps}))
    (chart / "values.yaml").write_text(yaml.safe_dump(
        {"binderhubEnabled": True, "traefikEnabled": True,
         "prometheus": {"enabled": True}, "grafana": {"enabled": True},
         "cryptnono": {"enabled": True}}))
    helm(helm_env, "dependency", "update", chart)
    assert sorted(p.name for p in (chart / "charts").iterdir()) == sorted(
        f"{c.name}-{c.version}.tgz" for c in STANDINS)
    lock = yaml.safe_load((chart / "Chart.lock").read_text())
    assert {d["repository"] for d in lock["dependencies"]} == {chart_mirror}

    values = {"binderhub": BINDERHUB_VALUES, **OTHER_VALUES}
    objs = objects(template(chart, values, tmp_path, helm_env).stdout)
    assert_valid_k8s(objs)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {("Deployment", "binder"), ("Deployment", "hub"), ("Deployment", "staging-traefik"),
            ("Deployment", "staging-prometheus-server"), ("Deployment", "staging-grafana"),
            ("DaemonSet", "staging-dind"), ("DaemonSet", "staging-image-cleaner"),
            ("DaemonSet", "staging-cryptnono")} <= names

    if chart_repo.UPSTREAM is None:
        return  # the schema half below needs the real binderhub schema
    bad = template(chart, {"binderhub": {"imageBuilderTyp": "dind"}}, tmp_path, helm_env,
                   check=False)
    assert bad.returncode != 0
    assert "binderhub:\n- at '': additional properties 'imageBuilderTyp' not allowed" in bad.stderr
    bad = template(chart, {"binderhub": {"jupyterhub": {"singleuser": {"cpu": {"limit": "1"}}}}},
                   tmp_path, helm_env, check=False)
    assert bad.returncode != 0
    assert "jupyterhub:\n- at '/singleuser/cpu/limit': got string, want null or number" \
        in bad.stderr


# ---------------------------------------------------------------------------------- serve()

def _server_pids(port: int) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"http.server" in argv and str(port).encode() in argv:
            pids.add(int(entry.name))
    return pids


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status  # a zombie would mean nobody waited on it


@pytest.mark.parametrize("fail_inside", [False, True], ids=["clean-exit", "exception"])
def test_serve_leaves_no_process_behind(tmp_path, fail_inside):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    seen: set[int] = set()
    with pytest.raises(RuntimeError) if fail_inside else contextlib.nullcontext():
        with chart_repo.serve(repo) as url:
            assert url.startswith("http://127.0.0.1:") and not url.endswith("/")
            port = int(url.rsplit(":", 1)[1])
            with urllib.request.urlopen(f"{url}/index.yaml", timeout=5) as resp:
                assert resp.status == 200
            seen = _server_pids(port)
            assert len(seen) == 1
            if fail_inside:
                raise RuntimeError("boom")
    assert all(_gone(pid) for pid in seen)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{url}/index.yaml", timeout=2)


# ---------------------------------------------------------------------------------- extra versions

EXTRA_JUPYTERHUB = chart_repo.StandIn("jupyterhub", "5.0.0-0.dev.git.7502.h0c0ffee0",
                                      app_version="5.4.5", kube_version=">=1.32.0-0")
EXTRAS = (
    chart_repo.StandIn("binderhub", "1.0.0-0.dev.git.3990.h9a1b2c3d", subcharts=(JUPYTERHUB,),
                       subchart_repository=chart_repo.JUPYTERHUB_REPO, kube_version=">=1.28.0-0"),
    chart_repo.StandIn("binderhub", "1.0.0-0.dev.git.3995.h1b2c3d4e",
                       subcharts=(EXTRA_JUPYTERHUB,),
                       subchart_repository=chart_repo.JUPYTERHUB_REPO, kube_version=">=1.28.0-0"),
    chart_repo.StandIn("traefik", "41.2.0", app_version="v3.6.4", kube_version=">=1.22.0-0"),
)


@pytest.mark.parametrize("standin", chart_repo.PUBLISHED, ids=lambda c: c.name)
def test_chart_files_follow_the_standins_version(standin):
    other = chart_repo.StandIn(standin.name, "9.8.7-0.dev.git.1.h00000000",
                               app_version="v9.9.9", kube_version=standin.kube_version,
                               subcharts=standin.subcharts,
                               subchart_repository=standin.subchart_repository)
    files = chart_repo.chart_files(other)
    meta = yaml.safe_load(files["Chart.yaml"])
    assert (meta["name"], meta["version"], meta["appVersion"]) == \
        (standin.name, other.version, "v9.9.9")
    assert not [rel for rel, text in files.items() if standin.version in text]


def test_build_repo_with_extra_versions(tmp_path, helm_env):
    repo = chart_repo.build_repo(tmp_path / "build", HELM, helm_env, extra=EXTRAS)
    published = [*chart_repo.PUBLISHED, *EXTRAS, EXTRA_JUPYTERHUB]
    assert sorted(p.name for p in repo.iterdir()) == sorted(
        ["index.yaml", *(f"{c.name}-{c.version}.tgz" for c in published)])
    index = yaml.safe_load((repo / "index.yaml").read_text())
    versions = {name: [e["version"] for e in entries] for name, entries in index["entries"].items()}
    assert versions["binderhub"] == ["1.0.0-0.dev.git.3995.h1b2c3d4e",
                                     "1.0.0-0.dev.git.3990.h9a1b2c3d", BINDERHUB.version]
    assert versions["jupyterhub"] == [EXTRA_JUPYTERHUB.version, JUPYTERHUB.version]
    assert versions["traefik"] == ["41.2.0", TRAEFIK.version]
    assert versions["prometheus"] == [PROMETHEUS.version]
    (new_traefik,) = [e for e in index["entries"]["traefik"] if e["version"] == "41.2.0"]
    assert new_traefik["appVersion"] == "v3.6.4"
    assert new_traefik["urls"] == ["traefik-41.2.0.tgz"]
    deps = {e["version"]: e["dependencies"][0]["version"] for e in index["entries"]["binderhub"]}
    assert deps == {BINDERHUB.version: JUPYTERHUB.version,
                    "1.0.0-0.dev.git.3990.h9a1b2c3d": JUPYTERHUB.version,
                    "1.0.0-0.dev.git.3995.h1b2c3d4e": EXTRA_JUPYTERHUB.version}
    # the main versions' sources stay where they were; each extra has its own
    src = tmp_path / "build"
    assert yaml.safe_load((src / "src" / "binderhub" / "Chart.yaml").read_text())["version"] \
        == BINDERHUB.version
    assert sorted(p.name for p in (src / "src-extra").iterdir()) == sorted(
        f"{c.name}-{c.version}" for c in EXTRAS)

    # An umbrella chart can pin any of them; helm resolves them through the served mirror.
    with chart_repo.serve(repo) as url:
        chart = tmp_path / "umbrella"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v2", "name": "umbrella", "version": "0.0.1", "dependencies": [
                {"name": "binderhub", "version": "1.0.0-0.dev.git.3995.h1b2c3d4e",
                 "repository": url},
                {"name": "traefik", "version": "41.2.0", "repository": url},
                {"name": "prometheus", "version": PROMETHEUS.version, "repository": url}]}))
        helm(helm_env, "dependency", "update", chart)
        expected = sorted(["binderhub-1.0.0-0.dev.git.3995.h1b2c3d4e.tgz", "traefik-41.2.0.tgz",
                           f"prometheus-{PROMETHEUS.version}.tgz"])
        assert sorted(p.name for p in (chart / "charts").iterdir()) == expected
        for tgz in (chart / "charts").iterdir():
            tgz.unlink()
        # `dependency build` (from Chart.lock) wants the repository added, unlike `update`
        helm(helm_env, "repo", "add", "mirror", url)
        helm(helm_env, "dependency", "build", chart)
        assert sorted(p.name for p in (chart / "charts").iterdir()) == expected
        bh = tmp_path / "pulled"
        pulled = pull(url, "binderhub", "1.0.0-0.dev.git.3995.h1b2c3d4e", bh, helm_env)
        with tarfile.open(pulled) as tar:
            jh = yaml.safe_load(tar.extractfile("binderhub/charts/jupyterhub/Chart.yaml"))
        assert jh["version"] == EXTRA_JUPYTERHUB.version
        objs = objects(template(chart, {}, tmp_path, helm_env).stdout)
        labels = {o["metadata"]["labels"].get("helm.sh/chart") for o in objs
                  if o["metadata"].get("labels")}
        assert "traefik-41.2.0" in labels

    # rebuilding without extras drops them
    chart_repo.build_repo(tmp_path / "build", HELM, helm_env)
    assert len(list(repo.glob("*.tgz"))) == len(chart_repo.PUBLISHED)
    assert not (tmp_path / "build" / "src-extra").exists()


@pytest.mark.parametrize("extra", [
    (BINDERHUB,),
    (chart_repo.StandIn("traefik", "41.2.0"), chart_repo.StandIn("traefik", "41.2.0")),
], ids=["published-version", "twice"])
def test_build_repo_rejects_duplicate_extras(tmp_path, helm_env, extra):
    with pytest.raises(ValueError, match="already in the repository"):
        chart_repo.build_repo(tmp_path / "build", HELM, helm_env, extra=extra)
    assert not (tmp_path / "build").exists()  # checked before any work


# ---------------------------------------------------------------------------------- synthetic index

ENTRY_KEYS = ["apiVersion", "appVersion", "created", "description", "digest", "home", "icon",
              "keywords", "kubeVersion", "maintainers", "name", "sources", "urls", "version"]


def test_synthetic_index_is_shaped_like_the_real_one():
    text = chart_repo.synthetic_index()
    assert 1_550_000 < len(text.encode()) < 1_850_000  # the real one is ~1.7 MB
    assert text == chart_repo.synthetic_index()  # deterministic
    assert text.startswith("apiVersion: v1\nentries:\n  binderhub:\n  - apiVersion: v2\n")
    assert text.endswith('\ngenerated: "2025-11-25T08:14:07.128514267Z"\n')
    index = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert list(index) == ["apiVersion", "entries", "generated"]
    assert list(index["entries"]) == ["binderhub", "jupyterhub"]
    assert sum(len(v) for v in index["entries"].values()) == 1775
    for name, entries in index["entries"].items():
        versions = [e["version"] for e in entries]
        assert len(set(versions)) == len(versions)
        assert versions == sorted(versions, key=chart_repo._semver_key, reverse=True)
        assert re.fullmatch(r"\d+\.\d+\.\d+-0\.dev\.git\.\d+\.h[0-9a-f]{8}", versions[0])
        assert [v for v in versions if "-" not in v]  # releases too
        for e in entries:
            keys = ENTRY_KEYS + (["dependencies"] if name == "binderhub" else [])
            assert list(e) == sorted(keys)
            assert e["name"] == name
            assert e["urls"] == [
                f"https://jupyterhub.github.io/helm-chart/{name}-{e['version']}.tgz"]
            assert re.fullmatch(r"[0-9a-f]{64}", e["digest"])
            assert isinstance(e["created"], str) and e["created"].endswith("Z")
            assert isinstance(e["appVersion"], str)
    bh = index["entries"]["binderhub"]
    assert bh[0]["version"].startswith("1.0.0-0.dev.git.")
    assert bh[0]["dependencies"][0]["name"] == "jupyterhub"
    jh_versions = [e["version"] for e in index["entries"]["jupyterhub"]]
    assert {"1.0.0", "2.0.0", "3.0.0", "4.0.0", "4.0.0-beta.1"} <= set(jh_versions)
    # the long binderhub description is folded over continuation lines, as helm writes it
    assert "\n    description: BinderHub is like a JupyterHub that automatically builds " \
           "environments\n      for the users" in text
    assert "\n    kubeVersion: '>=1.28.0-0'\n" in text
    assert "\n    created: \"20" in text


@pytest.mark.parametrize("args", [
    {"n_entries": 300},
    {"n_entries": 7, "charts": ("traefik", "binderhub", "jupyterhub")},
    {"n_entries": 0},
], ids=["300", "three-charts", "empty"])
def test_synthetic_index_is_byte_for_byte_what_helm_writes(tmp_path, helm_env, args):
    """`helm repo index --merge` re-reads the index and writes it back in its own format:
    apart from the `generated:` stamp, the text must not change."""
    text = chart_repo.synthetic_index(**args)
    (tmp_path / "synthetic.yaml").write_text(text)
    (tmp_path / "empty").mkdir()
    helm(helm_env, "repo", "index", tmp_path / "empty", "--merge", tmp_path / "synthetic.yaml")
    rewritten = (tmp_path / "empty" / "index.yaml").read_text()
    strip = lambda t: re.sub(r"(?m)^generated: .*$", "", t)  # noqa: E731
    assert strip(rewritten) == strip(text)
    entries = yaml.safe_load(text)["entries"]
    assert sum(len(v) for v in entries.values()) == args["n_entries"]


def test_synthetic_index_is_a_repository_helm_can_search(tmp_path, helm_env):
    repo = tmp_path / "repo"
    repo.mkdir()
    text = chart_repo.synthetic_index(60)
    (repo / "index.yaml").write_text(text)
    expected = [e["version"] for e in yaml.safe_load(text)["entries"]["jupyterhub"]]
    with chart_repo.serve(repo) as url:
        helm(helm_env, "repo", "add", "synthetic", url)
        found = json.loads(helm(helm_env, "search", "repo", "synthetic/jupyterhub", "--versions",
                                "--devel", "-o", "json").stdout)
        latest = json.loads(helm(helm_env, "search", "repo", "synthetic/jupyterhub",
                                 "-o", "json").stdout)
    assert [f["version"] for f in found] == expected
    assert [f["version"] for f in latest] == [next(v for v in expected if "-" not in v)]


# ---------------------------------------------------------------------------------- fidelity

def test_binderhub_pdb_is_policy_v1_only_when_the_cluster_serves_it(binderhub_tgz, tmp_path,
                                                                   helm_env):
    """As the real chart: a capability check, so the API versions given to helm matter."""
    vfile = tmp_path / "pdb.yaml"
    vfile.write_text("{}")
    def pdb(*extra):
        out = helm(helm_env, "template", "staging", binderhub_tgz, "--namespace", "staging",
                   "-f", vfile, "--show-only", "templates/pdb.yaml", *extra).stdout
        return yaml.safe_load(out)["apiVersion"]
    assert pdb("--api-versions", "policy/v1/PodDisruptionBudget") == "policy/v1"
    # without it the chart falls back to the old version, which no supported cluster serves
    assert pdb() == "policy/v1beta1"


def test_traefik_schema_is_closed_like_the_real_one(chart_mirror, tmp_path, helm_env):
    tgz = pull(chart_mirror, "traefik", TRAEFIK.version, tmp_path / "pulled", helm_env)
    for bad in ({"ingressClass": {"nmae": "x"}}, {"logs": {"general": {"level": "INFO"}}},
                {"ports": {"web": {"exposed": 80}}}):
        proc = template(tgz, bad, tmp_path, helm_env, check=False)
        assert proc.returncode != 0 and "additional properties" in proc.stderr, bad
    # `service` is open in the real schema: a key no template reads passes the schema
    objs = objects(template(tgz, {"service": {"type": "ClusterIP"}}, tmp_path, helm_env).stdout)
    assert find(objs, "Service", "staging-traefik")["spec"]["type"] == "LoadBalancer"
    named = objects(template(tgz, {"ingressClass": {"name": "traefik"}}, tmp_path,
                             helm_env).stdout)
    find(named, "IngressClass", "traefik")


def test_mybinder_ingresses_use_the_class_traefik_creates(chart_mirror, tmp_path, helm_env):
    """Every Ingress of the mybinder chart and the ClusterIssuer's solver name the class the
    traefik chart really creates (its fullname unless ingressClass.name is set)."""
    import shutil
    chart = tmp_path / "mybinder"
    shutil.copytree(chart_repo.ROOT / "mybinder", chart, ignore=shutil.ignore_patterns("charts"))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    for dep in meta["dependencies"]:
        dep["repository"] = chart_mirror
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (chart / "Chart.lock").unlink(missing_ok=True)
    helm(helm_env, "dependency", "update", chart)
    common = yaml.safe_load((chart_repo.ROOT / "config/common.yaml").read_text())
    values = {**common, "federation": {"name": "f", "member": "staging", "role": "staging"},
              "static": {"enabled": True, "host": "static.example.org"}}
    objs = objects(template(chart, values, tmp_path, helm_env).stdout)
    classes = {o["metadata"]["name"] for o in objs if o["kind"] == "IngressClass"}
    assert classes == {"traefik"}
    ingresses = [o for o in objs if o["kind"] == "Ingress"]
    assert ingresses and {i["spec"].get("ingressClassName") for i in ingresses} == classes
    issuer = [o for o in objs if o["kind"] == "ClusterIssuer"]
    for solver in issuer[0]["spec"]["acme"]["solvers"] if issuer else []:
        assert solver["http01"]["ingress"]["ingressClassName"] in classes
    pdb = find(objs, "PodDisruptionBudget", "binderhub")["spec"]
    assert not ("minAvailable" in pdb and "maxUnavailable" in pdb)
    assert find(objs, "Service", "staging-traefik")["spec"]["type"] == "LoadBalancer"
    find(objs, "DaemonSet", "staging-cryptnono")


def test_generated_hub_secrets_reuse_the_live_secret(binderhub_tgz, tmp_path, helm_env):
    """As the real chart: `lookup` keeps the live Secret's generated values; the API double
    serves it to helm (--dry-run=server), so the render repeats."""
    from tests.fakes.kube_api import KubeAPI
    with KubeAPI("1.34.2") as api:
        env = {**helm_env, "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig"))}
        live = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "hub", "namespace": "staging",
                             "labels": {"app.kubernetes.io/managed-by": "Helm"},
                             "annotations": {"meta.helm.sh/release-name": "staging",
                                             "meta.helm.sh/release-namespace": "staging"}},
                "data": {"hub.config.JupyterHub.cookie_secret":
                         base64.b64encode(b"c" * 64).decode(),
                         "hub.config.CryptKeeper.keys": base64.b64encode(b"k" * 64).decode(),
                         "hub.config.ConfigurableHTTPProxy.auth_token":
                         base64.b64encode(b"t" * 64).decode()}}
        api.api.store.create(api.api.registry.by_kind("v1", "Namespace"), "",
                             {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "staging"}})
        api.api.store.create(api.api.registry.by_kind("v1", "Secret"), "staging", live)
        vfile = tmp_path / "v.yaml"
        vfile.write_text("{}")
        out = helm(env, "template", "staging", binderhub_tgz, "--namespace", "staging",
                   "-f", vfile, "--dry-run=server").stdout
    secret = find(objects(out), "Secret", "hub")
    for key, value in live["data"].items():
        assert secret["data"][key] == value, key
