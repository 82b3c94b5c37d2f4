//! The WebAssembly plugin runtime: one engine, every plugin compiled and
//! type-checked once at start-up, a fresh sandboxed instance per object fetch.
//!
//! Each fetch gets a new store with no WASI capabilities, a memory cap, an
//! epoch deadline (the plugin's timeout, within the Mount's deadline) that
//! yields to the executor every tick, and a wall-clock timeout around the
//! call for time spent blocked in host calls. A trap, timeout or limit fails
//! that object with a clear error; the process and other Mounts carry on.

mod bindings;
pub mod budget;
mod cache;
mod codegen;
pub mod egress;
mod host;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::{Config, PluginLimits, plugin_config_value};
use crate::session::CloudSession;
use budget::{Account, Class, Pool};

pub use bindings::alibabacloud_csi::plugin::types::{
    FetchError, ObjectRequest, Parameter, PluginInfo,
};
use bindings::{Backend, BackendPre};
pub use load::{HOST_WIT_VERSION, ImportReport, WIT_VERSION_SECTION, inspect};

/// How often the epoch advances; the granularity of plugin deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of a plugin's stderr kept for error messages (panic text).
const STDERR_CAP: usize = 4096;
/// Log lines a plugin may write per fetch; the rest are dropped.
const LOG_LINES_PER_FETCH: u32 = 100;
/// Longest log line kept.
const LOG_LINE_MAX: usize = 1024;
/// Host resources (WASI streams, pollables, ...) one instance may hold at
/// once; a plugin needs a handful per host call. Bounds the host memory a
/// loop creating resources can take.
pub const MAX_HOST_RESOURCES: usize = 4096;

