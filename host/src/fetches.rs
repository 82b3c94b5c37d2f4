//! Fetches shared across Mounts: identical fetches in flight share one
//! backend call (always), and, when the operator turns it on (`[cache]`),
//! a fetched object is kept for a short time for later Mounts of the same
//! identity.
//!
//! "Identical" is [`FetchKey`]: the same resolved identity (the credential
//! cache's key, or a digest of a static access key with its secret and
//! token, never just the pod), the same cross-account role, backend route,
//! object name, version selector, endpoint, region and parameters. So two
//! Mounts share a result only if each of them would have been given it by
//! the backend.
//!
//! A shared fetch is driven by whichever waiting Mount polls it: if the
//! Mount that started it goes away, the others carry it on. Its result,
//! success or failure, goes to the Mounts that were waiting for it; the
//! next Mount starts a new fetch (failures are never cached). Each Mount
//! builds its own files from the object.
//!
//! Cached objects are in memory only, bounded in entries and bytes, never
//! shared across identities, and their bytes are zeroed when the last Mount
//! using them drops them after eviction.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use zeroize::Zeroizing;

use crate::config::Cache as CacheConfig;
use crate::plugin::{FetchedObject, PluginError};

/// What makes two fetches the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// The Mount's resolved identity (non-secret; see [`crate::identity::MountAuth::identity_key`]).
    pub identity: String,
    /// The object's `crossAccountRoleArn`.
    pub cross_account: Option<String>,
    /// The route.
    pub object_type: String,
    /// `objectName`.
    pub name: String,
    /// `objectVersion`.
    pub version: Option<String>,
    /// `objectVersionLabel`.
    pub version_label: Option<String>,
    /// `kmsEndpoint`.
    pub endpoint: Option<String>,
    /// The Mount's region.
    pub region: String,
    /// The object's `parameters`.
    pub parameters: Vec<(String, String)>,
}

/// An object as fetched, shared by the Mounts that asked for it; its bytes
/// are zeroed when the last of them drops it.
#[derive(Debug)]
pub struct SharedObject {
    contents: Zeroizing<Vec<u8>>,
    version: String,
}

impl SharedObject {
    fn new(object: FetchedObject) -> SharedObject {
        SharedObject {
            contents: Zeroizing::new(object.contents),
            version: object.version,
        }
    }

    /// A copy for one Mount's files.
    pub fn to_fetched(&self) -> FetchedObject {
        FetchedObject {
            contents: self.contents.to_vec(),
            version: self.version.clone(),
        }
    }

    fn weight(&self) -> usize {
        self.contents.len() + self.version.len()
    }
}

type Outcome = Result<Arc<SharedObject>, PluginError>;
type InFlight = Shared<BoxFuture<'static, Outcome>>;

/// Counters, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Fetches that ran (backend calls through a plugin).
    pub started: AtomicU64,
    /// Fetches that joined one already in flight.
    pub joined: AtomicU64,
    /// Fetches answered from the value cache.
    pub cache_hits: AtomicU64,
}

/// Shared fetches and the optional value cache.
pub struct Fetches {
    in_flight: Arc<Mutex<HashMap<FetchKey, (u64, InFlight)>>>,
    generation: AtomicU64,
    cache: Option<ValueCache>,
    stats: FetchStats,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for Fetches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetches")
            .field("cache", &self.cache.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Fetches {
    /// Shared fetches, with the value cache `config` describes.
    pub fn new(config: &CacheConfig) -> Fetches {
        Fetches {
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            generation: AtomicU64::new(0),
            cache: config.enabled.then(|| ValueCache::new(config)),
            stats: FetchStats::default(),
            metrics: None,
        }
    }

    /// Counts coalesced fetches and value cache lookups into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Fetches {
        self.metrics = Some(metrics);
        self
    }

    /// The counters.
    pub fn stats(&self) -> &FetchStats {
        &self.stats
    }

    /// The object for `key`: from the cache, from a fetch already in flight,
    /// or from `fetch`, which then serves every Mount that asks meanwhile.
    pub async fn get(
        &self,
        key: FetchKey,
        fetch: impl Future<Output = Result<FetchedObject, PluginError>> + Send + 'static,
    ) -> Outcome {
        if let Some(cache) = &self.cache {
            let cached = cache.get(&key);
            if let Some(metrics) = &self.metrics {
                metrics.value_cache_lookup(cached.is_some());
            }
            if let Some(object) = cached {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(object);
            }
        }
        let shared = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&key) {
                Some((_, shared)) => {
                    self.stats.joined.fetch_add(1, Ordering::Relaxed);
                    if let Some(metrics) = &self.metrics {
                        metrics.fetch_coalesced();
                    }
                    shared.clone()
                }
                None => {
                    self.stats.started.fetch_add(1, Ordering::Relaxed);
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let table = self.in_flight.clone();
                    let done_key = key.clone();
                    let shared = async move {
                        let outcome = fetch.await.map(|o| Arc::new(SharedObject::new(o)));
                        // Later Mounts start afresh: a failure is never kept.
                        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                        if table.get(&done_key).is_some_and(|(g, _)| *g == generation) {
                            table.remove(&done_key);
                        }
                        outcome
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key.clone(), (generation, shared.clone()));
                    shared
                }
            }
        };
        let outcome = shared.await;
        if let (Some(cache), Ok(object)) = (&self.cache, &outcome) {
            cache.insert(key, object.clone());
        }
        outcome
    }
}

