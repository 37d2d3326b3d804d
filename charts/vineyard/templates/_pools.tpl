{{/*
Node pools (values `pools`). Each pool is one more vineyardd DaemonSet, "<fullname>-<name>", on
the nodes matching its nodeSelector (added to the top-level one), with the pool's values overlaid
on the top-level ones the way helm merges values files. The release's own DaemonSet keeps its
name and runs on the nodes of no pool: for every pool that could share nodes with it, a required
node affinity term keeps it away from the nodes matching the pool's nodeSelector. Pools are
disjoint by construction (the chart refuses two pools without a label key whose values differ),
so no node ever runs two of them: two vineyardd on one node would fight over its socket path,
which is the same for every pool so that workloads need not know their node's pool.
*/}}

{{/*
Fills .into (a dict) with the context a vineyardd DaemonSet renders from: the root's Release,
Chart, Capabilities, Template and Files, the Values it sees, and Pool (nil for the release's
own DaemonSet). Call with (dict "root" $ "pool" <pool or nil> "into" <dict>).
*/}}
{{- define "vineyard.pool.context" -}}
{{- $root := .root }}
{{- $values := deepCopy $root.Values }}
{{- if .pool }}
{{- include "vineyard.pool.overlay" (dict "values" $values "pool" .pool) }}
{{- else if $root.Values.pools }}
{{- $affinity := include "vineyard.pool.ownAffinity" $root | fromYaml }}
{{- $_ := set $values "affinity" $affinity }}
{{- end }}
{{- $_ := merge .into (dict "Values" $values "Release" $root.Release "Chart" $root.Chart "Capabilities" $root.Capabilities "Template" $root.Template "Files" $root.Files "Pool" .pool) }}
{{- end }}

{{/* Overlays a pool on a copy of the top-level values. Call with (dict "values" <copy> "pool" <pool>). */}}
{{- define "vineyard.pool.overlay" -}}
{{- $values := .values }}
{{- $pool := .pool }}
{{- $_ := set $values "nodeSelector" (merge (deepCopy $pool.nodeSelector) (default dict $values.nodeSelector)) }}
{{- range $key := list "affinity" "resources" "podLabels" "podAnnotations" }}
{{- if hasKey $pool $key }}
{{- $_ := set $values $key (mergeOverwrite (deepCopy (default dict (get $values $key))) (deepCopy (default dict (get $pool $key)))) }}
{{- end }}
{{- end }}
{{- range $key := list "tolerations" "priorityClassName" }}
{{- if hasKey $pool $key }}
{{- $_ := set $values $key (get $pool $key) }}
{{- end }}
{{- end }}
{{- range $key := list "size" "memoryHeadroom" }}
{{- if hasKey $pool $key }}
{{- $_ := set $values.vineyard $key (get $pool $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
For each pool that could share nodes with the release's own DaemonSet, the labels of its
nodeSelector that the top-level nodeSelector does not already require: a node of the pool has
them all. A pool is disjoint from the release's own DaemonSet when the top-level nodeSelector
gives one of its keys another value. As a JSON list of maps.
*/}}
{{- define "vineyard.pool.exclusions" -}}
{{- $top := default dict .Values.nodeSelector }}
{{- $exclusions := list }}
{{- range .Values.pools }}
{{- $disjoint := false }}
{{- $rest := dict }}
{{- range $key, $value := .nodeSelector }}
{{- if hasKey $top $key }}
{{- if ne (get $top $key) $value }}{{ $disjoint = true }}{{ end }}
{{- else }}
{{- $_ := set $rest $key $value }}
{{- end }}
{{- end }}
{{- if not $disjoint }}
{{- $exclusions = append $exclusions $rest }}
{{- end }}
{{- end }}
{{- toJson $exclusions }}
{{- end }}

{{/*
The node selector terms that keep the release's own DaemonSet off every pool's nodes: a node is
in no pool when, for each pool, one of its labels is missing or different (NotIn matches a node
without the label). That is a conjunction of disjunctions; node selector terms are ORed and the
expressions of one term ANDed, so it is written out as every choice of one label per pool. As a
JSON list of terms; [] without pools. Pools that share one label key (vineyard.v6d.io/pool=...)
give one term.
*/}}
{{- define "vineyard.pool.exclusionTerms" -}}
{{- $terms := list dict }}
{{- range $exclusion := include "vineyard.pool.exclusions" . | fromJsonArray }}
{{- $next := list }}
{{- range $term := $terms }}
{{- range $key := keys $exclusion | sortAlpha }}
{{- $choice := deepCopy $term }}
{{- $_ := set $choice $key (append (default list (get $choice $key)) (get $exclusion $key) | uniq | sortAlpha) }}
{{- $next = append $next $choice }}
{{- end }}
{{- end }}
{{- $terms = $next }}
{{- end }}
{{- $out := list }}
{{- range $term := $terms }}
{{- $expressions := list }}
{{- range $key := keys $term | sortAlpha }}
{{- $expressions = append $expressions (dict "key" $key "operator" "NotIn" "values" (get $term $key)) }}
{{- end }}
{{- if $expressions }}
{{- $out = append $out $expressions }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
The affinity of the release's own DaemonSet when there are pools: the top-level affinity with
the exclusion terms ANDed into its required node affinity (each of its own terms combined with
each exclusion term).
*/}}
{{- define "vineyard.pool.ownAffinity" -}}
{{- $affinity := deepCopy (default dict .Values.affinity) }}
{{- $exclusions := include "vineyard.pool.exclusionTerms" . | fromJsonArray }}
{{- if $exclusions }}
{{- $node := default dict (get $affinity "nodeAffinity") }}
{{- $required := default dict (get $node "requiredDuringSchedulingIgnoredDuringExecution") }}
{{- $own := default (list dict) (get $required "nodeSelectorTerms") }}
{{- $terms := list }}
{{- range $term := $own }}
{{- range $expressions := $exclusions }}
{{- $combined := deepCopy $term }}
{{- $_ := set $combined "matchExpressions" (concat (default list (get $term "matchExpressions")) $expressions) }}
{{- $terms = append $terms $combined }}
{{- end }}
{{- end }}
{{- $_ := set $required "nodeSelectorTerms" $terms }}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required }}
{{- $_ := set $affinity "nodeAffinity" $node }}
{{- end }}
{{- toYaml $affinity }}
{{- end }}

