//! Prometheus metrics, served by the health server at `/metrics`.
//!
//! One [`Metrics`] per [`Provider`](crate::Provider), made with it and
//! shared (`Arc`) by the parts that count: the gRPC server (Mounts), the
//! Mount (object fetches), the cloud client (backend calls), the credential
//! cache, shared fetches and the value cache, and the plugin runtime. No
//! global: two providers in one process (the tests) count apart.
//!
//! Every label has a small, fixed set of values: gRPC code names, routed
//! objectTypes (the operator's config.toml), known products, actions and
//! error codes (anything else is `other`), chain links, plugin kinds. No
//! pod, namespace, object name, endpoint, identity or value is ever a label.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The prefix of every metric of the provider.
pub const PREFIX: &str = "alibabacloud_provider";

/// The OpenMetrics content type (served when the scraper asks for it).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The Prometheus text format's content type (served otherwise).
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Products whose name is a label value; others are `other`.
const PRODUCTS: &[&str] = &["kms", "oos", "sts", "ecs", "ram", "resourcemanager"];

/// Actions whose name is a label value; others are `other`.
const ACTIONS: &[&str] = &[
    "GetSecretValue",
    "DescribeSecret",
    "ListSecretVersionIds",
    "GetSecretParameter",
    "GetSecretParameters",
    "GetParameter",
    "GetParameters",
    "AssumeRole",
    "AssumeRoleWithOIDC",
    "GetCallerIdentity",
];

/// Error codes whose name is a label value; others are `other`. The codes
/// of KMS, OOS, STS and the gateway that an operator acts on.
const ERROR_CODES: &[&str] = &[
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Throttling.Resource",
    "Rejected.Throttling",
    "ServiceUnavailable",
    "ServiceUnavailableTemporary",
    "InternalError",
    "InternalFailure",
    "Forbidden.ResourceNotFound",
    "Forbidden.NoPermission",
    "Forbidden.KmsServiceNotEnabled",
    "Forbidden.RAM",
    "Forbidden.AccessDenied",
    "EntityNotExists.Parameter",
    "EntityNotExist.Role",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidTimeStamp.Expired",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.Malformed",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "InvalidParameter",
    "InvalidParameter.RoleArn",
    "InvalidParameter.DurationSeconds",
    "AuthenticationFail.NoPermission",
    "AuthenticationFail.OIDCToken.Expired",
    "AuthenticationFail.OIDCToken.Invalid",
    "AuthenticationFail.OIDCToken.InvalidSignature",
    "AuthenticationFail.OIDCToken.AudienceNotMatch",
    "NoPermission",
    "InvalidAction.NotFound",
    "HTTP400",
    "HTTP403",
    "HTTP404",
    "HTTP429",
    "HTTP500",
    "HTTP502",
    "HTTP503",
    "HTTP504",
    // Not sent or not answered (no service code).
    "denied",
    "credentials",
    "timeout",
    "transport",
];

/// `value` if it is one of `known`, else `other`.
fn bounded(value: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or("other")
}

/// Whether an error code or HTTP status means the backend throttled us
/// (the rule retries and the plugin SDK use too).
pub fn is_throttling(code: &str, http_status: u16) -> bool {
    alibabacloud_api_errors::is_throttling(code, http_status)
}

/// A link of the credential chain, as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialLink {
    /// The pod's service account token → `AssumeRoleWithOIDC`.
    PodIdentity,
    /// The provider's own service account token → `AssumeRoleWithOIDC`.
    ProviderRrsa,
    /// An access key → `AssumeRole` (`ALICLOUD_ROLE_ARN`).
    RamRole,
    /// An object's `crossAccountRoleArn` → `AssumeRole`.
    CrossAccount,
    /// The node's ECS RAM role, from the metadata server.
    EcsRamRole,
    /// The Mount's nodePublishSecretRef access key (never cached).
    NodePublishSecret,
    /// The provider's environment access key (never cached).
    EnvironmentAccessKey,
}

