//! `dynsup daemon`: wiring only. Load the config, bind the socket, build the core and
//! the reactor, start the boot children, run, clean up.
//!
//! Exit statuses: [`ExitStatus::Ok`] after an orderly shutdown, [`ExitStatus::Error`]
//! after the restart intensity was reached (or an `on_limit = "escalate"` limit), a
//! boot child failed or a fatal runtime error, [`ExitStatus::Usage`] for a bad config,
//! an unusable socket path, or a cgroup sub-tree that another live daemon owns, and
//! [`ExitStatus::Critical`] — the worker's own status, its exit code or 128+signal —
//! when a `critical` worker ended for good or was given up on.

use crate::config::{self, Config};
use crate::core::Supervisor;
use crate::exit_status::ExitStatus;
use crate::os::reactor::{Reactor, Settings};
use crate::os::{listener, spawn::SpawnContext};
use std::path::{Path, PathBuf};

pub struct DaemonArgs {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// Register the state file's workers as failed instead of starting them.
    pub no_restore: bool,
}

pub fn run(args: DaemonArgs) -> ExitStatus {
    crate::logger::init();
    let status = run_logged(args);
    // The log is written by its own thread; give it a bounded grace to finish.
    crate::logger::finish(crate::logger::EXIT_GRACE);
    status
}

fn run_logged(args: DaemonArgs) -> ExitStatus {
    let config: Config = match config::load_or_builtin(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("dynsup: invalid configuration: {err}");
            return ExitStatus::Usage;
        }
    };
    crate::logger::set_config_level(config.log_level);
    if config.templates.is_empty() {
        log::warn!(
            "config {} has no templates: nothing can be started until a reload adds one",
            config.source
        );
    }
    crate::os::limits::raise_open_files();
    // Orphaned descendants of workers come back to us (not to init) and are reaped,
    // so no zombie is ever left behind; unknown pids are reaped silently.
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        log::warn!("cannot become a child subreaper: {err}");
    }
    if std::process::id() == 1 {
        log::info!("running as PID 1: SIGTERM, SIGINT and SIGQUIT shut down in order");
    }
    if let Err(err) = keep_stdio_open() {
        eprintln!("dynsup: cannot open /dev/null for closed standard streams: {err}");
        return ExitStatus::Error;
    }
    // First, while the lowest fd numbers are free: the spawner reserves a few.
    let spawner = match crate::os::spawn::Spawner::new() {
        Ok(spawner) => spawner,
        Err(err) => {
            log::error!("cannot prepare the spawner: {err}");
            return ExitStatus::Error;
        }
    };
    let socket = args
        .socket
        .or_else(|| config.socket.clone())
        .unwrap_or_else(crate::paths::daemon_default_socket);
    let listener = match listener::bind(&socket, config.socket_mode, config.socket_group) {
        Ok(listener) => listener,
        Err(err) => {
            log::error!("{err}");
            return ExitStatus::Usage;
        }
    };
    let metrics_listener = match &config.metrics_listen {
        Some(listen) => {
            match crate::os::reactor::bind_metrics(listen, config.socket_mode, config.socket_group)
            {
                Ok(listener) => Some(listener),
                Err(err) => {
                    log::error!("{err}");
                    remove_socket(&socket);
                    return ExitStatus::Usage;
                }
            }
        }
        None => None,
    };
    let metrics_at = metrics_listener.as_ref().map(|l| l.describe());
    log::info!(
        "dynsup {} starting (pid {}), config {}, {} template(s), {} boot child(ren)",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        config.source,
        config.templates.len(),
        config.children.len()
    );
    let mut core = Supervisor::new(config.limits(), config.templates.clone());
    if config.state_file.is_some() {
        core = core.record_dynamic_workers();
    }
    let ctx = SpawnContext::from_process(socket.clone());
    let mut access = config.access.clone();
    access.daemon_uid = nix::unistd::geteuid().as_raw();
    let cgroups = if config.cgroup {
        match crate::os::cgroup::Cgroups::setup(config.cgroup_root.as_deref(), &socket) {
            Ok(cgroups) => {
                log::info!(
                    "each worker runs in its own cgroup under {}, this daemon's sub-tree of {} (locked while it runs)",
                    cgroups.subtree().display(),
                    cgroups.base().display()
                );
                Some(cgroups)
            }
            Err(owned @ crate::os::cgroup::SetupError::Owned { .. }) => {
                log::error!("{owned}");
                remove_socket(&socket);
                return ExitStatus::Usage;
            }
            Err(crate::os::cgroup::SetupError::Unusable(why)) => {
                log::warn!(
                    "cgroup = true, but cgroups cannot be used: {why}; falling back to process groups (descendants that call setsid can escape a stop)"
                );
                None
            }
        }
    } else {
        None
    };
    // Before any worker starts: what this daemon's previous life left in its sub-tree.
    if let Some(cgroups) = &cgroups {
        cgroups.kill_leftovers(crate::os::cgroup::LEFTOVER_PATIENCE);
    }
    let settings = Settings {
        spawner,
        fixed: config.fixed_settings(),
        cgroups,
        config: args.config.clone(),
        state_file: config.state_file.clone(),
        access,
        max_connections: config.max_connections,
        no_restore: args.no_restore,
        logs: config.logs.clone(),
        metrics_listener,
    };
    let status = match Reactor::new(listener, core, ctx, settings) {
        Ok(mut reactor) => {
            reactor.boot(&config.children);
            if !reactor.is_shutting_down() {
                log::info!("listening on {}", socket.display());
                if let Some(at) = &metrics_at {
                    log::info!("serving metrics on {at}");
                }
            }
            match reactor.run() {
                Ok(code) => ExitStatus::after_shutdown(code),
                Err(err) => {
                    log::error!("event loop failed: {err}");
                    ExitStatus::Error
                }
            }
        }
        Err(err) => {
            log::error!("cannot set up the event loop: {err}");
            ExitStatus::Error
        }
    };
    remove_socket(&socket);
    if let Some(crate::metrics::listen::MetricsListen::Unix(path)) = &config.metrics_listen {
        remove_socket(path);
    }
    log::info!("exiting with status {}", status.code());
    status
}

fn remove_socket(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        log::warn!("cannot remove socket {}: {err}", path.display());
    }
}

/// Open /dev/null on any of fds 0, 1, 2 that is closed, so pipes created later never
/// land on a standard stream number (the spawn code relies on it). `open` returns the
/// lowest free fd, so repeating it fills the gaps; the first fd above 2 is closed again.
fn keep_stdio_open() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        if file.as_raw_fd() > 2 {
            return Ok(());
        }
        // Keep it open: it now stands in for a closed standard stream.
        let _ = file.into_raw_fd();
    }
}
