//! Boot and the files behind it: start the config's `[[children]]`, restore the state
//! file's dynamic workers (a batch per loop turn, so the socket is served meanwhile;
//! those recorded `failed` are restored held, not started), write that file once per
//! loop turn when the record of dynamic workers changed, and reload the config file
//! (SIGHUP or `reload`), applying at once the daemon-wide settings that can change.

use super::Reactor;
use crate::config::{self, BootChild, Config, FixedSettings};
use crate::core::{Command, Input, ReplyTo, SavedWorker, Supervisor};
use crate::os::state_file;
use crate::protocol::Reply;
use std::collections::VecDeque;
use std::path::PathBuf;

/// How many saved workers are restored per loop turn.
const RESTORE_BATCH: usize = 32;

/// Why workers are held `failed` when the daemon runs with `--no-restore`.
const NOT_RESTORED: &str = "not restored: the daemon was started with --no-restore";

/// The config file and the state file, and what the reactor remembers about them.
pub(super) struct Files {
    /// The config file, read again on SIGHUP / `reload` (none: built-in defaults).
    config: Option<PathBuf>,
    /// The settings a reload cannot change, as the daemon started with them.
    fixed: FixedSettings,
    /// Where the dynamic workers are recorded (none: they are not).
    state_file: Option<PathBuf>,
    /// `--no-restore`: saved workers are restored held `failed`, none is started.
    no_restore: bool,
    /// While the state file is restored: every saved name, by index (for error
    /// messages), and the ones not restored yet.
    restoring: Option<Vec<String>>,
    pending: VecDeque<(usize, SavedWorker)>,
    /// The record of dynamic workers changed since the file was last written.
    dirty: bool,
    /// The next write is a whole snapshot, not an append (after the restore, which
    /// drops the workers that could not be restored).
    full: bool,
    /// The state file's journal, open for appends.
    journal: state_file::Journal,
    /// Successful replies to changes of the record, waiting for the turn's write.
    held: Vec<(ReplyTo, Reply)>,
}

impl Files {
    pub(super) fn new(
        config: Option<PathBuf>,
        fixed: FixedSettings,
        state_file: Option<PathBuf>,
        no_restore: bool,
    ) -> Files {
        Files {
            config,
            fixed,
            state_file,
            no_restore,
            restoring: None,
            pending: VecDeque::new(),
            dirty: false,
            full: false,
            journal: state_file::Journal::default(),
            held: Vec::new(),
        }
    }

    /// Keep a reply until the turn's write of the state file.
    pub(super) fn hold_reply(&mut self, to: ReplyTo, reply: Reply) {
        self.held.push((to, reply));
    }

    pub(super) fn take_held_replies(&mut self) -> Vec<(ReplyTo, Reply)> {
        std::mem::take(&mut self.held)
    }

    /// The core's record of dynamic workers changed.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Write a whole snapshot next time (and empty the journal).
    fn mark_full(&mut self) {
        self.dirty = true;
        self.full = true;
    }

    /// Saved workers are still waiting to be restored.
    pub(super) fn is_restoring(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Write the state file if the record changed this turn: the core's dynamic
    /// workers, plus those not restored yet (they must not be lost by a write that
    /// happens during the restore). Called once per loop turn, before replies are
    /// flushed, so an answered `start` or `stop` is on disk first.
    pub(super) fn write_if_dirty(&mut self, core: &mut Supervisor) -> Result<(), String> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(());
        }
        let changes = core.take_saved_changes();
        let Some(path) = self.state_file.as_deref() else {
            return Ok(());
        };
        // An append: the turn's changes, one fdatasync. The workers not restored yet
        // are in the file already, and stay.
        if !self.full && !self.journal.wants_compaction() {
            return self.journal.append(path, &changes).map_err(|e| {
                log::error!("cannot write the state file {}: {e}", path.display());
                // What the journal holds is settled by a whole snapshot next time.
                self.full = true;
                format!("{}: {e}", path.display())
            });
        }
        // A snapshot: the core's dynamic workers, plus those not restored yet.
        let mut workers = core.saved_workers();
        if !self.pending.is_empty() {
            let known: std::collections::HashSet<String> =
                workers.iter().map(|w| w.name.clone()).collect();
            workers.extend(
                self.pending
                    .iter()
                    .filter(|(_, w)| !known.contains(&w.name))
                    .map(|(_, w)| w.clone()),
            );
            workers.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        }
        match self.journal.compact(path, &workers) {
            Ok(()) => {
                self.full = false;
                Ok(())
            }
            Err(e) => {
                log::error!("cannot write the state file {}: {e}", path.display());
                Err(format!("{}: {e}", path.display()))
            }
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

    /// Warn about each setting a reload changed that applies only after a restart,
    /// and name them (for the reply).
    fn warn_fixed_changes(&self, config: &Config) -> Vec<String> {
        let mut keys = Vec::new();
        let new = config.fixed_settings();
        let old = &self.fixed;
        for (key, changed) in [
            ("socket", new.socket != old.socket),
            ("socket_mode", new.socket_mode != old.socket_mode),
            ("socket_group", new.socket_group != old.socket_group),
            ("state_file", new.state_file != old.state_file),
            ("cgroup", new.cgroup != old.cgroup),
            ("cgroup_root", new.cgroup_root != old.cgroup_root),
            ("metrics_listen", new.metrics_listen != old.metrics_listen),
        ] {
            if changed {
                log::warn!(
                    "reload: [supervisor] {key} changed; the new value applies after a restart"
                );
                keys.push(key.to_string());
            }
        }
        keys
    }
}

impl Reactor {
    /// Start the config's `[[children]]`, in order, then read the state file; its
    /// workers are restored from the loop, a batch per turn, so the socket is served
    /// meanwhile. A failure of a boot child stops the boot (the core then shuts down and
    /// `run` returns 1).
    pub fn boot(&mut self, children: &[BootChild]) {
        for (index, child) in children.iter().enumerate() {
            if self.core.is_shutting_down() {
                break;
            }
            self.command(ReplyTo::Boot { index }, Command::StartChild(child.clone()));
        }
        // Once every boot child is running and ready, the core says so (READY=1).
        self.feed(Input::BootFed);
        self.load_state_file();
    }

