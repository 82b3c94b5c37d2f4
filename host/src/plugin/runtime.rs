//! [`PluginRuntime`]: the engine, every routed plugin, the fetch slots and
//! memory budgets of both classes of plugins, and the threads of custom
//! plugins; loaded once at start-up ([`PluginRuntime::load`]) or for one
//! route (`plugin check`, [`PluginRuntime::check`]), through the same
//! pipeline ([`super::pipeline`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::Linker;

use super::ObjectRequest;
use super::budget::{Class, Pool};
use super::cache;
use super::engine::{EPOCH_TICK, EngineSettings, EpochTicker, engine, linker, routes_custom};
use super::instance::{FetchDeadline, FetchedObject, Plugin, PluginError, quoted_list};
use super::pipeline::{Attempt, CheckError, CheckReport, LoadError, LoadFailure, Loader, Mode};
use super::store::PluginState;
use super::threads::CustomThreads;
use crate::config::Config;
use crate::session::CloudSession;

/// The engine and every routed plugin.
pub struct PluginRuntime {
    engine: Engine,
    plugins: BTreeMap<String, Arc<Plugin>>,
    /// Slots and memory of the built-in plugins.
    builtin: Pool,
    /// Slots and memory of custom plugins.
    custom: Pool,
    budgets_mib: (u64, u64),
    /// Where custom plugins run (when any is routed).
    custom_threads: Option<CustomThreads>,
    /// The on-disk cache of compiled custom plugins, when one is used.
    compile_cache: Option<wasmtime::Cache>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

/// What a runtime is started with, besides its engine's settings.
struct Setup {
    builtin: Pool,
    custom: Pool,
    budgets_mib: (u64, u64),
    cache_dir: Option<PathBuf>,
    custom_threads: bool,
}

impl PluginRuntime {
    /// An engine, its linker and ticker, with no plugin yet.
    fn start(
        settings: &EngineSettings,
        setup: Setup,
    ) -> Result<(PluginRuntime, Linker<PluginState>), LoadFailure> {
        let (engine, compile_cache) = engine(settings, setup.cache_dir.as_deref())?;
        let linker = linker(&engine)?;
        let ticker = EpochTicker::start(&engine);
        let custom_threads = if setup.custom_threads {
            Some(CustomThreads::start()?)
        } else {
            None
        };
        let runtime = PluginRuntime {
            engine,
            plugins: BTreeMap::new(),
            builtin: setup.builtin,
            custom: setup.custom,
            budgets_mib: setup.budgets_mib,
            custom_threads,
            compile_cache,
            _ticker: ticker,
        };
        Ok((runtime, linker))
    }

    /// Compiles and links every plugin the config routes, checks what each
    /// imports against what the config grants, and runs each plugin's
    /// `describe` and `validate`. Any failure stops start-up with the route's
    /// key in the message.
    pub async fn load(config: &Config) -> Result<PluginRuntime, LoadError> {
        let limits = &config.limits;
        let settings = EngineSettings::for_config(config);
        let has_custom = routes_custom(config);
        let setup = Setup {
            builtin: Pool::new(
                settings.builtin_instances as usize,
                limits.fetch_concurrency_per_namespace,
                limits.plugin_memory_mib,
            ),
            custom: Pool::new(
                (settings.custom_instances as usize).max(1),
                limits.fetch_concurrency_per_namespace,
                limits.custom_plugin_memory_mib,
            ),
            budgets_mib: (limits.plugin_memory_mib, limits.custom_plugin_memory_mib),
            cache_dir: if has_custom {
                cache::trusted_dir(&config.plugin_cache.dir)
            } else {
                None
            },
            custom_threads: has_custom,
        };
        let (mut runtime, linker) =
            PluginRuntime::start(&settings, setup).map_err(LoadError::shared)?;

        let mut loaded = Vec::new();
        {
            let mut loader =
                Loader::new(&runtime.engine, &linker, &runtime.builtin, &runtime.custom)
                    .logging_compiles(runtime.compile_cache.as_ref());
            for (object_type, route) in &config.plugins {
                let attempt = loader
                    .load(
                        object_type,
                        route,
                        config.limits_for(route),
                        Mode::FirstFailure,
                    )
                    .await;
                let plugin = attempt.into_plugin().map_err(|(source, error)| {
                    LoadError::step(object_type, source.as_ref(), error)
                })?;
                tracing::info!(
                    object_type = %object_type,
                    plugin = %plugin.info.name,
                    version = %plugin.info.version,
                    source = %plugin.source,
                    "plugin loaded"
                );
                loaded.push((object_type.clone(), Arc::new(plugin)));
            }
        }
        runtime.plugins.extend(loaded);
        Ok(runtime)
    }

