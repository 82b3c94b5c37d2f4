//! The provider's configuration file (config.toml): routing, limits, cloud client.
//!
//! Every key has a default (the repository's `config.toml`, which is compiled
//! in and checked against [`Config::default`] by a unit test). A file given
//! with `--config` overrides defaults key by key; unknown keys are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::net::{BaseUrl, ClearText};
use crate::region::Region;

/// The default configuration file, as shipped in the repository.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../config.toml");

/// Where `serve` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/csi-secrets-store-provider-alibabacloud/config.toml";

/// Names of the plugins compiled into the binary.
pub const BUILTIN_PLUGINS: &[&str] = &["kms", "oos"];

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Limits on Mounts.
    pub limits: Limits,
    /// The Alibaba Cloud API client.
    pub cloud: Cloud,
    /// Limits that apply to every plugin unless its route overrides them.
    pub plugin_defaults: PluginLimits,
    /// Which identities may serve a Mount.
    pub identity: Identity,
    /// The opt-in value cache.
    pub cache: Cache,
    /// Where compiled custom plugins are kept.
    pub plugin_cache: PluginCache,
    /// Routing: `objectType` → plugin.
    pub plugins: BTreeMap<String, PluginRoute>,
}

/// The value cache (`[cache]`): fetched objects kept for later Mounts of
/// the same identity. Off by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// Whether objects are kept at all.
    pub enabled: bool,
    /// How long an object is kept (rotation is seen at most this late).
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// How long an object pinned by `objectVersion` is kept.
    #[serde(deserialize_with = "duration")]
    pub pinned_ttl: Duration,
    /// Most objects kept.
    pub max_entries: usize,
    /// Most bytes kept.
    pub max_bytes: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: false,
            ttl: Duration::from_secs(30),
            pinned_ttl: Duration::from_secs(600),
            max_entries: 1024,
            max_bytes: 8 << 20,
        }
    }
}

/// The on-disk cache of compiled custom plugins (`[plugin_cache]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginCache {
    /// A directory only the provider's user may write; empty: none (custom
    /// plugins are compiled at every start).
    pub dir: String,
}

/// Identity settings (`[identity]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    /// Which credential sources may serve a Mount that did not ask for pod identity.
    pub policy: IdentityPolicy,
    /// The cluster's OIDC provider ARN, when no environment variable names it.
    pub oidc_provider_arn: String,
    /// `DurationSeconds` of STS credentials (pod identity, provider RRSA,
    /// cross-account), 900 s to 12 h.
    #[serde(deserialize_with = "duration")]
    pub session_duration: Duration,
    /// `ExternalId` sent when assuming a `crossAccountRoleArn`; empty: none.
    pub cross_account_external_id: String,
    /// Credentials are refreshed this long before they expire.
    #[serde(deserialize_with = "duration")]
    pub refresh_margin: Duration,
    /// Identities whose credentials are kept.
    pub cache_max_entries: usize,
    /// Credentials unused this long are dropped.
    #[serde(deserialize_with = "duration")]
    pub cache_idle_ttl: Duration,
    /// How long a ServiceAccount's role annotation is reused.
    #[serde(deserialize_with = "duration")]
    pub service_account_cache_ttl: Duration,
    /// The ECS metadata server, `http(s)://host[:port]` (see
    /// [`Identity::metadata_base_url`]).
    pub metadata_url: String,
    /// The Kubernetes API server, `https://host[:port]` (plain `http` only
    /// to a loopback address: the API token is sent); empty: in-cluster
    /// (`KUBERNETES_SERVICE_HOST`). See [`Identity::kubernetes_base_url`].
    pub kubernetes_url: String,
    /// Bearer token file for the Kubernetes API.
    pub kubernetes_token_file: String,
    /// CA bundle of the Kubernetes API; empty with `kubernetes_url` set: system roots.
    pub kubernetes_ca_file: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            policy: IdentityPolicy::Upstream,
            oidc_provider_arn: String::new(),
            session_duration: Duration::from_secs(3600),
            cross_account_external_id: String::new(),
            refresh_margin: Duration::from_secs(180),
            cache_max_entries: 4096,
            cache_idle_ttl: Duration::from_secs(3600),
            service_account_cache_ttl: Duration::from_secs(60),
            metadata_url: "http://100.100.100.200".into(),
            kubernetes_url: String::new(),
            kubernetes_token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            kubernetes_ca_file: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into(),
        }
    }
}

