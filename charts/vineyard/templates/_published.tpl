{{/*
What the chart publishes for the tools that drive it (vineyard_helm's status, scripts, operators):
where workload pods find the vineyardd socket, as annotations on the DaemonSet. Tools read these
instead of working the location out from the pod template, so the socket layout can change here
without breaking them. Every key is always present; those that do not apply to the socket's
volume type are "".

  socket-volume-type     hostPath, persistentVolumeClaim or emptyDir
  socket-mount-path      where the socket volume is mounted in vineyardd and the sidecars
  socket-path            the socket file inside vineyardd and the sidecars
  socket-path-in-volume  the socket file relative to the volume's root
  socket-host-path       hostPath: the directory holding the socket on every node
  socket-claim           persistentVolumeClaim: the claim to mount in workload pods

In persistentVolumeClaim mode each node's vineyardd keeps its socket in a sub-directory named
after the node: the paths then contain the placeholder <node>.

A node pool's DaemonSet (values `pools`) publishes the same socket keys (the socket is where it
is on every node, whatever the node's pool) and one more:

  pool                   the pool's name; absent on the release's own DaemonSet
*/}}
{{- define "vineyard.published.annotations" -}}
{{- $type := .Values.socket.volume.type }}
{{- $path := include "vineyard.socket.path" . | replace "$(MY_NODE_NAME)" "<node>" -}}
vineyard.v6d.io/socket-volume-type: {{ $type | quote }}
vineyard.v6d.io/socket-mount-path: {{ .Values.socket.mountPath | quote }}
vineyard.v6d.io/socket-path: {{ $path | quote }}
vineyard.v6d.io/socket-path-in-volume: {{ trimPrefix (printf "%s/" .Values.socket.mountPath) $path | quote }}
vineyard.v6d.io/socket-host-path: {{ ternary (include "vineyard.socket.hostPath" .) "" (eq $type "hostPath") | quote }}
vineyard.v6d.io/socket-claim: {{ ternary (include "vineyard.socket.claimName" .) "" (eq $type "persistentVolumeClaim") | quote }}
{{- with .Pool }}
vineyard.v6d.io/pool: {{ .name | quote }}
{{- end }}
{{- end }}
