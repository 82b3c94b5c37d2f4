//! The host's one single-flight TTL cache: values loaded once for every
//! concurrent caller of a key, kept until they expire, bounded in entries.
//!
//! The credential cache (`identity::cache`), the ServiceAccount role lookup
//! (`identity::kube`) and the region memo (`mount`) are all this cache with a
//! different key, value and error. What they share:
//!
//! - **Single flight.** Concurrent callers of one key share one load and its
//!   outcome, errors included. The load is a shared future kept in the
//!   entry: whichever caller polls it drives it, so if the caller that
//!   started it goes away the others carry it on, and a load that every
//!   caller left is resumed by the next one (no second backend call).
//! - **Expiry per value.** The loader says how long its value lasts
//!   ([`Expiring::expires_at`]; `None`: until evicted). A value is reused
//!   while it stays valid for more than [`Settings::refresh_margin`] and is
//!   never handed out at or past its expiry, not even to a caller that was
//!   waiting while it expired.
//! - **Errors are not kept**: the next call loads again. Optionally
//!   ([`Settings::stale_on_error`]), a failed reload is answered with the
//!   previous value while it is still valid.
//! - **Bounds.** At most [`Settings::max_entries`] keys, the least recently
//!   used going first (entries with a load in flight last); keys unused for
//!   [`Settings::idle_ttl`] and expired values are swept.
//!
//! Time is the tokio clock, so tests run on a paused one.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

/// The longest time between two sweeps for idle and expired entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A loaded value and when it stops being usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expiring<V> {
    /// The value.
    pub(crate) value: V,
    /// When it expires; `None`: it never does (it stays until evicted).
    pub(crate) expires_at: Option<Instant>,
}

impl<V> Expiring<V> {
    /// A value usable until `expires_at`.
    pub(crate) fn until(value: V, expires_at: Instant) -> Expiring<V> {
        Expiring {
            value,
            expires_at: Some(expires_at),
        }
    }

    /// A value that never expires.
    pub(crate) fn forever(value: V) -> Expiring<V> {
        Expiring {
            value,
            expires_at: None,
        }
    }

    /// Whether it can still be handed out at `now`.
    fn usable(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// Whether it stays valid for more than `margin` after `now`.
    fn fresh(&self, now: Instant, margin: Duration) -> bool {
        self.expires_at
            .is_none_or(|at| at.saturating_duration_since(now) > margin)
    }

    /// How long it stays valid after `now` (`Duration::MAX`: forever).
    pub(crate) fn valid_for(&self, now: Instant) -> Duration {
        self.expires_at
            .map_or(Duration::MAX, |at| at.saturating_duration_since(now))
    }

    /// Whether it lasts at least as long as `other`.
    fn outlives(&self, other: &Expiring<V>) -> bool {
        match (self.expires_at, other.expires_at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine >= theirs,
        }
    }
}

/// Reports that a failed reload of a key was answered with its previous
/// value, still valid for the given time (for a warning log line).
pub(crate) type StaleReport<K, E> = fn(&K, &E, Duration);

/// How a [`SingleFlight`] behaves.
pub(crate) struct Settings<K, E> {
    /// The most keys held; the least recently used goes when a new one
    /// arrives at capacity. Zero is treated as one.
    pub(crate) max_entries: usize,
    /// Keys unused for this long are forgotten; `None`: only for capacity.
    pub(crate) idle_ttl: Option<Duration>,
    /// Values valid for this long or less are reloaded before use.
    pub(crate) refresh_margin: Duration,
    /// When set, a failed reload is answered with the previous value while
    /// it remains valid, and reported here; otherwise the error is returned.
    pub(crate) stale_on_error: Option<StaleReport<K, E>>,
}

impl<K, E> Clone for Settings<K, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, E> Copy for Settings<K, E> {}

impl<K, E> std::fmt::Debug for Settings<K, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("max_entries", &self.max_entries)
            .field("idle_ttl", &self.idle_ttl)
            .field("refresh_margin", &self.refresh_margin)
            .field("stale_on_error", &self.stale_on_error.is_some())
            .finish()
    }
}

/// Counters since the cache was created, and its current size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls answered from the cache without a load.
    pub hits: u64,
    /// Calls that ran a load or waited for one.
    pub misses: u64,
    /// Of the misses, those that joined a load another caller had started.
    pub coalesced: u64,
    /// Loads started.
    pub loads: u64,
    /// Loads that failed.
    pub load_failures: u64,
    /// Failed reloads answered with the previous, still valid, value.
    pub stale_served: u64,
    /// Entries removed for capacity, idleness or expiry.
    pub evictions: u64,
    /// Entries held now.
    pub size: usize,
}

