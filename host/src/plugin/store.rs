//! One call's store and its limits: no WASI capabilities, the plugin's
//! memory cap, every growth drawn from its class's node budget, a cap on the
//! host resources it holds, its stderr kept for error messages, and an epoch
//! deadline that yields to the executor every tick and interrupts the plugin
//! once passed. The store's data ([`PluginState`]) is what the host side of
//! the plugin's imports ([`super::host`]) works with.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::budget::{Account, Class};
use super::load::Grants;
use crate::session::CloudSession;

/// Host resources (WASI streams, pollables, ...) one instance may hold at
/// once; a plugin needs a handful per host call. Bounds the host memory a
/// loop creating resources can take.
pub(crate) const MAX_HOST_RESOURCES: usize = 4096;
/// Bytes of a plugin's stderr kept for error messages (panic text).
const STDERR_CAP: usize = 4096;
/// Log lines a plugin may write per fetch; the rest are dropped.
pub(crate) const LOG_LINES_PER_FETCH: u32 = 100;
/// Longest log line kept.
pub(crate) const LOG_LINE_MAX: usize = 1024;
/// Elements a table of one instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// What a store is made for: the plugin, its grants and limits, and the
/// call's context.
pub(crate) struct StoreSpec {
    /// The plugin's objectType.
    pub(crate) plugin: String,
    /// Its class.
    pub(crate) class: Class,
    /// What it was granted.
    pub(crate) grants: Arc<Grants>,
    /// Its linear memory cap.
    pub(crate) memory_limit_mib: u64,
    /// The Mount's cloud access; none while loading (describe, validate).
    pub(crate) session: Option<Arc<CloudSession>>,
    /// The Mount, for log lines.
    pub(crate) mount: Arc<str>,
    /// When the call must have returned.
    pub(crate) deadline: Instant,
    /// The memory the instance draws on.
    pub(crate) account: Account,
}

/// Per-call store data.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    limits: StoreLimits,
    /// The Mount's cloud access; none while loading (describe, validate).
    pub(super) session: Option<Arc<CloudSession>>,
    pub(super) grants: Arc<Grants>,
    pub(super) plugin: String,
    pub(super) mount: Arc<str>,
    /// The main runtime, when the plugin runs elsewhere (custom plugins):
    /// where its signed calls are sent from.
    pub(super) main: Option<tokio::runtime::Handle>,
    pub(super) deadline: Instant,
    pub(super) log_lines: u32,
    pub(super) host_calls: u32,
    pub(super) host_call_limit_hit: bool,
    /// A failure of the host's own during the fetch, which decides how the
    /// fetch fails whatever the plugin reports.
    pub(super) host_failure: Option<HostFailure>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A failure of the host, not of the plugin or the backend, seen during a
/// fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFailure {
    /// The Mount's credentials could not be obtained for a call.
    Credentials {
        /// Whether a later Mount may succeed.
        retryable: bool,
    },
}

/// What the host saw stop or fail a call, rather than a bug of the plugin:
/// the limits it ran into, and the host's own failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitsHit {
    /// The plugin's own memory cap.
    pub(crate) memory: bool,
    /// The node's memory budget of its class.
    pub(crate) node_budget: bool,
    /// Its host calls per fetch.
    pub(crate) host_calls: bool,
    /// A failure of the host's own.
    pub(crate) host_failure: Option<HostFailure>,
}

impl PluginState {
    /// The limits the call ran into.
    pub(crate) fn limits_hit(&self) -> LimitsHit {
        LimitsHit {
            memory: self.limits.memory_exceeded,
            node_budget: self.limits.budget_exhausted,
            host_calls: self.host_call_limit_hit,
            host_failure: self.host_failure,
        }
    }

    /// Bytes of linear memory the instance grew to.
    pub(crate) fn memory_used(&self) -> usize {
        self.limits.account.used()
    }
}

