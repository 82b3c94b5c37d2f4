//! The one way a plugin is loaded, step by step: its route's source, its
//! bytes and their compilation, its grants, its imports judged against
//! them, the link to the host's interfaces, then `describe` and `validate`
//! on a fresh instance. `PluginRuntime::load` stops at the first failing
//! step and names the route in its error; `PluginRuntime::check` (`plugin
//! check`) records every step, and goes on past refused imports, which no
//! later step depends on.

use std::collections::BTreeMap;

use wasmtime::component::{Component, Linker};

use super::PluginInfo;
use super::bindings::BackendPre;
use super::budget::{Class, Pool};
use super::egress;
use super::engine::{EngineError, LinkerError};
use super::instance::{CallError, Plugin, error_text};
use super::load::{
    self, CompileError, HOST_WIT_VERSION, ImportReport, PluginSource, ReadError, RefusedImports,
};
use super::store::PluginState;
use super::threads::ThreadsError;
use crate::config::{PluginLimits, PluginRoute};

/// A step of loading a plugin, as `plugin check` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The route names a plugin.
    Route,
    /// Its bytes are read and compiled (or loaded precompiled).
    Compile,
    /// Its grants are set up (the HTTP client of its allowed origins).
    Capabilities,
    /// Its imports are all granted or offered.
    Imports,
    /// It exports the plugin interface of this host.
    Interface,
    /// Its `describe` answers.
    Describe,
    /// Its `validate` accepts its configuration.
    Validate,
}

impl Step {
    /// The step's name in `plugin check`'s report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Route => "route",
            Step::Compile => "compile",
            Step::Capabilities => "capabilities",
            Step::Imports => "imports",
            Step::Interface => "interface",
            Step::Describe => "describe",
            Step::Validate => "validate",
        }
    }

    /// Whether later steps need this one to pass. A refused import only
    /// keeps the plugin from being routed: it links and runs without it.
    fn later_steps_need_it(self) -> bool {
        self != Step::Imports
    }
}

/// Why a step failed; its `Display` is the reason `load` gives.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// The route names neither `builtin` nor `path` (config validation
    /// refuses such a route first).
    #[error("the route names neither builtin nor path")]
    NoSource,
    /// The plugin's bytes cannot be had.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The bytes do not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The grants cannot be set up.
    #[error(transparent)]
    Capabilities(#[from] egress::SetupError),
    /// Imports not granted or not offered.
    #[error(transparent)]
    Imports(#[from] RefusedImports),
    /// The component is not of the host's world.
    #[error(
        "it does not fit this host's plugin interface ({HOST_WIT_VERSION}, world backend): {}",
        error_text(.0)
    )]
    Interface(#[source] anyhow::Error),
    /// `describe` failed.
    #[error(transparent)]
    Describe(CallError),
    /// `validate` refused the configuration, or failed.
    #[error("its configuration is refused: {0}")]
    Validate(#[source] CallError),
}

/// Whether to stop at the first failing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Stop there (`load`).
    FirstFailure,
    /// Go on while later steps can run (`check`).
    EveryStep,
}

/// What loading one route did, step by step.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The source the route names, once known.
    pub(crate) source: Option<PluginSource>,
    /// Each step that ran and its outcome: what it found, or why it failed.
    pub(crate) steps: Vec<(Step, Result<String, StepError>)>,
    /// The WIT version the SDK stamped in a component file, if any.
    pub(crate) wit_version: Option<String>,
    /// Every import, judged.
    pub(crate) imports: Vec<ImportReport>,
    /// The plugin, once it has described itself.
    pub(crate) plugin: Option<Plugin>,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt {
            source: None,
            steps: Vec::new(),
            wit_version: None,
            imports: Vec::new(),
            plugin: None,
        }
    }

    /// Records a step; whether to go on.
    fn record(&mut self, mode: Mode, step: Step, outcome: Result<String, StepError>) -> bool {
        let go_on = match &outcome {
            Ok(_) => true,
            Err(_) => mode == Mode::EveryStep && !step.later_steps_need_it(),
        };
        self.steps.push((step, outcome));
        go_on
    }

    /// The loaded plugin, or the first step's failure.
    pub(crate) fn into_plugin(self) -> Result<Plugin, (Option<PluginSource>, StepError)> {
        let source = self.source;
        if let Some(error) = self.steps.into_iter().find_map(|(_, o)| o.err()) {
            return Err((source, error));
        }
        Ok(self
            .plugin
            .expect("every step passed, so the plugin has described itself"))
    }
}

