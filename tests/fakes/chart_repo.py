"""Stand-in Helm charts for the mybinder chart's dependencies, built and served at test time.

The real dependency charts (binderhub + its bundled jupyterhub, traefik, prometheus, grafana)
cannot be downloaded in the test environment. This module writes charts with the *same names
and versions* from Python source, packages them with the real ``helm package``, indexes them
with ``helm repo index`` and serves the directory over HTTP on 127.0.0.1, so the deployer can
resolve dependencies through helm exactly as in production, only against a mirror URL.
Nothing binary is committed: every .tgz is generated under a temporary directory.

Faithfulness rules (the stand-ins must not make values easier than reality):

* binderhub ships the real chart's schema (``binderhub.values.schema.yaml`` of the upstream
  reference data in ../shared/upstream/, turned into values.schema.json the way upstream's
  tools/generate-json-schema.py does it) and the real defaults
  (``binderhub.values.defaults.yaml``) as values.yaml.
* jupyterhub ships z2jh's real schema (``jupyterhub.values.schema.yaml``, same transformation)
  and a trimmed-but-real values.yaml that satisfies it (checked by tests/fakes/test_chart_repo.py).
* Where the upstream reference data is not on the machine (``upstream_dir()`` is None), the
  binderhub and jupyterhub stand-ins ship no schema and binderhub carries this project's own
  minimal defaults (BINDERHUB_FALLBACK_VALUES); the tests that need the real schemas skip.
* The templates render the objects the real charts render for the values mybinder uses, named
  as the real charts name them: binderhub and jupyterhub use fixed names (``binder``, ``hub``,
  ``proxy-public``; z2jh's fullnameOverride defaults to ""), binderhub's DaemonSets are
  ``<release>-dind`` / ``<release>-image-cleaner``, and traefik, prometheus, grafana and
  cryptnono go through their charts' fullname helpers (``<release>-<chart>``, or the release
  name when it contains the chart name). Every namespaced object carries
  ``namespace: {{ .Release.Namespace }}`` (the real charts mostly leave it to helm). They are
  checked with kubernetes-validate in strict mode.
* Behaviour kept from the real charts: binderhub's PDB is ``policy/v1`` only when
  ``.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget"`` (else ``policy/v1beta1``);
  jupyterhub's hub Secret always holds the proxy token, cookie secret and CryptKeeper keys
  (and a token per hub.services entry): the chart value, else the live Secret's (helm
  ``lookup``, which only answers with ``--dry-run=server`` or on install/upgrade), else new
  random ones on every render, and the hub/proxy pod templates carry checksums of them;
  grafana's admin password likewise; traefik's IngressClass is ``ingressClass.name`` or
  ``<release>-traefik``, with the default-class annotation always written; the objects
  rendered by default include jupyterhub's hub/proxy/singleuser NetworkPolicies (trimmed
  rules), binderhub's image-cleaner DaemonSet (and the dind/pink one when chosen), and
  prometheus' kube-state-metrics, node-exporter and pushgateway.
* Simplifications: prometheus' exporters are rendered by the prometheus stand-in's own
  template (a workload and a Service each), not bundled as subcharts, and alertmanager renders
  nothing; RBAC objects, ServiceAccounts and most optional objects of the real charts are
  left out; cryptnono's bpftrace program is a placeholder line.
* traefik ships this project's trimmed values.schema.json (TRAEFIK_SCHEMA), closed where the
  real 41.x schema is closed (top level, image, ingressClass, providers, log, each port) and
  open where it is open (service, service.spec, deployment). prometheus / grafana / cryptnono
  carry no schema (the real cryptnono chart has none; the others' are not stored here), so any
  values validate for them; only their templates are exercised.

API:
    STANDINS                       the charts to publish (StandIn records; binderhub bundles jupyterhub)
    VERSIONS                       {chart name: version}, including the bundled jupyterhub
    chart_files(standin)           {relative path: text} of one chart's source
    write_chart(standin, dest)     write one chart's source into dest/<name>/
    build_repo(dest, helm, env, extra=())
                                   write + package + index everything (plus `extra` versions
                                   of the stand-ins); returns dest/repo
    serve(repo_dir)                context manager: http.server on 127.0.0.1, yields the base URL
    helm_env(home)                 an env dict with private HELM_*_HOME dirs under `home`
    synthetic_index(n, charts)     text of a big index.yaml like the real jupyterhub repo's
                                   (~1.7 MB for 1775 entries), byte-for-byte helm's format
    schema_json(schema_yaml_path)  the values.schema.json dict for an upstream schema.yaml
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def upstream_dir() -> Path | None:
    """The upstream reference data (schemas, defaults of the real charts): $DEPLOYER_UPSTREAM_DIR
    or ../shared/upstream next to the repository; None when it is not there."""
    given = os.environ.get("DEPLOYER_UPSTREAM_DIR")
    path = Path(given) if given else ROOT.parent / "shared" / "upstream"
    return path if (path / "binderhub.values.schema.yaml").is_file() else None


UPSTREAM = upstream_dir()
NO_UPSTREAM = ("needs the upstream binderhub/jupyterhub schemas and defaults "
               "(../shared/upstream or $DEPLOYER_UPSTREAM_DIR), which are not on this machine")
BINDERHUB_SCHEMA = UPSTREAM / "binderhub.values.schema.yaml" if UPSTREAM else None
BINDERHUB_DEFAULTS = UPSTREAM / "binderhub.values.defaults.yaml" if UPSTREAM else None
JUPYTERHUB_SCHEMA = UPSTREAM / "jupyterhub.values.schema.yaml" if UPSTREAM else None

# This project's own minimal binderhub defaults: the keys the stand-in templates read, for
# machines without the upstream reference data (not a copy of the real chart's values).
BINDERHUB_FALLBACK_VALUES = """\
pdb: {enabled: true, maxUnavailable: 1, minAvailable: null}
replicas: 1
resources: {}
nodeSelector: {}
tolerations: []
image: {name: quay.io/jupyterhub/k8s-binderhub, tag: set-by-chartpress, pullPolicy: "",
        pullSecrets: []}
registry: {url: "", username: "", password: ""}
service: {type: LoadBalancer, labels: {}, annotations: {}, nodePort: null,
          loadBalancerIP: null}
config:
  BinderHub: {base_url: /, use_registry: true}
extraPodSpec: {}
jupyterhub:
  cull: {enabled: true, users: true}
  hub:
    config:
      BinderSpawner: {auth_enabled: false}
      JupyterHub: {authenticator_class: nullauthenticator.NullAuthenticator}
  proxy:
    service: {type: ClusterIP}
  singleuser:
    cmd: jupyter-notebook
deployment:
  labels: {}
  livenessProbe: {enabled: true, initialDelaySeconds: 10, periodSeconds: 5,
                  failureThreshold: 1000, timeoutSeconds: 10}
  readinessProbe: {enabled: true, initialDelaySeconds: 0, periodSeconds: 5,
                   failureThreshold: 1000, timeoutSeconds: 3}
ingress:
  enabled: false
  https: {enabled: false, type: kube-lego}
  annotations: {}
  ingressClassName: null
  hosts: []
  pathSuffix: null
  pathType: Prefix
  tls: []
initContainers: []
lifecycle: {}
extraVolumes: []
extraVolumeMounts: []
extraEnv: {}
podAnnotations: {}
imageBuilderType: host
dind:
  daemonset:
    image: {name: docker.io/library/docker, tag: 24.0.7-dind, pullPolicy: ""}
    extraArgs: []
  storageDriver: overlay2
  resources: {}
  hostSocketDir: /var/run/dind
  hostLibDir: /var/lib/dind
pink:
  daemonset:
    image: {name: quay.io/podman/stable, tag: v4.7.2, pullPolicy: ""}
  resources: {}
  hostStorageDir: /var/lib/pink/storage
  hostSocketDir: /var/run/pink
imageCleaner:
  enabled: true
  image: {name: quay.io/jupyterhub/docker-image-cleaner, tag: 1.0.0-beta.3, pullPolicy: ""}
  delay: 5
  imageGCThresholdType: relative
  imageGCThresholdHigh: 80
  imageGCThresholdLow: 60
  host: {dockerSocket: /var/run/docker.sock, dockerLibDir: /var/lib/docker}
