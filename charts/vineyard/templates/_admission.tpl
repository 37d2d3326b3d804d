{{/*
Who may use the socket, enforced by the API server (admission.enabled): a
ValidatingAdmissionPolicy and its binding (templates/admission-policy.yaml) refuse pods that mount
the release's socket directory (hostPath) or claim (persistentVolumeClaim), or carry
socket.access.groupId, unless they are the release's own or meet every admission.allowed
criterion. The directory's group and mode are the first gate; this one decides who gets the key.
*/}}

{{- define "vineyard.admission.apiServed" -}}
{{- if .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}true{{ end }}
{{- end }}

{{/* The policy renders: asked for, and nothing in vineyard.admission.problems (which then fails). */}}
{{- define "vineyard.admission.enabled" -}}
{{- if and .Values.admission.enabled (include "vineyard.admission.apiServed" .) (ne .Values.socket.volume.type "emptyDir") }}true{{ end }}
{{- end }}

{{/* Cluster-scoped, so the namespace is part of the name; neither part contains a dot. */}}
{{- define "vineyard.admission.name" -}}
{{- printf "%s.%s.socket.v6d.io" (include "vineyard.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The problems of admission.* for vineyard.validateValues, as a JSON list. */}}
{{- define "vineyard.admission.problems" -}}
{{- $problems := list }}
{{- $admission := .Values.admission }}
{{- if $admission.enabled }}
{{- if not (include "vineyard.admission.apiServed" .) }}
{{- $problems = append $problems "admission.enabled is true, but the cluster does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes 1.30 or newer), so the chart cannot have the API server restrict who uses the socket: upgrade the cluster, or set admission.enabled=false (the socket directory's group and mode still apply). helm template needs --api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}
{{- end }}
{{- if eq .Values.socket.volume.type "emptyDir" }}
{{- $problems = append $problems "admission.enabled is true with socket.volume.type=emptyDir: only the containers bundled into the vineyard pod (sidecars) can reach that socket, so there is nothing to admit; set admission.enabled=false" }}
{{- end }}
{{- $allowed := $admission.allowed }}
{{- if and $allowed.podSelector (not $allowed.namespaceSelector) (not $allowed.serviceAccounts) }}
{{- $problems = append $problems "admission.allowed.podSelector is the only criterion set: a pod's labels are written by whoever creates the pod, so anyone could allow themselves; set admission.allowed.namespaceSelector or admission.allowed.serviceAccounts too" }}
{{- end }}
{{- end }}
{{- $problems | toJson }}
{{- end }}

{{/* A path as the policy compares it: no leading, trailing, doubled or "." segments. */}}
{{- define "vineyard.admission.normalPath" -}}
{{- $segments := list }}
{{- range splitList "/" . }}
{{- if and . (ne . ".") }}
{{- $segments = append $segments . }}
{{- end }}
{{- end }}
{{- join "/" $segments }}
{{- end }}

{{/*
The socket directory on the node, normalised, with its twin under /run or /var/run: /var/run is
a symlink to /run on today's distributions, so either path reaches the same directory.
*/}}
{{- define "vineyard.admission.socketDirs" -}}
{{- $dir := include "vineyard.admission.normalPath" (include "vineyard.socket.hostPath" .) }}
{{- $dirs := list $dir }}
{{- if or (eq $dir "var/run") (hasPrefix "var/run/" $dir) }}
{{- $dirs = append $dirs (trimPrefix "var/" $dir) }}
{{- else if or (eq $dir "run") (hasPrefix "run/" $dir) }}
{{- $dirs = append $dirs (printf "var/%s" $dir) }}
{{- end }}
{{- $dirs | toJson }}
{{- end }}

{{/* CEL: the normalised form of the path expression passed in. */}}
{{- define "vineyard.admission.cel.normal" -}}
({{ . }}).split("/").filter(s, s != "" && s != ".").join("/")
{{- end }}

{{/* CEL: the normalised path in the variable passed in is the socket directory or inside it. */}}
{{- define "vineyard.admission.cel.within" -}}
variables.socketDirs.exists(dir, {{ . }} == dir || {{ . }}.startsWith(dir + "/"))
{{- end }}

{{/* CEL: the label map expression .labels matches LabelSelector .selector (Kubernetes semantics). */}}
{{- define "vineyard.admission.cel.selector" -}}
{{- $terms := list }}
{{- $labels := .labels }}
{{- range $key, $value := .selector.matchLabels }}
{{- $terms = append $terms (printf "(%s in %s && %s[%s] == %s)" (toJson $key) $labels $labels (toJson $key) (toJson $value)) }}
{{- end }}
{{- range .selector.matchExpressions }}
{{- $key := toJson .key }}
{{- $values := toJson (default list .values) }}
{{- if eq .operator "In" }}
{{- $terms = append $terms (printf "(%s in %s && %s[%s] in %s)" $key $labels $labels $key $values) }}
{{- else if eq .operator "NotIn" }}
{{- $terms = append $terms (printf "!(%s in %s && %s[%s] in %s)" $key $labels $labels $key $values) }}
{{- else if eq .operator "Exists" }}
{{- $terms = append $terms (printf "(%s in %s)" $key $labels) }}
{{- else }}
{{- $terms = append $terms (printf "!(%s in %s)" $key $labels) }}
{{- end }}
{{- end }}
{{- default "true" (join " && " $terms) }}
{{- end }}

{{/* A LabelSelector in kubectl's syntax, for messages: a=b,c in (d,e),!f */}}
{{- define "vineyard.admission.selectorText" -}}
{{- $terms := list }}
{{- range $key, $value := .matchLabels }}
{{- $terms = append $terms (printf "%s=%s" $key $value) }}
{{- end }}
{{- range .matchExpressions }}
{{- $values := join "," (default list .values) }}
{{- $op := .operator }}
{{- if eq $op "In" }}{{ $terms = append $terms (printf "%s in (%s)" .key $values) }}
{{- else if eq $op "NotIn" }}{{ $terms = append $terms (printf "%s notin (%s)" .key $values) }}
{{- else if eq $op "Exists" }}{{ $terms = append $terms .key }}
{{- else }}{{ $terms = append $terms (printf "!%s" .key) }}
{{- end }}
{{- end }}
{{- join "," $terms }}
{{- end }}

{{/* Who is allowed, in words, then how to be allowed: the end of every refusal message. */}}
{{- define "vineyard.admission.allowedText" -}}
{{- $allowed := .Values.admission.allowed }}
{{- $criteria := list }}
{{- with $allowed.namespaceSelector }}
{{- $criteria = append $criteria (printf "in a namespace labelled %s" (include "vineyard.admission.selectorText" .)) }}
{{- end }}
{{- with $allowed.podSelector }}
{{- $criteria = append $criteria (printf "labelled %s" (include "vineyard.admission.selectorText" .)) }}
{{- end }}
{{- with $allowed.serviceAccounts }}
{{- $criteria = append $criteria (printf "running as %s %s" (ternary "service account" "one of the service accounts" (eq (len .) 1)) (join ", " .)) }}
{{- end }}
{{- $upgrade := printf "helm upgrade %s -n %s" .Release.Name .Release.Namespace }}
{{- if $criteria }}
{{- $last := last $criteria }}
{{- $joined := ternary $last (printf "%s and %s" (initial $criteria | join ", ") $last) (eq (len $criteria) 1) }}
{{- printf "Allowed: the release's own pods, and pods %s. To be allowed, meet every one of those conditions, or have the release's admission.allowed values include the pod (%s)." $joined $upgrade }}
{{- else }}
{{- printf "Allowed: only the release's own pods (admission.allowed sets no criteria). To be allowed, have the release's admission.allowed values include the pod (%s)." $upgrade }}
{{- end }}
{{- end }}

{{/* CEL: the request is allowed by admission.allowed (every criterion set must hold). */}}
{{- define "vineyard.admission.cel.allowed" -}}
{{- $allowed := .Values.admission.allowed }}
{{- $terms := list }}
{{- with $allowed.namespaceSelector }}
{{- $terms = append $terms (include "vineyard.admission.cel.selector" (dict "selector" . "labels" "variables.namespaceLabels")) }}
{{- end }}
{{- with $allowed.podSelector }}
{{- $terms = append $terms (include "vineyard.admission.cel.selector" (dict "selector" . "labels" "variables.podLabels")) }}
{{- end }}
{{- with $allowed.serviceAccounts }}
{{- $terms = append $terms (printf "(request.namespace + \"/\" + variables.serviceAccount) in %s" (toJson .)) }}
{{- end }}
{{- if $terms }}{{ join " && " $terms }}{{ else }}false{{ end }}
{{- end }}

{{/* NOTES.txt: the policy, when on. */}}
{{- define "vineyard.admission.notes" -}}
{{- if include "vineyard.admission.enabled" . }}
{{- $deny := eq .Values.admission.action "Deny" }}

Admission: ValidatingAdmissionPolicy {{ include "vineyard.admission.name" . }}
  {{ ternary "refuses" "warns about (action Warn: admitted, not refused)" $deny }} pods that mount {{ if eq .Values.socket.volume.type "hostPath" }}{{ include "vineyard.socket.hostPath" . }}{{ else }}claim {{ include "vineyard.socket.claimName" . }}{{ end }} or carry group {{ .Values.socket.access.groupId }} unless allowed (chart README, Who may use the socket).
  {{ include "vineyard.admission.allowedText" . }}
{{- if not $deny }}
  Set admission.action=Deny to refuse them.
{{- end }}
{{- end }}
{{- end }}
