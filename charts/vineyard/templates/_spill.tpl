{{/*
Spilling (vineyard.spill): vineyardd writes objects it evicts from memory as files named by
object ID into --spill_path, reads them back on access and deletes the whole directory when it
stops (measured with vineyardd 0.24.2; it does not empty the directory when it starts, so files
of a killed vineyardd would stay). vineyard.spill.volume picks what backs the directory:

  emptyDir               the node's disk, at most spill.sizeLimit, gone with the pod
  hostPath               <base>/vineyard-spill/<namespace>/<release> on each node
  persistentVolumeClaim  an existing claim, mounted at vineyard-spill/<release>/<node name>
                         (subPathExpr): a DaemonSet has no volumeClaimTemplates, so one shared
                         claim holds a directory per node
  ephemeral              a claim per vineyardd pod from a template (a generic ephemeral volume):
                         created with the pod and deleted with it, like an emptyDir on a disk of
                         its own

The kept directories (hostPath, persistentVolumeClaim) belong to root when the kubelet creates
them and may hold a killed vineyardd's files: init container prepare-spill-dir empties them and
gives them to vineyardd's user. It only ever empties the directory the chart named, never a
directory a value names: hostPath.path is the base below which the chart's own directory lives.
*/}}

{{/* The spill volume's type, or "" when spilling is off. */}}
{{- define "vineyard.spill.type" -}}
{{- if .Values.vineyard.spill.path }}
{{- .Values.vineyard.spill.volume.type }}
{{- end }}
{{- end }}

{{- define "vineyard.spill.hostPath" -}}
{{- printf "%s/vineyard-spill/%s/%s" (clean (default "/var/lib" .Values.vineyard.spill.volume.hostPath.path) | trimSuffix "/") .Release.Namespace .Release.Name }}
{{- end }}

{{/* In persistentVolumeClaim mode, each node's directory inside the claim (for subPathExpr). */}}
{{- define "vineyard.spill.subPathExpr" -}}
{{- printf "vineyard-spill/%s/$(MY_NODE_NAME)" .Release.Name }}
{{- end }}

{{/* Whether the spill directory outlives the pod and must be prepared by prepare-spill-dir. */}}
{{- define "vineyard.spill.kept" -}}
{{- if has (include "vineyard.spill.type" .) (list "hostPath" "persistentVolumeClaim") }}true{{ end }}
{{- end }}

{{- define "vineyard.spill.volume" -}}
{{- $type := include "vineyard.spill.type" . }}
{{- $volume := .Values.vineyard.spill.volume }}
{{- if eq $type "emptyDir" -}}
- name: spill
  emptyDir:
    sizeLimit: {{ .Values.vineyard.spill.sizeLimit }}
{{- else if eq $type "hostPath" -}}
- name: spill
  hostPath:
    path: {{ include "vineyard.spill.hostPath" . }}
    type: DirectoryOrCreate
{{- else if eq $type "persistentVolumeClaim" -}}
- name: spill
  persistentVolumeClaim:
    claimName: {{ $volume.persistentVolumeClaim.existingClaim | quote }}
{{- else if eq $type "ephemeral" -}}
{{- $claim := $volume.ephemeral }}
- name: spill
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- include "vineyard.selectorLabels" (dict "ctx" $ "component" "vineyardd") | nindent 10 }}
      spec:
        accessModes:
          {{- toYaml $claim.accessModes | nindent 10 }}
        {{- if and (hasKey $claim "storageClass") (ne $claim.storageClass nil) }}
        storageClassName: {{ $claim.storageClass | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $claim.size }}
{{- end }}
{{- end }}

