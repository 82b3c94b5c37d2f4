//! The engine every plugin runs on: the code-generation settings shared with
//! build.rs ([`super::codegen`]), a pool of instances sized for the two
//! classes of plugins, the on-disk cache of compiled custom plugins
//! ([`super::cache`]), the linker of the host's interfaces, and the thread
//! that advances the epoch, the clock of plugin deadlines.

use std::path::Path;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Linker;

use super::bindings::Backend;
use super::cache;
use super::codegen::{TargetError, codegen_config};
use super::store::PluginState;
use crate::config::Config;

/// How often the epoch advances; the granularity of plugin deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The target the engine generates code for (see `codegen`).
const PLUGIN_TARGET: &str = env!("PROVIDER_PLUGIN_TARGET");
/// Core instances one custom plugin's component may have.
const CUSTOM_CORE_INSTANCES: u32 = 32;
/// Memories one custom plugin's component may have.
const CUSTOM_MEMORIES: u32 = 2;
/// Tables one custom plugin's component may have.
const CUSTOM_TABLES: u32 = 8;

/// What the engine's instance pool holds.
///
/// Instances come from a pool: creating and dropping an instance then reuses
/// memory slots instead of an mmap and a munmap (with its TLB shootdowns) per
/// fetch, which halves the per-fetch cost. The pool is the sum of what each
/// class can hold at once: `builtin` instances of our own plugins (3 core
/// instances, 1 memory and a few tables each, with room to spare) and
/// `custom` instances of operator plugins at the per-component maxima, so
/// that custom instances, however they are built, never take a built-in's
/// place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineSettings {
    /// Instances of built-in plugins at once: their fetch slots.
    pub(crate) builtin_instances: u32,
    /// Instances of custom plugins at once (0 when none is routed).
    pub(crate) custom_instances: u32,
    /// The largest linear memory of any instance.
    pub(crate) max_memory_bytes: u64,
}

impl EngineSettings {
    /// For the provider: an instance per fetch slot of each class, memory up
    /// to the largest limit of the routed plugins.
    pub(crate) fn for_config(config: &Config) -> EngineSettings {
        let limits = &config.limits;
        let custom_instances = if routes_custom(config) {
            limits.custom_fetch_concurrency.min(1 << 12) as u32
        } else {
            0
        };
        let max_memory_mib = config
            .plugins
            .values()
            .map(|route| config.limits_for(route).memory_limit_mib)
            .max()
            .unwrap_or(config.plugin_defaults.memory_limit_mib);
        EngineSettings {
            builtin_instances: limits.fetch_concurrency.min(1 << 16) as u32,
            custom_instances,
            max_memory_bytes: max_memory_mib << 20,
        }
    }

    /// For `plugin check`: one instance of each class.
    pub(crate) fn for_check(memory_limit_mib: u64) -> EngineSettings {
        EngineSettings {
            builtin_instances: 1,
            custom_instances: 1,
            max_memory_bytes: memory_limit_mib << 20,
        }
    }

    fn pooling(&self) -> wasmtime::PoolingAllocationConfig {
        let (builtin, custom) = (self.builtin_instances, self.custom_instances);
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
            .max_memory_size(self.max_memory_bytes as usize);
        pool
    }
}

/// Whether the config routes any custom (file) plugin.
pub(crate) fn routes_custom(config: &Config) -> bool {
    config.plugins.values().any(|r| r.path.is_some())
}

/// The engine could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    /// No code can be generated for this machine.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// wasmtime refused the settings.
    #[error("cannot create the WebAssembly engine: {0}")]
    Create(#[source] wasmtime::Error),
}

/// The engine for `settings`, with the compile cache in `cache_dir` (one
/// [`cache::trusted_dir`] returned) when given and usable.
pub(crate) fn engine(
    settings: &EngineSettings,
    cache_dir: Option<&Path>,
) -> Result<(Engine, Option<wasmtime::Cache>), EngineError> {
    let mut config = codegen_config(PLUGIN_TARGET)?;
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
        settings.pooling(),
    ));
    let cache = cache_dir.and_then(cache::open);
    config.cache(cache.clone());
    let engine = Engine::new(&config).map_err(EngineError::Create)?;
    Ok((engine, cache))
}

/// The host's interfaces could not be linked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LinkerError(#[source] wasmtime::Error);

/// The linker every plugin is instantiated with: WASI (granting nothing) and
/// the plugin interfaces.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<PluginState>, LinkerError> {
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .and_then(|()| {
            Backend::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        })
        .map_err(LinkerError)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub(crate) struct EpochTicker;

