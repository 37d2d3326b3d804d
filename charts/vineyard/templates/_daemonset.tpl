{{/*
One vineyardd DaemonSet: the release's own (templates/daemonset.yaml renders it for every node
of no pool) or a node pool's. Call with the context vineyard.pool.context fills: the root's
Release, Chart and Capabilities, the Values this DaemonSet sees (a pool's overlaid on the
top-level ones) and Pool (the pool, nil for the release's own DaemonSet).
*/}}
{{- define "vineyard.vineyardd.daemonset" -}}
{{- $selector := dict "ctx" $ "component" "vineyardd" }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "vineyard.vineyardd.name" . | quote }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "vineyard.componentLabels" $selector | nindent 4 }}
    {{- with include "vineyard.pool.label" . }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- include "vineyard.annotations" (dict "ctx" $ "own" (include "vineyard.published.annotations" .)) | nindent 2 }}
spec:
  selector:
    matchLabels:
      {{- include "vineyard.selectorLabels" $selector | nindent 6 }}
      {{- with include "vineyard.pool.label" . }}
      {{- . | nindent 6 }}
      {{- end }}
  updateStrategy:
    type: {{ .Values.updateStrategy.type }}
    {{- if eq .Values.updateStrategy.type "RollingUpdate" }}
    rollingUpdate:
      maxUnavailable: {{ .Values.updateStrategy.rollingUpdate.maxUnavailable }}
    {{- end }}
  template:
    metadata:
      labels:
        {{- include "vineyard.componentLabels" $selector | nindent 8 }}
        {{- with include "vineyard.pool.label" . }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- /* Makes the running configuration visible on each pod and rolls pods when it changes. */}}
        checksum/config: {{ include "vineyard.vineyardd.args" . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "vineyard.serviceAccountName" . | quote }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      enableServiceLinks: false
      {{- if .Values.hostNetwork }}
      {{- /* On the node's network the pod gets the node's resolv.conf, which cannot resolve
      Service names such as etcd's; ClusterFirstWithHostNet keeps the cluster's DNS. */}}
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
        {{- if ne .Values.socket.volume.type "hostPath" }}
        fsGroup: {{ .Values.socket.access.groupId }}
        fsGroupChangePolicy: OnRootMismatch
        {{- else }}
        {{- with include "vineyard.spill.fsGroup" . }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
      initContainers:
        {{- include "vineyard.initContainer.socketDir" . | nindent 8 }}
        {{- if eq .Values.vineyard.meta "etcd" }}
        {{- include "vineyard.initContainer.waitForEtcd" . | nindent 8 }}
        {{- end }}
        {{- with include "vineyard.spill.initContainer" . }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraInitContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      containers:
        - name: vineyardd
          image: {{ include "vineyard.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command: ["vineyardd"]
          args:
            {{- include "vineyard.vineyardd.args" . | nindent 12 }}
          env:
            {{- include "vineyard.identityEnv" . | nindent 12 }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .Values.vineyard.rpc.enabled }}
          ports:
            - name: vineyard-rpc
              containerPort: {{ .Values.vineyard.rpc.port }}
              {{- if .Values.hostNetwork }}
              {{- /* What the API server would default it to on the node's network; written out
              so that the scheduler's port check (one pod per node and port) is plain to read. */}}
              hostPort: {{ .Values.vineyard.rpc.port }}
              {{- end }}
              protocol: TCP
          {{- end }}
          startupProbe:
            {{- include "vineyard.probe.socket" . | nindent 12 }}
            periodSeconds: {{ .Values.probes.startup.periodSeconds }}
            failureThreshold: {{ .Values.probes.startup.failureThreshold }}
          readinessProbe:
            {{- include "vineyard.probe.socket" . | nindent 12 }}
            periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
            failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
          livenessProbe:
            {{- include "vineyard.probe.liveness" . | nindent 12 }}
            periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
            failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
          resources:
            {{- include "vineyard.vineyardd.resources" . | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: vineyard-socket
              mountPath: {{ .Values.socket.mountPath }}
            {{- /* Scratch space for the daemon (glog writes no files: --logtostderr); the root
            filesystem stays read-only. */}}
            - name: tmp
              mountPath: /tmp
            {{- with include "vineyard.spill.volumeMount" . }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- range .Values.sidecars }}
        {{- include "vineyard.sidecar" (dict "ctx" $ "container" .) | nindent 8 }}
        {{- end }}
        {{- with include "vineyard.metrics.container" . }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumes:
        {{- include "vineyard.socketVolume" . | nindent 8 }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with include "vineyard.spill.volume" . }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}

{{/* The DaemonSet's name: the full name for the release's own, "<fullname>-<pool>" for a pool. */}}
{{- define "vineyard.vineyardd.name" -}}
{{- if .Pool }}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" (printf "-%s" .Pool.name)) }}
{{- else }}
{{- include "vineyard.fullname" . }}
{{- end }}
{{- end }}

{{/*
A pool's label, on its DaemonSet, in its selector and on its pods: the release's own
DaemonSet's selector (name, instance, component) also matches a pool's pods, since the RPC
Service selects them all by it, but each DaemonSet adopts only pods it created itself.
*/}}
{{- define "vineyard.pool.label" -}}
{{- with .Pool -}}
vineyard.v6d.io/pool: {{ .name | quote }}
{{- end }}
{{- end }}

{{/* The NOTES lines on the host network (nothing without it). */}}
{{- define "vineyard.hostNetwork.notes" -}}
{{- if .Values.hostNetwork }}
Network:  host network (PodSecurity privileged).
{{- if .Values.vineyard.rpc.enabled }} The RPC port {{ .Values.vineyard.rpc.port }} is open on every vineyardd node's
          addresses to whoever reaches them, and no NetworkPolicy covers it: anyone who connects
          can read and delete objects. Firewall the port on the nodes (chart README, "Host network").
{{- end }}
{{- if and .Values.networkPolicy.enabled (include "vineyard.etcd.deployed" .) }}
          etcd's NetworkPolicy admits vineyardd by its pod labels, which traffic from the host
          network does not carry under every CNI: if vineyardd waits for etcd, add the nodes'
          addresses to networkPolicy.etcdFrom (an ipBlock).
{{- end }}
{{- end }}
{{- end }}
