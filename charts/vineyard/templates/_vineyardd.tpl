{{/*
THE ONE LIST of the flags the chart manages, each with what sets it. vineyard.vineyardd.args
renders only flags listed here (a flag added there but not here fails every render), and
vineyardd.extraArgs may set none of them, in any spelling gflags accepts (--flag=value,
--flag value, -flag, --noflag), since gflags keeps the last value it reads. flagfile, fromenv and
tryfromenv are listed too: they read flags from places no check can see.
*/}}
{{- define "vineyard.vineyardd.managedFlags" -}}
socket: set socket.mountPath and socket.fileName instead
size: set vineyard.size instead (the memory limit is checked against it)
reserve_memory: set vineyard.reserveMemory instead
stream_threshold: set vineyard.streamThreshold instead
meta: set vineyard.meta instead
etcd_endpoint: set etcd.clientPort or etcd.external.endpoints instead
etcd_prefix: set vineyard.etcdPrefix instead
etcd_cmd: it points at a path that cannot exist, so vineyardd never launches an etcd of its own
meta_timeout: set vineyard.metaTimeout instead
rpc: set vineyard.rpc.enabled instead
rpc_socket_port: set vineyard.rpc.port instead (the container port and Service follow it)
spill_path: set vineyard.spill.path instead (vineyard.spill.volume backs it)
spill_lower_rate: set vineyard.spill.lowerRate instead
spill_upper_rate: set vineyard.spill.upperRate instead
compression: set vineyard.compression instead
logtostderr: logs go to stderr only, so no log file fills the pod's /tmp
flagfile: it reads flags from a file the chart cannot check
fromenv: it reads flags from the environment, where the chart cannot check them
tryfromenv: it reads flags from the environment, where the chart cannot check them
{{- end }}

