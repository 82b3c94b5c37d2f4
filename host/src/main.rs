//! The `csi-secrets-store-provider-alibabacloud` command: `serve` (the
//! provider), `mount` (act as the CSI driver against a running provider), and
//! `version`. Wiring only; the work is in the library.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory as _, Parser, Subcommand};

use provider::config::{Config, DEFAULT_CONFIG_PATH};
use provider::goflags::{self, Arity, KnownFlag};
use provider::logging::{self, LogFormat};
use provider::proto::{MountRequest, VersionRequest};
use provider::server::{self, SOCKET_FILE, SocketGuard};
use provider::{Provider, health, spc};

/// Exit status for a bad command line or configuration (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// The command's name, as `version` prints it.
const COMMAND_NAME: &str = "csi-secrets-store-provider-alibabacloud";

/// Where `serve` binds its socket without `--provider-volume`: the first of
/// these that is a directory. The first is the driver's default providers
/// directory; the second the upstream provider's default (the driver also
/// searches it), so that a DaemonSet written for the upstream provider that
/// mounts the providers directory there without passing the flag works too.
const DEFAULT_PROVIDER_VOLUMES: [&str; 2] = [
    "/var/run/secrets-store-csi-providers",
    "/etc/kubernetes/secrets-store-csi-providers",
];

#[derive(Parser)]
#[command(
    name = "csi-secrets-store-provider-alibabacloud",
    version,
    about = "Secrets Store CSI Driver provider for Alibaba Cloud KMS and OOS",
    // Upstream-style DaemonSet args have no subcommand: they mean `serve`.
    args_conflicts_with_subcommands = true,
    // As Go's flag package: a flag given twice takes the last value (a
    // DaemonSet patch may append an override).
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the provider on <provider-volume>/alibabacloud.sock.
    #[command(args_override_self = true)]
    Serve(ServeArgs),
    /// Act as the CSI driver: send a Mount built from a SecretProviderClass
    /// manifest to a running provider and show (or write) the result.
    Mount(MountArgs),
    /// Work with backend plugins: check a component, start a new one.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component as the provider would and report its WIT version,
    /// what it imports and whether the config grants it, what it declares,
    /// and whether it accepts its configuration. Exits non-zero on any problem.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Config file whose route (grants, limits, plugin config) applies;
        /// default: the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The objectType to check it as; default: the route whose path is
        /// FILE, else a route with no grants.
        #[arg(long)]
        object_type: Option<String>,
    },
    /// Start a new backend: a crate that builds a working component.
    New {
        /// Crate and plugin name, e.g. `config-service`.
        name: String,
        /// Directory to create it in (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Path of plugin-sdk (default: this source tree's plugins/sdk, if
        /// present, else the project's git repository).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Directory of the provider socket: the driver's providers directory, or
    /// a directory of the provider's own that `<providers dir>/alibabacloud.sock`
    /// links into (as the Helm chart sets it up). Default:
    /// /var/run/secrets-store-csi-providers, or, if that is not a directory,
    /// /etc/kubernetes/secrets-store-csi-providers (the upstream provider's
    /// default).
    #[arg(long)]
    provider_volume: Option<PathBuf>,
    /// Port of the HTTP health server (/live and the healthz path).
    #[arg(long, default_value_t = 8989)]
    healthz_port: u16,
    /// Path of the readiness check.
    #[arg(long, default_value = "/healthz")]
    healthz_path: String,
    /// Timeout of one readiness check, as a Go duration (5s, 1.5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    healthz_timeout: Duration,
    /// Address the health server binds. Default: every IPv6 and IPv4
    /// address (`[::]` accepting IPv4 too; `0.0.0.0` on a host without IPv6).
    #[arg(long)]
    healthz_bind_address: Option<IpAddr>,
    /// Region for SecretProviderClasses without `region`. Default:
    /// `cloud.region` of the config file, else the node's region from the ECS
    /// metadata server, else cn-hangzhou (the upstream provider's default).
    #[arg(long)]
    region: Option<String>,
    /// Config file (default: /etc/csi-secrets-store-provider-alibabacloud/config.toml
    /// if it exists, else the built-in defaults).
    #[arg(long, env = "CSI_PROVIDER_CONFIG")]
    config: Option<PathBuf>,
    /// Log verbosity, klog-style (0: info, 2-4: debug, 5+: trace).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    verbosity: u8,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Accepted for compatibility with the upstream provider; concurrency is
    /// set by [limits] in the config file.
    #[arg(long, hide = true)]
    max_concurrent_kms_secret_pulls: Option<u32>,
    /// Accepted for compatibility with the upstream provider.
    #[arg(long, hide = true)]
    max_concurrent_oos_secret_pulls: Option<u32>,
}

