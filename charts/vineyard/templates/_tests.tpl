{{/* Which `helm test` pods render (NOTES suggests `helm test` only when one does). */}}
{{- define "vineyard.tests.rpc" -}}
{{- if and .Values.tests.enabled .Values.vineyard.rpc.enabled }}true{{ end }}
{{- end }}

{{- define "vineyard.tests.etcd" -}}
{{- if and .Values.tests.enabled (eq .Values.vineyard.meta "etcd") }}true{{ end }}
{{- end }}

{{/* Metadata and hardening shared by the `helm test` pods. Call with (dict "ctx" $ "name" "rpc"). */}}
{{- define "vineyard.testPodMeta" -}}
metadata:
  name: {{ include "vineyard.suffixedName" (dict "ctx" .ctx "suffix" (printf "-test-%s" .name)) }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "vineyard.componentLabels" (dict "ctx" .ctx "component" "test") | nindent 4 }}
  {{- include "vineyard.annotations" (dict "ctx" .ctx "own" "helm.sh/hook: test\nhelm.sh/hook-delete-policy: before-hook-creation,hook-succeeded") | nindent 2 }}
{{- end }}

{{- define "vineyard.testPodSecurity" -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "vineyard.testContainerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {memory: 64Mi}
{{- end }}
