//! `dynsup`: the daemon and its CLI in one binary. The one place that maps outcomes
//! to exit statuses: 0 ok, 1 error (answered by the daemon, or intensity reached),
//! 2 usage or config error, 3 daemon unreachable.

use clap::Parser;
use dynsup::cli::{Cli, Command};
use dynsup::daemon::{self, DaemonArgs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Daemon { config } => daemon::run(DaemonArgs {
            config,
            socket: cli.socket,
        }),
        command => {
            let socket = cli.socket.unwrap_or_else(dynsup::paths::default_socket);
            dynsup::client::run(&socket, command, cli.json)
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
