//! A minimal in-cluster Kubernetes client that reads a ServiceAccount's
//! `ack.alibabacloud.com/role-arn`, behind a bounded TTL cache.
//!
//! Pod identity needs the role the pod's ServiceAccount is annotated with.
//! A rollout of 500 pods of one ServiceAccount must not be 500 GETs: the
//! cache keeps answers (a role or none) for a TTL and lets one GET serve
//! every concurrent lookup of the same account.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::http::{read_capped, transport_cause};
use crate::net::{BaseUrl, ClearText};
use crate::singleflight::{Expiring, Settings as FlightSettings, SingleFlight};
use crate::spc::Sensitive;

/// The ServiceAccount annotation that names the pod's RAM role.
pub const ROLE_ARN_ANNOTATION: &str = "ack.alibabacloud.com/role-arn";
/// The in-cluster ServiceAccount token, projected and rotated by kubelet.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA bundle next to it.
pub const DEFAULT_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Set by kubelet in every pod; absent outside a cluster.
pub const ENV_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// The API server's port, next to [`ENV_SERVICE_HOST`].
pub const ENV_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";

/// The advice every authorization error ends with.
const RBAC_ADVICE: &str = "the provider's ServiceAccount needs RBAC `get` on `serviceaccounts` to read the annotation ack.alibabacloud.com/role-arn; grant it, or name the role in the SecretProviderClass parameter podRoleArn instead";

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// `https://host:port` (plain `http` only for a loopback address, as in
    /// tests: [`ClearText::LoopbackOnly`]).
    pub base_url: BaseUrl,
    /// The bearer token file, re-read when it changes.
    pub token_file: PathBuf,
    /// PEM bundle of the cluster CA; when set, the only roots trusted.
    pub ca_file: Option<PathBuf>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// The token file is re-read at least this often, even if it looks unchanged.
    pub token_reload_interval: Duration,
}

impl KubeConfig {
    /// An explicit API server, token file and optional CA (tests, or a
    /// provider run outside the cluster).
    pub fn new(
        base_url: BaseUrl,
        token_file: impl Into<PathBuf>,
        ca_file: Option<PathBuf>,
    ) -> KubeConfig {
        KubeConfig {
            base_url,
            token_file: token_file.into(),
            ca_file,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            token_reload_interval: Duration::from_secs(60),
        }
    }

    /// The in-cluster configuration, as client-go builds it:
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (read
    /// through `lookup`), the token file and the CA file (usually
    /// [`DEFAULT_TOKEN_FILE`] and [`DEFAULT_CA_FILE`]). `Ok(None)` when
    /// either variable is unset: not running in a cluster.
    pub fn in_cluster(
        lookup: impl Fn(&str) -> Option<String>,
        token_file: &Path,
        ca_file: &Path,
    ) -> Result<Option<KubeConfig>, KubeError> {
        let get = |name| lookup(name).map(|v| v.trim().to_string());
        let (Some(host), Some(port)) = (
            get(ENV_SERVICE_HOST).filter(|v| !v.is_empty()),
            get(ENV_SERVICE_PORT).filter(|v| !v.is_empty()),
        ) else {
            return Ok(None);
        };
        if port.parse::<u16>().is_err() {
            return Err(KubeError::Config(format!(
                "{ENV_SERVICE_PORT}={port:?} is not a port number"
            )));
        }
        // An IPv6 service address needs brackets in a URL.
        let host = if host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{host}]")
        } else {
            host
        };
        let text = format!("https://{host}:{port}");
        let base_url = BaseUrl::parse(&text, ClearText::LoopbackOnly).map_err(|e| {
            KubeError::Config(format!(
                "API server URL from {ENV_SERVICE_HOST} and {ENV_SERVICE_PORT}: {e}"
            ))
        })?;
        Ok(Some(KubeConfig::new(
            base_url,
            token_file,
            Some(ca_file.to_path_buf()),
        )))
    }
}

