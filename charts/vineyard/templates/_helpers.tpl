{{/* Chart name, overridable. */}}
{{- define "vineyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart name (release "vineyard" gives
"vineyard", as upstream's names did), else "<release>-<chart>". Truncated to 63 characters.
*/}}
{{- define "vineyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "vineyard.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vineyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; user labels never enter selectors. */}}
{{- define "vineyard.labels" -}}
helm.sh/chart: {{ include "vineyard.chart" . | quote }}
app.kubernetes.io/name: {{ include "vineyard.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vineyard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "vineyardd"). */}}
{{- define "vineyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vineyard.name" .ctx | quote }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full label set of one component: call like vineyard.selectorLabels. */}}
{{- define "vineyard.componentLabels" -}}
{{ include "vineyard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vineyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vineyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; a digest wins over the tag. A registry
(global.imageRegistry) replaces the repository's own, which is its first component when that
names a host the way Docker reads one (a "." or ":" in it, or "localhost").
*/}}
{{- define "vineyard.imageRef" -}}
{{- $repository := .image.repository }}
{{- with .registry }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repository = rest $parts | join "/" }}
{{- end }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .defaultTag .image.tag) }}
{{- end }}
{{- end }}

{{- define "vineyard.imageRegistry" -}}
{{- dig "imageRegistry" "" (default dict .Values.global) }}
{{- end }}

{{- define "vineyard.image" -}}
{{- include "vineyard.imageRef" (dict "image" .Values.image "defaultTag" (printf "v%s" .Chart.AppVersion) "registry" (include "vineyard.imageRegistry" .)) }}
{{- end }}

{{- define "vineyard.etcd.image" -}}
{{- include "vineyard.imageRef" (dict "image" .Values.etcd.image "defaultTag" "" "registry" (include "vineyard.imageRegistry" .)) }}
{{- end }}

{{/*
An object's metadata.annotations block: its own annotations (.own: a map, or YAML text that is
kept as written) followed by commonAnnotations, whose keys the object's own override. Renders
nothing when both are empty. Call with (dict "ctx" $ "own" <map or text>).
*/}}
{{- define "vineyard.annotations" -}}
{{- $text := "" }}
{{- $own := dict }}
{{- if kindIs "string" .own }}
{{- $text = .own }}
{{- $own = fromYaml .own }}
{{- else if .own }}
{{- $own = .own }}
{{- $text = toYaml .own }}
{{- end }}
{{- $common := dict }}
{{- range $key, $value := .ctx.Values.commonAnnotations }}
{{- if not (hasKey $own $key) }}
{{- $_ := set $common $key $value }}
{{- end }}
{{- end }}
{{- if or $text $common -}}
annotations:
{{- with $text }}
{{ . | indent 2 }}
{{- end }}
{{- with $common }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The full name with a suffix, at most `max` characters (default 63): the full name is cut, never
the suffix, so objects told apart by their suffix stay apart however long the release name is.
Call with (dict "ctx" $ "suffix" "-rpc") or (dict "ctx" $ "suffix" "-etcd" "max" 52).
*/}}
{{- define "vineyard.suffixedName" -}}
{{- $max := int (default 63 .max) }}
{{- printf "%s%s" (include "vineyard.fullname" .ctx | trunc (int (sub $max (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{- define "vineyard.rpcServiceName" -}}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" "-rpc") }}
{{- end }}

{{/*
At most 52 characters: the StatefulSet controller labels its pods with
controller-revision-hash "<name>-<hash>", a label value of at most 63.
*/}}
{{- define "vineyard.etcd.fullname" -}}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" "-etcd" "max" 52) }}
{{- end }}

{{/* The client Service keeps upstream's name: release "vineyard" gives "etcd-for-vineyard". */}}
{{- define "vineyard.etcd.clientServiceName" -}}
{{- printf "etcd-for-%s" (include "vineyard.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "vineyard.etcd.headlessServiceName" -}}
{{- printf "%s-headless" (include "vineyard.etcd.fullname" .) }}
{{- end }}

{{/* A CronJob name has at most 52 characters: its Jobs append an 11-character timestamp. */}}
{{- define "vineyard.etcd.defragName" -}}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" "-etcd-defrag" "max" 52) }}
{{- end }}

{{/* The etcd client endpoints vineyardd uses, as a list. */}}
{{- define "vineyard.etcd.endpointList" -}}
{{- if .Values.etcd.enabled }}
{{- list (printf "http://%s.%s.svc.%s:%d" (include "vineyard.etcd.clientServiceName" .) .Release.Namespace .Values.clusterDomain (int .Values.etcd.clientPort)) | toJson }}
{{- else }}
{{- .Values.etcd.external.endpoints | toJson }}
{{- end }}
{{- end }}

{{- define "vineyard.etcd.endpoints" -}}
{{- include "vineyard.etcd.endpointList" . | fromJsonArray | join "," }}
{{- end }}

{{/*
The socket directory inside vineyardd. In persistentVolumeClaim mode one claim may be shared by
every node, so each node's vineyardd keeps its socket in a sub-directory named after the node.
*/}}
{{- define "vineyard.socket.dir" -}}
{{- if eq .Values.socket.volume.type "persistentVolumeClaim" }}
{{- printf "%s/$(MY_NODE_NAME)" .Values.socket.mountPath }}
{{- else }}
{{- .Values.socket.mountPath }}
{{- end }}
{{- end }}

{{- define "vineyard.socket.path" -}}
{{- printf "%s/%s" (include "vineyard.socket.dir" .) .Values.socket.fileName }}
{{- end }}

{{- define "vineyard.socket.claimName" -}}
{{- default (include "vineyard.suffixedName" (dict "ctx" . "suffix" "-socket")) .Values.socket.volume.persistentVolumeClaim.existingClaim }}
{{- end }}

{{/* Converts a quantity (512Mi, 1G, 1024, 100m) to bytes as a float, for comparisons. */}}
{{- define "vineyard.quantityBytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- float64 . }}
{{- else }}
{{- $q := toString . }}
{{- $number := regexFind "^[0-9.]+" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $units := dict "" 1 "m" 1e-3 "k" 1e3 "K" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 }}
{{- if not (hasKey $units $suffix) }}
{{- fail (printf "cannot read the quantity %q" $q) }}
{{- end }}
{{- mulf (float64 $number) (get $units $suffix) }}
{{- end }}
{{- end }}

{{/* Environment vineyardd reads for its instance identity (downward API). */}}
{{- define "vineyard.identityEnv" -}}
- name: MY_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: MY_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: MY_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- /* vineyardd advertises MY_HOST_NAME to RPC clients; the pod IP is what they can reach. */}}
- name: MY_HOST_NAME
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}
