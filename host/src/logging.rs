//! Log setup: one tracing subscriber, verbosity from `-v` (klog-style) or
//! `RUST_LOG`, text or JSON. Nothing logs secret values, tokens, the `secrets`
//! field or whole attributes; the tests run Mounts at the most verbose level
//! and check the captured output.

use tracing_subscriber::EnvFilter;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter for a klog-style verbosity: 0-1 info, 2-4 debug, 5+ trace.
/// Noisy dependencies stay at warn unless RUST_LOG says otherwise.
pub fn filter_for(verbosity: u8) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    let level = match verbosity {
        0 | 1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    EnvFilter::new(format!(
        "{level},wasmtime=warn,cranelift=warn,cranelift_codegen=warn,h2=warn,hyper=warn,hyper_util=warn,tower=warn,reqwest=info,rustls=warn"
    ))
}

/// Installs the global subscriber, writing to stderr.
pub fn init(verbosity: u8, format: LogFormat) {
    use std::io::IsTerminal as _;
    // Colours only on a terminal: container logs (kubectl logs, log
    // collectors) get plain lines, as klog wrote them.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter_for(verbosity))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
