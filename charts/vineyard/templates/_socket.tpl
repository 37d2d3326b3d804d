{{/*
System directories a hostPath socket volume never mounts whole: the pod would see the node's
other sockets and files there (containerd's, the kubelet's, D-Bus ...). A socket.volume.hostPath
.path naming one of them gets a directory of its own inside it instead,
<path>/vineyard/<namespace>/<release>, so `--set socket.volume.hostPath.path=/var/run` (or
vineyard_helm's start_vineyardd(socket="/var/run/vineyard.sock")) mounts
/var/run/vineyard/<namespace>/<release>. The DaemonSet's vineyard.v6d.io/socket-host-path
annotation and the NOTES give the directory used.
*/}}
{{- define "vineyard.socket.systemDirectories" -}}
{{- list "/" "/bin" "/boot" "/dev" "/dev/shm" "/etc" "/etc/kubernetes" "/home" "/lib" "/lib64" "/media" "/mnt" "/opt" "/proc" "/root" "/run" "/run/containerd" "/run/user" "/sbin" "/srv" "/sys" "/tmp" "/usr" "/usr/lib" "/usr/local" "/usr/share" "/var" "/var/lib" "/var/lib/kubelet" "/var/log" "/var/run" "/var/tmp" | toJson }}
{{- end }}

{{/* The host directory of the socket in hostPath mode; "" means one unique per namespace and release. */}}
{{- define "vineyard.socket.hostPath" -}}
{{- $path := .Values.socket.volume.hostPath.path }}
{{- if not $path }}
{{- printf "/var/run/vineyard/%s/%s" .Release.Namespace .Release.Name }}
{{- else if has (clean $path) (include "vineyard.socket.systemDirectories" . | fromJsonArray) }}
{{- printf "%s/vineyard/%s/%s" (clean $path | trimSuffix "/") .Release.Namespace .Release.Name }}
{{- else }}
{{- clean $path }}
{{- end }}
{{- end }}
