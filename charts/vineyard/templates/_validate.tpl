{{/*
Cross-field checks the schema cannot express. Every problem is collected and reported at once,
each naming the values it concerns.
*/}}
{{- define "vineyard.validateValues" -}}
{{- $problems := list }}
{{- $limit := dig "limits" "memory" "" (include "vineyard.vineyardd.resources" . | fromYaml) }}
{{- if and .Values.vineyard.size $limit }}
{{- if lt (float64 (include "vineyard.quantityBytes" $limit)) (float64 (include "vineyard.quantityBytes" .Values.vineyard.size)) }}
{{- $problems = append $problems (printf "resources.limits.memory (%s) is below vineyard.size (%s): the shared memory is charged to the pod, so vineyardd would be OOM-killed when it fills up; raise the limit or lower the size" $limit .Values.vineyard.size) }}
{{- end }}
{{- end }}
{{- if and .Values.vineyard.spill.path (ge (float64 .Values.vineyard.spill.lowerRate) (float64 .Values.vineyard.spill.upperRate)) }}
{{- $problems = append $problems (printf "vineyard.spill.lowerRate (%v) must be below vineyard.spill.upperRate (%v)" .Values.vineyard.spill.lowerRate .Values.vineyard.spill.upperRate) }}
{{- end }}
{{- $problems = concat $problems (include "vineyard.vineyardd.extraArgsProblems" . | fromJsonArray) }}
{{- $problems = concat $problems (include "vineyard.admission.problems" . | fromJsonArray) }}
{{- $problems = concat $problems (include "vineyard.extras.problems" . | fromJsonArray) }}
{{- $problems = concat $problems (include "vineyard.spill.problems" . | fromJsonArray) }}
{{- $problems = concat $problems (include "vineyard.pool.problems" . | fromJsonArray) }}
{{- $service := .Values.rpcService }}
{{- if and (eq $service.type "ClusterIP") (get $service "nodePort") }}
{{- $problems = append $problems (printf "rpcService.nodePort (%v) needs rpcService.type NodePort or LoadBalancer (it is ClusterIP)" $service.nodePort) }}
{{- end }}
{{- if and (ne $service.type "LoadBalancer") (get $service "loadBalancerSourceRanges") }}
{{- $problems = append $problems (printf "rpcService.loadBalancerSourceRanges needs rpcService.type LoadBalancer (it is %s)" $service.type) }}
{{- end }}
{{- $statefulsets := include "vineyard.upgrade.statefulsets" . | fromJsonArray }}
{{- $problems = concat $problems (include "vineyard.upgrade.problems" (dict "ctx" . "statefulsets" $statefulsets) | fromJsonArray) }}
{{- if include "vineyard.etcd.deployed" . }}
{{- $etcd := .Values.etcd }}
{{- $quota := include "vineyard.quantityBytes" $etcd.backendQuota | float64 }}
{{- $volume := include "vineyard.quantityBytes" $etcd.persistence.size | float64 }}
{{- $needed := include "vineyard.etcd.volumeNeeded" . | float64 }}
{{- if and (not $etcd.persistence.enabled) (gt (int $etcd.replicaCount) 1) }}
{{- $problems = append $problems (printf "etcd.replicaCount (%v) with etcd.persistence.enabled=false: a replaced member (drain, eviction, node upgrade) would come back with an empty data directory, which etcd refuses to rejoin (\"member has already been bootstrapped\"): it crash-loops and one more lost member costs the quorum; set etcd.persistence.enabled=true (each member's claim survives its pod), or etcd.replicaCount=1 for throwaway metadata" $etcd.replicaCount) }}
{{- end }}
{{- if lt $quota 67108864.0 }}
{{- $problems = append $problems (printf "etcd.backendQuota (%v) is below 64Mi: etcd would raise its NOSPACE alarm and refuse writes almost at once" $etcd.backendQuota) }}
{{- else if lt $volume $needed }}
{{- $problems = append $problems (printf "etcd.persistence.size (%v, each member's %s) is below 2 x etcd.backendQuota (%v) + (etcd.maxWals (%v) + 2) x 64Mi = %.0fMi: the database, a defragmentation or snapshot copy of it, the WAL segments and the snapshot files must fit, or the volume fills before etcd's quota alarm can protect it; raise etcd.persistence.size or lower etcd.backendQuota" $etcd.persistence.size (ternary "claim" "emptyDir size limit" $etcd.persistence.enabled) $etcd.backendQuota (int64 $etcd.maxWals) (ceil (divf $needed 1048576))) }}
{{- end }}
{{- end }}
{{- $fullname := include "vineyard.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- $problems = append $problems (printf "the release name %q names the objects %q, which a Service name cannot be (a letter first, then only a-z, 0-9 and -): choose another release name or set fullnameOverride" .Release.Name $fullname) }}
{{- else if eq $fullname (include "vineyard.etcd.fullname" .) }}
{{- $problems = append $problems (printf "the full name %q (from the release name, nameOverride or fullnameOverride) is also the name of the etcd objects, so two NetworkPolicies would share it: choose a name that does not end in -etcd" $fullname) }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\n\nINVALID VALUES:\n- %s" (join "\n- " $problems)) }}
{{- end }}
{{- end }}