{{/*
vineyardd's flags, one list item each, always in --flag=value form so no flag can be glued to
another or left without its value. Built as (name, value) pairs, then written out.
*/}}
{{- define "vineyard.vineyardd.args" -}}
{{- $v := .Values.vineyard -}}
{{- $flags := list (list "socket" (include "vineyard.socket.path" .)) }}
{{- with $v.size }}
{{- $flags = append $flags (list "size" .) }}
{{- end }}
{{- $flags = append $flags (list "reserve_memory" $v.reserveMemory) }}
{{- with get $v "streamThreshold" }}
{{- $flags = append $flags (list "stream_threshold" (int64 .)) }}
{{- end }}
{{- $flags = append $flags (list "meta" $v.meta) }}
{{- if eq $v.meta "etcd" }}
{{- $flags = append $flags (list "etcd_endpoint" (include "vineyard.etcd.endpoints" .)) }}
{{- $flags = append $flags (list "etcd_prefix" $v.etcdPrefix) }}
{{- /* THE TRAP: when etcd does not answer, vineyardd launches its own etcd from --etcd_cmd or
from PATH (the upstream image ships one) and carries on with a private, empty metadata store.
A path that cannot exist makes it fail instead, so the pod restarts and never reports Ready. */}}
{{- $flags = append $flags (list "etcd_cmd" "/nonexistent/vineyard-never-launches-etcd") }}
{{- end }}
{{- $flags = append $flags (list "meta_timeout" $v.metaTimeout) }}
{{- $flags = append $flags (list "rpc" $v.rpc.enabled) }}
{{- if $v.rpc.enabled }}
{{- $flags = append $flags (list "rpc_socket_port" $v.rpc.port) }}
{{- end }}
{{- if $v.spill.path }}
{{- $flags = append $flags (list "spill_path" $v.spill.path) }}
{{- $flags = append $flags (list "spill_lower_rate" (float64 $v.spill.lowerRate)) }}
{{- $flags = append $flags (list "spill_upper_rate" (float64 $v.spill.upperRate)) }}
{{- end }}
{{- $flags = append $flags (list "compression" $v.compression) }}
{{- /* glog writes a log file per severity into $TMPDIR (the 64Mi /tmp emptyDir) besides
stderr; a full /tmp evicts the pod and drops every object in memory. --logtostderr sends every
line to stderr instead of files (what kubectl logs shows, rotated by the kubelet), so no file is
written at all (measured with vineyardd 0.24.2 under 300 put/get requests: one log file without
it, none with it, the same lines on stderr). --alsologtostderr and --stderrthreshold copy lines
to stderr but keep writing the files; --log_dir only moves them. */}}
{{- $flags = append $flags (list "logtostderr" true) }}
{{- $managed := include "vineyard.vineyardd.managedFlags" . | fromYaml }}
{{- range $i, $flag := $flags }}
{{- if not (hasKey $managed (first $flag)) }}
{{- fail (printf "chart bug: --%s is rendered but missing from vineyard.vineyardd.managedFlags" (first $flag)) }}
{{- end }}
{{- if $i }}{{ "\n" }}{{ end -}}
- --{{ first $flag }}={{ last $flag }}
{{- end }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Problems with vineyard.extraArgs, one line each: a managed flag in any spelling, or a value item
that follows no flag (gflags would take it for a program argument). Read like gflags reads argv:
one or two dashes, the name up to "=", dashes in a name taken as underscores, "no" + the name of
a boolean. An item that does not start with "-" is the value of the flag before it.
*/}}
{{- define "vineyard.vineyardd.extraArgsProblems" -}}
{{- $managed := include "vineyard.vineyardd.managedFlags" . | fromYaml }}
{{- $problems := list }}
{{- $takesValue := false }}
{{- range $i, $arg := .Values.vineyard.extraArgs }}
{{- $arg = toString $arg }}
{{- if hasPrefix "-" $arg }}
{{- $name := regexReplaceAll "=.*$" (regexReplaceAll "^--?" $arg "") "" | replace "-" "_" }}
{{- $flag := "" }}
{{- if hasKey $managed $name }}
{{- $flag = $name }}
{{- else if and (hasPrefix "no" $name) (hasKey $managed (trimPrefix "no" $name)) }}
{{- $flag = trimPrefix "no" $name }}
{{- end }}
{{- if $flag }}
{{- $problems = append $problems (printf "vineyard.extraArgs[%d] (%q) sets --%s, which the chart manages: %s" $i $arg $flag (get $managed $flag)) }}
{{- end }}
{{- $takesValue = not (contains "=" $arg) }}
{{- else }}
{{- if not $takesValue }}
{{- $problems = append $problems (printf "vineyard.extraArgs[%d] (%q) is not a flag and no flag before it waits for a value: write --flag=value" $i $arg) }}
{{- end }}
{{- $takesValue = false }}
{{- end }}
{{- end }}
{{- toJson $problems }}
{{- end }}

