//! `serve`: the provider, as the DaemonSet runs it.

use std::path::PathBuf;

use provider::app::{self, App, HealthOptions, ServeOptions};
use provider::config::{Config, DEFAULT_CONFIG_PATH};
use provider::logging;

use super::UsageError;
use super::args::ServeArgs;

/// Where `serve` binds its socket without `--provider-volume`: the first of
/// these that is a directory. The first is the driver's default providers
/// directory; the second the upstream provider's default (the driver also
/// searches it), so that a DaemonSet written for the upstream provider that
/// mounts the providers directory there without passing the flag works too.
const DEFAULT_PROVIDER_VOLUMES: [&str; 2] = [
    "/var/run/secrets-store-csi-providers",
    "/etc/kubernetes/secrets-store-csi-providers",
];

/// The socket directory: `--provider-volume`, else the first of
/// `defaults` that is a directory.
pub(crate) fn provider_volume(
    given: Option<PathBuf>,
    defaults: &[&str],
) -> Result<PathBuf, UsageError> {
    match given {
        Some(dir) if dir.is_dir() => Ok(dir),
        Some(dir) => Err(UsageError(format!(
            "--provider-volume {} is not a directory; mount the driver's providers directory there",
            dir.display()
        ))),
        None => defaults
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.is_dir())
            .ok_or_else(|| {
                UsageError(format!(
                    "no --provider-volume, and neither {} is a directory; mount the driver's providers directory at one of them, or pass --provider-volume",
                    defaults.join(" nor ")
                ))
            }),
    }
}

pub(crate) async fn serve(args: ServeArgs, ignored_klog_flags: Vec<String>) -> anyhow::Result<()> {
    logging::init(args.verbosity, args.log_format);
    if !ignored_klog_flags.is_empty() {
        tracing::warn!(
            flags = %ignored_klog_flags.join(" "),
            "klog flags of the upstream provider are accepted and ignored: this provider logs to stderr, at the level of -v (or RUST_LOG), formatted by --log-format"
        );
    }
    if args.max_concurrent_kms_secret_pulls.is_some()
        || args.max_concurrent_oos_secret_pulls.is_some()
    {
        tracing::info!(
            "--max-concurrent-*-secret-pulls are accepted for compatibility and ignored; see [limits] in the config file"
        );
    }
    let config_path = args.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_PATH);
        default.is_file().then_some(default)
    });
    let config = Config::load(config_path.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let provider_volume = provider_volume(args.provider_volume.clone(), &DEFAULT_PROVIDER_VOLUMES)?;
    let started = app::provider(config, args.region.clone(), std::env::vars().collect()).await;
    let app = match started {
        Ok(provider) => {
            App::bind(
                provider,
                ServeOptions {
                    socket_dir: provider_volume,
                    health: Some(HealthOptions {
                        bind: args.healthz_bind_address,
                        port: args.healthz_port,
                        path: args.healthz_path.clone(),
                        timeout: args.healthz_timeout,
                    }),
                },
            )
            .await
        }
        Err(e) => Err(e),
    }
    .map_err(|e| -> anyhow::Error {
        if e.is_configuration() {
            UsageError(e.to_string()).into()
        } else {
            e.into()
        }
    })?;
    tracing::info!(
        socket = %app.socket().display(),
        health = %app.health_addr().map(|a| a.to_string()).unwrap_or_default(),
        object_types = %app.provider().object_types().join(","),
        version = env!("CARGO_PKG_VERSION"),
        "provider ready"
    );
    app.run(wait_for_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_volume_defaults_to_the_first_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let var = dir.path().join("var");
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let defaults = [var.to_str().unwrap(), etc.to_str().unwrap()];
        assert_eq!(provider_volume(None, &defaults).unwrap(), etc);
        std::fs::create_dir(&var).unwrap();
        assert_eq!(provider_volume(None, &defaults).unwrap(), var);
        assert_eq!(provider_volume(Some(etc.clone()), &defaults).unwrap(), etc);
        let missing = dir.path().join("missing");
        let error = provider_volume(Some(missing), &defaults).unwrap_err();
        assert!(error.0.contains("is not a directory"), "{error}");
        let none = [missing_path(&dir, "a"), missing_path(&dir, "b")];
        let none: Vec<&str> = none.iter().map(String::as_str).collect();
        let error = provider_volume(None, &none).unwrap_err();
        assert!(error.0.contains("neither"), "{error}");
        assert_eq!(
            DEFAULT_PROVIDER_VOLUMES,
            [
                "/var/run/secrets-store-csi-providers",
                "/etc/kubernetes/secrets-store-csi-providers"
            ]
        );
    }

    fn missing_path(dir: &tempfile::TempDir, name: &str) -> String {
        dir.path().join(name).to_str().unwrap().to_string()
    }
}
