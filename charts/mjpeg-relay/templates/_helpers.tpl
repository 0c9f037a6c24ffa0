{{- define "mjpeg-relay.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mjpeg-relay.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "mjpeg-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mjpeg-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mjpeg-relay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mjpeg-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mjpeg-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mjpeg-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The URL to relay; empty means the built-in demo camera. */}}
{{- define "mjpeg-relay.source" -}}
{{- if eq .Values.mode "edge" }}
{{- required "origin.url is required in edge mode" .Values.origin.url }}
{{- else if .Values.source.url }}
{{- .Values.source.url }}
{{- else if not .Values.demo }}
{{- required "source.url is required (or set demo=true)" .Values.source.url }}
{{- end }}
{{- end }}