{{/*
Prepares the socket directory before vineyardd starts: removes a stale socket left by a killed
pod and applies the access gate (owner vineyardd, group socket.access.groupId, mode
socket.access.mode). On a hostPath the directory belongs to root, so this one container runs as
root with only CHOWN and FOWNER; with a claim or an emptyDir, fsGroup already gives the group and
it runs as vineyardd's user.
*/}}
{{- define "vineyard.initContainer.socketDir" -}}
{{- $hostPath := eq .Values.socket.volume.type "hostPath" }}
{{- $gate := ne .Values.socket.volume.type "emptyDir" -}}
- name: prepare-socket-dir
  image: {{ include "vineyard.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - >-
      set -e;
      mkdir -p "{{ include "vineyard.socket.dir" . }}";
      {{- if $hostPath }}
      {{- /* Root without DAC_OVERRIDE cannot enter the gated directory a previous pod left
      (owner vineyardd, mode 0750): take it back first, or a restarted pod fails here. */}}
      chown 0 "{{ include "vineyard.socket.dir" . }}";
      {{- end }}
      {{- if and $gate .Values.pools }}
      {{- /* With pools a node can change DaemonSet (a pool added or removed, a node
      relabelled): the old pod may still be stopping when the new one starts. vineyardd deletes
      its socket path when it exits, which would be the new vineyardd's socket by then, so wait
      for the old one to go (a socket a killed vineyardd left stays, and is removed after). */}}
      [ -S "{{ include "vineyard.socket.path" . }}" ] && echo "waiting up to {{ .Values.terminationGracePeriodSeconds }} s for the vineyardd listening at {{ include "vineyard.socket.path" . }} to stop";
      timeout {{ .Values.terminationGracePeriodSeconds }} sh -c 'while [ -S "$0" ]; do sleep 1; done' "{{ include "vineyard.socket.path" . }}" || true;
      {{- end }}
      rm -f "{{ include "vineyard.socket.path" . }}";
      {{- if $hostPath }}
      chown {{ .Values.podSecurityContext.runAsUser | default 0 }}:{{ .Values.socket.access.groupId }} "{{ include "vineyard.socket.dir" . }}";
      {{- end }}
      {{- if $gate }}
      chmod {{ .Values.socket.access.mode }} "{{ include "vineyard.socket.dir" . }}";
      {{- end }}
      ls -ld "{{ include "vineyard.socket.dir" . }}"
  env:
    {{- include "vineyard.identityEnv" . | nindent 4 }}
  securityContext:
    {{- if $hostPath }}
    runAsUser: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
      add: [CHOWN, FOWNER]
    {{- else }}
    {{- toYaml .Values.securityContext | nindent 4 }}
    {{- end }}
  volumeMounts:
    - name: vineyard-socket
      mountPath: {{ .Values.socket.mountPath }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
{{- end }}

{{/*
Holds vineyardd back until etcd answers its health endpoint, so vineyardd never reaches the
point where it would look for an etcd of its own. Tries every 0.2 s, each cut at 2 s (a ClusterIP
kube-proxy has not programmed yet drops the connection instead of refusing it), and says so every
10th try, so a long etcd outage logs a line every few seconds. What it waits for is etcd's
endpoint reaching kube-proxy: on the real node the loop ends about 1.5 s after etcd is Ready,
with 1 s pauses as with 0.2 s (bench/results.md, "Time to Ready on the real node").
*/}}
{{- define "vineyard.initContainer.waitForEtcd" -}}
- name: wait-for-etcd
  image: {{ include "vineyard.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - sh
    - -c
    - >-
      n=0; until for endpoint in $(echo "$ETCD_ENDPOINTS" | tr ',' ' '); do
      timeout 2 wget -q -O - "$endpoint/health?exclude=NOSPACE" 2>/dev/null | grep -q '"health":"true"' && exit 0;
      done; false; do [ $((n % 10)) -eq 0 ] && echo "waiting for etcd at $ETCD_ENDPOINTS";
      n=$((n + 1)); sleep 0.2; done
  env:
    - name: ETCD_ENDPOINTS
      value: {{ include "vineyard.etcd.endpoints" . | quote }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
{{- end }}

{{/* The socket volume of the chosen mode. */}}
{{- define "vineyard.socketVolume" -}}
- name: vineyard-socket
  {{- $vol := .Values.socket.volume }}
  {{- if eq $vol.type "hostPath" }}
  hostPath:
    path: {{ include "vineyard.socket.hostPath" . }}
    type: DirectoryOrCreate
  {{- else if eq $vol.type "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ include "vineyard.socket.claimName" . | quote }}
  {{- else }}
  emptyDir:
    {{- with $vol.emptyDir.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: 1Mi
  {{- end }}
{{- end }}

{{/*
The socket probes' test: vineyardd is listening on its socket. A socket *file* outlives a daemon
that crashed (SIGSEGV leaves it behind, and a hostPath keeps it across container restarts), so
the probe asks the kernel instead: /proc/net/unix lists a listening (flags 00010000, state 01)
stream socket bound at this path only while a live process in the pod's network namespace holds
it. Probes get no $(VAR) expansion from the kubelet, so the shell expands the node name.
*/}}
{{- define "vineyard.probe.socketPattern" -}}
{{- $path := include "vineyard.socket.path" . | replace "$(MY_NODE_NAME)" "${MY_NODE_NAME}" | replace "." "\\." -}}
" 00010000 0001 01 +[0-9]+ {{ $path }}$"
{{- end }}

{{- define "vineyard.probe.socketListening" -}}
grep -qE {{ include "vineyard.probe.socketPattern" . }} /proc/net/unix
{{- end }}

{{- define "vineyard.probe.socket" -}}
exec:
  command:
    - sh
    - -c
    - {{ include "vineyard.probe.socketListening" . }}
{{- end }}

{{/*
The liveness probe: the socket test, and with etcd metadata a check that etcd still holds what
vineyardd registered. vineyardd 0.24.2 never registers again when its etcd comes back empty (a
member on emptyDir replaced, or every member's volume lost): it stays up, its instance unknown to
the others, its names unresolvable cluster-wide. etcd's cluster id cannot tell (it is derived
from the member names, URLs and token, so an empty member gets the same one back), but etcd's
revision only ever grows, and a vineyardd heartbeat moves it 18 times a minute. So each check
keeps the revision it saw for this daemon (keyed by its socket's inode, new at every start) in
/tmp (an emptyDir, so the key matters: the file outlives a container restart), and fails while etcd answers with a lower one: the kubelet restarts vineyardd,
which registers afresh. An etcd that does not answer passes: that is etcd's outage, and
restarting every vineyardd for it would only drop their memory.
*/}}
{{- define "vineyard.probe.liveness" -}}
{{- if eq .Values.vineyard.meta "etcd" }}
exec:
  command:
    - sh
    - -c
    - >-
      line=$(grep -E {{ include "vineyard.probe.socketPattern" . }} /proc/net/unix) || exit 1;
      set -- $line; inode=$7; rev=;
      for endpoint in {{ include "vineyard.etcd.endpointList" . | fromJsonArray | join " " }}; do
      rev=$(timeout 2 wget -q -O - --post-data='{}' "$endpoint/v3/maintenance/status" 2>/dev/null | sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p');
      [ -n "$rev" ] && break; done;
      [ -n "$rev" ] || exit 0;
      seen=${TMPDIR:-/tmp}/.vineyard-etcd-revision; seen_inode=; [ -f $seen ] && read -r seen_inode seen_rev < $seen;
      if [ "$seen_inode" = "$inode" ] && [ "$rev" -lt "$seen_rev" ]; then
      echo "etcd lost vineyard's metadata (revision $seen_rev -> $rev): restart to register again"; exit 1; fi;
      echo "$inode $rev" > $seen
timeoutSeconds: {{ add 3 (mul 2 (len (include "vineyard.etcd.endpointList" . | fromJsonArray))) }}
{{- else if .Values.vineyard.rpc.enabled }}
{{- /* No etcd to check: the RPC port, served by the same process; a probe distinct from the
readiness one, so a failing socket takes the pod out of Service before the kubelet kills it. */}}
tcpSocket:
  port: vineyard-rpc
{{- else }}
{{- include "vineyard.probe.socket" . }}
{{- end }}
{{- end }}

{{/*
A workload container bundled into the vineyard pod: the user's container spec plus the socket
volume and VINEYARD_IPC_SOCKET, which vineyard.connect() reads when called without arguments.
Call with (dict "ctx" $ "container" <sidecar>).
*/}}
{{- define "vineyard.sidecar" -}}
{{- $c := deepCopy .container }}
{{- $env := prepend (default list $c.env) (dict "name" "VINEYARD_IPC_SOCKET" "value" (include "vineyard.socket.path" .ctx)) }}
{{- $mounts := prepend (default list $c.volumeMounts) (dict "name" "vineyard-socket" "mountPath" .ctx.Values.socket.mountPath "readOnly" true) }}
{{- $_ := set $c "env" $env }}
{{- $_ := set $c "volumeMounts" $mounts }}
{{- if not $c.securityContext }}
{{- $_ := set $c "securityContext" .ctx.Values.securityContext }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
