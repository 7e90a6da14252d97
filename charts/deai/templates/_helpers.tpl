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

{{/* terminationGracePeriodSeconds: preStop sleep + drain delay + drain deadline (SHUTDOWN_TIMEOUT_MS) + the kit's 2 s force-exit margin, rounded up, + 3 s. (dict "preStopSeconds" … "drainMs" … "shutdownMs" …) */}}
{{- define "deai.gracePeriodSeconds" -}}
{{- $ms := add (int .shutdownMs) (int .drainMs) }}
{{- add (int .preStopSeconds) (div (add $ms 999) 1000) 5 }}
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
{{- /* After SIGTERM /readyz fails and the port stays open this long, then in-flight work drains. */}}
- name: SHUTDOWN_DRAIN_MS
  value: {{ .drainMs | quote }}
- name: METRICS_ENABLED
  value: {{ $v.metrics.enabled | quote }}
{{- /* Kubernetes resource attributes of every span and metric (downward API). */}}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=$(K8S_NAMESPACE_NAME),k8s.node.name=$(K8S_NODE_NAME),k8s.deployment.name=%s,service.namespace=%s" (include "deai.componentName" (dict "root" .root "component" .name)) (include "deai.fullname" .root) | quote }}
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
{{- if eq .name "ledger" }}
{{- $keySecret := include "deai.ledgerKeySecretName" .root }}
{{- /* The log key: from components.ledger.signingKey.existingSecret or generated once (templates/keys.yaml). */}}
- name: LEDGER_ORIGIN
  valueFrom:
    secretKeyRef:
      name: {{ $keySecret }}
      key: LEDGER_ORIGIN
- name: LEDGER_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $keySecret }}
      key: LEDGER_SIGNING_KEY
- name: LEDGER_CHECKPOINT_INTERVAL_MS
  value: {{ .c.checkpointIntervalMs | int | quote }}
- name: LEDGER_WITNESS_KEYS
  value: {{ .c.witness.keys | default list | join "," | quote }}
- name: LEDGER_WITNESS_QUORUM
  value: {{ .c.witness.quorum | int | quote }}
{{- end }}
{{- if eq .name "dashboard" }}
{{- /* The pinned log key the browser verifies every receipt against, and the in-cluster URLs
the dashboard's read-only passthrough forwards to (the ledger's browser-facing URL is
components.dashboard.env.DASHBOARD_LEDGER_URL). */}}
{{- if $v.components.ledger.enabled }}
- name: DASHBOARD_LOG_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "deai.ledgerKeySecretName" .root }}
      key: LEDGER_VERIFIER_KEY
{{- end }}
{{- range $component, $var := dict "ingestion" "DASHBOARD_INGESTION_URL" "da-sampler" "DASHBOARD_SAMPLER_URL" "marketplace" "DASHBOARD_MARKETPLACE_URL" "slashing" "DASHBOARD_SLASHING_URL" }}
{{- $target := index $v.components $component }}
{{- if and $target $target.enabled }}
- name: {{ $var }}
  value: {{ printf "http://%s:%v" (include "deai.componentName" (dict "root" $.root "component" $component)) $target.port | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .name "ingestion" }}
{{- /* Receipts are checked offline against the log's verifier key before a dataset is recorded. */}}
{{- if $v.components.ledger.enabled }}
- name: INGESTION_LEDGER_LOG_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "deai.ledgerKeySecretName" .root }}
      key: LEDGER_VERIFIER_KEY
{{- end }}
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
{{- else }}
{{- if include "deai.bundledProviders" .root }}
- name: INGESTION_PROVIDERS
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: INGESTION_PROVIDERS
{{- end }}
{{- end }}
{{- /* The service's actor key, shared by every replica: given, or generated once (templates/keys.yaml). */}}
- name: INGESTION_SERVICE_KEY
  valueFrom:
    secretKeyRef:
      {{- if .c.serviceKeySecret.name }}
      name: {{ .c.serviceKeySecret.name }}
      key: {{ .c.serviceKeySecret.key | default "seed" }}
      {{- else }}
      name: {{ include "deai.serviceKeysSecretName" .root }}
      key: INGESTION_SERVICE_KEY
      {{- end }}
{{- end }}
{{- if eq .name "slashing" }}
{{- /* Slash records are anchored in this release's ledger, receipts checked against its verifier key. */}}
{{- if $v.components.ledger.enabled }}
- name: SLASHING_LEDGER_LOG_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "deai.ledgerKeySecretName" .root }}
      key: LEDGER_VERIFIER_KEY
