//! A plugin ready to instantiate, and its calls: a fresh instance for each,
//! from the plugin's pre-linked component, in a store of its own
//! ([`super::store`]). At load, `describe` and `validate` run outside any
//! Mount; per object, `fetch`. What a failed call means — the plugin's typed
//! error, a limit it ran into, its deadline, or a crash — is decided here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, Trap};

use super::bindings::alibabacloud_csi::plugin::types;
use super::bindings::{Backend, BackendPre};
use super::budget::{Account, Class};
use super::engine::EPOCH_TICK;
use super::load::{Grants, PluginSource};
use super::store::{CappedPipe, HostFailure, LimitsHit, PluginState, StoreSpec, new_store};
use super::{FetchError, ObjectRequest, PluginInfo};
use crate::config::{PluginLimits, PluginRoute, plugin_config_value};
use crate::session::CloudSession;

/// An object a plugin fetched: the file's bytes and the backend's version.
///
/// Not the generated binding type, whose `Debug` prints the contents: this
/// one shows their length only, so a stray `{:?}` cannot log a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedObject {
    /// The object's content.
    pub contents: Vec<u8>,
    /// The object's version as the backend reports it.
    pub version: String,
}

impl std::fmt::Debug for FetchedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedObject")
            .field(
                "contents",
                &format_args!("<redacted, {} bytes>", self.contents.len()),
            )
            .field("version", &self.version)
            .finish()
    }
}

/// `"kms" and "oos"`, `"kms", "oos" and "vault"`: the routed object types
/// as upstream's message listed its two (`only support "kms" and "oos"`).
pub(crate) fn quoted_list(types: &[&str]) -> String {
    let quoted: Vec<String> = types.iter().map(|t| format!("{t:?}")).collect();
    match quoted.split_last() {
        None => "no object type".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// No route for this objectType.
    #[error("unsupported object type {object_type:?}, only support {configured}")]
    UnknownObjectType {
        /// The objectType asked for.
        object_type: String,
        /// The configured ones, quoted: `"kms" and "oos"`.
        configured: String,
    },
    /// The plugin reported a typed error.
    #[error("{}", describe_fetch_error(.0))]
    Fetch(FetchError),
    /// The plugin trapped (panic, bad memory access, ...).
    #[error("the {plugin} plugin crashed: {message}")]
    Trapped {
        /// Plugin objectType.
        plugin: String,
        /// Trap reason and captured panic text.
        message: String,
    },
    /// The plugin ran past its deadline.
    #[error("the {plugin} plugin did not finish within {after:?}{cause}")]
    TimedOut {
        /// Plugin objectType.
        plugin: String,
        /// The time it had.
        after: Duration,
        /// Whether the Mount's deadline or the plugin timeout was the limit.
        cause: String,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error(
        "the {plugin} plugin needed more than its memory limit of {limit_mib} MiB (config key plugins.{plugin}.memory_limit_mib)"
    )]
    MemoryLimit {
        /// Plugin objectType.
        plugin: String,
        /// The cap.
        limit_mib: u64,
    },
    /// The plugin made more host calls than allowed.
    #[error(
        "the {plugin} plugin made more than {limit} host calls in one fetch (config key plugins.{plugin}.max_host_calls)"
    )]
    HostCallLimit {
        /// Plugin objectType.
        plugin: String,
        /// The cap.
        limit: u32,
    },
    /// The node's memory budget for this class of plugins is in use.
    #[error(
        "the {plugin} plugin could not grow its memory: plugin instances on this node use all of {key} ({budget_mib} MiB); retry later"
    )]
    NodeMemory {
        /// Plugin objectType.
        plugin: String,
        /// The config key of the budget.
        key: &'static str,
        /// The budget.
        budget_mib: u64,
    },
    /// The plugin returned more bytes than allowed.
    #[error(
        "the {plugin} plugin returned {size} bytes; the limit is {limit} (config key plugins.{plugin}.max_output_bytes)"
    )]
    OutputTooLarge {
        /// Plugin objectType.
        plugin: String,
        /// Bytes returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
}

