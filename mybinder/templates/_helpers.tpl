{{/* Common labels for this chart's own objects. */}}
{{- define "mybinder.labels" -}}
app.kubernetes.io/name: mybinder
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
binder.example/federation: {{ .Values.federation.name | default "unset" | quote }}
binder.example/member: {{ .Values.federation.member | default "unset" | quote }}
{{- end }}

{{/* Labels of one component's objects: the common labels and its component (the common
     labels already hold the instance, so the selector labels are not added again: a key
     written twice in one map is a duplicate). Call with (dict "root" $ "component" "name"). */}}
{{- define "mybinder.componentLabels" -}}
{{ include "mybinder.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "name"). */}}
{{- define "mybinder.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Ingress TLS block for one host: (dict "host" "a.example.org" "secretName" "a-tls"). */}}
{{- define "mybinder.tls" -}}
tls:
  - hosts: [{{ .host | quote }}]
    secretName: {{ .secretName }}
{{- end }}