- name: SLASHING_LEDGER_URL
  value: {{ printf "http://%s:%v" (include "deai.componentName" (dict "root" .root "component" "ledger")) $v.components.ledger.port | quote }}
{{- end }}
{{- /* Whom evidence verification trusts (actor ids), and the veto council. */}}
- name: SLASHING_SAMPLERS
  value: {{ .c.samplers | default list | join "," | quote }}
- name: SLASHING_QUORUM_THRESHOLD
  value: {{ .c.quorumThreshold | default 2 | int | quote }}
- name: SLASHING_OPERATORS
  value: {{ .c.operators | default list | join "," | quote }}
- name: SLASHING_COUNTERSIGNERS
  value: {{ .c.countersigners | default list | join "," | quote }}
- name: SLASHING_CHECKERS
  value: {{ .c.checkers | default list | join "," | quote }}
- name: SLASHING_COUNCIL
  value: {{ .c.council | default list | join "," | quote }}
- name: SLASHING_VETO_THRESHOLD
  value: {{ .c.vetoThreshold | default 1 | int | quote }}
- name: SLASHING_PROVIDER_INFRA
  value: {{ .c.providerInfrastructure | default dict | toJson | quote }}
{{- /* The key slash records are signed with, shared by every replica (what `deai slash verify --service-key` pins). */}}
- name: SLASHING_SERVICE_KEY
  valueFrom:
    secretKeyRef:
      {{- if .c.serviceKeySecret.name }}
      name: {{ .c.serviceKeySecret.name }}
      key: {{ .c.serviceKeySecret.key | default "seed" }}
      {{- else }}
      name: {{ include "deai.serviceKeysSecretName" .root }}
      key: SLASHING_SERVICE_KEY
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
{{- $res := deepCopy ($t.resources | default dict) }}
{{- if gt (int $t.gpu.count) 0 }}
{{- /* Extended resources: the limit is what counts (requests default to it and must equal it). */}}
{{- $limits := get $res "limits" | default dict }}
{{- $_ := set $limits $t.gpu.resourceName ($t.gpu.count | int | toString) }}
{{- $_ := set $res "limits" $limits }}
{{- $requests := get $res "requests" | default dict }}
{{- $_ := set $requests $t.gpu.resourceName ($t.gpu.count | int | toString) }}
{{- $_ := set $res "requests" $requests }}
{{- end }}
{{- with $res }}{{ $_ := set $out "resources" . }}{{ end }}
{{- with $t.affinity }}{{ $_ := set $out "affinity" . }}{{ end }}
{{- toJson $out }}
{{- end }}

{{/*
A C2SP signed-note Ed25519 key pair from a 32-byte seed (raw bytes), as the ledger's
`main.js keygen` prints it: (dict "name" <origin> "seed" <32 bytes>) -> YAML
{signerKey: PRIVATE+KEY+<name>+<id>+<b64(0x01 ‖ seed)>, verifierKey: <name>+<id>+<b64(0x01 ‖ pub)>}.
Sprig has no Ed25519 public-key function, so the public key is read from a self-signed
certificate over the key: its SubjectPublicKeyInfo is the fixed 12-byte Ed25519 prefix
followed by the 32-byte key. The key id is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ pub).
The ledger re-checks the id when it parses the key (parseSignerKey), and the chart-environment
test (infra/helm/test) proves the pair signs and verifies.
*/}}
{{- define "deai.noteKeyFromSeed" -}}
{{- $pkcs8 := printf "\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20%s" .seed | b64enc }}
{{- $pem := printf "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" $pkcs8 }}
{{- $cert := genSelfSignedCertWithKey "deai-note-key" nil nil 1 $pem }}
{{- $der := regexReplaceAll "-----[A-Z ]+-----|\\s" $cert.Cert "" | b64dec }}
{{- $parts := splitList "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" $der }}
{{- if ne (len $parts) 2 }}{{ fail "deai.noteKeyFromSeed: cannot find the Ed25519 public key in the certificate" }}{{ end }}
{{- $pub := substr 0 32 (index $parts 1) }}
{{- $id := printf "%s\n\x01%s" .name $pub | sha256sum | trunc 8 }}
signerKey: {{ printf "PRIVATE+KEY+%s+%s+%s" .name $id (printf "\x01%s" .seed | b64enc) | quote }}
verifierKey: {{ printf "%s+%s+%s" .name $id (printf "\x01%s" $pub | b64enc) | quote }}
{{- end }}

{{/* A new random Ed25519 seed (32 raw bytes), from sprig's genPrivateKey (PKCS#8: 16-byte prefix ‖ seed). */}}
{{- define "deai.randomEd25519Seed" -}}
{{- regexReplaceAll "-----[A-Z ]+-----|\\s" (genPrivateKey "ed25519") "" | b64dec | substr 16 48 }}
{{- end }}

