{{/* Names and labels. */}}

{{- define "deai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deai.fullname" -}}
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

{{/* Name of a per-component object: (dict "root" $ "component" "ledger"). */}}
{{- define "deai.componentName" -}}
{{- printf "%s-%s" (include "deai.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "deai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deai-os
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "ledger"). */}}
{{- define "deai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deai.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "deai.componentLabels" -}}
{{ include "deai.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selects every pod of this release (NetworkPolicy peers). */}}
{{- define "deai.releasePodSelector" -}}
app.kubernetes.io/name: {{ include "deai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
A component's effective values: componentDefaults overridden by the component, two
levels deep: a top-level key replaces the default unless both are maps, in which case
each of the component's keys replaces that key of the default (so `pdb.enabled: false`
or `resources.limits` override just that). Sprig's merge/mergeOverwrite would drop
explicit false/0 overrides, hence the hand-rolled merge. Returns YAML; use with fromYaml.
*/}}
{{- define "deai.componentValues" -}}
{{- $merged := deepCopy .root.Values.componentDefaults }}
{{- range $k, $v := .values }}
{{- $d := get $merged $k }}
{{- if and (kindIs "map" $v) (kindIs "map" $d) }}
{{- $m := deepCopy $d }}
{{- range $k2, $v2 := $v }}
{{- $_ := set $m $k2 $v2 }}
{{- end }}
{{- $_ := set $merged $k $m }}
{{- else }}
{{- $_ := set $merged $k $v }}
{{- end }}
{{- end }}
{{- toYaml $merged }}
{{- end }}

{{- define "deai.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s/%s:%s@%s" .Values.image.registry .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Kubernetes would need terminationGracePeriodSeconds > the drain deadline plus the kit's 2 s force-exit margin. */}}
{{- define "deai.gracePeriodSeconds" -}}
{{- $ms := int . }}
{{- add (div (add $ms 999) 1000) 5 }}
{{- end }}

{{/* Dependencies: in-cluster addresses or the external ones, failing early when neither is set. */}}

{{- define "deai.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "deai.fullname" .)) }}
{{- end }}

{{- define "deai.postgresqlHost" -}}
{{- printf "%s-postgresql" (include "deai.fullname" .) }}
{{- end }}

{{- define "deai.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s-nats:4222" (include "deai.fullname" .) }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled=false" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{- define "deai.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "http://%s-minio:9000" (include "deai.fullname" .) }}
{{- else }}
{{- required "externalS3.endpoint is required when minio.enabled=false" .Values.externalS3.endpoint }}
{{- end }}
{{- end }}

{{- define "deai.s3Bucket" -}}
{{- if .Values.minio.enabled }}{{ .Values.minio.bucket }}{{ else }}{{ .Values.externalS3.bucket }}{{ end }}
{{- end }}

{{- define "deai.s3Region" -}}
{{- if .Values.minio.enabled }}{{ .Values.minio.region }}{{ else }}{{ .Values.externalS3.region }}{{ end }}
{{- end }}

{{/*
Shared pod scaffolding for the bundled dependencies (one server each): pod labels,
placement. (dict "root" $ "component" "nats" "values" .Values.nats)
*/}}
{{- define "deai.dependencyPlacement" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "deai.volumeClaimTemplate" -}}
- metadata:
    name: data
  spec:
    accessModes: [ReadWriteOnce]
    {{- with .storageClass }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .size }}
{{- end }}

{{/* Ingress rule admitting pods of this release plus networkPolicy.extraIngressFrom. */}}
{{- define "deai.networkPolicyFrom" -}}
- podSelector:
    matchLabels:
      {{- include "deai.releasePodSelector" . | nindent 6 }}
{{- with .Values.networkPolicy.extraIngressFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Hardened container securityContext shared by the dependencies. */}}
{{- define "deai.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
Environment of one component (packages/kit/src/config.ts serviceConfigSchema), shared by
the migrate initContainer and the service container.
(dict "root" $ "name" "ledger" "c" <component values> "port" 7101 "shutdownMs" 10000
      "secret" <Secret name> "natsUrl" … "s3Endpoint" …)
*/}}
{{- define "deai.componentEnv" -}}
{{- $v := .root.Values -}}
- name: HOST
  value: "0.0.0.0"
- name: PORT
  value: {{ .port | quote }}
- name: LOG_LEVEL
  value: {{ .c.logLevel | default $v.config.logLevel | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: DATABASE_URL
- name: DB_POOL_SIZE
  value: {{ $v.config.dbPoolSize | int | quote }}
- name: NATS_URL
  value: {{ .natsUrl | quote }}
- name: NATS_PREFIX
  value: {{ $v.config.natsPrefix | quote }}
- name: S3_ENDPOINT
  value: {{ .s3Endpoint | quote }}
- name: S3_BUCKET
  value: {{ include "deai.s3Bucket" .root | quote }}
- name: S3_REGION
  value: {{ include "deai.s3Region" .root | quote }}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: S3_ACCESS_KEY
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: S3_SECRET_KEY
{{- with $v.config.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: SHUTDOWN_TIMEOUT_MS
  value: {{ .shutdownMs | quote }}
{{- /* Signed requests name the authority they are for (RFC 9421 @authority); a service
accepts only its own names: the Service's short, namespaced and cluster-local names, plus
the component's publicAuthorities (ingress hosts). */}}
{{- $svc := include "deai.componentName" (dict "root" .root "component" .name) }}
{{- $ns := .root.Release.Namespace }}
{{- $names := list (printf "%s:%v" $svc .port) (printf "%s.%s:%v" $svc $ns .port) (printf "%s.%s.svc:%v" $svc $ns .port) (printf "%s.%s.svc.cluster.local:%v" $svc $ns .port) }}
- name: PUBLIC_AUTHORITY
  value: {{ concat $names (.c.publicAuthorities | default list) | join "," | quote }}
- name: SIGNATURE_MAX_AGE_S
  value: {{ $v.config.signatureMaxAgeS | int | quote }}
{{- if eq .name "trainer-operator" }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- /* Where trainer worker pods go (GPU nodes); the operator merges it into each worker pod. */}}
- name: TRAINER_POD_TEMPLATE
  value: {{ include "deai.trainerPodTemplate" .root | quote }}
{{- end }}
{{- if eq .name "ingestion" }}
{{- /* Manifests are anchored in this release's ledger. */}}
- name: INGESTION_LEDGER_URL
  value: {{ printf "http://%s:%v" (include "deai.componentName" (dict "root" .root "component" "ledger")) $v.components.ledger.port | quote }}
{{- /* Storage providers carry credentials: a Secret key holding the INGESTION_PROVIDERS JSON list. */}}
{{- with .c.providersSecret }}
- name: INGESTION_PROVIDERS
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key | default "providers.json" }}
{{- end }}
{{- with .c.serviceKeySecret }}
- name: INGESTION_SERVICE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key | default "seed" }}
{{- end }}
{{- end }}
{{- range $k, $val := .c.env }}
- name: {{ $k }}
  value: {{ $val | toString | quote }}
{{- end }}
{{- with .c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The trainer-operator's worker pod defaults, as compact JSON. */}}
{{- define "deai.trainerPodTemplate" -}}
{{- $t := .Values.trainer }}
{{- $out := dict "image" (printf "%s/%s:%s" $t.image.registry $t.image.repository ($t.image.tag | default .Chart.AppVersion)) }}
{{- with $t.nodeSelector }}{{ $_ := set $out "nodeSelector" . }}{{ end }}
{{- with $t.tolerations }}{{ $_ := set $out "tolerations" . }}{{ end }}
{{- with $t.runtimeClassName }}{{ $_ := set $out "runtimeClassName" . }}{{ end }}
{{- with $t.priorityClassName }}{{ $_ := set $out "priorityClassName" . }}{{ end }}
{{- with $t.serviceAccountName }}{{ $_ := set $out "serviceAccountName" . }}{{ end }}
{{- toJson $out }}
{{- end }}
