//! The dead man's switch (`fence`): workers started with `fenced` run only while a
//! client keeps renewing the switch; armed and not renewed before its deadline, the
//! switch stops every one of them and forgets them, as a `stop` would, and their
//! `stopped` events say they were fenced. Disarmed (as at boot), it does nothing.
//!
//! One switch per daemon; each `fence` replaces its deadline. Its user is the cluster
//! agent (docs/CLUSTER.md, "Fencing"): it starts the cluster's workers `fenced` and
//! renews the switch after each lease keepalive that etcd answered, so that a node
//! whose agent is frozen or dead still stops its cluster workers before etcd can
//! expire the lease and another node start them. The switch owns one deadline,
//! beside the registry's per-worker ones; firing it visits every worker (it is rare).

use super::replies::{Answer, Notice, StopCause};
use super::worker::{AfterStop, Next};
use super::{Action, ReplyTo, Supervisor, Time};
use log::warn;
use std::rc::Rc;

#[derive(Debug, Default)]
pub(super) struct Switch {
    /// When it fires (monotonic µs); `None`: disarmed.
    due_us: Option<u64>,
    /// The stop timeout (SIGKILL after); `None`: each worker's `shutdown_ms`.
    timeout_ms: Option<u64>,
    /// The `within_ms` it was last armed with (for the log line when it fires).
    within_ms: u64,
}

impl Switch {
    pub(super) fn due_us(&self) -> Option<u64> {
        self.due_us
    }

    pub(super) fn is_due(&self, now_us: u64) -> bool {
        self.due_us.is_some_and(|due| due <= now_us)
    }
}

impl Supervisor {
    /// `fence`: arm (or renew) the switch for `within_ms`, or disarm it, and answer
    /// with how many `fenced` workers are registered. During a shutdown everything
    /// stops anyway: the switch is disarmed and the request refused.
    pub(super) fn arm_switch(
        &mut self,
        from: ReplyTo,
        within_ms: Option<u64>,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            self.switch = Switch::default();
            return self.answer(from, Err(super::Refusal::ShuttingDown), now, out);
        }
        self.switch = match within_ms {
            Some(within_ms) => Switch {
                due_us: Some(now.mono_us.saturating_add(within_ms.saturating_mul(1000))),
                timeout_ms,
                within_ms,
            },
            None => Switch::default(),
        };
        let armed = self.fenced_workers().len();
        self.answer(from, Ok(Answer::Fenced { armed }), now, out);
    }

    /// The switch was not renewed in time: stop every `fenced` worker, and disarm it.
    pub(super) fn fire_switch(&mut self, now: Time, out: &mut Vec<Action>) {
        let switch = std::mem::take(&mut self.switch);
        let names = self.fenced_workers();
        warn!(
            "fence: not renewed within {} ms; stopping {} fenced worker(s)",
            switch.within_ms,
            names.len()
        );
        for name in names {
            let stopped =
                self.stop_worker(&name, switch.timeout_ms, None, AfterStop::Fence, now, out);
            if let Some((worker, Next::Removed)) = stopped {
                self.notify_watchers(&name, Notice::Stopped(StopCause::Fenced), out);
                self.forget(&worker, now, out);
            }
        }
        self.check_shutdown_complete(now, out);
    }

    fn fenced_workers(&self) -> Vec<Rc<str>> {
        self.registry
            .iter()
            .filter(|(_, entry)| entry.worker.spec.fenced)
            .map(|(name, _)| name.clone())
            .collect()
    }
}