/// How a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// From the cache, without waiting for a load.
    Cached,
    /// By a load this call started, or joined.
    Loaded,
}

type Outcome<V, E> = Result<Expiring<V>, E>;
type Flight<V, E> = Shared<BoxFuture<'static, Outcome<V, E>>>;

struct Entry<V, E> {
    value: Option<Expiring<V>>,
    flight: Option<(u64, Flight<V, E>)>,
    last_used: Instant,
    /// Recency order for LRU eviction; `Instant`s tie under a paused clock.
    recency: u64,
}

struct State<K, V, E> {
    entries: HashMap<K, Entry<V, E>>,
    next_recency: u64,
    next_flight: u64,
    next_sweep: Option<Instant>,
    stats: Stats,
}

impl<K: Eq + Hash + Clone, V, E> State<K, V, E> {
    fn tick(&mut self) -> u64 {
        self.next_recency += 1;
        self.next_recency
    }

    /// Removes idle entries and entries holding no usable value. Entries
    /// with a load in flight stay: their load will fill them.
    fn sweep(&mut self, now: Instant, idle_ttl: Option<Duration>) {
        let before = self.entries.len();
        self.entries.retain(|_, entry| {
            entry.flight.is_some()
                || (idle_ttl.is_none_or(|ttl| now.saturating_duration_since(entry.last_used) < ttl)
                    && entry.value.as_ref().is_some_and(|v| v.usable(now)))
        });
        self.stats.evictions += (before - self.entries.len()) as u64;
        let interval = idle_ttl.map_or(SWEEP_INTERVAL, |ttl| ttl.min(SWEEP_INTERVAL));
        self.next_sweep = Some(now + interval);
    }

    fn sweep_if_due(&mut self, now: Instant, idle_ttl: Option<Duration>) {
        if self.next_sweep.is_none_or(|due| now >= due) {
            self.sweep(now, idle_ttl);
        }
    }

    /// Makes room for one more entry.
    fn make_room<R>(&mut self, now: Instant, settings: &Settings<K, R>) {
        let max = settings.max_entries.max(1);
        if self.entries.len() < max {
            return;
        }
        self.sweep(now, settings.idle_ttl);
        while self.entries.len() >= max {
            // Prefer entries no caller is waiting on. An evicted load still
            // answers its callers, and its value comes back when it ends.
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.flight.is_some(), e.recency))
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            self.entries.remove(&victim);
            self.stats.evictions += 1;
        }
    }
}

struct Inner<K, V, E> {
    settings: Settings<K, E>,
    state: Mutex<State<K, V, E>>,
}

impl<K, V, E> Inner<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Clone,
    E: Clone,
{
    /// Critical sections are short and never span an `.await`; a panic inside
    /// one leaves the map consistent, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State<K, V, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome of load `id` of `key`; returns what its callers get.
    fn complete(
        &self,
        key: &K,
        id: u64,
        outcome: Outcome<V, E>,
        previous: Option<Expiring<V>>,
    ) -> Outcome<V, E> {
        let now = Instant::now();
        let mut state = self.lock();
        let outcome = match outcome {
            Ok(fresh) => {
                if fresh.usable(now) {
                    if !state.entries.contains_key(key) {
                        // Evicted during the load (the cache was full of
                        // newer keys); the value is still good.
                        state.make_room(now, &self.settings);
                        let recency = state.tick();
                        state.entries.insert(
                            key.clone(),
                            Entry {
                                value: None,
                                flight: None,
                                last_used: now,
                                recency,
                            },
                        );
                    }
                    if let Some(entry) = state.entries.get_mut(key)
                        && entry.value.as_ref().is_none_or(|v| fresh.outlives(v))
                    {
                        entry.value = Some(fresh.clone());
                    }
                }
                Ok(fresh)
            }
            Err(error) => {
                state.stats.load_failures += 1;
                match (self.settings.stale_on_error, previous) {
                    (Some(report), Some(previous)) if previous.usable(now) => {
                        state.stats.stale_served += 1;
                        report(key, &error, previous.valid_for(now));
                        Ok(previous)
                    }
                    _ => Err(error),
                }
            }
        };
        if let Some(entry) = state.entries.get_mut(key)
            && entry
                .flight
                .as_ref()
                .is_some_and(|(flight, _)| *flight == id)
        {
            entry.flight = None;
            if entry.value.as_ref().is_none_or(|v| !v.usable(now)) {
                // Errors are not kept: the next call loads again.
                state.entries.remove(key);
            }
        }
        outcome
    }
}