"""

JUPYTERHUB_REPO = "https://jupyterhub.github.io/helm-chart"


@dataclass(frozen=True)
class StandIn:
    """One stand-in chart: name, version, and charts bundled under its charts/ directory."""

    name: str
    version: str
    app_version: str | None = None
    kube_version: str | None = None
    subcharts: tuple["StandIn", ...] = field(default=())
    # Chart.yaml `dependencies:` entries' repository for the bundled subcharts.
    subchart_repository: str | None = None


JUPYTERHUB = StandIn("jupyterhub", "5.0.0-0.dev.git.7491.h82a53148",
                     app_version="5.4.5", kube_version=">=1.32.0-0")
BINDERHUB = StandIn("binderhub", "1.0.0-0.dev.git.3983.h383374de",
                    kube_version=">=1.28.0-0", subcharts=(JUPYTERHUB,),
                    subchart_repository=JUPYTERHUB_REPO)
TRAEFIK = StandIn("traefik", "41.1.1", app_version="v3.6.2", kube_version=">=1.22.0-0")
PROMETHEUS = StandIn("prometheus", "29.20.0", app_version="v3.7.3", kube_version=">=1.19.0-0")
GRAFANA = StandIn("grafana", "10.5.15", app_version="12.3.0", kube_version="^1.8.0-0")
CRYPTNONO = StandIn("cryptnono", "0.3.1")

# The charts published in the mirror repository (jupyterhub is bundled inside binderhub; it is
# *also* published on its own, as the real https://jupyterhub.github.io/helm-chart does).
STANDINS: list[StandIn] = [BINDERHUB, TRAEFIK, PROMETHEUS, GRAFANA, CRYPTNONO]
PUBLISHED: list[StandIn] = [JUPYTERHUB, *STANDINS]
VERSIONS: dict[str, str] = {c.name: c.version for c in PUBLISHED}


# --------------------------------------------------------------------------------------------
# schema.yaml -> values.schema.json, as upstream's tools/generate-json-schema.py does it
# --------------------------------------------------------------------------------------------

def clean_jsonschema(d: MutableMapping, parent_key: str = "") -> None:
    """Delete `description` keys in place, recursing through `properties` only.

    A verbatim port of upstream's clean_jsonschema (binderhub and z2jh
    tools/generate-json-schema.py): descriptions nested elsewhere (e.g. under `then`,
    `items`, `patternProperties`) are left alone, exactly as in the published charts.
    """
    for k in {"description"} & set(d.keys()):
        del d[k]
    if "properties" in d:
        for k, v in d["properties"].items():
            if isinstance(v, MutableMapping):
                clean_jsonschema(v, k)


def schema_json(schema_yaml: Path) -> dict:
    """The values.schema.json content for an upstream schema.yaml."""
    schema = yaml.safe_load(schema_yaml.read_text())
    clean_jsonschema(schema)
    return schema


def _strip_upstream_header(text: str) -> str:
    """Drop the one-line `# UPSTREAM:` provenance comment our fixtures start with."""
    first, _, rest = text.partition("\n")
    return rest if first.startswith("# UPSTREAM:") else text


# --------------------------------------------------------------------------------------------
# Chart sources
# --------------------------------------------------------------------------------------------

def _chart_yaml(c: StandIn) -> str:
    meta: dict = {
        "apiVersion": "v2",
        "name": c.name,
        "version": c.version,
        "description": f"TEST STAND-IN for the {c.name} chart (generated by tests/fakes/chart_repo.py)",
        "type": "application",
    }
    if c.app_version:
        meta["appVersion"] = c.app_version
    if c.kube_version:
        meta["kubeVersion"] = c.kube_version
    if c.subcharts:
        meta["dependencies"] = [
            {"name": s.name, "version": s.version, "repository": c.subchart_repository}
            for s in c.subcharts
        ]
    return yaml.safe_dump(meta, sort_keys=False)


# A helper both hub charts use: extraEnv may be a list (passed through) or a dict whose values
# are strings (-> value) or dicts (-> merged with the name, e.g. valueFrom), like z2jh's helper.
_EXTRA_ENV_TPL = r'''
{{- define "%(prefix)s.extraEnv" -}}
{{- if kindIs "slice" . }}
{{- range . }}
- {{ toJson . }}
{{- end }}
{{- else if kindIs "map" . }}
{{- range $key, $value := . }}
{{- if kindIs "map" $value }}
- {{ merge (dict "name" $key) $value | toJson }}
{{- else }}
- name: {{ $key | quote }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
'''

# ---- binderhub -----------------------------------------------------------------------------

_BINDERHUB_HELPERS = _EXTRA_ENV_TPL % {"prefix": "binderhub"} + r'''
{{- define "binderhub.labels" -}}
app: binder
component: binder
heritage: {{ .Release.Service | quote }}
release: {{ .Release.Name | quote }}
{{- end }}

{{- define "binderhub.selector" -}}
app: binder
component: binder
name: binder
release: {{ .Release.Name | quote }}
{{- end }}

{{- /* docker config.json for the build pods, as the real chart's "buildDockerConfig" */}}
{{- define "buildDockerConfig" -}}
{{- $url := default "https://index.docker.io/v1" .Values.registry.url }}
{{- $username := .Values.registry.username }}
{{- if not $username }}
{{- $username = ternary "_json_key" "<token>" (eq $url "https://gcr.io") }}
{{- end }}
{{- $auth := printf "%s:%s" $username (.Values.registry.password | default "") | b64enc }}
{{- $dockerConfig := dict "auths" (dict $url (dict "auth" $auth)) }}
{{- with .Values.config.BinderHub.buildDockerConfig }}
{{- $dockerConfig = merge $dockerConfig . }}
{{- end }}
{{- $dockerConfig | toPrettyJson }}
{{- end }}
'''

_BINDERHUB_DEPLOYMENT = r'''apiVersion: apps/v1
kind: Deployment
metadata:
  name: binder
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
    {{- with .Values.deployment.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      {{- include "binderhub.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "binderhub.selector" . | nindent 8 }}
        heritage: {{ .Release.Service | quote }}
      annotations:
        checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.image.pullSecrets }}
      imagePullSecrets:
        {{- range . }}
        {{- if kindIs "map" . }}
        - {{ toJson . }}
        {{- else }}
        - name: {{ . | quote }}
        {{- end }}
        {{- end }}
      {{- end }}
      {{- with .Values.initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumes:
        - name: config
          secret:
            secretName: binder-secret
        {{- if .Values.config.BinderHub.use_registry }}
        - name: docker-secret
          secret:
            secretName: binder-build-docker-config
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      containers:
        - name: binder
          image: {{ .Values.image.name }}:{{ .Values.image.tag }}
          {{- with .Values.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          args:
            - --config
            - /etc/binderhub/config/binderhub_config.py
            - --port
            - "8585"
          ports:
            - name: binder
              containerPort: 8585
          volumeMounts:
            - name: config
              mountPath: /etc/binderhub/secret/
              readOnly: true
            {{- if .Values.config.BinderHub.use_registry }}
            - name: docker-secret
              mountPath: /root/.docker
              readOnly: true
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            - name: BUILD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: HELM_RELEASE_NAME
              value: {{ .Release.Name | quote }}
            {{- with include "binderhub.extraEnv" .Values.extraEnv | trim }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- $probePath := printf "%s/versions" (.Values.config.BinderHub.base_url | default "/" | trimSuffix "/") }}
          {{- with .Values.deployment.livenessProbe }}
          {{- if .enabled }}
          livenessProbe:
            httpGet:
              path: {{ $probePath }}
              port: binder
            initialDelaySeconds: {{ .initialDelaySeconds }}
            periodSeconds: {{ .periodSeconds }}
            failureThreshold: {{ .failureThreshold }}
            timeoutSeconds: {{ .timeoutSeconds }}
          {{- end }}
          {{- end }}
          {{- with .Values.deployment.readinessProbe }}
          {{- if .enabled }}
          readinessProbe:
            httpGet:
              path: {{ $probePath }}
              port: binder
            initialDelaySeconds: {{ .initialDelaySeconds }}
            periodSeconds: {{ .periodSeconds }}
            failureThreshold: {{ .failureThreshold }}
            timeoutSeconds: {{ .timeoutSeconds }}
          {{- end }}
          {{- end }}
      {{- with .Values.extraPodSpec }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
'''

_BINDERHUB_SERVICE = r'''apiVersion: v1
kind: Service
metadata:
  name: binder
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
    {{- with .Values.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  {{- with .Values.service.loadBalancerIP }}
  loadBalancerIP: {{ . | quote }}
  {{- end }}
  selector:
    {{- include "binderhub.selector" . | nindent 4 }}
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 8585
      {{- with .Values.service.nodePort }}
      nodePort: {{ . }}
      {{- end }}
'''

# As the real chart: an `https.type: kube-lego` ingress asks for TLS through the
# kubernetes.io/tls-acme annotation and a kubelego-tls-binder-<release> secret.
_BINDERHUB_INGRESS = r'''{{- if .Values.ingress.enabled -}}
{{- $kubeLego := and .Values.ingress.https.enabled (eq (.Values.ingress.https.type | default "") "kube-lego") -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: binderhub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
  {{- if or $kubeLego .Values.ingress.annotations }}
  annotations:
    {{- if $kubeLego }}
    kubernetes.io/tls-acme: "true"
    {{- end }}
    {{- with .Values.ingress.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  {{- with .Values.ingress.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  rules:
    {{- range $host := .Values.ingress.hosts | default (list "") }}
    - http:
        paths:
          - path: {{ $.Values.config.BinderHub.base_url | default "/" | trimSuffix "/" }}/{{ $.Values.ingress.pathSuffix | default "" }}
            pathType: {{ $.Values.ingress.pathType | default "Prefix" }}
            backend:
              service:
                name: binder
                port:
                  number: 80
      {{- if $host }}
      host: {{ $host | quote }}
      {{- end }}
    {{- end }}
  {{- if $kubeLego }}
  tls:
    - secretName: kubelego-tls-binder-{{ .Release.Name }}
      hosts:
        {{- range .Values.ingress.hosts }}
        - {{ . | quote }}
        {{- end }}
  {{- else if .Values.ingress.tls }}
  tls:
    {{- toYaml .Values.ingress.tls | nindent 4 }}
  {{- end }}
{{- end }}
'''

# As the real chart (manics/binderhub @4c2e1022 secret.yaml): binder-secret stashes the
# traitlets config (with e.g. GitHubRepoProvider.access_token) in plain `stringData`, and the
# registry credentials go to binder-build-docker-config's config.json (base64 in `data`,
# with the `auth` inside it being base64("<username>:<password>") once more).
_BINDERHUB_SECRET = r'''kind: Secret
apiVersion: v1
metadata:
  name: binder-secret
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
type: Opaque
stringData:
  values.yaml: |
    {{- pick .Values "config" "imageBuilderType" "cors" "dind" "pink" "extraConfig" "repo2docker" | toYaml | nindent 4 }}
---
{{- if or .Values.config.BinderHub.use_registry .Values.config.BinderHub.buildDockerConfig }}
kind: Secret
apiVersion: v1
metadata:
  name: binder-build-docker-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
type: Opaque
data:
  config.json: {{ include "buildDockerConfig" . | b64enc | quote }}
{{- end }}
'''

# As the real chart: policy/v1 only when the cluster (or --api-versions) says it is served.
_BINDERHUB_PDB = r'''{{- if .Values.pdb.enabled -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}
apiVersion: policy/v1
{{- else }}
apiVersion: policy/v1beta1
{{- end }}
kind: PodDisruptionBudget
metadata:
  name: binderhub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "binderhub.labels" . | nindent 4 }}
spec:
  {{- if not (.Values.pdb.maxUnavailable | typeIs "<nil>") }}
  maxUnavailable: {{ .Values.pdb.maxUnavailable }}
  {{- end }}
  {{- if not (.Values.pdb.minAvailable | typeIs "<nil>") }}
  minAvailable: {{ .Values.pdb.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "binderhub.selector" . | nindent 6 }}
{{- end }}
'''

# As the real chart (container-builder/daemonset.yaml): with imageBuilderType dind or pink,
# a privileged DaemonSet <release>-<builder> runs the build daemon on every user node.
_BINDERHUB_BUILDER_DAEMONSET = r'''{{- if ne .Values.imageBuilderType "host" -}}
{{- $builderName := .Values.imageBuilderType -}}
{{- $builder := index .Values $builderName -}}
{{- $daemonset := $builder.daemonset -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-{{ $builderName }}
  namespace: {{ .Release.Namespace }}
spec:
  updateStrategy:
    type: RollingUpdate
  selector:
    matchLabels:
      name: {{ .Release.Name }}-{{ $builderName }}
  template:
    metadata:
      labels:
        name: {{ .Release.Name }}-{{ $builderName }}
        app: binder
        component: image-builder
        release: {{ .Release.Name }}
        heritage: {{ .Release.Service }}
    spec:
      tolerations:
        - effect: NoSchedule
          key: hub.jupyter.org/dedicated
          operator: Equal
          value: user
        - effect: NoSchedule
          key: hub.jupyter.org_dedicated
          operator: Equal
          value: user
        {{- with .Values.tolerations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      nodeSelector: {{ .Values.config.BinderHub.build_node_selector | default dict | toJson }}
      containers:
        - name: {{ $builderName }}
          image: {{ $daemonset.image.name }}:{{ $daemonset.image.tag }}
          {{- with $daemonset.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          {{- with $builder.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            privileged: true
          volumeMounts:
            - name: run-{{ $builderName }}
              mountPath: /var/run/{{ $builderName }}
      terminationGracePeriodSeconds: 30
      volumes:
        - name: run-{{ $builderName }}
          hostPath:
            path: {{ $builder.hostSocketDir }}
            type: DirectoryOrCreate
{{- end }}
'''

# As the real chart (image-cleaner.yaml): a DaemonSet <release>-image-cleaner that prunes
# build images on every node, for the host docker or the dind/pink daemon.
_BINDERHUB_IMAGE_CLEANER = r'''{{- if .Values.imageCleaner.enabled -}}
{{- $builderName := .Values.imageBuilderType -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-image-cleaner
  namespace: {{ .Release.Namespace }}
spec:
  updateStrategy:
    type: RollingUpdate
  selector:
    matchLabels:
      name: {{ .Release.Name }}-image-cleaner
  template:
    metadata:
      labels:
        name: {{ .Release.Name }}-image-cleaner
        app: binder
        component: image-cleaner
        release: {{ .Release.Name }}
        heritage: {{ .Release.Service }}
    spec:
      tolerations:
        - effect: NoSchedule
          key: hub.jupyter.org/dedicated
          operator: Equal
          value: user
        - effect: NoSchedule
          key: hub.jupyter.org_dedicated
          operator: Equal
          value: user
      nodeSelector: {{ .Values.config.BinderHub.build_node_selector | default dict | toJson }}
      containers:
        - name: image-cleaner
          image: {{ .Values.imageCleaner.image.name }}:{{ .Values.imageCleaner.image.tag }}
          {{- with .Values.imageCleaner.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          env:
            - name: DOCKER_IMAGE_CLEANER_NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: DOCKER_IMAGE_CLEANER_DELAY_SECONDS
              value: {{ .Values.imageCleaner.delay | quote }}
            - name: DOCKER_IMAGE_CLEANER_THRESHOLD_TYPE
              value: {{ .Values.imageCleaner.imageGCThresholdType | quote }}
            - name: DOCKER_IMAGE_CLEANER_THRESHOLD_HIGH
              value: {{ .Values.imageCleaner.imageGCThresholdHigh | quote }}
            - name: DOCKER_IMAGE_CLEANER_THRESHOLD_LOW
              value: {{ .Values.imageCleaner.imageGCThresholdLow | quote }}
          volumeMounts:
            - name: socket
              mountPath: /var/run/docker.sock
      terminationGracePeriodSeconds: 0
      volumes:
        - name: socket
          hostPath:
            {{- if eq $builderName "host" }}
            path: {{ .Values.imageCleaner.host.dockerSocket }}
            {{- else }}
            path: {{ (index .Values $builderName).hostSocketDir }}/{{ ternary "podman.sock" "docker.sock" (eq $builderName "pink") }}
            {{- end }}
            type: Socket
{{- end }}
'''

# ---- jupyterhub (z2jh) ---------------------------------------------------------------------

# Trimmed but real z2jh defaults: every section the schema requires, and complete sub-objects
# (with their `required` keys) for every section mybinder's values touch, so that a partial
# user override validates exactly when it would against the real chart.
JUPYTERHUB_VALUES = r'''# TEST STAND-IN defaults for the jupyterhub (z2jh) chart; trimmed from the real values.yaml.
fullnameOverride: ""
nameOverride:
enabled:
imagePullSecret:
  create: false
  automaticReferenceInjection: true
  registry:
  username:
  password:
  email:
imagePullSecrets: []

hub:
  revisionHistoryLimit:
  config:
    JupyterHub:
      admin_access: true
      authenticator_class: dummy
  service:
    type: ClusterIP
    annotations: {}
    ports:
      nodePort:
    extraPorts: []
    loadBalancerIP:
  baseUrl: /
  cookieSecret:
  initContainers: []
  nodeSelector: {}
  tolerations: []
  concurrentSpawnLimit: 64
  consecutiveFailureLimit: 5
  activeServerLimit:
  deploymentStrategy:
    type: Recreate
  db:
    type: sqlite-pvc
    upgrade:
    pvc:
      annotations: {}
      selector: {}
      accessModes:
        - ReadWriteOnce
      storage: 1Gi
      subPath:
      storageClassName:
    url:
    password:
  labels: {}
  annotations: {}
  command: []
  args: []
  extraConfig: {}
  extraFiles: {}
  extraEnv: {}
  extraContainers: []
  extraVolumes: []
  extraVolumeMounts: []
  image:
    name: quay.io/jupyterhub/k8s-hub
    tag: "set-by-chartpress"
    pullPolicy:
    pullSecrets: []
  resources: {}
  podSecurityContext:
    runAsNonRoot: true
    fsGroup: 1000
    seccompProfile:
      type: "RuntimeDefault"
  containerSecurityContext:
    runAsUser: 1000
    runAsGroup: 1000
    allowPrivilegeEscalation: false
    capabilities:
      drop: ["ALL"]
  lifecycle: {}
  loadRoles: {}
  services: {}
  pdb:
    enabled: false
    maxUnavailable:
    minAvailable: 1
  networkPolicy:
    enabled: true
    ingress: []
    egress: []
    egressAllowRules:
      cloudMetadataServer: true
      dnsPortsCloudMetadataServer: true
      dnsPortsKubeSystemNamespace: true
      dnsPortsPrivateIPs: true
      nonPrivateIPs: true
      privateIPs: true
    interNamespaceAccessLabels: ignore
    allowedIngressPorts: []
  allowNamedServers: false
  namedServerLimitPerUser:
  authenticatePrometheus:
  redirectToServer:
  shutdownOnLogout:
  templatePaths: []
  templateVars: {}
  livenessProbe:
    enabled: true
    initialDelaySeconds: 300
    periodSeconds: 10
    failureThreshold: 30
    timeoutSeconds: 3
  readinessProbe:
    enabled: true
    initialDelaySeconds: 0
    periodSeconds: 2
    failureThreshold: 1000
    timeoutSeconds: 1
  existingSecret:
  serviceAccount:
    create: true
    name:
    annotations: {}
  extraPodSpec: {}

rbac:
  create: true

proxy:
  secretToken:
  annotations: {}
  deploymentStrategy:
    type: Recreate
    rollingUpdate:
  service:
    type: LoadBalancer
    labels: {}
    annotations: {}
    extraPorts: []
    nodePorts:
      http:
      https:
    disableHttpPort: false
    loadBalancerIP:
    loadBalancerSourceRanges: []
  chp:
    revisionHistoryLimit:
    containerSecurityContext:
      runAsNonRoot: true
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
      seccompProfile:
        type: "RuntimeDefault"
    image:
      name: quay.io/jupyterhub/configurable-http-proxy
      tag: "5.1.0"
      pullPolicy:
      pullSecrets: []
    extraCommandLineFlags: []
    livenessProbe:
      enabled: true
      initialDelaySeconds: 60
      periodSeconds: 10
      failureThreshold: 30
      timeoutSeconds: 3
    readinessProbe:
      enabled: true
      initialDelaySeconds: 0
      periodSeconds: 2
      failureThreshold: 1000
      timeoutSeconds: 1
    resources: {}
    defaultTarget:
    errorTarget:
    extraEnv: {}
    nodeSelector: {}
    tolerations: []
    networkPolicy:
      enabled: true
      ingress: []
      egress: []
      egressAllowRules:
        cloudMetadataServer: true
        dnsPortsCloudMetadataServer: true
        dnsPortsKubeSystemNamespace: true
        dnsPortsPrivateIPs: true
        nonPrivateIPs: true
        privateIPs: true
      interNamespaceAccessLabels: ignore
      allowedIngressPorts: [http, https]
    pdb:
      enabled: false
      maxUnavailable:
      minAvailable: 1
    extraPodSpec: {}
  secretSync:
    containerSecurityContext:
      runAsNonRoot: true
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    image:
      name: quay.io/jupyterhub/k8s-secret-sync
      tag: "set-by-chartpress"
      pullPolicy:
      pullSecrets: []
    resources: {}
  labels: {}
  https:
    enabled: false
    type: letsencrypt
    letsencrypt:
      contactEmail:
      acmeServer: https://acme-v02.api.letsencrypt.org/directory
    manual:
      key:
      cert:
    secret:
      name:
      key: tls.key
      crt: tls.crt
    hosts: []

singleuser:
  podNameTemplate:
  extraTolerations: []
  nodeSelector: {}
  extraNodeAffinity:
    required: []
    preferred: []
  extraPodAffinity:
    required: []
    preferred: []
  extraPodAntiAffinity:
    required: []
    preferred: []
  networkTools:
    image:
      name: quay.io/jupyterhub/k8s-network-tools
      tag: "set-by-chartpress"
      pullPolicy:
      pullSecrets: []
    resources: {}
  cloudMetadata:
    blockWithIptables: true
    ip: 169.254.169.254
  networkPolicy:
    enabled: true
    ingress: []
    egress: []
    egressAllowRules:
      cloudMetadataServer: false
      dnsPortsCloudMetadataServer: true
      dnsPortsKubeSystemNamespace: true
      dnsPortsPrivateIPs: true
      nonPrivateIPs: true
      privateIPs: false
    interNamespaceAccessLabels: ignore
    allowedIngressPorts: []
  events: true
  extraAnnotations: {}
  extraLabels:
    hub.jupyter.org/network-access-hub: "true"
  extraFiles: {}
  extraEnv: {}
  lifecycleHooks: {}
  initContainers: []
  extraContainers: []
  allowPrivilegeEscalation: false
  uid: 1000
  fsGid: 100
  serviceAccountName:
  storage:
    type: dynamic
    extraLabels: {}
    extraVolumes: []
    extraVolumeMounts: []
    static:
      pvcName:
      subPath: "{username}"
    capacity: 10Gi
    homeMountPath: /home/jovyan
    dynamic:
      storageClass:
      pvcNameTemplate:
      volumeNameTemplate: volume-{user_server}
      storageAccessModes: [ReadWriteOnce]
  image:
    name: quay.io/jupyterhub/k8s-singleuser-sample
    tag: "set-by-chartpress"
    pullPolicy:
    pullSecrets: []
  startTimeout: 300
  cpu:
    limit:
    guarantee:
  memory:
    limit:
    guarantee: 1G
  extraResource:
    limits: {}
    guarantees: {}
  cmd:
  defaultUrl:
  extraPodConfig: {}
  profileList: []

scheduling:
  userScheduler:
    enabled: true
    revisionHistoryLimit:
    replicas: 2
    logLevel: 4
    plugins:
      score:
        disabled:
          - name: NodeResourcesBalancedAllocation
        enabled:
          - name: NodeAffinity
            weight: 14631
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: MostAllocated
            resources:
              - name: cpu
                weight: 1
              - name: memory
                weight: 1
    containerSecurityContext:
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    image:
      name: registry.k8s.io/kube-scheduler
      tag: "v1.33.4"
      pullPolicy:
      pullSecrets: []
    nodeSelector: {}
    tolerations: []
    labels: {}
    annotations: {}
    pdb:
      enabled: true
      maxUnavailable: 1
      minAvailable:
    resources: {}
    serviceAccount:
      create: true
      name:
      annotations: {}
    extraPodSpec: {}
  podPriority:
    enabled: false
    globalDefault: false
    defaultPriority: 0
    imagePullerPriority: -5
    userPlaceholderPriority: -10
  userPlaceholder:
    enabled: true
    image:
      name: registry.k8s.io/pause
      tag: "3.10"
      pullPolicy:
      pullSecrets: []
    revisionHistoryLimit:
    replicas: 0
    labels: {}
    annotations: {}
    containerSecurityContext:
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    resources: {}
  corePods:
    tolerations:
      - key: hub.jupyter.org/dedicated
        operator: Equal
        value: core
        effect: NoSchedule
      - key: hub.jupyter.org_dedicated
        operator: Equal
        value: core
        effect: NoSchedule
    nodeAffinity:
      matchNodePurpose: prefer
  userPods:
    tolerations:
      - key: hub.jupyter.org/dedicated
        operator: Equal
        value: user
        effect: NoSchedule
      - key: hub.jupyter.org_dedicated
        operator: Equal
        value: user
        effect: NoSchedule
    nodeAffinity:
      matchNodePurpose: prefer

prePuller:
  revisionHistoryLimit:
  labels: {}
  annotations: {}
  resources: {}
  containerSecurityContext:
    runAsUser: 65534
    runAsGroup: 65534
    allowPrivilegeEscalation: false
    capabilities:
      drop: ["ALL"]
  extraTolerations: []
  hook:
    enabled: true
    pullOnlyOnChanges: true
    image:
      name: quay.io/jupyterhub/k8s-image-awaiter
      tag: "set-by-chartpress"
      pullPolicy:
      pullSecrets: []
    containerSecurityContext:
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    podSchedulingWaitDuration: 10
    nodeSelector: {}
    tolerations: []
    resources: {}
    serviceAccount:
      create: true
      name:
      annotations: {}
  continuous:
    enabled: true
  pullProfileListImages: true
  extraImages: {}
  pause:
    containerSecurityContext:
      runAsUser: 65534
      runAsGroup: 65534
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
    image:
      name: registry.k8s.io/pause
      tag: "3.10"
      pullPolicy:
      pullSecrets: []

ingress:
  enabled: false
  annotations: {}
  ingressClassName:
  hosts: []
  pathSuffix:
  pathType: Prefix
  tls: []

cull:
  enabled: true
  users: false
  adminUsers: true
  removeNamedServers: false
  timeout: 3600
  every: 600
  concurrency: 10
  maxAge: 0

debug:
  enabled: false

global:
  safeToShowValues: false

custom: {}
'''

_JUPYTERHUB_HELPERS = _EXTRA_ENV_TPL % {"prefix": "jupyterhub"} + r'''
{{- define "jupyterhub.labels" -}}
app: jupyterhub
chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
heritage: {{ .Release.Service | quote }}
release: {{ .Release.Name | quote }}
{{- end }}

{{- define "jupyterhub.matchLabels" -}}
app: jupyterhub
release: {{ .Release.Name | quote }}
{{- end }}

{{- define "jupyterhub.imagePullSecrets" -}}
{{- range . }}
{{- if kindIs "map" . }}
- {{ toJson . }}
{{- else }}
- name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jupyterhub.probe" -}}
{{- $p := omit .probe "enabled" }}
{{- $_ := set $p "httpGet" (dict "path" .path "port" .port) }}
{{- toYaml $p }}
{{- end }}
'''

_JUPYTERHUB_HUB_DEPLOYMENT = r'''apiVersion: apps/v1
kind: Deployment
metadata:
  name: hub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: hub
    {{- with .Values.hub.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  replicas: 1
  {{- with .Values.hub.revisionHistoryLimit }}
  revisionHistoryLimit: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "jupyterhub.matchLabels" . | nindent 6 }}
      component: hub
  strategy:
    {{- toYaml .Values.hub.deploymentStrategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "jupyterhub.matchLabels" . | nindent 8 }}
        component: hub
        hub.jupyter.org/network-access-proxy-api: "true"
        hub.jupyter.org/network-access-proxy-http: "true"
        hub.jupyter.org/network-access-singleuser: "true"
        {{- with .Values.hub.labels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config-map: {{ include (print $.Template.BasePath "/hub/configmap.yaml") . | sha256sum }}
        checksum/secret: {{ include (print $.Template.BasePath "/hub/secret.yaml") . | sha256sum }}
        {{- with .Values.hub.annotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with .Values.hub.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with concat .Values.scheduling.corePods.tolerations (.Values.hub.tolerations | default list) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with concat .Values.imagePullSecrets (.Values.hub.image.pullSecrets | default list) }}
      imagePullSecrets:
        {{- include "jupyterhub.imagePullSecrets" . | nindent 8 }}
      {{- end }}
      {{- with .Values.hub.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.hub.initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumes:
        - name: config
          configMap:
            name: hub
        - name: secret
          secret:
            secretName: hub
        {{- if eq .Values.hub.db.type "sqlite-pvc" }}
        - name: pvc
          persistentVolumeClaim:
            claimName: hub-db-dir
        {{- end }}
        {{- with .Values.hub.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      containers:
        - name: hub
          image: {{ .Values.hub.image.name }}:{{ .Values.hub.image.tag }}
          {{- with .Values.hub.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          {{- with .Values.hub.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          args:
            {{- if .Values.hub.args }}
            {{- toYaml .Values.hub.args | nindent 12 }}
            {{- else }}
            - jupyterhub
            - --config
            - /usr/local/etc/jupyterhub/jupyterhub_config.py
            {{- if .Values.debug.enabled }}
            - --debug
            {{- end }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8081
          volumeMounts:
            - name: config
              mountPath: /usr/local/etc/jupyterhub/config/
            - name: secret
              mountPath: /usr/local/etc/jupyterhub/secret/
            {{- if eq .Values.hub.db.type "sqlite-pvc" }}
            - name: pvc
              mountPath: /srv/jupyterhub
              {{- with .Values.hub.db.pvc.subPath }}
              subPath: {{ . | quote }}
              {{- end }}
            {{- end }}
            {{- with .Values.hub.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with .Values.hub.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.hub.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.hub.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            - name: PYTHONUNBUFFERED
              value: "1"
            - name: HELM_RELEASE_NAME
              value: {{ .Release.Name | quote }}
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: CONFIGPROXY_AUTH_TOKEN
              valueFrom:
                secretKeyRef:
                  name: hub
                  key: hub.config.ConfigurableHTTPProxy.auth_token
            {{- with include "jupyterhub.extraEnv" .Values.hub.extraEnv | trim }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- $base := .Values.hub.baseUrl | trimSuffix "/" }}
          {{- if .Values.hub.livenessProbe.enabled }}
          livenessProbe:
            {{- include "jupyterhub.probe" (dict "probe" .Values.hub.livenessProbe "path" (printf "%s/hub/health" $base) "port" "http") | nindent 12 }}
          {{- end }}
          {{- if .Values.hub.readinessProbe.enabled }}
          readinessProbe:
            {{- include "jupyterhub.probe" (dict "probe" .Values.hub.readinessProbe "path" (printf "%s/hub/health" $base) "port" "http") | nindent 12 }}
          {{- end }}
        {{- with .Values.hub.extraContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.hub.extraPodSpec }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
'''

_JUPYTERHUB_HUB_SERVICE = r'''apiVersion: v1
kind: Service
metadata:
  name: hub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: hub
  annotations:
    {{- if not (index .Values.hub.service.annotations "prometheus.io/scrape") }}
    prometheus.io/scrape: "true"
    {{- end }}
    {{- if not (index .Values.hub.service.annotations "prometheus.io/path") }}
    prometheus.io/path: {{ .Values.hub.baseUrl | trimSuffix "/" }}/hub/metrics
    {{- end }}
    {{- if not (index .Values.hub.service.annotations "prometheus.io/port") }}
    prometheus.io/port: "8081"
    {{- end }}
    {{- with .Values.hub.service.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  type: {{ .Values.hub.service.type }}
  {{- with .Values.hub.service.loadBalancerIP }}
  loadBalancerIP: {{ . | quote }}
  {{- end }}
  selector:
    {{- include "jupyterhub.matchLabels" . | nindent 4 }}
    component: hub
  ports:
    - name: hub
      port: 8081
      targetPort: http
      {{- with .Values.hub.service.ports.nodePort }}
      nodePort: {{ . }}
      {{- end }}
    {{- with .Values.hub.service.extraPorts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
'''

# As z2jh's hub Secret: the whole values tree (base64 YAML) plus one key per secret setting.
# As the real chart, the proxy token, cookie secret and CryptKeeper keys (and every
# hub.services API token) are generated when unset: taken from the chart's value, else from
# the live Secret (helm `lookup`: only when rendering against a cluster), else random, so
# every offline `helm template` renders new ones.
_JUPYTERHUB_PASSWORDS = r'''
{{- define "jupyterhub.randHex" -}}
{{- $result := "" }}
{{- range $i := until . }}
{{- $result = print $result (mod (randNumeric 4 | atoi) 16 | printf "%x") }}
{{- end }}
{{- $result }}
{{- end }}

{{- /* (list $ key chartValue length): the chart value, else the live Secret's, else random */}}
{{- define "jupyterhub.generated" -}}
{{- $root := index . 0 }}{{- $key := index . 1 }}{{- $given := index . 2 }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- $live := lookup "v1" "Secret" $root.Release.Namespace "hub" | default (dict "data" (dict)) }}
{{- if hasKey ($live.data | default dict) $key }}
{{- index $live.data $key | b64dec }}
{{- else if eq $key "hub.config.ConfigurableHTTPProxy.auth_token" }}
{{- randAlphaNum 64 }}
{{- else }}
{{- include "jupyterhub.randHex" 64 }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jupyterhub.hub.config.ConfigurableHTTPProxy.auth_token" -}}
{{- include "jupyterhub.generated" (list . "hub.config.ConfigurableHTTPProxy.auth_token" (or (.Values.hub.config | dig "ConfigurableHTTPProxy" "auth_token" "") .Values.proxy.secretToken)) }}
{{- end }}
{{- define "jupyterhub.hub.config.JupyterHub.cookie_secret" -}}
{{- include "jupyterhub.generated" (list . "hub.config.JupyterHub.cookie_secret" (or (.Values.hub.config | dig "JupyterHub" "cookie_secret" "") .Values.hub.cookieSecret)) }}
{{- end }}
{{- define "jupyterhub.hub.config.CryptKeeper.keys" -}}
{{- include "jupyterhub.generated" (list . "hub.config.CryptKeeper.keys" (.Values.hub.config | dig "CryptKeeper" "keys" list | join ";")) }}
{{- end }}
'''

_JUPYTERHUB_HUB_SECRET = r'''kind: Secret
apiVersion: v1
metadata:
  name: hub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: hub
type: Opaque
data:
  {{- $values := merge dict .Values }}
  {{- $_ := set $values "Chart" (dict "Name" .Chart.Name "Version" .Chart.Version) }}
  {{- $_ := set $values "Release" (pick .Release "Name" "Namespace" "Service") }}
  values.yaml: {{ $values | toYaml | b64enc | quote }}
  {{- with .Values.hub.db.password }}
  hub.db.password: {{ . | b64enc | quote }}
  {{- end }}
  {{- range $key, $service := .Values.hub.services }}
  {{- $k := print "hub.services." $key ".apiToken" }}
  {{ $k }}: {{ include "jupyterhub.generated" (list $ $k (or ($service | dig "api_token" "") ($service | dig "apiToken" ""))) | b64enc | quote }}
  {{- end }}
  hub.config.ConfigurableHTTPProxy.auth_token: {{ include "jupyterhub.hub.config.ConfigurableHTTPProxy.auth_token" . | b64enc | quote }}
  hub.config.JupyterHub.cookie_secret: {{ include "jupyterhub.hub.config.JupyterHub.cookie_secret" . | b64enc | quote }}
  hub.config.CryptKeeper.keys: {{ include "jupyterhub.hub.config.CryptKeeper.keys" . | b64enc | quote }}
'''

# As z2jh's hub/proxy/singleuser NetworkPolicies (on by default), trimmed: each component
# accepts traffic only from pods labelled hub.jupyter.org/network-access-<component> (plus its
# allowedIngressPorts) and reaches DNS and the egress its egressAllowRules allow.
_JUPYTERHUB_NETPOL = r'''
{{- range $component := list "hub" "proxy" "singleuser" }}
{{- $np := (eq $component "proxy") | ternary $.Values.proxy.chp.networkPolicy (index $.Values $component).networkPolicy }}
{{- if $np.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $component }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" $ | nindent 4 }}
    component: {{ $component }}
spec:
  podSelector:
    matchLabels:
      {{- include "jupyterhub.matchLabels" $ | nindent 6 }}
      component: {{ (eq $component "singleuser") | ternary "singleuser-server" $component }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- with $np.allowedIngressPorts }}
    - ports:
        {{- range $port := . }}
        - port: {{ $port }}
        {{- end }}
    {{- end }}
    - ports:
        - port: {{ get (dict "hub" "http" "proxy" "http" "singleuser" "notebook-port") $component }}
      from:
        - podSelector:
            matchLabels:
              hub.jupyter.org/network-access-{{ $component }}: "true"
    {{- with $np.ingress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- if $np.egressAllowRules.nonPrivateIPs }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except:
              - 10.0.0.0/8
              - 172.16.0.0/12
              - 192.168.0.0/16
              {{- if not $np.egressAllowRules.cloudMetadataServer }}
              - {{ $.Values.singleuser.cloudMetadata.ip }}/32
              {{- end }}
    {{- end }}
    {{- if $np.egressAllowRules.privateIPs }}
    - to:
        - ipBlock:
            cidr: 10.0.0.0/8
        - ipBlock:
            cidr: 172.16.0.0/12
        - ipBlock:
            cidr: 192.168.0.0/16
    {{- end }}
    {{- with $np.egress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end }}
'''

# Stand-in for z2jh's hub ConfigMap: the settings tests want to see reach the manifests.
_JUPYTERHUB_HUB_CONFIGMAP = r'''kind: ConfigMap
apiVersion: v1
metadata:
  name: hub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: hub
data:
  cull.json: {{ .Values.cull | toJson | quote }}
  singleuser-resources.json: {{ dict "cpu" .Values.singleuser.cpu "memory" .Values.singleuser.memory | toJson | quote }}
  hub-config.json: {{ .Values.hub.config | toJson | quote }}
'''

_JUPYTERHUB_HUB_PVC = r'''{{- if eq .Values.hub.db.type "sqlite-pvc" -}}
kind: PersistentVolumeClaim
apiVersion: v1
metadata:
  name: hub-db-dir
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: hub
  {{- with .Values.hub.db.pvc.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.hub.db.pvc.selector }}
  selector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if typeIs "string" .Values.hub.db.pvc.storageClassName }}
  storageClassName: {{ .Values.hub.db.pvc.storageClassName | quote }}
  {{- end }}
  accessModes:
    {{- toYaml .Values.hub.db.pvc.accessModes | nindent 4 }}
  resources:
    requests:
      storage: {{ .Values.hub.db.pvc.storage | quote }}
{{- end }}
'''

_JUPYTERHUB_PROXY_DEPLOYMENT = r'''apiVersion: apps/v1
kind: Deployment
metadata:
  name: proxy
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: proxy
    {{- with .Values.proxy.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  replicas: 1
  {{- with .Values.proxy.chp.revisionHistoryLimit }}
  revisionHistoryLimit: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "jupyterhub.matchLabels" . | nindent 6 }}
      component: proxy
  strategy:
    {{- toYaml .Values.proxy.deploymentStrategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "jupyterhub.matchLabels" . | nindent 8 }}
        component: proxy
        hub.jupyter.org/network-access-hub: "true"
        hub.jupyter.org/network-access-singleuser: "true"
        {{- with .Values.proxy.labels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # as the real chart: the proxy restarts when its token changes
        checksum/auth-token: {{ include "jupyterhub.hub.config.ConfigurableHTTPProxy.auth_token" . | sha256sum | trunc 4 | quote }}
        {{- with .Values.proxy.annotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      terminationGracePeriodSeconds: 60
      {{- with .Values.proxy.chp.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with concat .Values.scheduling.corePods.tolerations (.Values.proxy.chp.tolerations | default list) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with concat .Values.imagePullSecrets (.Values.proxy.chp.image.pullSecrets | default list) }}
      imagePullSecrets:
        {{- include "jupyterhub.imagePullSecrets" . | nindent 8 }}
      {{- end }}
      containers:
        - name: chp
          image: {{ .Values.proxy.chp.image.name }}:{{ .Values.proxy.chp.image.tag }}
          {{- with .Values.proxy.chp.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          {{- $hubUrl := "http://hub:$(HUB_SERVICE_PORT)" }}
          command:
            - configurable-http-proxy
            - "--ip="
            - "--api-ip="
            - --api-port=8001
            - --default-target={{ .Values.proxy.chp.defaultTarget | default $hubUrl }}
            - --error-target={{ .Values.proxy.chp.errorTarget | default (printf "%s/hub/error" $hubUrl) }}
            - --port=8000
            {{- if .Values.debug.enabled }}
            - --log-level=debug
            {{- end }}
            {{- range .Values.proxy.chp.extraCommandLineFlags }}
            - {{ tpl . $ | quote }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8000
            - name: api
              containerPort: 8001
          {{- with .Values.proxy.chp.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.proxy.chp.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            - name: CONFIGPROXY_AUTH_TOKEN
              valueFrom:
                secretKeyRef:
                  name: hub
                  key: hub.config.ConfigurableHTTPProxy.auth_token
            - name: HELM_RELEASE_NAME
              value: {{ .Release.Name | quote }}
            {{- with include "jupyterhub.extraEnv" .Values.proxy.chp.extraEnv | trim }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- if .Values.proxy.chp.livenessProbe.enabled }}
          livenessProbe:
            {{- include "jupyterhub.probe" (dict "probe" .Values.proxy.chp.livenessProbe "path" "/_chp_healthz" "port" "http") | nindent 12 }}
          {{- end }}
          {{- if .Values.proxy.chp.readinessProbe.enabled }}
          readinessProbe:
            {{- include "jupyterhub.probe" (dict "probe" .Values.proxy.chp.readinessProbe "path" "/_chp_healthz" "port" "http") | nindent 12 }}
          {{- end }}
      {{- with .Values.proxy.chp.extraPodSpec }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
'''

_JUPYTERHUB_PROXY_SERVICE = r'''apiVersion: v1
kind: Service
metadata:
  name: proxy-public
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
    component: proxy-public
    {{- with .Values.proxy.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.proxy.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.proxy.service.type }}
  {{- with .Values.proxy.service.loadBalancerIP }}
  loadBalancerIP: {{ . | quote }}
  {{- end }}
  {{- if eq .Values.proxy.service.type "LoadBalancer" }}
  {{- with .Values.proxy.service.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  selector:
    {{- include "jupyterhub.matchLabels" . | nindent 4 }}
    component: proxy
  ports:
    {{- if not .Values.proxy.service.disableHttpPort }}
    - name: http
      port: 80
      targetPort: http
      {{- with .Values.proxy.service.nodePorts.http }}
      nodePort: {{ . }}
      {{- end }}
    {{- end }}
    {{- with .Values.proxy.service.extraPorts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
'''

_JUPYTERHUB_INGRESS = r'''{{- if .Values.ingress.enabled -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: jupyterhub
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "jupyterhub.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  rules:
    {{- range $host := .Values.ingress.hosts | default (list "") }}
    - http:
        paths:
          - path: {{ $.Values.hub.baseUrl | trimSuffix "/" }}/{{ $.Values.ingress.pathSuffix | default "" }}
            pathType: {{ $.Values.ingress.pathType | default "Prefix" }}
            backend:
              service:
                name: proxy-public
                port:
                  name: http
      {{- if $host }}
      host: {{ $host | quote }}
      {{- end }}
    {{- end }}
  {{- with .Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
'''

# ---- traefik -------------------------------------------------------------------------------

TRAEFIK_VALUES = r'''# TEST STAND-IN defaults for the traefik chart (41.x keys; a subset of the real ones).
image:
  registry: docker.io
  repository: traefik
  tag:
  pullPolicy: IfNotPresent
deployment:
  enabled: true
  kind: Deployment
  replicas: 1
  podLabels: {}
  podAnnotations: {}
ingressClass:
  enabled: true
  isDefaultClass: true
  name: ""
providers:
  kubernetesCRD:
    enabled: true
  kubernetesIngress:
    enabled: true
log:
  level: INFO
additionalArguments: []
ports:
  traefik:
    port: 8080
    expose:
      default: false
    exposedPort: 8080
    protocol: TCP
  web:
    port: 8000
    expose:
      default: true
    exposedPort: 80
    protocol: TCP
  websecure:
    port: 8443
    expose:
      default: true
    exposedPort: 443
    protocol: TCP
  metrics:
    port: 9100
    expose:
      default: false
    exposedPort: 9100
    protocol: TCP
service:
  enabled: true
  annotations: {}
  labels: {}
  spec:
    type: LoadBalancer
resources: {}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
  readOnlyRootFilesystem: true
nodeSelector: {}
tolerations: []
priorityClassName: ""
nameOverride: ""
fullnameOverride: ""
'''

# This project's own trimmed schema for the traefik stand-in, shaped as the real chart's
# values.schema.json (draft 2020-12): the top level, `image`, `ingressClass`, `providers`,
# `log` and each entry of `ports` are closed (additionalProperties: false), as in traefik
# 41.x; `service`, `deployment` and `service.spec` are open, as there. Only the keys the
# stand-in and mybinder use are listed: the real schema lists ~60 top-level keys.
TRAEFIK_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Traefik Proxy Helm Chart (test stand-in, trimmed)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": {"type": "object"},
        "enabled": {"type": "boolean"},
        "nameOverride": {"type": "string"},
        "fullnameOverride": {"type": "string"},
        "image": {"type": "object", "additionalProperties": False, "properties": {
            "registry": {"type": "string"}, "repository": {"type": "string"},
            "tag": {"type": ["string", "null"]}, "digest": {"type": ["string", "null"]},
            "pullPolicy": {"type": "string",
                           "enum": ["IfNotPresent", "Always", "Never", ""]}}},
        "deployment": {"type": "object", "properties": {
            "enabled": {"type": "boolean"}, "kind": {"type": "string",
                                                   "enum": ["Deployment", "DaemonSet"]},
            "replicas": {"type": ["integer", "null"], "minimum": 0},
            "podLabels": {"type": "object"}, "podAnnotations": {"type": "object"}}},
        "ingressClass": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "isDefaultClass": {"type": "boolean"},
            "name": {"type": "string"}}},
        "providers": {"type": "object", "additionalProperties": False, "properties": {
            "kubernetesCRD": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
            "kubernetesIngress": {"type": "object",
                                  "properties": {"enabled": {"type": "boolean"}}}}},
        "log": {"type": "object", "additionalProperties": False, "properties": {
            "level": {"type": "string",
                      "enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"]},
            "format": {"type": ["string", "null"]}}},
        "additionalArguments": {"type": "array"},
        "ports": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "properties": {
                "port": {"type": "integer"}, "exposedPort": {"type": "integer"},
                "protocol": {"type": "string"}, "nodePort": {"type": ["integer", "null"]},
                "targetPort": {"type": ["string", "integer", "null"]},
                "expose": {"type": "object", "properties": {"default": {"type": "boolean"}}}}}},
        "service": {"type": "object", "properties": {
            "enabled": {"type": "boolean"}, "annotations": {"type": "object"},
            "labels": {"type": "object"}, "single": {"type": "boolean"},
            "nameOverride": {"type": ["string", "null"]},
            "spec": {"type": "object", "properties": {"type": {"type": "string"}}}}},
        "resources": {"type": "object"},
        # as upstream: lists three keys, yet the template renders the map whole (toYaml)
        "securityContext": {"type": "object", "properties": {
            "allowPrivilegeEscalation": {"type": "boolean"},
            "capabilities": {"type": "object", "properties": {"drop": {"type": "array"}}},
            "readOnlyRootFilesystem": {"type": "boolean"}}},
        "nodeSelector": {"type": "object"},
        "tolerations": {"type": "array"},
        "priorityClassName": {"type": "string"},
    },
}


_TRAEFIK_HELPERS = r'''
{{- define "traefik.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- define "traefik.labels" -}}
app.kubernetes.io/name: traefik
app.kubernetes.io/instance: {{ printf "%s-%s" .Release.Name .Release.Namespace | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}
{{- define "traefik.selector" -}}
app.kubernetes.io/name: traefik
app.kubernetes.io/instance: {{ printf "%s-%s" .Release.Name .Release.Namespace | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
'''

_TRAEFIK_DEPLOYMENT = r'''{{- if .Values.deployment.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "traefik.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "traefik.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.deployment.replicas }}
  selector:
    matchLabels:
      {{- include "traefik.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "traefik.selector" . | nindent 8 }}
        {{- with .Values.deployment.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.deployment.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: traefik
          image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            {{- range $name, $port := .Values.ports }}
            - "--entryPoints.{{ $name }}.address=:{{ $port.port }}/{{ $port.protocol | default "TCP" | lower }}"
            {{- end }}
            {{- if .Values.providers.kubernetesCRD.enabled }}
            - --providers.kubernetescrd
            {{- end }}
            {{- if .Values.providers.kubernetesIngress.enabled }}
            - --providers.kubernetesingress
            {{- end }}
            - "--log.level={{ .Values.log.level }}"
            {{- range .Values.additionalArguments }}
            - {{ . | quote }}
            {{- end }}
          ports:
            {{- range $name, $port := .Values.ports }}
            - name: {{ $name | quote }}
              containerPort: {{ $port.port }}
              protocol: {{ $port.protocol | default "TCP" | quote }}
            {{- end }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.securityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end }}
'''

_TRAEFIK_SERVICE = r'''{{- if .Values.service.enabled -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "traefik.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "traefik.labels" . | nindent 4 }}
    {{- with .Values.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.service.spec }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  selector:
    {{- include "traefik.selector" . | nindent 4 }}
  ports:
    {{- range $name, $port := .Values.ports }}
    {{- if $port.expose.default }}
    - name: {{ $name | quote }}
      port: {{ $port.exposedPort }}
      targetPort: {{ $name | quote }}
      protocol: {{ $port.protocol | default "TCP" | quote }}
    {{- end }}
    {{- end }}
{{- end }}
'''

# As the real chart: the class is named after the release (traefik.fullname) unless
# ingressClass.name is set, and the default-class annotation is always written.
_TRAEFIK_INGRESSCLASS = r'''{{- if .Values.ingressClass.enabled -}}
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  annotations:
    ingressclass.kubernetes.io/is-default-class: {{ .Values.ingressClass.isDefaultClass | quote }}
  labels:
    {{- include "traefik.labels" . | nindent 4 }}
  name: {{ .Values.ingressClass.name | default (include "traefik.fullname" .) }}
spec:
  controller: traefik.io/ingress-controller
{{- end }}
'''

# ---- prometheus ----------------------------------------------------------------------------

PROMETHEUS_VALUES = r'''# TEST STAND-IN defaults for the prometheus chart (a few realistic keys).
rbac:
  create: true
alertmanager:
  enabled: true
kube-state-metrics:
  enabled: true
prometheus-node-exporter:
  enabled: true
prometheus-pushgateway:
  enabled: true
server:
  name: server
  image:
    repository: quay.io/prometheus/prometheus
    tag: ""
    pullPolicy: IfNotPresent
  replicaCount: 1
  strategy:
    type: Recreate
  podLabels: {}
  podAnnotations: {}
  nodeSelector: {}
  tolerations: []
  priorityClassName: ""
  resources: {}
  retention: "15d"
  extraArgs: {}
  persistentVolume:
    enabled: true
    accessModes:
      - ReadWriteOnce
    size: 8Gi
    mountPath: /data
  ingress:
    enabled: false
    ingressClassName: ""
    annotations: {}
    extraLabels: {}
    hosts: []
    path: /
    pathType: Prefix
    tls: []
  service:
    enabled: true
    type: ClusterIP
    servicePort: 80
    annotations: {}
    labels: {}
serverFiles:
  prometheus.yml:
    rule_files:
      - /etc/config/recording_rules.yml
      - /etc/config/alerting_rules.yml
    scrape_configs:
      - job_name: prometheus
        static_configs:
          - targets:
              - localhost:9090
'''

_PROMETHEUS_HELPERS = r'''
{{- define "prometheus.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- define "prometheus.server.fullname" -}}
{{- printf "%s-%s" (include "prometheus.fullname" .) .Values.server.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- /* a bundled subchart's fullname: <release>-<chart> (or the release when it holds it) */}}
{{- define "prometheus.subchart.fullname" -}}
{{- if contains .name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- define "prometheus.server.labels" -}}
app.kubernetes.io/name: prometheus
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}
{{- define "prometheus.server.selector" -}}
app.kubernetes.io/name: prometheus
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: server
{{- end }}
'''

_PROMETHEUS_DEPLOYMENT = r'''apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "prometheus.server.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prometheus.server.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.server.replicaCount }}
  {{- with .Values.server.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "prometheus.server.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "prometheus.server.selector" . | nindent 8 }}
        {{- with .Values.server.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
        {{- with .Values.server.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with .Values.server.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with .Values.server.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.server.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: prometheus-server
          image: "{{ .Values.server.image.repository }}:{{ .Values.server.image.tag | default .Chart.AppVersion }}"
          imagePullPolicy: {{ .Values.server.image.pullPolicy }}
          args:
            {{- with .Values.server.retention }}
            - --storage.tsdb.retention.time={{ . }}
            {{- end }}
            - --config.file=/etc/config/prometheus.yml
            - --storage.tsdb.path={{ .Values.server.persistentVolume.mountPath }}
            {{- range $key, $value := .Values.server.extraArgs }}
            - --{{ $key }}={{ $value }}
            {{- end }}
          ports:
            - name: http
              containerPort: 9090
          {{- with .Values.server.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: config-volume
              mountPath: /etc/config
            - name: storage-volume
              mountPath: {{ .Values.server.persistentVolume.mountPath }}
      volumes:
        - name: config-volume
          configMap:
            name: {{ include "prometheus.server.fullname" . }}
        - name: storage-volume
          {{- if .Values.server.persistentVolume.enabled }}
          persistentVolumeClaim:
            claimName: {{ include "prometheus.server.fullname" . }}
          {{- else }}
          emptyDir: {}
          {{- end }}
'''

_PROMETHEUS_CONFIGMAP = r'''apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "prometheus.server.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prometheus.server.labels" . | nindent 4 }}
data:
  prometheus.yml: |
    {{- index .Values.serverFiles "prometheus.yml" | toYaml | nindent 4 }}
'''

_PROMETHEUS_SERVICE = r'''{{- if .Values.server.service.enabled -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "prometheus.server.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prometheus.server.labels" . | nindent 4 }}
    {{- with .Values.server.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.server.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.server.service.type }}
  selector:
    {{- include "prometheus.server.selector" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.server.service.servicePort }}
      protocol: TCP
      targetPort: 9090
{{- end }}
'''

_PROMETHEUS_PVC = r'''{{- if .Values.server.persistentVolume.enabled -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "prometheus.server.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prometheus.server.labels" . | nindent 4 }}
spec:
  accessModes:
    {{- toYaml .Values.server.persistentVolume.accessModes | nindent 4 }}
  {{- with .Values.server.persistentVolume.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ .Values.server.persistentVolume.size | quote }}
{{- end }}
'''

_PROMETHEUS_INGRESS = r'''{{- if .Values.server.ingress.enabled -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "prometheus.server.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "prometheus.server.labels" . | nindent 4 }}
    {{- with .Values.server.ingress.extraLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.server.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.server.ingress.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  rules:
    {{- range .Values.server.ingress.hosts }}
    - host: {{ . | quote }}
      http:
        paths:
          - path: {{ $.Values.server.ingress.path }}
            pathType: {{ $.Values.server.ingress.pathType }}
            backend:
              service:
                name: {{ include "prometheus.server.fullname" $ }}
                port:
                  number: {{ $.Values.server.service.servicePort }}
    {{- end }}
  {{- with .Values.server.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
'''

# The real prometheus chart bundles these as subcharts (kube-state-metrics,
# prometheus-node-exporter, prometheus-pushgateway, each on by default and gated by
# `<name>.enabled`); the stand-in renders each one's main workload and Service from its own
# templates, named as the subcharts name them (<release>-<chart name>).
_PROMETHEUS_EXPORTERS = r'''
{{- range $chart := list "kube-state-metrics" "prometheus-node-exporter" "prometheus-pushgateway" }}
{{- $v := index $.Values $chart | default dict }}
{{- if $v.enabled }}
{{- $name := include "prometheus.subchart.fullname" (dict "root" $ "name" $chart) }}
{{- $port := get (dict "kube-state-metrics" 8080 "prometheus-node-exporter" 9100 "prometheus-pushgateway" 9091) $chart }}
{{- $image := get (dict "kube-state-metrics" "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0" "prometheus-node-exporter" "quay.io/prometheus/node-exporter:v1.10.2" "prometheus-pushgateway" "quay.io/prometheus/pushgateway:v1.11.2") $chart }}
---
apiVersion: apps/v1
kind: {{ ternary "DaemonSet" "Deployment" (eq $chart "prometheus-node-exporter") }}
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ $chart }}
    app.kubernetes.io/instance: {{ $.Release.Name | quote }}
    app.kubernetes.io/managed-by: {{ $.Release.Service | quote }}
spec:
  {{- if ne $chart "prometheus-node-exporter" }}
  replicas: 1
  {{- end }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ $chart }}
      app.kubernetes.io/instance: {{ $.Release.Name | quote }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ $chart }}
        app.kubernetes.io/instance: {{ $.Release.Name | quote }}
    spec:
      {{- if eq $chart "prometheus-node-exporter" }}
      hostNetwork: true
      hostPID: true
      {{- end }}
      containers:
        - name: {{ $chart | trimPrefix "prometheus-" }}
          image: {{ $image }}
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ $chart }}
    app.kubernetes.io/instance: {{ $.Release.Name | quote }}
  annotations:
    prometheus.io/scrape: "true"
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: {{ $chart }}
    app.kubernetes.io/instance: {{ $.Release.Name | quote }}
  ports:
    - name: http
      port: {{ $port }}
      targetPort: http
      protocol: TCP
{{- end }}
{{- end }}
'''

# ---- grafana -------------------------------------------------------------------------------

GRAFANA_VALUES = r'''# TEST STAND-IN defaults for the grafana chart (a few realistic keys).
replicas: 1
testFramework:
  enabled: true
  ## The type of Helm hook used to run this test. Defaults to test.
  # hookType: test
  image:
    repository: docker.io/bats/bats
    tag: "v1.4.1"
image:
  registry: docker.io
  repository: grafana/grafana
  tag: ""
  pullPolicy: IfNotPresent
deploymentStrategy:
  type: RollingUpdate
adminUser: admin
# adminPassword: strongpassword
admin:
  existingSecret: ""
  userKey: admin-user
  passwordKey: admin-password
service:
  enabled: true
  type: ClusterIP
  port: 80
  targetPort: 3000
  annotations: {}
  labels: {}
ingress:
  enabled: false
  ingressClassName: ""
  annotations: {}
  labels: {}
  path: /
  pathType: Prefix
  hosts:
    - chart-example.local
  tls: []
persistence:
  type: pvc
  enabled: false
  accessModes:
    - ReadWriteOnce
  size: 10Gi
  finalizers:
    - kubernetes.io/pvc-protection
resources: {}
nodeSelector: {}
tolerations: []
priorityClassName: ""
env: {}
grafana.ini:
  paths:
    data: /var/lib/grafana/
    logs: /var/log/grafana
  server:
    domain: ""
'''

_GRAFANA_HELPERS = r'''
{{- define "grafana.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* as the real chart's grafana.password: the value, else the live Secret's, else random */}}
{{- define "grafana.password" -}}
{{- if .Values.adminPassword -}}
{{- .Values.adminPassword | b64enc | quote -}}
{{- else -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "grafana.fullname" .) -}}
{{- if and $secret $secret.data (index $secret.data "admin-password") -}}
{{- index $secret.data "admin-password" | quote -}}
{{- else -}}
{{- randAlphaNum 40 | b64enc | quote -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- define "grafana.labels" -}}
app.kubernetes.io/name: grafana
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}
{{- define "grafana.selector" -}}
app.kubernetes.io/name: grafana
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}
'''

# As the real chart: an unset adminPassword is the live Secret's (helm lookup, i.e. when
# rendering against a cluster), else a random 40-character one at render time.
# As upstream (_config.tpl): grafana.ini is written out whole, section by section.
_GRAFANA_CONFIGMAP = r'''apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
data:
  grafana.ini: |
{{- range $key, $value := index .Values "grafana.ini" }}
  {{- if kindIs "map" $value }}
    [{{ $key }}]
    {{- range $elem, $elemVal := $value }}
    {{ $elem }} = {{ $elemVal }}
    {{- end }}
  {{- else }}
    {{ $key }} = {{ $value }}
  {{- end }}
{{- end }}
'''

_GRAFANA_SECRET = r'''{{- if not .Values.admin.existingSecret -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
type: Opaque
data:
  admin-user: {{ .Values.adminUser | b64enc | quote }}
  admin-password: {{ include "grafana.password" . }}
{{- end }}
'''

_GRAFANA_DEPLOYMENT = r'''apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      {{- include "grafana.selector" . | nindent 6 }}
  {{- with .Values.deploymentStrategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "grafana.selector" . | nindent 8 }}
    spec:
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: grafana
          image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          ports:
            - name: grafana
              containerPort: 3000
              protocol: TCP
          env:
            - name: GF_SECURITY_ADMIN_USER
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.admin.existingSecret | default (include "grafana.fullname" .) }}
                  key: {{ .Values.admin.userKey | default "admin-user" }}
            - name: GF_SECURITY_ADMIN_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.admin.existingSecret | default (include "grafana.fullname" .) }}
                  key: {{ .Values.admin.passwordKey | default "admin-password" }}
            {{- range $key, $value := .Values.env }}
            - name: {{ $key | quote }}
              value: {{ $value | quote }}
            {{- end }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: storage
              mountPath: /var/lib/grafana
      volumes:
        - name: storage
          {{- if and .Values.persistence.enabled (eq .Values.persistence.type "pvc") }}
          persistentVolumeClaim:
            claimName: {{ include "grafana.fullname" . }}
          {{- else }}
          emptyDir: {}
          {{- end }}
'''

_GRAFANA_SERVICE = r'''{{- if .Values.service.enabled -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
    {{- with .Values.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "grafana.selector" . | nindent 4 }}
  ports:
    - name: service
      port: {{ .Values.service.port }}
      protocol: TCP
      targetPort: {{ .Values.service.targetPort }}
{{- end }}
'''

_GRAFANA_INGRESS = r'''{{- if .Values.ingress.enabled -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
    {{- with .Values.ingress.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  rules:
    {{- range .Values.ingress.hosts }}
    - host: {{ tpl . $ | quote }}
      http:
        paths:
          - path: {{ $.Values.ingress.path }}
            pathType: {{ $.Values.ingress.pathType }}
            backend:
              service:
                name: {{ include "grafana.fullname" $ }}
                port:
                  number: {{ $.Values.service.port }}
    {{- end }}
  {{- with .Values.ingress.tls }}
  tls:
    {{- tpl (toYaml .) $ | nindent 4 }}
  {{- end }}
{{- end }}
'''

# A helm test hook, as the real chart renders one by default: `helm template` prints it,
# `helm upgrade` does not create it and `helm get manifest` never lists it.
_GRAFANA_TEST = r'''{{- if .Values.testFramework.enabled }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "grafana.fullname" . }}-test
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
  annotations:
    "helm.sh/hook": {{ .Values.testFramework.hookType | default "test" }}
    "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded"
spec:
  containers:
    - name: {{ .Release.Name }}-test
      image: "{{ .Values.testFramework.image.repository }}:{{ .Values.testFramework.image.tag }}"
      command: ["/opt/bats/bin/bats", "-t", "/tests/run.sh"]
  restartPolicy: Never
{{- end }}
'''

_GRAFANA_PVC = r'''{{- if and .Values.persistence.enabled (eq .Values.persistence.type "pvc") -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "grafana.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "grafana.labels" . | nindent 4 }}
  {{- with .Values.persistence.finalizers }}
  finalizers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  accessModes:
    {{- toYaml .Values.persistence.accessModes | nindent 4 }}
  {{- with .Values.persistence.storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ .Values.persistence.size | quote }}
{{- end }}
'''


# ---- cryptnono -----------------------------------------------------------------------------

# The real chart's defaults, trimmed (it ships no schema): the detectors run as containers of
# one privileged DaemonSet on every node, whatever its taints.
CRYPTNONO_VALUES = r'''# TEST STAND-IN defaults for the cryptnono chart (trimmed from the real values.yaml).
image:
  repository: quay.io/yuvipanda/cryptnono
  tag: set-by-chartpress
  pullPolicy: IfNotPresent
imagePullSecrets: []
nameOverride: ""
fullnameOverride: ""
podAnnotations: {}
containerSecurityContext:
  privileged: true
nodeSelector: {}
tolerations:
  - operator: "Exists"
    effect: "NoSchedule"
affinity: {}
priorityClassName: ""
fetchKernelHeaders:
  resources: {}
  image:
    name: quay.io/yuvipanda/fetch-kernel-headers
    tag: set-by-chartpress
detectors:
  execwhacker:
    debug: false
    enabled: true
    resources: {}
    configs: {}
    metrics:
      enabled: false
      port: 12121
      prometheusScrape: true
  monero:
    enabled: true
    resources: {}
'''

_CRYPTNONO_HELPERS = r'''
{{- define "cryptnono.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- define "cryptnono.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}
{{- define "cryptnono.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{ include "cryptnono.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end -}}
'''

# As the real chart: one ConfigMap with each execwhacker config as JSON, read by the
# execwhacker container (banned command strings kill matching processes).
_CRYPTNONO_CONFIGMAP = r'''apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "cryptnono.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "cryptnono.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.detectors.execwhacker.configs }}
  execwhacker-{{ $key }}.json: {{ $value | toJson | quote }}
  {{- end }}
  monero.bt: "# stand-in for the chart's bpftrace program"
'''

_CRYPTNONO_DAEMONSET = r'''apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "cryptnono.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "cryptnono.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "cryptnono.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "cryptnono.selectorLabels" . | nindent 8 }}
    spec:
      hostPID: true
      containers:
        {{- if .Values.detectors.execwhacker.enabled }}
        - name: execwhacker
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - /scripts/execwhacker.py
            {{- range $key, $value := .Values.detectors.execwhacker.configs }}
            - --config
            - /config/execwhacker-{{ $key }}.json
            {{- end }}
          {{- with .Values.detectors.execwhacker.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - mountPath: /config
              name: config
              readOnly: true
        {{- end }}
        {{- if .Values.detectors.monero.enabled }}
        - name: monero
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - /scripts/monero.bt
          {{- with .Values.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumes:
        - name: config
          configMap:
            defaultMode: 420
            name: {{ include "cryptnono.fullname" . }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
'''


def chart_files(c: StandIn) -> dict[str, str]:
    """The source files (relative path -> text) of one stand-in chart, without charts/."""
    files = {"Chart.yaml": _chart_yaml(c)}
    if c.name == "binderhub":
        if UPSTREAM:
            files["values.yaml"] = _strip_upstream_header(BINDERHUB_DEFAULTS.read_text())
            files["values.schema.json"] = json.dumps(schema_json(BINDERHUB_SCHEMA), indent=2)
        else:
            files["values.yaml"] = BINDERHUB_FALLBACK_VALUES
        files["templates/_helpers.tpl"] = _BINDERHUB_HELPERS
        files["templates/deployment.yaml"] = _BINDERHUB_DEPLOYMENT
        files["templates/service.yaml"] = _BINDERHUB_SERVICE
        files["templates/ingress.yaml"] = _BINDERHUB_INGRESS
        files["templates/secret.yaml"] = _BINDERHUB_SECRET
        files["templates/pdb.yaml"] = _BINDERHUB_PDB
        files["templates/container-builder/daemonset.yaml"] = _BINDERHUB_BUILDER_DAEMONSET
        files["templates/image-cleaner.yaml"] = _BINDERHUB_IMAGE_CLEANER
    elif c.name == "jupyterhub":
        files["values.yaml"] = JUPYTERHUB_VALUES
        if UPSTREAM:
            files["values.schema.json"] = json.dumps(schema_json(JUPYTERHUB_SCHEMA), indent=2)
        files["templates/_helpers.tpl"] = _JUPYTERHUB_HELPERS
        files["templates/hub/deployment.yaml"] = _JUPYTERHUB_HUB_DEPLOYMENT
        files["templates/hub/service.yaml"] = _JUPYTERHUB_HUB_SERVICE
        files["templates/hub/secret.yaml"] = _JUPYTERHUB_HUB_SECRET
        files["templates/hub/_helpers-passwords.tpl"] = _JUPYTERHUB_PASSWORDS
        files["templates/netpol.yaml"] = _JUPYTERHUB_NETPOL
        files["templates/hub/configmap.yaml"] = _JUPYTERHUB_HUB_CONFIGMAP
        files["templates/hub/pvc.yaml"] = _JUPYTERHUB_HUB_PVC
        files["templates/proxy/deployment.yaml"] = _JUPYTERHUB_PROXY_DEPLOYMENT
        files["templates/proxy/service.yaml"] = _JUPYTERHUB_PROXY_SERVICE
        files["templates/ingress.yaml"] = _JUPYTERHUB_INGRESS
    elif c.name == "traefik":
        files["values.yaml"] = TRAEFIK_VALUES
        files["values.schema.json"] = json.dumps(TRAEFIK_SCHEMA, indent=2)
        files["templates/_helpers.tpl"] = _TRAEFIK_HELPERS
        files["templates/deployment.yaml"] = _TRAEFIK_DEPLOYMENT
        files["templates/service.yaml"] = _TRAEFIK_SERVICE
        files["templates/ingressclass.yaml"] = _TRAEFIK_INGRESSCLASS
    elif c.name == "prometheus":
        files["values.yaml"] = PROMETHEUS_VALUES
        files["templates/_helpers.tpl"] = _PROMETHEUS_HELPERS
        files["templates/deployment.yaml"] = _PROMETHEUS_DEPLOYMENT
        files["templates/configmap.yaml"] = _PROMETHEUS_CONFIGMAP
        files["templates/service.yaml"] = _PROMETHEUS_SERVICE
        files["templates/pvc.yaml"] = _PROMETHEUS_PVC
        files["templates/ingress.yaml"] = _PROMETHEUS_INGRESS
        files["templates/exporters.yaml"] = _PROMETHEUS_EXPORTERS
    elif c.name == "grafana":
        files["values.yaml"] = GRAFANA_VALUES
        files["templates/_helpers.tpl"] = _GRAFANA_HELPERS
        files["templates/deployment.yaml"] = _GRAFANA_DEPLOYMENT
        files["templates/secret.yaml"] = _GRAFANA_SECRET
        files["templates/configmap.yaml"] = _GRAFANA_CONFIGMAP
        files["templates/service.yaml"] = _GRAFANA_SERVICE
        files["templates/ingress.yaml"] = _GRAFANA_INGRESS
        files["templates/pvc.yaml"] = _GRAFANA_PVC
        files["templates/tests/test.yaml"] = _GRAFANA_TEST
    elif c.name == "cryptnono":
        files["values.yaml"] = CRYPTNONO_VALUES
        files["templates/_helpers.tpl"] = _CRYPTNONO_HELPERS
        files["templates/configmap.yaml"] = _CRYPTNONO_CONFIGMAP
        files["templates/daemonset.yaml"] = _CRYPTNONO_DAEMONSET
    else:  # pragma: no cover - STANDINS is closed
        raise ValueError(f"no stand-in source for chart {c.name!r}")
    return files


def write_chart(c: StandIn, dest: Path) -> Path:
    """Write one chart's source to dest/<name>/ (replacing it) and return that directory."""
    chart_dir = dest / c.name
    if chart_dir.exists():
        shutil.rmtree(chart_dir)
    for rel, text in chart_files(c).items():
        if rel == "values.yaml":   # as chartpress publishes a chart: images tagged with its version
            text = text.replace('"set-by-chartpress"', f'"{c.version}"').replace(
                "set-by-chartpress", f'"{c.version}"')
        path = chart_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return chart_dir


