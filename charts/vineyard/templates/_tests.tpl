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

{{/* Pod-level hardening of a test pod. Call with (dict "groups" <list>): the socket's group
for the pods that connect to it, nothing for the others. */}}
{{- define "vineyard.testPodSecurity" -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  {{- with .groups }}
  supplementalGroups: {{ toJson . }}
  {{- end }}
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Container hardening and resources of a test container. Call with (dict "memory" <limit>),
64Mi when not given. */}}
{{- define "vineyard.testContainerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
resources:
  requests: {cpu: 10m, memory: 16Mi}
  limits: {memory: {{ .memory | default "64Mi" }}}
{{- end }}

{{/*
The data path test (templates/tests/test-data-path.yaml, chart README "helm test"): writers on
sampled vineyardd nodes put an object over the socket, a reader in another pod reads it back
and deletes it. It renders when the test pods can reach the socket at all: with an emptyDir
socket only the containers bundled into the vineyard pod can.
*/}}
{{- define "vineyard.tests.dataPath" -}}
{{- if and .Values.tests.enabled .Values.tests.dataPath.enabled (ne .Values.socket.volume.type "emptyDir") }}true{{ end }}
{{- end }}

{{/*
How the reader finds the objects: "rpc" (the RPC Service: metadata, and the bytes from the
instance holding them), "etcd" (no RPC: the metadata where vineyardd keeps it, deletion through
the reader's own node's socket), or "" with metadata local to each node: no other pod can
resolve a name put on another node, so each writer reads its object back itself.
*/}}
{{- define "vineyard.tests.dataPath.reader" -}}
{{- if eq .Values.vineyard.meta "etcd" }}{{ ternary "rpc" "etcd" .Values.vineyard.rpc.enabled }}{{ end }}
{{- end }}

{{/* Why the data path test is left out or reduced, for NOTES (nothing when it runs in full). */}}
{{- define "vineyard.tests.dataPath.notes" -}}
{{- if and .Values.tests.enabled .Values.tests.dataPath.enabled }}
{{- if not (include "vineyard.tests.dataPath" .) }}

helm test: no data path test (tests.dataPath): with socket.volume.type=emptyDir only the
  containers bundled into the vineyard pod can reach the socket, and test pods are other pods.
{{- else if not (include "vineyard.tests.dataPath.reader" .) }}
  Data path: with vineyard.meta=local each node's metadata is its own, so no other pod can find an
  object put on another node: each writer reads its object back over a second connection.
{{- end }}
{{- end }}
{{- end }}

{{/* The size of each test object in bytes. */}}
{{- define "vineyard.tests.dataPath.bytes" -}}
{{- include "vineyard.quantityBytes" .Values.tests.dataPath.size | float64 | int64 }}
{{- end }}

{{/* A test container's memory limit: its own 64Mi plus the object, twice (written or read,
and the pattern it is compared with). */}}
{{- define "vineyard.tests.dataPath.memory" -}}
{{- add 67108864 (mul 2 (include "vineyard.tests.dataPath.bytes" . | int64)) }}
{{- end }}

{{/* The objects' vineyard names, without the writer's index: unique per namespace and release. */}}
{{- define "vineyard.tests.dataPath.namePrefix" -}}
vineyard-helm-test/{{ .Release.Namespace }}/{{ .Release.Name }}/data-path-
{{- end }}

{{/* Annotations of the two hooks: writers first (after the other tests, weight 0), then the
reader; both deleted when they succeed, their logs printed by helm either way. */}}
{{- define "vineyard.tests.dataPath.hook" -}}
helm.sh/hook: test
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
helm.sh/hook-output-log-policy: hook-succeeded,hook-failed
{{- end }}

{{/*
Where the writers and the reader run: on nodes running one of the release's vineyardd pods,
any pool's (they all carry these selector labels), and tolerating what any of them tolerates.
Writers prefer distinct nodes: with fewer vineyardd nodes than tests.dataPath.nodes, some node
gets two writers instead of a writer that can never be scheduled.
*/}}
{{- define "vineyard.tests.dataPath.placement" -}}
{{- $root := .root -}}
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "vineyard.selectorLabels" (dict "ctx" $root "component" "vineyardd") | nindent 12 }}
  {{- with .spreadLabel }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $root.Release.Name | quote }}
              vineyard.v6d.io/test: {{ . }}
  {{- end }}
{{- $tolerations := default list $root.Values.tolerations }}
{{- range $root.Values.pools }}
{{- $tolerations = concat $tolerations (default list .tolerations) }}
{{- end }}
{{- with $tolerations | uniq }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The socket as a test pod mounts it: volume, mount and the node name its path may hold. */}}
{{- define "vineyard.tests.dataPath.socketVolume" -}}
- name: vineyard-socket
  {{- if eq .Values.socket.volume.type "hostPath" }}
  hostPath:
    path: {{ include "vineyard.socket.hostPath" . }}
    type: Directory
  {{- else }}
  persistentVolumeClaim:
    claimName: {{ include "vineyard.socket.claimName" . | quote }}
    readOnly: true
  {{- end }}
{{- end }}

{{- define "vineyard.tests.dataPath.socketMount" -}}
- name: vineyard-socket
  mountPath: {{ .Values.socket.mountPath }}
  readOnly: true
{{- end }}

{{- define "vineyard.tests.dataPath.env" -}}
- name: MY_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: MY_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
