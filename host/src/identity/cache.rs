//! The credential cache: temporary credentials per identity, loaded once per lifetime for all Mounts.
//!
//! STS (`AssumeRole`, `AssumeRoleWithOIDC`) and the ECS metadata server hand
//! out credentials that expire. [`CredentialCache::get_or_load`] reuses them
//! until [`CacheSettings::refresh_margin`] before their expiry, refreshes them
//! once for every concurrent caller of the same identity (single flight), and
//! never returns them at or past their expiry. The cache is bounded (least
//! recently used identities go first) and forgets identities idle for longer
//! than [`CacheSettings::idle_ttl`]. Static access keys never expire and never
//! need it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use super::Credentials;
use crate::metrics::{CredentialLink, Metrics};
use crate::singleflight::{Answer, Expiring, Settings as FlightSettings, SingleFlight};

/// How long before `Expiration` credentials are refreshed (credentials-go's 180 s).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(180);
/// How many identities the cache holds at most.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;
/// How long an identity may go unused before the cache forgets it.
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(3600);

/// How the cache behaves; `[identity]` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Credentials valid for this long or less are refreshed before use.
    pub refresh_margin: Duration,
    /// The most identities held; the least recently used is evicted when a
    /// new one arrives at capacity. Zero is treated as one.
    pub max_entries: usize,
    /// Identities unused for this long are evicted.
    pub idle_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            max_entries: DEFAULT_MAX_ENTRIES,
            idle_ttl: DEFAULT_IDLE_TTL,
        }
    }
}

/// How a cached identity's credentials are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// STS `AssumeRoleWithOIDC` with a service-account token (pod or provider RRSA).
    Oidc,
    /// STS `AssumeRole` from a base identity (AK/SK or cross-account).
    AssumeRole,
    /// The ECS worker's RAM role, from the metadata server.
    EcsRamRole,
}

impl CredentialKind {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Oidc => "oidc",
            CredentialKind::AssumeRole => "assume-role",
            CredentialKind::EcsRamRole => "ecs-ram-role",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A keyed digest of a base identity's secret and token.
///
/// An access key id is not secret, so a key made of it alone would hand a
/// cached role session to anyone who names that id with a wrong secret. The
/// digest is keyed with a per-process random salt, so it cannot be checked
/// against guesses outside this process; it is never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SecretDigest(String);

impl SecretDigest {
    fn of(credentials: &Credentials) -> SecretDigest {
        static SALT: OnceLock<String> = OnceLock::new();
        let salt = SALT.get_or_init(|| {
            rand::random::<[u8; 32]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let token = credentials
            .security_token
            .as_ref()
            .map_or("", |t| t.0.as_str());
        SecretDigest(alibabacloud_signature::v3::signature(
            &format!("{salt}\n{token}"),
            &credentials.access_key_secret.0,
        ))
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<digest>")
    }
}

/// Who is asking STS for the role.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Principal {
    /// The node itself (ECS RAM role).
    Node,
    /// The `sub` of the service-account token kubelet issued for the Mount.
    Subject(String),
    /// A static access key (with a digest of its secret and token).
    AccessKey { id: String, digest: SecretDigest },
    /// Another cached identity (cross-account role from a role session).
    Identity(Box<CacheKey>),
}

/// Which identity a cache entry is for, made of non-secret parts only.
///
/// It holds no secret or token, so its `Debug` and `Display` are safe to log.
/// Everything that decides what the credentials may do is part of it; two
/// Mounts share credentials only if their keys are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    kind: CredentialKind,
    /// The role ARN, or the ECS RAM role name.
    role: String,
    oidc_provider_arn: Option<String>,
    principal: Principal,
    external_id: Option<String>,
    session_name: Option<String>,
}

impl CacheKey {
    /// `AssumeRoleWithOIDC` of `role_arn` through `oidc_provider_arn`, for the
    /// service account `subject` (the token's `sub`, e.g.
    /// `system:serviceaccount:ns:name`). The subject must come from a token
    /// kubelet issued, since a cache hit skips STS's check of the token.
    pub fn oidc(
        role_arn: impl Into<String>,
        oidc_provider_arn: impl Into<String>,
        subject: impl Into<String>,
    ) -> CacheKey {
        CacheKey {
            kind: CredentialKind::Oidc,
            role: role_arn.into(),
            oidc_provider_arn: Some(oidc_provider_arn.into()),
            principal: Principal::Subject(subject.into()),
            external_id: None,
            session_name: None,
        }
    }

