//! Readiness: `ready = "notify"` workers report `READY=1` (and `STATUS=`) over
//! sd_notify; `wait_ready` requests wait for it.

use super::*;

impl Supervisor {
    pub(super) fn wait_ready(
        &mut self,
        from: ReplyTo,
        name: &str,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let reply = match self.workers.get_mut(name) {
            None => not_found(name),
            Some(worker) => match worker.state {
                State::Running {
                    pid, ready: true, ..
                } => Reply {
                    name: Some(name.to_string()),
                    pid: Some(pid),
                    state: Some(WorkerStateName::Running),
                    ..Reply::ok()
                },
                State::Running { ready: false, .. } => {
                    worker.ready_waiters.push(from);
                    return;
                }
                _ => Reply::error(
                    ErrorKind::NotReady,
                    format!(
                        "{name} has no running process ({})",
                        worker.state.name().as_str()
                    ),
                ),
            },
        };
        self.reply(from, reply, now, out);
    }

    /// A notification from a worker (or from any process of its group).
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
            .by_pid
            .get(&pid)
            .or_else(|| group.and_then(|g| self.by_pid.get(&g)))
            .cloned();
        let Some(name) = owner else {
            debug!("ignored an sd_notify message from pid {pid}, which is not a worker");
            return;
        };
        let Some(worker) = self.workers.get_mut(&name) else {
            return;
        };
        if let Some(status) = status {
            worker.status = Some(status);
        }
        if !ready {
            return;
        }
        if let State::Running {
            pid: main_pid,
            ready: ready_flag @ false,
            ready_by,
            ..
        } = &mut worker.state
        {
            *ready_flag = true;
            if let Some(at) = ready_by.take() {
                self.deadlines.remove(&(at, name.clone()));
            }
            let main_pid = *main_pid;
            info!("{name}: ready (pid {main_pid})");
            out.push(Action::Event(Event::Ready {
                name: name.to_string(),
                pid: main_pid,
            }));
            for to in std::mem::take(&mut worker.ready_waiters) {
                let reply = Reply {
                    name: Some(name.to_string()),
                    pid: Some(main_pid),
                    state: Some(WorkerStateName::Running),
                    ..Reply::ok()
                };
                self.reply(to, reply, now, out);
            }
        }
    }
}