impl CredentialLink {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialLink::PodIdentity => "pod_identity",
            CredentialLink::ProviderRrsa => "provider_rrsa",
            CredentialLink::RamRole => "ram_role",
            CredentialLink::CrossAccount => "cross_account",
            CredentialLink::EcsRamRole => "ecs_ram_role",
            CredentialLink::NodePublishSecret => "node_publish_secret",
            CredentialLink::EnvironmentAccessKey => "environment_access_key",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MountLabels {
    grpc_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FetchLabels {
    object_type: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    product: &'static str,
    action: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProductActionLabels {
    product: &'static str,
    action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProductLabels {
    product: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LinkResultLabels {
    link: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LinkLabels {
    link: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn mount_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

fn backend_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

fn instantiation_histogram() -> Histogram {
    Histogram::new([
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    ])
}

/// The provider's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    mounts: Family<MountLabels, Counter>,
    mount_duration: HistogramFamily<MountLabels>,
    mounts_in_flight: Gauge,
    object_fetches: Family<FetchLabels, Counter>,
    object_fetches_in_flight: Gauge,
    backend_calls: Family<BackendLabels, Counter>,
    backend_duration: HistogramFamily<ProductLabels>,
    backend_retries: Family<ProductActionLabels, Counter>,
    backend_throttled: Family<ProductActionLabels, Counter>,
    credential_cache: Family<LinkResultLabels, Counter>,
    credential_refreshes: Family<LinkResultLabels, Counter>,
    credential_resolutions: Family<LinkLabels, Counter>,
    fetches_coalesced: Counter,
    value_cache: Family<ResultLabels, Counter>,
    plugin_instantiation: HistogramFamily<PluginLabels>,
    plugin_traps: Family<PluginLabels, Counter>,
    plugin_timeouts: Family<PluginLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered once in a registry of their own.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let start_time: Gauge<f64, AtomicU64> = Gauge::default();
        start_time.set(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64(),
        );
        let build_info: Family<VersionLabels, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let metrics = Metrics {
            registry: Registry::default(),
            mounts: Family::default(),
            mount_duration: Family::new_with_constructor(mount_histogram),
            mounts_in_flight: Gauge::default(),
            object_fetches: Family::default(),
            object_fetches_in_flight: Gauge::default(),
            backend_calls: Family::default(),
            backend_duration: Family::new_with_constructor(backend_histogram),
            backend_retries: Family::default(),
            backend_throttled: Family::default(),
            credential_cache: Family::default(),
            credential_refreshes: Family::default(),
            credential_resolutions: Family::default(),
            fetches_coalesced: Counter::default(),
            value_cache: Family::default(),
            plugin_instantiation: Family::new_with_constructor(instantiation_histogram),
            plugin_traps: Family::default(),
            plugin_timeouts: Family::default(),
        };
        {
            let r = root.sub_registry_with_prefix(PREFIX);
            r.register("build_info", "The provider's version (value 1)", build_info);
            r.register_with_unit(
                "start_time",
                "When the process started, in seconds since the Unix epoch",
                Unit::Seconds,
                start_time,
            );
            r.register(
                "mounts",
                "Mount requests answered, by gRPC status code",
                metrics.mounts.clone(),
            );
            r.register_with_unit(
                "mount_duration",
                "Time to answer a Mount request, by gRPC status code",
                Unit::Seconds,
                metrics.mount_duration.clone(),
            );
            r.register(
                "mounts_in_flight",
                "Mount requests being served",
                metrics.mounts_in_flight.clone(),
            );
            r.register(
                "object_fetches",
                "Objects fetched for Mounts (from the backend, a shared fetch or the value cache), by objectType and result",
                metrics.object_fetches.clone(),
            );
            r.register(
                "object_fetches_in_flight",
                "Objects of Mounts being fetched",
                metrics.object_fetches_in_flight.clone(),
            );
            r.register(
                "backend_calls",
                "Signed Alibaba Cloud API calls (retries included in one call), by product, action and final error code (ok: success; other: a code not listed)",
                metrics.backend_calls.clone(),
            );
            r.register_with_unit(
                "backend_call_duration",
                "Time of an Alibaba Cloud API call, retries included, by product",
                Unit::Seconds,
                metrics.backend_duration.clone(),
            );
            r.register(
                "backend_retries",
                "Alibaba Cloud API attempts that were retried, by product and action",
                metrics.backend_retries.clone(),
            );
            r.register(
                "backend_throttled",
                "Alibaba Cloud API attempts answered with a throttling code or HTTP 429, by product and action",
                metrics.backend_throttled.clone(),
            );
            r.register(
                "credential_cache_requests",
                "Credential cache lookups, by chain link and result (hit, miss)",
                metrics.credential_cache.clone(),
            );
            r.register(
                "credential_refreshes",
                "Credential loads (STS or metadata server) of the credential cache, by chain link and result (ok, error)",
                metrics.credential_refreshes.clone(),
            );
            r.register(
                "credential_resolutions",
                "Mount identities resolved, by the chain link that gave the credentials",
                metrics.credential_resolutions.clone(),
            );
            r.register(
                "fetches_coalesced",
                "Object fetches that joined an identical fetch already in flight instead of calling the backend",
                metrics.fetches_coalesced.clone(),
            );
            r.register(
                "value_cache_requests",
                "Value cache lookups (when [cache] is enabled), by result (hit, miss)",
                metrics.value_cache.clone(),
            );
            r.register_with_unit(
                "plugin_instantiation",
                "Time to instantiate a plugin for a fetch, by plugin (built-in name, or custom)",
                Unit::Seconds,
                metrics.plugin_instantiation.clone(),
            );
            r.register(
                "plugin_traps",
                "Plugin fetches that trapped (crashed), by plugin",
                metrics.plugin_traps.clone(),
            );
            r.register(
                "plugin_timeouts",
                "Plugin fetches stopped at their deadline, by plugin",
                metrics.plugin_timeouts.clone(),
            );
        }
        metrics.zero_known_series();
        Metrics {
            registry: root,
            ..metrics
        }
    }

    /// Creates the series operators alert on at zero, so that a rate over
    /// them exists before the first event (families without a series are
    /// not exposed at all).
    fn zero_known_series(&self) {
        for grpc_code in [
            "OK",
            "InvalidArgument",
            "NotFound",
            "PermissionDenied",
            "Unavailable",
            "DeadlineExceeded",
            "ResourceExhausted",
            "Internal",
        ] {
            drop(self.mounts.get_or_create(&MountLabels { grpc_code }));
        }
        for (product, action) in [
            ("kms", "GetSecretValue"),
            ("oos", "GetSecretParameter"),
            ("sts", "AssumeRole"),
            ("sts", "AssumeRoleWithOIDC"),
        ] {
            let labels = ProductActionLabels { product, action };
            drop(self.backend_retries.get_or_create(&labels));
            drop(self.backend_throttled.get_or_create(&labels));
        }
        for link in [
            CredentialLink::PodIdentity,
            CredentialLink::ProviderRrsa,
            CredentialLink::RamRole,
            CredentialLink::CrossAccount,
            CredentialLink::EcsRamRole,
        ] {
            for result in ["ok", "error"] {
                drop(self.credential_refreshes.get_or_create(&LinkResultLabels {
                    link: link.as_str(),
                    result,
                }));
            }
            for result in ["hit", "miss"] {
                drop(self.credential_cache.get_or_create(&LinkResultLabels {
                    link: link.as_str(),
                    result,
                }));
            }
        }
        for result in ["hit", "miss"] {
            drop(self.value_cache.get_or_create(&ResultLabels { result }));
        }
        for plugin in ["kms", "oos"] {
            let labels = PluginLabels {
                plugin: plugin.to_string(),
            };
            drop(self.plugin_traps.get_or_create(&labels));
            drop(self.plugin_timeouts.get_or_create(&labels));
        }
    }

    /// A fresh, unshared set (for parts built without a provider: tests).
    pub fn detached() -> Arc<Metrics> {
        Arc::new(Metrics::new())
    }

    /// The registry (to encode, or to add metrics to in tests).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics in OpenMetrics text (`openmetrics`) or the Prometheus
    /// text format 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut text = String::new();
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        };
        // Writing to a String does not fail.
        encoded.expect("encoding metrics into a String");
        text
    }

    /// A Mount started: counted in flight until the guard is dropped.
    pub fn mount_started(self: &Arc<Self>) -> InFlight {
        self.mounts_in_flight.inc();
        InFlight {
            gauge: self.mounts_in_flight.clone(),
        }
    }

    /// A Mount answered with `grpc_code` (a name of [`tonic::Code`], as
    /// [`grpc_code_name`] gives it) after `elapsed`.
    pub fn mount_done(&self, grpc_code: &'static str, elapsed: Duration) {
        let labels = MountLabels { grpc_code };
        self.mounts.get_or_create(&labels).inc();
        self.mount_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// An object of a Mount is being fetched until the guard is dropped.
    pub fn object_fetch_started(&self) -> InFlight {
        self.object_fetches_in_flight.inc();
        InFlight {
            gauge: self.object_fetches_in_flight.clone(),
        }
    }

    /// An object of a routed `object_type` was fetched with `result`
    /// (`ok`, or a failure class such as `not_found`).
    pub fn object_fetched(&self, object_type: &str, result: &'static str) {
        self.object_fetches
            .get_or_create(&FetchLabels {
                object_type: object_type.to_string(),
                result,
            })
            .inc();
    }

    /// A backend call ended: `code` is `None` for success, else the final
    /// error code (bounded here).
    pub fn backend_call(&self, product: &str, action: &str, code: Option<&str>, elapsed: Duration) {
        let product = bounded(product, PRODUCTS);
        let action = bounded(action, ACTIONS);
        let code = match code {
            None => "ok",
            Some(code) => bounded(code, ERROR_CODES),
        };
        self.backend_calls
            .get_or_create(&BackendLabels {
                product,
                action,
                code,
            })
            .inc();
        self.backend_duration
            .get_or_create(&ProductLabels { product })
            .observe(elapsed.as_secs_f64());
    }

    /// An attempt of a backend call is retried.
    pub fn backend_retry(&self, product: &str, action: &str) {
        self.backend_retries
            .get_or_create(&ProductActionLabels {
                product: bounded(product, PRODUCTS),
                action: bounded(action, ACTIONS),
            })
            .inc();
    }

    /// An attempt of a backend call was throttled.
    pub fn backend_throttled(&self, product: &str, action: &str) {
        self.backend_throttled
            .get_or_create(&ProductActionLabels {
                product: bounded(product, PRODUCTS),
                action: bounded(action, ACTIONS),
            })
            .inc();
    }

    /// A credential cache lookup for `link`: a hit or a miss.
    pub fn credential_lookup(&self, link: CredentialLink, hit: bool) {
        self.credential_cache
            .get_or_create(&LinkResultLabels {
                link: link.as_str(),
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// A credential load for `link` ended.
    pub fn credential_refresh(&self, link: CredentialLink, ok: bool) {
        self.credential_refreshes
            .get_or_create(&LinkResultLabels {
                link: link.as_str(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// A Mount's identity was resolved by `link`.
    pub fn credential_resolved(&self, link: CredentialLink) {
        self.credential_resolutions
            .get_or_create(&LinkLabels {
                link: link.as_str(),
            })
            .inc();
    }

    /// A fetch joined one in flight.
    pub fn fetch_coalesced(&self) {
        self.fetches_coalesced.inc();
    }

    /// A value cache lookup.
    pub fn value_cache_lookup(&self, hit: bool) {
        self.value_cache
            .get_or_create(&ResultLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// A plugin instance was created in `elapsed`.
    pub fn plugin_instantiated(&self, plugin: &str, elapsed: Duration) {
        self.plugin_instantiation
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A plugin fetch trapped.
    pub fn plugin_trapped(&self, plugin: &str) {
        self.plugin_traps
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .inc();
    }

    /// A plugin fetch ran out of time.
    pub fn plugin_timed_out(&self, plugin: &str) {
        self.plugin_timeouts
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .inc();
    }
}

/// Counts one thing in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The name of a gRPC status code as Go's `codes.Code.String()` writes it
/// (`OK`, `InvalidArgument`, ...), the usual label value.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_bounded() {
        let metrics = Metrics::new();
        metrics.backend_call("kms", "GetSecretValue", None, Duration::from_millis(3));
        metrics.backend_call(
            "my-product",
            "DeleteEverything",
            Some("Custom.Code.db-password"),
            Duration::from_millis(3),
        );
        metrics.backend_call("sts", "AssumeRole", Some("Throttling.User"), Duration::ZERO);
        let text = metrics.encode(false);
        assert!(
            text.contains(
                r#"alibabacloud_provider_backend_calls_total{product="kms",action="GetSecretValue",code="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"alibabacloud_provider_backend_calls_total{product="other",action="other",code="other"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"code="Throttling.User""#), "{text}");
        for leaked in ["my-product", "DeleteEverything", "db-password"] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
    }

    #[test]
    fn both_formats_carry_every_family() {
        let metrics = Arc::new(Metrics::new());
        {
            let _mount = metrics.mount_started();
            metrics.mount_done("OK", Duration::from_millis(12));
        }
        metrics.plugin_instantiated("kms", Duration::from_micros(80));
        let open = metrics.encode(true);
        let text = metrics.encode(false);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(!text.contains("# EOF"), "{text}");
        for family in [
            "alibabacloud_provider_build_info",
            "alibabacloud_provider_start_time_seconds",
            "alibabacloud_provider_mounts_total",
            "alibabacloud_provider_mount_duration_seconds_bucket",
            "alibabacloud_provider_mounts_in_flight 0",
            "alibabacloud_provider_plugin_instantiation_seconds_count{plugin=\"kms\"} 1",
        ] {
            assert!(open.contains(family), "{family} not in {open}");
            assert!(text.contains(family), "{family} not in {text}");
        }
    }

    #[test]
    fn throttling_codes() {
        for (code, status) in [
            ("Throttling", 400),
            ("Throttling.User", 400),
            ("Rejected.Throttling", 400),
            ("Anything", 429),
        ] {
            assert!(is_throttling(code, status), "{code}");
        }
        for (code, status) in [("ServiceUnavailable", 503), ("Forbidden.NoPermission", 403)] {
            assert!(!is_throttling(code, status), "{code}");
        }
    }
}
