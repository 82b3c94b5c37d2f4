//! The `csi-secrets-store-provider-alibabacloud` command: `serve` (the
//! provider), `mount` (act as the CSI driver against a running provider),
//! `plugin check|new`, and `version`. Wiring only: the subcommands are in
//! `cli/`, the provider in the library (its composition root is
//! `provider::app`).

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

use cli::UsageError;
use cli::args::{COMMAND_NAME, Cli, Command, PluginCommand};

/// Exit status for a bad command line or configuration (EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let (args, ignored_klog_flags) = cli::args::command_line();
    let cli = Cli::parse_from(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            None => cli::serve::serve(cli.serve, ignored_klog_flags).await,
            Some(Command::Serve(args)) => cli::serve::serve(args, ignored_klog_flags).await,
            Some(Command::Mount(args)) => cli::mount::mount(args).await,
            Some(Command::Plugin(PluginCommand::Check {
                file,
                config,
                object_type,
            })) => cli::plugin::plugin_check(file, config, object_type).await,
            Some(Command::Plugin(PluginCommand::New {
                name,
                dir,
                sdk_path,
            })) => cli::plugin::plugin_new(&name, dir, sdk_path),
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
