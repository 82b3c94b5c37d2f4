//! The WebAssembly plugin runtime: one engine, every plugin compiled and
//! type-checked once at start-up, a fresh sandboxed instance per object fetch.
//!
//! Each fetch gets a new store with no WASI capabilities, a memory cap, an
//! epoch deadline (the plugin's timeout, within the Mount's deadline) that
//! yields to the executor every tick, and a wall-clock timeout around the
//! call for time spent blocked in host calls. A trap, timeout or limit fails
//! that object with a clear error; the process and other Mounts carry on.
//!
//! The parts, each depending only on those listed before it:
//!
//! - [`load`]: a plugin's bytes (built in or from a file), its WIT version,
//!   compilation, and its imports judged against what the operator granted;
//! - [`store`]: one call's store and its limits (memory and the node's
//!   budget, host resources, the epoch deadline), with [`host`], the host
//!   side of the plugin's imports;
//! - [`engine`]: engine settings, the instance pool, the compile cache
//!   ([`cache`]), the linker and the epoch ticker;
//! - [`instance`]: instantiating a plugin and calling it (describe, validate,
//!   fetch), and what a failed call means;
//! - [`pipeline`]: the steps of loading one plugin, shared by
//!   `PluginRuntime::load` (stops at the first failure) and
//!   `PluginRuntime::check` (`plugin check`: reports every step);
//! - [`threads`]: the lower-priority threads custom plugins run on;
//! - [`runtime`]: [`PluginRuntime`], which holds them together.

mod bindings;
mod budget;
mod cache;
mod codegen;
mod egress;
mod engine;
mod host;
mod instance;
mod load;
mod pipeline;
mod runtime;
mod store;
#[cfg(test)]
mod testing;
mod threads;

pub use bindings::alibabacloud_csi::plugin::types::{
    FetchError, ObjectRequest, Parameter, PluginInfo,
};
pub(crate) use instance::quoted_list;
pub use instance::{FetchedObject, PluginError};
pub use load::{HOST_WIT_VERSION, ImportReport, Refusal, VersionError};
pub use pipeline::{CheckFailure, CheckReport, LoadError};
pub use runtime::PluginRuntime;

/// Where build.rs left the plugins it built, including the `testing` fixture
/// (used by tests and benchmarks; not embedded).
pub const BUILT_PLUGIN_DIR: &str = env!("PROVIDER_BUILT_PLUGIN_DIR");