#[derive(Args)]
struct MountArgs {
    /// SecretProviderClass manifest (YAML); its spec.parameters are sent.
    #[arg(long)]
    spc: PathBuf,
    /// Provider socket.
    #[arg(
        long,
        default_value = "/var/run/secrets-store-csi-providers/alibabacloud.sock"
    )]
    socket: PathBuf,
    /// Pod namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Pod name.
    #[arg(long, default_value = "debug-pod")]
    pod_name: String,
    /// Pod UID.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pod_uid: String,
    /// The pod's service account.
    #[arg(long, default_value = "default")]
    service_account: String,
    /// A nodePublishSecretRef entry, KEY=VALUE (repeatable).
    #[arg(long = "secret", value_parser = parse_key_value)]
    secrets: Vec<(String, String)>,
    /// An extra volume attribute, KEY=VALUE (repeatable); overrides SPC parameters.
    #[arg(long = "attribute", value_parser = parse_key_value)]
    attributes: Vec<(String, String)>,
    /// Default file mode, octal.
    #[arg(long, default_value = "0644")]
    mode: String,
    /// Deadline sent with the request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the files under this directory (created; must be empty or absent).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Print the files' contents (they are secrets: for local testing only).
    #[arg(long)]
    show_contents: bool,
}

/// A Go duration (`5s`, `1.5s`, `1h30m`, as the upstream provider's flags
/// took), or humantime's longer forms (`5sec`, `1 min`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    goflags::parse_go_duration(text).or_else(|go_error| {
        humantime::parse_duration(text)
            .map_err(|_| format!("{go_error} (e.g. 5s, 1.5s, 500ms, 1m30s)"))
    })
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// The flags of `serve` (and of the command without a subcommand) under the
/// names a Go-style command line may use: each long name, each short one,
/// and Go's `-h`/`-help`.
fn serve_flags() -> Vec<KnownFlag> {
    let command = Cli::command();
    let mut flags = vec![
        KnownFlag::new("h", "--help", Arity::Switch),
        KnownFlag::new("help", "--help", Arity::Switch),
        KnownFlag::new("version", "--version", Arity::Switch),
    ];
    for arg in command.get_arguments() {
        let arity = if arg.get_action().takes_values() {
            Arity::Value
        } else {
            Arity::Switch
        };
        let canonical = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => continue,
        };
        if let Some(long) = arg.get_long() {
            flags.push(KnownFlag::new(long, &canonical, arity));
        }
        if let Some(short) = arg.get_short() {
            flags.push(KnownFlag::new(short.to_string(), &canonical, arity));
        }
    }
    flags
}

/// The command line for clap: a subcommand other than `serve` as given;
/// `serve`'s flags, or flags without a subcommand (the upstream provider's
/// command line), read as Go's `flag` package and klog read them (see
/// [`goflags`]). Returns the klog flags that were dropped.
fn command_line() -> (Vec<std::ffi::OsString>, Vec<String>) {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| COMMAND_NAME.into());
    let rest: Vec<_> = args.collect();
    let subcommand = rest.first().and_then(|a| a.to_str()).filter(|first| {
        Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == *first)
            || *first == "help"
    });
    let (head, flags) = match subcommand {
        Some("serve") => (vec![program, rest[0].clone()], rest[1..].to_vec()),
        Some(_) => return ([vec![program], rest].concat(), Vec::new()),
        None => (vec![program], rest),
    };
    match goflags::normalize(flags, &serve_flags()) {
        Ok(normalized) => ([head, normalized.args].concat(), normalized.ignored),
        Err(error) => {
            eprintln!("error: {error}\n\nFor more information, try '--help'.");
            std::process::exit(2);
        }
    }
}