impl Identity {
    /// `metadata_url` as a [`BaseUrl`] (plain HTTP allowed: the ECS metadata
    /// server is plain HTTP); the error names the key.
    pub fn metadata_base_url(&self) -> Result<BaseUrl, ConfigError> {
        BaseUrl::parse(&self.metadata_url, ClearText::Allowed)
            .map_err(|e| invalid_key("identity.metadata_url", e))
    }

    /// `kubernetes_url` as a [`BaseUrl`], `None` when empty (in-cluster).
    /// The rule `KubeClient` uses: plain HTTP only to a loopback address,
    /// since the API token is sent. The error names the key.
    pub fn kubernetes_base_url(&self) -> Result<Option<BaseUrl>, ConfigError> {
        if self.kubernetes_url.is_empty() {
            return Ok(None);
        }
        BaseUrl::parse(&self.kubernetes_url, ClearText::LoopbackOnly)
            .map(Some)
            .map_err(|e| invalid_key("identity.kubernetes_url", e))
    }
}

fn invalid_key(key: &str, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: error.to_string(),
    }
}

/// Which credential sources may serve a Mount that did not ask for pod identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityPolicy {
    /// The upstream provider's chain: the provider's and the node's
    /// identities serve any Mount (existing installs keep working).
    #[default]
    Upstream,
    /// Only the pod's own identity or the volume's nodePublishSecretRef.
    Strict,
}

/// Limits on Mounts (`[limits]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Upper bound on one Mount.
    #[serde(deserialize_with = "duration")]
    pub mount_timeout: Duration,
    /// How long before the caller's deadline the provider gives up.
    #[serde(deserialize_with = "duration")]
    pub deadline_margin: Duration,
    /// Objects of one Mount fetched at the same time.
    pub fetch_concurrency_per_mount: usize,
    /// Object fetches in flight across all Mounts (built-in plugins).
    pub fetch_concurrency: usize,
    /// The share of `fetch_concurrency` one namespace may hold.
    pub fetch_concurrency_per_namespace: usize,
    /// Object fetches in flight through custom (`path`) plugins, a pool of
    /// its own so that they can never take the built-ins' slots.
    pub custom_fetch_concurrency: usize,
    /// Linear memory all built-in plugin instances may hold at once, MiB.
    pub plugin_memory_mib: u64,
    /// Linear memory all custom plugin instances may hold at once, MiB.
    pub custom_plugin_memory_mib: u64,
    /// Bytes of fetched objects all Mounts in flight may hold at once.
    pub secret_bytes_in_flight: usize,
    /// Mounts served at the same time.
    pub mounts_in_flight: usize,
    /// The share of `mounts_in_flight` one namespace may hold; as many more
    /// of its Mounts may wait for their turn, further ones are refused.
    pub mounts_in_flight_per_namespace: usize,
    /// Response size above which a warning is logged.
    pub response_warn_bytes: usize,
    /// Response size above which the Mount fails.
    pub response_max_bytes: usize,
    /// Time in-flight Mounts get to finish on shutdown.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Largest Mount request accepted (gRPC message size).
    pub max_request_bytes: usize,
    /// Most objects in one SecretProviderClass.
    pub max_objects: usize,
    /// Longest `parameters.objects` text.
    pub max_objects_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mount_timeout: Duration::from_secs(30),
            deadline_margin: Duration::from_secs(1),
            fetch_concurrency_per_mount: 16,
            fetch_concurrency: 256,
            fetch_concurrency_per_namespace: 64,
            custom_fetch_concurrency: 32,
            plugin_memory_mib: 64,
            custom_plugin_memory_mib: 64,
            secret_bytes_in_flight: 32 << 20,
            mounts_in_flight: 512,
            mounts_in_flight_per_namespace: 256,
            response_warn_bytes: 1 << 20,
            response_max_bytes: 4 << 20,
            shutdown_grace: Duration::from_secs(20),
            max_request_bytes: 64 << 10,
            max_objects: 256,
            max_objects_bytes: 48 << 10,
        }
    }
}