{{- define "vineyard.spill.volumeMount" -}}
{{- with include "vineyard.spill.type" . -}}
- name: spill
  mountPath: {{ $.Values.vineyard.spill.path }}
  {{- if eq . "persistentVolumeClaim" }}
  subPathExpr: {{ include "vineyard.spill.subPathExpr" $ }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
An ephemeral claim is new with every pod, so fsGroup makes it vineyardd's (off hostPath socket
mode fsGroup is set already, to the socket's group): no root container is needed for it.
*/}}
{{- define "vineyard.spill.fsGroup" -}}
{{- $pod := .Values.podSecurityContext }}
{{- if and (eq (include "vineyard.spill.type" .) "ephemeral") (not (hasKey $pod "fsGroup")) (hasKey $pod "runAsGroup") -}}
fsGroup: {{ $pod.runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
{{- end }}
{{- end }}

{{/*
Empties the kept spill directory and gives it to vineyardd's user, before vineyardd starts (and,
with pools, after vineyard.initContainer.socketDir waited for another vineyardd on the node to
stop: that one deletes its spill files when it exits). Root, with CHOWN alone: it takes the
directory first, so it needs no other capability to empty it.
*/}}
{{- define "vineyard.spill.initContainer" -}}
{{- if include "vineyard.spill.kept" . }}
{{- $path := .Values.vineyard.spill.path -}}
- name: prepare-spill-dir
  image: {{ include "vineyard.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - >-
      set -e;
      chown 0 "{{ $path }}";
      rm -rf "{{ $path }}"/*;
      chmod 0700 "{{ $path }}";
      chown {{ .Values.podSecurityContext.runAsUser | default 0 }}:{{ .Values.podSecurityContext.runAsGroup | default 0 }} "{{ $path }}";
      ls -ld "{{ $path }}"
  env:
    {{- include "vineyard.identityEnv" . | nindent 4 }}
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
      add: [CHOWN]
  volumeMounts:
    {{- include "vineyard.spill.volumeMount" . | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
{{- end }}
{{- end }}

{{/*
What the chart refuses about spilling, as a JSON list: a claim type without the claim, a spill
directory on the socket's mount path or /tmp, and a spill host directory that is, contains or
lies inside the socket's host directory (emptying one would delete the other's files).
*/}}
{{- define "vineyard.spill.problems" -}}
{{- $problems := list }}
{{- $type := include "vineyard.spill.type" . }}
{{- $spill := .Values.vineyard.spill }}
{{- if $type }}
{{- if and (eq $type "persistentVolumeClaim") (not $spill.volume.persistentVolumeClaim.existingClaim) }}
{{- $problems = append $problems "vineyard.spill.volume.type persistentVolumeClaim needs vineyard.spill.volume.persistentVolumeClaim.existingClaim: the claim to spill into (a DaemonSet cannot create one per node; type ephemeral gives each pod a claim of its own)" }}
{{- end }}
{{- if has (clean $spill.path) (list (clean .Values.socket.mountPath) "/tmp") }}
{{- $problems = append $problems (printf "vineyard.spill.path (%s) is where vineyardd already has a volume (the socket's mount path or /tmp): choose another directory" $spill.path) }}
{{- end }}
{{- if and (eq $type "hostPath") (eq .Values.socket.volume.type "hostPath") }}
{{- $spillDir := include "vineyard.spill.hostPath" . }}
{{- $socketDir := include "vineyard.socket.hostPath" . }}
{{- if or (eq $spillDir $socketDir) (hasPrefix (printf "%s/" $socketDir) $spillDir) (hasPrefix (printf "%s/" $spillDir) $socketDir) }}
{{- $problems = append $problems (printf "the spill directory %s (vineyard.spill.volume.hostPath.path) and the socket directory %s (socket.volume.hostPath.path) overlap: emptying one would delete the other's files; choose directories apart" $spillDir $socketDir) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $problems }}
{{- end }}

{{/* The NOTES line on spilling (nothing when it is off). */}}
{{- define "vineyard.spill.notes" -}}
{{- $type := include "vineyard.spill.type" . }}
{{- $spill := .Values.vineyard.spill }}
{{- if $type }}
Spill:    {{ $spill.path }} above {{ $spill.upperRate }} x size, down to {{ $spill.lowerRate }} x size, on
{{- if eq $type "emptyDir" }} an emptyDir of at most {{ $spill.sizeLimit }} (the node's disk)
{{- else if eq $type "hostPath" }} {{ include "vineyard.spill.hostPath" . }} on each node
{{- else if eq $type "persistentVolumeClaim" }} claim {{ $spill.volume.persistentVolumeClaim.existingClaim }}, in {{ include "vineyard.spill.subPathExpr" . | replace "$(MY_NODE_NAME)" "<node>" }}
{{- else }} a claim of {{ $spill.volume.ephemeral.size }} per vineyardd pod, deleted with it
{{- end }}.
{{- if include "vineyard.spill.kept" . }}
          prepare-spill-dir empties it when vineyardd starts (it runs as root with CHOWN).
{{- end }}
{{- end }}
{{- end }}