/// A plugin's error after a failure of the host's own during its fetch: the
/// plugin's message (it names the object), the host's kind. A plugin cannot
/// turn the host's missing credentials into `NOT_FOUND`, nor a throttled STS
/// into `PERMISSION_DENIED`.
fn host_classified(error: FetchError, failure: HostFailure) -> FetchError {
    let message = match error {
        FetchError::NotFound(m)
        | FetchError::PermissionDenied(m)
        | FetchError::InvalidRequest(m)
        | FetchError::Unavailable(m)
        | FetchError::Other(m) => m,
    };
    match failure {
        HostFailure::Credentials { retryable: true } => FetchError::Unavailable(message),
        HostFailure::Credentials { retryable: false } => FetchError::PermissionDenied(message),
    }
}

/// `"<kind>: <message>"` for a plugin's typed error.
fn describe_fetch_error(error: &FetchError) -> String {
    match error {
        FetchError::NotFound(m) => format!("not found: {m}"),
        FetchError::PermissionDenied(m) => format!("permission denied: {m}"),
        FetchError::InvalidRequest(m) => format!("invalid request: {m}"),
        FetchError::Unavailable(m) => format!("unavailable: {m}"),
        FetchError::Other(m) => m.clone(),
    }
}

/// A plugin ready to instantiate.
pub(crate) struct Plugin {
    pub(crate) object_type: String,
    pub(crate) source: PluginSource,
    pub(crate) class: Class,
    /// Linear memory an instance grew to while loading (describe): what a
    /// fetch reserves before it instantiates.
    pub(crate) footprint: usize,
    pre: BackendPre<PluginState>,
    pub(crate) limits: PluginLimits,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) info: PluginInfo,
}

impl Plugin {
    /// The plugin as a metrics label: a built-in's name, or `custom`
    /// (never the configured objectType of a component file).
    pub(crate) fn metrics_label(&self) -> &'static str {
        match &self.source {
            PluginSource::Builtin(name) if name == "kms" => "kms",
            PluginSource::Builtin(name) if name == "oos" => "oos",
            PluginSource::Builtin(_) => "builtin",
            PluginSource::File(_) => "custom",
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("object_type", &self.object_type)
            .field("source", &self.source)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A call at load (describe, validate) that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The plugin refused, with its own message (validate).
    #[error("{0}")]
    Refused(String),
    /// The plugin trapped.
    #[error("{export} failed: {}", trap_text(error, stderr.as_deref()))]
    Trapped {
        /// The export called.
        export: &'static str,
        /// The trap.
        #[source]
        error: anyhow::Error,
        /// The first lines the plugin wrote to stderr.
        stderr: Option<String>,
    },
    /// The plugin did not return within its timeout.
    #[error("{export} did not return within {after:?}")]
    TimedOut {
        /// The export called.
        export: &'static str,
        /// The timeout.
        after: Duration,
    },
}

/// What a fetch's call returned, before [`Plugin::classify`] says what it means.
pub(crate) type FetchOutcome = wasmtime::Result<Result<types::FetchedObject, FetchError>>;

impl Plugin {
    /// The plugin of `route`, before `describe` has told its name.
    pub(crate) fn new(
        object_type: &str,
        source: PluginSource,
        pre: BackendPre<PluginState>,
        route: &PluginRoute,
        limits: PluginLimits,
        grants: Grants,
    ) -> Plugin {
        Plugin {
            object_type: object_type.to_string(),
            class: source.class(),
            source,
            footprint: 0,
            pre,
            limits,
            config: route
                .config
                .iter()
                .filter_map(|(k, v)| plugin_config_value(v).map(|v| (k.clone(), v)))
                .collect(),
            grants: Arc::new(grants),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                config: Vec::new(),
                parameters: Vec::new(),
            },
        }
    }