/// The Alibaba Cloud API client (`[cloud]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cloud {
    /// Default region; empty means none.
    pub region: String,
    /// `vpc` or `public` default endpoints.
    pub network: Network,
    /// TCP/TLS connect timeout.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// Attempts for retryable errors (1 = no retry).
    pub max_attempts: u32,
    /// First backoff before a retry.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// Largest backoff between retries.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Endpoint patterns objects and plugins may ask for (see
    /// [`crate::net::parse_pattern`]).
    pub allowed_endpoints: Vec<String>,
    /// Extra PEM CA bundle; empty means none.
    pub ca_file: String,
    /// Per-product endpoint URLs.
    pub endpoints: BTreeMap<String, String>,
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud {
            region: String::new(),
            network: Network::Vpc,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_response_bytes: 8 << 20,
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            allowed_endpoints: crate::net::ALIBABA_CLOUD_ENDPOINT_PATTERNS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            ca_file: String::new(),
            endpoints: BTreeMap::new(),
        }
    }
}

impl Cloud {
    /// `region` as a [`Region`] (the one rule, [`Region::parse`]); `None`
    /// when empty. [`Config::validate`] refuses a config whose region is not
    /// one; the error names the key `cloud.region`.
    pub fn default_region(&self) -> Result<Option<Region>, ConfigError> {
        if self.region.is_empty() {
            return Ok(None);
        }
        Region::parse(&self.region)
            .map(Some)
            .map_err(|e| invalid_key("cloud.region", e))
    }
}

/// Which form of default endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// `<product>-vpc.<region>.aliyuncs.com`, reachable from inside a VPC.
    Vpc,
    /// `<product>.<region>.aliyuncs.com`.
    Public,
}

/// Resource limits of a plugin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Linear memory cap in MiB.
    pub memory_limit_mib: u64,
    /// Wall-clock time of one fetch.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest object a plugin may return.
    pub max_output_bytes: usize,
    /// Host calls (cloud, HTTP, identity) one fetch may make.
    pub max_host_calls: u32,
    /// Timeout of one HTTP request a plugin makes.
    #[serde(deserialize_with = "duration")]
    pub http_timeout: Duration,
    /// Largest HTTP answer a plugin may receive.
    pub http_max_response_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_limit_mib: 64,
            timeout: Duration::from_secs(10),
            max_output_bytes: 4 << 20,
            max_host_calls: 32,
            http_timeout: Duration::from_secs(5),
            http_max_response_bytes: 1 << 20,
        }
    }
}

/// What a plugin may use beyond `fetch` and `log` (`[plugins.<type>.capabilities]`).
/// Everything is denied unless granted here.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Origins the plugin may send HTTP requests to, `https://host[:port]`
    /// (plain `http://` only when written so).
    pub http: Vec<String>,
    /// Whether HTTP may reach internal addresses: private, shared, loopback,
    /// link-local, unique-local, reserved, cloud metadata (see
    /// [`crate::net::internal_range`]).
    pub allow_internal_addresses: bool,
    /// Signed Alibaba Cloud calls with the Mount's identity; default: yes for
    /// built-in plugins, no for component files.
    pub alibaba_cloud: Option<bool>,
    /// Audiences of the pod's service-account tokens the plugin may read.
    pub service_account_audiences: Vec<String>,
    /// Keys of the volume's nodePublishSecretRef the plugin may read.
    pub node_publish_secret_keys: Vec<String>,
    /// Whether the plugin may read the pod's namespace, name, UID and service account.
    pub pod_info: bool,
}