    /// Hits and misses of the on-disk cache of compiled custom plugins since
    /// start (`None`: no cache is used).
    pub fn compile_cache_stats(&self) -> Option<(usize, usize)> {
        self.compile_cache
            .as_ref()
            .map(|cache| (cache.cache_hits(), cache.cache_misses()))
    }

    /// Loads one route's plugin step by step as [`PluginRuntime::load`]
    /// would, reporting every step instead of stopping at the first error:
    /// what `plugin check` prints.
    pub async fn check(config: &Config, object_type: &str) -> CheckReport {
        let Some(route) = config.plugins.get(object_type) else {
            return CheckReport::failed("route", object_type, CheckError::NoRoute);
        };
        let limits = config.limits_for(route);
        let memory_mib = limits.memory_limit_mib;
        let setup = Setup {
            builtin: Pool::new(1, 1, memory_mib),
            custom: Pool::new(1, 1, memory_mib),
            budgets_mib: (memory_mib, memory_mib),
            cache_dir: None,
            custom_threads: false,
        };
        let (runtime, linker) =
            match PluginRuntime::start(&EngineSettings::for_check(memory_mib), setup) {
                Ok(started) => started,
                Err(LoadFailure::Linker(e)) => {
                    return CheckReport::failed(
                        "host interfaces",
                        object_type,
                        CheckError::Linker(e),
                    );
                }
                Err(LoadFailure::Engine(e)) => {
                    return CheckReport::failed("engine", object_type, CheckError::Engine(e));
                }
                Err(other) => unreachable!("no threads or plugins are started: {other}"),
            };
        let attempt: Attempt =
            Loader::new(&runtime.engine, &linker, &runtime.builtin, &runtime.custom)
                .load(object_type, route, limits, Mode::EveryStep)
                .await;
        CheckReport::of(object_type, attempt)
    }

    fn pool(&self, class: Class) -> &Pool {
        match class {
            Class::Builtin => &self.builtin,
            Class::Custom => &self.custom,
        }
    }

    fn budget_mib(&self, class: Class) -> u64 {
        match class {
            Class::Builtin => self.budgets_mib.0,
            Class::Custom => self.budgets_mib.1,
        }
    }

    /// The routed objectTypes.
    pub(crate) fn object_types(&self) -> Vec<&str> {
        self.plugins.keys().map(String::as_str).collect()
    }

    /// Whether fetches of `object_type` may be shared by Mounts of the same
    /// identity: the plugin reaches its backend only through signed calls
    /// with the Mount's credentials (the built-ins), so the object depends
    /// on nothing else of the Mount.
    pub(crate) fn shareable(&self, object_type: &str) -> bool {
        self.plugins.get(object_type).is_some_and(|p| {
            p.grants.alibaba_cloud && p.grants.egress.is_none() && !p.grants.identity()
        })
    }

    /// Whether `object_type` is routed.
    pub(crate) fn routes(&self, object_type: &str) -> bool {
        self.plugins.contains_key(object_type)
    }