    /// A fresh store for one call of this plugin.
    pub(crate) fn store(
        &self,
        engine: &Engine,
        session: Option<Arc<CloudSession>>,
        deadline: Instant,
        mount: Arc<str>,
        account: Account,
    ) -> (Store<PluginState>, CappedPipe) {
        new_store(
            engine,
            StoreSpec {
                plugin: self.object_type.clone(),
                class: self.class,
                grants: self.grants.clone(),
                memory_limit_mib: self.limits.memory_limit_mib,
                session,
                mount,
                deadline,
                account,
            },
        )
    }

    /// What the plugin says about itself, and the memory it grew to.
    pub(crate) async fn describe(
        &self,
        engine: &Engine,
        account: Account,
    ) -> Result<(PluginInfo, usize), CallError> {
        self.call_at_load(engine, account, "describe", async |instance, store| {
            instance.call_describe(store).await.map(Ok)
        })
        .await
    }

    /// Whether the plugin accepts its configuration.
    pub(crate) async fn validate(
        &self,
        engine: &Engine,
        account: Account,
    ) -> Result<(), CallError> {
        let config = self.config.clone();
        self.call_at_load(engine, account, "validate", async move |instance, store| {
            let verdict = instance.call_validate(store, &config).await?;
            Ok(verdict.map_err(CallError::Refused))
        })
        .await
        .map(|((), _)| ())
    }

    /// Runs one export outside any Mount (no host services), within the
    /// plugin's timeout.
    async fn call_at_load<T>(
        &self,
        engine: &Engine,
        account: Account,
        export: &'static str,
        call: impl AsyncFnOnce(
            Backend,
            &mut Store<PluginState>,
        ) -> wasmtime::Result<Result<T, CallError>>,
    ) -> Result<(T, usize), CallError> {
        let deadline = Instant::now() + self.limits.timeout;
        let (mut store, stderr) = self.store(engine, None, deadline, Arc::from("load"), account);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            call(instance, &mut store).await
        };
        let outcome = tokio::time::timeout_at((deadline + EPOCH_TICK).into(), run).await;
        let footprint = store.data().memory_used();
        match outcome {
            Ok(Ok(result)) => result.map(|r| (r, footprint)),
            Ok(Err(error)) => Err(CallError::Trapped {
                export,
                error: error.into(),
                stderr: stderr.summary(),
            }),
            Err(_) => Err(CallError::TimedOut {
                export,
                after: self.limits.timeout,
            }),
        }
    }

    /// A fetch of `request` on a fresh instance in `store`: a future that
    /// gives the store back with the outcome, to run wherever the plugin's
    /// class runs.
    /// The instantiation time is counted in `metrics`, if given.
    pub(crate) fn fetch_call(
        &self,
        mut store: Store<PluginState>,
        request: ObjectRequest,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> impl Future<Output = (Store<PluginState>, FetchOutcome)> + Send + 'static {
        let pre = self.pre.clone();
        let kind = self.metrics_label();
        async move {
            let result = async {
                let begun = Instant::now();
                let instance = pre.instantiate_async(&mut store).await?;
                if let Some(metrics) = &metrics {
                    metrics.plugin_instantiated(kind, begun.elapsed());
                }
                instance.call_fetch(&mut store, &request).await
            }
            .await;
            (store, result)
        }
    }

    /// What a fetch's `outcome` means: the object, the plugin's own error,
    /// or which limit (`hit`, the `deadline`) or crash stopped it.
    /// `node_budget_mib` is the memory budget of the plugin's class.
    pub(crate) fn classify(
        &self,
        outcome: FetchOutcome,
        hit: LimitsHit,
        stderr: &CappedPipe,
        deadline: &FetchDeadline,
        node_budget_mib: u64,
    ) -> Result<FetchedObject, PluginError> {
        let plugin = self.object_type.clone();
        match outcome {
            Err(error) => {
                let error: anyhow::Error = error.into();
                if hit.memory {
                    return Err(PluginError::MemoryLimit {
                        plugin,
                        limit_mib: self.limits.memory_limit_mib,
                    });
                }
                if hit.node_budget {
                    return Err(PluginError::NodeMemory {
                        plugin,
                        key: self.class.memory_key(),
                        budget_mib: node_budget_mib,
                    });
                }
                if hit.host_calls {
                    return Err(PluginError::HostCallLimit {
                        plugin,
                        limit: self.limits.max_host_calls,
                    });
                }
                if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    return Err(deadline.timed_out(&plugin));
                }
                let message = trap_text(&error, stderr.summary().as_deref());
                tracing::warn!(plugin = %plugin, error = %message, "plugin trapped");
                Err(PluginError::Trapped { plugin, message })
            }
            Ok(Err(fetch_error)) => Err(PluginError::Fetch(match hit.host_failure {
                Some(failure) => host_classified(fetch_error, failure),
                None => fetch_error,
            })),
            Ok(Ok(object)) => {
                if object.contents.len() > self.limits.max_output_bytes {
                    return Err(PluginError::OutputTooLarge {
                        plugin,
                        size: object.contents.len(),
                        limit: self.limits.max_output_bytes,
                    });
                }
                Ok(FetchedObject {
                    contents: object.contents,
                    version: object.version,
                })
            }
        }
    }
}

