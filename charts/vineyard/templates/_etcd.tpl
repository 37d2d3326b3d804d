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

{{/*
The flags that keep a member's storage bounded forever (values etcd.autoCompaction,
etcd.backendQuota, etcd.snapshotCount, etcd.maxWals, etcd.maxSnapshots; the reasons are in
values.yaml). Numbers go through int64: values from YAML are floats, printed as 1e+06 otherwise.
*/}}
{{- define "vineyard.etcd.boundsArgs" -}}
{{- $etcd := .Values.etcd }}
{{- $retention := $etcd.autoCompaction.retention -}}
- --auto-compaction-mode={{ $etcd.autoCompaction.mode }}
- --auto-compaction-retention={{ if kindIs "string" $retention }}{{ $retention }}{{ else }}{{ int64 $retention }}{{ end }}
- --quota-backend-bytes={{ include "vineyard.quantityBytes" $etcd.backendQuota | float64 | int64 }}
- --snapshot-count={{ int64 $etcd.snapshotCount }}
- --max-wals={{ int64 $etcd.maxWals }}
- --max-snapshots={{ int64 $etcd.maxSnapshots }}
{{- end }}

{{/*
The smallest data volume for the quota, in bytes. The database grows to the quota, and a second
copy of it can sit beside it: the temporary file of a defragmentation, or the snapshot a follower
receives from the leader before it replaces its database. The WAL keeps at most etcd.maxWals
segment files, the one in use among them, plus one pre-allocated, 64 MB each (as long as the
entries between two snapshots, etcd.snapshotCount of them, fit in one segment: 6 KB each on
average; vineyardd's heartbeats take about 100 bytes). One more 64Mi covers the snapshot files
and the database growing in 16 MB steps past the quota check.
*/}}
{{- define "vineyard.etcd.volumeNeeded" -}}
{{- $quota := include "vineyard.quantityBytes" .Values.etcd.backendQuota | float64 }}
{{- addf (mulf 2 $quota) (mulf (add (int64 .Values.etcd.maxWals) 2) 67108864) }}
{{- end }}

{{/*
etcd.topologySpreadConstraints as given, each without a labelSelector counting the release's
etcd members (a constraint that selects no pods spreads nothing).
*/}}
{{- define "vineyard.etcd.topologySpreadConstraints" -}}
{{- $constraints := list }}
{{- range .Values.etcd.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "vineyard.selectorLabels" (dict "ctx" $ "component" "etcd") | fromYaml)) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- with $constraints }}
{{- toYaml . }}
{{- end }}
{{- end }}