{{/*
What the chart refuses about pools, as a JSON list of messages: names used twice, a pool
DaemonSet named like the release's own, two pools that could share a node, a pool that takes
every node of the release's own DaemonSet, too many exclusion terms, and each pool's memory
limit below its size.
*/}}
{{- define "vineyard.pool.problems" -}}
{{- $problems := list }}
{{- $top := default dict .Values.nodeSelector }}
{{- $pools := .Values.pools }}
{{- $names := dict }}
{{- $own := include "vineyard.fullname" . }}
{{- range $i, $pool := $pools }}
{{- $where := printf "pools[%d] (%s)" $i $pool.name }}
{{- if hasKey $names $pool.name }}
{{- $problems = append $problems (printf "%s: the name is also pools[%v]'s; each pool needs a name of its own (its DaemonSet is <fullname>-<name>)" $where (get $names $pool.name)) }}
{{- end }}
{{- $_ := set $names $pool.name $i }}
{{- $ctx := dict }}
{{- include "vineyard.pool.context" (dict "root" $ "pool" $pool "into" $ctx) }}
{{- if eq (include "vineyard.vineyardd.name" $ctx) $own }}
{{- $problems = append $problems (printf "%s: its DaemonSet would be named %q like the release's own (the full name is cut to fit 63 characters): choose a shorter pool name or fullnameOverride" $where $own) }}
{{- end }}
{{- $selector := $ctx.Values.nodeSelector }}
{{- range $j, $other := $pools }}
{{- if lt $j $i }}
{{- $otherSelector := merge (deepCopy $other.nodeSelector) $top }}
{{- $disjoint := false }}
{{- range $key, $value := $selector }}
{{- if and (hasKey $otherSelector $key) (ne (get $otherSelector $key) $value) }}{{ $disjoint = true }}{{ end }}
{{- end }}
{{- if not $disjoint }}
{{- $problems = append $problems (printf "%s and pools[%d] (%s) can select the same node (one labelled %s would run both, and two vineyardd on one node fight over its socket): give both pools one label key with different values, e.g. vineyard.v6d.io/pool" $where $j $other.name (merge (deepCopy $selector) $otherSelector | toJson)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $covers := true }}
{{- range $key, $value := $pool.nodeSelector }}
{{- if not (and (hasKey $top $key) (eq (get $top $key) $value)) }}{{ $covers = false }}{{ end }}
{{- end }}
{{- if $covers }}
{{- $problems = append $problems (printf "%s: its nodeSelector %s is part of the top-level nodeSelector, so the pool would take every node of the release's own DaemonSet: give the pool a label the other nodes do not have" $where (toJson $pool.nodeSelector)) }}
{{- end }}
{{- $limit := dig "limits" "memory" "" (include "vineyard.vineyardd.resources" $ctx | fromYaml) }}
{{- $size := $ctx.Values.vineyard.size }}
{{- if and $size $limit }}
{{- if lt (float64 (include "vineyard.quantityBytes" $limit)) (float64 (include "vineyard.quantityBytes" $size)) }}
{{- $problems = append $problems (printf "%s: resources.limits.memory (%s) is below its size (%s): the shared memory is charged to the pod, so vineyardd would be OOM-killed when it fills up; set the pool's memoryHeadroom (or resources.limits.memory)" $where $limit $size) }}
{{- end }}
{{- end }}
{{- end }}
{{- $terms := include "vineyard.pool.exclusionTerms" . | fromJsonArray }}
{{- if gt (len $terms) 64 }}
{{- $problems = append $problems (printf "pools: keeping the release's own DaemonSet off the pools' nodes takes %d node selector terms (one per choice of one nodeSelector label per pool): give the pools one label key with different values, e.g. vineyard.v6d.io/pool" (len $terms)) }}
{{- end }}
{{- toJson $problems }}
{{- end }}

{{/* NOTES lines naming each pool's DaemonSet, nodes and shared memory (nothing without pools). */}}
{{- define "vineyard.pool.notes" -}}
{{- range .Values.pools }}
{{- $ctx := dict }}
{{- include "vineyard.pool.context" (dict "root" $ "pool" . "into" $ctx) }}
{{- $values := $ctx.Values }}
Pool {{ .name }}: DaemonSet {{ include "vineyard.vineyardd.name" $ctx }} on the nodes matching {{ toJson $values.nodeSelector }}, {{ $values.vineyard.size | default "unlimited" }} of shared memory
  (memory limit {{ dig "limits" "memory" "none" (include "vineyard.vineyardd.resources" $ctx | fromYaml) }}).
{{- end }}
{{- with .Values.pools }}
  Every pool's socket is where the release's is (below), so workloads need not know their node's pool.
  A node in a pool's nodeSelector that its affinity or tolerations leave out runs no vineyardd.
{{- end }}
{{- end }}