    /// The plugin's configuration values, passed in every request.
    pub(crate) fn plugin_config(&self, object_type: &str) -> Option<&[(String, String)]> {
        self.plugins.get(object_type).map(|p| p.config.as_slice())
    }

    /// Runs the plugin for `request.object_type` on a fresh instance, in a
    /// fetch slot of its class shared fairly by `namespace`.
    pub async fn fetch(
        &self,
        request: ObjectRequest,
        session: Arc<CloudSession>,
        mount_deadline: Instant,
        mount_label: Arc<str>,
        namespace: &str,
    ) -> Result<FetchedObject, PluginError> {
        self.fetch_with(
            request,
            Some(session),
            mount_deadline,
            mount_label,
            namespace,
        )
        .await
    }

    /// [`PluginRuntime::fetch`], with or without the Mount's cloud access.
    async fn fetch_with(
        &self,
        request: ObjectRequest,
        session: Option<Arc<CloudSession>>,
        mount_deadline: Instant,
        mount_label: Arc<str>,
        namespace: &str,
    ) -> Result<FetchedObject, PluginError> {
        let Some(plugin) = self.plugins.get(&request.object_type) else {
            return Err(PluginError::UnknownObjectType {
                object_type: request.object_type.clone(),
                configured: quoted_list(&self.object_types()),
            });
        };
        let result = self
            .run(
                plugin,
                request,
                session.clone(),
                mount_deadline,
                mount_label,
                namespace,
            )
            .await;
        // Counted for fetches of Mounts (which have a session), not for the
        // describe and validate calls at start-up.
        if let (Some(session), Err(error)) = (&session, &result) {
            let kind = plugin.metrics_label();
            match error {
                PluginError::TimedOut { .. } => session.metrics().plugin_timed_out(kind),
                PluginError::Trapped { .. } => session.metrics().plugin_trapped(kind),
                _ => {}
            }
        }
        result
    }