/// Why a ServiceAccount could not be read. Messages never hold the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// No Kubernetes client: not in a cluster, or no API token mounted.
    #[error(
        "cannot read ServiceAccount {namespace}/{name}: the provider has no Kubernetes API access (not in a cluster, or no API token mounted, e.g. chart value rbac.readServiceAccounts=false), so it cannot read the annotation {}; name the role in the SecretProviderClass parameter podRoleArn instead",
        ROLE_ARN_ANNOTATION
    )]
    NotInCluster {
        /// The pod's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
    },
    /// A namespace or name that Kubernetes would not accept.
    #[error("invalid ServiceAccount {what} {value}: {why}")]
    InvalidName {
        /// `namespace` or `name`.
        what: &'static str,
        /// The value, quoted and shortened.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The client's configuration is unusable (start-up).
    #[error("Kubernetes client: {0}")]
    Config(String),
    /// The bearer token file cannot be read.
    #[error("Kubernetes client: cannot read the ServiceAccount token {path}: {cause}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// 401: the API server did not accept the provider's token.
    #[error(
        "reading ServiceAccount {namespace}/{name}: the Kubernetes API rejected the provider's token (HTTP 401 Unauthorized; is {token_file} the provider's current ServiceAccount token?); {}",
        RBAC_ADVICE
    )]
    Unauthorized {
        /// The pod's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The token file used.
        token_file: String,
    },
    /// 403: RBAC does not let the provider read ServiceAccounts.
    #[error(
        "reading ServiceAccount {namespace}/{name}: HTTP 403 Forbidden ({message}); {}",
        RBAC_ADVICE
    )]
    Forbidden {
        /// The pod's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// Another HTTP error.
    #[error(
        "reading ServiceAccount {namespace}/{name}: HTTP {status} from the Kubernetes API ({message})"
    )]
    Status {
        /// The pod's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// HTTP status.
        status: u16,
        /// The API server's message, shortened.
        message: String,
    },
    /// No answer, or an unreadable one.
    #[error(
        "reading ServiceAccount {namespace}/{name} from the Kubernetes API at {server}: {cause}"
    )]
    Transport {
        /// The pod's namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The API server's base URL.
        server: String,
        /// What went wrong.
        cause: String,
    },
}

/// Counters of a [`KubeClient`].
#[derive(Debug, Default)]
pub struct KubeStats {
    /// ServiceAccount GETs sent (retries included).
    pub requests: AtomicU64,
    /// Times the token file was (re-)read.
    pub token_reads: AtomicU64,
}

/// When the token file was read, and what it looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct TokenState {
    value: Sensitive<String>,
    stamp: Option<FileStamp>,
    read_at: Instant,
}

