{{/*
Helpers for csi-secrets-store-provider-alibabacloud. Prefix: csspa.
*/}}

{{/* Fixed paths inside the container; the image and the binary use the same. */}}
{{- define "csspa.binary" -}}/usr/local/bin/csi-secrets-store-provider-alibabacloud{{- end -}}
{{- define "csspa.configDir" -}}/etc/csi-secrets-store-provider-alibabacloud{{- end -}}
{{- define "csspa.pluginDir" -}}/etc/csi-secrets-store-provider-alibabacloud/plugins{{- end -}}

{{/*
The pod-private emptyDir of compiled custom plugins, and the directory in it
that config.toml names when plugin_cache.dir is left empty (the provider
creates it, mode 0700, owned by its user).
*/}}
{{- define "csspa.pluginCacheMount" -}}/var/cache/csi-secrets-store-provider-alibabacloud{{- end -}}
{{- define "csspa.pluginCacheDir" -}}{{ include "csspa.pluginCacheMount" . }}/plugins{{- end -}}

{{/* "true" when a route of config.plugins runs a custom plugin (a path), else empty. */}}
{{- define "csspa.hasCustomPlugins" -}}
{{- range $name, $plugin := (default dict .Values.config.plugins) -}}
{{- if and (kindIs "map" $plugin) $plugin.path (ne (toString $plugin.enabled) "false") -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- define "csspa.providerMount" -}}/provider{{- end -}}
{{- define "csspa.socketName" -}}alibabacloud.sock{{- end -}}
{{/* The provider's own directory in the providers directory, where a non-root provider binds its socket. */}}
{{- define "csspa.socketDirName" -}}alibabacloud{{- end -}}
{{- define "csspa.rrsaTokenDir" -}}/var/run/secrets/tokens{{- end -}}
{{- define "csspa.rrsaTokenFile" -}}csi-secrets-store-provider-alibabacloud{{- end -}}
{{- define "csspa.stsAudience" -}}sts.aliyuncs.com{{- end -}}

