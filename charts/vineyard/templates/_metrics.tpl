{{/*
Prometheus metrics (values `metrics`, chart README "Metrics"). vineyardd 0.24.2 serves no
metrics itself, and its --metrics flag logs ~390 bytes per put, so an exporter container beside
it (tools/exporter) asks for its status over the socket at each scrape. etcd serves /metrics on
its client port. Two headless Services list the targets; their names are the Prometheus job
names the alerts and the dashboard select: "<fullname>-metrics" and "<fullname>-etcd-metrics".
Both publish not-ready addresses: a vineyardd that stopped answering, or an etcd member without
a leader (whose /health fails), must still be scraped for its alert to fire.
*/}}

{{- define "vineyard.metrics.serviceName" -}}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" "-metrics") }}
{{- end }}

{{- define "vineyard.metrics.etcdServiceName" -}}
{{- include "vineyard.suffixedName" (dict "ctx" . "suffix" "-etcd-metrics") }}
{{- end }}

{{/* Whether etcd is scraped: metrics on and the chart deploys etcd (an external one is not ours). */}}
{{- define "vineyard.metrics.etcdScraped" -}}
{{- if and .Values.metrics.enabled (include "vineyard.etcd.deployed" .) }}true{{ end }}
{{- end }}

{{- define "vineyard.metrics.operatorAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* The exporter image; the tag defaults to the chart's version, the release it shipped with. */}}
{{- define "vineyard.metrics.image" -}}
{{- include "vineyard.imageRef" (dict "image" .Values.metrics.exporter.image "defaultTag" .Chart.Version "registry" (include "vineyard.imageRegistry" .)) }}
{{- end }}

{{/*
The exporter container of a vineyardd pod (nothing when metrics are off). Call with the
DaemonSet's context (vineyard.pool.context): every pool's pods get one. Same user and socket
mount as vineyardd, read-only: connecting to a socket needs no write access to its file system.
No readiness probe: a pod is Ready when vineyardd is, whatever the exporter does.
*/}}
{{- define "vineyard.metrics.container" -}}
{{- if .Values.metrics.enabled }}
{{- $exporter := .Values.metrics.exporter -}}
- name: metrics-exporter
  image: {{ include "vineyard.metrics.image" . | quote }}
  imagePullPolicy: {{ $exporter.image.pullPolicy }}
  args:
    - --socket={{ include "vineyard.socket.path" . }}
    - --listen-address=:{{ $exporter.port }}
    - --objects-limit={{ int64 $exporter.objectsLimit }}
  env:
    {{- /* The node's name labels vineyard_instance_info, and the socket path may contain it. */}}
    - name: MY_NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
  ports:
    - name: metrics
      containerPort: {{ $exporter.port }}
      {{- if .Values.hostNetwork }}
      hostPort: {{ $exporter.port }}
      {{- end }}
      protocol: TCP
  livenessProbe:
    httpGet: {path: /healthz, port: metrics}
    periodSeconds: 10
    failureThreshold: 3
  resources:
    {{- toYaml $exporter.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: vineyard-socket
      mountPath: {{ .Values.socket.mountPath }}
      readOnly: true
{{- end }}
{{- end }}

{{/* prometheus.io/* annotations of a metrics Service for `port` (none when turned off). */}}
{{- define "vineyard.metrics.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.scrapeAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
prometheus.io/scheme: http
{{- end }}
{{- end }}

{{/* A PromQL label matcher for one job of this release: "job" is "vineyardd" or "etcd". */}}
{{- define "vineyard.metrics.selector" -}}
{{- $service := ternary (include "vineyard.metrics.serviceName" .ctx) (include "vineyard.metrics.etcdServiceName" .ctx) (eq .job "vineyardd") -}}
job={{ $service | quote }},namespace={{ .ctx.Release.Namespace | quote }}
{{- end }}

{{/* A regular expression matching the names of the release's vineyardd DaemonSets (pools too). */}}
{{- define "vineyard.metrics.daemonSetRegex" -}}
{{- $names := list (regexQuoteMeta (include "vineyard.fullname" .)) }}
{{- range .Values.pools }}
{{- $ctx := dict }}
{{- include "vineyard.pool.context" (dict "root" $ "pool" . "into" $ctx) }}
{{- $names = append $names (regexQuoteMeta (include "vineyard.vineyardd.name" $ctx)) }}
{{- end }}
{{- join "|" $names }}
{{- end }}

{{/*
Relabelings shared by the ServiceMonitors and PodMonitors: the job is the Service's name
whichever kind of monitor found the target (the rules and the dashboard select it). No `node`
target label: vineyard_instance_info carries the node, and a target label of the same name would
rename the exporter's to exported_node. Call with (dict "ctx" $ "job" <job name>).
*/}}
{{- define "vineyard.metrics.relabelings" -}}
- targetLabel: job
  replacement: {{ .job | quote }}
{{- end }}

{{/* What the chart refuses about metrics.*, as a JSON list of messages. */}}
{{- define "vineyard.metrics.problems" -}}
{{- $problems := list }}
{{- $metrics := .Values.metrics }}
{{- $api := include "vineyard.metrics.operatorAPI" . }}
{{- $objects := dict "serviceMonitor" "ServiceMonitors" "podMonitor" "PodMonitors" "prometheusRule" "PrometheusRule" }}
{{- range $key := list "serviceMonitor" "podMonitor" "prometheusRule" "dashboard" }}
{{- $on := get (get $metrics $key) "enabled" }}
{{- if and $on (not $metrics.enabled) }}
{{- $problems = append $problems (printf "metrics.%s.enabled is true but metrics.enabled is false: there would be no exporter to scrape; set metrics.enabled=true" $key) }}
{{- end }}
{{- if and $on (hasKey $objects $key) (not $api) }}
{{- $problems = append $problems (printf "metrics.%s.enabled is true, but the cluster does not serve monitoring.coreos.com/v1 (the Prometheus Operator's CRDs), so the %s cannot be created: install the Prometheus Operator or its CRDs, or set metrics.%s.enabled=false and scrape with metrics.scrapeAnnotations (chart README, \"Metrics\"). helm template needs --api-versions monitoring.coreos.com/v1" $key (get $objects $key) $key) }}
{{- end }}
{{- end }}
{{- if and $metrics.serviceMonitor.enabled $metrics.podMonitor.enabled }}
{{- $problems = append $problems "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true: Prometheus would scrape every target twice; choose one" }}
{{- end }}
{{- if and $metrics.enabled .Values.vineyard.rpc.enabled (eq (int $metrics.exporter.port) (int .Values.vineyard.rpc.port)) }}
{{- $problems = append $problems (printf "metrics.exporter.port (%v) is vineyard.rpc.port too: both listen in vineyardd's pod; choose another port" $metrics.exporter.port) }}
{{- end }}
{{- toJson $problems }}
{{- end }}

{{/* Fails with every metrics problem at once, in vineyard.validateValues' words. */}}
{{- define "vineyard.metrics.validate" -}}
{{- with include "vineyard.metrics.problems" . | fromJsonArray }}
{{- fail (printf "\n\nINVALID VALUES:\n- %s" (join "\n- " .)) }}
{{- end }}
{{- end }}

{{/* The NOTES lines on metrics (nothing when off). */}}
{{- define "vineyard.metrics.notes" -}}
{{- if .Values.metrics.enabled }}
{{- $metrics := .Values.metrics }}
Metrics:  an exporter beside each vineyardd, port {{ $metrics.exporter.port }}, listed by Service {{ include "vineyard.metrics.serviceName" . }}
{{- if include "vineyard.metrics.etcdScraped" . }}; etcd's /metrics by {{ include "vineyard.metrics.etcdServiceName" . }}{{ end }}.
{{- if and .Values.networkPolicy.enabled (not $metrics.scrapeFrom) (include "vineyard.metrics.etcdScraped" .) }}
          networkPolicy admits nobody new to etcd's client port: list your Prometheus in
          metrics.scrapeFrom to scrape etcd.
{{- end }}
{{- end }}
{{- end }}
