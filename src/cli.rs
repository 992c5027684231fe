//! The command line, as clap derive types. `--socket`, `--config` and `--json` are
//! global, so they are accepted before or after the subcommand.

use clap::{ArgGroup, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dynsup",
    version,
    disable_version_flag = true,
    about = "An OS-level DynamicSupervisor + Registry: supervise named worker processes",
    after_help = crate::exit_status::HELP
)]
pub struct Cli {
    /// The daemon's control socket [default: the --config file's `socket`; $DYNSUP_SOCKET; for root /run/dynsup/dynsup.sock if it exists; $XDG_RUNTIME_DIR/dynsup.sock; /tmp/dynsup-<uid>.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file (TOML). The daemon runs on it (without it: built-in defaults, one
    /// template `worker`); the other commands use its `socket` (--socket wins)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the daemon's raw JSON reply
    #[arg(long, global = true)]
    pub json: bool,
    /// Print the CLI's version and, when it is reachable, the daemon's
    #[arg(short = 'V', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor daemon in the foreground
    Daemon {
        /// Do not start the state file's workers: register them as failed (`restart
        /// NAME` starts one, `stop NAME` forgets it). For when they keep the daemon from
        /// running.
        #[arg(long)]
        no_restore: bool,
    },
    /// Start a named worker (DynamicSupervisor.start_child); prints its pid
    Start {
        name: String,
        /// Template to use; optional when the config has exactly one
        #[arg(long, value_name = "T")]
        template: Option<String>,
        /// An argument appended to the command (repeatable)
        #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Replaces the template's command: `-- CMD ARGS...`
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
        /// Reply only once the worker is ready (sends READY=1, for `ready = "notify"`)
        #[arg(long)]
        wait_ready: bool,
        /// An environment variable for this worker only, on top of its template's `env`
        /// and `env_file`s (repeatable; kept across its restarts and in the state file)
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = env_var)]
        env: Vec<(String, String)>,
        /// Start it somewhere in the fleet: claim NAME in etcd, then the chosen node's
        /// daemon starts it (needs --config with [cluster]; see docs/CLUSTER.md)
        #[arg(long, conflicts_with_all = ["command", "wait_ready", "env"])]
        cluster: bool,
        /// With --cluster: the node to start it on [default: the least-loaded live node]
        #[arg(long, value_name = "N", requires = "cluster")]
        node: Option<String>,
    },
    /// Stop workers: stop signal, then SIGKILL after the timeout; they are not restarted.
    /// Several are stopped together; a line per worker, exit 1 if any failed
    #[command(group(ArgGroup::new("which").required(true).args(["names", "template", "all"])))]
    Stop {
        /// The workers to stop
        names: Vec<String>,
        /// Every worker of template T
        #[arg(long, value_name = "T")]
        template: Option<String>,
        /// Every worker
        #[arg(long)]
        all: bool,
        /// Milliseconds to wait before SIGKILL [default: the template's shutdown_ms]
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
        /// Stop cluster workers wherever they run, and forget them (needs --config
        /// with [cluster])
        #[arg(long, conflicts_with_all = ["template", "all", "timeout"])]
        cluster: bool,
    },
    /// Send a signal to workers as if from outside; the restart rule applies. A line
    /// per worker, exit 1 if any failed
    #[command(group(ArgGroup::new("which").required(true).args(["names", "template", "all"])))]
    Kill {
        /// The workers to signal
        names: Vec<String>,
        /// Every worker of template T that has a process
        #[arg(long, value_name = "T")]
        template: Option<String>,
        /// Every worker that has a process
        #[arg(long)]
        all: bool,
        /// Signal name or number
        #[arg(long, default_value = "SIGKILL", value_name = "SIG")]
        signal: String,
    },
    /// Send MESSAGE (one line) to the worker's stdin
    Cast { name: String, message: String },
    /// Print the pid registered under NAME (exit 1, with its state on stderr, when it
    /// has no process)
    Lookup {
        name: String,
        /// Look NAME up in the fleet: prints `NODE PID` (needs --config with [cluster])
        #[arg(long)]
        cluster: bool,
    },
    /// Print how many workers are registered
    Count {
        /// Also break it down by state (total, active, backoff, failed, stopping; waiting
        /// when some are)
        #[arg(long)]
        all: bool,
        /// Count the fleet's cluster workers instead (needs --config with [cluster])
        #[arg(long, conflicts_with = "all")]
        cluster: bool,
    },
    /// Show every worker, or only these
    List {
        /// Only these workers
        names: Vec<String>,
        /// Only the workers of template T
        #[arg(long, value_name = "T")]
        template: Option<String>,
        /// Also show each worker's processes (its cgroup, or its process group)
        #[arg(long)]
        tree: bool,
        /// Show the fleet's cluster workers instead, with their nodes (needs --config
        /// with [cluster])
        #[arg(long, conflicts_with_all = ["names", "template", "tree"])]
        cluster: bool,
    },
    /// Stop every worker and exit the daemon
    Shutdown,
    /// Stop workers, then start them again with the same spec (not counted as a crash):
    /// several together (a line per worker, exit 1 if any failed), or with --rolling
    /// one after another, each once the one before is ready again
    #[command(group(ArgGroup::new("which").required(true).args(["names", "template", "all"])))]
    Restart {
        /// The workers to restart (one with --rolling)
        names: Vec<String>,
        /// Every worker of template T (with --rolling: every running one)
        #[arg(long, value_name = "T")]
        template: Option<String>,
        /// Every worker (with --rolling: every running one)
        #[arg(long)]
        all: bool,
        /// One at a time: stop, start again, wait until it is ready, then the next; a
        /// worker that fails to get ready stops the roll and leaves the rest untouched
        #[arg(long)]
        rolling: bool,
        /// Milliseconds to wait before SIGKILL [default: the template's shutdown_ms]
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Exit 0 when every boot child and critical worker is running, ready and healthy;
    /// else print what is not (one line) and exit 1. For HEALTHCHECK and exec probes
    Health,
    /// Print the name of the worker owning PID (its pid, or any pid in its process group)
    Whois { pid: i32 },
    /// Stream events (started, exited, restarting, stopped, failed, ...) until the daemon exits
    Watch {
        /// Only events about these workers [default: all]
        names: Vec<String>,
    },
    /// Read the config file again and apply the difference
    Reload,
    /// Print the last lines a worker wrote (kept across its restarts and after it stopped)
    Logs {
        name: String,
        /// How many lines
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = dynsup_default_lines())]
        lines: usize,
        /// Then print each new line, across restarts, until interrupted or the daemon exits
        #[arg(short = 'f', long)]
        follow: bool,
        /// Start each line with the time the daemon read it (UTC)
        #[arg(long)]
        timestamps: bool,
    },
    /// Close and reopen every worker's log file (after an external logrotate moved them)
    ReopenLogs,
    /// Print a completion script for SHELL; it completes worker names from the running
    /// daemon (e.g. `dynsup completions bash > /etc/bash_completion.d/dynsup`)
    Completions {
        #[arg(value_enum)]
        shell: crate::completions::Shell,
    },
    /// Print the man page (roff) to stdout; with --dir, write dynsup.1 and one
    /// dynsup-COMMAND.1 per command into DIR
    Manpage {
        /// Write the pages into this directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the daemon's metrics in the Prometheus text format (see docs/OPERATIONS.md)
    Metrics,
    /// The fleet (cluster mode, docs/CLUSTER.md; needs --config with [cluster])
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The cluster agent a daemon with [cluster] runs as its boot child
    /// `dynsup-cluster-agent` (not for people)
    #[command(name = "cluster-agent", hide = true)]
    ClusterAgent,
    /// Check a config file as the daemon would load it and print what it would run
    /// (templates, boot children, socket, what is enabled); exit 0 if it is valid, 2 with
    /// the daemon's error (FILE:LINE:COLUMN) if not. Starts nothing, touches no socket
    #[command(name = "check-config")]
    CheckConfig {
        /// The config file [default: none, as `dynsup daemon` without --config: the
        /// built-in config]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// `dynsup cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The live nodes: load (cluster workers held), lease and its time to live, draining
    Nodes,
    /// Move every cluster worker of NODE to the other nodes, one at a time (each new
    /// copy running, and ready for `ready = "notify"`, before the old one stops); NODE
    /// takes no new names until `cluster undrain NODE` (or its agent joins with a new
    /// lease). Waits until NODE holds none
    Drain { node: String },
    /// Let a drained NODE take new names and failovers again
    Undrain { node: String },
}

/// `--env KEY=VALUE`: split at the first `=`; the key non-empty, neither holding a NUL.
fn env_var(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("expected KEY=VALUE, found {text:?}"));
    };
    crate::core::validate_env_var(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

fn dynsup_default_lines() -> usize {
    crate::protocol::DEFAULT_LOG_LINES
}