# --------------------------------------------------------------------------------------------
# Packaging and serving
# --------------------------------------------------------------------------------------------

def helm_env(home: Path, base: dict | None = None) -> dict:
    """An environment for helm with private config/cache/data homes under `home`."""
    home = Path(home)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **(base or {}),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }
    for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def _helm(helm: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm, *args], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def _package(c: StandIn, src: Path, out: Path, helm: str, env: dict) -> Path:
    """Write c's source under src/, package its subcharts into it, package it into out/."""
    chart_dir = write_chart(c, src)
    if c.subcharts:
        (chart_dir / "charts").mkdir()
        for sub in c.subcharts:
            _package(sub, src, chart_dir / "charts", helm, env)
    out.mkdir(parents=True, exist_ok=True)
    _helm(helm, env, "package", str(chart_dir), "--destination", str(out))
    tgz = out / f"{c.name}-{c.version}.tgz"
    if not tgz.is_file():
        raise RuntimeError(f"helm package did not produce {tgz}")
    return tgz


def build_repo(dest: Path, helm: str, env: dict, extra: Iterable[StandIn] = ()) -> Path:
    """Build the mirror repository under dest/ and return dest/repo.

    dest/src/<name>/ holds each chart's source (binderhub's with charts/jupyterhub-<v>.tgz),
    dest/repo/ holds every published .tgz plus the index.yaml from ``helm repo index``.
    The index uses relative chart URLs, so the directory can be served at any address.

    `extra`: more versions of the stand-in charts (any of the PUBLISHED names, e.g.
    ``StandIn("binderhub", "1.0.0-0.dev.git.3990.h9a1b2c3d", subcharts=(JUPYTERHUB,),
    subchart_repository=JUPYTERHUB_REPO)`` or ``StandIn("traefik", "41.2.0", ...)``), packaged
    from dest/src-extra/<name>-<version>/<name>/ into the same repository and index, so one
    repository offers several versions of a chart (helm lists them newest first). A subchart
    an extra bundles is published too unless that name and version already are. An extra
    that repeats a published (or another extra's) name and version is a ValueError.
    """
    dest = Path(dest)
    src, repo, src_extra = dest / "src", dest / "repo", dest / "src-extra"
    extra = list(extra)
    published = {(c.name, c.version) for c in PUBLISHED}
    wanted: set[tuple[str, str]] = set()
    for c in extra:
        key = (c.name, c.version)
        if key in published or key in wanted:
            raise ValueError(f"extra stand-in {c.name} {c.version} is already in the repository")
        wanted.add(key)
    for d in (src, repo, src_extra):
        if d.exists():
            shutil.rmtree(d)
    for d in (src, repo):
        d.mkdir(parents=True)
    for c in STANDINS:
        _package(c, src, repo, helm, env)
    # The real jupyterhub.github.io/helm-chart repository publishes jupyterhub too.
    for sub in BINDERHUB.subcharts:
        shutil.copy2(src / "binderhub" / "charts" / f"{sub.name}-{sub.version}.tgz", repo)
    for c in extra:
        # Each extra gets its own source directory: src/<name>/ stays the main version's.
        own_src = src_extra / f"{c.name}-{c.version}"
        _package(c, own_src, repo, helm, env)
        for sub in c.subcharts:
            key = (sub.name, sub.version)
            if key not in published and key not in wanted:
                shutil.copy2(own_src / c.name / "charts" / f"{sub.name}-{sub.version}.tgz", repo)
                wanted.add(key)
    _helm(helm, env, "repo", "index", str(repo))
    return repo


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def serve(repo_dir: Path, timeout: float = 15.0) -> Iterator[str]:
    """Serve repo_dir with ``python -m http.server`` on 127.0.0.1; yield the base URL.

    The URL has no trailing slash (e.g. ``http://127.0.0.1:41234``). The server is a
    subprocess; it is terminated and reaped on exit, whatever happens inside the block.
    """
    repo_dir = Path(repo_dir)
    if not (repo_dir / "index.yaml").is_file():
        raise FileNotFoundError(f"{repo_dir}/index.yaml missing: not a chart repository")
    last_error = "not started"
    for _attempt in range(5):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        # The request log goes to an anonymous temp file: a pipe could fill up (or, closed,
        # break the server's responses).
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                 "--directory", str(repo_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            try:
                deadline = time.monotonic() + timeout
                while proc.poll() is None:
                    try:
                        with urllib.request.urlopen(f"{url}/index.yaml", timeout=1) as resp:
                            if resp.status == 200:
                                break
                    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                        last_error = str(e)
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"chart repository server on {url} did not answer: {last_error}")
                    time.sleep(0.05)
                if proc.poll() is not None:  # e.g. the port was taken in between: retry
                    log.seek(0)
                    last_error = log.read().decode(errors="replace")
                    continue
                yield url
                return
            finally:
                _stop(proc)
    raise RuntimeError(f"could not start the chart repository server: {last_error}")


