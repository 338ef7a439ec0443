{{/*
Naming
*/}}
{{- define "biometric-passkey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name. When the release name already contains the
chart name (the usual `helm install biometric-passkey ...`), the release name
is used alone, so the Core Deployment is `biometric-passkey-core`.
Component suffixes are at most 11 characters, hence the 52-character cap.
*/}}
{{- define "biometric-passkey.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's resources. Arguments: dict root, component. */}}
{{- define "biometric-passkey.componentName" -}}
{{- printf "%s-%s" (include "biometric-passkey.fullname" .root) .component }}
{{- end }}

{{- define "biometric-passkey.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Arguments: dict root, component. */}}
{{- define "biometric-passkey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "biometric-passkey.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Arguments: dict root, component. */}}
{{- define "biometric-passkey.labels" -}}
helm.sh/chart: {{ include "biometric-passkey.chart" .root }}
{{ include "biometric-passkey.selectorLabels" . }}
app.kubernetes.io/part-of: biometric-passkey
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/*
Pod template labels: the operator's podLabels plus the chart labels; the
chart labels win so a podLabels entry can never break a Service selector.
Arguments: dict root, component, workload (the values block).
*/}}
{{- define "biometric-passkey.podLabels" -}}
{{- $own := include "biometric-passkey.labels" (dict "root" .root "component" .component) | fromYaml }}
{{- toYaml (merge $own (deepCopy (default (dict) .workload.podLabels))) }}
{{- end }}

{{/* ServiceAccount used by the Core API and management runtime. */}}
{{- define "biometric-passkey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "biometric-passkey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference of a component: repository@digest when a digest is set,
otherwise repository:tag. Arguments: dict root, component (core, management,
migrate).
*/}}
{{- define "biometric-passkey.image" -}}
{{- $img := index .root.Values.images .component }}
{{- if not $img.repository }}
{{- fail (printf "images.%s.repository is required: point it at the registry where you pushed the biometric-passkey-%s image" .component .component) }}
{{- end }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else if $img.tag }}
{{- printf "%s:%s" $img.repository (toString $img.tag) }}
{{- else }}
{{- fail (printf "images.%s: set images.%s.tag (an immutable release version) or images.%s.digest (sha256:...)" .component .component .component) }}
{{- end }}
{{- end }}

{{/*
Checks on values that the JSON schema cannot express (conditional
requirements). Included by every workload template so that whatever is
rendered has been checked.
*/}}
{{- define "biometric-passkey.validate" -}}
{{- $v := .Values }}
{{- if not $v.database.host }}
{{- fail "database.host is required: set the PostgreSQL host name" }}
{{- end }}
{{- if not $v.database.name }}
{{- fail "database.name is required: set the PostgreSQL database name" }}
{{- end }}
{{- if not $v.database.user }}
{{- fail "database.user is required: set the PostgreSQL user (used by migrations, Core API and management runtime)" }}
{{- end }}
{{- $pool := $v.database.pool }}
{{- if gt (int $pool.maxIdleConns) (int $pool.maxOpenConns) }}
{{- fail (printf "database.pool.maxIdleConns (%v) must not exceed database.pool.maxOpenConns (%v)" $pool.maxIdleConns $pool.maxOpenConns) }}
{{- end }}
{{- if $v.metrics.enabled }}
{{- range $c := list "core" "management" }}
{{- if eq (int (index $v $c).containerPort) (int $v.metrics.port) }}
{{- fail (printf "metrics.port (%v) must differ from %s.containerPort: metrics are served on a port of their own" $v.metrics.port $c) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $v.secrets.dataEncryption.name }}
{{- fail "secrets.dataEncryption.name is required: name the existing Secret that holds the data encryption key" }}
{{- end }}
{{- if not (has $v.idv.mode (list "onfido" "synthetic")) }}
{{- fail (printf "idv.mode must be onfido or synthetic, got %q" (toString $v.idv.mode)) }}
{{- end }}
{{- if and (eq $v.idv.mode "onfido") (not $v.secrets.onfido.name) }}
{{- fail "secrets.onfido.name is required when idv.mode=onfido: name the existing Secret that holds the Onfido API token and webhook secret" }}
{{- end }}
{{- if and $v.secrets.dataEncryption.previousKeysKey (eq $v.secrets.dataEncryption.previousKeysKey $v.secrets.dataEncryption.key) }}
{{- fail "secrets.dataEncryption.previousKeysKey must name another key than secrets.dataEncryption.key: it holds the earlier keys" }}
{{- end }}
{{- if and $v.secrets.onfido.webhookPreviousSecretKey (eq $v.secrets.onfido.webhookPreviousSecretKey $v.secrets.onfido.webhookSecretKey) }}
{{- fail "secrets.onfido.webhookPreviousSecretKey must name another key than webhookSecretKey: it holds the webhook secret being replaced" }}
{{- end }}
{{- if not (has $v.core.apiAuth (list "api_key" "none")) }}
{{- fail (printf "core.apiAuth must be api_key or none, got %q" (toString $v.core.apiAuth)) }}
{{- end }}
{{- if and (eq $v.core.apiAuth "api_key") (not $v.secrets.coreApiKeys.name) }}
{{- fail "secrets.coreApiKeys.name is required: name the existing Secret that holds the Core API keys, or set core.apiAuth: none if only your own backend can reach the Core API" }}
{{- end }}
{{- if and (eq $v.core.apiAuth "none") $v.secrets.coreApiKeys.name }}
{{- fail "core.apiAuth is none, yet secrets.coreApiKeys.name is set: remove one of them (the Core API refuses the contradiction)" }}
{{- end }}
{{- range $key := list "registrationWorkflowId" "stepUpWorkflowId" "recoveryVerifyWorkflowId" }}
{{- if not (index $v.idv $key) }}
{{- fail (printf "idv.%s is required by the Core API: set your IDV workflow identifier" $key) }}
{{- end }}
{{- if and (eq $v.idv.mode "onfido") (not (regexMatch "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$" (toString (index $v.idv $key)))) }}
{{- fail (printf "idv.%s must be your workflow's UUID (8-4-4-4-12 hex digits, as the provider's dashboard shows it) when idv.mode=onfido, got %q" $key (toString (index $v.idv $key))) }}
{{- end }}
{{- end }}
{{- if $v.management.enabled }}
{{- range $key := list "issuer" "audience" "jwksUrl" }}
{{- if not (index $v.management.auth $key) }}
{{- fail (printf "management.auth.%s is required when management.enabled=true" $key) }}
{{- end }}
{{- end }}
{{- if not $v.management.ui.clientId }}
{{- fail "management.ui.clientId is required when management.enabled=true: set the public OIDC client ID of the dashboard" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Container environment of one workload, as a YAML list. Secrets appear only as
secretKeyRef. Arguments: dict root, component (core, management, migrate).
*/}}
{{- define "biometric-passkey.env" -}}
{{- $v := .root.Values }}
{{- $c := .component }}
{{- $env := list }}
{{- $env = append $env (dict "name" "DB_HOST" "value" (toString $v.database.host)) }}
{{- $env = append $env (dict "name" "DB_PORT" "value" (toString $v.database.port)) }}
{{- $env = append $env (dict "name" "DB_USER" "value" (toString $v.database.user)) }}
{{- /* Optional: passwordless authentication (IAM, a client certificate) needs none. */}}
{{- with $v.secrets.database.name }}
{{- $env = append $env (dict "name" "DB_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $v.secrets.database.passwordKey))) }}
{{- end }}
{{- $env = append $env (dict "name" "DB_NAME" "value" (toString $v.database.name)) }}
{{- $env = append $env (dict "name" "DB_SSLMODE" "value" (toString $v.database.sslmode)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_LOG_LEVEL" "value" (toString $v.logLevel)) }}
{{- if ne $c "migrate" }}
{{- $workload := index $v $c }}
{{- $pool := $v.database.pool }}
{{- $env = append $env (dict "name" "DB_MAX_OPEN_CONNS" "value" (toString $pool.maxOpenConns)) }}
{{- $env = append $env (dict "name" "DB_MAX_IDLE_CONNS" "value" (toString $pool.maxIdleConns)) }}
{{- $env = append $env (dict "name" "DB_CONN_MAX_LIFETIME" "value" (toString $pool.connMaxLifetime)) }}
{{- $env = append $env (dict "name" "DB_CONN_MAX_IDLE_TIME" "value" (toString $pool.connMaxIdleTime)) }}
{{- $env = append $env (dict "name" "PORT" "value" (toString $workload.containerPort)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_METRICS_PORT" "value" (ternary (toString $v.metrics.port) "0" $v.metrics.enabled)) }}
{{- end }}
{{- if eq $c "core" }}
{{- $idv := $v.idv }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.dataEncryption.name "key" $v.secrets.dataEncryption.key))) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID" "value" (toString $v.dataEncryption.keyId)) }}
{{- with $v.secrets.dataEncryption.previousKeysKey }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.dataEncryption.name "key" .))) }}
{{- end }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE" "value" (toString $idv.mode)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID" "value" (toString $idv.registrationWorkflowId)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID" "value" (toString $idv.stepUpWorkflowId)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID" "value" (toString $idv.recoveryVerifyWorkflowId)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION" "value" (toString $idv.onfido.region)) }}
{{- if $idv.onfido.baseUrl }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL" "value" (toString $idv.onfido.baseUrl)) }}
{{- end }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE" "value" (toString $idv.onfido.webhookMaxAge)) }}
{{- if eq $idv.mode "onfido" }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.onfido.name "key" $v.secrets.onfido.apiTokenKey))) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.onfido.name "key" $v.secrets.onfido.webhookSecretKey))) }}
{{- with $v.secrets.onfido.webhookPreviousSecretKey }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.onfido.name "key" .))) }}
{{- end }}
{{- end }}
{{- if eq $v.core.apiAuth "none" }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_CORE_API_AUTH" "value" "none") }}
{{- else }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_CORE_API_KEYS" "valueFrom" (dict "secretKeyRef" (dict "name" $v.secrets.coreApiKeys.name "key" $v.secrets.coreApiKeys.key))) }}
{{- end }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED" "value" (toString $v.auditPartition.maintenanceEnabled)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS" "value" (toString $v.auditPartition.retentionMonths)) }}
{{- end }}
{{- if eq $c "management" }}
{{- $auth := $v.management.auth }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER" "value" (toString $auth.issuer)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE" "value" (toString $auth.audience)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL" "value" (toString $auth.jwksUrl)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_CLAIM" "value" (toString $auth.scopeClaim)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX" "value" (toString $auth.scopePrefix)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW" "value" (toString $auth.clockSkew)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID" "value" (toString $v.management.ui.clientId)) }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES" "value" (join " " $v.management.ui.scopes)) }}
{{- /* The management runtime refuses to start with maintenance on, so it is pinned off here whatever auditPartition says. */}}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED" "value" "false") }}
{{- $env = append $env (dict "name" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS" "value" (toString $v.auditPartition.retentionMonths)) }}
{{- end }}
{{- $workload := index $v (ternary "migrations" $c (eq $c "migrate")) }}
{{- $owned := list }}
{{- range $env }}
{{- $owned = append $owned .name }}
{{- end }}
{{- /* Which chart value sets each variable, for the refusal below. */}}
{{- $from := dict "DB_HOST" "database.host" "DB_PORT" "database.port" "DB_USER" "database.user" "DB_PASSWORD" "secrets.database.name and secrets.database.passwordKey" "DB_NAME" "database.name" "DB_SSLMODE" "database.sslmode" "BIOMETRIC_PASSKEY_LOG_LEVEL" "logLevel" "DB_MAX_OPEN_CONNS" "database.pool.maxOpenConns" "DB_MAX_IDLE_CONNS" "database.pool.maxIdleConns" "DB_CONN_MAX_LIFETIME" "database.pool.connMaxLifetime" "DB_CONN_MAX_IDLE_TIME" "database.pool.connMaxIdleTime" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY" "secrets.dataEncryption.name and secrets.dataEncryption.key" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID" "dataEncryption.keyId" "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS" "secrets.dataEncryption.previousKeysKey" "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE" "idv.mode" "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID" "idv.registrationWorkflowId" "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID" "idv.stepUpWorkflowId" "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID" "idv.recoveryVerifyWorkflowId" "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION" "idv.onfido.region" "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL" "idv.onfido.baseUrl" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE" "idv.onfido.webhookMaxAge" "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN" "secrets.onfido.name and secrets.onfido.apiTokenKey" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET" "secrets.onfido.name and secrets.onfido.webhookSecretKey" "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET" "secrets.onfido.webhookPreviousSecretKey" "BIOMETRIC_PASSKEY_CORE_API_AUTH" "core.apiAuth" "BIOMETRIC_PASSKEY_CORE_API_KEYS" "secrets.coreApiKeys.name and secrets.coreApiKeys.key" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED" "auditPartition.maintenanceEnabled (pinned to false for the management runtime)" "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS" "auditPartition.retentionMonths" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER" "management.auth.issuer" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE" "management.auth.audience" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL" "management.auth.jwksUrl" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_CLAIM" "management.auth.scopeClaim" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX" "management.auth.scopePrefix" "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW" "management.auth.clockSkew" "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID" "management.ui.clientId" "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES" "management.ui.scopes" "BIOMETRIC_PASSKEY_METRICS_PORT" "metrics.port and metrics.enabled" "PORT" (printf "%s.containerPort" $c) }}
{{- range $workload.extraEnv }}
{{- if has .name $owned }}
{{- fail (printf "%s.extraEnv must not redefine %s: the chart sets it from %s; set that value instead" (ternary "migrations" $c (eq $c "migrate")) .name (get $from .name | default "its own values")) }}
{{- end }}
{{- end }}
{{- toYaml (concat $env $workload.extraEnv) }}
{{- end }}

{{/* Liveness/readiness probe. Argument: the probe values block. */}}
{{- define "biometric-passkey.probe" -}}
httpGet:
  path: /api/health
  port: http
{{- with . }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scheduling keys of a pod spec. Argument: the workload values block. */}}
{{- define "biometric-passkey.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* /tmp volume of a pod spec. Argument: root. */}}
{{- define "biometric-passkey.tmpVolumes" -}}
{{- if .Values.writableTmp.enabled }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.writableTmp.sizeLimit | quote }}
{{- end }}
{{- end }}

{{/* /tmp mount of a container. Argument: root. */}}
{{- define "biometric-passkey.tmpVolumeMounts" -}}
{{- if .Values.writableTmp.enabled }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}
{{- end }}

{{/*
Name of a runtime's metrics Service and ServiceMonitor: the component's name,
cut so that with "-metrics" it stays within 63 characters and never equals
another resource's name. Arguments: dict root, component.
*/}}
{{- define "biometric-passkey.metricsName" -}}
{{- printf "%s-metrics" (include "biometric-passkey.componentName" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/*
Labels of one alert: its severity plus metrics.prometheusRule.alertLabels.
Arguments: dict alert (its values block), prometheusRule (the values block).
*/}}
{{- define "biometric-passkey.alertLabels" -}}
{{- toYaml (merge (dict "severity" .alert.severity) (deepCopy (default (dict) .prometheusRule.alertLabels))) }}
{{- end }}

{{/*
How much a counter grew over a window, counting series that appeared within
it at their whole value: the runtimes create a series at its first event, and
increase() alone never counts a series' first sample, so a pod's first refusal
or failure would not show. Arguments: dict series (a selector), window.
*/}}
{{- define "biometric-passkey.increase" -}}
(({{ .series }} unless {{ .series }} offset {{ .window }}) + 0 or increase({{ .series }}[{{ .window }}]))
{{- end }}
