//! The subcommands of the binary; the work is in the library.

pub(crate) mod args;
pub(crate) mod mount;
pub(crate) mod plugin;
pub(crate) mod serve;

/// A configuration or command-line problem (exit status 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);