/// What one pass over the cache decided for a caller.
enum Step<V, E> {
    Hit(Expiring<V>),
    Wait(Flight<V, E>),
}

/// A single-flight TTL cache of `V` by `K`, whose loads fail with `E`.
pub(crate) struct SingleFlight<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> std::fmt::Debug for SingleFlight<K, V, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// An empty cache.
    pub(crate) fn new(settings: Settings<K, E>) -> SingleFlight<K, V, E> {
        SingleFlight {
            inner: Arc::new(Inner {
                settings,
                state: Mutex::new(State {
                    entries: HashMap::new(),
                    next_recency: 0,
                    next_flight: 0,
                    next_sweep: None,
                    stats: Stats::default(),
                }),
            }),
        }
    }

    /// The value of `key`: the cached one if it stays valid for more than
    /// the refresh margin, else the outcome of the load in flight for `key`,
    /// else that of a new load, `load()`. A caller starts at most one load.
    ///
    /// The load must not hand back a value already expired: such a value is
    /// returned to the caller that started it but neither kept nor given to
    /// the callers that joined (they load again). `load` itself is called
    /// under the cache's lock: it must only build its future (which runs
    /// later, outside the lock), never use this cache.
    pub(crate) async fn get_or_load<F, Fut>(
        &self,
        key: &K,
        load: F,
    ) -> Result<(Expiring<V>, Answer), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome<V, E>> + Send + 'static,
    {
        let mut load = Some(load);
        let mut first_pass = true;
        loop {
            let flight = match self.step(key, first_pass, &mut load) {
                Step::Hit(value) => return Ok((value, Answer::Cached)),
                Step::Wait(flight) => flight,
            };
            first_pass = false;
            let value = flight.await?;
            // Expired while this caller waited (or on arrival, for a caller
            // that has no load of its own left to start).
            if load.is_none() || value.usable(Instant::now()) {
                return Ok((value, Answer::Loaded));
            }
        }
    }

    fn step<F, Fut>(&self, key: &K, first_pass: bool, load: &mut Option<F>) -> Step<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome<V, E>> + Send + 'static,
    {
        let now = Instant::now();
        let settings = &self.inner.settings;
        let mut state = self.inner.lock();
        state.sweep_if_due(now, settings.idle_ttl);
        let recency = state.tick();
        let hit = state.entries.get_mut(key).and_then(|entry| {
            entry.last_used = now;
            entry.recency = recency;
            entry
                .value
                .as_ref()
                .filter(|v| v.fresh(now, settings.refresh_margin))
                .cloned()
        });
        if let Some(value) = hit {
            state.stats.hits += 1;
            return Step::Hit(value);
        }
        if first_pass {
            state.stats.misses += 1;
        }
        if let Some((_, flight)) = state.entries.get(key).and_then(|e| e.flight.as_ref()) {
            let flight = flight.clone();
            if first_pass {
                state.stats.coalesced += 1;
            }
            return Step::Wait(flight);
        }
        let Some(start) = load.take() else {
            // This caller's own load ended and its value expired before it
            // could take it: a loader bug, reported as such by the caller.
            unreachable!("a caller whose load ended returns its outcome");
        };
        state.next_flight += 1;
        let id = state.next_flight;
        let previous = state
            .entries
            .get_mut(key)
            .and_then(|entry| {
                // Expired values are never handed out again.
                entry.value = entry.value.take().filter(|v| v.usable(now));
                entry.value.clone()
            })
            .filter(|_| settings.stale_on_error.is_some());
        // Weak: a load kept in the cache must not keep the cache alive.
        let weak: Weak<Inner<K, V, E>> = Arc::downgrade(&self.inner);
        let loading = start();
        let done_key = key.clone();
        let flight = async move {
            let outcome = loading.await;
            match weak.upgrade() {
                Some(inner) => inner.complete(&done_key, id, outcome, previous),
                None => outcome,
            }
        }
        .boxed()
        .shared();
        match state.entries.get_mut(key) {
            Some(entry) => entry.flight = Some((id, flight.clone())),
            None => {
                state.make_room(now, settings);
                state.entries.insert(
                    key.clone(),
                    Entry {
                        value: None,
                        flight: Some((id, flight.clone())),
                        last_used: now,
                        recency,
                    },
                );
            }
        }
        state.stats.loads += 1;
        Step::Wait(flight)
    }

    /// Forgets the value of `key` (a load in flight still completes and
    /// answers its callers). Returns whether an entry was held.
    pub(crate) fn invalidate(&self, key: &K) -> bool {
        let mut state = self.inner.lock();
        match state.entries.get_mut(key) {
            Some(entry) if entry.flight.is_some() => {
                entry.value = None;
                true
            }
            Some(_) => {
                state.entries.remove(key);
                true
            }
            None => false,
        }
    }

    /// The counters and the current size.
    pub(crate) fn stats(&self) -> Stats {
        let state = self.inner.lock();
        Stats {
            size: state.entries.len(),
            ..state.stats
        }
    }

    /// For tests: the cached values age by `by`, as if that much time had
    /// passed (they expire, and enter the refresh margin, `by` sooner).
    pub(crate) fn age(&self, by: Duration) {
        for entry in self.inner.lock().entries.values_mut() {
            if let Some(Expiring {
                expires_at: Some(at),
                ..
            }) = &mut entry.value
                && let Some(earlier) = at.checked_sub(by)
            {
                *at = earlier;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;

    use super::*;

    type Cache = SingleFlight<&'static str, String, String>;

    fn settings() -> Settings<&'static str, String> {
        Settings {
            max_entries: 16,
            idle_ttl: None,
            refresh_margin: Duration::ZERO,
            stale_on_error: None,
        }
    }

    /// A load that counts itself, takes `delay`, then answers `outcome`
    /// valid for `ttl` (`None`: forever).
    fn load(
        calls: &Arc<AtomicUsize>,
        delay: Duration,
        outcome: Result<&'static str, &'static str>,
        ttl: Option<Duration>,
    ) -> impl FnOnce() -> BoxFuture<'static, Outcome<String, String>> {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                tokio::time::sleep(delay).await;
                let value = outcome.map_err(str::to_string)?.to_string();
                Ok(match ttl {
                    Some(ttl) => Expiring::until(value, Instant::now() + ttl),
                    None => Expiring::forever(value),
                })
            }
            .boxed()
        }
    }

    fn value(result: Result<(Expiring<String>, Answer), String>) -> String {
        result.expect("a value").0.value
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_load_and_its_error() {
        let cache = Cache::new(settings());
        let calls = Arc::new(AtomicUsize::new(0));
        let answers = join_all((0..8).map(|_| {
            cache.get_or_load(
                &"k",
                load(&calls, Duration::from_secs(1), Err("refused"), None),
            )
        }))
        .await;
        assert!(answers.iter().all(|a| a == &Err("refused".to_string())));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!(
            (
                stats.loads,
                stats.coalesced,
                stats.load_failures,
                stats.size
            ),
            (1, 7, 1, 0),
            "errors are not kept"
        );
        let again = cache
            .get_or_load(&"k", load(&calls, Duration::ZERO, Ok("v"), None))
            .await;
        assert_eq!(value(again), "v");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn values_without_expiry_stay_and_values_with_one_expire() {
        let cache = Cache::new(settings());
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let got = cache
                .get_or_load(&"forever", load(&calls, Duration::ZERO, Ok("f"), None))
                .await;
            assert_eq!(value(got), "f");
            let got = cache
                .get_or_load(
                    &"short",
                    load(
                        &calls,
                        Duration::ZERO,
                        Ok("s"),
                        Some(Duration::from_secs(30)),
                    ),
                )
                .await;
            assert_eq!(value(got), "s");
            tokio::time::advance(Duration::from_secs(20)).await;
        }
        // "forever" once; "short" at 0 s, again at 40 s (expired at 30 s).
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        cache.age(Duration::from_secs(3600));
        let (got, answer) = cache
            .get_or_load(&"forever", load(&calls, Duration::ZERO, Ok("x"), None))
            .await
            .unwrap();
        assert_eq!((got.value.as_str(), answer), ("f", Answer::Cached));
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_every_caller_left_is_resumed_by_the_next_caller() {
        let cache = Cache::new(settings());
        let calls = Arc::new(AtomicUsize::new(0));
        let first = tokio::time::timeout(
            Duration::from_secs(1),
            cache.get_or_load(
                &"k",
                load(&calls, Duration::from_secs(5), Ok("first"), None),
            ),
        )
        .await;
        assert!(first.is_err(), "the first caller gave up");
        let started = Instant::now();
        let got = cache
            .get_or_load(
                &"k",
                load(&calls, Duration::from_secs(5), Ok("second"), None),
            )
            .await;
        assert_eq!(value(got), "first");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The load went on from where it was, not from the start.
        assert_eq!(started.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_does_not_fail_the_others() {
        let cache = Cache::new(settings());
        let calls = Arc::new(AtomicUsize::new(0));
        let leader = tokio::time::timeout(
            Duration::from_secs(1),
            cache.get_or_load(&"k", load(&calls, Duration::from_secs(3), Ok("v"), None)),
        );
        let waiters = join_all(
            (0..4)
                .map(|_| cache.get_or_load(&"k", load(&calls, Duration::ZERO, Ok("other"), None))),
        );
        let (leader, waiters) = tokio::join!(leader, waiters);
        assert!(leader.is_err());
        assert!(waiters.into_iter().all(|w| value(w) == "v"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn joined_callers_never_take_a_value_that_arrived_expired() {
        let cache = Cache::new(settings());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        // Valid for 1 s from its start, but it takes 2 s to arrive.
        let leader = cache.get_or_load(&"k", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let expires_at = Instant::now() + Duration::from_secs(1);
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(Expiring::until("late".to_string(), expires_at))
            }
            .boxed()
        });
        let waiter = async {
            tokio::task::yield_now().await;
            cache
                .get_or_load(&"k", load(&calls, Duration::ZERO, Ok("fresh"), None))
                .await
        };
        let (leader, waiter) = tokio::join!(leader, waiter);
        // The caller whose load it was gets what its loader said; the
        // joined one loads again rather than take it.
        assert_eq!(value(leader), "late");
        assert_eq!(value(waiter), "fresh");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().size, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_reload_serves_the_previous_value_when_asked_to() {
        fn report(_: &&'static str, _: &String, _: Duration) {}
        let cache = Cache::new(Settings {
            refresh_margin: Duration::from_secs(60),
            stale_on_error: Some(report),
            ..settings()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let ttl = Some(Duration::from_secs(100));
        cache
            .get_or_load(&"k", load(&calls, Duration::ZERO, Ok("old"), ttl))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(50)).await; // inside the margin
        let got = cache
            .get_or_load(&"k", load(&calls, Duration::ZERO, Err("down"), ttl))
            .await;
        assert_eq!(value(got), "old");
        tokio::time::advance(Duration::from_secs(60)).await; // past its expiry
        let got = cache
            .get_or_load(&"k", load(&calls, Duration::ZERO, Err("down"), ttl))
            .await;
        assert_eq!(got, Err("down".to_string()));
        let stats = cache.stats();
        assert_eq!((stats.stale_served, stats.load_failures), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_evicts_the_least_recently_used_and_spares_loads_in_flight() {
        let cache = Cache::new(Settings {
            max_entries: 2,
            ..settings()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        // "slow" is in flight while "a" and "b" arrive.
        let slow = cache.get_or_load(&"slow", load(&calls, Duration::from_secs(5), Ok("s"), None));
        let others = async {
            tokio::task::yield_now().await;
            for key in ["a", "b"] {
                cache
                    .get_or_load(&key, load(&calls, Duration::ZERO, Ok(key), None))
                    .await
                    .unwrap();
            }
            cache.stats()
        };
        let (slow, during) = tokio::join!(slow, others);
        assert_eq!(value(slow), "s");
        // "a" went for "b": "slow" had callers waiting.
        assert_eq!((during.size, during.evictions), (2, 1));
        assert_eq!(
            value(
                cache
                    .get_or_load(&"slow", load(&calls, Duration::ZERO, Ok("x"), None))
                    .await
            ),
            "s"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_forgotten() {
        let cache = Cache::new(Settings {
            idle_ttl: Some(Duration::from_secs(600)),
            ..settings()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        for key in ["idle", "busy"] {
            cache
                .get_or_load(&key, load(&calls, Duration::ZERO, Ok(key), None))
                .await
                .unwrap();
        }
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(300)).await;
            cache
                .get_or_load(&"busy", load(&calls, Duration::ZERO, Ok("x"), None))
                .await
                .unwrap();
        }
        let stats = cache.stats();
        assert_eq!((stats.size, stats.evictions), (1, 1));
        assert!(cache.invalidate(&"busy"));
        assert!(!cache.invalidate(&"idle"));
        assert_eq!(cache.stats().size, 0);
    }
}