    /// One fetch by `plugin`: a slot and memory within the deadline, a fresh
    /// instance, the call, and what its outcome means.
    async fn run(
        &self,
        plugin: &Plugin,
        request: ObjectRequest,
        session: Option<Arc<CloudSession>>,
        mount_deadline: Instant,
        mount_label: Arc<str>,
        namespace: &str,
    ) -> Result<FetchedObject, PluginError> {
        let metrics = session.as_ref().map(|s| s.metrics().clone());
        let name = plugin.object_type.clone();
        let deadline = FetchDeadline::new(Instant::now(), mount_deadline, plugin.limits.timeout);
        let pool = self.pool(plugin.class);
        // The slot and the memory are waited for within the fetch's deadline;
        // both are returned when this function returns.
        let admitted = tokio::time::timeout_at(deadline.at.into(), async {
            let slot = pool.slot(namespace).await;
            (slot, pool.reserve(plugin.footprint).await)
        })
        .await;
        let Ok((_slot, account)) = admitted else {
            return Err(deadline.timed_out(&name));
        };
        let (store, stderr) =
            plugin.store(&self.engine, session, deadline.at, mount_label, account);
        let call = plugin.fetch_call(store, request, metrics);
        let until = (deadline.at + EPOCH_TICK).into();
        let outcome = match (&self.custom_threads, plugin.class) {
            // Custom plugins compute on threads of their own, at a lower
            // priority: a plugin that spins until its timeout takes CPU from
            // other custom plugins, not from the async workers that serve
            // every Mount.
            (Some(threads), Class::Custom) => {
                let task = threads.spawn(call);
                let abort = task.abort_handle();
                match tokio::time::timeout_at(until, task).await {
                    Ok(Ok(done)) => Ok(done),
                    Ok(Err(join_error)) => {
                        tracing::error!(plugin = %name, error = %join_error, "a plugin task failed");
                        return Err(PluginError::Trapped {
                            plugin: name,
                            message: "the host failed while running it (a bug; please report it with the provider's log)".into(),
                        });
                    }
                    Err(elapsed) => {
                        abort.abort();
                        Err(elapsed)
                    }
                }
            }
            _ => tokio::time::timeout_at(until, call).await,
        };
        let (store, outcome) = match outcome {
            Ok((store, outcome)) => (store, outcome),
            Err(_elapsed) => return Err(deadline.timed_out(&name)),
        };
        let hit = store.data().limits_hit();
        drop(store);
        plugin.classify(
            outcome,
            hit,
            &stderr,
            &deadline,
            self.budget_mib(plugin.class),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::PluginRoute;
    use crate::plugin::testing::{Bench, builtin_route, file_route, request, testing_route};

    #[tokio::test]
    async fn a_loaded_runtime_routes_and_runs_each_class_where_it_belongs() {
        let bench = Bench::new();
        let mut config = Config::default();
        config.plugins.clear();
        config.plugins.insert("kms".into(), builtin_route("kms"));
        let mut testing = testing_route();
        testing.config.insert("greeting".into(), "hello".into());
        config.plugins.insert("testing".into(), testing);
        config.plugins.insert(
            "looping".into(),
            PluginRoute {
                timeout: Some(Duration::from_millis(100)),
                ..file_route(&bench.fixture("loop", |s| s))
            },
        );
        let runtime = PluginRuntime::load(&config).await.unwrap();
        assert_eq!(runtime.object_types(), ["kms", "looping", "testing"]);
        assert!(runtime.routes("kms") && !runtime.routes("oos"));
        assert!(runtime.shareable("kms"), "signed calls only");
        assert!(!runtime.shareable("testing"), "it reaches other origins");
        assert_eq!(
            runtime.plugin_config("testing").unwrap(),
            [("greeting".to_string(), "hello".to_string())]
        );
        assert!(runtime.custom_threads.is_some());
        assert_eq!(runtime.compile_cache_stats(), None);

        let later = Instant::now() + Duration::from_secs(60);
        let fetch = |name: &str| {
            runtime.fetch_with(
                request(
                    name.split('/').next().unwrap(),
                    name.split('/').nth(1).unwrap(),
                ),
                None,
                later,
                Arc::from("test"),
                "default",
            )
        };
        // on the custom plugins' threads
        assert_eq!(
            fetch("testing/echo:hello").await.unwrap().contents,
            b"hello"
        );
        let error = fetch("testing/panic").await.unwrap_err();
        assert!(matches!(error, PluginError::Trapped { .. }), "{error:?}");
        let error = fetch("looping/x").await.unwrap_err();
        assert!(
            matches!(&error, PluginError::TimedOut { cause, .. } if cause == " (config key plugins.looping.timeout)"),
            "{error:?}"
        );
        let error = fetch("vault/x").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported object type \"vault\", only support \"kms\", \"looping\" and \"testing\""
        );
    }

    #[tokio::test]
    async fn check_reports_a_missing_route_and_every_step_of_a_present_one() {
        let config = Config::default();
        let report = PluginRuntime::check(&config, "vault").await;
        assert!(!report.passed());
        let (name, outcome) = &report.steps[0];
        assert_eq!(*name, "route");
        assert_eq!(
            outcome.as_ref().unwrap_err().to_string(),
            "no [plugins.vault] in the config"
        );

        let report = PluginRuntime::check(&config, "oos").await;
        assert!(report.passed(), "{:?}", report.steps);
        let names: Vec<&str> = report.steps.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            ["compile", "imports", "interface", "describe", "validate"]
        );
        assert_eq!(report.info.unwrap().name, "oos");
    }

    #[tokio::test]
    async fn load_names_the_route_that_fails() {
        let mut config = Config::default();
        config.plugins.insert("p".into(), builtin_route("vault"));
        let error = PluginRuntime::load(&config).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "plugins.p: cannot load built-in vault: no built-in plugin is called \"vault\""
        );
    }
}