{{/* Chart name, or nameOverride. */}}
{{- define "csspa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of the release's resources. A release whose name already contains the
chart name (the documented `helm install csi-secrets-store-provider-alibabacloud`)
keeps the upstream resource names.
*/}}
{{- define "csspa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "csspa.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels. The DaemonSet selector is immutable, so it stays the upstream
chart's (`app: <name>`): `helm upgrade` from an upstream release then works.
*/}}
{{- define "csspa.selectorLabels" -}}
app: {{ include "csspa.name" . }}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "csspa.labels" -}}
{{ include "csspa.selectorLabels" . }}
app.kubernetes.io/name: {{ include "csspa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: provider
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "csspa.serviceAccountName" -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}

{{/* An image reference from {repository, tag, digest}; arg: (list image defaultTag). */}}
{{- define "csspa.imageRef" -}}
{{- $image := index . 0 -}}
{{- $tag := default (index . 1) $image.tag -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets as a list of references; accepts names or {name: ...}. */}}
{{- define "csspa.imagePullSecrets" -}}
{{- range .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
- name: {{ . }}
{{- else }}
- name: {{ .name }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Whether the provider runs as a non-root user ("true" or ""). */}}
{{- define "csspa.nonRoot" -}}
{{- if ne (int64 .Values.linux.runAsUser) 0 -}}true{{- end -}}
{{- end -}}

{{/*
The directory, in the provider container, where the socket is bound
(--provider-volume): as root, the providers directory itself; as non-root,
the provider's own subdirectory, which <providersDir>/alibabacloud.sock links
into (see the init container).
*/}}
{{- define "csspa.socketDir" -}}
{{- if include "csspa.nonRoot" . -}}
{{- include "csspa.providerMount" . }}/{{ include "csspa.socketDirName" . -}}
{{- else -}}
{{- include "csspa.providerMount" . -}}
{{- end -}}
{{- end -}}

{{/*
Whole seconds (rounded up) of a duration (see csspa.duration), e.g. "5s",
"1.5s", "1m30s", "500ms".
*/}}
{{- define "csspa.durationSeconds" -}}
{{- $d := include "csspa.duration" . | fromJson -}}
{{- if gt (int64 $d.ns) 0 -}}{{- add1 (int64 $d.s) -}}{{- else -}}{{- int64 $d.s -}}{{- end -}}
{{- end -}}

{{/*
A duration as Go writes it and as config.toml takes it (a sequence of decimal
numbers, each with an optional fraction and a unit: h, m, s, ms, us, µs, μs,
ns; e.g. "1h30m", "1.5s", "500ms"), as JSON {"s": whole seconds, "ns": the
rest in nanoseconds}, as the binary reads it (fractions to a millionth of
their unit). A number of more than 12 digits saturates the seconds (far
beyond any range the chart checks).
*/}}
{{- define "csspa.duration" -}}
{{- $s := 0 -}}
{{- $ns := 0 -}}
{{- range regexFindAll "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|h|m|s)" (toString .) -1 -}}
{{- $digits := regexFind "^[0-9]*" . -}}
{{- $fraction := regexFind "^[0-9]*" (trimPrefix "." (trimPrefix $digits .)) -}}
{{- $unit := regexFind "(ns|us|µs|μs|ms|h|m|s)$" . -}}
{{- $unitNs := get (dict "ns" 1 "us" 1000 "µs" 1000 "μs" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000) $unit | int64 -}}
{{- if gt (len $digits) 12 -}}{{- $s = add $s 1000000000000000 -}}
{{- else if $digits -}}
{{- $n := include "csspa.decimal" $digits | int64 -}}
{{- if ge $unitNs 1000000000 -}}{{- $s = add $s (mul $n (div $unitNs 1000000000)) -}}
{{- else -}}{{- $ns = add $ns (mul $n $unitNs) -}}
{{- end -}}
{{- end -}}
{{- if $fraction -}}
{{- $micro := include "csspa.decimal" (printf "%-6s" $fraction | replace " " "0" | trunc 6) | int64 -}}
{{- $ns = add $ns (div (mul $micro $unitNs) 1000000) -}}
{{- end -}}
{{- end -}}
{{- dict "s" (add $s (div $ns 1000000000)) "ns" (mod $ns 1000000000) | toJson -}}
{{- end -}}

{{/*
A string of decimal digits as a number, read in base 10 (int64 alone reads a
leading 0 as octal).
*/}}
{{- define "csspa.decimal" -}}
{{- regexReplaceAll "^0+" . "" | default "0" -}}
{{- end -}}

{{/* Whether duration a (arg 0) is shorter than duration b (arg 1): "true" or "". */}}
{{- define "csspa.durationLess" -}}
{{- $a := include "csspa.duration" (index . 0) | fromJson -}}
{{- $b := include "csspa.duration" (index . 1) | fromJson -}}
{{- if or (lt (int64 $a.s) (int64 $b.s)) (and (eq (int64 $a.s) (int64 $b.s)) (lt (int64 $a.ns) (int64 $b.ns))) -}}true{{- end -}}
{{- end -}}

{{/*
TOML rendering of config.toml. Values arrive from YAML (numbers as float64),
so integral numbers are printed as integers; strings use JSON escapes, which
are valid TOML basic strings.
*/}}
{{- define "csspa.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "csspa.toml.value" -}}
{{- if kindIs "string" . -}}{{ toJson . }}
{{- else if kindIs "bool" . -}}{{ . }}
{{- else if kindIs "slice" . -}}
[{{- range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "csspa.toml.value" $v }}{{ end -}}]
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/*
One table: its scalar keys, then its sub-tables. Null values are left out (the
binary's default applies); empty sub-tables are not written.
arg: dict "name" <dotted table name> "table" <map>
*/}}
{{- define "csspa.toml.table" -}}
{{- $name := .name -}}
{{- $table := .table -}}
{{- $scalars := list -}}
{{- $tables := list -}}
{{- range $k, $v := $table -}}
{{- if kindIs "map" $v -}}{{- $tables = append $tables $k -}}
{{- else if not (kindIs "invalid" $v) -}}{{- $scalars = append $scalars $k -}}
{{- end -}}
{{- end -}}
{{- if $scalars }}
[{{ $name }}]
{{- range $scalars }}
{{ include "csspa.toml.key" . }} = {{ include "csspa.toml.value" (get $table .) }}
{{- end }}
{{ end -}}
{{- range $tables -}}
{{- include "csspa.toml.table" (dict "name" (printf "%s.%s" $name (include "csspa.toml.key" .)) "table" (get $table .)) -}}
{{- end -}}
{{- end -}}

{{/*
The config object the ConfigMap renders: config with cloud.region from
regionId, and relative plugin paths resolved under the plugin directory.
*/}}
{{- define "csspa.effectiveConfig" -}}
{{- $config := deepCopy .Values.config -}}
{{- $cloud := default dict $config.cloud -}}
{{- $_ := set $cloud "region" (.Values.regionId | default "") -}}
{{- $_ := set $config "cloud" $cloud -}}
{{- $plugins := dict -}}
{{- range $name, $plugin := (default dict $config.plugins) -}}
{{- if kindIs "map" $plugin -}}
{{- $p := deepCopy $plugin -}}
{{- range $key := list "path" "http_ca_file" -}}
{{- $file := get $p $key -}}
{{- if and $file (not (hasPrefix "/" $file)) -}}
{{- $_ := set $p $key (printf "%s/%s" (include "csspa.pluginDir" $) $file) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $plugins $name $p -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "plugins" $plugins -}}
{{- $cache := default dict $config.plugin_cache -}}
{{- if and (not $cache.dir) (include "csspa.hasCustomPlugins" $) -}}
{{- $_ := set $cache "dir" (include "csspa.pluginCacheDir" $) -}}
{{- end -}}
{{- $_ := set $config "plugin_cache" $cache -}}
{{- toJson $config -}}
{{- end -}}

{{/* config.toml, in the order of the binary's default file. */}}
{{- define "csspa.configToml" -}}
{{- $config := include "csspa.effectiveConfig" . | fromJson -}}
{{- $out := printf "# Rendered by the Helm chart %s-%s from the release's values\n# (`config`, `regionId`). Edit the values, not this file.\n" .Chart.Name .Chart.Version -}}
{{- range $section := list "limits" "cloud" "plugin_defaults" "identity" "cache" "plugin_cache" -}}
{{- with (get $config $section) -}}
{{- $out = printf "%s\n%s\n" $out (include "csspa.toml.table" (dict "name" $section "table" .)) -}}
{{- end -}}
{{- end -}}
{{- range $name, $plugin := $config.plugins -}}
{{- $out = printf "%s\n%s\n" $out (include "csspa.toml.table" (dict "name" (printf "plugins.%s" (include "csspa.toml.key" $name)) "table" $plugin)) -}}
{{- end -}}
{{- regexReplaceAll "\n{3,}" $out "\n\n" | trimSuffix "\n" -}}
{{- end -}}

{{/*
The entries of envVarsFromSecret the chart renders, as JSON {name: {secretKeyRef,
key}}: those with a secretKeyRef. The upstream chart skipped the others (and
so does this one; the install notes list them).
*/}}
{{- define "csspa.secretEnv" -}}
{{- $out := dict -}}
{{- range $name, $ref := (default dict .Values.envVarsFromSecret) -}}
{{- if and (kindIs "map" $ref) $ref.secretKeyRef -}}{{- $_ := set $out $name $ref -}}{{- end -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* Names of envVarsFromSecret entries without a secretKeyRef, which are skipped, as a JSON list. */}}
{{- define "csspa.skippedSecretEnv" -}}
{{- $rendered := include "csspa.secretEnv" . | fromJson -}}
{{- $skipped := list -}}
{{- range $name := keys (default dict .Values.envVarsFromSecret) | sortAlpha -}}
{{- if not (hasKey $rendered $name) -}}{{- $skipped = append $skipped $name -}}{{- end -}}
{{- end -}}
{{- $skipped | toJson -}}
{{- end -}}

{{/* Whether an env var is set by envVarsFromSecret or linux.env ("true" or ""). */}}
{{- define "csspa.hasEnv" -}}
{{- $name := .name -}}
{{- $root := .root -}}
{{- if hasKey (include "csspa.secretEnv" $root | fromJson) $name -}}true
{{- else -}}
{{- range $root.Values.linux.env -}}{{- if eq .name $name -}}true{{- end -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Whether the environment names the cluster's OIDC provider ("true" or ""):
ALICLOUD_OIDC_PROVIDER_ARN (or the SDK name), or the account and cluster ids.
The binary then ignores identity.oidc_provider_arn.
*/}}
{{- define "csspa.oidcFromEnv" -}}
{{- $has := dict -}}
{{- range list "ALICLOUD_OIDC_PROVIDER_ARN" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" "ALICLOUD_ACCOUNT_ID" "ALICLOUD_CLUSTER_ID" -}}
{{- if include "csspa.hasEnv" (dict "root" $ "name" .) -}}{{- $_ := set $has . true -}}{{- end -}}
{{- end -}}
{{- if or $has.ALICLOUD_OIDC_PROVIDER_ARN $has.ALIBABA_CLOUD_OIDC_PROVIDER_ARN (and $has.ALICLOUD_ACCOUNT_ID $has.ALICLOUD_CLUSTER_ID) (and .Values.rrsa.accountId .Values.rrsa.clusterId) -}}true{{- end -}}
{{- end -}}

{{/*
Checks across values that the schema cannot express. Each failure says what to
change.
*/}}
{{- define "csspa.validate" -}}
{{- $placeholder := "__ACK_REGION_ID__" -}}
{{- if contains $placeholder (toString .Values.regionId) -}}
{{- fail (printf "regionId is the ACK placeholder %s: set it to your region (for example --set regionId=cn-hangzhou), or to \"\" to use each node's region" $placeholder) -}}
{{- end -}}
{{- if not (regexMatch "^([a-z]+(-[a-z0-9]+)+)?$" (toString .Values.regionId)) -}}
{{- fail (printf "regionId %q is not a region id such as cn-hangzhou or ap-southeast-1" .Values.regionId) -}}
{{- end -}}
{{- if contains $placeholder (toString .Values.linux.image.repository) -}}
{{- fail (printf "linux.image.repository contains the ACK placeholder %s: remove linux.image from your values to use this chart's image, or name a real registry" $placeholder) -}}
{{- end -}}
{{- if and (hasSuffix "secrets-store-csi-driver-provider-alibaba-cloud" (toString .Values.linux.image.repository)) (hasPrefix "v0." (toString .Values.linux.image.tag)) -}}
{{- fail (printf "linux.image is %s:%s, the upstream Go provider, which this chart cannot run: remove linux.image.repository and linux.image.tag from your values to use this chart's image" .Values.linux.image.repository .Values.linux.image.tag) -}}
{{- end -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- range $k := list "image" "registrarImage" "livenessProbeImage" -}}
{{- $img := dig "linux" $k "repository" "" $driver -}}
{{- if contains $placeholder (toString $img) -}}
{{- fail (printf "secrets-store-csi-driver.linux.%s.repository contains the ACK placeholder %s: remove it from your values to use the driver's default image, or name a real registry" $k $placeholder) -}}
{{- end -}}
{{- end -}}
{{- if contains $placeholder (toString (dig "linux" "crds" "image" "repository" "" $driver)) -}}
{{- fail (printf "secrets-store-csi-driver.linux.crds.image.repository contains the ACK placeholder %s: remove it from your values to use the driver's default image, or name a real registry" $placeholder) -}}
{{- end -}}
{{- if $driver.install -}}
{{- $driverDir := dig "linux" "providersDir" "" $driver -}}
{{- if and $driverDir (ne (clean $driverDir) (clean .Values.linux.providersDir)) -}}
{{- fail (printf "linux.providersDir (%s) and secrets-store-csi-driver.linux.providersDir (%s) differ: the driver would not find the provider's socket" .Values.linux.providersDir $driverDir) -}}
{{- end -}}
{{- end -}}
{{- range $pattern := (dig "cloud" "allowed_endpoints" list (default dict .Values.config)) -}}
{{- if regexMatch "^\\*\\.[^.*:]+\\.[^.*:]+(:[0-9]+)?$" (toString $pattern) -}}
{{- fail (printf "config.cloud.allowed_endpoints has %q: a * matches exactly one DNS label, and a * directly above a two-label domain is refused (the provider would stop at start-up): earlier versions read it as every host under the domain, at any depth, which for aliyuncs.com includes names that tenants own, such as OSS buckets. List the endpoints instead, e.g. the chart's default (remove allowed_endpoints from your values): kms.*.aliyuncs.com, kms-vpc.*.aliyuncs.com, *.cryptoservice.kms.aliyuncs.com, oos.*.aliyuncs.com, oos-vpc.*.aliyuncs.com, sts.aliyuncs.com, sts.*.aliyuncs.com, sts-vpc.*.aliyuncs.com" $pattern) -}}
{{- end -}}
{{- end -}}
{{- $identity := default dict (default dict .Values.config).identity -}}
{{- /*
rrsa.enable without ALICLOUD_ROLE_ARN renders as upstream: the token is
mounted, provider-level RRSA stays off until the role is set, and pod-level
RRSA uses the OIDC provider (upstream's e2e suite installs this way).
*/ -}}
{{- if .Values.rrsa.enable -}}
{{- if not (or (include "csspa.oidcFromEnv" .) $identity.oidc_provider_arn) -}}
{{- fail "rrsa.enable needs the cluster's OIDC provider: set envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN, or both rrsa.accountId and rrsa.clusterId, or config.identity.oidc_provider_arn" -}}
{{- end -}}
{{- end -}}
{{- if and $identity.oidc_provider_arn (include "csspa.oidcFromEnv" .) -}}
{{- fail "config.identity.oidc_provider_arn is ignored when ALICLOUD_OIDC_PROVIDER_ARN (envVarsFromSecret or linux.env) or rrsa.accountId and rrsa.clusterId are set: the environment takes precedence; keep one" -}}
{{- end -}}
{{- if not (kindIs "invalid" $identity.session_duration) -}}
{{- $d := include "csspa.duration" $identity.session_duration | fromJson -}}
{{- if or (lt (int64 $d.s) 900) (gt (int64 $d.s) 43200) -}}
{{- fail (printf "config.identity.session_duration is %s: STS issues credentials for 15m to 12h (DurationSeconds 900 to 43200); set a duration in that range, e.g. 1h" $identity.session_duration) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $identity.refresh_margin)) (not (include "csspa.durationLess" (list $identity.refresh_margin $identity.session_duration))) -}}
{{- fail (printf "config.identity.refresh_margin (%s) must be shorter than config.identity.session_duration (%s): credentials are refreshed that long before they expire" $identity.refresh_margin $identity.session_duration) -}}
{{- end -}}
{{- end -}}
{{- if and (or .Values.rrsa.accountId .Values.rrsa.clusterId) (not (and .Values.rrsa.accountId .Values.rrsa.clusterId)) -}}
{{- fail "rrsa.accountId and rrsa.clusterId go together: set both, or neither" -}}
{{- end -}}
{{- $envNames := keys (include "csspa.secretEnv" . | fromJson) -}}
{{- range .Values.linux.env -}}
{{- if has .name $envNames -}}
{{- fail (printf "linux.env sets %s, which envVarsFromSecret sets too: keep one" .name) -}}
{{- end -}}
{{- $envNames = append $envNames .name -}}
{{- end -}}
{{- range list "ALICLOUD_ACCOUNT_ID" "ALICLOUD_CLUSTER_ID" -}}
{{- if and $.Values.rrsa.accountId (has . $envNames) -}}
{{- fail (printf "%s is set both by rrsa.accountId/clusterId and by envVarsFromSecret or linux.env: keep one" .) -}}
{{- end -}}
{{- end -}}
{{- $files := .Values.pluginFiles -}}
{{- if and $files.volume (or $files.binaryData $files.configMaps) -}}
{{- fail "pluginFiles.volume cannot be combined with pluginFiles.binaryData or pluginFiles.configMaps: they would share the plugin directory" -}}
{{- end -}}
{{- $hasPluginFiles := or $files.volume $files.binaryData $files.configMaps -}}
{{- $onlyEmbedded := and $files.binaryData (not $files.configMaps) (not $files.volume) -}}
{{- $config := include "csspa.effectiveConfig" . | fromJson -}}
{{- $tokenAudiences := include "csspa.tokenAudiences" . | fromJsonArray -}}
{{- range $name, $plugin := $config.plugins -}}
{{- if not (eq (toString $plugin.enabled) "false") -}}
{{- if and $plugin.builtin $plugin.path -}}
{{- fail (printf "config.plugins.%s sets both builtin and path: a route names one plugin" $name) -}}
{{- end -}}
{{- if not (or $plugin.builtin $plugin.path) -}}
{{- fail (printf "config.plugins.%s needs builtin (kms or oos) or path (a .wasm file), or enabled: false to remove the route" $name) -}}
{{- end -}}
{{- $prefix := printf "%s/" (include "csspa.pluginDir" $) -}}
{{- range $key := list "path" "http_ca_file" -}}
{{- $path := get $plugin $key -}}
{{- if and $path (hasPrefix $prefix $path) -}}
{{- $file := trimPrefix $prefix $path -}}
{{- if not $hasPluginFiles -}}
{{- fail (printf "config.plugins.%s.%s is %s, but no plugin files are mounted: set pluginFiles.binaryData, pluginFiles.configMaps or pluginFiles.volume" $name $key $path) -}}
{{- end -}}
{{- if and $onlyEmbedded (not (hasKey $files.binaryData $file)) -}}
{{- fail (printf "config.plugins.%s.%s is %s, but pluginFiles.binaryData has no %s (it has: %s)" $name $key $path $file (keys $files.binaryData | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $caps := default dict $plugin.capabilities -}}
{{- if and $plugin.builtin (eq (toString $caps.alibaba_cloud) "false") -}}
{{- fail (printf "config.plugins.%s.capabilities.alibaba_cloud is false, but the built-in %s plugin makes signed Alibaba Cloud calls: the provider would refuse it at start-up; remove alibaba_cloud (built-in routes have it by default)" $name $plugin.builtin) -}}
{{- end -}}
{{- if $driver.install -}}
{{- range $audience := (default list $caps.service_account_audiences) -}}
{{- if not (has $audience $tokenAudiences) -}}
{{- fail (printf "config.plugins.%s.capabilities.service_account_audiences grants the audience %q, but secrets-store-csi-driver.tokenRequests has no {audience: %s}, so kubelet never issues that token and the plugin cannot use the grant: add it to tokenRequests (the list replaces the default, so keep {audience: %s} in it), or remove the grant" $name $audience $audience (include "csspa.stsAudience" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Audiences granted to enabled plugin routes (capabilities.service_account_audiences),
sorted and without repeats, as a JSON list.
*/}}
{{- define "csspa.pluginAudiences" -}}
{{- $audiences := list -}}
{{- range $name, $plugin := (include "csspa.effectiveConfig" . | fromJson).plugins -}}
{{- if not (eq (toString $plugin.enabled) "false") -}}
{{- $audiences = concat $audiences (default list (default dict $plugin.capabilities).service_account_audiences) -}}
{{- end -}}
{{- end -}}
{{- $audiences | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* Audiences of secrets-store-csi-driver.tokenRequests, as a JSON list. */}}
{{- define "csspa.tokenAudiences" -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- $audiences := list -}}
{{- range (default list $driver.tokenRequests) }}{{ $audiences = append $audiences .audience }}{{ end -}}
{{- $audiences | toJson -}}
{{- end -}}

{{/* A scalar value (string or number) as a quoted string, integers without exponent. */}}
{{- define "csspa.string" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ include "csspa.toml.value" . }}{{- end -}}
{{- end -}}

{{/* The provider's environment: envVarsFromSecret, RRSA ids, linux.env. */}}
{{- define "csspa.env" -}}
{{- range $name, $ref := (include "csspa.secretEnv" . | fromJson) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretKeyRef }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- with .Values.rrsa.accountId }}
- name: ALICLOUD_ACCOUNT_ID
  value: {{ include "csspa.string" . | quote }}
{{- end }}
{{- with .Values.rrsa.clusterId }}
- name: ALICLOUD_CLUSTER_ID
  value: {{ include "csspa.string" . | quote }}
{{- end }}
{{- with .Values.linux.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}
