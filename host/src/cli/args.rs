//! The command line: subcommands and their flags, and the Go-style reading
//! of `serve`'s flags (the upstream provider's DaemonSet args).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

use provider::goflags::{self, Arity, KnownFlag};
use provider::logging::LogFormat;

/// The command's name, as `version` prints it.
pub(crate) const COMMAND_NAME: &str = "csi-secrets-store-provider-alibabacloud";

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum PluginCommand {
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
pub(crate) struct ServeArgs {
    /// Directory of the provider socket: the driver's providers directory, or
    /// a directory of the provider's own that `<providers dir>/alibabacloud.sock`
    /// links into (as the Helm chart sets it up). Default:
    /// /var/run/secrets-store-csi-providers, or, if that is not a directory,
    /// /etc/kubernetes/secrets-store-csi-providers (the upstream provider's
    /// default).
    #[arg(long)]
    pub(crate) provider_volume: Option<PathBuf>,
    /// Port of the HTTP health server (/live and the healthz path).
    #[arg(long, default_value_t = 8989)]
    pub(crate) healthz_port: u16,
    /// Path of the readiness check.
    #[arg(long, default_value = "/healthz")]
    pub(crate) healthz_path: String,
    /// Timeout of one readiness check, as a Go duration (5s, 1.5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) healthz_timeout: Duration,
    /// Address the health server binds. Default: every IPv6 and IPv4
    /// address (`[::]` accepting IPv4 too; `0.0.0.0` on a host without IPv6).
    #[arg(long)]
    pub(crate) healthz_bind_address: Option<IpAddr>,
    /// Region for SecretProviderClasses without `region`. Default:
    /// `cloud.region` of the config file, else the node's region from the ECS
    /// metadata server, else cn-hangzhou (the upstream provider's default).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Config file (default: /etc/csi-secrets-store-provider-alibabacloud/config.toml
    /// if it exists, else the built-in defaults).
    #[arg(long, env = "CSI_PROVIDER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log verbosity, klog-style (0: info, 2-4: debug, 5+: trace).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub(crate) verbosity: u8,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Accepted for compatibility with the upstream provider; concurrency is
    /// set by [limits] in the config file.
    #[arg(long, hide = true)]
    pub(crate) max_concurrent_kms_secret_pulls: Option<u32>,
    /// Accepted for compatibility with the upstream provider.
    #[arg(long, hide = true)]
    pub(crate) max_concurrent_oos_secret_pulls: Option<u32>,
}

#[derive(Args)]
pub(crate) struct MountArgs {
    /// SecretProviderClass manifest (YAML); its spec.parameters are sent.
    #[arg(long)]
    pub(crate) spc: PathBuf,
    /// Provider socket.
    #[arg(
        long,
        default_value = "/var/run/secrets-store-csi-providers/alibabacloud.sock"
    )]
    pub(crate) socket: PathBuf,
    /// Pod namespace.
    #[arg(long, default_value = "default")]
    pub(crate) namespace: String,
    /// Pod name.
    #[arg(long, default_value = "debug-pod")]
    pub(crate) pod_name: String,
    /// Pod UID.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pub(crate) pod_uid: String,
    /// The pod's service account.
    #[arg(long, default_value = "default")]
    pub(crate) service_account: String,
    /// A nodePublishSecretRef entry, KEY=VALUE (repeatable).
    #[arg(long = "secret", value_parser = parse_key_value)]
    pub(crate) secrets: Vec<(String, String)>,
    /// An extra volume attribute, KEY=VALUE (repeatable); overrides SPC parameters.
    #[arg(long = "attribute", value_parser = parse_key_value)]
    pub(crate) attributes: Vec<(String, String)>,
    /// Default file mode, octal.
    #[arg(long, default_value = "0644")]
    pub(crate) mode: String,
    /// Deadline sent with the request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Write the files under this directory (created; must be empty or absent).
    #[arg(long)]
    pub(crate) output_dir: Option<PathBuf>,
    /// Print the files' contents (they are secrets: for local testing only).
    #[arg(long)]
    pub(crate) show_contents: bool,
}

/// A duration flag that neither Go nor humantime reads: Go's reason (the
/// upstream provider's flags were Go durations), with examples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (e.g. 5s, 1.5s, 500ms, 1m30s)")]
pub(crate) struct DurationArgError(#[source] goflags::DurationError);

/// A Go duration (`5s`, `1.5s`, `1h30m`, as the upstream provider's flags
/// took), or humantime's longer forms (`5sec`, `1 min`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationArgError> {
    goflags::parse_go_duration(text)
        .or_else(|go_error| humantime::parse_duration(text).map_err(|_| DurationArgError(go_error)))
}

/// A `--secret` or `--attribute` without `=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not KEY=VALUE")]
pub(crate) struct NotKeyValue(String);

pub(crate) fn parse_key_value(text: &str) -> Result<(String, String), NotKeyValue> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| NotKeyValue(text.to_string()))
}

/// The flags of `serve` (and of the command without a subcommand) under the
/// names a Go-style command line may use: each long name, each short one,
/// and Go's `-h`/`-help`.
pub(crate) fn serve_flags() -> Vec<KnownFlag> {
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
pub(crate) fn command_line() -> (Vec<std::ffi::OsString>, Vec<String>) {
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
    fn durations_as_go_and_humantime_write_them() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5sec"), Ok(Duration::from_secs(5)));
        assert!(
            parse_duration("5")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
    }
}
