//! The workers' cgroups over their lives, when the daemon uses cgroups: created before
//! the spawn, asked and signalled about leftovers after the reap (see `leftovers.rs`),
//! removed once the worker has left the registry, and all removed at exit. Without
//! cgroups every method does nothing.

use crate::os::cgroup::Cgroups;
use crate::os::process;
use crate::os::spawn::SpawnError;
use crate::signal::Signal;
use std::os::fd::OwnedFd;
use std::rc::Rc;

pub(super) struct WorkerCgroups {
    /// None: the config has no `cgroup = true`, or cgroups could not be set up; stops
    /// then reach the worker's process group only.
    cgroups: Option<Cgroups>,
    /// Groups of unregistered workers that were still emptying; retried on SIGCHLD
    /// (their killed processes come back to us as a subreaper when they die).
    emptying: Vec<Rc<str>>,
}

impl WorkerCgroups {
    pub(super) fn new(cgroups: Option<Cgroups>) -> WorkerCgroups {
        if cgroups.is_none() {
            log::info!("cgroups are off: a worker is stopped with its process group; processes that leave it (setsid, daemonizing programs) are not stopped with the worker (cgroup = true contains them)");
        }
        WorkerCgroups {
            cgroups,
            emptying: Vec::new(),
        }
    }

    /// The cgroups, when the daemon uses them.
    pub(super) fn active(&self) -> Option<&Cgroups> {
        self.cgroups.as_ref()
    }

    /// Before a spawn: create the worker's group and open its `cgroup.procs` for the
    /// child to join (none without cgroups).
    pub(super) fn prepare(&self, name: &str) -> Result<Option<OwnedFd>, SpawnError> {
        let Some(cgroups) = &self.cgroups else {
            return Ok(None);
        };
        cgroups
            .prepare(name)
            .map(Some)
            .map_err(|e| SpawnError::os("cannot prepare the worker's cgroup", e))
    }

    /// Whether anything is in the worker's cgroup (none: the daemon uses no cgroups).
    pub(super) fn populated(&self, name: &str) -> Option<bool> {
        self.cgroups.as_ref().map(|c| c.populated(name))
    }

    /// Send `signal` to every member of the worker's cgroup (SIGKILL: `cgroup.kill`).
    pub(super) fn signal_members(&self, name: &str, signal: Signal) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        if signal == Signal::KILL {
            return cgroups.kill(name);
        }
        for pid in cgroups.procs(name) {
            let _ = process::send_signal(pid, signal, false);
        }
    }

    /// Once a worker has left the registry (its leftovers gone): remove its group,
    /// or try again on the next SIGCHLD while it is still emptying.
    pub(super) fn forget(&mut self, name: &Rc<str>) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        if !cgroups.remove(name) {
            self.emptying.push(name.clone());
        }
    }

    /// On SIGCHLD: try again to remove the groups that were still emptying (a name
    /// registered again meanwhile has its group back in use).
    pub(super) fn retry_emptying(&mut self, is_registered: impl Fn(&str) -> bool) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        self.emptying
            .retain(|name| !is_registered(name) && !cgroups.remove(name));
    }

    /// At exit: leave no cgroup behind. Every worker's group was emptied before it left
    /// the registry (the core waits for its leftovers), so one pass normally removes
    /// them all; a group still busy (a process that outlived SIGKILL) is killed, left,
    /// and named in the log — the daemon does not wait for it.
    pub(super) fn remove_all_at_exit(&self) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        while process::reap_one().is_some() {}
        if !cgroups.remove_all() {
            log::warn!(
                "some worker cgroups under {} were still not empty at exit; they were killed and left behind",
                cgroups.base().display()
            );
        }
    }
}
