{{/*
The alerting rules of the PrometheusRule (templates/metrics-prometheusrule.yaml), as its
`groups:`; tests/unit/test_metrics_alerts.py runs `promtool test rules` on them, firing and not.
vineyardd alerts read the exporter's job, etcd alerts etcd's, both by namespace too; the two
readiness alerts read kube-state-metrics (kube_daemonset_*, kube_statefulset_*), which only
sees pods the API server knows: a member that never got an address is found there, not by `up`.
Annotations are Prometheus templates, so they are written inside {{` `}} to reach it untouched.
*/}}
{{- define "vineyard.metrics.ruleGroups" -}}
{{- $rule := .Values.metrics.prometheusRule }}
{{- $vineyardd := include "vineyard.metrics.selector" (dict "ctx" . "job" "vineyardd") }}
{{- $etcd := include "vineyard.metrics.selector" (dict "ctx" . "job" "etcd") }}
{{- $namespace := .Release.Namespace | quote -}}
groups:
  - name: {{ printf "vineyard.%s.%s" .Release.Namespace (include "vineyard.fullname" .) | quote }}
    rules:
      - alert: VineyardMemoryNearSize
        expr: >-
          vineyard_memory_usage_bytes{ {{- $vineyardd -}} }
          / vineyard_memory_limit_bytes{ {{- $vineyardd -}} } > {{ $rule.memoryUsage.threshold }}
        for: {{ $rule.memoryUsage.for }}
        labels:
          severity: warning
        annotations:
          summary: vineyardd's shared memory is nearly full
          description: >-
            {{`vineyardd {{ $labels.pod }} has handed out {{ $value | humanizePercentage }} of its
            --size: puts beyond it fail with NotEnoughMemoryException. Delete objects that are no
            longer needed, or raise vineyard.size (and the memory limit).`}}
      - alert: VineyardDown
        expr: >-
          vineyard_up{ {{- $vineyardd -}} } == 0 or up{ {{- $vineyardd -}} } == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: vineyardd does not answer its exporter
          description: >-
            {{`The exporter of {{ $labels.pod }} has not reached vineyardd over its socket (or
            Prometheus has not reached the exporter) for 5 minutes: workloads on that node
            cannot reach vineyardd either.`}}
      - alert: VineyardPodsNotReady
        expr: >-
          kube_daemonset_status_number_ready{namespace={{ $namespace }},daemonset=~{{ include "vineyard.metrics.daemonSetRegex" . | quote }}}
          < kube_daemonset_status_desired_number_scheduled{namespace={{ $namespace }},daemonset=~{{ include "vineyard.metrics.daemonSetRegex" . | quote }}}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: vineyardd pods are not all Ready
          description: >-
            {{`DaemonSet {{ $labels.daemonset }} has had fewer Ready vineyardd pods than nodes to
            run on for 10 minutes: workloads on those nodes have no vineyardd.`}}
{{- if include "vineyard.metrics.etcdScraped" . }}
      - alert: EtcdNoLeader
        expr: >-
          etcd_server_has_leader{ {{- $etcd -}} } == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: an etcd member has no leader
          description: >-
            {{`etcd member {{ $labels.pod }} has had no leader for a minute: the cluster has lost
            its quorum and vineyardd's metadata writes fail.`}}
      - alert: EtcdDatabaseNearQuota
        expr: >-
          etcd_mvcc_db_total_size_in_bytes{ {{- $etcd -}} }
          / etcd_server_quota_backend_bytes{ {{- $etcd -}} } > {{ $rule.etcdDatabaseSize.threshold }}
        for: {{ $rule.etcdDatabaseSize.for }}
        labels:
          severity: warning
        annotations:
          summary: etcd's database is near its quota
          description: >-
            {{`etcd member {{ $labels.pod }}'s database is at {{ $value | humanizePercentage }} of
            its quota; at the quota etcd raises NOSPACE and refuses every write. Compact and
            defragment, or raise etcd.backendQuota (chart README, Operations).`}}
      - alert: EtcdNoSpaceAlarm
        expr: >-
          etcd_debugging_server_alarms{ {{- $etcd -}},alarm_type="NOSPACE"} > 0
        labels:
          severity: critical
        annotations:
          summary: etcd raised its NOSPACE alarm and refuses writes
          description: >-
            {{`etcd member {{ $labels.pod }} has raised NOSPACE: every write is refused until an
            operator compacts, defragments and disarms the alarm (chart README, "Quota and the
            NOSPACE alarm").`}}
      - alert: EtcdMemberDown
        expr: >-
          up{ {{- $etcd -}} } == 0
          or (kube_statefulset_replicas{namespace={{ $namespace }},statefulset={{ include "vineyard.etcd.fullname" . | quote }}}
          - kube_statefulset_status_replicas_ready{namespace={{ $namespace }},statefulset={{ include "vineyard.etcd.fullname" . | quote }}}) > 0
        for: 3m
        labels:
          severity: critical
        annotations:
          summary: an etcd member is down
          description: >-
            {{`An etcd member of {{ $labels.namespace }} has been down or not Ready for 3 minutes
            ({{ $labels.pod }}{{ $labels.statefulset }}): one more lost member can cost the quorum.`}}
{{- end }}
{{- end }}