/// The opt-in value cache: a short TTL per key (longer for objects pinned
/// by `objectVersion`), bounded in entries and bytes: each entry weighs at
/// least `max_bytes / max_entries`, so neither bound can be passed.
struct ValueCache {
    entries: moka::sync::Cache<FetchKey, Arc<SharedObject>>,
}

struct TtlByPinning {
    ttl: Duration,
    pinned_ttl: Duration,
}

impl moka::Expiry<FetchKey, Arc<SharedObject>> for TtlByPinning {
    fn expire_after_create(
        &self,
        key: &FetchKey,
        _value: &Arc<SharedObject>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if key.version.is_some() {
            self.pinned_ttl
        } else {
            self.ttl
        })
    }
}

impl ValueCache {
    fn new(config: &CacheConfig) -> ValueCache {
        let floor = (config.max_bytes / config.max_entries.max(1) as u64).max(1);
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(move |_key: &FetchKey, value: &Arc<SharedObject>| -> u32 {
                (value.weight() as u64).max(floor).min(u64::from(u32::MAX)) as u32
            })
            .expire_after(TtlByPinning {
                ttl: config.ttl,
                pinned_ttl: config.pinned_ttl,
            })
            .build();
        ValueCache { entries }
    }

    fn get(&self, key: &FetchKey) -> Option<Arc<SharedObject>> {
        self.entries.get(key)
    }

    fn insert(&self, key: FetchKey, object: Arc<SharedObject>) {
        self.entries.insert(key, object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, identity: &str) -> FetchKey {
        FetchKey {
            identity: identity.into(),
            cross_account: None,
            object_type: "kms".into(),
            name: name.into(),
            version: None,
            version_label: None,
            endpoint: None,
            region: "cn-hangzhou".into(),
            parameters: Vec::new(),
        }
    }

    fn object(text: &str) -> FetchedObject {
        FetchedObject {
            contents: text.as_bytes().to_vec(),
            version: "v1".into(),
        }
    }

    fn off() -> CacheConfig {
        CacheConfig::default()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_fetches_share_one_call() {
        let fetches = Arc::new(Fetches::new(&off()));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (fetches, calls) = (fetches.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                fetches
                    .get(key("db", "id-a"), async move {
                        calls.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(object("secret"))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(
                task.await.unwrap().unwrap().to_fetched().contents,
                b"secret"
            );
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(fetches.stats().joined.load(Ordering::Relaxed), 49);
        // Done: the next Mount fetches again (no cache configured).
        fetches
            .get(key("db", "id-a"), async { Ok(object("again")) })
            .await
            .unwrap();
        assert_eq!(fetches.stats().started.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn different_identities_never_share() {
        let fetches = Fetches::new(&off());
        let (a, b) = tokio::join!(
            fetches.get(key("db", "id-a"), async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(object("a"))
            }),
            fetches.get(key("db", "id-b"), async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(object("b"))
            }),
        );
        assert_eq!(a.unwrap().to_fetched().contents, b"a");
        assert_eq!(b.unwrap().to_fetched().contents, b"b");
        assert_eq!(fetches.stats().started.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_goes_to_the_waiters_only_and_the_first_callers_cancellation_fails_nobody() {
        let fetches = Arc::new(Fetches::new(&off()));
        let first = {
            let fetches = fetches.clone();
            tokio::spawn(async move {
                fetches
                    .get(key("db", "id"), async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(PluginError::Fetch(crate::plugin::FetchError::Unavailable(
                            "throttled".into(),
                        )))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = {
            let fetches = fetches.clone();
            tokio::spawn(async move {
                fetches
                    .get(key("db", "id"), async { Ok(object("never run")) })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The Mount that started it goes away; the waiter still gets the
        // outcome of the shared call.
        first.abort();
        let outcome = second.await.unwrap();
        assert!(matches!(outcome, Err(PluginError::Fetch(_))), "{outcome:?}");
        // The failure is not kept.
        let next = fetches
            .get(key("db", "id"), async { Ok(object("fresh")) })
            .await
            .unwrap();
        assert_eq!(next.to_fetched().contents, b"fresh");
    }

    #[tokio::test]
    async fn the_value_cache_is_bounded_and_keyed_by_identity() {
        let config = CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            pinned_ttl: Duration::from_secs(600),
            max_entries: 2,
            max_bytes: 1 << 20,
        };
        let fetches = Fetches::new(&config);
        fetches
            .get(key("db", "id-a"), async { Ok(object("a1")) })
            .await
            .unwrap();
        let hit = fetches
            .get(key("db", "id-a"), async { Ok(object("a2")) })
            .await
            .unwrap();
        assert_eq!(hit.to_fetched().contents, b"a1");
        let other = fetches
            .get(key("db", "id-b"), async { Ok(object("b1")) })
            .await
            .unwrap();
        assert_eq!(other.to_fetched().contents, b"b1");
        for i in 0..10 {
            fetches
                .get(key(&format!("x{i}"), "id-a"), async { Ok(object("x")) })
                .await
                .unwrap();
        }
        let cache = fetches.cache.as_ref().unwrap();
        cache.entries.run_pending_tasks();
        assert!(
            cache.entries.entry_count() <= 2,
            "{}",
            cache.entries.entry_count()
        );
        assert_eq!(fetches.stats().cache_hits.load(Ordering::Relaxed), 1);
    }
}
