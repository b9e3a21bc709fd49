{{/*
The names of the operator's objects: "<release>-<role>", as dist/install.yaml names them
with the release "atlas" (atlas-controller-manager, atlas-manager-role, ...).
*/}}
{{- define "atlas-operator.name" -}}
{{- printf "%s-%s" .root.Release.Name .role | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels of every object of the release. */}}
{{- define "atlas-operator.labels" -}}
app.kubernetes.io/name: atlas-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator pods' selector (the same as dist/install.yaml's: it cannot change later). */}}
{{- define "atlas-operator.selector" -}}
control-plane: controller-manager
app.kubernetes.io/name: atlas-operator
{{- end -}}

{{/* The operator's image. */}}
{{- define "atlas-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The rules of the operator's manager role, as `make manifests` generates them from the
+kubebuilder:rbac markers (files/rbac/manager-role.yaml is a copy of config/rbac/role.yaml).
*/}}
{{- define "atlas-operator.managerRules" -}}
{{- (.Files.Get "files/rbac/manager-role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}
