//! End-to-end tests: a Mount over the provider's real Unix socket, through the
//! real WebAssembly plugins, to the emulator over signed HTTP.

mod benchmarks;
mod capabilities;
mod errors;
mod fairness;
mod identity;
mod leaks;
mod logs;
mod metrics;
mod mount;
mod plugins;
mod server;
mod tls;
mod upstream_compat;
mod vault;
