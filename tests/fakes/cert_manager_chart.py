"""A stand-in for jetstack's `cert-manager` chart (https://charts.jetstack.io), packaged with
the real helm into the stand-in chart repository (tests/fakes/fixtures.py adds it to the
mirror that tests/fakes/chart_repo.py builds).

Shaped like the real chart at v1.19 (read from cert-manager/cert-manager,
deploy/charts/cert-manager, tag v1.19.6), written here from scratch:

* version and appVersion carry the leading `v` (`v1.19.6`), kubeVersion `>= 1.22.0-0`;
* the CRDs are *templates* (templates/crd-<group>_<plural>.yaml), rendered only with
  `crds.enabled` (or the deprecated `installCRDs`), with the `helm.sh/resource-policy: keep`
  annotation while `crds.keep` is true; setting both options is the same template error;
* release-prefixed names as the real helpers compute them (release `cert-manager`: the
  Deployments `cert-manager`, `cert-manager-webhook`, `cert-manager-cainjector`), all in
  `.Values.namespace | default .Release.Namespace`;
* a values schema that, like the real one, refuses unknown top-level keys.

Simplified: the CRDs' OpenAPI schemas preserve unknown fields (the real ones are complete);
RBAC is one ClusterRole + binding per component; no startupapicheck hook Job, PodMonitor,
NetworkPolicies or PodDisruptionBudgets (off by default upstream, or hooks the API double
does not need to run). The webhook configurations are stored by the API double, never called.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

NAME = "cert-manager"
REPOSITORY = "https://charts.jetstack.io"
VERSIONS = ("v1.19.5", "v1.19.6")   # both published: a test upgrades from one to the other

CRDS = [  # (group, kind, plural, scope, short names)
    ("acme.cert-manager.io", "Challenge", "challenges", "Namespaced", ()),
    ("acme.cert-manager.io", "Order", "orders", "Namespaced", ()),
    ("cert-manager.io", "CertificateRequest", "certificaterequests", "Namespaced",
     ("cr", "crs")),
    ("cert-manager.io", "Certificate", "certificates", "Namespaced", ("cert", "certs")),
    ("cert-manager.io", "ClusterIssuer", "clusterissuers", "Cluster", ("ciss",)),
    ("cert-manager.io", "Issuer", "issuers", "Namespaced", ("iss",)),
]

VALUES = """\
# TEST STAND-IN values (the keys the stand-in's templates read, with the real defaults)
global:
  commonLabels: {}
  priorityClassName: ""
installCRDs: false
crds:
  enabled: false
  keep: true
replicaCount: 1
namespace: ""
fullnameOverride: ""
nameOverride: ""
creator: helm
image:
  repository: quay.io/jetstack/cert-manager-controller
  tag: ""
resources: {}
nodeSelector:
  kubernetes.io/os: linux
prometheus:
  enabled: true
webhook:
  replicaCount: 1
  timeoutSeconds: 30
  image:
    repository: quay.io/jetstack/cert-manager-webhook
    tag: ""
  resources: {}
cainjector:
  enabled: true
  replicaCount: 1
  image:
    repository: quay.io/jetstack/cert-manager-cainjector
    tag: ""
  resources: {}