/// One `[plugins.<objectType>]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PluginRoute {
    /// A built-in plugin (`kms`, `oos`).
    pub builtin: Option<String>,
    /// A WebAssembly component file.
    pub path: Option<PathBuf>,
    /// `false` removes a default route.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides `plugin_defaults.memory_limit_mib`.
    pub memory_limit_mib: Option<u64>,
    /// Overrides `plugin_defaults.timeout`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Overrides `plugin_defaults.max_output_bytes`.
    pub max_output_bytes: Option<usize>,
    /// Overrides `plugin_defaults.max_host_calls`.
    pub max_host_calls: Option<u32>,
    /// Overrides `plugin_defaults.http_timeout`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub http_timeout: Option<Duration>,
    /// Overrides `plugin_defaults.http_max_response_bytes`.
    pub http_max_response_bytes: Option<usize>,
    /// A PEM bundle the plugin's HTTPS requests trust besides the system
    /// roots: the private CA of its backend.
    pub http_ca_file: Option<PathBuf>,
    /// What the plugin may use.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Settings passed to the plugin as key/value strings.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
}

impl PluginRoute {
    /// Whether the plugin may make signed Alibaba Cloud calls.
    pub fn grants_alibaba_cloud(&self) -> bool {
        self.capabilities
            .alibaba_cloud
            .unwrap_or(self.builtin.is_some())
    }
}

fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        let route = |name: &str| PluginRoute {
            builtin: Some(name.to_string()),
            enabled: true,
            ..PluginRoute::default()
        };
        Config {
            limits: Limits::default(),
            cloud: Cloud::default(),
            plugin_defaults: PluginLimits::default(),
            identity: Identity::default(),
            cache: Cache::default(),
            plugin_cache: PluginCache::default(),
            plugins: BUILTIN_PLUGINS
                .iter()
                .map(|name| (name.to_string(), route(name)))
                .collect(),
        }
    }
}

