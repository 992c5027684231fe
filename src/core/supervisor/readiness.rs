//! Notifications from workers (sd_notify over the notify socket): `READY=1` moves a
//! starting worker to running (the transition table answers its `wait_ready`ers);
//! `STATUS=` is kept for `list`; `WATCHDOG=1`, `WATCHDOG=trigger` and `WATCHDOG_USEC=`
//! feed its watchdog.

use super::worker::{Event, WatchdogNote};
use super::{Action, Notification, Supervisor, Time};
use log::debug;

impl Supervisor {
    /// A notification from a worker's main process or any process of its group.
    pub(super) fn on_notify(
        &mut self,
        pid: i32,
        group: Option<i32>,
        note: Notification,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let owner = self
            .registry
            .name_of_pid(pid)
            .or_else(|| group.and_then(|g| self.registry.name_of_pid(g)));
        let Some(name) = owner else {
            debug!("ignored an sd_notify message from pid {pid}, which is not a worker");
            return;
        };
        if let (Some(status), Some(worker)) = (note.status, self.registry.worker_mut(&name)) {
            worker.status = Some(status);
        }
        // In the order systemd applies them: the new interval, readiness, then the
        // ping (a READY=1 and a WATCHDOG=1 in one message start the watchdog afresh).
        if let Some(usec) = note.watchdog_usec {
            self.step_if_live(
                &name,
                Event::Watchdog(WatchdogNote::Interval(usec)),
                now,
                out,
            );
        }
        if note.ready {
            self.step_if_live(&name, Event::Ready, now, out);
        }
        if note.watchdog {
            self.step_if_live(&name, Event::Watchdog(WatchdogNote::Ping), now, out);
        }
        if note.watchdog_trigger {
            self.step_if_live(&name, Event::Watchdog(WatchdogNote::Trigger), now, out);
        }
    }

    /// Feed `event` if `name` still has a live process (an earlier part of the same
    /// message may have ended it).
    fn step_if_live(
        &mut self,
        name: &std::rc::Rc<str>,
        event: Event,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let live = self
            .registry
            .get(name)
            .is_some_and(|e| e.state().pid().is_some());
        if live {
            self.step(name, event, now, out);
        }
    }
}