/// When a fetch must end, and which limit set that: the Mount's deadline or
/// the plugin's timeout, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchDeadline {
    started: Instant,
    /// The deadline.
    pub(crate) at: Instant,
    mount_first: bool,
}

impl FetchDeadline {
    /// The deadline of a fetch started at `started`.
    pub(crate) fn new(started: Instant, mount_deadline: Instant, timeout: Duration) -> Self {
        let own = started + timeout;
        FetchDeadline {
            started,
            at: mount_deadline.min(own),
            mount_first: mount_deadline < own,
        }
    }

    /// The error of a fetch of `plugin` that ran past it.
    pub(crate) fn timed_out(&self, plugin: &str) -> PluginError {
        PluginError::TimedOut {
            plugin: plugin.to_string(),
            after: self.at.saturating_duration_since(self.started),
            cause: if self.mount_first {
                " (the Mount's deadline)".to_string()
            } else {
                format!(" (config key plugins.{plugin}.timeout)")
            },
        }
    }
}

/// A trap's reason, with the plugin's first stderr lines (a panic message).
fn trap_text(error: &anyhow::Error, stderr: Option<&str>) -> String {
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => error_text(error),
    };
    if let Some(panic) = stderr {
        message = format!("{message} (plugin stderr: {panic})");
    }
    message
}