{{/* The ledger's origin (its checkpoints' first line and the key name). */}}
{{- define "deai.ledgerOrigin" -}}
{{- .Values.components.ledger.origin | default (printf "%s.%s.deai.local/log" (include "deai.fullname" .) .Release.Namespace) }}
{{- end }}

{{/* Secret holding LEDGER_ORIGIN, LEDGER_SIGNING_KEY, LEDGER_VERIFIER_KEY. */}}
{{- define "deai.ledgerKeySecretName" -}}
{{- .Values.components.ledger.signingKey.existingSecret | default (printf "%s-ledger-key" (include "deai.fullname" .)) }}
{{- end }}

{{/* Secret holding the generated INGESTION_SERVICE_KEY and SLASHING_SERVICE_KEY (each unless its component's serviceKeySecret names one). */}}
{{- define "deai.serviceKeysSecretName" -}}
{{- printf "%s-service-keys" (include "deai.fullname" .) }}
{{- end }}

{{/* Port of a URL: explicit, else 443 for https, else the given default. */}}
{{- define "deai.urlPort" -}}
{{- $u := urlParse .url }}
{{- $hostPort := splitList ":" $u.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $u.scheme "https" }}443{{ else if eq $u.scheme "tls" }}4222{{ else }}{{ .default }}{{ end }}
{{- end }}

{{/* Egress to DNS (networkPolicy.dns.to, port 53 UDP and TCP). */}}
{{- define "deai.networkPolicyDnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns.to | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/*
Egress rule to one dependency: the bundled pods by label, or (external) the peers in
networkPolicy.externalEgressTo (default: anywhere) on the dependency's port.
(dict "root" $ "bundled" <bool> "component" "postgresql" "port" 5432)
*/}}
{{- define "deai.networkPolicyDependencyEgress" -}}
{{- if .bundled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "deai.selectorLabels" (dict "root" .root "component" .component) | nindent 10 }}
  ports:
    - port: {{ .port }}
      protocol: TCP
{{- else }}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .root.Values.networkPolicy.externalEgressTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Egress of one component: DNS, Postgres, NATS, S3 (MinIO or external), the ledger (every
service may call it), the OTLP collector when config.otlpEndpoint is set, the storage
providers (ingestion), the Kubernetes API (trainer-operator), then networkPolicy.extraEgress.
(dict "root" $ "name" "ingestion")
*/}}
{{- define "deai.networkPolicyEgress" -}}
{{- $v := .root.Values }}
{{- include "deai.networkPolicyDnsEgress" .root }}
{{- if $v.postgresql.enabled }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" true "component" "postgresql" "port" 5432) }}
{{- else }}
{{- $url := $v.externalPostgresql.url | default "postgres://x:5432/" | replace "postgresql://" "postgres://" }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" false "port" (include "deai.urlPort" (dict "url" $url "default" 5432) | int)) }}
{{- end }}
{{- if $v.nats.enabled }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" true "component" "nats" "port" 4222) }}
{{- else }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" false "port" (include "deai.urlPort" (dict "url" $v.externalNats.url "default" 4222) | int)) }}
{{- end }}
{{- if $v.minio.enabled }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" true "component" "minio" "port" 9000) }}
{{- else }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" false "port" (include "deai.urlPort" (dict "url" $v.externalS3.endpoint "default" 80) | int)) }}
{{- end }}
{{- if and $v.components.ledger.enabled (ne .name "ledger") }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" .root "bundled" true "component" "ledger" "port" ($v.components.ledger.port | int)) }}
{{- end }}
{{- /* The dashboard's read-only passthrough reads the other services' REST APIs. */}}
{{- if eq .name "dashboard" }}
{{- range $component := list "ingestion" "da-sampler" "marketplace" "slashing" }}
{{- $target := index $v.components $component }}
{{- if and $target $target.enabled }}
{{ include "deai.networkPolicyDependencyEgress" (dict "root" $.root "bundled" true "component" $component "port" ($target.port | int)) }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.config.otlpEndpoint }}
- ports:
    - port: {{ include "deai.urlPort" (dict "url" . "default" 4318) | int }}
      protocol: TCP
  {{- with $v.networkPolicy.otlpCollectorTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if eq .name "ingestion" }}
{{- with $v.networkPolicy.storageProvidersEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- if eq .name "trainer-operator" }}
{{- with $v.networkPolicy.kubernetesApiEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- with $v.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* "true" when ingestion gets components.ingestion.bundledProviders entries on the bundled MinIO (else ""). */}}
{{- define "deai.bundledProviders" -}}
{{- $i := .Values.components.ingestion }}
{{- if and $i.enabled .Values.minio.enabled (not .Values.secrets.existingSecret) (not $i.providersSecret.name) (gt (int $i.bundledProviders) 0) }}true{{ end }}
{{- end }}