    /// `AssumeRole` of `role_arn` signed with the static access key `base`.
    /// The key holds the access key id and a salted digest of the secret and
    /// token, never the secret itself.
    pub fn assume_role(base: &Credentials, role_arn: impl Into<String>) -> CacheKey {
        CacheKey {
            kind: CredentialKind::AssumeRole,
            role: role_arn.into(),
            oidc_provider_arn: None,
            principal: Principal::AccessKey {
                id: base.access_key_id.clone(),
                digest: SecretDigest::of(base),
            },
            external_id: None,
            session_name: None,
        }
    }

    /// `AssumeRole` of `role_arn` signed with the credentials of another cached
    /// identity, so that a cross-account session survives the refresh of its
    /// base session.
    pub fn assume_role_from(base: &CacheKey, role_arn: impl Into<String>) -> CacheKey {
        CacheKey {
            kind: CredentialKind::AssumeRole,
            role: role_arn.into(),
            oidc_provider_arn: None,
            principal: Principal::Identity(Box::new(base.clone())),
            external_id: None,
            session_name: None,
        }
    }

    /// The ECS worker's RAM role `role_name`, from the metadata server.
    pub fn ecs_ram_role(role_name: impl Into<String>) -> CacheKey {
        CacheKey {
            kind: CredentialKind::EcsRamRole,
            role: role_name.into(),
            oidc_provider_arn: None,
            principal: Principal::Node,
            external_id: None,
            session_name: None,
        }
    }

    /// Adds the `ExternalId` sent with `AssumeRole`.
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> CacheKey {
        self.external_id = Some(external_id.into());
        self
    }

    /// Adds the `RoleSessionName`: sessions with different names stay apart,
    /// so that audit logs attribute each call to the right pod.
    pub fn with_session_name(mut self, session_name: impl Into<String>) -> CacheKey {
        self.session_name = Some(session_name.into());
        self
    }

    /// How the credentials are obtained.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.role)?;
        if let Some(provider) = &self.oidc_provider_arn {
            write!(f, " via {provider}")?;
        }
        match &self.principal {
            Principal::Node => {}
            Principal::Subject(subject) => write!(f, " for {subject}")?,
            Principal::AccessKey { id, .. } => write!(f, " from access key {id}")?,
            Principal::Identity(base) => write!(f, " from ({base})")?,
        }
        if let Some(session) = &self.session_name {
            write!(f, " session {session}")?;
        }
        // Not a secret, but it guards against confused deputies: not echoed.
        if self.external_id.is_some() {
            f.write_str(" with external id")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

/// Credentials and the instant they stop working.
#[derive(Clone)]
pub struct ExpiringCredentials {
    /// The credentials.
    pub credentials: Arc<Credentials>,
    /// When they expire (from `Expiration`, see [`expiry_from_expiration`]).
    pub expires_at: Instant,
}

impl ExpiringCredentials {
    /// Wraps freshly obtained credentials.
    pub fn new(credentials: Credentials, expires_at: Instant) -> ExpiringCredentials {
        ExpiringCredentials {
            credentials: Arc::new(credentials),
            expires_at,
        }
    }

    /// How long they remain valid after `now` (zero once expired).
    pub fn valid_for(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

impl fmt::Debug for ExpiringCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringCredentials")
            .field("credentials", &self.credentials)
            .field("valid_for", &self.valid_for(Instant::now()))
            .finish()
    }
}

/// Why [`CredentialCache::get_or_load`] returned no credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The loader failed; every caller that waited for that load gets it.
    /// The loader's own error type is reachable with `downcast_ref`.
    #[error(transparent)]
    Load(Arc<dyn StdError + Send + Sync>),
    /// The loader returned credentials that had already expired.
    #[error(
        "the credentials obtained for {identity} had already expired when they arrived; check the node's clock"
    )]
    ExpiredOnArrival {
        /// The identity (non-secret).
        identity: String,
    },
}