/// The built-in plugins, compiled into the binary by build.rs.
pub const BUILTIN_KMS: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/kms_plugin.wasm"
));
/// The built-in OOS plugin.
pub const BUILTIN_OOS: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/oos_plugin.wasm"
));
/// The built-in KMS plugin compiled to native code by build.rs (empty if it
/// could not be).
const BUILTIN_KMS_CODE: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/kms_plugin.cwasm"
));
/// The built-in OOS plugin compiled to native code by build.rs.
const BUILTIN_OOS_CODE: &[u8] = include_bytes!(concat!(
    env!("PROVIDER_BUILT_PLUGIN_DIR"),
    "/oos_plugin.cwasm"
));
/// The target the engine generates code for (see `codegen`).
const PLUGIN_TARGET: &str = env!("PROVIDER_PLUGIN_TARGET");
/// Where build.rs left the plugins it built, including the `testing` fixture
/// (used by tests and benchmarks; not embedded).
pub const BUILT_PLUGIN_DIR: &str = env!("PROVIDER_BUILT_PLUGIN_DIR");

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

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PluginSource {
    /// Compiled into the binary.
    Builtin(String),
    /// A component file.
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "built-in {name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin ready to instantiate.
pub struct Plugin {
    object_type: String,
    source: PluginSource,
    class: Class,
    /// Linear memory an instance grew to while loading (describe): what a
    /// fetch reserves before it instantiates.
    footprint: usize,
    pre: BackendPre<PluginState>,
    limits: PluginLimits,
    config: Vec<(String, String)>,
    grants: Arc<Grants>,
    info: PluginInfo,
}

impl Plugin {
    /// A plugin of `route`, before `describe` has told its name.
    fn new(
        object_type: &str,
        source: PluginSource,
        pre: BackendPre<PluginState>,
        route: &crate::config::PluginRoute,
        limits: PluginLimits,
        grants: Grants,
    ) -> Plugin {
        let class = match source {
            PluginSource::Builtin(_) => Class::Builtin,
            PluginSource::File(_) => Class::Custom,
        };
        Plugin {
            object_type: object_type.to_string(),
            source,
            class,
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
}

impl Plugin {
    /// The plugin as a metrics label: a built-in's name, or `custom`
    /// (never the configured objectType of a component file).
    fn metrics_label(&self) -> &'static str {
        match &self.source {
            PluginSource::Builtin(name) if name == "kms" => "kms",
            PluginSource::Builtin(name) if name == "oos" => "oos",
            PluginSource::Builtin(_) => "builtin",
            PluginSource::File(_) => "custom",
        }
    }
}

/// What the operator granted a plugin (`[plugins.<type>.capabilities]`) and
/// the host-call budget of one fetch.
#[derive(Debug)]
pub struct Grants {
    /// Signed Alibaba Cloud calls.
    pub alibaba_cloud: bool,
    /// Outbound HTTP, when any origin is allowed.
    pub egress: Option<egress::Egress>,
    /// Audiences of service-account tokens it may read.
    pub audiences: Vec<String>,
    /// nodePublishSecretRef keys it may read.
    pub secret_keys: Vec<String>,
    /// Whether it may read the pod's identity.
    pub pod_info: bool,
    /// Host calls one fetch may make.
    pub max_host_calls: u32,
}

impl Grants {
    /// Whether any part of the `identity` interface is granted.
    pub fn identity(&self) -> bool {
        self.pod_info || !self.audiences.is_empty() || !self.secret_keys.is_empty()
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

/// A plugin that could not be loaded; stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("plugins.{object_type}: cannot load {source_desc}: {reason}")]
pub struct LoadError {
    /// The route's objectType.
    pub object_type: String,
    /// What was being loaded.
    pub source_desc: String,
    /// Why it failed, and what to do.
    pub reason: String,
}

/// `"kms" and "oos"`, `"kms", "oos" and "vault"`: the routed object types
/// as upstream's message listed its two (`only support "kms" and "oos"`).
pub fn quoted_list(types: &[&str]) -> String {
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
        /// The configured ones, quoted, as [`quoted_list`] writes them.
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

/// `"<kind>: <message>"` for a plugin's typed error.
pub fn describe_fetch_error(error: &FetchError) -> String {
    match error {
        FetchError::NotFound(m) => format!("not found: {m}"),
        FetchError::PermissionDenied(m) => format!("permission denied: {m}"),
        FetchError::InvalidRequest(m) => format!("invalid request: {m}"),
        FetchError::Unavailable(m) => format!("unavailable: {m}"),
        FetchError::Other(m) => m.clone(),
    }
}

/// What `plugin check` found, step by step.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The WIT version stamped by the SDK, if any.
    pub wit_version: Option<String>,
    /// Each step and its outcome, in order.
    pub steps: Vec<(&'static str, Result<String, String>)>,
    /// Every import and whether it is granted.
    pub imports: Vec<ImportReport>,
    /// What the plugin says about itself.
    pub info: Option<PluginInfo>,
}

impl CheckReport {
    fn step(&mut self, name: &'static str, outcome: Result<String, String>) {
        self.steps.push((name, outcome));
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|(_, o)| o.is_ok())
    }
}

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

/// Engine settings shared by every plugin.
///
/// Instances come from a pool: creating and dropping an instance then reuses
/// memory slots instead of an mmap and a munmap (with its TLB shootdowns) per
/// fetch, which halves the per-fetch cost. The pool is the sum of what each
/// class can hold at once: `builtin` instances of our own plugins (3 core
/// instances, 1 memory and a few tables each, with room to spare) and
/// `custom` instances of operator plugins at the per-component maxima, so
/// that custom instances, however they are built, never take a built-in's
/// place.
fn engine(
    builtin: u32,
    custom: u32,
    max_memory_bytes: u64,
    cache_dir: Option<&std::path::Path>,
) -> Result<(Engine, Option<wasmtime::Cache>), String> {
    const CUSTOM_CORE_INSTANCES: u32 = 32;
    const CUSTOM_MEMORIES: u32 = 2;
    const CUSTOM_TABLES: u32 = 8;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(builtin + custom)
        // A Rust wasip2 component instantiates 3 core modules (main, shim,
        // fixup); other toolchains may use more.
        .total_core_instances(builtin * 4 + custom * CUSTOM_CORE_INSTANCES)
        .max_core_instances_per_component(CUSTOM_CORE_INSTANCES)
        .total_memories(builtin * 2 + custom * CUSTOM_MEMORIES)
        .max_memories_per_component(CUSTOM_MEMORIES)
        .total_tables(builtin * 4 + custom * CUSTOM_TABLES)
        .max_tables_per_component(CUSTOM_TABLES)
        .total_stacks(builtin + custom)
        .max_memory_size(max_memory_bytes as usize);
    let mut config = codegen::codegen_config(PLUGIN_TARGET)?;
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    let cache = cache_dir.and_then(cache::open);
    config.cache(cache.clone());
    let engine =
        Engine::new(&config).map_err(|e| format!("cannot create the WebAssembly engine: {e}"))?;
    Ok((engine, cache))
}

impl PluginRuntime {
    /// Compiles and links every plugin the config routes, checks what each
    /// imports against what the config grants, and runs each plugin's
    /// `describe` and `validate`. Any failure stops start-up with the route's
    /// key in the message.
    pub async fn load(config: &Config) -> Result<PluginRuntime, LoadError> {
        let limits = &config.limits;
        let builtin_slots = limits.fetch_concurrency.min(1 << 16) as u32;
        let has_custom = config.plugins.values().any(|r| r.path.is_some());
        let cache_dir = if has_custom {
            cache::trusted_dir(&config.plugin_cache.dir)
        } else {
            None
        };
        let custom_slots = if has_custom {
            limits.custom_fetch_concurrency.min(1 << 12) as u32
        } else {
            0
        };
        let max_memory = config
            .plugins
            .values()
            .map(|route| config.limits_for(route).memory_limit_mib)
            .max()
            .unwrap_or(config.plugin_defaults.memory_limit_mib)
            << 20;
        let (engine, compile_cache) = engine(
            builtin_slots,
            custom_slots,
            max_memory,
            cache_dir.as_deref(),
        )
        .map_err(|reason| LoadError {
            object_type: "*".into(),
            source_desc: "the engine".into(),
            reason,
        })?;
        let linker = linker(&engine).map_err(|reason| LoadError {
            object_type: "*".into(),
            source_desc: "the host interfaces".into(),
            reason,
        })?;
        let ticker = EpochTicker::start(&engine);
        let mut runtime = PluginRuntime {
            engine,
            plugins: BTreeMap::new(),
            builtin: Pool::new(
                Class::Builtin,
                builtin_slots as usize,
                limits.fetch_concurrency_per_namespace,
                limits.plugin_memory_mib,
            ),
            custom: Pool::new(
                Class::Custom,
                (custom_slots as usize).max(1),
                limits.fetch_concurrency_per_namespace,
                limits.custom_plugin_memory_mib,
            ),
            budgets_mib: (limits.plugin_memory_mib, limits.custom_plugin_memory_mib),
            custom_threads: if has_custom {
                Some(CustomThreads::start().map_err(|reason| LoadError {
                    object_type: "*".into(),
                    source_desc: "the custom plugins' threads".into(),
                    reason,
                })?)
            } else {
                None
            },
            compile_cache,
            _ticker: ticker,
        };

        let mut compiled: BTreeMap<PluginSource, Component> = BTreeMap::new();
        for (object_type, route) in &config.plugins {
            let source = match (&route.builtin, &route.path) {
                (Some(name), _) => PluginSource::Builtin(name.clone()),
                (None, Some(path)) => PluginSource::File(path.clone()),
                (None, None) => unreachable!("Config::validate requires builtin or path"),
            };
            let fail = |reason: String| LoadError {
                object_type: object_type.clone(),
                source_desc: source.to_string(),
                reason,
            };
            let component = match compiled.get(&source) {
                Some(component) => component.clone(),
                None => {
                    let bytes = load::read(&source).map_err(fail)?;
                    let hits = runtime.compile_cache_stats().map(|(hits, _)| hits);
                    let started = std::time::Instant::now();
                    let component =
                        load::compile(&runtime.engine, &source, &bytes).map_err(fail)?;
                    if matches!(source, PluginSource::File(_)) {
                        let from_cache = runtime.compile_cache_stats().map(|(h, _)| h) > hits;
                        tracing::info!(
                            object_type = %object_type,
                            source = %source,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "{}",
                            if from_cache {
                                "custom plugin loaded from the plugin cache"
                            } else {
                                "custom plugin compiled"
                            }
                        );
                    }
                    compiled.insert(source.clone(), component.clone());
                    component
                }
            };
            let limits = config.limits_for(route);
            let grants = load::grants(object_type, route, &limits).map_err(fail)?;
            load::check_imports(&runtime.engine, &component, &grants, object_type).map_err(fail)?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(BackendPre::new)
                .map_err(|e| {
                    fail(format!(
                        "it does not fit this host's plugin interface ({}, world backend): {}",
                        HOST_WIT_VERSION,
                        error_text(&e.into())
                    ))
                })?;
            let mut plugin = Plugin::new(object_type, source.clone(), pre, route, limits, grants);
            let (info, footprint) = runtime.describe(&plugin).await.map_err(fail)?;
            plugin.info = info;
            plugin.footprint = footprint;
            runtime
                .validate(&plugin)
                .await
                .map_err(|e| fail(format!("its configuration is refused: {e}")))?;
            tracing::info!(
                object_type = %object_type,
                plugin = %plugin.info.name,
                version = %plugin.info.version,
                source = %source,
                "plugin loaded"
            );
            runtime
                .plugins
                .insert(object_type.clone(), Arc::new(plugin));
        }
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
        let mut report = CheckReport::default();
        let Some(route) = config.plugins.get(object_type) else {
            report.step(
                "route",
                Err(format!("no [plugins.{object_type}] in the config")),
            );
            return report;
        };
        let source = match (&route.builtin, &route.path) {
            (Some(name), _) => PluginSource::Builtin(name.clone()),
            (None, Some(path)) => PluginSource::File(path.clone()),
            (None, None) => {
                report.step(
                    "route",
                    Err("the route names neither builtin nor path".into()),
                );
                return report;
            }
        };
        let bytes = match load::read(&source) {
            Ok(bytes) => bytes,
            Err(e) => {
                report.step("compile", Err(e));
                return report;
            }
        };
        if let PluginSource::File(_) = &source {
            report.wit_version = load::wit_version_stamp(&bytes);
        }
        let limits = config.limits_for(route);
        let engine = match engine(1, 1, limits.memory_limit_mib << 20, None) {
            Ok((engine, _)) => engine,
            Err(e) => {
                report.step("engine", Err(e));
                return report;
            }
        };
        let linker = match linker(&engine) {
            Ok(linker) => linker,
            Err(e) => {
                report.step("host interfaces", Err(e));
                return report;
            }
        };
        let ticker = EpochTicker::start(&engine);
        let runtime = PluginRuntime {
            engine,
            plugins: BTreeMap::new(),
            builtin: Pool::new(Class::Builtin, 1, 1, limits.memory_limit_mib),
            custom: Pool::new(Class::Custom, 1, 1, limits.memory_limit_mib),
            budgets_mib: (limits.memory_limit_mib, limits.memory_limit_mib),
            custom_threads: None,
            compile_cache: None,
            _ticker: ticker,
        };
        let component = match load::compile(&runtime.engine, &source, &bytes) {
            Ok(component) => {
                report.step(
                    "compile",
                    Ok(format!("{source} is a WebAssembly component")),
                );
                component
            }
            Err(e) => {
                report.step("compile", Err(e));
                return report;
            }
        };
        let grants = match load::grants(object_type, route, &limits) {
            Ok(grants) => grants,
            Err(e) => {
                report.step("capabilities", Err(e));
                return report;
            }
        };
        report.imports = load::inspect(&runtime.engine, &component, &grants, object_type);
        let refused = report.imports.iter().filter(|i| i.verdict.is_err()).count();
        report.step(
            "imports",
            if refused == 0 {
                Ok(format!(
                    "{} imports, all granted or offered",
                    report.imports.len()
                ))
            } else {
                Err(format!("{refused} import(s) refused"))
            },
        );
        let pre = match linker.instantiate_pre(&component).and_then(BackendPre::new) {
            Ok(pre) => {
                report.step(
                    "interface",
                    Ok(format!(
                        "exports describe, validate and fetch of {HOST_WIT_VERSION}"
                    )),
                );
                pre
            }
            Err(e) => {
                report.step(
                    "interface",
                    Err(format!(
                        "does not fit {HOST_WIT_VERSION}, world backend: {}",
                        error_text(&e.into())
                    )),
                );
                return report;
            }
        };
        let mut plugin = Plugin::new(object_type, source, pre, route, limits, grants);
        match runtime.describe(&plugin).await {
            Ok((info, _)) => {
                report.step("describe", Ok(format!("{} {}", info.name, info.version)));
                plugin.info = info.clone();
                report.info = Some(info);
            }
            Err(e) => {
                report.step("describe", Err(e));
                return report;
            }
        }
        let validation = runtime.validate(&plugin).await;
        report.step(
            "validate",
            validation
                .map(|()| format!("accepts the configuration of [plugins.{object_type}.config]"))
                .map_err(|e| format!("refuses [plugins.{object_type}.config]: {e}")),
        );
        report
    }

    /// What the plugin for `object_type` says about itself.
    pub fn info(&self, object_type: &str) -> Option<&PluginInfo> {
        self.plugins.get(object_type).map(|p| &p.info)
    }

    /// What the plugin says about itself, and the memory it grew to.
    async fn describe(&self, plugin: &Plugin) -> Result<(PluginInfo, usize), String> {
        self.call_at_load(plugin, "describe", async |instance, store| {
            instance.call_describe(store).await.map(Ok)
        })
        .await
    }

    async fn validate(&self, plugin: &Plugin) -> Result<(), String> {
        let config = plugin.config.clone();
        self.call_at_load(plugin, "validate", async move |instance, store| {
            instance.call_validate(store, &config).await
        })
        .await
        .map(|((), _)| ())
    }

    fn pool(&self, class: Class) -> &Pool {
        match class {
            Class::Builtin => &self.builtin,
            Class::Custom => &self.custom,
        }
    }

    /// Runs one export of `plugin` outside any Mount (no host services),
    /// within the plugin's timeout.
    async fn call_at_load<T>(
        &self,
        plugin: &Plugin,
        export: &str,
        call: impl AsyncFnOnce(Backend, &mut Store<PluginState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<(T, usize), String> {
        let deadline = Instant::now() + plugin.limits.timeout;
        let account = self.pool(plugin.class).unreserved();
        let (mut store, stderr) = self.store(plugin, None, deadline, Arc::from("load"), account);
        let run = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            call(instance, &mut store).await
        };
        let outcome = tokio::time::timeout_at((deadline + EPOCH_TICK).into(), run).await;
        let footprint = store.data().limiter.account.used();
        match outcome {
            Ok(Ok(result)) => result.map(|r| (r, footprint)),
            Ok(Err(e)) => Err(format!(
                "{export} failed: {}",
                trap_text(&e.into(), &stderr)
            )),
            Err(_) => Err(format!(
                "{export} did not return within {:?}",
                plugin.limits.timeout
            )),
        }
    }

    /// A fresh store for one call of `plugin`: no WASI capabilities, the
    /// plugin's memory cap, an epoch deadline that yields every tick.
    fn store(
        &self,
        plugin: &Plugin,
        session: Option<Arc<CloudSession>>,
        deadline: Instant,
        mount: Arc<str>,
        account: Account,
    ) -> (Store<PluginState>, CappedPipe) {
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
            &self.engine,
            PluginState {
                wasi,
                table,
                limiter: MemoryLimiter {
                    max_bytes: (plugin.limits.memory_limit_mib << 20) as usize,
                    exceeded: false,
                    account,
                    budget_exhausted: false,
                },
                session,
                grants: plugin.grants.clone(),
                plugin: plugin.object_type.clone(),
                mount,
                main: match plugin.class {
                    Class::Custom => tokio::runtime::Handle::try_current().ok(),
                    Class::Builtin => None,
                },
                deadline,
                log_lines: 0,
                host_calls: 0,
                host_call_limit_hit: false,
            },
        );
        store.limiter(|state| &mut state.limiter);
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

    /// The routed objectTypes.
    pub fn object_types(&self) -> Vec<&str> {
        self.plugins.keys().map(String::as_str).collect()
    }

    /// Whether fetches of `object_type` may be shared by Mounts of the same
    /// identity: the plugin reaches its backend only through signed calls
    /// with the Mount's credentials (the built-ins), so the object depends
    /// on nothing else of the Mount.
    pub fn shareable(&self, object_type: &str) -> bool {
        self.plugins.get(object_type).is_some_and(|p| {
            p.grants.alibaba_cloud && p.grants.egress.is_none() && !p.grants.identity()
        })
    }

    /// Whether `object_type` is routed.
    pub fn routes(&self, object_type: &str) -> bool {
        self.plugins.contains_key(object_type)
    }

    /// The plugin's configuration values, passed in every request.
    pub fn plugin_config(&self, object_type: &str) -> Option<&[(String, String)]> {
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
        let Some(plugin) = self.plugins.get(&request.object_type) else {
            return Err(PluginError::UnknownObjectType {
                object_type: request.object_type.clone(),
                configured: quoted_list(&self.object_types()),
            });
        };
        let name = plugin.object_type.clone();
        let metrics = session.metrics().clone();
        let kind = plugin.metrics_label();
        let started = Instant::now();
        let own_deadline = started + plugin.limits.timeout;
        let (deadline, cause) = if mount_deadline < own_deadline {
            (mount_deadline, " (the Mount's deadline)")
        } else {
            (own_deadline, " (config key plugins.<type>.timeout)")
        };
        let timed_out = || {
            metrics.plugin_timed_out(kind);
            PluginError::TimedOut {
                plugin: name.clone(),
                after: deadline.saturating_duration_since(started),
                cause: cause.replace("<type>", &name),
            }
        };
        let pool = self.pool(plugin.class);
        // The slot and the memory are waited for within the fetch's deadline;
        // both are returned when this function returns.
        let admitted = tokio::time::timeout_at(deadline.into(), async {
            let slot = pool.slot(namespace).await;
            (slot, pool.reserve(plugin.footprint).await)
        })
        .await;
        let Ok((_slot, account)) = admitted else {
            return Err(timed_out());
        };
        let (mut store, stderr) = self.store(plugin, Some(session), deadline, mount_label, account);
        let pre = plugin.pre.clone();
        let instantiated = metrics.clone();
        let call = async move {
            let result = async {
                let begun = Instant::now();
                let instance = pre.instantiate_async(&mut store).await?;
                instantiated.plugin_instantiated(kind, begun.elapsed());
                instance.call_fetch(&mut store, &request).await
            }
            .await;
            (store, result)
        };
        let until = (deadline + EPOCH_TICK).into();
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
                        metrics.plugin_trapped(kind);
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
            Ok((store, result)) => (store, result),
            Err(_elapsed) => return Err(timed_out()),
        };
        let memory_exceeded = store.data().limiter.exceeded;
        let budget_exhausted = store.data().limiter.budget_exhausted;
        let host_call_limit_hit = store.data().host_call_limit_hit;
        drop(store);
        match outcome {
            Err(error) => {
                let error: anyhow::Error = error.into();
                if memory_exceeded {
                    return Err(PluginError::MemoryLimit {
                        plugin: name,
                        limit_mib: plugin.limits.memory_limit_mib,
                    });
                }
                if budget_exhausted {
                    let class = plugin.class;
                    return Err(PluginError::NodeMemory {
                        plugin: name,
                        key: class.memory_key(),
                        budget_mib: match class {
                            Class::Builtin => self.budgets_mib.0,
                            Class::Custom => self.budgets_mib.1,
                        },
                    });
                }
                if host_call_limit_hit {
                    return Err(PluginError::HostCallLimit {
                        plugin: name,
                        limit: plugin.limits.max_host_calls,
                    });
                }
                if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    return Err(timed_out());
                }
                let message = trap_text(&error, &stderr);
                tracing::warn!(plugin = %name, error = %message, "plugin trapped");
                metrics.plugin_trapped(kind);
                Err(PluginError::Trapped {
                    plugin: name,
                    message,
                })
            }
            Ok(Err(fetch_error)) => Err(PluginError::Fetch(fetch_error)),
            Ok(Ok(object)) => {
                if object.contents.len() > plugin.limits.max_output_bytes {
                    return Err(PluginError::OutputTooLarge {
                        plugin: name,
                        size: object.contents.len(),
                        limit: plugin.limits.max_output_bytes,
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

/// The linker every plugin is instantiated with: WASI (granting nothing) and
/// the plugin interfaces.
fn linker(engine: &Engine) -> Result<Linker<PluginState>, String> {
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .and_then(|()| {
            Backend::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        })
        .map_err(|e| e.to_string())?;
    Ok(linker)
}

/// A trap's reason, with the plugin's first stderr lines (a panic message).
fn trap_text(error: &anyhow::Error, stderr: &CappedPipe) -> String {
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => error_text(error),
    };
    if let Some(panic) = stderr.summary() {
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

/// Per-fetch store data.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// The Mount's cloud access; none while loading (describe, validate).
    session: Option<Arc<CloudSession>>,
    grants: Arc<Grants>,
    plugin: String,
    mount: Arc<str>,
    /// The main runtime, when the plugin runs elsewhere (custom plugins):
    /// where its signed calls are sent from.
    main: Option<tokio::runtime::Handle>,
    deadline: Instant,
    log_lines: u32,
    host_calls: u32,
    host_call_limit_hit: bool,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory per instance, draws every growth from the class's
/// node budget, and records which limit, not a plugin bug, stopped it.
struct MemoryLimiter {
    max_bytes: usize,
    exceeded: bool,
    account: Account,
    budget_exhausted: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
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
        Ok(desired <= 100_000)
    }
}

/// A stderr sink that keeps the first bytes and drops the rest (wasmtime's
/// MemoryOutputPipe traps the guest when full).
#[derive(Clone)]
struct CappedPipe {
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
    fn summary(&self) -> Option<String> {
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

/// Threads that run custom plugins: their own tokio runtime, at nice
/// [`CUSTOM_NICE`], so that the kernel gives the provider's own threads the
/// CPU first. Host calls that use the provider's shared clients (signed
/// Alibaba Cloud calls) are sent back to the main runtime, so that its
/// connections are never driven by these threads.
struct CustomThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

/// Threads of the custom plugins' runtime.
const CUSTOM_THREADS: usize = 1;
/// Their nice value (0 is the provider's; 19 the lowest priority).
const CUSTOM_NICE: i32 = 10;

impl CustomThreads {
    fn start() -> Result<CustomThreads, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CUSTOM_THREADS)
            .max_blocking_threads(CUSTOM_THREADS)
            .thread_name("custom-plugins")
            .enable_all()
            .on_thread_start(|| {
                let tid = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(tid), CUSTOM_NICE) {
                    tracing::warn!(error = %e, "cannot lower the priority of a custom plugin thread");
                }
            })
            .build()
            .map_err(|e| format!("cannot start them: {e}"))?;
        Ok(CustomThreads {
            runtime: Some(runtime),
        })
    }

    fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(future)
    }
}

impl Drop for CustomThreads {
    fn drop(&mut self) {
        // Dropping a runtime may block; from inside another runtime that
        // panics, so let its threads wind down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker
    }
}