/// A client of the in-cluster Kubernetes API, for ServiceAccount GETs only.
pub struct KubeClient {
    base: String,
    http: reqwest::Client,
    token_file: PathBuf,
    token_reload_interval: Duration,
    max_body_bytes: usize,
    token: Mutex<TokenState>,
    stats: KubeStats,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("base", &self.base)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Builds the client: reads the CA and the token now, so that a broken
    /// mount shows at start-up rather than at the first pod. The base URL
    /// is held to [`ClearText::LoopbackOnly`] whatever policy it was parsed
    /// with (config validation and [`KubeConfig::in_cluster`] use that one).
    pub fn new(config: KubeConfig) -> Result<KubeClient, KubeError> {
        let base = BaseUrl::parse(config.base_url.as_str(), ClearText::LoopbackOnly)
            .map_err(|e| KubeError::Config(format!("API server URL: {e}")))?
            .as_str()
            .to_string();
        let mut builder = crate::http::client_builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "csi-secrets-store-provider-alibabacloud/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(ca_file) = &config.ca_file {
            let certs = crate::http::read_ca_bundle(ca_file)
                .map_err(|e| KubeError::Config(format!("the cluster CA: {e}")))?;
            // Only the cluster CA, as client-go: the bearer token must never
            // go to a server that a public CA vouches for.
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| KubeError::Config(format!("cannot build the HTTP client: {e}")))?;
        let (value, stamp) = read_token(&config.token_file)?;
        Ok(KubeClient {
            base,
            http,
            token_file: config.token_file,
            token_reload_interval: config.token_reload_interval,
            max_body_bytes: config.max_body_bytes,
            token: Mutex::new(TokenState {
                value,
                stamp,
                read_at: Instant::now(),
            }),
            stats: KubeStats {
                token_reads: AtomicU64::new(1),
                ..KubeStats::default()
            },
        })
    }

    /// The client's counters.
    pub fn stats(&self) -> &KubeStats {
        &self.stats
    }

    /// The annotations of ServiceAccount `namespace/name` (empty if it has
    /// none); `Ok(None)` if it does not exist.
    pub async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, KubeError> {
        check_names(namespace, name)?;
        let url = format!(
            "{}/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            self.base
        );
        let mut token = self.current_token(false)?;
        let mut retried = false;
        loop {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .http
                .get(&url)
                .bearer_auth(token.0.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| self.transport(namespace, name, describe(&e)))?;
            let status = response.status().as_u16();
            tracing::debug!(namespace, name, status, "ServiceAccount GET");
            if status == 401 && !retried {
                // Kubelet may have rotated the token since we read it.
                let fresh = self.current_token(true)?;
                if fresh.0 != token.0 {
                    token = fresh;
                    retried = true;
                    continue;
                }
            }
            if status == 404 {
                return Ok(None);
            }
            let body = read_capped(response, self.max_body_bytes)
                .await
                .map_err(|cause| self.transport(namespace, name, cause.to_string()))?;
            return match status {
                200 => parse_annotations(&body)
                    .map(Some)
                    .map_err(|cause| self.transport(namespace, name, cause.to_string())),
                401 => Err(KubeError::Unauthorized {
                    namespace: namespace.into(),
                    name: name.into(),
                    token_file: self.token_file.display().to_string(),
                }),
                403 => Err(KubeError::Forbidden {
                    namespace: namespace.into(),
                    name: name.into(),
                    message: status_message(&body),
                }),
                _ => Err(KubeError::Status {
                    namespace: namespace.into(),
                    name: name.into(),
                    status,
                    message: status_message(&body),
                }),
            };
        }
    }

    fn transport(&self, namespace: &str, name: &str, cause: String) -> KubeError {
        KubeError::Transport {
            namespace: namespace.into(),
            name: name.into(),
            server: self.base.clone(),
            cause,
        }
    }

    /// The token, re-read if the file changed, the reload interval passed,
    /// or `force`. A failed re-read keeps the old token (kubelet swaps the
    /// file atomically, so a failure is usually transient).
    fn current_token(&self, force: bool) -> Result<Sensitive<String>, KubeError> {
        let mut state = self.token.lock().expect("kube token lock");
        let now = Instant::now();
        let stale = force
            || now.duration_since(state.read_at) >= self.token_reload_interval
            || stamp(&self.token_file) != state.stamp;
        if stale {
            state.read_at = now;
            match read_token(&self.token_file) {
                Ok((value, stamp)) => {
                    self.stats.token_reads.fetch_add(1, Ordering::Relaxed);
                    state.value = value;
                    state.stamp = stamp;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "keeping the previous Kubernetes token");
                }
            }
        }
        Ok(Sensitive(state.value.0.clone()))
    }
}

fn stamp(path: &Path) -> Option<FileStamp> {
    // `metadata` follows symlinks: kubelet's projected volumes swap a
    // `..data` link, which changes the target's mtime.
    std::fs::metadata(path).ok().map(|m| FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

fn read_token(path: &Path) -> Result<(Sensitive<String>, Option<FileStamp>), KubeError> {
    let error = |cause: String| KubeError::Token {
        path: path.display().to_string(),
        cause,
    };
    let stamp = stamp(path);
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(error("the file is empty".into()));
    }
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err(error(
            "the token has characters not allowed in an HTTP header".into(),
        ));
    }
    Ok((Sensitive(token.to_string()), stamp))
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_string()
    } else {
        transport_cause(error)
            + &crate::http::certificate_hint(error, "identity.kubernetes_ca_file (the cluster CA)")
    }
}

