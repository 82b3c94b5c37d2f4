//! The engine settings that decide the native code plugins compile to,
//! shared by `build.rs` (which precompiles the built-in plugins into the
//! binary) and the runtime (which loads that code, and compiles custom
//! plugins), so that precompiled code always fits the engine that loads it.
//!
//! The target is named explicitly: wasmtime then generates for the
//! architecture's baseline instead of the build machine's CPU features, so
//! the precompiled built-ins run on any node the binary runs on. Plugins are
//! small and spend their time waiting on host calls; vector extensions would
//! gain nothing.

/// A target wasmtime cannot generate code for. (Written out rather than
/// derived: build.rs includes this file and has no `thiserror`.)
#[derive(Debug)]
pub struct TargetError {
    target: String,
    source: wasmtime::Error,
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot generate code for {}: {}",
            self.target, self.source
        )
    }
}

impl std::error::Error for TargetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A wasmtime configuration with every setting that affects generated code.
/// `target` is the Rust target triple the provider is built for.
pub fn codegen_config(target: &str) -> Result<wasmtime::Config, TargetError> {
    let mut config = wasmtime::Config::new();
    config.target(target).map_err(|source| TargetError {
        target: target.to_string(),
        source,
    })?;
    config
        .wasm_component_model(true)
        // Deadlines: cheap instrumentation that can also yield to tokio.
        .epoch_interruption(true)
        // Plugins are small; a deep recursion is a bug, not a need.
        .max_wasm_stack(1 << 20);
    Ok(config)
}
