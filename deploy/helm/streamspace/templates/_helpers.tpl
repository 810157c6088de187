{{/* Names, labels and the small decisions several templates share. */}}

{{- define "streamspace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name alone when it already contains the chart name (`streamspace`). */}}
{{- define "streamspace.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamspace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; call with (dict "ctx" $ "component" "api"). */}}
{{- define "streamspace.labels" -}}
helm.sh/chart: {{ include "streamspace.chart" .ctx }}
{{ include "streamspace.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: streamspace
{{- end }}

{{- define "streamspace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamspace.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* image: call with (dict "ctx" $ "image" .Values.api.image). */}}
{{- define "streamspace.image" -}}
{{- $registry := .ctx.Values.global.imageRegistry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}{{ end -}}
{{- printf "%s:%s" $repo (toString (default .ctx.Chart.AppVersion .image.tag)) }}
{{- end }}

{{- define "streamspace.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The restricted pod security profile: non-root, no privilege escalation, no capabilities. */}}
{{- define "streamspace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "streamspace.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Lookup-or-generate: the value under `key` of an existing Secret, else a new random one, so
     generated passwords survive `helm upgrade`. (dict "ctx" $ "name" "x" "key" "k" "length" 32) */}}
{{- define "streamspace.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing (hasKey (default dict $existing.data) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum (int (default 32 .length)) | b64enc -}}
{{- end -}}
{{- end }}

{{/* ---- which parts this release renders ---- */}}

{{- define "streamspace.redis.on" -}}
{{- if and .Values.api.enabled .Values.redis.enabled }}true{{ end }}
{{- end }}

{{- define "streamspace.redis.internal" -}}
{{- if and (include "streamspace.redis.on" .) (not .Values.redis.external.enabled) }}true{{ end }}
{{- end }}

{{- define "streamspace.postgresql.internal" -}}
{{- if and .Values.api.enabled .Values.postgresql.enabled (not .Values.postgresql.external.enabled) }}true{{ end }}
{{- end }}

{{/* Sentinel mode: explicit, or automatic when the external Redis port is Sentinel's 26379. */}}
{{- define "streamspace.redis.sentinel" -}}
{{- $ext := .Values.redis.external -}}
{{- if and (include "streamspace.redis.on" .) $ext.enabled -}}
{{- $s := $ext.sentinel | default dict -}}
{{- if kindIs "bool" $s.enabled -}}
{{- if $s.enabled }}true{{ end -}}
{{- else if eq (int $ext.port) 26379 -}}
true
{{- end -}}
{{- end -}}
{{- end }}

{{- define "streamspace.redis.host" -}}
{{- if .Values.redis.external.enabled }}{{ required "redis.external.host is required with redis.external.enabled" .Values.redis.external.host }}{{ else }}{{ include "streamspace.fullname" . }}-redis{{ end }}
{{- end }}

{{- define "streamspace.redis.port" -}}
{{- if .Values.redis.external.enabled }}{{ .Values.redis.external.port }}{{ else }}6379{{ end }}
{{- end }}

{{/* Secret holding `redis-password`, empty when Redis has none. */}}
{{- define "streamspace.redis.secretName" -}}
{{- $ext := .Values.redis.external -}}
{{- if $ext.enabled -}}
{{- if $ext.existingSecret }}{{ $ext.existingSecret }}{{ else if $ext.password }}{{ include "streamspace.fullname" . }}-redis{{ end -}}
{{- end -}}
{{- end }}

{{/* Secret holding `postgres-password`. */}}
{{- define "streamspace.postgresql.secretName" -}}
{{- $ext := .Values.postgresql.external -}}
{{- if and $ext.enabled $ext.existingSecret }}{{ $ext.existingSecret }}{{ else }}{{ include "streamspace.fullname" . }}-postgresql{{ end -}}
{{- end }}

{{- define "streamspace.api.secretName" -}}
{{- default (printf "%s-api" (include "streamspace.fullname" .)) .Values.api.existingSecret }}
{{- end }}

{{/* The in-release API Service URL agents and the UI use. */}}
{{- define "streamspace.api.url" -}}
http://{{ include "streamspace.fullname" . }}-api:{{ .Values.api.service.port }}
{{- end }}

{{- define "streamspace.k8sAgent.secretName" -}}
{{- default (printf "%s-k8s-agent" (include "streamspace.fullname" .)) .Values.k8sAgent.existingSecret }}
{{- end }}

{{- define "streamspace.k8sAgent.serviceAccountName" -}}
{{- default (printf "%s-k8s-agent" (include "streamspace.fullname" .)) .Values.k8sAgent.serviceAccount.name }}
{{- end }}

{{/* The Secret where the agent's replicas keep the key they receive on approval. */}}
{{- define "streamspace.k8sAgent.vncSeedSecretName" -}}
{{- printf "%s-k8s-agent-vnc" (include "streamspace.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamspace.k8sAgent.keySecretName" -}}
{{- printf "%s-k8s-agent-key" (include "streamspace.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