/// Why an `Expiration` value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpirationError {
    /// Not a UTC timestamp such as `2025-01-31T12:00:00Z`.
    #[error(
        "credential Expiration {value:?} is not a timestamp like 2025-01-31T12:00:00Z: {reason}"
    )]
    Malformed {
        /// The value received (shortened).
        value: String,
        /// What the parser objected to.
        reason: String,
    },
    /// At or before the node's current time.
    #[error(
        "the credentials expired at {value} but the node's clock says {now}: they are already unusable (is the node's clock right?)"
    )]
    Past {
        /// The value received.
        value: String,
        /// The node's time, RFC 3339.
        now: String,
    },
    /// So far ahead that no `Instant` can represent it.
    #[error("credential Expiration {value} is out of range")]
    OutOfRange {
        /// The value received.
        value: String,
    },
}

/// Converts an STS or metadata-server `Expiration` (UTC, e.g.
/// `2025-01-31T12:00:00Z`) into an instant on the tokio clock.
pub fn expiry_from_expiration(expiration: &str) -> Result<Instant, ExpirationError> {
    expiry_at(expiration, OffsetDateTime::now_utc(), Instant::now())
}

/// [`expiry_from_expiration`] with the wall clock and the tokio clock given.
fn expiry_at(
    expiration: &str,
    wall_now: OffsetDateTime,
    now: Instant,
) -> Result<Instant, ExpirationError> {
    let trimmed = expiration.trim();
    let at = OffsetDateTime::parse(trimmed, &Rfc3339).map_err(|e| ExpirationError::Malformed {
        // A broken response could put anything here; keep the message short.
        value: trimmed.chars().take(40).collect(),
        reason: e.to_string(),
    })?;
    let remaining = at - wall_now;
    if !remaining.is_positive() {
        return Err(ExpirationError::Past {
            value: trimmed.to_string(),
            now: wall_now
                .format(&Rfc3339)
                .unwrap_or_else(|_| wall_now.to_string()),
        });
    }
    Duration::try_from(remaining)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| ExpirationError::OutOfRange {
            value: trimmed.to_string(),
        })
}

/// Counters since the cache was created, and its current size ("loads" are
/// STS or metadata requests).
pub use crate::singleflight::Stats as CacheStats;

/// Temporary credentials per identity, shared by all Mounts of the process:
/// the host's single-flight cache ([`crate::singleflight`]) keyed by
/// identity, with the refresh margin and stale-on-error of credentials.
pub struct CredentialCache {
    settings: CacheSettings,
    flights: SingleFlight<CacheKey, Arc<Credentials>, CacheError>,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache::new(CacheSettings::default())
    }
}

/// A failed refresh answered with the current credentials.
fn report_stale(identity: &CacheKey, error: &CacheError, valid_for: Duration) {
    tracing::warn!(
        %identity,
        %error,
        ?valid_for,
        "refreshing credentials failed; using the current ones until they expire, the next Mount retries"
    );
}