    /// Read the state file into the restore queue. A corrupt file is reported, set
    /// aside, and the daemon goes on without it.
    fn load_state_file(&mut self) {
        let Some(path) = self.files.state_file.clone() else {
            return;
        };
        if self.core.is_shutting_down() {
            return;
        }
        let saved = match state_file::load(&path) {
            Ok(Some(loaded)) => {
                if let Some(damage) = loaded.journal_damage {
                    match state_file::set_journal_aside(&path) {
                        Ok(aside) => log::error!(
                            "{damage}; moved it to {} and starting with the {} worker(s) read",
                            aside.display(),
                            loaded.workers.len()
                        ),
                        Err(e) => log::error!(
                            "{damage}; could not move it aside ({e}); starting with the {} worker(s) read",
                            loaded.workers.len()
                        ),
                    }
                }
                // Once restored, the file is written whole (journal emptied).
                self.files.mark_full();
                self.files.dirty = false;
                loaded.workers
            }
            Ok(None) => return,
            Err(message) => {
                // The next write puts a whole, proper file where this one was.
                self.files.mark_full();
                self.files.dirty = false;
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
        // A cluster worker (started `fenced` by the cluster agent) may run only while
        // this node holds its lease: the agent starts it again once it has joined, if
        // this node still owns it; restored here it could run beside the copy another
        // node took over (docs/CLUSTER.md, "Fencing"). Left out of the file too.
        let (fenced, saved): (Vec<SavedWorker>, Vec<SavedWorker>) =
            saved.into_iter().partition(|w| w.fenced);
        if !fenced.is_empty() {
            log::info!(
                "{} cluster worker(s) in {} are not restored here: the cluster agent starts each again once it has joined, if this node still owns it",
                fenced.len(),
                path.display()
            );
        }
        let held = saved.iter().filter(|w| w.failed.is_some()).count();
        match self.files.no_restore {
            true => log::warn!(
                "--no-restore: the {} dynamic worker(s) of {} are registered as failed, not started (`dynsup restart NAME` starts one)",
                saved.len(),
                path.display()
            ),
            false => log::info!(
                "restoring {} dynamic worker(s) from {} ({held} held failed)",
                saved.len(),
                path.display()
            ),
        }
        self.files.restoring = Some(saved.iter().map(|w| w.name.clone()).collect());
        self.files.pending = saved.into_iter().enumerate().collect();
    }

    /// Restore the next batch of saved workers; once the last is restored, write the
    /// file (failures are dropped from it).
    pub(super) fn restore_some(&mut self) {
        for _ in 0..RESTORE_BATCH {
            if self.core.is_shutting_down() {
                // The file keeps what was not restored: a daemon that comes back will.
                self.files.pending.clear();
                break;
            }
            let Some((index, worker)) = self.files.pending.pop_front() else {
                break;
            };
            let why = match (worker.failed, self.files.no_restore) {
                (Some(why), _) => Some(why),
                (None, true) => Some(NOT_RESTORED.to_string()),
                (None, false) => None,
            };
            let command = match why {
                Some(why) => Command::Hold {
                    name: worker.name,
                    template: worker.template,
                    args: worker.args,
                    command: worker.command,
                    env: worker.env,
                    why,
                },
                None => Command::Start {
                    name: worker.name,
                    template: Some(worker.template),
                    args: worker.args,
                    command: worker.command,
                    env: worker.env,
                    fenced: worker.fenced,
                },
            };
            self.command(ReplyTo::Restore { index }, command);
        }
        if self.files.pending.is_empty() && self.files.restoring.take().is_some() {
            log::info!("the state file's workers are restored");
            self.files.mark_full();
        }
    }

    /// Read the config file again and hand the result to the core (`from`: the
    /// `reload` request, or none for SIGHUP).
    pub(super) fn reload(&mut self, from: Option<ReplyTo>) {
        let config = match &self.files.config {
            None => Err("the daemon runs on its built-in defaults (no --config); there is nothing to reload".to_string()),
            Some(path) => match config::load(path) {
                Ok(config) => {
                    let fixed = self.apply_settings(&config);
                    self.reload_notes = from.zip(Some(fixed));
                    Ok(Box::new(config.reload_config()))
                }
                Err(err) => Err(err.to_string()),
            },
        };
        self.feed(Input::Reload { from, config });
    }

    /// The daemon-wide settings a reload can apply at once (log level, who may
    /// connect, how many, the workers' output settings), and a warning for each one it
    /// cannot (whose keys it returns).
    fn apply_settings(&mut self, config: &Config) -> Vec<String> {
        crate::logger::set_config_level(config.log_level);
        self.clients.apply_config(config);
        self.logs.apply_config(&config.logs, self.workers.live());
        self.files.warn_fixed_changes(config)
    }
}
