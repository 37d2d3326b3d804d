{{/*
extraEnv, extraVolumes, extraVolumeMounts and extraInitContainers go into vineyardd's pod as
written (the schema types them); what could collide with the chart's own pod is refused here,
with the value named, rather than by the API server after helm has started: the variables
vineyardd's identity and socket path come from, the chart's volumes and mount paths, and the
names of the chart's containers.
*/}}
{{- define "vineyard.extras.problems" -}}
{{- $problems := list }}
{{- $identity := list "MY_NODE_NAME" "MY_POD_NAME" "MY_POD_NAMESPACE" "MY_HOST_NAME" }}
{{- range $i, $env := .Values.extraEnv }}
{{- if has $env.name $identity }}
{{- $problems = append $problems (printf "extraEnv[%d] (%s) is set by the chart (vineyardd's identity and socket path come from it): choose another name" $i $env.name) }}
{{- end }}
{{- end }}
{{- $volumes := list "vineyard-socket" "tmp" }}
{{- if .Values.vineyard.spill.path }}
{{- $volumes = append $volumes "spill" }}
{{- end }}
{{- $chartVolumes := $volumes }}
{{- range $i, $volume := .Values.extraVolumes }}
{{- if has $volume.name $chartVolumes }}
{{- $problems = append $problems (printf "extraVolumes[%d] (%s) is the name of one of the chart's volumes (%s): choose another name" $i $volume.name (join ", " $chartVolumes)) }}
{{- else if has $volume.name $volumes }}
{{- $problems = append $problems (printf "extraVolumes[%d] (%s) is named like an earlier extra volume" $i $volume.name) }}
{{- end }}
{{- $volumes = append $volumes $volume.name }}
{{- end }}
{{- $paths := list .Values.socket.mountPath "/tmp" }}
{{- with .Values.vineyard.spill.path }}
{{- $paths = append $paths . }}
{{- end }}
{{- range $i, $mount := .Values.extraVolumeMounts }}
{{- if not (has $mount.name $volumes) }}
{{- $problems = append $problems (printf "extraVolumeMounts[%d] mounts volume %q, which is neither in extraVolumes nor one of the chart's (%s)" $i $mount.name (join ", " $chartVolumes)) }}
{{- end }}
{{- if has (clean $mount.mountPath) $paths }}
{{- $problems = append $problems (printf "extraVolumeMounts[%d] mounts at %s, where vineyardd already has a volume (the socket's, /tmp or the spill directory)" $i $mount.mountPath) }}
{{- end }}
{{- $paths = append $paths (clean $mount.mountPath) }}
{{- end }}
{{- $containers := list "vineyardd" "prepare-socket-dir" "wait-for-etcd" "prepare-spill-dir" }}
{{- range .Values.sidecars }}
{{- $containers = append $containers .name }}
{{- end }}
{{- range $i, $container := .Values.extraInitContainers }}
{{- if has $container.name $containers }}
{{- $problems = append $problems (printf "extraInitContainers[%d] (%s) is named like a container of the chart or a sidecar: choose another name" $i $container.name) }}
{{- end }}
{{- $containers = append $containers $container.name }}
{{- end }}
{{- toJson $problems }}
{{- end }}
