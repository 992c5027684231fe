//! `dynsup`: the daemon and its CLI in one binary. The one place that maps outcomes
//! to exit statuses ([`ExitStatus`]): 0 ok, 1 error (answered by the daemon, or
//! intensity reached), 2 usage or config error, 3 daemon unreachable.

#![deny(unsafe_code)]

use clap::Parser;
use dynsup::cli::{Cli, Command};
use dynsup::daemon::{self, DaemonArgs};
use dynsup::exit_status::ExitStatus;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` arrive here too, as "errors" printed to stdout.
            let _ = err.print();
            let status = if err.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Ok
            };
            return status.into();
        }
    };
    let status = match cli.command {
        Command::Daemon { config, no_restore } => daemon::run(DaemonArgs {
            config,
            socket: cli.socket,
            no_restore,
        }),
        Command::CheckConfig { file } => {
            dynsup::check_config::run(file.as_deref(), cli.socket.as_deref())
        }
        command => {
            let socket = cli.socket.unwrap_or_else(dynsup::paths::default_socket);
            dynsup::client::run(&socket, command, cli.json)
        }
    };
    status.into()
}