/// Runs the steps with what they need: the engine's linker, the pools that
/// account the memory of `describe` and `validate`, and the components
/// compiled so far (a plugin routed twice is compiled once).
pub(crate) struct Loader<'a> {
    engine: &'a wasmtime::Engine,
    linker: &'a Linker<PluginState>,
    pools: [&'a Pool; 2],
    compiled: BTreeMap<PluginSource, Component>,
    /// The compile cache, whose hits tell whether a custom plugin was
    /// compiled or loaded; `None`: say nothing (`plugin check`).
    logged_cache: Option<Option<&'a wasmtime::Cache>>,
}

impl<'a> Loader<'a> {
    /// A loader on `engine` and `linker`; `builtin` and `custom` account
    /// memory at load.
    pub(crate) fn new(
        engine: &'a wasmtime::Engine,
        linker: &'a Linker<PluginState>,
        builtin: &'a Pool,
        custom: &'a Pool,
    ) -> Loader<'a> {
        Loader {
            engine,
            linker,
            pools: [builtin, custom],
            compiled: BTreeMap::new(),
            logged_cache: None,
        }
    }

    /// Logs how each custom plugin was had (compiled, or loaded from
    /// `cache`), as the provider does at start-up.
    pub(crate) fn logging_compiles(mut self, cache: Option<&'a wasmtime::Cache>) -> Self {
        self.logged_cache = Some(cache);
        self
    }

    fn pool(&self, class: Class) -> &'a Pool {
        match class {
            Class::Builtin => self.pools[0],
            Class::Custom => self.pools[1],
        }
    }

    /// Loads the plugin of `route`, routed as `object_type`, with `limits`.
    pub(crate) async fn load(
        &mut self,
        object_type: &str,
        route: &PluginRoute,
        limits: PluginLimits,
        mode: Mode,
    ) -> Attempt {
        let mut attempt = Attempt::new();
        let Some(source) = PluginSource::of(route) else {
            attempt.record(mode, Step::Route, Err(StepError::NoSource));
            return attempt;
        };
        attempt.source = Some(source.clone());

        let component = match self.compile(object_type, &source, &mut attempt) {
            Ok(component) => component,
            Err(error) => {
                attempt.record(mode, Step::Compile, Err(error));
                return attempt;
            }
        };
        attempt.record(
            mode,
            Step::Compile,
            Ok(format!("{source} is a WebAssembly component")),
        );

        let grants = match load::grants(object_type, route, &limits) {
            Ok(grants) => grants,
            Err(error) => {
                attempt.record(mode, Step::Capabilities, Err(error.into()));
                return attempt;
            }
        };
        attempt.record(mode, Step::Capabilities, Ok("set up".into()));

        attempt.imports = load::inspect(self.engine, &component, &grants, object_type);
        let imports = match RefusedImports::among(&attempt.imports) {
            None => Ok(format!(
                "{} imports, all granted or offered",
                attempt.imports.len()
            )),
            Some(refused) => Err(refused.into()),
        };
        if !attempt.record(mode, Step::Imports, imports) {
            return attempt;
        }

        let pre = match self
            .linker
            .instantiate_pre(&component)
            .and_then(BackendPre::new)
        {
            Ok(pre) => pre,
            Err(error) => {
                attempt.record(
                    mode,
                    Step::Interface,
                    Err(StepError::Interface(error.into())),
                );
                return attempt;
            }
        };
        attempt.record(
            mode,
            Step::Interface,
            Ok(format!(
                "exports describe, validate and fetch of {HOST_WIT_VERSION}"
            )),
        );

        let mut plugin = Plugin::new(object_type, source, pre, route, limits, grants);
        let pool = self.pool(plugin.class);
        let account = || pool.unreserved();
        match plugin.describe(self.engine, account()).await {
            Ok((info, footprint)) => {
                attempt.record(
                    mode,
                    Step::Describe,
                    Ok(format!("{} {}", info.name, info.version)),
                );
                plugin.info = info;
                plugin.footprint = footprint;
            }
            Err(error) => {
                attempt.record(mode, Step::Describe, Err(StepError::Describe(error)));
                return attempt;
            }
        }
        let validated = plugin
            .validate(self.engine, account())
            .await
            .map(|()| format!("accepts the configuration of [plugins.{object_type}.config]"))
            .map_err(StepError::Validate);
        attempt.record(mode, Step::Validate, validated);
        attempt.plugin = Some(plugin);
        attempt
    }

    /// The component of `source`: compiled before, or read and compiled
    /// now (a built-in: its precompiled code when it fits; a file: from the
    /// compile cache when there).
    fn compile(
        &mut self,
        object_type: &str,
        source: &PluginSource,
        attempt: &mut Attempt,
    ) -> Result<Component, StepError> {
        if let Some(component) = self.compiled.get(source) {
            return Ok(component.clone());
        }
        let bytes = load::read(source)?;
        if let PluginSource::File(_) = source {
            attempt.wit_version = load::wit_version_stamp(&bytes);
        }
        let hits = |cache: Option<&wasmtime::Cache>| cache.map(|c| c.cache_hits());
        let hits_before = self.logged_cache.map(hits);
        let started = std::time::Instant::now();
        let component = load::compile(self.engine, source, &bytes)?;
        if let (Some(cache), PluginSource::File(_)) = (self.logged_cache, source) {
            let from_cache = hits(cache) > hits_before.flatten();
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
        self.compiled.insert(source.clone(), component.clone());
        Ok(component)
    }
}

