{{/*
The vineyardd container's resources: .Values.resources, except with vineyard.memoryHeadroom set
(and a vineyard.size): the memory request and limit are then vineyard.size plus the headroom,
rounded up to whole Mi, so the limit follows the size (the shared memory is charged to the pod).
*/}}
{{- define "vineyard.vineyardd.resources" -}}
{{- $resources := deepCopy .Values.resources }}
{{- $v := .Values.vineyard }}
{{- if and $v.size $v.memoryHeadroom }}
{{- $bytes := addf (include "vineyard.quantityBytes" $v.size) (include "vineyard.quantityBytes" $v.memoryHeadroom) }}
{{- $memory := printf "%dMi" (int64 (ceil (divf $bytes 1048576))) }}
{{- $_ := set $resources "requests" (merge (dict "memory" $memory) (default (dict) $resources.requests)) }}
{{- $_ := set $resources "limits" (merge (dict "memory" $memory) (default (dict) $resources.limits)) }}
{{- end }}
{{- toYaml $resources }}
{{- end }}