/// A configuration problem, with the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: {key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `plugins.vault.path`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl Config {
    /// Loads `path`, or the built-in defaults when `path` is `None`, and
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, shown) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
                path.to_path_buf(),
            ),
            None => (
                DEFAULT_CONFIG_TOML.to_string(),
                PathBuf::from("<built-in config.toml>"),
            ),
        };
        Config::parse(&text, &shown)
    }

    /// Parses and validates a config text; `shown` names it in errors.
    pub fn parse(text: &str, shown: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        // A file's [plugins] tables add to (or replace) the built-in routes.
        for (name, route) in Config::default().plugins {
            config.plugins.entry(name).or_insert(route);
        }
        config.plugins.retain(|_, route| route.enabled);
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message,
            })
        };
        let l = &self.limits;
        if l.mount_timeout.is_zero() {
            return invalid(
                "limits.mount_timeout",
                "must be more than 0, e.g. \"30s\"".into(),
            );
        }
        if l.deadline_margin >= l.mount_timeout {
            return invalid(
                "limits.deadline_margin",
                format!(
                    "must be shorter than limits.mount_timeout ({:?})",
                    l.mount_timeout
                ),
            );
        }
        if l.fetch_concurrency_per_mount == 0 {
            return invalid(
                "limits.fetch_concurrency_per_mount",
                "must be at least 1".into(),
            );
        }
        if l.fetch_concurrency == 0 {
            return invalid("limits.fetch_concurrency", "must be at least 1".into());
        }
        for (key, share, of, total) in [
            (
                "limits.fetch_concurrency_per_namespace",
                l.fetch_concurrency_per_namespace,
                "limits.fetch_concurrency",
                l.fetch_concurrency,
            ),
            (
                "limits.mounts_in_flight_per_namespace",
                l.mounts_in_flight_per_namespace,
                "limits.mounts_in_flight",
                l.mounts_in_flight,
            ),
        ] {
            if share == 0 || share > total {
                return invalid(
                    key,
                    format!(
                        "must be from 1 to {of} ({total}); below it, one namespace cannot take every slot of the node"
                    ),
                );
            }
        }
        if l.plugin_memory_mib == 0 || l.custom_plugin_memory_mib == 0 {
            return invalid(
                "limits.plugin_memory_mib",
                "limits.plugin_memory_mib and limits.custom_plugin_memory_mib must be at least 1"
                    .into(),
            );
        }
        if l.custom_fetch_concurrency == 0 {
            return invalid(
                "limits.custom_fetch_concurrency",
                "must be at least 1".into(),
            );
        }
        if l.mounts_in_flight == 0 || l.mounts_in_flight > 4096 {
            return invalid("limits.mounts_in_flight", "must be from 1 to 4096".into());
        }
        if l.max_objects == 0 {
            return invalid("limits.max_objects", "must be at least 1".into());
        }
        if l.max_objects_bytes == 0 || l.max_objects_bytes >= l.max_request_bytes {
            return invalid(
                "limits.max_objects_bytes",
                format!(
                    "must be more than 0 and less than limits.max_request_bytes ({})",
                    l.max_request_bytes
                ),
            );
        }
        if l.max_request_bytes > 16 << 20 {
            return invalid(
                "limits.max_request_bytes",
                "must be at most 16 MiB (a Mount request is a few KiB; every waiting request is held in memory)".into(),
            );
        }
        if l.secret_bytes_in_flight < l.response_max_bytes {
            return invalid(
                "limits.secret_bytes_in_flight",
                format!(
                    "must be at least limits.response_max_bytes ({}), or the largest Mount could never be served",
                    l.response_max_bytes
                ),
            );
        }
        if l.response_warn_bytes > l.response_max_bytes {
            return invalid(
                "limits.response_warn_bytes",
                format!(
                    "must not exceed limits.response_max_bytes ({})",
                    l.response_max_bytes
                ),
            );
        }
        self.cloud.default_region()?;
        if self.cloud.max_attempts == 0 {
            return invalid(
                "cloud.max_attempts",
                "must be at least 1 (1 means no retry)".into(),
            );
        }
        if self.cloud.request_timeout.is_zero() || self.cloud.connect_timeout.is_zero() {
            return invalid(
                "cloud.request_timeout",
                "request_timeout and connect_timeout must be more than 0".into(),
            );
        }
        for pattern in &self.cloud.allowed_endpoints {
            if let Err(message) = crate::net::validate_pattern(pattern) {
                return invalid("cloud.allowed_endpoints", message);
            }
        }
        for (product, url) in &self.cloud.endpoints {
            if let Err(e) = crate::net::parse_endpoint_url(url) {
                return invalid(&format!("cloud.endpoints.{product}"), e.to_string());
            }
        }
        let c = &self.cache;
        if c.ttl.is_zero() || c.pinned_ttl < c.ttl {
            return invalid(
                "cache.ttl",
                "cache.ttl must be more than 0 and cache.pinned_ttl at least as long".into(),
            );
        }
        if c.max_entries == 0 || c.max_bytes == 0 || c.max_bytes > 1 << 30 {
            return invalid(
                "cache.max_bytes",
                "cache.max_entries must be at least 1 and cache.max_bytes from 1 to 1 GiB".into(),
            );
        }
        let dir = &self.plugin_cache.dir;
        if !dir.is_empty()
            && (!dir.starts_with('/')
                || dir.contains('\0')
                || dir.split('/').any(|part| part == ".."))
        {
            return invalid(
                "plugin_cache.dir",
                format!(
                    "{dir:?} is not an absolute path without `..` (for example /var/cache/csi-secrets-store-provider-alibabacloud/plugins), or empty for no cache"
                ),
            );
        }
        let id = &self.identity;
        if !(900..=43200).contains(&id.session_duration.as_secs()) {
            return invalid(
                "identity.session_duration",
                "must be from 15m to 12h (STS DurationSeconds 900..43200)".into(),
            );
        }
        if id.refresh_margin >= id.session_duration {
            return invalid(
                "identity.refresh_margin",
                "must be shorter than identity.session_duration".into(),
            );
        }
        if id.cache_max_entries == 0 {
            return invalid("identity.cache_max_entries", "must be at least 1".into());
        }
        if !id.oidc_provider_arn.is_empty() && !id.oidc_provider_arn.starts_with("acs:ram::") {
            return invalid(
                "identity.oidc_provider_arn",
                "must look like acs:ram::<account-id>:oidc-provider/<name>".into(),
            );
        }
        id.metadata_base_url()?;
        id.kubernetes_base_url()?;
        check_plugin_limits("plugin_defaults", &self.plugin_defaults)?;
        if self.plugins.is_empty() {
            return invalid(
                "plugins",
                "no object type is routed; keep the built-in [plugins.kms] and [plugins.oos] or add a route".into(),
            );
        }
        for (name, route) in &self.plugins {
            let key = format!("plugins.{name}");
            if !is_valid_object_type(name) {
                return invalid(
                    &key,
                    format!(
                        "{name:?} is not a valid objectType: use 1-63 characters from a-z, 0-9, '-' and '_'"
                    ),
                );
            }
            match (&route.builtin, &route.path) {
                (Some(_), Some(_)) => {
                    return invalid(&key, "set either builtin or path, not both".into());
                }
                (None, None) => {
                    return invalid(
                        &key,
                        format!(
                            "set builtin = \"kms\" or \"oos\", or path = \"/path/to/{name}.wasm\""
                        ),
                    );
                }
                (Some(builtin), None) if !BUILTIN_PLUGINS.contains(&builtin.as_str()) => {
                    return invalid(
                        &format!("{key}.builtin"),
                        format!(
                            "no built-in plugin is called {builtin:?}; built-in plugins: {}",
                            BUILTIN_PLUGINS.join(", ")
                        ),
                    );
                }
                _ => {}
            }
            let route_limits = self.limits_for(route);
            check_plugin_limits(&key, &route_limits)?;
            let (budget_key, budget) = if route.builtin.is_some() {
                ("limits.plugin_memory_mib", l.plugin_memory_mib)
            } else {
                (
                    "limits.custom_plugin_memory_mib",
                    l.custom_plugin_memory_mib,
                )
            };
            if route_limits.memory_limit_mib > budget {
                return invalid(
                    &format!("{key}.memory_limit_mib"),
                    format!(
                        "is {} MiB, more than all instances of its class may use together ({budget_key} = {budget}); lower it or raise {budget_key}",
                        route_limits.memory_limit_mib
                    ),
                );
            }
            for origin in &route.capabilities.http {
                if let Err(e) = crate::net::parse_origin(origin) {
                    return invalid(&format!("{key}.capabilities.http"), e.to_string());
                }
            }
            if route.http_ca_file.is_some() && route.capabilities.http.is_empty() {
                return invalid(
                    &format!("{key}.http_ca_file"),
                    "is set, but capabilities.http grants no origin to use it with: list the plugin's HTTPS origins in capabilities.http, or remove http_ca_file".into(),
                );
            }
            for audience in &route.capabilities.service_account_audiences {
                if audience.is_empty() {
                    return invalid(
                        &format!("{key}.capabilities.service_account_audiences"),
                        "an audience must not be empty".into(),
                    );
                }
            }
            for (k, v) in &route.config {
                if plugin_config_value(v).is_none() {
                    return invalid(
                        &format!("{key}.config.{k}"),
                        "must be a string, number or boolean".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The effective limits of a route.
    pub fn limits_for(&self, route: &PluginRoute) -> PluginLimits {
        let d = &self.plugin_defaults;
        PluginLimits {
            memory_limit_mib: route.memory_limit_mib.unwrap_or(d.memory_limit_mib),
            timeout: route.timeout.unwrap_or(d.timeout),
            max_output_bytes: route.max_output_bytes.unwrap_or(d.max_output_bytes),
            max_host_calls: route.max_host_calls.unwrap_or(d.max_host_calls),
            http_timeout: route.http_timeout.unwrap_or(d.http_timeout),
            http_max_response_bytes: route
                .http_max_response_bytes
                .unwrap_or(d.http_max_response_bytes),
        }
    }
}

/// A plugin config value as the string the plugin receives.
pub fn plugin_config_value(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn check_plugin_limits(key: &str, limits: &PluginLimits) -> Result<(), ConfigError> {
    let invalid = |field: &str, message: &str| {
        Err(ConfigError::Invalid {
            key: format!("{key}.{field}"),
            message: message.to_string(),
        })
    };
    if limits.memory_limit_mib == 0 || limits.memory_limit_mib > 4096 {
        return invalid("memory_limit_mib", "must be from 1 to 4096");
    }
    if limits.timeout.is_zero() {
        return invalid("timeout", "must be more than 0, e.g. \"10s\"");
    }
    if limits.max_output_bytes == 0 {
        return invalid("max_output_bytes", "must be at least 1");
    }
    if limits.max_host_calls == 0 {
        return invalid("max_host_calls", "must be at least 1");
    }
    if limits.http_timeout.is_zero() {
        return invalid("http_timeout", "must be more than 0, e.g. \"5s\"");
    }
    if limits.http_max_response_bytes == 0 {
        return invalid("http_max_response_bytes", "must be at least 1");
    }
    Ok(())
}

/// An objectType name that can be a config table key and a log field.
pub fn is_valid_object_type(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\" or \"2m\""
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn the_shipped_config_toml_is_the_default() {
        let shipped = Config::load(None).unwrap();
        assert_eq!(shipped, Config::default());
        assert_eq!(shipped.plugins.keys().collect::<Vec<_>>(), ["kms", "oos"]);
    }

    #[test]
    fn a_file_overrides_key_by_key_and_adds_routes() {
        let config = parse(
            r#"
            [limits]
            mount_timeout = "45s"
            [plugins.vault]
            path = "/plugins/vault.wasm"
            timeout = "3s"
            [plugins.vault.config]
            address = "https://vault:8200"
            retries = 3
            "#,
        )
        .unwrap();
        assert_eq!(config.limits.mount_timeout, Duration::from_secs(45));
        assert_eq!(config.limits.fetch_concurrency, 256);
        assert_eq!(
            config.plugins.keys().collect::<Vec<_>>(),
            ["kms", "oos", "vault"]
        );
        let vault = &config.plugins["vault"];
        assert_eq!(config.limits_for(vault).timeout, Duration::from_secs(3));
        assert_eq!(config.limits_for(vault).memory_limit_mib, 64);
        assert_eq!(
            plugin_config_value(&vault.config["retries"]).as_deref(),
            Some("3")
        );
    }

    #[test]
    fn a_route_can_be_disabled() {
        let config = parse("[plugins.oos]\nbuiltin = \"oos\"\nenabled = false\n").unwrap();
        assert_eq!(config.plugins.keys().collect::<Vec<_>>(), ["kms"]);
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let cases = [
            (
                "[limits]\nmount_timout = \"1s\"\n",
                "unknown field `mount_timout`",
            ),
            ("[limits]\nmount_timeout = \"soon\"\n", "is not a duration"),
            (
                "[cloud]\nnetwork = \"internal\"\n",
                "unknown variant `internal`",
            ),
            (
                "[cloud]\nregion = \"CN HZ\"\n",
                "cloud.region: \"CN HZ\" is not a region id",
            ),
            (
                "[cloud]\nallowed_endpoints = [\"http://*\"]\n",
                "cloud.allowed_endpoints",
            ),
            (
                "[cloud]\nallowed_endpoints = [\"*.aliyuncs.com\"]\n",
                "cloud.allowed_endpoints: \"*.aliyuncs.com\": a \"*\" matches exactly one DNS label",
            ),
            (
                "[cloud]\nallowed_endpoints = [\"kms.*\"]\n",
                "cloud.allowed_endpoints: \"kms.*\": at least two literal labels",
            ),
            (
                "[cloud.endpoints]\nkms = \"ftp://x\"\n",
                "cloud.endpoints.kms",
            ),
            (
                "[identity]\nmetadata_url = \"http://100.100.100.200/latest\"\n",
                "identity.metadata_url: \"http://100.100.100.200/latest\" must be scheme://host[:port] with no path or query",
            ),
            (
                "[identity]\nkubernetes_url = \"ftp://h\"\n",
                "identity.kubernetes_url: \"ftp://h\" has scheme \"ftp\"",
            ),
            // The rule of the Kubernetes client, which sends a bearer
            // token: config validation accepted this before, and the
            // client refused it at start-up.
            (
                "[identity]\nkubernetes_url = \"http://10.0.0.1:6443\"\n",
                "identity.kubernetes_url: \"http://10.0.0.1:6443\": plain http is allowed only to a loopback address",
            ),
            (
                "[plugins.x]\npath = \"/x.wasm\"\n[plugins.x.capabilities]\nhttp = [\"https://v/p\"]\n",
                "plugins.x.capabilities.http: \"https://v/p\" must be scheme://host[:port] with no path or query; an allowed origin is scheme://host[:port]",
            ),
            (
                "[plugin_cache]\ndir = \"cache\"\n",
                "plugin_cache.dir: \"cache\" is not an absolute path",
            ),
            (
                "[plugin_cache]\ndir = \"/var/../tmp\"\n",
                "plugin_cache.dir",
            ),
            (
                "[plugins.vault]\ntimeout = \"1s\"\n",
                "plugins.vault: set builtin = \"kms\" or \"oos\", or path",
            ),
            (
                "[plugins.x]\nbuiltin = \"vault\"\n",
                "plugins.x.builtin: no built-in plugin is called \"vault\"",
            ),
            (
                "[plugins.Bad]\nbuiltin = \"kms\"\n",
                "is not a valid objectType",
            ),
            (
                "[plugins.x]\nbuiltin = \"kms\"\npath = \"/a.wasm\"\n",
                "either builtin or path",
            ),
            (
                "[plugin_defaults]\nmemory_limit_mib = 0\n",
                "plugin_defaults.memory_limit_mib: must be from 1 to 4096",
            ),
            (
                "[limits]\nresponse_warn_bytes = 10\nresponse_max_bytes = 5\n",
                "limits.response_warn_bytes",
            ),
            (
                "[plugins.x]\npath = \"/x.wasm\"\n[plugins.x.config]\nlist = [1]\n",
                "plugins.x.config.list",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn base_urls_of_identity_follow_the_clients_rules() {
        let id = |key: &str, url: &str| parse(&format!("[identity]\n{key} = {url:?}\n"));
        let config = id("kubernetes_url", "http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            config.identity.kubernetes_base_url().unwrap().unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(id("kubernetes_url", "https://10.0.0.1:6443").is_ok());
        assert!(id("kubernetes_url", "http://localhost:6443").is_ok());
        assert_eq!(
            Config::default().identity.kubernetes_base_url().unwrap(),
            None
        );
        // Plain HTTP is fine for the metadata server, not for the API server,
        // which is sent a bearer token.
        let config = id("metadata_url", "http://10.0.0.1:8080").unwrap();
        assert_eq!(
            config.identity.metadata_base_url().unwrap(),
            "http://10.0.0.1:8080"
        );
        let e = id("kubernetes_url", "http://10.0.0.1:8080").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config: identity.kubernetes_url: \"http://10.0.0.1:8080\": plain http is allowed only to a loopback address (a bearer token is sent); use https://"
        );
    }

    #[test]
    fn regions_and_object_types() {
        let region = |r: &str| {
            parse(&format!("[cloud]\nregion = {r:?}\n")).map(|c| c.cloud.default_region().unwrap())
        };
        assert_eq!(region("cn-hangzhou").unwrap().unwrap(), "cn-hangzhou");
        assert_eq!(region("ap-southeast-1").unwrap().unwrap(), "ap-southeast-1");
        assert_eq!(region("").unwrap(), None);
        // Refused with the one rule of `Region` (a leading digit was
        // accepted here before, and refused in the metadata server's answer).
        for bad in ["cn-hangzhou.evil.com", "1a", "cn-", "-cn", "CN"] {
            let e = region(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("cloud.region: {bad:?} is not a region id")),
                "{bad}: {e}"
            );
        }
        assert!(is_valid_object_type("kms"));
        assert!(is_valid_object_type("my_vault-2"));
        assert!(!is_valid_object_type("KMS"));
        assert!(!is_valid_object_type("a.b"));
    }
}
