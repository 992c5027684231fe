//! The workers' cgroups over their lives, when the daemon uses cgroups: created before
//! the spawn, emptied (killed) after the reap, removed once the worker has left the
//! registry, and all removed at exit. Without cgroups every method does nothing.

use crate::os::cgroup::Cgroups;
use crate::os::process;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a worker's leftover processes (killed through its cgroup) may take to
/// exit before its restart goes ahead anyway.
const CGROUP_DRAIN: Duration = Duration::from_millis(500);

/// How long the daemon, exiting, waits for the last groups to empty.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

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
    pub(super) fn prepare(&self, name: &str) -> Result<Option<OwnedFd>, String> {
        let Some(cgroups) = &self.cgroups else {
            return Ok(None);
        };
        cgroups
            .prepare(name)
            .map(Some)
            .map_err(|e| format!("cannot prepare the worker's cgroup: {e}"))
    }

    /// After a reap: whatever the worker left behind dies with it. Wait, briefly and
    /// only when something was left, until those processes are gone, so that a
    /// restarted worker finds their ports free (the one bounded wait in the loop).
    /// Then remove the group unless the worker is still `registered` (a restart or a
    /// backoff follows).
    pub(super) fn after_reap(&mut self, name: &Rc<str>, registered: bool) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        cgroups.kill_and_wait(name, CGROUP_DRAIN);
        if !registered && !cgroups.remove(name) {
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

    /// At exit: leave no cgroup behind. Processes killed by `cgroup.kill` take a moment
    /// to exit (and come back to us as a subreaper to be reaped), so this waits for
    /// them, for at most a second; the daemon is exiting, nothing else is served.
    pub(super) fn remove_all_at_exit(&self) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        let deadline = Instant::now() + EXIT_DRAIN;
        while !cgroups.remove_all() {
            while process::reap_one().is_some() {}
            if Instant::now() >= deadline {
                log::warn!(
                    "some worker cgroups under {} were still emptying at exit",
                    cgroups.base().display()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
