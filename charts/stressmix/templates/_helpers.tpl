{{/* Base name of every object: the release name, or release-chart when the release name lacks "stressmix". */}}
{{- define "stressmix.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Call with (list $ "operator"). */}}
{{- define "stressmix.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "stressmix.fullname" $root) (index . 1) -}}
{{- end -}}

{{- define "stressmix.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "stressmix.labels" -}}
{{- $root := index . 0 -}}
{{ include "stressmix.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end -}}

{{/* The runtime image (all Rust binaries). */}}
{{- define "stressmix.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "stressmix.builderImage" -}}
{{- $b := .Values.agent.module.builderImage -}}
{{- printf "%s:%s" $b.repository (default .Chart.AppVersion $b.tag) -}}
{{- end -}}

{{/* In-cluster URL of the log service. */}}
{{- define "stressmix.logsvcURL" -}}
{{- printf "http://%s.%s.svc:%d" (include "stressmix.componentName" (list . "logsvc")) .Release.Namespace (int .Values.logsvc.port) -}}
{{- end -}}

{{/* Security context shared by the containers that need nothing from the kernel. */}}
{{- define "stressmix.restrictedContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "stressmix.scheduling" -}}
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
{{- end -}}

{{/* The operator's rules in a managed namespace (contracts.md): nothing beyond what reconcile uses. */}}
{{- define "stressmix.operatorWorkloadRules" -}}
rules:
  - apiGroups: [stressmix.dev]
    resources: [workloads]
    verbs: [get, list, watch]
  - apiGroups: [stressmix.dev]
    resources: [workloads/status]
    verbs: [get, patch, update]
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch, create, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end }}

{{/* A generated secret value kept across upgrades: the value under KEY of the existing Secret NAME in
the release namespace, else LENGTH random characters. Call with (list $ NAME KEY LENGTH). */}}
{{- define "stressmix.keptSecretValue" -}}
{{- $root := index . 0 -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (index . 1) -}}
{{- if and $existing $existing.data (index $existing.data (index . 2)) -}}
{{- index $existing.data (index . 2) | b64dec -}}
{{- else -}}
{{- randAlphaNum (int (index . 3)) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the ingest token: the user's, or the one the chart makes. */}}
{{- define "stressmix.ingestTokenSecret" -}}
{{- default (include "stressmix.componentName" (list . "ingest-token")) .Values.ingestToken.existingSecret -}}
{{- end -}}

{{/* env entry NAME = the ingest token. Call with (list $ NAME). */}}
{{- define "stressmix.ingestTokenEnv" -}}
{{- $root := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "stressmix.ingestTokenSecret" $root }}
      key: {{ $root.Values.ingestToken.key }}
{{- end -}}