/// What went wrong while loading, besides a step: setting up the engine and
/// the threads every plugin shares.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadFailure {
    /// The engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The linker of the host's interfaces.
    #[error(transparent)]
    Linker(#[from] LinkerError),
    /// The custom plugins' threads.
    #[error(transparent)]
    Threads(#[from] ThreadsError),
    /// A step of loading one plugin.
    #[error(transparent)]
    Step(#[from] StepError),
}

/// A plugin that could not be loaded; stops start-up.
///
/// The reason is part of the message rather than its `source()`, so that a
/// printer of error chains (`{:#}`) does not repeat it.
#[derive(Debug, thiserror::Error)]
#[error("plugins.{object_type}: cannot load {source_desc}: {reason}")]
pub struct LoadError {
    /// The route's objectType (`*` for what every route shares).
    object_type: String,
    /// What was being loaded.
    source_desc: String,
    /// Why it failed, and what to do.
    reason: LoadFailure,
}

impl LoadError {
    /// A failure of what every route shares.
    pub(crate) fn shared(failure: impl Into<LoadFailure>) -> LoadError {
        let failure = failure.into();
        let source_desc = match &failure {
            LoadFailure::Engine(_) => "the engine",
            LoadFailure::Linker(_) => "the host interfaces",
            LoadFailure::Threads(_) => "the custom plugins' threads",
            LoadFailure::Step(_) => "a plugin",
        };
        LoadError {
            object_type: "*".into(),
            source_desc: source_desc.into(),
            reason: failure,
        }
    }

    /// A failed step of the route `object_type`, loading `source`.
    pub(crate) fn step(
        object_type: &str,
        source: Option<&PluginSource>,
        error: StepError,
    ) -> LoadError {
        LoadError {
            object_type: object_type.to_string(),
            source_desc: source.map_or_else(|| "its plugin".to_string(), ToString::to_string),
            reason: LoadFailure::Step(error),
        }
    }

    #[cfg(test)]
    pub(crate) fn reason(&self) -> &LoadFailure {
        &self.reason
    }
}

/// What `plugin check` found, step by step.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The WIT version stamped by the SDK, if any.
    pub wit_version: Option<String>,
    /// Each step and its outcome, in order.
    pub steps: Vec<(&'static str, Result<String, CheckFailure>)>,
    /// Every import and whether it is granted.
    pub imports: Vec<ImportReport>,
    /// What the plugin says about itself.
    pub info: Option<PluginInfo>,
}

impl CheckReport {
    /// A report of one failed step before any plugin step ran.
    pub(crate) fn failed(step: &'static str, object_type: &str, error: CheckError) -> CheckReport {
        let mut report = CheckReport::default();
        report.steps.push((
            step,
            Err(CheckFailure {
                object_type: object_type.to_string(),
                error,
            }),
        ));
        report
    }

    /// The report of `attempt`, for route `object_type`.
    pub(crate) fn of(object_type: &str, attempt: Attempt) -> CheckReport {
        let steps = attempt
            .steps
            .into_iter()
            // The grants show in the imports they allow.
            .filter(|(step, outcome)| !(*step == Step::Capabilities && outcome.is_ok()))
            .map(|(step, outcome)| {
                let outcome = outcome.map_err(|error| CheckFailure {
                    object_type: object_type.to_string(),
                    error: CheckError::Step(error),
                });
                (step.name(), outcome)
            })
            .collect();
        CheckReport {
            wit_version: attempt.wit_version,
            steps,
            imports: attempt.imports,
            info: attempt.plugin.map(|p| p.info),
        }
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|(_, o)| o.is_ok())
    }
}

/// What failed, for `plugin check`.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// No route of that objectType.
    NoRoute,
    /// The engine.
    Engine(EngineError),
    /// The linker of the host's interfaces.
    Linker(LinkerError),
    /// A step of loading the plugin.
    Step(StepError),
}

