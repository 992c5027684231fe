//! What is left of a worker's process group — or of its cgroup, when the daemon uses
//! cgroups — after its main process was reaped. Asked at once (the answer to the
//! core's `Reaped`), signalled when the core says so, and watched until it is empty:
//! re-checked after every SIGCHLD (orphaned leftovers are the daemon's children, as
//! their subreaper, so their deaths wake it) and, for leftovers whose parent is still
//! alive elsewhere, every `RECHECK` while any is being watched — never when idle.

use super::worker_cgroups::WorkerCgroups;
use crate::core::InstanceId;
use crate::os::process;
use crate::signal::Signal;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often watched leftovers are checked without a SIGCHLD.
const RECHECK: Duration = Duration::from_millis(25);

/// How long a group is still watched after it was sent SIGKILL: the core moves on
/// without it one second after SIGKILL (`GIVE_UP_MS`), so a group that outlives this is
/// stuck (a process in uninterruptible sleep) and is no longer polled for.
const AFTER_KILL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(super) struct Leftovers {
    watched: HashMap<InstanceId, Watched>,
    next_check: Option<Instant>,
}

struct Watched {
    name: Rc<str>,
    /// The ended main process's pid: the group's id.
    pgid: i32,
    /// When it was sent SIGKILL.
    killed_at: Option<Instant>,
}

impl Leftovers {
    /// Is anything of the worker's group left?
    pub(super) fn any_left(name: &str, pgid: i32, cgroups: &WorkerCgroups) -> bool {
        match cgroups.populated(name) {
            Some(populated) => populated,
            None => process::group_alive(pgid),
        }
    }

    /// Watch the group of `instance` until it is empty.
    pub(super) fn watch(&mut self, instance: InstanceId, name: Rc<str>, pgid: i32) {
        let now = Instant::now();
        self.watched.insert(
            instance,
            Watched {
                name,
                pgid,
                killed_at: None,
            },
        );
        self.next_check.get_or_insert(now + RECHECK);
    }

    /// Signal what is left of the group of `instance`: its process group, and with
    /// cgroups every member of its cgroup (SIGKILL: `cgroup.kill`, which reaches
    /// processes that left the process group with `setsid`).
    pub(super) fn signal(&mut self, instance: InstanceId, signal: Signal, cgroups: &WorkerCgroups) {
        let Some(watched) = self.watched.get_mut(&instance) else {
            return;
        };
        if signal == Signal::KILL {
            watched.killed_at.get_or_insert_with(Instant::now);
        }
        if let Err(e) = process::send_signal(watched.pgid, signal, true) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!(
                    "{}: cannot send {signal} to process group {}: {e}",
                    watched.name,
                    watched.pgid
                );
            }
        }
        cgroups.signal_members(&watched.name, signal);
    }

    /// Check every watched group; the ones now empty are no longer watched and are
    /// returned (instance and worker name).
    pub(super) fn emptied(&mut self, cgroups: &WorkerCgroups) -> Vec<(InstanceId, Rc<str>)> {
        if self.watched.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut emptied = Vec::new();
        self.watched.retain(|&instance, w| {
            if !Leftovers::any_left(&w.name, w.pgid, cgroups) {
                emptied.push((instance, w.name.clone()));
                return false;
            }
            if w.killed_at
                .is_some_and(|at| now.duration_since(at) >= AFTER_KILL)
            {
                log::warn!(
                    "{}: process group {} is still not empty {} s after SIGKILL; no longer watched",
                    w.name,
                    w.pgid,
                    AFTER_KILL.as_secs()
                );
                return false;
            }
            true
        });
        self.next_check = (!self.watched.is_empty()).then(|| now + RECHECK);
        emptied
    }

    /// Whether any group is being drained (its orphans' exits matter at once).
    pub(super) fn any(&self) -> bool {
        !self.watched.is_empty()
    }

    /// When the next check without a SIGCHLD is due (none while nothing is watched).
    pub(super) fn next_check(&self) -> Option<Instant> {
        self.next_check
    }
}
