{{/* Common labels for this chart's own objects. */}}
{{- define "mybinder.labels" -}}
app.kubernetes.io/name: mybinder
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
binder.example/federation: {{ .Values.federation.name | default "unset" | quote }}
binder.example/member: {{ .Values.federation.member | default "unset" | quote }}
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