# --------------------------------------------------------------------------------------------
# A big synthetic index.yaml, shaped like the real jupyterhub.github.io/helm-chart one
# --------------------------------------------------------------------------------------------

# Per-chart metadata like the real charts' Chart.yaml files carry it (the fields `helm repo
# index` copies into each entry). binderhub's description is long: helm's YAML emitter (a
# libyaml port, like PyYAML's) folds it over continuation lines at column 80, which a
# line-based reader of the index has to cope with.
_SYNTHETIC_META: dict[str, dict] = {
    "binderhub": {
        "description": "BinderHub is like a JupyterHub that automatically builds environments "
                       "for the users based on repo2docker. A BinderHub is by default not "
                       "configured to authenticate users or provide storage for them.",
        "home": "https://binderhub.readthedocs.io/en/latest/",
        "icon": "https://binderhub.readthedocs.io/en/latest/_static/logo.png",
        "keywords": ["jupyter", "jupyterhub", "binderhub"],
        "kubeVersion": ">=1.28.0-0",
        "sources": ["https://github.com/jupyterhub/binderhub"],
        "releases": ["0.1.0", "0.2.0"],      # then only dev builds of 1.0.0, as binderhub
    },
    "jupyterhub": {
        "description": "Multi-user Jupyter installation",
        "home": "https://z2jh.jupyter.org",
        "icon": "https://hub.jupyter.org/helm-chart/images/hublogo.svg",
        "keywords": ["jupyter", "jupyterhub", "z2jh"],
        "kubeVersion": ">=1.28.0-0",
        "sources": ["https://github.com/jupyterhub/zero-to-jupyterhub-k8s"],
        "releases": None,                    # a steady series of releases and dev builds
    },
}
_SYNTHETIC_MAINTAINERS = [
    {"email": "erik@sundellopensource.se", "name": "Erik Sundell"},
    {"name": "Simon Li", "url": "https://github.com/manics/"},
]
# JupyterHub (the app) per z2jh major version, for jupyterhub's appVersion.
_Z2JH_APP = {0: "1.1.0", 1: "1.5.0", 2: "3.1.1", 3: "4.1.6", 4: "5.2.1", 5: "5.4.5"}
_SYNTHETIC_BASE_URL = "https://jupyterhub.github.io/helm-chart"
_SYNTHETIC_START = 1514764800          # 2018-01-01T00:00:00Z
_SYNTHETIC_END = 1764028800            # 2025-11-25T00:00:00Z
_SYNTHETIC_GENERATED = "2025-11-25T08:14:07.128514267Z"


