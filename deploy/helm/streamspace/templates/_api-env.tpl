{{/* The API's database and Redis environment. */}}

{{/* DATABASE_URL is composed in the container from its parts (Kubernetes dependent variable
     expansion), so the password stays in a Secret. It must be URL-safe: it is not escaped. */}}
{{- define "streamspace.api.databaseEnv" -}}
{{- $fullname := include "streamspace.fullname" . -}}
{{- $pg := .Values.postgresql -}}
{{- $host := printf "%s-postgresql" $fullname -}}
{{- $port := 5432 -}}
{{- $db := $pg.internal.database -}}
{{- $user := $pg.internal.username -}}
{{- if $pg.external.enabled -}}
{{- $host = required "postgresql.external.host is required with postgresql.external.enabled" $pg.external.host -}}
{{- $port = $pg.external.port -}}
{{- $db = $pg.external.database -}}
{{- $user = $pg.external.username -}}
{{- if not (or $pg.external.existingSecret $pg.external.password) -}}
{{- fail "postgresql.external needs existingSecret (key postgres-password) or password" -}}
{{- end -}}
{{- end -}}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamspace.postgresql.secretName" . }}
      key: postgres-password
- name: DATABASE_URL
  value: "postgresql+asyncpg://{{ $user }}:$(DB_PASSWORD)@{{ $host }}:{{ $port }}/{{ $db }}"
{{- end }}

{{- define "streamspace.api.redisEnv" -}}
{{- if include "streamspace.redis.on" . -}}
{{- $ext := .Values.redis.external -}}
{{- $secret := include "streamspace.redis.secretName" . -}}
- name: CACHE_ENABLED
  value: "true"
- name: AGENTHUB_REDIS_ENABLED
  value: {{ .Values.redis.agentHubEnabled | toString | quote }}
- name: REDIS_HOST
  value: {{ include "streamspace.redis.host" . | quote }}
- name: REDIS_PORT
  value: {{ include "streamspace.redis.port" . | quote }}
{{- if $secret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-password
{{- end }}
{{- if include "streamspace.redis.sentinel" . }}
{{- $s := $ext.sentinel | default dict }}
{{- $hosts := $s.hosts | default (list (printf "%s:%v" $ext.host $ext.port)) }}
- name: REDIS_SENTINEL_HOSTS
  value: {{ join "," $hosts | quote }}
- name: REDIS_SENTINEL_MASTER
  value: {{ $s.masterName | default "mymaster" | quote }}
{{- if $s.password }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamspace.fullname" . }}-redis
      key: sentinel-password
{{- else if $ext.existingSecret }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ext.existingSecret }}
      key: sentinel-password
      optional: true
{{- end }}
{{- end }}
{{- else if .Values.api.enabled -}}
- name: AGENTHUB_REDIS_ENABLED
  value: "false"
{{- end }}
{{- end }}
