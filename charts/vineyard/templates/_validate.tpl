{{/*
Cross-field checks the schema cannot express. Every problem is collected and reported at once,
each naming the values it concerns.
*/}}
{{- define "vineyard.validateValues" -}}
{{- $problems := list }}
{{- $limit := dig "limits" "memory" "" .Values.resources }}
{{- if and .Values.vineyard.size $limit }}
{{- if lt (float64 (include "vineyard.quantityBytes" $limit)) (float64 (include "vineyard.quantityBytes" .Values.vineyard.size)) }}
{{- $problems = append $problems (printf "resources.limits.memory (%s) is below vineyard.size (%s): the shared memory is charged to the pod, so vineyardd would be OOM-killed when it fills up; raise the limit or lower the size" $limit .Values.vineyard.size) }}
{{- end }}
{{- end }}
{{- if and .Values.vineyard.spill.path (ge (float64 .Values.vineyard.spill.lowerRate) (float64 .Values.vineyard.spill.upperRate)) }}
{{- $problems = append $problems (printf "vineyard.spill.lowerRate (%v) must be below vineyard.spill.upperRate (%v)" .Values.vineyard.spill.lowerRate .Values.vineyard.spill.upperRate) }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\n\nINVALID VALUES:\n- %s" (join "\n- " $problems)) }}
{{- end }}
{{- end }}