def _semver_key(version: str) -> tuple:
    """Sort key for SemVer 2.0 precedence (build metadata ignored), as helm sorts entries."""
    core, _, pre = version.split("+", 1)[0].partition("-")
    nums = tuple(int(x) for x in core.split("."))
    if not pre:
        return (*nums, 1, ())
    ids = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre.split("."))
    return (*nums, 0, ids)


def _go_time(seconds: int, nanos: int) -> str:
    """A UTC time as Go's RFC3339Nano writes it (fraction without trailing zeros)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    frac = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{frac}Z" if frac else f"{stamp}Z"


def _h(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _synthetic_versions(name: str, n: int) -> list[str]:
    """n versions of one chart in the order they were published (oldest first).

    Dev builds ``X.Y.Z-0.dev.git.<commits>.h<sha>`` lead up to each release X.Y.Z (with
    ``-beta.N`` pre-releases before a new major); the newest entries are dev builds of the
    next release, as in the real repository.
    """
    releases = _SYNTHETIC_META.get(name, {}).get("releases", None)
    out: list[str] = []
    commit = 40
    # about 4 (binderhub) or 8 (jupyterhub) commits between builds, as in the real histories
    gap = 15 if name == "jupyterhub" else 7
    major, minor, patch = 0, 1, 0
    step = 0

    def dev(target: str) -> str:
        nonlocal commit
        commit += 1 + int(_h(name, "step", commit)[:2], 16) % gap
        return f"{target}-0.dev.git.{commit}.h{_h(name, commit)[:8]}"

    if releases is not None:  # a few releases, then only dev builds of the next major
        for release in releases[: max(0, n - 1)]:
            out += [dev(release) for _ in range(min(3, max(0, n - 1 - len(out) - 1)))]
            out.append(release)
        while len(out) < n:
            out.append(dev(f"{int(releases[-1].split('.')[0]) + 1}.0.0" if releases else "1.0.0"))
        return out[:n]
    while len(out) < n:
        step += 1
        if step % 20 == 0:
            major, minor, patch = major + 1, 0, 0
        elif step % 5 == 0:
            minor, patch = minor + 1, 0
        elif step > 1:
            patch += 1
        target = f"{major}.{minor}.{patch}"
        segment = [dev(target) for _ in range(4 + int(_h(name, target)[:2], 16) % 12)]
        if step % 20 == 0:
            segment[len(segment) // 2:len(segment) // 2] = [f"{target}-beta.1", f"{target}-beta.2"]
        remaining = n - len(out)
        if remaining <= len(segment) + 1:  # the newest entries: dev builds of `target`
            out += [dev(target) for _ in range(remaining)] if remaining > len(segment) \
                else segment[:remaining]
            break
        out += [*segment, target]
    return out[:n]


def _synthetic_entry(name: str, version: str, created: str, jupyterhub: str) -> dict:
    meta = _SYNTHETIC_META.get(name) or {
        "description": f"A Helm chart for {name}", "home": f"https://example.org/{name}",
        "icon": f"https://example.org/{name}/logo.svg", "keywords": [name],
        "kubeVersion": ">=1.22.0-0", "sources": [f"https://github.com/example/{name}"]}
    major = int(version.split(".")[0])
    entry = {
        "apiVersion": "v2",
        "appVersion": (_Z2JH_APP.get(major, f"{major + 1}.0.0") if name == "jupyterhub"
                       else version),
        "created": created,
        "description": meta["description"],
        "digest": _h(name, version, "digest"),
        "home": meta["home"],
        "icon": meta["icon"],
        "keywords": list(meta["keywords"]),
        "kubeVersion": meta["kubeVersion"],
        "maintainers": [dict(m) for m in _SYNTHETIC_MAINTAINERS],
        "name": name,
        "sources": list(meta["sources"]),
        "urls": [f"{_SYNTHETIC_BASE_URL}/{name}-{version}.tgz"],
        "version": version,
    }
    if name == "binderhub":  # binderhub depends on jupyterhub, like the real chart
        entry["dependencies"] = [{"name": "jupyterhub", "repository": _SYNTHETIC_BASE_URL,
                                  "version": jupyterhub}]
    return entry


class _GoYamlDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """PyYAML emitting like helm's Go YAML (a libyaml port): block style, sorted keys,
    sequences not indented under their key, width 80, and strings that would read back as
    another type (``"1.0"``, timestamps, ``"true"``) double-quoted rather than single-quoted."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))
    style = '"' if tag != "tag:yaml.org,2002:str" else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoYamlDumper.add_representer(str, _represent_str)