/// Caps linear memory per instance, draws every growth from the class's
/// node budget, and records which limit, not a plugin bug, stopped it.
struct StoreLimits {
    max_memory_bytes: usize,
    memory_exceeded: bool,
    account: Account,
    budget_exhausted: bool,
}

impl wasmtime::ResourceLimiter for StoreLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg("plugin memory limit reached"));
        }
        if !self.account.grow(desired.saturating_sub(current)) {
            self.budget_exhausted = true;
            return Err(wasmtime::Error::msg("node plugin memory budget reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A fresh store on `engine` for one call: no WASI capabilities, the
/// plugin's limits, an epoch deadline that yields every tick; with the sink
/// of the plugin's stderr.
pub(crate) fn new_store(engine: &Engine, spec: StoreSpec) -> (Store<PluginState>, CappedPipe) {
    let stderr = CappedPipe::new(STDERR_CAP);
    let wasi = WasiCtx::builder()
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HOST_RESOURCES);
    let mut store = Store::new(
        engine,
        PluginState {
            wasi,
            table,
            limits: StoreLimits {
                max_memory_bytes: (spec.memory_limit_mib << 20) as usize,
                memory_exceeded: false,
                account: spec.account,
                budget_exhausted: false,
            },
            session: spec.session,
            grants: spec.grants,
            plugin: spec.plugin,
            mount: spec.mount,
            main: match spec.class {
                Class::Custom => tokio::runtime::Handle::try_current().ok(),
                Class::Builtin => None,
            },
            deadline: spec.deadline,
            log_lines: 0,
            host_calls: 0,
            host_call_limit_hit: false,
            host_failure: None,
        },
    );
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|context| {
        if Instant::now() >= context.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    (store, stderr)
}

/// A stderr sink that keeps the first bytes and drops the rest (wasmtime's
/// MemoryOutputPipe traps the guest when full).
#[derive(Clone)]
pub(crate) struct CappedPipe {
    buffer: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl CappedPipe {
    fn new(cap: usize) -> CappedPipe {
        CappedPipe {
            buffer: Arc::new(Mutex::new(Vec::new())),
            cap,
        }
    }

    /// The first two non-empty lines (a Rust panic prints its location,
    /// then its message), shortened.
    pub(crate) fn summary(&self) -> Option<String> {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&buffer);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(2)
            .collect();
        (!lines.is_empty()).then(|| lines.join(" ").chars().take(400).collect())
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buffer.len());
        buffer.extend_from_slice(&buf[..buf.len().min(room)]);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::io::AsyncWriteExt as _;
    use wasmtime::ResourceLimiter as _;

    use super::*;
    use crate::plugin::budget::{PAGE, Pool};
    use crate::plugin::engine::{EngineSettings, EpochTicker, engine};

    fn grants() -> Arc<Grants> {
        Arc::new(Grants {
            alibaba_cloud: false,
            egress: None,
            audiences: Vec::new(),
            secret_keys: Vec::new(),
            pod_info: false,
            max_host_calls: 1,
        })
    }

    fn spec(pool: &Pool, memory_limit_mib: u64, deadline: Instant) -> StoreSpec {
        StoreSpec {
            plugin: "testing".into(),
            class: Class::Custom,
            grants: grants(),
            memory_limit_mib,
            session: None,
            mount: Arc::from("test"),
            deadline,
            account: pool.unreserved(),
        }
    }

    fn test_engine() -> Engine {
        engine(&EngineSettings::for_check(1), None).unwrap().0
    }

    #[tokio::test]
    async fn memory_is_capped_per_instance_and_drawn_from_the_node_budget() {
        let engine = test_engine();
        // a budget of 2 MiB for the class, a cap of 1 MiB per instance
        let pool = Pool::new(2, 2, 2);
        let (mut store, _) = new_store(&engine, spec(&pool, 1, Instant::now()));
        let limits = &mut store.data_mut().limits;
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(store.data().memory_used(), 1 << 20);
        let limits = &mut store.data_mut().limits;
        assert!(
            limits
                .memory_growing(1 << 20, (1 << 20) + PAGE, None)
                .is_err()
        );
        assert_eq!(
            store.data().limits_hit(),
            LimitsHit {
                memory: true,
                ..LimitsHit::default()
            }
        );

        // a second instance within its cap, but the budget has 1 MiB left
        let (mut other, _) = new_store(&engine, spec(&pool, 4, Instant::now()));
        let limits = &mut other.data_mut().limits;
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limits.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(
            other.data().limits_hit(),
            LimitsHit {
                node_budget: true,
                ..LimitsHit::default()
            }
        );
        // dropping the first store returns its memory to the budget
        drop(store);
        let limits = &mut other.data_mut().limits;
        assert!(limits.memory_growing(1 << 20, 2 << 20, None).unwrap());

        let limits = &mut other.data_mut().limits;
        assert!(limits.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        assert!(
            !limits
                .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
                .unwrap()
        );
    }

    #[tokio::test]
    async fn host_resources_are_capped() {
        let engine = test_engine();
        let pool = Pool::new(1, 1, 1);
        let (mut store, _) = new_store(&engine, spec(&pool, 1, Instant::now()));
        let table = &mut store.data_mut().table;
        for _ in 0..MAX_HOST_RESOURCES {
            table.push(()).unwrap();
        }
        assert!(table.push(()).is_err(), "past the cap");
    }

    #[tokio::test]
    async fn stderr_keeps_the_first_bytes_and_summarises_a_panic() {
        let mut pipe = CappedPipe::new(STDERR_CAP);
        assert_eq!(pipe.summary(), None);
        pipe.write_all(b"\n  thread '<unnamed>' panicked at src/lib.rs:1:2:\n")
            .await
            .unwrap();
        pipe.write_all(b"boom\nnote: run with RUST_BACKTRACE=1\n")
            .await
            .unwrap();
        pipe.write_all(&vec![b'x'; 2 * STDERR_CAP]).await.unwrap();
        assert_eq!(
            pipe.summary().unwrap(),
            "thread '<unnamed>' panicked at src/lib.rs:1:2: boom"
        );
        assert_eq!(pipe.buffer.lock().unwrap().len(), STDERR_CAP);
        let mut long = CappedPipe::new(STDERR_CAP);
        long.write_all(&vec![b'y'; 1000]).await.unwrap();
        assert_eq!(long.summary().unwrap().len(), 400);
    }

    /// A core module that spins until interrupted.
    const SPIN: &str = r#"(module (func (export "spin") (loop br 0)))"#;

    #[tokio::test]
    async fn the_deadline_yields_every_tick_then_interrupts() {
        let engine = test_engine();
        let _ticker = EpochTicker::start(&engine);
        let pool = Pool::new(1, 1, 1);
        let started = Instant::now();
        let budget = Duration::from_millis(150);
        let (mut store, _) = new_store(&engine, spec(&pool, 1, started + budget));
        let module = wasmtime::Module::new(&engine, SPIN).unwrap();
        let instance = wasmtime::Instance::new_async(&mut store, &module, &[])
            .await
            .unwrap();
        let spin = instance
            .get_typed_func::<(), ()>(&mut store, "spin")
            .unwrap();
        // On this single-threaded runtime, another task runs only if the
        // spinning plugin yields.
        let other_ran = Arc::new(AtomicBool::new(false));
        let flag = other_ran.clone();
        tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        let error = tokio::time::timeout(Duration::from_secs(10), spin.call_async(&mut store, ()))
            .await
            .expect("interrupted by the epoch deadline, not by this timeout")
            .unwrap_err();
        assert!(other_ran.load(Ordering::SeqCst), "the plugin yielded");
        assert!(started.elapsed() >= budget, "not before the deadline");
        assert_eq!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
    }
}
