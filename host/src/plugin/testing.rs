//! For the plugin module's unit tests: a real engine, linker and pools, and
//! real components — the `testing` plugin build.rs built, and the WAT
//! fixtures of `tests/fixtures` compiled with the `wat` crate.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Linker;

use super::ObjectRequest;
use super::budget::Pool;
use super::engine::{EngineSettings, EpochTicker, engine, linker};
use super::pipeline::{Attempt, Loader, Mode};
use super::store::PluginState;
use crate::config::{Capabilities, Config, PluginRoute};

/// An engine with room for a few instances of each class, its linker and
/// ticker, and a directory for compiled fixtures.
pub(crate) struct Bench {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) builtin: Pool,
    pub(crate) custom: Pool,
    pub(crate) custom_budget_mib: u64,
    _ticker: EpochTicker,
    dir: tempfile::TempDir,
}

/// Memory budget of each class on the bench.
pub(crate) const BENCH_BUDGET_MIB: u64 = 64;

impl Bench {
    pub(crate) fn new() -> Bench {
        Bench::with_custom_budget(BENCH_BUDGET_MIB)
    }

    /// A bench whose custom plugins share `custom_budget_mib` of memory.
    pub(crate) fn with_custom_budget(custom_budget_mib: u64) -> Bench {
        let settings = EngineSettings {
            builtin_instances: 2,
            custom_instances: 2,
            max_memory_bytes: BENCH_BUDGET_MIB << 20,
        };
        let (engine, _) = engine(&settings, None).unwrap();
        let linker = linker(&engine).unwrap();
        let ticker = EpochTicker::start(&engine);
        Bench {
            linker,
            builtin: Pool::new(2, 2, BENCH_BUDGET_MIB),
            custom: Pool::new(2, 2, custom_budget_mib),
            custom_budget_mib,
            _ticker: ticker,
            engine,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `tests/fixtures/<name>.wat`, edited by `edit`, as a component file.
    pub(crate) fn fixture(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        let wat = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(format!("{name}.wat"));
        let source = edit(std::fs::read_to_string(&wat).unwrap());
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, wat::parse_str(&source).unwrap()).unwrap();
        path
    }

    /// A file of `bytes` in the bench's directory.
    pub(crate) fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs the load pipeline for `route` (limits: the defaults, as
    /// overridden by the route).
    pub(crate) async fn load(&self, object_type: &str, route: &PluginRoute, mode: Mode) -> Attempt {
        let limits = Config::default().limits_for(route);
        Loader::new(&self.engine, &self.linker, &self.builtin, &self.custom)
            .load(object_type, route, limits, mode)
            .await
    }
}

/// The `testing` plugin build.rs built.
pub(crate) fn testing_plugin() -> PathBuf {
    Path::new(super::BUILT_PLUGIN_DIR).join("testing_plugin.wasm")
}

/// A route of the component at `path`, granted nothing.
pub(crate) fn file_route(path: &Path) -> PluginRoute {
    PluginRoute {
        path: Some(path.to_path_buf()),
        enabled: true,
        ..PluginRoute::default()
    }
}

/// A route of the `testing` plugin with every capability it imports.
pub(crate) fn testing_route() -> PluginRoute {
    PluginRoute {
        capabilities: Capabilities {
            http: vec!["https://vault.internal:8200".into()],
            alibaba_cloud: Some(true),
            pod_info: true,
            ..Capabilities::default()
        },
        ..file_route(&testing_plugin())
    }
}

/// A route of a built-in plugin.
pub(crate) fn builtin_route(name: &str) -> PluginRoute {
    PluginRoute {
        builtin: Some(name.into()),
        enabled: true,
        ..PluginRoute::default()
    }
}

/// A request for object `name` of `object_type`, in cn-hangzhou, with no
/// version, endpoint, parameters or config.
pub(crate) fn request(object_type: &str, name: &str) -> ObjectRequest {
    ObjectRequest {
        name: name.into(),
        object_type: object_type.into(),
        version: None,
        version_label: None,
        endpoint: None,
        region: "cn-hangzhou".into(),
        parameters: vec![],
        config: vec![],
    }
}
