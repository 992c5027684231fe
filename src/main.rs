//! `dynsup`: the daemon and its CLI in one binary. The one place that maps outcomes
//! to exit statuses ([`ExitStatus`]): 0 ok, 1 error (answered by the daemon, or
//! intensity reached), 2 usage or config error, 3 daemon unreachable.

#![deny(unsafe_code)]

use clap::{CommandFactory, Parser};
use dynsup::cli::{Cli, Command};
use dynsup::daemon::{self, DaemonArgs};
use dynsup::exit_status::ExitStatus;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The completion scripts' helper: not a command of the CLI (see completions.rs).
    if let Some(status) = dynsup::completions::run_helper(std::env::args_os().skip(1)) {
        return status.into();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` arrives here too, as an "error" printed to stdout.
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
        Some(Command::Daemon { no_restore }) => daemon::run(DaemonArgs {
            config: cli.config,
            socket: cli.socket,
            no_restore,
        }),
        Some(Command::CheckConfig { file }) => dynsup::check_config::run(
            file.as_deref().or(cli.config.as_deref()),
            cli.socket.as_deref(),
        ),
        Some(Command::Completions { shell }) => dynsup::completions::print_script(shell),
        Some(Command::Manpage { dir }) => dynsup::manpage::run(dir.as_deref()),
        Some(Command::ClusterAgent) => {
            dynsup::cluster::agent::run(cli.config.as_deref(), cli.socket)
        }
        Some(command) if dynsup::cluster::commands::is_cluster(&command) => {
            match dynsup::cluster::commands::settings(cli.config.as_deref()) {
                Ok(settings) => dynsup::cluster::commands::run(&settings, command, cli.json),
                Err(status) => status,
            }
        }
        command => match dynsup::client::socket_path(cli.socket, cli.config.as_deref()) {
            Err(status) => status,
            Ok(socket) => match command {
                _ if cli.version => dynsup::client::version(&socket, cli.json),
                Some(command) => dynsup::client::run(&socket, command, cli.json),
                None => {
                    let _ = Cli::command().write_help(&mut std::io::stderr());
                    ExitStatus::Usage
                }
            },
        },
    };
    status.into()
}