impl CredentialCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> CredentialCache {
        CredentialCache {
            settings,
            flights: SingleFlight::new(FlightSettings {
                max_entries: settings.max_entries,
                idle_ttl: Some(settings.idle_ttl),
                refresh_margin: settings.refresh_margin,
                stale_on_error: Some(report_stale),
            }),
            metrics: None,
        }
    }

    /// Counts lookups and loads into `metrics`, by chain link.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> CredentialCache {
        self.metrics = Some(metrics);
        self
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The credentials for `key`: cached ones if they remain valid for more
    /// than the refresh margin, else the result of `loader`.
    ///
    /// Concurrent callers of one key share one `loader` call and its result,
    /// errors included; errors are not kept for later calls. When a refresh
    /// fails while the previous credentials are still valid, those are
    /// returned (with a warning) and the next call tries again. Credentials
    /// are never returned at or past their expiry. If the caller that started
    /// the load goes away, the callers waiting for it carry it on.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &CacheKey,
        loader: F,
    ) -> Result<ExpiringCredentials, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ExpiringCredentials, E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.get_or_load_for(None, key, loader).await
    }

    /// [`CredentialCache::get_or_load`] for a link of the chain, counted by
    /// it in the metrics.
    pub async fn get_or_load_for<F, Fut, E>(
        &self,
        link: Option<CredentialLink>,
        key: &CacheKey,
        loader: F,
    ) -> Result<ExpiringCredentials, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ExpiringCredentials, E>> + Send + 'static,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let metrics = self.metrics.clone().zip(link);
        let found = self
            .flights
            .get_or_load(key, || {
                tracing::debug!(identity = %key, "loading credentials");
                let loading = loader();
                let identity = key.clone();
                let metrics = metrics.clone();
                async move {
                    let outcome = match loading.await {
                        Ok(fresh) if fresh.expires_at > Instant::now() => {
                            Ok(Expiring::until(fresh.credentials, fresh.expires_at))
                        }
                        Ok(_) => Err(CacheError::ExpiredOnArrival {
                            identity: identity.to_string(),
                        }),
                        Err(error) => Err(CacheError::Load(Arc::from(error.into()))),
                    };
                    if let Some((metrics, link)) = &metrics {
                        metrics.credential_refresh(*link, outcome.is_ok());
                    }
                    outcome
                }
            })
            .await;
        if let Some((metrics, link)) = &metrics {
            metrics.credential_lookup(*link, matches!(found, Ok((_, Answer::Cached))));
        }
        let (found, _) = found?;
        Ok(ExpiringCredentials {
            credentials: found.value,
            // Credentials are only ever kept with an expiry; were one missing,
            // treating them as expiring now is the safe reading.
            expires_at: found.expires_at.unwrap_or_else(Instant::now),
        })
    }

    /// Forgets the credentials of `key` (e.g. after the cloud rejected them);
    /// a load in progress still completes. Returns whether an entry was held.
    pub fn invalidate(&self, key: &CacheKey) -> bool {
        self.flights.invalidate(key)
    }

    /// The counters and the current size.
    pub fn stats(&self) -> CacheStats {
        self.flights.stats()
    }

    /// For tests: the cached credentials age by `by`, as if that much time
    /// had passed (they expire, and enter the refresh margin, `by` sooner).
    #[doc(hidden)]
    pub fn age(&self, by: Duration) {
        self.flights.age(by);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;

    use super::*;
    use crate::spc::Sensitive;

    const CANARY_SECRET: &str = "CANARY-SECRET-8f2a61c0";
    const CANARY_TOKEN: &str = "CANARY-TOKEN-77d1e3b9";

    fn credentials(id: &str) -> Credentials {
        Credentials {
            access_key_id: id.to_string(),
            access_key_secret: Sensitive(CANARY_SECRET.to_string()),
            security_token: Some(Sensitive(CANARY_TOKEN.to_string())),
            source: "test",
        }
    }

    fn valid_for(id: &str, secs: u64) -> ExpiringCredentials {
        ExpiringCredentials::new(credentials(id), Instant::now() + Duration::from_secs(secs))
    }

    fn key(name: &str) -> CacheKey {
        CacheKey::oidc(
            format!("acs:ram::1234:role/{name}"),
            "acs:ram::1234:oidc-provider/ack-rrsa-c1",
            format!("system:serviceaccount:ns:{name}"),
        )
    }

    #[derive(Debug, thiserror::Error)]
    #[error("STS refused: {0}")]
    struct Refused(&'static str);

    /// A loader that counts its calls, waits `delay`, then issues `id` valid
    /// for `secs`.
    fn issue(
        calls: &Arc<AtomicUsize>,
        delay: Duration,
        id: &str,
        secs: u64,
    ) -> impl Future<Output = Result<ExpiringCredentials, Refused>> + Send + 'static {
        let (calls, id) = (calls.clone(), id.to_string());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            pause(delay).await;
            Ok(valid_for(&id, secs))
        }
    }

    fn refuse(
        calls: &Arc<AtomicUsize>,
        delay: Duration,
    ) -> impl Future<Output = Result<ExpiringCredentials, Refused>> + Send + 'static {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            pause(delay).await;
            Err(Refused("AccessDenied"))
        }
    }

    /// Yields at least once, as a network call would, so that concurrent
    /// callers really overlap even with no delay.
    async fn pause(delay: Duration) {
        tokio::task::yield_now().await;
        tokio::time::sleep(delay).await;
    }

    fn id_of(result: &Result<ExpiringCredentials, CacheError>) -> &str {
        &result
            .as_ref()
            .expect("credentials")
            .credentials
            .access_key_id
    }

    #[tokio::test(start_paused = true)]
    async fn miss_then_hit() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let first = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await;
        assert_eq!(id_of(&first), "STS.one");
        let second = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&second), "STS.one");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.loads, stats.size),
            (1, 1, 1, 1)
        );

        // Another identity is another entry.
        let other = cache
            .get_or_load(&key("b"), || issue(&calls, Duration::ZERO, "STS.b", 3600))
            .await;
        assert_eq!(id_of(&other), "STS.b");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().size, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn aged_credentials_are_refreshed_as_if_the_time_had_passed() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        // Outside the margin after aging: still a hit.
        cache.age(Duration::from_secs(3000));
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.one");
        // Inside it: refreshed, exactly as after waiting.
        cache.age(Duration::from_secs(500));
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reused_until_the_margin_then_refreshed_once() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.one");

        // 181 s left: still more than the margin.
        tokio::time::advance(Duration::from_secs(3600 - 181)).await;
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.one");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Exactly the margin left: refresh.
        tokio::time::advance(Duration::from_secs(1)).await;
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // The refreshed credentials are reused in turn.
        tokio::time::advance(Duration::from_secs(60)).await;
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.three", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn margin_is_configurable() {
        let cache = CredentialCache::new(CacheSettings {
            refresh_margin: Duration::from_secs(900),
            ..CacheSettings::default()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 900)).await;
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refresh_inside_the_margin_loads_once() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3500)).await;
        let results = join_all((0..50).map(|_| {
            cache.get_or_load(&k, || {
                issue(&calls, Duration::from_secs(2), "STS.two", 3600)
            })
        }))
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(results.iter().all(|r| id_of(r) == "STS.two"));
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.misses, stats.coalesced), (2, 51, 49));
    }

    #[tokio::test(start_paused = true)]
    async fn single_flight_on_a_cold_key() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let results = join_all(
            (0..100)
                // As long as an STS call takes: every caller arrives during it.
                .map(|_| {
                    cache.get_or_load(&k, || {
                        issue(&calls, Duration::from_millis(50), "STS.one", 3600)
                    })
                }),
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| id_of(r) == "STS.one"));
        // Everyone got the same allocation, not a copy per caller.
        let first = &results[0].as_ref().unwrap().credentials;
        assert!(
            results
                .iter()
                .all(|r| Arc::ptr_eq(&r.as_ref().unwrap().credentials, first))
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.loads), (0, 100, 1));
        assert_eq!(stats.coalesced, 99);
    }

    #[tokio::test(start_paused = true)]
    async fn single_flight_across_tasks_with_a_slow_loader() {
        let cache = Arc::new(CredentialCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (cache, calls, k) = (cache.clone(), calls.clone(), k.clone());
                tokio::spawn(async move {
                    // Callers arrive over the 30 s the loader takes.
                    tokio::time::sleep(Duration::from_millis(i * 300)).await;
                    cache
                        .get_or_load(&k, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            Ok::<_, Refused>(valid_for("STS.slow", 3600))
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(id_of(&task.await.unwrap()), "STS.slow");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().loads, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_shared_with_waiters_but_not_cached() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let results = join_all(
            (0..20).map(|_| cache.get_or_load(&k, || refuse(&calls, Duration::from_secs(1)))),
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for result in &results {
            let error = result.as_ref().unwrap_err();
            assert_eq!(error.to_string(), "STS refused: AccessDenied");
            let CacheError::Load(inner) = error else {
                panic!("not a load error: {error:?}");
            };
            assert!(inner.downcast_ref::<Refused>().is_some());
        }
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.load_failures, stats.size), (1, 1, 0));

        // The next call tries again, and succeeds.
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.one");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_refresh_inside_the_margin_serves_the_current_credentials() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3500)).await;

        let results = join_all(
            (0..10).map(|_| cache.get_or_load(&k, || refuse(&calls, Duration::from_secs(1)))),
        )
        .await;
        assert!(results.iter().all(|r| id_of(r) == "STS.one"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let stats = cache.stats();
        assert_eq!((stats.load_failures, stats.stale_served), (1, 1));

        // Not a hit next time: it retries, and a success replaces them.
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_past_expiry() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        // Shorter-lived than the margin: usable now, reloaded on every call.
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.short", 100))
            .await;
        assert_eq!(id_of(&got), "STS.short");

        tokio::time::advance(Duration::from_secs(99)).await;
        let got = cache
            .get_or_load(&k, || refuse(&calls, Duration::ZERO))
            .await;
        assert_eq!(id_of(&got), "STS.short");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // At the expiry instant they are no longer handed out.
        tokio::time::advance(Duration::from_secs(1)).await;
        let got = cache
            .get_or_load(&k, || refuse(&calls, Duration::ZERO))
            .await;
        assert!(matches!(got, Err(CacheError::Load(_))), "{got:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.stats().size, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_expiring_during_the_refresh_are_not_served() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3590)).await;
        // The refresh outlasts the 10 s the current credentials have left.
        let got = cache
            .get_or_load(&k, || refuse(&calls, Duration::from_secs(20)))
            .await;
        assert!(got.is_err(), "{got:?}");
        assert_eq!(cache.stats().stale_served, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_never_takes_credentials_that_expired_while_it_slept() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let mut leader = std::pin::pin!(cache.get_or_load(&k, || issue(
            &calls,
            Duration::from_secs(1),
            "STS.brief",
            5
        )));
        let mut waiter = std::pin::pin!(cache.get_or_load(&k, || issue(
            &calls,
            Duration::ZERO,
            "STS.waiter",
            3600
        )));
        assert!(futures::poll!(leader.as_mut()).is_pending());
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(id_of(&leader.await), "STS.brief");
        // The waiter is not polled again until its share has expired.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(id_of(&waiter.await), "STS.waiter");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entry_with_a_failing_loader_returns_the_error() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3601)).await;
        let got = cache
            .get_or_load(&k, || refuse(&calls, Duration::ZERO))
            .await;
        assert_eq!(got.unwrap_err().to_string(), "STS refused: AccessDenied");
        assert_eq!(cache.stats().stale_served, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_expired_on_arrival_are_an_error() {
        let cache = CredentialCache::default();
        let k = key("a");
        let got = cache
            .get_or_load(&k, || async {
                Ok::<_, Refused>(ExpiringCredentials::new(
                    credentials("STS.old"),
                    Instant::now(),
                ))
            })
            .await;
        let error = got.unwrap_err();
        assert!(
            matches!(error, CacheError::ExpiredOnArrival { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("check the node's clock"),
            "{error}"
        );
        let stats = cache.stats();
        assert_eq!((stats.load_failures, stats.size), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_loader_leaves_its_load_to_the_waiters() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        let leader = tokio::time::timeout(
            Duration::from_secs(1),
            cache.get_or_load(&k, || {
                issue(&calls, Duration::from_secs(10), "STS.first", 3600)
            }),
        );
        let waiters = join_all((0..5).map(|_| {
            cache.get_or_load(&k, || {
                issue(&calls, Duration::from_secs(2), "STS.two", 3600)
            })
        }));
        let (leader, waiters) = tokio::join!(leader, waiters);
        assert!(leader.is_err(), "the leader should have timed out");
        // The waiters carried the leader's STS call on: no second call, and
        // none of them failed for the leader's going away.
        assert!(waiters.iter().all(|r| id_of(r) == "STS.first"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().size, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_is_evicted_at_capacity() {
        let cache = CredentialCache::new(CacheSettings {
            max_entries: 3,
            ..CacheSettings::default()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        for name in ["a", "b", "c"] {
            cache
                .get_or_load(&key(name), || issue(&calls, Duration::ZERO, name, 3600))
                .await
                .unwrap();
        }
        // Touch "a": "b" is now the least recently used.
        cache
            .get_or_load(&key("a"), || issue(&calls, Duration::ZERO, "x", 3600))
            .await
            .unwrap();
        cache
            .get_or_load(&key("d"), || issue(&calls, Duration::ZERO, "d", 3600))
            .await
            .unwrap();
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions, stats.loads), (3, 1, 4));

        for name in ["a", "c", "d"] {
            let got = cache
                .get_or_load(&key(name), || {
                    issue(&calls, Duration::ZERO, "reloaded", 3600)
                })
                .await;
            assert_eq!(id_of(&got), name);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let got = cache
            .get_or_load(&key("b"), || {
                issue(&calls, Duration::ZERO, "reloaded", 3600)
            })
            .await;
        assert_eq!(id_of(&got), "reloaded");
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(cache.stats().size, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_are_evicted() {
        let cache = CredentialCache::new(CacheSettings {
            idle_ttl: Duration::from_secs(600),
            ..CacheSettings::default()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        for name in ["idle", "busy"] {
            cache
                .get_or_load(&key(name), || issue(&calls, Duration::ZERO, name, 3600))
                .await
                .unwrap();
        }
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(61)).await;
            cache
                .get_or_load(&key("busy"), || issue(&calls, Duration::ZERO, "x", 3600))
                .await
                .unwrap();
        }
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions), (1, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let got = cache
            .get_or_load(&key("idle"), || {
                issue(&calls, Duration::ZERO, "reloaded", 3600)
            })
            .await;
        assert_eq!(id_of(&got), "reloaded");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        cache
            .get_or_load(&key("short"), || issue(&calls, Duration::ZERO, "s", 300))
            .await
            .unwrap();
        cache
            .get_or_load(&key("long"), || issue(&calls, Duration::ZERO, "l", 3600))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(301)).await;
        cache
            .get_or_load(&key("long"), || issue(&calls, Duration::ZERO, "x", 3600))
            .await
            .unwrap();
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forgets_credentials() {
        let cache = CredentialCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key("a");
        cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.one", 3600))
            .await
            .unwrap();
        assert!(cache.invalidate(&k));
        assert!(!cache.invalidate(&k));
        let got = cache
            .get_or_load(&k, || issue(&calls, Duration::ZERO, "STS.two", 3600))
            .await;
        assert_eq!(id_of(&got), "STS.two");
    }

    #[test]
    fn keys_tell_identities_apart() {
        let base = credentials("LTAIbase");
        let same_id_other_secret = Credentials {
            access_key_secret: Sensitive("another secret".to_string()),
            ..credentials("LTAIbase")
        };
        let same_id_other_token = Credentials {
            security_token: None,
            ..credentials("LTAIbase")
        };
        let role = "acs:ram::5678:role/reader";
        assert_eq!(
            CacheKey::assume_role(&base, role),
            CacheKey::assume_role(&credentials("LTAIbase"), role)
        );
        assert_ne!(
            CacheKey::assume_role(&base, role),
            CacheKey::assume_role(&same_id_other_secret, role)
        );
        assert_ne!(
            CacheKey::assume_role(&base, role),
            CacheKey::assume_role(&same_id_other_token, role)
        );
        assert_ne!(
            CacheKey::assume_role(&base, role),
            CacheKey::assume_role(&base, "acs:ram::5678:role/writer")
        );
        assert_ne!(
            CacheKey::assume_role(&base, role).with_session_name("ns.pod-a"),
            CacheKey::assume_role(&base, role).with_session_name("ns.pod-b")
        );
        assert_ne!(
            CacheKey::assume_role(&base, role).with_external_id("x1"),
            CacheKey::assume_role(&base, role).with_external_id("x2")
        );
        assert_ne!(key("a"), key("b"));
        assert_ne!(
            CacheKey::oidc("r", "p", "system:serviceaccount:ns:a"),
            CacheKey::oidc("r", "p", "system:serviceaccount:ns:b")
        );
        assert_ne!(
            CacheKey::assume_role_from(&key("a"), role),
            CacheKey::assume_role_from(&key("b"), role)
        );
        assert_ne!(CacheKey::ecs_ram_role("r"), CacheKey::ecs_ram_role("s"));
        assert_eq!(
            CacheKey::ecs_ram_role("r").kind(),
            CredentialKind::EcsRamRole
        );
        assert_eq!(
            CacheKey::assume_role_from(&key("a"), role).kind(),
            CredentialKind::AssumeRole
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_secret_in_debug_or_display() {
        let base = credentials("LTAIbase");
        let k = CacheKey::assume_role(&base, "acs:ram::5678:role/reader")
            .with_session_name("ns.pod")
            .with_external_id("ext-CANARY-EXTERNAL");
        let nested = CacheKey::assume_role_from(&k, "acs:ram::9:role/x");
        let cache = CredentialCache::default();
        let entry = cache
            .get_or_load(&k, || async {
                Ok::<_, Refused>(valid_for("STS.one", 3600))
            })
            .await
            .unwrap();
        let error = CacheError::ExpiredOnArrival {
            identity: k.to_string(),
        };
        let texts = [
            format!("{k:?}"),
            format!("{k}"),
            format!("{nested:?}"),
            format!("{nested}"),
            format!("{entry:?}"),
            format!("{cache:?}"),
            format!("{error:?}"),
            format!("{error}"),
            format!("{:?}", cache.stats()),
        ];
        for text in &texts {
            assert!(!text.contains(CANARY_SECRET), "secret in {text}");
            assert!(!text.contains(CANARY_TOKEN), "token in {text}");
            assert!(!text.contains("CANARY-EXTERNAL"), "external id in {text}");
        }
        assert!(texts[0].contains("LTAIbase"), "{}", texts[0]);
        assert!(
            texts[1].contains("acs:ram::5678:role/reader"),
            "{}",
            texts[1]
        );
        assert!(texts[4].contains("STS.one"), "{}", texts[4]);
        // The digest of the secret is not printed either.
        let SecretDigest(digest) = SecretDigest::of(&base);
        assert!(texts.iter().all(|t| !t.contains(&digest[..16])));
    }

    #[test]
    fn expiration_in_the_future() {
        let wall = time::macros::datetime!(2025-01-31 12:00:00 UTC);
        let now = Instant::now();
        let at = expiry_at("2025-01-31T13:00:00Z", wall, now).unwrap();
        assert_eq!(at - now, Duration::from_secs(3600));
        // Fractions and offsets, as RFC 3339 allows, and stray whitespace.
        let at = expiry_at(" 2025-01-31T20:00:01.5+08:00\n", wall, now).unwrap();
        assert_eq!(at - now, Duration::from_millis(1500));
    }

    #[test]
    fn expiration_malformed() {
        let wall = time::macros::datetime!(2025-01-31 12:00:00 UTC);
        for value in [
            "",
            "tomorrow",
            "2025-01-31 13:00:00",
            "2025-01-31T13:00:00",
            "2025-13-31T13:00:00Z",
            "1738328400",
        ] {
            let error = expiry_at(value, wall, Instant::now()).unwrap_err();
            assert!(
                matches!(error, ExpirationError::Malformed { .. }),
                "{value}: {error:?}"
            );
            assert!(error.to_string().contains("is not a timestamp"), "{error}");
        }
        let long = "x".repeat(500);
        let error = expiry_at(&long, wall, Instant::now()).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn expiration_in_the_past() {
        let wall = time::macros::datetime!(2025-01-31 12:00:00 UTC);
        for value in [
            "2025-01-31T11:59:59Z",
            "2025-01-31T12:00:00Z",
            "2020-01-01T00:00:00Z",
        ] {
            let error = expiry_at(value, wall, Instant::now()).unwrap_err();
            assert!(
                matches!(error, ExpirationError::Past { .. }),
                "{value}: {error:?}"
            );
            assert!(
                error.to_string().contains("2025-01-31T12:00:00Z"),
                "{error}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expiration_against_the_clocks() {
        let in_an_hour = (OffsetDateTime::now_utc() + time::Duration::hours(1))
            .replace_nanosecond(0)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        let at = expiry_from_expiration(&in_an_hour).unwrap();
        let left = at - Instant::now();
        assert!(
            left > Duration::from_secs(3598) && left <= Duration::from_secs(3600),
            "{left:?}"
        );
        assert!(matches!(
            expiry_from_expiration("2000-01-01T00:00:00Z"),
            Err(ExpirationError::Past { .. })
        ));
    }
}
