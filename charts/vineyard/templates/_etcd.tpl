{{/* Whether this release runs its own etcd: only when metadata lives in etcd and it is enabled. */}}
{{- define "vineyard.etcd.deployed" -}}
{{- if and (eq .Values.vineyard.meta "etcd") .Values.etcd.enabled }}true{{ end }}
{{- end }}

{{/* The peer URL of member i, through the headless Service. */}}
{{- define "vineyard.etcd.peerURL" -}}
{{- $ctx := .ctx }}
{{- printf "http://%s-%d.%s.%s.svc.%s:%d" (include "vineyard.etcd.fullname" $ctx) (int .index) (include "vineyard.etcd.headlessServiceName" $ctx) $ctx.Release.Namespace $ctx.Values.clusterDomain (int $ctx.Values.etcd.peerPort) }}
{{- end }}

{{/* --initial-cluster: every member by its stable StatefulSet name. */}}
{{- define "vineyard.etcd.initialCluster" -}}
{{- $members := list }}
{{- range $i := until (int .Values.etcd.replicaCount) }}
{{- $members = append $members (printf "%s-%d=%s" (include "vineyard.etcd.fullname" $) $i (include "vineyard.etcd.peerURL" (dict "ctx" $ "index" $i))) }}
{{- end }}
{{- join "," $members }}
{{- end }}
