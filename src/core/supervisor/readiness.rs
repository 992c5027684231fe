//! Notifications from workers (sd_notify over the notify socket): `READY=1` moves a
//! starting worker to running (the transition table answers its `wait_ready`ers);
//! `STATUS=` is kept for `list`.

use super::worker::Event;
use super::{Action, Supervisor, Time};
use log::debug;

impl Supervisor {
    /// A notification from a worker's main process or any process of its group.
    pub(super) fn on_notify(
        &mut self,
        pid: i32,
        group: Option<i32>,
        ready: bool,
        status: Option<String>,
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
        if let (Some(status), Some(worker)) = (status, self.registry.worker_mut(&name)) {
            worker.status = Some(status);
        }
        if ready {
            self.step(&name, Event::Ready, now, out);
        }
    }
}
