//! Children's exits: one pidfd per child the daemon spawned (workers and health
//! checks), registered with the loop, and the sweep for everything else.
//!
//! A pidfd becomes readable when its process exits, and `waitid(P_PIDFD)` reaps exactly
//! that child: O(1) however many children there are. `waitpid(-1)` walks every child
//! in the kernel (about 1 ms at 9,000), so it is kept for what has no pidfd: orphans
//! adopted as the subreaper (a worker's leftovers), children spawned on a kernel
//! without `CLONE_PIDFD`, and a pidfd the loop could not watch. After a SIGCHLD the
//! sweep runs at once when such children may be exiting — the kernel gives no pidfds,
//! a pidfd could not be watched, or a worker's leftovers are being drained — and
//! otherwise `ORPHAN_SWEEP_DELAY` later, once for every SIGCHLD in that window: an
//! orphan that exits while no group is drained is reaped within that delay, and a
//! crash loop among 10,000 workers costs one walk per window, not two per exit.

use super::Poller;
use crate::core::Exit;
use crate::os::process::{self, PidfdReap};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long an orphan's exit may wait for the sweep when nothing else needs one.
pub(super) const ORPHAN_SWEEP_DELAY: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(super) struct Exits {
    by_token: HashMap<Token, (i32, OwnedFd)>,
    by_pid: HashMap<i32, Token>,
    /// A child was spawned without a watched pidfd (the kernel gives none, or the loop
    /// could not watch it): only the sweep finds such exits, so from then on every
    /// SIGCHLD sweeps at once, as before pidfds.
    degraded: bool,
    /// When the next sweep is due (a SIGCHLD came, and none had to sweep at once).
    sweep_at: Option<Instant>,
}

impl Exits {
    /// Watch `pid`'s exit through `pidfd` (none: the kernel gave none, and the sweep
    /// finds it).
    pub(super) fn watch(
        &mut self,
        registry: &Registry,
        token: Token,
        pid: i32,
        pidfd: Option<OwnedFd>,
    ) {
        let Some(pidfd) = pidfd else {
            self.degraded = true;
            return;
        };
        let raw = pidfd.as_raw_fd();
        match registry.register(&mut SourceFd(&raw), token, Interest::READABLE) {
            Ok(()) => {
                self.by_pid.insert(pid, token);
                self.by_token.insert(token, (pid, pidfd));
            }
            Err(e) => {
                log::warn!("cannot watch pid {pid}'s pidfd ({e}): exits are found by waitpid(-1) from now on");
                self.degraded = true;
            }
        }
    }

    pub(super) fn has(&self, token: Token) -> bool {
        self.by_token.contains_key(&token)
    }

    /// The pidfd `token` is readable: the child's exit, if it has exited.
    pub(super) fn on_ready(&mut self, token: Token, registry: &Registry) -> Option<(i32, Exit)> {
        let (_, pidfd) = self.by_token.get(&token)?;
        match process::reap_pidfd(pidfd.as_fd()) {
            PidfdReap::Running => None,
            PidfdReap::Exited(pid, exit) => {
                self.unwatch(token, registry);
                Some((pid, exit))
            }
            PidfdReap::Gone => {
                self.unwatch(token, registry);
                None
            }
        }
    }

    /// The sweep reaped `pid`: drop its pidfd if it had one (else it was an orphan, or
    /// a child spawned without one).
    pub(super) fn reaped_by_sweep(&mut self, pid: i32, registry: &Registry) {
        if let Some(&token) = self.by_pid.get(&pid) {
            self.unwatch(token, registry);
        }
    }

    fn unwatch(&mut self, token: Token, registry: &Registry) {
        if let Some((pid, pidfd)) = self.by_token.remove(&token) {
            let _ = registry.deregister(&mut SourceFd(&pidfd.as_raw_fd()));
            self.by_pid.remove(&pid);
        }
    }

    /// A SIGCHLD came: whether to sweep now (`draining`: a worker's leftovers are being
    /// waited for, so an orphan's exit matters at once); else the sweep is scheduled.
    pub(super) fn on_sigchld(&mut self, draining: bool, now: Instant) -> bool {
        if draining || self.degraded {
            self.sweep_at = None;
            return true;
        }
        self.sweep_at.get_or_insert(now + ORPHAN_SWEEP_DELAY);
        false
    }

    /// The scheduled sweep, if one is due by `now` (it is then no longer scheduled).
    pub(super) fn take_due_sweep(&mut self, now: Instant) -> bool {
        if self.sweep_at.is_some_and(|at| at <= now) {
            self.sweep_at = None;
            return true;
        }
        false
    }

    pub(super) fn next_sweep(&self) -> Option<Instant> {
        self.sweep_at
    }
}

impl Poller {
    /// Watch the exit of a child just spawned.
    pub(super) fn watch_exit(&mut self, pid: i32, pidfd: Option<OwnedFd>) {
        let token = self.new_token();
        let registry = self.poll.registry();
        self.exits.watch(registry, token, pid, pidfd);
    }
}