fn main() -> ExitCode {
    let (args, ignored_klog_flags) = command_line();
    let cli = Cli::parse_from(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            None => serve(cli.serve, ignored_klog_flags).await,
            Some(Command::Serve(args)) => serve(args, ignored_klog_flags).await,
            Some(Command::Mount(args)) => mount(args).await,
            Some(Command::Plugin(PluginCommand::Check {
                file,
                config,
                object_type,
            })) => plugin_check(file, config, object_type).await,
            Some(Command::Plugin(PluginCommand::New {
                name,
                dir,
                sdk_path,
            })) => plugin_new(&name, dir, sdk_path),
            Some(Command::Version) => {
                println!("{COMMAND_NAME} {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A configuration or command-line problem (exit status 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// The socket directory: `--provider-volume`, else the first of
/// `defaults` that is a directory.
fn provider_volume(given: Option<PathBuf>, defaults: &[&str]) -> Result<PathBuf, UsageError> {
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

async fn serve(args: ServeArgs, ignored_klog_flags: Vec<String>) -> anyhow::Result<()> {
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
    let grace = config.limits.shutdown_grace;
    let provider = Provider::new(config, args.region.clone(), std::env::vars().collect())
        .await
        .map_err(|e| UsageError(e.to_string()))?;
    let provider = Arc::new(provider);

    if let Some(warning) = server::socket_dir_warning(&provider_volume) {
        tracing::warn!("{warning}");
    }
    let socket = provider_volume.join(SOCKET_FILE);
    let listener = server::bind_socket(&socket).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                " (the socket's directory must be writable by this process, uid {}, and by no other user; the Helm chart prepares <providersDir>/alibabacloud for it)",
                rustix::process::geteuid().as_raw()
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("cannot listen on {}: {e}{hint}", socket.display())
    })?;
    let _guard = SocketGuard(socket.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let (health_addr, health_server) = health::bind(
        health::HealthSettings {
            bind: args.healthz_bind_address,
            port: args.healthz_port,
            path: args.healthz_path.clone(),
            timeout: args.healthz_timeout,
            socket: socket.clone(),
            metrics: Some(provider.metrics().clone()),
        },
        stopped(),
    )
    .await?;
    let health_task = tokio::spawn(health_server);
    tracing::info!(
        socket = %socket.display(),
        health = %health_addr,
        object_types = %provider.object_types().join(","),
        version = env!("CARGO_PKG_VERSION"),
        "provider ready"
    );
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    server::serve(provider, listener, stopped(), grace).await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), health_task).await;
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

/// Reads `spec.parameters` (and `metadata.name`) of a SecretProviderClass.
fn read_spc(path: &Path) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or("spc")
        .to_string();
    let provider_name = doc["spec"]["provider"].as_str().unwrap_or_default();
    if provider_name != server::PROVIDER_NAME {
        bail!(
            "{}: spec.provider is {provider_name:?}; this provider serves {:?}",
            path.display(),
            server::PROVIDER_NAME
        );
    }
    let parameters: BTreeMap<String, String> =
        serde_yaml::from_value(doc["spec"]["parameters"].clone()).with_context(|| {
            format!(
                "{}: spec.parameters must map names to strings",
                path.display()
            )
        })?;
    Ok((name, parameters))
}

async fn mount(args: MountArgs) -> anyhow::Result<()> {
    let (spc_name, mut attributes) = read_spc(&args.spc)?;
    attributes.insert("secretProviderClass".into(), spc_name);
    attributes.extend(args.attributes.iter().cloned());
    attributes.insert(spc::ATTR_POD_NAMESPACE.into(), args.namespace.clone());
    attributes.insert(spc::ATTR_POD_NAME.into(), args.pod_name.clone());
    attributes.insert(spc::ATTR_POD_UID.into(), args.pod_uid.clone());
    attributes.insert(
        spc::ATTR_SERVICE_ACCOUNT.into(),
        args.service_account.clone(),
    );
    attributes.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    let secrets: BTreeMap<&str, &str> = args
        .secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mode = u32::from_str_radix(args.mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| UsageError(format!("--mode {:?} is not an octal file mode", args.mode)))?;
    let request = MountRequest {
        attributes: serde_json::to_string(&attributes)?,
        secrets: serde_json::to_string(&secrets)?,
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
            args.pod_uid
        ),
        permission: mode.to_string(),
        current_object_version: Vec::new(),
    };

    let mut client = provider::client::provider_client(&args.socket)
        .await
        .with_context(|| {
            format!(
                "cannot connect to the provider at {}",
                args.socket.display()
            )
        })?;
    let version = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await?
        .into_inner();
    let mut grpc_request = tonic::Request::new(request);
    grpc_request.set_timeout(args.timeout);
    let started = std::time::Instant::now();
    let response = match client.mount(grpc_request).await {
        Ok(response) => response.into_inner(),
        Err(status) => bail!("Mount failed: {:?}: {}", status.code(), status.message()),
    };
    println!(
        "Mount by {} {} succeeded in {:.1} ms",
        version.runtime_name,
        version.runtime_version,
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("object versions:");
    for v in &response.object_version {
        println!("  {:<32} {}", v.id, v.version);
    }
    println!("files:");
    for file in &response.files {
        println!(
            "  {:<32} {:04o} {:>7} bytes",
            file.path,
            file.mode,
            file.contents.len()
        );
        if args.show_contents {
            println!("      {}", String::from_utf8_lossy(&file.contents));
        }
    }
    if let Some(dir) = &args.output_dir {
        write_files(dir, &response.files)?;
        println!("written under {}", dir.display());
    }
    Ok(())
}

async fn plugin_check(
    file: PathBuf,
    config_path: Option<PathBuf>,
    object_type: Option<String>,
) -> anyhow::Result<()> {
    let mut config = Config::load(config_path.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let object_type = object_type
        .or_else(|| {
            config
                .plugins
                .iter()
                .find(|(_, r)| r.path.as_deref() == Some(file.as_path()))
                .map(|(name, _)| name.clone())
        })
        .unwrap_or_else(|| "custom".to_string());
    let route = config.plugins.entry(object_type.clone()).or_default();
    route.builtin = None;
    route.path = Some(file.clone());
    route.enabled = true;
    println!("plugin {} as objectType {object_type}", file.display());
    let report = provider::plugin::PluginRuntime::check(&config, &object_type).await;
    match &report.wit_version {
        Some(v) => println!(
            "  built for alibabacloud-csi:plugin@{v} (stamped by plugin-sdk); this provider implements {}",
            provider::plugin::HOST_WIT_VERSION
        ),
        None => println!(
            "  no WIT version stamp (not built with plugin-sdk); this provider implements {}",
            provider::plugin::HOST_WIT_VERSION
        ),
    }
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    for (name, outcome) in &report.steps {
        if *name == "imports" {
            for import in &report.imports {
                match &import.verdict {
                    Ok(what) => println!("  {}   import {}: {what}", mark(true), import.name),
                    Err(why) => println!("  {}   import {}: {why}", mark(false), import.name),
                }
            }
        }
        match outcome {
            Ok(what) => println!("  {} {name}: {what}", mark(true)),
            Err(why) => println!("  {} {name}: {why}", mark(false)),
        }
    }
    if let Some(info) = &report.info {
        println!("  {} {}: {}", info.name, info.version, info.description);
        for (title, params) in [
            ("config keys", &info.config),
            ("object parameters", &info.parameters),
        ] {
            if params.is_empty() {
                println!("    {title}: none");
            }
            for p in params.iter() {
                println!(
                    "    {title}: {}{} - {}",
                    p.name,
                    if p.required { " (required)" } else { "" },
                    p.description
                );
            }
        }
    }
    if report.passed() {
        println!("the plugin can be routed as objectType {object_type}");
        Ok(())
    } else {
        bail!("the plugin cannot be loaded as configured (see FAIL above)")
    }
}

/// The template `plugin new` copies (a working HTTPS JSON backend).
const TEMPLATE_LIB: &str = include_str!("../../plugins/template/src/lib.rs");

fn plugin_new(name: &str, dir: Option<PathBuf>, sdk_path: Option<PathBuf>) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(UsageError(format!(
            "{name:?} is not a plugin name: use lowercase letters, digits and '-', starting with a letter"
        ))
        .into());
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let source_tree_sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
    let sdk = match sdk_path.or_else(|| source_tree_sdk.is_dir().then_some(source_tree_sdk)) {
        Some(path) => format!(
            "{{ path = {:?} }}",
            std::fs::canonicalize(&path)
                .with_context(|| format!("plugin-sdk at {}", path.display()))?
        ),
        None => "{ git = \"https://github.com/alibabacloud-csi/csi-secrets-store-provider-alibabacloud\" }".to_string(),
    };
    let crate_name = name.replace('-', "_");
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
plugin-sdk = {sdk}

# Small components: what the built-in plugins use.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A crate of its own, not part of an enclosing workspace.
[workspace]
"#
    );
    let lib = TEMPLATE_LIB.replace("\"https-json\"", &format!("{name:?}"));
    let readme = format!(
        r#"# {name}

A backend plugin for csi-secrets-store-provider-alibabacloud, started from
`plugin new`. It reads JSON documents over HTTPS; change `src/lib.rs` to
fetch from your backend.

Build (once: `rustup target add wasm32-wasip2`):

    cargo build --release

Check it as the provider will load it:

    csi-secrets-store-provider-alibabacloud plugin check \
        target/wasm32-wasip2/release/{crate_name}.wasm --config config.toml

Route an objectType to it in the provider's config.toml:

    [plugins.{name}]
    path = "/etc/csi-secrets-store-provider-alibabacloud/plugins/{crate_name}.wasm"
    capabilities = {{ http = ["https://config.internal"] }}
    config = {{ base_url = "https://config.internal/apps" }}

With base_url, an objectName is a path under it, percent-encoded segment by
segment. The version is "1" unless config.version_header names an answer
header that holds a real version (never one derived from the content, such
as many servers' ETag): versions are visible to more people than secrets.
"#
    );
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(dir.join("Cargo.toml"), cargo_toml)?;
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(
        dir.join(".cargo/config.toml"),
        "[build]\ntarget = \"wasm32-wasip2\"\n",
    )?;
    std::fs::write(dir.join("README.md"), readme)?;
    println!(
        "created {} — build it with `cargo build --release` there (target wasm32-wasip2); the component is target/wasm32-wasip2/release/{crate_name}.wasm",
        dir.display()
    );
    Ok(())
}

fn write_files(dir: &Path, files: &[provider::proto::File]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    for file in files {
        provider::paths::validate(&file.path).map_err(anyhow::Error::msg)?;
        let target = dir.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.contents)?;
        std::fs::set_permissions(
            &target,
            std::fs::Permissions::from_mode(file.mode as u32 & 0o777),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` as `command_line` would prepare them.
    fn parse(args: &[&str]) -> (Cli, Vec<String>) {
        let normalized = goflags::normalize(args.iter().map(Into::into), &serve_flags()).unwrap();
        let argv = std::iter::once(std::ffi::OsString::from(COMMAND_NAME)).chain(normalized.args);
        (Cli::try_parse_from(argv).unwrap(), normalized.ignored)
    }

    #[test]
    fn the_upstream_chart_args_are_serve_args() {
        // The upstream chart's container args (logVerbosity 3), Go style.
        let (cli, ignored) = parse(&[
            "--provider-volume=/provider",
            "-v=3",
            "--healthz-port=8989",
            "--healthz-path=/healthz",
            "--healthz-timeout=1.5s",
            "--region=cn-beijing",
        ]);
        assert!(cli.command.is_none());
        assert!(ignored.is_empty());
        let serve = cli.serve;
        assert_eq!(serve.provider_volume, Some(PathBuf::from("/provider")));
        assert_eq!(serve.verbosity, 3);
        assert_eq!(serve.healthz_port, 8989);
        assert_eq!(serve.healthz_path, "/healthz");
        assert_eq!(serve.healthz_timeout, Duration::from_millis(1500));
        assert_eq!(serve.region.as_deref(), Some("cn-beijing"));
        assert_eq!(serve.healthz_bind_address, None);
    }

    #[test]
    fn single_dash_separate_values_and_klog_flags() {
        let (cli, ignored) = parse(&[
            "-provider-volume",
            "/x",
            "-v",
            "2",
            "-logtostderr=true",
            "-max-concurrent-kms-secret-pulls",
            "20",
            "-healthz-bind-address=::1",
            "-log-format",
            "json",
            "-config=/etc/p.toml",
            "--vmodule=server=5",
        ]);
        let serve = cli.serve;
        assert_eq!(serve.provider_volume, Some(PathBuf::from("/x")));
        assert_eq!(serve.verbosity, 2);
        assert_eq!(serve.max_concurrent_kms_secret_pulls, Some(20));
        assert_eq!(serve.healthz_bind_address, Some("::1".parse().unwrap()));
        assert_eq!(serve.log_format, LogFormat::Json);
        assert_eq!(serve.config, Some(PathBuf::from("/etc/p.toml")));
        assert_eq!(ignored, vec!["--logtostderr=true", "--vmodule=server=5"]);
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins_as_in_go() {
        let (cli, _) = parse(&[
            "--region=cn-hangzhou",
            "-v=1",
            "-region",
            "cn-beijing",
            "-v=4",
        ]);
        assert_eq!(cli.serve.region.as_deref(), Some("cn-beijing"));
        assert_eq!(cli.serve.verbosity, 4);
        let argv = ["x", "serve", "--region=a", "--region=b"];
        let Some(Command::Serve(serve)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve");
        };
        assert_eq!(serve.region.as_deref(), Some("b"));
    }

    #[test]
    fn serve_flags_cover_every_serve_argument() {
        let flags = serve_flags();
        let serve = Cli::command();
        let serve = serve.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(flags.iter().any(|f| f.name == long), "--{long}");
            }
        }
        for upstream in [
            "provider-volume",
            "healthz-port",
            "healthz-path",
            "healthz-timeout",
            "max-concurrent-kms-secret-pulls",
            "max-concurrent-oos-secret-pulls",
            "region",
            "v",
        ] {
            let flag = flags.iter().find(|f| f.name == upstream).unwrap();
            assert_eq!(flag.arity, Arity::Value, "{upstream}");
        }
    }

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

    #[test]
    fn durations_as_go_and_humantime_write_them() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5sec"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
    }
}