/// Why a step of `plugin check` failed; its `Display` is the report's line.
#[derive(Debug)]
pub struct CheckFailure {
    object_type: String,
    error: CheckError,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let object_type = &self.object_type;
        match &self.error {
            CheckError::NoRoute => write!(f, "no [plugins.{object_type}] in the config"),
            CheckError::Engine(e) => e.fmt(f),
            CheckError::Linker(e) => e.fmt(f),
            CheckError::Step(StepError::Imports(refused)) => {
                write!(f, "{} import(s) refused", refused.count())
            }
            CheckError::Step(StepError::Interface(e)) => write!(
                f,
                "does not fit {HOST_WIT_VERSION}, world backend: {}",
                error_text(e)
            ),
            CheckError::Step(StepError::Validate(e)) => {
                write!(f, "refuses [plugins.{object_type}.config]: {e}")
            }
            CheckError::Step(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CheckFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.error {
            CheckError::NoRoute => None,
            CheckError::Engine(e) => Some(e),
            CheckError::Linker(e) => Some(e),
            CheckError::Step(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::load::{Refusal, VersionError};
    use crate::plugin::testing::{Bench, builtin_route, file_route, testing_plugin, testing_route};

    fn names(attempt: &Attempt) -> Vec<&'static str> {
        attempt.steps.iter().map(|(step, _)| step.name()).collect()
    }

    fn lines(report: &CheckReport) -> Vec<String> {
        report
            .steps
            .iter()
            .map(|(name, outcome)| match outcome {
                Ok(what) => format!("ok {name}: {what}"),
                Err(why) => format!("FAIL {name}: {why}"),
            })
            .collect()
    }

    /// The error `load` gives for `attempt`'s failure, and its text.
    fn load_error(object_type: &str, attempt: Attempt) -> (LoadError, String) {
        let (source, error) = attempt.into_plugin().unwrap_err();
        let error = LoadError::step(object_type, source.as_ref(), error);
        let text = error.to_string();
        (error, text)
    }

    fn step(error: &LoadError) -> &StepError {
        match error.reason() {
            LoadFailure::Step(step) => step,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_good_plugin_passes_every_step_in_order() {
        let bench = Bench::new();
        let attempt = bench
            .load("kms", &builtin_route("kms"), Mode::FirstFailure)
            .await;
        assert_eq!(
            names(&attempt),
            [
                "compile",
                "capabilities",
                "imports",
                "interface",
                "describe",
                "validate"
            ]
        );
        assert_eq!(attempt.wit_version, None, "built-ins are not files");
        let plugin = attempt.into_plugin().unwrap();
        assert_eq!(plugin.info.name, "kms");
        assert!(plugin.footprint > 0, "describe's memory is the footprint");

        let report = CheckReport::of(
            "testing",
            bench
                .load("testing", &testing_route(), Mode::EveryStep)
                .await,
        );
        assert!(report.passed(), "{:?}", lines(&report));
        assert_eq!(report.wit_version.as_deref(), Some("0.1.0"));
        let lines = lines(&report);
        assert_eq!(
            lines[0],
            format!(
                "ok compile: {} is a WebAssembly component",
                testing_plugin().display()
            )
        );
        assert!(
            lines[1].starts_with("ok imports: ")
                && lines[1].ends_with(" imports, all granted or offered")
        );
        assert_eq!(
            lines[2..],
            [
                "ok interface: exports describe, validate and fetch of alibabacloud-csi:plugin@0.1.0",
                "ok describe: testing 0.1.0",
                "ok validate: accepts the configuration of [plugins.testing.config]",
            ]
        );
        assert_eq!(report.info.unwrap().name, "testing");
    }

    #[tokio::test]
    async fn load_stops_at_refused_imports_and_check_goes_on() {
        let bench = Bench::new();
        let ungranted = file_route(&testing_plugin());
        let attempt = bench.load("testing", &ungranted, Mode::FirstFailure).await;
        assert_eq!(names(&attempt), ["compile", "capabilities", "imports"]);
        let (error, text) = load_error("testing", attempt);
        assert!(
            matches!(step(&error), StepError::Imports(r) if r.count() == 3),
            "{error:?}"
        );
        assert!(
            text.starts_with(&format!(
                "plugins.testing: cannot load {}: it imports alibabacloud-csi:plugin/",
                testing_plugin().display()
            )),
            "{text}"
        );
        assert!(text.contains("it imports alibabacloud-csi:plugin/http@0.1.0: not granted: list the origins it may reach in plugins.testing.capabilities.http"), "{text}");

        let attempt = bench.load("testing", &ungranted, Mode::EveryStep).await;
        assert_eq!(
            names(&attempt),
            [
                "compile",
                "capabilities",
                "imports",
                "interface",
                "describe",
                "validate"
            ]
        );
        let report = CheckReport::of("testing", attempt);
        assert!(!report.passed());
        let lines = lines(&report);
        assert!(
            lines.contains(&"FAIL imports: 3 import(s) refused".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"ok describe: testing 0.1.0".to_string()),
            "{lines:?}"
        );
        let http = report
            .imports
            .iter()
            .find(|i| i.name.starts_with("alibabacloud-csi:plugin/http@"))
            .unwrap();
        assert!(matches!(http.verdict, Err(Refusal::HttpNotGranted { .. })));
        assert!(
            report
                .imports
                .iter()
                .any(|i| i.name.starts_with("wasi:cli/") && i.verdict.is_ok())
        );
    }

    #[tokio::test]
    async fn what_cannot_be_compiled_is_reported_under_compile() {
        let bench = Bench::new();
        let missing = file_route(std::path::Path::new("/nonexistent/p.wasm"));
        let attempt = bench.load("p", &missing, Mode::EveryStep).await;
        assert_eq!(names(&attempt), ["compile"]);
        assert!(matches!(
            attempt.steps[0].1,
            Err(StepError::Read(ReadError::File(_)))
        ));

        let core = bench.file("core.wasm", &wat::parse_str("(module)").unwrap());
        let (error, text) = load_error(
            "p",
            bench
                .load("p", &file_route(&core), Mode::FirstFailure)
                .await,
        );
        assert!(matches!(
            step(&error),
            StepError::Compile(CompileError::CoreModule)
        ));
        assert!(text.ends_with("it is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or convert it with wasm-tools component new)"), "{text}");

        let junk = bench.file("junk.wasm", b"\0asm\x0d\0\x01\0junk");
        let attempt = bench.load("p", &file_route(&junk), Mode::EveryStep).await;
        let report = CheckReport::of("p", attempt);
        assert!(
            lines(&report)[0]
                .starts_with("FAIL compile: it is not a valid WebAssembly component: "),
            "{:?}",
            lines(&report)
        );

        // stamped by a newer SDK: refused before compiling, the stamp reported
        let newer = bench.fixture("good", |s| {
            s.replace(
                "(core module $m",
                "(core module $m (@custom \"alibabacloud-csi-plugin-wit-version\" \"0.2.0\")",
            )
        });
        let attempt = bench.load("p", &file_route(&newer), Mode::EveryStep).await;
        assert_eq!(attempt.wit_version.as_deref(), Some("0.2.0"));
        assert!(matches!(
            attempt.steps[0].1,
            Err(StepError::Compile(CompileError::Version(
                VersionError::OtherMinor { newer: true, .. }
            )))
        ));
        let report = CheckReport::of("p", attempt);
        assert!(lines(&report)[0].starts_with("FAIL compile: it was built with plugin-sdk for alibabacloud-csi:plugin/@0.2.0; this provider supports 0.1.x"));

        let unknown = bench
            .load("p", &builtin_route("vault"), Mode::FirstFailure)
            .await;
        let (_, text) = load_error("p", unknown);
        assert_eq!(
            text,
            "plugins.p: cannot load built-in vault: no built-in plugin is called \"vault\""
        );
    }

    #[tokio::test]
    async fn a_foreign_world_fails_the_interface_step() {
        let bench = Bench::new();
        let route = file_route(&bench.fixture("bad-signature", |s| s));
        let (error, text) = load_error(
            "custom",
            bench.load("custom", &route, Mode::FirstFailure).await,
        );
        assert!(matches!(step(&error), StepError::Interface(_)));
        assert!(text.contains(": it does not fit this host's plugin interface (alibabacloud-csi:plugin@0.1.0, world backend): "), "{text}");

        let report = CheckReport::of(
            "custom",
            bench.load("custom", &route, Mode::EveryStep).await,
        );
        let last = lines(&report).pop().unwrap();
        assert!(
            last.starts_with(
                "FAIL interface: does not fit alibabacloud-csi:plugin@0.1.0, world backend: "
            ),
            "{last}"
        );
        assert!(report.info.is_none(), "nothing ran");
    }

    #[tokio::test]
    async fn a_refused_configuration_fails_the_validate_step() {
        let bench = Bench::new();
        let mut route = testing_route();
        route
            .config
            .insert("reject".into(), "address must be https".into());
        let (error, text) = load_error(
            "testing",
            bench.load("testing", &route, Mode::FirstFailure).await,
        );
        assert!(
            matches!(step(&error), StepError::Validate(CallError::Refused(m)) if m == "address must be https")
        );
        assert!(
            text.ends_with(": its configuration is refused: address must be https"),
            "{text}"
        );

        let report = CheckReport::of(
            "testing",
            bench.load("testing", &route, Mode::EveryStep).await,
        );
        assert_eq!(
            lines(&report).pop().unwrap(),
            "FAIL validate: refuses [plugins.testing.config]: address must be https"
        );
        assert_eq!(report.info.unwrap().name, "testing", "it described itself");
    }

    #[tokio::test]
    async fn bad_grants_and_routes_without_a_source() {
        let bench = Bench::new();
        let mut route = testing_route();
        route.capabilities.http = vec!["ftp://vault.internal".into()];
        let attempt = bench.load("testing", &route, Mode::EveryStep).await;
        assert_eq!(names(&attempt), ["compile", "capabilities"]);
        assert!(matches!(
            attempt.steps[1].1,
            Err(StepError::Capabilities(egress::SetupError::Origin(_)))
        ));
        let report = CheckReport::of("testing", attempt);
        assert!(
            lines(&report)[1].starts_with("FAIL capabilities: "),
            "{:?}",
            lines(&report)
        );

        let nothing = PluginRoute::default();
        let attempt = bench.load("x", &nothing, Mode::FirstFailure).await;
        assert_eq!(names(&attempt), ["route"]);
        let (source, error) = attempt.into_plugin().unwrap_err();
        assert_eq!(
            LoadError::step("x", source.as_ref(), error).to_string(),
            "plugins.x: cannot load its plugin: the route names neither builtin nor path"
        );
    }

    #[tokio::test]
    async fn a_source_routed_twice_is_compiled_once() {
        let bench = Bench::new();
        let mut loader = Loader::new(&bench.engine, &bench.linker, &bench.builtin, &bench.custom);
        let route = testing_route();
        let limits = crate::config::Config::default().limits_for(&route);
        for object_type in ["a", "b"] {
            let attempt = loader
                .load(object_type, &route, limits.clone(), Mode::FirstFailure)
                .await;
            assert_eq!(attempt.into_plugin().unwrap().object_type, object_type);
        }
        assert_eq!(loader.compiled.len(), 1);
    }

    #[test]
    fn shared_failures_name_what_every_route_shares() {
        let threads = LoadError::shared(ThreadsError(std::io::Error::other("no")));
        assert_eq!(
            threads.to_string(),
            "plugins.*: cannot load the custom plugins' threads: cannot start them: no"
        );
        assert!(matches!(threads.reason(), LoadFailure::Threads(_)));
        assert!(
            std::error::Error::source(&threads).is_none(),
            "the reason is in the message"
        );
    }
}