/// The root cause of a wasmtime error, without the backtrace.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    parts.dedup();
    parts
        .into_iter()
        .map(|p| p.lines().next().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::pipeline::{Mode, StepError};
    use crate::plugin::testing::{BENCH_BUDGET_MIB, Bench, file_route, request, testing_route};

    async fn loaded(bench: &Bench, object_type: &str, route: &PluginRoute) -> Plugin {
        bench
            .load(object_type, route, Mode::FirstFailure)
            .await
            .into_plugin()
            .map_err(|(_, e)| e.to_string())
            .unwrap()
    }

    /// One fetch as the runtime makes it, without a Mount (no host services).
    async fn fetch(
        bench: &Bench,
        plugin: &Plugin,
        name: &str,
        mount_deadline: Instant,
    ) -> Result<FetchedObject, PluginError> {
        let (pool, budget_mib) = match plugin.class {
            Class::Builtin => (&bench.builtin, BENCH_BUDGET_MIB),
            Class::Custom => (&bench.custom, bench.custom_budget_mib),
        };
        let deadline = FetchDeadline::new(Instant::now(), mount_deadline, plugin.limits.timeout);
        let account = pool.reserve(plugin.footprint).await;
        let (store, stderr) =
            plugin.store(&bench.engine, None, deadline.at, Arc::from("t"), account);
        let call = plugin.fetch_call(store, request(&plugin.object_type, name), None);
        let (store, outcome) = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the epoch deadline ends every call");
        let hit = store.data().limits_hit();
        drop(store);
        plugin.classify(outcome, hit, &stderr, &deadline, budget_mib)
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn the_hosts_failures_decide_the_kind_and_keep_the_plugins_message() {
        let misread = || FetchError::NotFound("kms GetSecretValue: no credentials: x".into());
        assert!(matches!(
            host_classified(misread(), HostFailure::Credentials { retryable: false }),
            FetchError::PermissionDenied(m) if m == "kms GetSecretValue: no credentials: x"
        ));
        assert!(matches!(
            host_classified(misread(), HostFailure::Credentials { retryable: true }),
            FetchError::Unavailable(m) if m == "kms GetSecretValue: no credentials: x"
        ));
    }

    #[tokio::test]
    async fn a_plugins_answers_and_typed_errors_pass_through() {
        let bench = Bench::new();
        let good = loaded(&bench, "good", &file_route(&bench.fixture("good", |s| s))).await;
        assert_eq!(
            fetch(&bench, &good, "x", later()).await.unwrap(),
            FetchedObject {
                contents: b"from-wat".to_vec(),
                version: "w1".into()
            }
        );
        let testing = loaded(&bench, "testing", &testing_route()).await;
        assert_eq!(
            fetch(&bench, &testing, "echo:hello", later())
                .await
                .unwrap()
                .contents,
            b"hello"
        );
        let error = fetch(&bench, &testing, "error:not-found", later())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PluginError::Fetch(FetchError::NotFound(m)) if m == "requested not-found error"),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "not found: requested not-found error");
    }

    #[tokio::test]
    async fn traps_are_crashes_with_the_plugins_panic_text() {
        let bench = Bench::new();
        let trap = loaded(&bench, "trap", &file_route(&bench.fixture("trap", |s| s))).await;
        let error = fetch(&bench, &trap, "x", later()).await.unwrap_err();
        let PluginError::Trapped { plugin, message } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(plugin, "trap");
        assert!(message.starts_with("wasm trap: "), "{message}");
        assert!(!message.contains("plugin stderr"), "{message}");
        assert!(
            error
                .to_string()
                .starts_with("the trap plugin crashed: wasm trap: ")
        );

        let testing = loaded(&bench, "testing", &testing_route()).await;
        let error = fetch(&bench, &testing, "panic", later()).await.unwrap_err();
        let PluginError::Trapped { message, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            message.contains("(plugin stderr: ")
                && message.contains("testing plugin asked to panic"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn limits_are_named_not_taken_for_crashes() {
        let bench = Bench::with_custom_budget(8);
        let route = PluginRoute {
            memory_limit_mib: Some(4),
            max_host_calls: Some(3),
            max_output_bytes: Some(1000),
            ..testing_route()
        };
        let testing = loaded(&bench, "testing", &route).await;
        let error = fetch(&bench, &testing, "alloc:8", later())
            .await
            .unwrap_err();
        assert!(
            matches!(error, PluginError::MemoryLimit { limit_mib: 4, .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("(config key plugins.testing.memory_limit_mib)")
        );

        let error = fetch(&bench, &testing, "calls:10", later())
            .await
            .unwrap_err();
        assert!(
            matches!(error, PluginError::HostCallLimit { limit: 3, .. }),
            "{error:?}"
        );
        assert!(fetch(&bench, &testing, "calls:3", later()).await.is_ok());

        let error = fetch(&bench, &testing, "big:2000", later())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                PluginError::OutputTooLarge {
                    size: 2000,
                    limit: 1000,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(fetch(&bench, &testing, "big:1000", later()).await.is_ok());

        // within its own cap, past what the class may use on the node
        let roomy = PluginRoute {
            memory_limit_mib: Some(32),
            ..testing_route()
        };
        let testing = loaded(&bench, "roomy", &roomy).await;
        let error = fetch(&bench, &testing, "alloc:16", later())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                PluginError::NodeMemory {
                    key: "limits.custom_plugin_memory_mib",
                    budget_mib: 8,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().ends_with("; retry later"));
    }

    #[tokio::test]
    async fn a_deadline_says_which_limit_ran_out() {
        let bench = Bench::new();
        let route = PluginRoute {
            timeout: Some(Duration::from_millis(100)),
            ..file_route(&bench.fixture("loop", |s| s))
        };
        let looping = loaded(&bench, "looping", &route).await;
        let error = fetch(&bench, &looping, "x", later()).await.unwrap_err();
        let PluginError::TimedOut { after, cause, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*after, Duration::from_millis(100));
        assert_eq!(cause, " (config key plugins.looping.timeout)");

        let mount_deadline = Instant::now() + Duration::from_millis(50);
        let error = fetch(&bench, &looping, "x", mount_deadline)
            .await
            .unwrap_err();
        let PluginError::TimedOut { after, cause, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(*after <= Duration::from_millis(50));
        assert_eq!(cause, " (the Mount's deadline)");
        assert!(
            error
                .to_string()
                .starts_with("the looping plugin did not finish within ")
        );
    }

    #[test]
    fn the_earlier_of_the_mounts_deadline_and_the_timeout_wins() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let own = FetchDeadline::new(now, now + 2 * second, second);
        assert_eq!(own.at, now + second);
        assert!(
            matches!(own.timed_out("v"), PluginError::TimedOut { after, cause, .. } if after == second && cause == " (config key plugins.v.timeout)")
        );
        let mount = FetchDeadline::new(now, now + second / 2, second);
        assert_eq!(mount.at, now + second / 2);
        assert!(
            matches!(mount.timed_out("v"), PluginError::TimedOut { cause, .. } if cause == " (the Mount's deadline)")
        );
        // a tie is the plugin's own timeout
        assert!(!FetchDeadline::new(now, now + second, second).mount_first);
    }

    #[tokio::test]
    async fn calls_at_load_fail_with_the_export_named() {
        let bench = Bench::new();
        let trapping = bench.fixture("good", |s| {
            s.replace(
                "(func (export \"describe\") (result i32)",
                "(func (export \"describe\") (result i32) unreachable",
            )
        });
        let attempt = bench
            .load("t", &file_route(&trapping), Mode::FirstFailure)
            .await;
        let (_, error) = attempt.into_plugin().unwrap_err();
        let StepError::Describe(CallError::Trapped { export, .. }) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*export, "describe");
        assert!(
            error
                .to_string()
                .starts_with("describe failed: wasm trap: "),
            "{error}"
        );

        let spinning = bench.fixture("good", |s| {
            s.replace(
                "(func (export \"describe\") (result i32)",
                "(func (export \"describe\") (result i32) (loop br 0)",
            )
        });
        let route = PluginRoute {
            timeout: Some(Duration::from_millis(100)),
            ..file_route(&spinning)
        };
        let started = Instant::now();
        let (_, error) = bench
            .load("t", &route, Mode::FirstFailure)
            .await
            .into_plugin()
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        // Spinning, it is interrupted by the epoch deadline: a trap. (The
        // timer around the call, "did not return within", is for time spent
        // in host calls, which a plugin has none of at load.)
        assert!(
            matches!(
                &error,
                StepError::Describe(CallError::Trapped { export: "describe", error, .. })
                    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt))
            ),
            "{error:?}"
        );
        // (trap_text's prefix and the trap's own: the text as it has been)
        assert_eq!(
            error.to_string(),
            "describe failed: wasm trap: wasm trap: interrupt"
        );
        let timed_out = CallError::TimedOut {
            export: "validate",
            after: Duration::from_millis(100),
        };
        assert_eq!(
            timed_out.to_string(),
            "validate did not return within 100ms"
        );
    }

    #[test]
    fn object_types_are_listed_as_upstream_did() {
        assert_eq!(quoted_list(&[]), "no object type");
        assert_eq!(quoted_list(&["kms"]), "\"kms\"");
        assert_eq!(quoted_list(&["kms", "oos"]), "\"kms\" and \"oos\"");
        assert_eq!(
            quoted_list(&["kms", "oos", "vault"]),
            "\"kms\", \"oos\" and \"vault\""
        );
    }
}