/// Checks `namespace` (a DNS label) and `name` (a DNS subdomain) before they
/// go into a URL path.
fn check_names(namespace: &str, name: &str) -> Result<(), KubeError> {
    let invalid = |what, value: &str, why| KubeError::InvalidName {
        what,
        value: shorten(value),
        why,
    };
    if !is_dns_label(namespace) {
        return Err(invalid(
            "namespace",
            namespace,
            "not a DNS label (1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit)",
        ));
    }
    if name.len() > 253 || !name.split('.').all(is_dns_label) {
        return Err(invalid(
            "name",
            name,
            "not a DNS subdomain (at most 253 characters: dot-separated lowercase letters, digits or '-')",
        ));
    }
    Ok(())
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn shorten(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// A body that is not a ServiceAccount ([`parse_annotations`]). Only the
/// position is shown: serde's message could quote the body.
#[derive(Debug, thiserror::Error)]
#[error("the answer is not a ServiceAccount (line {}, column {})", .0.line(), .0.column())]
struct NotAServiceAccount(#[source] serde_json::Error);

/// `metadata.annotations` of a ServiceAccount body.
fn parse_annotations(body: &[u8]) -> Result<BTreeMap<String, String>, NotAServiceAccount> {
    #[derive(serde::Deserialize)]
    struct Account {
        metadata: Metadata,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    let account: Account = serde_json::from_slice(body).map_err(NotAServiceAccount)?;
    Ok(account.metadata.annotations.unwrap_or_default())
}

/// The `message` of a Kubernetes `Status` body, shortened.
fn status_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no Status message".to_string());
    let clean: Vec<char> = message.chars().filter(|c| !c.is_control()).collect();
    let mut shown: String = clean.iter().take(300).collect();
    if clean.len() > 300 {
        shown.push('…');
    }
    shown
}

/// The role named by `annotations`, if any (an empty value counts as none).
pub fn role_arn_of(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations
        .get(ROLE_ARN_ANNOTATION)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Cache settings of a [`RoleArnLookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSettings {
    /// How long an answer (a role or none) is reused.
    pub ttl: Duration,
    /// At most this many ServiceAccounts are remembered; the least recently
    /// used goes first.
    pub max_entries: usize,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            ttl: Duration::from_secs(60),
            max_entries: 4096,
        }
    }
}

/// A snapshot of a [`RoleArnLookup`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Lookups asked for (valid names, with a client).
    pub lookups: u64,
    /// Answered from the cache.
    pub hits: u64,
    /// Joined a GET another lookup had started.
    pub joined: u64,
    /// Lookups that started a GET.
    pub fetches: u64,
    /// Fetches that failed (not cached).
    pub errors: u64,
    /// ServiceAccount GETs the client sent (retries included).
    pub requests: u64,
}

type FetchResult = Result<Option<String>, KubeError>;
type FetchFuture = Pin<Box<dyn Future<Output = FetchResult> + Send>>;
type Fetcher = Arc<dyn Fn(String, String) -> FetchFuture + Send + Sync>;
type Key = (String, String);

/// The role ARN of a pod's ServiceAccount, from its
/// `ack.alibabacloud.com/role-arn` annotation, cached per
/// (namespace, ServiceAccount) with a TTL and a size bound in the host's
/// single-flight cache ([`crate::singleflight`]): one GET serves all
/// concurrent lookups of an account. Cheap to clone.
#[derive(Clone)]
pub struct RoleArnLookup {
    inner: Arc<LookupInner>,
}

struct LookupInner {
    fetch: Option<Fetcher>,
    client: Option<Arc<KubeClient>>,
    settings: LookupSettings,
    answers: SingleFlight<Key, Option<String>, KubeError>,
}

impl std::fmt::Debug for RoleArnLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleArnLookup")
            .field("client", &self.inner.client)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RoleArnLookup {
    /// A lookup through `client`; `None` outside a cluster (every lookup
    /// then fails with [`KubeError::NotInCluster`]).
    pub fn new(client: Option<KubeClient>, settings: LookupSettings) -> RoleArnLookup {
        let client = client.map(Arc::new);
        let fetch = client.clone().map(|client| -> Fetcher {
            Arc::new(move |namespace: String, name: String| {
                let client = client.clone();
                Box::pin(async move {
                    client
                        .service_account_annotations(&namespace, &name)
                        .await
                        .map(|found| found.as_ref().and_then(role_arn_of))
                })
            })
        });
        RoleArnLookup::with_fetcher(fetch, client, settings)
    }

    /// A lookup whose client could not be set up at start-up (`reason`):
    /// every lookup fails with it, as upstream's did per Mount (it started
    /// anyway, and pod identity then used the provider's identity).
    pub fn unavailable(reason: String, settings: LookupSettings) -> RoleArnLookup {
        let reason: Arc<str> = reason.into();
        let fetch: Fetcher = Arc::new(move |namespace: String, name: String| {
            let reason = reason.clone();
            Box::pin(async move {
                Err(KubeError::Config(format!(
                    "cannot read ServiceAccount {namespace}/{name}: the client could not be set up at start-up: {reason}"
                )))
            })
        });
        RoleArnLookup::with_fetcher(Some(fetch), None, settings)
    }

    fn with_fetcher(
        fetch: Option<Fetcher>,
        client: Option<Arc<KubeClient>>,
        settings: LookupSettings,
    ) -> RoleArnLookup {
        RoleArnLookup {
            inner: Arc::new(LookupInner {
                fetch,
                client,
                settings,
                answers: SingleFlight::new(FlightSettings {
                    max_entries: settings.max_entries,
                    idle_ttl: None,
                    refresh_margin: Duration::ZERO,
                    stale_on_error: None,
                }),
            }),
        }
    }

    /// The role ARN annotated on ServiceAccount `namespace/service_account`;
    /// `Ok(None)` if the account does not exist or has no (or an empty)
    /// annotation.
    pub async fn role_arn(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Option<String>, KubeError> {
        check_names(namespace, service_account)?;
        let Some(fetch) = &self.inner.fetch else {
            return Err(KubeError::NotInCluster {
                namespace: namespace.into(),
                name: service_account.into(),
            });
        };
        let key: Key = (namespace.to_string(), service_account.to_string());
        let ttl = self.inner.settings.ttl;
        let (answer, _) = self
            .inner
            .answers
            .get_or_load(&key, || {
                let request = fetch(key.0.clone(), key.1.clone());
                async move {
                    // Answers (a role or none) are kept for the TTL from
                    // their arrival; errors are not kept.
                    let role_arn = request.await?;
                    Ok(Expiring::until(role_arn, tokio::time::Instant::now() + ttl))
                }
            })
            .await?;
        Ok(answer.value)
    }

    /// The counters.
    pub fn stats(&self) -> LookupStats {
        let answers = self.inner.answers.stats();
        LookupStats {
            lookups: answers.hits + answers.misses,
            hits: answers.hits,
            joined: answers.coalesced,
            fetches: answers.loads,
            errors: answers.load_failures,
            requests: self
                .inner
                .client
                .as_ref()
                .map_or(0, |c| c.stats().requests.load(Ordering::Relaxed)),
        }
    }

    /// ServiceAccounts currently remembered (answers and GETs in flight).
    pub fn cached_entries(&self) -> usize {
        self.inner.answers.stats().size
    }

    /// For tests: the cached answers age by `by`, as if that much time had
    /// passed (they expire `by` sooner).
    #[doc(hidden)]
    pub fn age(&self, by: Duration) {
        self.inner.answers.age(by);
    }

    /// Whether a Kubernetes client is configured.
    pub fn in_cluster(&self) -> bool {
        self.inner.fetch.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::identity::test_env as env;

    fn base_url(text: &str) -> BaseUrl {
        BaseUrl::parse(text, ClearText::LoopbackOnly).unwrap()
    }

    #[test]
    fn in_cluster_config_follows_client_go() {
        let token = Path::new("/t");
        let ca = Path::new("/ca");
        assert_eq!(KubeConfig::in_cluster(env(&[]), token, ca).unwrap(), None);
        assert_eq!(
            KubeConfig::in_cluster(env(&[(ENV_SERVICE_HOST, "10.0.0.1")]), token, ca).unwrap(),
            None
        );
        let config = KubeConfig::in_cluster(
            env(&[(ENV_SERVICE_HOST, "10.0.0.1"), (ENV_SERVICE_PORT, "443")]),
            token,
            ca,
        )
        .unwrap()
        .unwrap();
        // 443 is https' default port, which a URL does not write.
        assert_eq!(config.base_url, "https://10.0.0.1");
        assert_eq!(config.token_file, PathBuf::from("/t"));
        assert_eq!(config.ca_file, Some(PathBuf::from("/ca")));
        let config = KubeConfig::in_cluster(
            env(&[(ENV_SERVICE_HOST, "fd00::1"), (ENV_SERVICE_PORT, "6443")]),
            token,
            ca,
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.base_url, "https://[fd00::1]:6443");
        assert!(
            KubeConfig::in_cluster(
                env(&[(ENV_SERVICE_HOST, "h"), (ENV_SERVICE_PORT, "https")]),
                token,
                ca
            )
            .is_err()
        );
    }

    #[test]
    fn the_client_keeps_the_token_off_clear_text_networks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "t").unwrap();
        let clear = BaseUrl::parse("http://10.0.0.1", ClearText::Allowed).unwrap();
        let error = KubeClient::new(KubeConfig::new(clear, &path, None)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("plain http is allowed only to a loopback address"),
            "{error}"
        );
    }

    #[test]
    fn an_in_cluster_address_is_held_to_the_same_rule() {
        // `BaseUrl` with `ClearText::LoopbackOnly` (tested in contract::net).
        let error = KubeConfig::in_cluster(
            env(&[(ENV_SERVICE_HOST, "a b"), (ENV_SERVICE_PORT, "443")]),
            Path::new("/t"),
            Path::new("/ca"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains(
                "API server URL from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"
            ),
            "{error}"
        );
    }

    #[test]
    fn names_are_dns_labels_and_subdomains() {
        for (ns, name) in [
            ("team-a", "app"),
            ("a", "a.b-c.d"),
            ("x1", &"n".repeat(63)),
            ("kube-system", "csi-secrets-store-provider-alibabacloud"),
        ] {
            assert!(check_names(ns, name).is_ok(), "{ns}/{name}");
        }
        for (ns, name) in [
            ("", "app"),
            ("Team", "app"),
            ("-a", "app"),
            ("a.b", "app"),
            (&*"n".repeat(64), "app"),
            ("ns", ""),
            ("ns", "a/b"),
            ("ns", ".."),
            ("ns", "a..b"),
            ("ns", "App"),
            ("ns", "a?b"),
            ("ns", "a%2Fb"),
            ("ns", &"n.".repeat(130)),
        ] {
            let error = check_names(ns, name).unwrap_err();
            assert!(
                matches!(error, KubeError::InvalidName { .. }),
                "{ns}/{name}"
            );
        }
    }

    #[test]
    fn annotations_and_status_messages_are_parsed() {
        let body = br#"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"app","namespace":"team-a","annotations":{"ack.alibabacloud.com/role-arn":" acs:ram::1:role/a ","x":"y"}}}"#;
        let annotations = parse_annotations(body).unwrap();
        assert_eq!(annotations.len(), 2);
        assert_eq!(
            role_arn_of(&annotations).as_deref(),
            Some("acs:ram::1:role/a")
        );
        let bare = parse_annotations(br#"{"metadata":{"name":"app"}}"#).unwrap();
        assert!(bare.is_empty() && role_arn_of(&bare).is_none());
        let empty = BTreeMap::from([(ROLE_ARN_ANNOTATION.to_string(), " ".to_string())]);
        assert_eq!(role_arn_of(&empty), None);
        assert!(
            parse_annotations(b"<html>")
                .unwrap_err()
                .to_string()
                .contains("not a ServiceAccount")
        );
        assert_eq!(
            status_message(br#"{"kind":"Status","message":"nope\nnope"}"#),
            "nopenope"
        );
        assert_eq!(status_message(b"x"), "no Status message");
        let long = format!(r#"{{"message":"{}"}}"#, "m".repeat(400));
        assert_eq!(status_message(long.as_bytes()).chars().count(), 301);
    }

    #[test]
    fn token_files_are_reread_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let client =
            KubeClient::new(KubeConfig::new(base_url("http://127.0.0.1:1"), &path, None)).unwrap();
        assert_eq!(client.current_token(false).unwrap().0, "first");
        assert_eq!(client.stats().token_reads.load(Ordering::Relaxed), 1);
        // A different length changes the stamp even within one mtime tick.
        std::fs::write(&path, "second-token").unwrap();
        assert_eq!(client.current_token(false).unwrap().0, "second-token");
        // A vanished file keeps the last token.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(client.current_token(true).unwrap().0, "second-token");
        // Missing or empty at start-up is an error naming the file.
        let error = KubeClient::new(KubeConfig::new(base_url("http://127.0.0.1:1"), &path, None))
            .unwrap_err();
        assert!(error.to_string().contains("token"), "{error}");
        std::fs::write(&path, " \n").unwrap();
        let error = KubeClient::new(KubeConfig::new(base_url("http://127.0.0.1:1"), &path, None))
            .unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "not pem").unwrap();
        std::fs::write(&path, "t").unwrap();
        let error = KubeClient::new(KubeConfig::new(
            base_url("https://10.0.0.1"),
            &path,
            Some(ca),
        ))
        .unwrap_err();
        assert!(error.to_string().contains("cluster CA"), "{error}");
    }

    /// A lookup whose fetches are counted and answered by `answer`.
    fn fake(
        settings: LookupSettings,
        answer: impl Fn(&str, &str) -> FetchResult + Send + Sync + 'static,
    ) -> (RoleArnLookup, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let answer = Arc::new(answer);
        let fetch: Fetcher = Arc::new(move |ns: String, name: String| {
            counter.fetch_add(1, Ordering::Relaxed);
            let answer = answer.clone();
            Box::pin(async move {
                // A GET's duration, on the paused clock: lookups overlap it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer(&ns, &name)
            })
        });
        (
            RoleArnLookup::with_fetcher(Some(fetch), None, settings),
            calls,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_share_one_fetch_and_answers_are_cached() {
        let (lookup, calls) = fake(LookupSettings::default(), |ns, _| {
            Ok((ns == "a").then(|| "acs:ram::1:role/a".to_string()))
        });
        let results = futures::future::join_all((0..500).map(|_| lookup.role_arn("a", "sa"))).await;
        assert!(
            results
                .iter()
                .all(|r| r == &Ok(Some("acs:ram::1:role/a".to_string())))
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(lookup.role_arn("b", "sa").await, Ok(None));
        assert_eq!(lookup.role_arn("b", "sa").await, Ok(None));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let stats = lookup.stats();
        assert_eq!(stats.lookups, 502);
        assert_eq!(stats.fetches, 2);
        assert_eq!(stats.hits + stats.joined, 500);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_expire_and_errors_are_not_cached() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let failing = fail.clone();
        let (lookup, calls) = fake(
            LookupSettings {
                ttl: Duration::from_millis(100),
                max_entries: 10,
            },
            move |ns, name| {
                if failing.load(Ordering::Relaxed) {
                    Err(KubeError::Status {
                        namespace: ns.into(),
                        name: name.into(),
                        status: 503,
                        message: "down".into(),
                    })
                } else {
                    Ok(None)
                }
            },
        );
        let joined = futures::future::join_all((0..10).map(|_| lookup.role_arn("a", "sa"))).await;
        assert!(joined.iter().all(|r| r.is_err()));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "waiters share the failure"
        );
        assert!(lookup.role_arn("a", "sa").await.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 2, "the error was not cached");
        assert_eq!(lookup.stats().errors, 2);
        assert_eq!(lookup.cached_entries(), 0);
        fail.store(false, Ordering::Relaxed);
        assert_eq!(lookup.role_arn("a", "sa").await, Ok(None));
        assert_eq!(lookup.role_arn("a", "sa").await, Ok(None));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(lookup.role_arn("a", "sa").await, Ok(None));
        assert_eq!(calls.load(Ordering::Relaxed), 4, "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn aged_answers_expire_as_if_the_time_had_passed() {
        let (lookup, calls) = fake(
            LookupSettings {
                ttl: Duration::from_secs(60),
                max_entries: 10,
            },
            |_, _| Ok(None),
        );
        lookup.role_arn("a", "sa").await.unwrap();
        lookup.age(Duration::from_secs(59));
        lookup.role_arn("a", "sa").await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1, "still cached");
        lookup.age(Duration::from_secs(1));
        lookup.role_arn("a", "sa").await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 2, "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_account_is_evicted() {
        let (lookup, calls) = fake(
            LookupSettings {
                ttl: Duration::from_secs(60),
                max_entries: 3,
            },
            |_, _| Ok(None),
        );
        for name in ["a", "b", "c"] {
            lookup.role_arn("ns", name).await.unwrap();
        }
        lookup.role_arn("ns", "a").await.unwrap(); // a is now the newest
        lookup.role_arn("ns", "d").await.unwrap(); // evicts b
        assert_eq!(lookup.cached_entries(), 3);
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        lookup.role_arn("ns", "a").await.unwrap();
        lookup.role_arn("ns", "c").await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        lookup.role_arn("ns", "b").await.unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_lookup_leaves_its_fetch_to_the_next() {
        let (lookup, calls) = fake(LookupSettings::default(), |_, _| Ok(None));
        let first =
            tokio::time::timeout(Duration::from_millis(1), lookup.role_arn("a", "sa")).await;
        assert!(first.is_err());
        assert_eq!(lookup.role_arn("a", "sa").await, Ok(None));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn without_a_cluster_every_lookup_says_so() {
        let lookup = RoleArnLookup::new(None, LookupSettings::default());
        assert!(!lookup.in_cluster());
        let error = lookup.role_arn("team-a", "app").await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("no Kubernetes API access"), "{text}");
        assert!(
            text.contains("podRoleArn") && text.contains("team-a/app"),
            "{text}"
        );
        assert!(matches!(
            lookup.role_arn("Team", "app").await,
            Err(KubeError::InvalidName { .. })
        ));
    }

    #[tokio::test]
    async fn a_client_that_could_not_be_set_up_fails_each_lookup_with_why() {
        let lookup = RoleArnLookup::unavailable(
            "KUBERNETES_SERVICE_PORT=\"https\" is not a port number".into(),
            LookupSettings::default(),
        );
        for _ in 0..2 {
            let text = lookup
                .role_arn("team-a", "app")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("cannot read ServiceAccount team-a/app")
                    && text.contains("could not be set up at start-up")
                    && text.contains("is not a port number"),
                "{text}"
            );
        }
    }
}
