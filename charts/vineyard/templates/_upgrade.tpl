{{/*
Upgrades that would wreck the chart's etcd are refused before anything changes. A StatefulSet
keeps its pods' data (or, on emptyDir, loses it on every restart), and every member starts with
--initial-cluster-state=new: a new member count makes the members form a new cluster (on
emptyDir, member 0 comes back empty; with claims, the new members start a second cluster behind
the same Service); new ports or a new data volume restart every member into a cluster that
cannot find itself or its data. Kubernetes itself refuses changes to the claims of a
StatefulSet, but only after helm has updated the objects before it.
*/}}

{{/*
The StatefulSets in the release's namespace as the cluster has them now, as a JSON list: [] on
install, under `helm template` and in client-side dry runs (lookup answers nothing there). The
one line the render tests cannot reach; they call vineyard.upgrade.problems with their own list.
*/}}
{{- define "vineyard.upgrade.statefulsets" -}}
{{- if .Release.IsUpgrade }}
{{- toJson (default list (lookup "apps/v1" "StatefulSet" .Release.Namespace "").items) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/*
Every reason to refuse this upgrade, as a JSON list. Call with
(dict "ctx" $ "statefulsets" <the namespace's StatefulSets>). The release's etcd is found by its
labels, not its name, so an upgrade that would give it another name is seen too.
*/}}
{{- define "vineyard.upgrade.problems" -}}
{{- $observed := include "vineyard.upgrade.pickEtcd" (dict "ctx" .ctx "items" .statefulsets) | fromJson }}
{{- include "vineyard.upgrade.etcdProblems" (dict "ctx" .ctx "observed" $observed) }}
{{- end }}

{{/* From a list of StatefulSets, the one that is this release's etcd ({} when none is). */}}
{{- define "vineyard.upgrade.pickEtcd" -}}
{{- $found := dict }}
{{- range .items }}
{{- $labels := default dict .metadata.labels }}
{{- if and (eq (get $labels "app.kubernetes.io/instance") $.ctx.Release.Name) (eq (get $labels "app.kubernetes.io/name") (include "vineyard.name" $.ctx)) (eq (get $labels "app.kubernetes.io/component") "etcd") }}
{{- $found = . }}
{{- end }}
{{- end }}
{{- toJson $found }}
{{- end }}

{{/*
What this upgrade would change in the observed etcd StatefulSet that etcd cannot survive, as a
JSON list of messages naming the value, old -> new. Call with (dict "ctx" $ "observed" <object>);
an empty observed object (no etcd yet) or values without the chart's etcd give no problem:
leaving the chart's etcd is documented, not refused (README, Operations).
*/}}
{{- define "vineyard.upgrade.etcdProblems" -}}
{{- $ctx := .ctx }}
{{- $sts := .observed }}
{{- $problems := list }}
{{- if and $sts (include "vineyard.etcd.deployed" $ctx) }}
{{- $etcd := $ctx.Values.etcd }}
{{- $how := "follow \"Changing the etcd topology\" in the chart README (Operations): back up with etcdctl snapshot save, reinstall, restore" }}
{{- $name := include "vineyard.etcd.fullname" $ctx }}
{{- if ne $sts.metadata.name $name }}
{{- $problems = append $problems (printf "the etcd StatefulSet would be renamed %s -> %s (this chart version names objects of long release names differently): a new, empty etcd would replace it; %s" $sts.metadata.name $name $how) }}
{{- end }}
{{- $replicas := ternary (int64 $sts.spec.replicas) 1 (hasKey $sts.spec "replicas") | int64 }}
{{- if ne $replicas (int64 $etcd.replicaCount) }}
{{- $problems = append $problems (printf "etcd.replicaCount: %d -> %d cannot change on upgrade: the members would form a new cluster (--initial-cluster-state=new) and lose every key, or start a second one beside the first; %s" $replicas (int64 $etcd.replicaCount) $how) }}
{{- end }}
{{- $container := dict }}
{{- range $sts.spec.template.spec.containers }}
{{- if eq .name "etcd" }}{{ $container = . }}{{ end }}
{{- end }}
{{- range (default list $container.ports) }}
{{- $value := ternary "etcd.clientPort" "etcd.peerPort" (eq .name "client") }}
{{- $new := ternary $etcd.clientPort $etcd.peerPort (eq .name "client") }}
{{- if and (has .name (list "client" "peer")) (ne (int64 .containerPort) (int64 $new)) }}
{{- $problems = append $problems (printf "%s: %d -> %d cannot change on upgrade: every member would restart at once on new addresses the others and vineyardd do not know; %s" $value (int64 .containerPort) (int64 $new) $how) }}
{{- end }}
{{- end }}
{{- $claims := default list $sts.spec.volumeClaimTemplates }}
{{- if ne (gt (len $claims) 0) $etcd.persistence.enabled }}
{{- $problems = append $problems (printf "etcd.persistence.enabled: %t -> %t cannot change on upgrade: the members would restart on a new, empty data volume and lose every key; %s" (gt (len $claims) 0) $etcd.persistence.enabled $how) }}
{{- else if $claims }}
{{- $claim := (first $claims).spec }}
{{- $oldSize := dig "resources" "requests" "storage" "0" $claim }}
{{- /* By bytes: the API server keeps quantities in canonical form (1024Mi comes back as 1Gi). */}}
{{- if ne (include "vineyard.quantityBytes" $oldSize) (include "vineyard.quantityBytes" $etcd.persistence.size) }}
{{- $problems = append $problems (printf "etcd.persistence.size: %s -> %v cannot change on upgrade: Kubernetes refuses changes to a StatefulSet's claims (grow each claim itself where its storage class allows, then keep the old value here); %s" $oldSize $etcd.persistence.size $how) }}
{{- end }}
{{- $oldClass := ternary (toString $claim.storageClassName) "null" (hasKey $claim "storageClassName") }}
{{- $newClass := ternary (toString $etcd.persistence.storageClass) "null" (ne $etcd.persistence.storageClass nil) }}
{{- if ne $oldClass $newClass }}
{{- $problems = append $problems (printf "etcd.persistence.storageClass: %s -> %s cannot change on upgrade: Kubernetes refuses changes to a StatefulSet's claims; %s" $oldClass $newClass $how) }}
{{- end }}
{{- if ne (toJson (default list $claim.accessModes)) (toJson $etcd.persistence.accessModes) }}
{{- $problems = append $problems (printf "etcd.persistence.accessModes: %s -> %s cannot change on upgrade: Kubernetes refuses changes to a StatefulSet's claims; %s" (toJson $claim.accessModes) (toJson $etcd.persistence.accessModes) $how) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $problems }}
{{- end }}
