{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "clientshift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name already
contains it. Truncated to 63 characters (DNS label), leaving room for the longest suffix used below
("-webhook" + "-client"): resource names stay valid.
*/}}
{{- define "clientshift.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "clientshift.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of every namespaced resource.
*/}}
{{- define "clientshift.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable across upgrades (Deployment selectors are immutable).
*/}}
{{- define "clientshift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clientshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "clientshift.labels" -}}
helm.sh/chart: {{ include "clientshift.chart" . }}
{{ include "clientshift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clientshift
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Per-component labels: include with (dict "ctx" $ "component" "worker").
*/}}
{{- define "clientshift.componentLabels" -}}
{{ include "clientshift.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "clientshift.componentSelectorLabels" -}}
{{ include "clientshift.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
metadata.annotations block for resources (commonAnnotations merged with extra ones).
Usage: include "clientshift.annotations" (dict "ctx" $ "extra" .Values.x.annotations)
*/}}
{{- define "clientshift.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy (default dict .ctx.Values.commonAnnotations)) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "clientshift.workerName" -}}
{{ include "clientshift.fullname" . }}-worker
{{- end }}

{{- define "clientshift.webhookName" -}}
{{ include "clientshift.fullname" . }}-webhook
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "clientshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clientshift.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: registry/repository:tag, or registry/repository@digest when a digest is given.
*/}}
{{- define "clientshift.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{- define "clientshift.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Kafka bootstrap URL for CLIENTSHIFT_BROKER. Empty would make the app start its embedded
development broker, which has no place in a cluster: refuse to render.
*/}}
{{- define "clientshift.brokerUrl" -}}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers is required: list your Kafka bootstrap servers as host:port (the chart never runs the embedded development broker)" }}
{{- end }}
{{- printf "kafka://%s" (join "," .Values.kafka.brokers) }}
{{- end }}

{{/*
Unique TCP ports of the Kafka brokers (plus networkPolicy.kafkaExtraPorts), as a YAML list.
*/}}
{{- define "clientshift.kafkaPorts" -}}
{{- $ports := list }}
{{- range .Values.kafka.brokers }}
{{- $ports = append $ports (regexFind "[0-9]+$" . | int) }}
{{- end }}
{{- range .Values.networkPolicy.kafkaExtraPorts }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- toYaml (uniq $ports) }}
{{- end }}

{{/*
Name of the Secret holding the credentials: the user's existing one or the chart's.
*/}}
{{- define "clientshift.secretName" -}}
{{- default (include "clientshift.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{- define "clientshift.rulesConfigMapName" -}}
{{- default (printf "%s-rules" (include "clientshift.fullname" .)) .Values.rules.existingConfigMap }}
{{- end }}

{{- define "clientshift.rulesKey" -}}
{{- if .Values.rules.existingConfigMap }}{{ .Values.rules.existingConfigMapKey }}{{ else }}rules.yaml{{ end }}
{{- end }}

{{/*
Rules YAML content of the chart's ConfigMap.
*/}}
{{- define "clientshift.rulesContent" -}}
{{- .Values.rules.content | default (.Files.Get "files/rules.yaml") }}
{{- end }}

{{- define "clientshift.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "clientshift.tlsEnabled" -}}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "clientshift.caEnabled" -}}
{{- if or .Values.kafka.tls.caSecret .Values.kafka.tls.caConfigMap }}true{{ end }}
{{- end }}

{{/*
Data of the chart-created Secret (only the credentials that were given), as a dict of key -> value.
*/}}
{{- define "clientshift.secretData" -}}
{{- $c := .Values.credentials }}
{{- $data := dict }}
{{- range $field := list "hubspotAccessToken" "hubspotClientSecret" "salesforceUsername" "salesforcePassword" "salesforceSecurityToken" "salesforceConsumerKey" "salesforceConsumerSecret" }}
{{- with (get $c $field) }}
{{- $_ := set $data (get $c.keys $field) . }}
{{- end }}
{{- end }}
{{- if not $.Values.kafka.sasl.passwordSecret.name }}
{{- with (default $.Values.kafka.sasl.password $c.kafkaSaslPassword) }}
{{- $_ := set $data $c.keys.kafkaSaslPassword . }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
Whether the chart creates the credentials Secret: no existingSecret, and something to put in it.
*/}}
{{- define "clientshift.createSecret" -}}
{{- if and (not .Values.credentials.existingSecret) (ne (include "clientshift.secretData" .) "{}") }}true{{ end }}
{{- end }}

{{/*
Fails early, with a message naming the value to set, on configurations that would only break at
run time.
*/}}
{{- define "clientshift.validate" -}}
{{- $brokers := include "clientshift.brokerUrl" . }}
{{- $p := int .Values.kafka.partitions }}
{{- if gt (int .Values.worker.replicaCount) $p }}
{{- fail (printf "worker.replicaCount (%d) > kafka.partitions (%d): Kafka gives each partition to one consumer, the extra workers would sit idle" (int .Values.worker.replicaCount) $p) }}
{{- end }}
{{- if .Values.worker.autoscaling.enabled }}
{{- if gt (int .Values.worker.autoscaling.maxReplicas) $p }}
{{- fail (printf "worker.autoscaling.maxReplicas (%d) > kafka.partitions (%d): extra workers would sit idle" (int .Values.worker.autoscaling.maxReplicas) $p) }}
{{- end }}
{{- if gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas) }}
{{- fail "worker.autoscaling.minReplicas must be <= worker.autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.enabled .Values.webhook.autoscaling.enabled (gt (int .Values.webhook.autoscaling.minReplicas) (int .Values.webhook.autoscaling.maxReplicas)) }}
{{- fail "webhook.autoscaling.minReplicas must be <= webhook.autoscaling.maxReplicas" }}
{{- end }}
{{- if include "clientshift.saslEnabled" . }}
{{- if not .Values.kafka.sasl.mechanism }}
{{- fail (printf "kafka.securityProtocol is %s: set kafka.sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if not .Values.kafka.sasl.username }}
{{- fail (printf "kafka.securityProtocol is %s: set kafka.sasl.username" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and (not .Values.kafka.sasl.passwordSecret.name) (not .Values.credentials.existingSecret) (not (or .Values.kafka.sasl.password .Values.credentials.kafkaSaslPassword)) }}
{{- fail "SASL needs a password: set kafka.sasl.password, kafka.sasl.passwordSecret.name or credentials.existingSecret" }}
{{- end }}
{{- else if .Values.kafka.sasl.mechanism }}
{{- fail (printf "kafka.sasl.mechanism is set but kafka.securityProtocol is %s: use SASL_SSL or SASL_PLAINTEXT" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and .Values.kafka.tls.caSecret .Values.kafka.tls.caConfigMap }}
{{- fail "set only one of kafka.tls.caSecret and kafka.tls.caConfigMap" }}
{{- end }}
{{- if and (include "clientshift.caEnabled" .) (not (include "clientshift.tlsEnabled" .)) }}
{{- fail (printf "a Kafka CA is configured but kafka.securityProtocol is %s: use SSL or SASL_SSL" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if not .Values.credentials.existingSecret }}
{{- if and (eq .Values.connector "hubspot") (not .Values.credentials.hubspotAccessToken) }}
{{- fail "connector is hubspot: set credentials.hubspotAccessToken or credentials.existingSecret" }}
{{- end }}
{{- if and (eq .Values.connector "salesforce") (not (and .Values.credentials.salesforceUsername .Values.credentials.salesforcePassword)) (not (and .Values.credentials.salesforceConsumerKey .Values.credentials.salesforceConsumerSecret)) }}
{{- fail "connector is salesforce: set credentials.salesforceUsername and salesforcePassword (and salesforceSecurityToken), or salesforceConsumerKey and salesforceConsumerSecret, or credentials.existingSecret" }}
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.credentials.hubspotClientSecret) }}
{{- fail "webhook.enabled: set credentials.hubspotClientSecret (the HubSpot app's client secret) or credentials.existingSecret" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.enabled .Values.webhook.ingress.enabled (not .Values.webhook.ingress.host) }}
{{- fail "webhook.ingress.enabled: set webhook.ingress.host (HubSpot posts to https://<host>/webhooks/hubspot)" }}
{{- end }}
{{- end }}

{{/*
secretKeyRef env entry: include with (dict "name" ENV "secret" NAME "key" KEY "optional" BOOL).
*/}}
{{- define "clientshift.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
Env of both components for Kafka SASL: the password, from the chosen Secret.
*/}}
{{- define "clientshift.kafkaSecretEnv" -}}
{{- if include "clientshift.saslEnabled" . }}
{{- if .Values.kafka.sasl.passwordSecret.name }}
{{ include "clientshift.secretEnv" (dict "name" "CLIENTSHIFT_SASL_PASSWORD" "secret" .Values.kafka.sasl.passwordSecret.name "key" .Values.kafka.sasl.passwordSecret.key) }}
{{- else }}
{{ include "clientshift.secretEnv" (dict "name" "CLIENTSHIFT_SASL_PASSWORD" "secret" (include "clientshift.secretName" .) "key" .Values.credentials.keys.kafkaSaslPassword) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Env of the worker for the CRM connector: only the credentials that connector uses. With the
chart's own Secret only the keys it holds are referenced; with an existing Secret the keys the
connector can't run without are required (a missing key stops the pod with a clear event) and
the alternative ones are optional.
*/}}
{{- define "clientshift.connectorSecretEnv" -}}
{{- $secret := include "clientshift.secretName" . }}
{{- $keys := .Values.credentials.keys }}
{{- $existing := .Values.credentials.existingSecret }}
{{- if eq .Values.connector "hubspot" }}
{{ include "clientshift.secretEnv" (dict "name" "HUBSPOT_ACCESS_TOKEN" "secret" $secret "key" $keys.hubspotAccessToken) }}
{{- else if eq .Values.connector "salesforce" }}
{{- $vars := dict "SALESFORCE_USERNAME" "salesforceUsername" "SALESFORCE_PASSWORD" "salesforcePassword" "SALESFORCE_SECURITY_TOKEN" "salesforceSecurityToken" "SALESFORCE_CONSUMER_KEY" "salesforceConsumerKey" "SALESFORCE_CONSUMER_SECRET" "salesforceConsumerSecret" }}
{{- range $env := keys $vars | sortAlpha }}
{{- $field := get $vars $env }}
{{- if or $existing (get $.Values.credentials $field) }}
{{ include "clientshift.secretEnv" (dict "name" $env "secret" $secret "key" (get $keys $field) "optional" (not (empty $existing))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checksum of the rules, for the worker pod annotation: a change of rules rolls the workers.
*/}}
{{- define "clientshift.rulesChecksum" -}}
{{- if .Values.rules.existingConfigMap }}
{{- printf "%s/%s" .Values.rules.existingConfigMap .Values.rules.existingConfigMapKey | sha256sum }}
{{- else }}
{{- include "clientshift.rulesContent" . | sha256sum }}
{{- end }}
{{- end }}

{{/*
Soft pod anti-affinity over nodes for a component, used when no affinity is given.
*/}}
{{- define "clientshift.defaultAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "clientshift.componentSelectorLabels" . | nindent 12 }}
{{- end }}

{{/*
HTTP probe: include with (dict "probe" .Values.worker.livenessProbe "path" "/healthz").
*/}}
{{- define "clientshift.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: http
{{- with .probe.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/*
The broker CA volume (a Secret or a ConfigMap), mounted at /etc/clientshift/kafka-ca/ca.crt.
*/}}
{{- define "clientshift.kafkaCaVolume" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
{{- else if .Values.kafka.tls.caConfigMap }}
- name: kafka-ca
  configMap:
    name: {{ .Values.kafka.tls.caConfigMap }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{/*
HPA metrics block from an autoscaling values object.
*/}}
{{- define "clientshift.hpaMetrics" -}}
{{- if not (or .targetCPUUtilizationPercentage .targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling is enabled: set targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage" }}
{{- end }}
metrics:
{{- with .targetCPUUtilizationPercentage }}
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: {{ . }}
{{- end }}
{{- with .targetMemoryUtilizationPercentage }}
  - type: Resource
    resource:
      name: memory
      target:
        type: Utilization
        averageUtilization: {{ . }}
{{- end }}
{{- end }}

{{/*
Public origin of the webhook ingress (HubSpot signs the URL it called).
*/}}
{{- define "clientshift.webhookPublicUrl" -}}
{{- if .Values.webhook.publicUrl }}
{{- .Values.webhook.publicUrl | trimSuffix "/" }}
{{- else if and .Values.webhook.ingress.enabled .Values.webhook.ingress.host }}
{{- printf "https://%s" .Values.webhook.ingress.host }}
{{- end }}
{{- end }}
