{{/* Chart name, overridable. */}}
{{- define "alicloud-db-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name, plus the chart name unless it is in it. */}}
{{- define "alicloud-db-operator.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "alicloud-db-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "alicloud-db-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alicloud-db-operator
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "alicloud-db-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alicloud-db-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels of the emulator pods. */}}
{{- define "alicloud-db-operator.emulatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "alicloud-db-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: emulator
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "alicloud-db-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alicloud-db-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "alicloud-db-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when leader election is on: asked for, or more than one replica. */}}
{{- define "alicloud-db-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "alicloud-db-operator.leaseName" -}}
{{- default (include "alicloud-db-operator.fullname" .) .Values.leaderElection.id }}
{{- end }}

{{/* The namespace the operator watches with installScope namespace. */}}
{{- define "alicloud-db-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{/* Name of the emulator's Deployment and Service. */}}
{{- define "alicloud-db-operator.emulatorName" -}}
{{- printf "%s-emulator" (include "alicloud-db-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the Secret holding the emulator's account. */}}
{{- define "alicloud-db-operator.emulatorAccountSecret" -}}
{{- printf "%s-emulator-account" (include "alicloud-db-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base URL of the emulator inside the cluster. */}}
{{- define "alicloud-db-operator.emulatorUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "alicloud-db-operator.emulatorName" .) .Release.Namespace (int .Values.emulator.port) }}
{{- end }}

{{/* Pod securityContext shared by the operator and the emulator (restricted Pod Security). */}}
{{- define "alicloud-db-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container securityContext shared by the operator and the emulator. */}}
{{- define "alicloud-db-operator.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/* Refuses combinations of values that cannot work, with a message saying what to change. */}}
{{- define "alicloud-db-operator.validate" -}}
{{- if and .Values.watchNamespace (ne .Values.installScope "namespace") }}
{{- fail "watchNamespace is only used with installScope: namespace (installScope cluster watches every namespace)" }}
{{- end }}
{{- if .Values.emulator.enabled }}
{{- if or .Values.endpoints.dbs .Values.endpoints.rds .Values.endpoints.sts }}
{{- fail "emulator.enabled points the operator at the emulator: leave endpoints.dbs, endpoints.rds and endpoints.sts empty" }}
{{- end }}
{{- if or .Values.credentials.existingSecret .Values.credentials.rrsa.roleArn }}
{{- fail "emulator.enabled gives the operator the emulator account: leave credentials.existingSecret and credentials.rrsa.roleArn empty" }}
{{- end }}
{{- end }}
{{- if and .Values.credentials.existingSecret .Values.credentials.rrsa.roleArn }}
{{- fail "set either credentials.existingSecret (an AccessKey) or credentials.rrsa.roleArn (RRSA), not both" }}
{{- end }}
{{- if and .Values.credentials.rrsa.roleArn (not .Values.credentials.rrsa.oidcProviderArn) }}
{{- fail "credentials.rrsa.roleArn needs credentials.rrsa.oidcProviderArn" }}
{{- end }}
{{- end }}