def synthetic_index(n_entries: int = 1775, charts: Iterable[str] = ("binderhub", "jupyterhub"),
                    base_url: str = _SYNTHETIC_BASE_URL) -> str:
    """The text of a Helm repository index.yaml with n_entries entries over `charts`.

    Shaped exactly as ``helm repo index`` writes it (apiVersion v1; entries: chart name ->
    entries newest first by SemVer, each with apiVersion, appVersion, created, [dependencies
    for binderhub,] description, digest, home, icon, keywords, kubeVersion, maintainers, name,
    sources, urls, version in that order; generated), the way the real
    https://jupyterhub.github.io/helm-chart/index.yaml looks: about 1.7 MB for the default
    1775 entries, mostly dev builds like ``1.0.0-0.dev.git.3983.h383374de`` plus releases.
    Deterministic (no clock, no randomness); the entries are split evenly over `charts`
    (the first ones get the remainder). binderhub and jupyterhub carry their real charts'
    metadata; other names get generic metadata.
    """
    charts = list(charts)
    if not charts:
        raise ValueError("synthetic_index needs at least one chart name")
    if n_entries < 0:
        raise ValueError("n_entries must not be negative")
    counts = [n_entries // len(charts) + (i < n_entries % len(charts)) for i in range(len(charts))]
    span = _SYNTHETIC_END - _SYNTHETIC_START
    z2jh_releases = [v for v in _synthetic_versions("jupyterhub", 400) if "-" not in v]
    entries: dict[str, list[dict]] = {}
    for name, count in zip(charts, counts):
        if not count:
            continue  # helm lists no chart without entries
        history = _synthetic_versions(name, count)
        chart_entries = []
        for i, version in enumerate(history):
            # published in order over 2018..2025, at a deterministic nanosecond
            seconds = _SYNTHETIC_START + (span * (i + 1)) // (count + 1)
            nanos = int(_h(name, version, "ns")[:8], 16) % 1_000_000_000
            jh = z2jh_releases[min(len(z2jh_releases) - 1, i * len(z2jh_releases) // max(count, 1))]
            entry = _synthetic_entry(name, version, _go_time(seconds, nanos), jh)
            entry["urls"] = [f"{base_url.rstrip('/')}/{name}-{version}.tgz"]
            chart_entries.append(entry)
        chart_entries.sort(key=lambda e: _semver_key(e["version"]), reverse=True)
        entries[name] = chart_entries
    index = {"apiVersion": "v1", "entries": entries, "generated": _SYNTHETIC_GENERATED}
    return yaml.dump(index, Dumper=_GoYamlDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=80)
