{{/*
The chart's name, fullname and labels, as `helm create` and argo-helm's charts make them.
*/}}
{{- define "greenloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, at most 63 characters (a DNS label); a release whose name
already holds the chart's name is used as is ("greenloop", not "greenloop-greenloop").
*/}}
{{- define "greenloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "greenloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
app.kubernetes.io/version: the image tag (a digest is not a valid label value).
*/}}
{{- define "greenloop.versionLabel" -}}
{{- regexReplaceAll "[^a-zA-Z0-9-_.]+" (default .Chart.AppVersion .Values.image.tag) "" | trunc 63 | trimSuffix "-" | quote -}}
{{- end -}}

{{- define "greenloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "greenloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The operator's pods: what its Deployment, Services, PodDisruptionBudget and
NetworkPolicy select (the component keeps `helm test` pods out of them).
*/}}
{{- define "greenloop.operatorSelectorLabels" -}}
{{ include "greenloop.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "greenloop.labels" -}}
helm.sh/chart: {{ include "greenloop.chart" . }}
{{ include "greenloop.selectorLabels" . }}
app.kubernetes.io/version: {{ include "greenloop.versionLabel" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: greenloop
{{- end -}}

{{- define "greenloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "greenloop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag
(tag defaulting to the chart's appVersion). The operator runs it, and so does every
suite Job's results sidecar (--reporter-image).
*/}}
{{- define "greenloop.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "greenloop.resultsServiceName" -}}
{{- printf "%s-results" (include "greenloop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "greenloop.metricsServiceName" -}}
{{- printf "%s-metrics" (include "greenloop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
How suite pods reach the results endpoint: the chart's own Service by its DNS name,
unless results.url says otherwise.
*/}}
{{- define "greenloop.resultsURL" -}}
{{- if .Values.results.url -}}
{{- .Values.results.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "greenloop.resultsServiceName" .) .Release.Namespace (int .Values.results.service.port) -}}
{{- end -}}
{{- end -}}

{{/*
kopf peering: on with more than one replica (an active and standbys), or when asked.
Prints "true" or nothing, for `if`.
*/}}
{{- define "greenloop.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/*
The operator's RBAC rules: config/rbac/role.yaml's (files/operator-role.yaml is a
symlink to it), so the chart and a `kubectl apply -f config/rbac/` install grant the
same, from one file.
*/}}
{{- define "greenloop.operatorRules" -}}
{{- $role := .Files.Get "files/operator-role.yaml" | fromYaml -}}
{{- if not $role.rules -}}
{{- fail "files/operator-role.yaml (config/rbac/role.yaml) has no rules: the chart was packaged without it" -}}
{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}
