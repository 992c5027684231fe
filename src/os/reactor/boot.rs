//! Boot and the files behind it: start the config's `[[children]]`, restore the state
//! file's dynamic workers, save that file when the set of dynamic workers changes, and
//! reload the config file (SIGHUP or `reload`), applying at once the daemon-wide
//! settings that can change.

use super::Reactor;
use crate::config::{self, BootChild, Config, FixedSettings};
use crate::core::{Command, Input, ReplyTo, Supervisor};
use crate::os::state_file;
use crate::protocol::Reply;
use std::path::PathBuf;

/// The config file and the state file, and what the reactor remembers about them.
pub(super) struct Files {
    /// The config file, read again on SIGHUP / `reload` (none: built-in defaults).
    config: Option<PathBuf>,
    /// The settings a reload cannot change, as the daemon started with them.
    fixed: FixedSettings,
    /// Where the dynamic workers are recorded (none: they are not).
    state_file: Option<PathBuf>,
    /// While the state file is restored at boot: the names being restored (for error
    /// messages). Saves wait until the restore is over.
    restoring: Option<Vec<String>>,
}

impl Files {
    pub(super) fn new(
        config: Option<PathBuf>,
        fixed: FixedSettings,
        state_file: Option<PathBuf>,
    ) -> Files {
        Files {
            config,
            fixed,
            state_file,
            restoring: None,
        }
    }

    /// Write the core's dynamic workers to the state file, if there is one (not while
    /// restoring: once at the end instead).
    pub(super) fn save_state(&self, core: &Supervisor) {
        let Some(path) = self.state_file.as_deref() else {
            return;
        };
        if self.restoring.is_some() {
            return;
        }
        if let Err(e) = state_file::save(path, &core.saved_workers()) {
            log::error!("cannot write the state file {}: {e}", path.display());
        }
    }

    /// A restored worker could not be started: say which, and that it is dropped.
    pub(super) fn report_restore_failure(&self, index: usize, reply: &Reply) {
        let Some(error) = &reply.error else {
            return;
        };
        let name = self
            .restoring
            .as_ref()
            .and_then(|names| names.get(index))
            .map_or("?", String::as_str);
        log::error!(
            "could not restore worker {name} from the state file (it is dropped from it): {}",
            error.message
        );
    }

    /// Warn about each setting a reload changed that applies only after a restart.
    fn warn_fixed_changes(&self, config: &Config) {
        let new = config.fixed_settings();
        let old = &self.fixed;
        for (key, changed) in [
            ("socket", new.socket != old.socket),
            ("socket_mode", new.socket_mode != old.socket_mode),
            ("socket_group", new.socket_group != old.socket_group),
            ("state_file", new.state_file != old.state_file),
            ("cgroup", new.cgroup != old.cgroup),
            ("cgroup_root", new.cgroup_root != old.cgroup_root),
        ] {
            if changed {
                log::warn!(
                    "reload: [supervisor] {key} changed; the new value applies after a restart"
                );
            }
        }
    }
}

impl Reactor {
    /// Start the config's `[[children]]`, in order, then restore the state file. A
    /// failure stops the boot (the core then shuts down and `run` returns 1).
    pub fn boot(&mut self, children: &[BootChild]) {
        for (index, child) in children.iter().enumerate() {
            if self.core.is_shutting_down() {
                break;
            }
            let start = Command::Start {
                name: child.name.clone(),
                template: Some(child.template.clone()),
                args: child.args.clone(),
                command: None,
            };
            self.command(ReplyTo::Boot { index }, start);
        }
        self.restore();
    }

    /// Start the workers recorded in the state file (after the boot children). A
    /// corrupt file is reported, set aside, and the daemon goes on without it.
    fn restore(&mut self) {
        let Some(path) = self.files.state_file.clone() else {
            return;
        };
        if self.core.is_shutting_down() {
            return;
        }
        let saved = match state_file::load(&path) {
            Ok(Some(saved)) => saved,
            Ok(None) => return,
            Err(message) => {
                match state_file::set_aside(&path) {
                    Ok(aside) => log::error!(
                        "{message}; moved it to {} and starting without it",
                        aside.display()
                    ),
                    Err(e) => {
                        log::error!("{message}; could not move it aside ({e}); starting without it")
                    }
                }
                return;
            }
        };
        log::info!(
            "restoring {} dynamic worker(s) from {}",
            saved.len(),
            path.display()
        );
        self.files.restoring = Some(saved.iter().map(|w| w.name.clone()).collect());
        for (index, worker) in saved.into_iter().enumerate() {
            let start = Command::Start {
                name: worker.name,
                template: Some(worker.template),
                args: worker.args,
                command: worker.command,
            };
            self.command(ReplyTo::Restore { index }, start);
        }
        self.files.restoring = None;
        self.files.save_state(&self.core);
    }

    /// Read the config file again and hand the result to the core (`from`: the
    /// `reload` request, or none for SIGHUP).
    pub(super) fn reload(&mut self, from: Option<ReplyTo>) {
        let config = match &self.files.config {
            None => Err("the daemon runs on its built-in defaults (no --config); there is nothing to reload".to_string()),
            Some(path) => match config::load(path) {
                Ok(config) => {
                    self.apply_settings(&config);
                    Ok(Box::new(config.reload_config()))
                }
                Err(err) => Err(err.to_string()),
            },
        };
        self.feed(Input::Reload { from, config });
    }

    /// The daemon-wide settings a reload can apply at once (log level, who may
    /// connect, how many), and a warning for each one it cannot.
    fn apply_settings(&mut self, config: &Config) {
        crate::logger::set_config_level(config.log_level);
        self.clients.apply_config(config);
        self.files.warn_fixed_changes(config);
    }
}