impl EpochTicker {
    /// Starts the ticker thread of `engine`.
    pub(crate) fn start(engine: &Engine) -> EpochTicker {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginRoute;

    #[test]
    fn settings_follow_the_config() {
        let mut config = Config::default();
        config.limits.fetch_concurrency = 7;
        config.limits.custom_fetch_concurrency = 3;
        let builtins_only = EngineSettings::for_config(&config);
        assert_eq!(builtins_only.builtin_instances, 7);
        assert_eq!(builtins_only.custom_instances, 0, "no custom plugin routed");
        assert_eq!(
            builtins_only.max_memory_bytes,
            config.plugin_defaults.memory_limit_mib << 20
        );

        let big = PluginRoute {
            path: Some("/plugins/big.wasm".into()),
            enabled: true,
            memory_limit_mib: Some(config.plugin_defaults.memory_limit_mib * 4),
            ..PluginRoute::default()
        };
        config.plugins.insert("big".into(), big);
        let with_custom = EngineSettings::for_config(&config);
        assert_eq!(with_custom.custom_instances, 3);
        assert_eq!(
            with_custom.max_memory_bytes,
            (config.plugin_defaults.memory_limit_mib * 4) << 20
        );

        // the pool's totals are bounded whatever the config says
        config.limits.fetch_concurrency = usize::MAX;
        config.limits.custom_fetch_concurrency = usize::MAX;
        let clamped = EngineSettings::for_config(&config);
        assert_eq!(clamped.builtin_instances, 1 << 16);
        assert_eq!(clamped.custom_instances, 1 << 12);

        assert_eq!(
            EngineSettings::for_check(8),
            EngineSettings {
                builtin_instances: 1,
                custom_instances: 1,
                max_memory_bytes: 8 << 20
            }
        );
    }

    /// A component of one core instance with one page of memory.
    fn component(engine: &Engine) -> wasmtime::component::Component {
        let wat = "(component (core module $m (memory 1)) (core instance (instantiate $m)))";
        wasmtime::component::Component::new(engine, wat).unwrap()
    }

    #[tokio::test]
    async fn the_pool_holds_what_the_settings_say_and_no_more() {
        let settings = EngineSettings {
            builtin_instances: 1,
            custom_instances: 0,
            max_memory_bytes: 1 << 20,
        };
        let (engine, cache) = engine(&settings, None).unwrap();
        assert!(cache.is_none());
        let linker = Linker::<()>::new(&engine);
        let small = component(&engine);
        let mut first = wasmtime::Store::new(&engine, ());
        linker.instantiate_async(&mut first, &small).await.unwrap();
        // the one instance is taken
        let mut second = wasmtime::Store::new(&engine, ());
        assert!(linker.instantiate_async(&mut second, &small).await.is_err());
        drop(first);
        // returned to the pool with its store
        let mut third = wasmtime::Store::new(&engine, ());
        linker.instantiate_async(&mut third, &small).await.unwrap();
        drop(third);
        // a memory larger than the pool's slots is refused at compilation
        let large = "(component (core module $m (memory 17)) (core instance (instantiate $m)))";
        let error = wasmtime::component::Component::new(&engine, large).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("does not fit in pooling allocator"),
            "{error}"
        );
    }

    #[test]
    fn the_compile_cache_is_used_when_a_directory_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let settings = EngineSettings::for_check(1);
        let (first, cache) = engine(&settings, Some(dir.path())).unwrap();
        let cache = cache.expect("a private directory of ours is used");
        component(&first);
        assert_eq!((cache.cache_hits(), cache.cache_misses()), (0, 1));
        // another engine of the same settings loads what the first compiled
        let (second, cache) = engine(&settings, Some(dir.path())).unwrap();
        component(&second);
        assert_eq!(cache.unwrap().cache_hits(), 1);
    }

    #[test]
    fn the_host_interfaces_link_and_the_ticker_advances_the_epoch() {
        let (engine, _) = engine(&EngineSettings::for_check(1), None).unwrap();
        linker(&engine).unwrap();
        let _ticker = EpochTicker::start(&engine);
        // a store whose deadline is one tick away: once the epoch advances
        // its deadline is in the past, so a spinning call would be stopped
        let mut store = wasmtime::Store::new(&engine, ());
        store.set_epoch_deadline(1);
        let module =
            wasmtime::Module::new(&engine, r#"(module (func (export "spin") (loop br 0)))"#)
                .unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let spin = instance
                .get_typed_func::<(), ()>(&mut store, "spin")
                .unwrap();
            let _ = done.send(spin.call(&mut store, ()));
        });
        let error = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the ticker interrupts the spinning call")
            .unwrap_err();
        assert_eq!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::Interrupt)
        );
    }
}