"""

_OBJ = {"type": "object"}
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": _OBJ, "installCRDs": {"type": "boolean"},
        "crds": {"type": "object", "additionalProperties": False,
                 "properties": {"enabled": {"type": "boolean"}, "keep": {"type": "boolean"}}},
        "replicaCount": {"type": "integer", "minimum": 0}, "namespace": {"type": "string"},
        "fullnameOverride": {"type": "string"}, "nameOverride": {"type": "string"},
        "creator": {"type": "string", "enum": ["helm", "static"]},
        "image": _OBJ, "resources": _OBJ, "nodeSelector": _OBJ, "prometheus": _OBJ,
        "webhook": _OBJ, "cainjector": _OBJ,
        # keys of the real chart the stand-in does not template (accepted, as upstream)
        "startupapicheck": _OBJ, "podDisruptionBudget": _OBJ, "tolerations": {"type": "array"},
        "affinity": _OBJ, "extraArgs": {"type": "array"}, "featureGates": {"type": "string"},
        "config": _OBJ, "serviceAccount": _OBJ, "enableCertificateOwnerRef": {"type": "boolean"},
    },
}

HELPERS = """\
{{- define "cert-manager.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "cert-manager.fullname" -}}
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
{{- define "webhook.fullname" -}}
{{- printf "%s-webhook" (include "cert-manager.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}
{{- define "cainjector.fullname" -}}
{{- printf "%s-cainjector" (include "cert-manager.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}
{{- define "cert-manager.namespace" -}}
{{ .Values.namespace | default .Release.Namespace }}
{{- end -}}
{{- define "chartName" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "labels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- if eq .Values.creator "helm" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "chartName" . }}
{{- end -}}
{{- if .Values.global.commonLabels }}
{{ toYaml .Values.global.commonLabels }}
{{- end }}
{{- end -}}
{{- define "cert-manager.crd-labels" -}}
app: "{{ template "cert-manager.name" . }}"
app.kubernetes.io/name: "{{ template "cert-manager.name" . }}"
app.kubernetes.io/instance: "{{ .Release.Name }}"
app.kubernetes.io/component: "crds"
{{ include "labels" . }}
{{- end -}}
{{- define "cert-manager.crd-check" -}}
{{- if and .Values.installCRDs .Values.crds.enabled }}
{{- fail "ERROR: the deprecated .installCRDs option cannot be enabled at the same time as its replacement .crds.enabled" }}
{{- end }}
{{- end -}}
"""

CRD_TEMPLATE = """\
{{- include "cert-manager.crd-check" . }}
{{- if or .Values.crds.enabled .Values.installCRDs }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: "%(plural)s.%(group)s"
  {{- if or .Values.crds.keep .Values.installCRDs }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
  labels:
    {{- include "cert-manager.crd-labels" . | nindent 4 }}
spec:
  group: %(group)s
  names:
    categories:
      - cert-manager
    kind: %(kind)s
    listKind: %(kind)sList
    plural: %(plural)s
    singular: %(singular)s
%(short)s  scope: %(scope)s
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
{{- end }}
"""

# component key -> (values key, fullname helper, component label, container args)
_COMPONENTS = {
    "controller": ("", "cert-manager.fullname", "controller",
                   "--cluster-resource-namespace=$(POD_NAMESPACE)"),
    "webhook": ("webhook", "webhook.fullname", "webhook", "--secure-port=10250"),
    "cainjector": ("cainjector", "cainjector.fullname", "cainjector",
                   "--leader-election-namespace=kube-system"),
}

DEPLOYMENT = """\
{{- $v := %(values)s }}
{{- if %(condition)s }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "%(helper)s" . }}
  namespace: {{ include "cert-manager.namespace" . }}
  labels:
    app.kubernetes.io/name: %(name)s
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "%(component)s"
    {{- include "labels" . | nindent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "%(helper)s" . }}
  namespace: {{ include "cert-manager.namespace" . }}
  labels:
    app: %(name)s
    app.kubernetes.io/name: %(name)s
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "%(component)s"
    {{- include "labels" . | nindent 4 }}
spec:
  replicas: {{ $v.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/name: %(name)s
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/component: "%(component)s"
  template:
    metadata:
      labels:
        app: %(name)s
        app.kubernetes.io/name: %(name)s
        app.kubernetes.io/instance: {{ .Release.Name }}
        app.kubernetes.io/component: "%(component)s"
        {{- include "labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "%(helper)s" . }}
      {{- with .Values.global.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: cert-manager-%(component)s
          image: "{{ $v.image.repository }}:{{ default .Chart.AppVersion $v.image.tag }}"
          imagePullPolicy: IfNotPresent
          args:
            - --v=2
            - %(args)s
          env:
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop:
                - ALL
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "%(helper)s" . }}
  labels:
    app.kubernetes.io/name: %(name)s
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "%(component)s"
    {{- include "labels" . | nindent 4 }}
rules:
  - apiGroups: ["cert-manager.io", "acme.cert-manager.io"]
    resources: ["*"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  - apiGroups: [""]
    resources: ["secrets", "events", "configmaps"]
    verbs: ["get", "list", "watch", "create", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "%(helper)s" . }}
  labels:
    app.kubernetes.io/name: %(name)s
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "%(component)s"
    {{- include "labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "%(helper)s" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "%(helper)s" . }}
    namespace: {{ include "cert-manager.namespace" . }}
{{- end }}
"""

SERVICES = """\
{{- if .Values.prometheus.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ template "cert-manager.fullname" . }}
  namespace: {{ include "cert-manager.namespace" . }}
  labels:
    app.kubernetes.io/name: {{ include "cert-manager.name" . }}
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "controller"
    {{- include "labels" . | nindent 4 }}
spec:
  type: ClusterIP
  ports:
    - protocol: TCP
      port: 9402
      name: tcp-prometheus-servicemonitor
      targetPort: 9402
  selector:
    app.kubernetes.io/name: {{ include "cert-manager.name" . }}
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "controller"
---
{{- end }}
apiVersion: v1
kind: Service
metadata:
  name: {{ template "webhook.fullname" . }}
  namespace: {{ include "cert-manager.namespace" . }}
  labels:
    app.kubernetes.io/name: webhook
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "webhook"
    {{- include "labels" . | nindent 4 }}
spec:
  type: ClusterIP
  ports:
    - name: https
      port: 443
      protocol: TCP
      targetPort: "https"
  selector:
    app.kubernetes.io/name: webhook
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/component: "webhook"
"""

WEBHOOKS = """\
{{- range $kind := list "Validating" "Mutating" }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: {{ $kind }}WebhookConfiguration
metadata:
  name: {{ include "webhook.fullname" $ }}
  labels:
    app.kubernetes.io/name: webhook
    app.kubernetes.io/instance: {{ $.Release.Name }}
    app.kubernetes.io/component: "webhook"
    {{- include "labels" $ | nindent 4 }}
  annotations:
    cert-manager.io/inject-ca-from-secret: {{ printf "%s/%s-ca" (include "cert-manager.namespace" $) (include "webhook.fullname" $) | quote }}
webhooks:
  - name: webhook.cert-manager.io
    rules:
      - apiGroups: ["cert-manager.io", "acme.cert-manager.io"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["*/*"]
    admissionReviewVersions: ["v1"]
    matchPolicy: Equivalent
    timeoutSeconds: {{ $.Values.webhook.timeoutSeconds }}
    failurePolicy: Fail
    sideEffects: None
    clientConfig:
      service:
        name: {{ include "webhook.fullname" $ }}
        namespace: {{ include "cert-manager.namespace" $ }}
        path: /{{ if eq $kind "Validating" }}validate{{ else }}mutate{{ end }}
{{- end }}
"""


def chart_files(version: str) -> dict[str, str]:
    """The stand-in chart's source files (relative path -> text) at `version`."""
    meta = {"apiVersion": "v2", "name": NAME, "version": version, "appVersion": version,
            "kubeVersion": ">= 1.22.0-0", "home": "https://cert-manager.io",
            "description": "TEST STAND-IN for jetstack's cert-manager chart "
                           "(generated by tests/fakes/cert_manager_chart.py)",
            "sources": ["https://github.com/cert-manager/cert-manager"]}
    files = {"Chart.yaml": yaml.safe_dump(meta, sort_keys=False), "values.yaml": VALUES,
             "values.schema.json": json.dumps(SCHEMA, indent=2),
             "templates/_helpers.tpl": HELPERS, "templates/service.yaml": SERVICES,
             "templates/webhook-configurations.yaml": WEBHOOKS}
    for group, kind, plural, scope, short in CRDS:
        shorts = "".join(f"      - {s}\n" for s in short)
        files[f"templates/crd-{group}_{plural}.yaml"] = CRD_TEMPLATE % {
            "group": group, "kind": kind, "plural": plural, "singular": kind.lower(),
            "scope": scope, "short": f"    shortNames:\n{shorts}" if short else ""}
    for component, (key, helper, label, args) in _COMPONENTS.items():
        values = f".Values.{key}" if key else ".Values"
        condition = ".Values.cainjector.enabled" if component == "cainjector" else "true"
        name = "cert-manager" if component == "controller" else component
        prefix = "" if component == "controller" else f"{component}-"
        files[f"templates/{prefix}deployment.yaml"] = DEPLOYMENT % {
            "values": values, "condition": condition, "helper": helper, "name": name,
            "component": label, "args": args}
    return files


def write_chart(version: str, dest: Path) -> Path:
    """Write the chart's source to dest/cert-manager/ and return that directory."""
    chart_dir = Path(dest) / NAME
    for rel, text in chart_files(version).items():
        path = chart_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return chart_dir


def add_to_repo(repo: Path, helm: str, env: dict, versions=VERSIONS) -> None:
    """Package every version into the chart repository directory `repo` and re-index it
    (`helm repo index` indexes every .tgz there, the charts already in it included)."""
    repo = Path(repo)
    for version in versions:
        src = repo.parent / "src-cert-manager" / version
        chart_dir = write_chart(version, src)
        _helm(helm, env, "package", str(chart_dir), "--destination", str(repo))
    _helm(helm, env, "repo", "index", str(repo))


def _helm(helm: str, env: dict, *args: str) -> None:
    proc = subprocess.run([helm, *args], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
