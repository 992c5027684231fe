//! Stopping everything: a `shutdown` request, SIGTERM/SIGINT, a failed boot child or
//! an escalation. Live workers are stopped with their template's `shutdown_ms`;
//! workers with no process leave at once (and stay in the state file, so a daemon that
//! comes back starts them again); a second signal SIGKILLs what is still stopping. Once
//! the registry is empty, the waiters are answered and the daemon exits. A worker that
//! live workers are `after` is held back until they are gone (dependents stop first).

use super::replies::{self, Answer, Refusal};
use super::worker::{AfterStop, Event, State};
use super::{Action, Phase, ReplyTo, Supervisor, Time};
use crate::signal::Signal;
use log::{info, warn};

impl Supervisor {
    pub(super) fn on_shutdown_signal(&mut self, signal: Signal, now: Time, out: &mut Vec<Action>) {
        if self.is_shutting_down() {
            warn!("{signal} received again during shutdown: killing every worker now");
            self.stop_held_back_now(now, out);
            for name in self.registry.names() {
                let state = self.registry.get(&name).map(|e| e.state());
                if let Some(
                    State::Stopping { .. } | State::Draining { .. } | State::Aborting { .. },
                ) = state
                {
                    self.step(&name, Event::KillNow, now, out);
                }
            }
        } else {
            info!("{signal} received: stopping every worker");
            self.begin_shutdown(0, None, now, out);
        }
    }

    pub(super) fn begin_shutdown(
        &mut self,
        code: i32,
        waiter: Option<ReplyTo>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            return;
        }
        self.phase = Phase::ShuttingDown {
            code,
            waiters: waiter.into_iter().collect(),
            reports: Vec::new(),
            held_back: Default::default(),
        };
        out.push(Action::Event(replies::shutdown_event()));
        let names = self.registry.names();
        // Workers with no process leave at once. Not recorded as removed in the state
        // file: a daemon that comes back after this shutdown starts them again.
        for name in &names {
            match self.registry.get(name).map(|e| e.state()) {
                Some(&State::Blocked { purpose, .. }) => {
                    self.registry.take(name);
                    if let Some(to) = purpose.client() {
                        self.answer(to, Err(Refusal::ShuttingDown), now, out);
                    }
                }
                Some(State::Waiting { .. } | State::Failed { .. }) => {
                    self.registry.take(name);
                }
                _ => {}
            }
        }
        // Dependents first: a worker that live workers are after waits for them.
        let held_back = self.live_dependents();
        for name in &names {
            match self.registry.get(name).map(|e| e.state()) {
                Some(State::Starting { .. } | State::Running { .. } | State::Aborting { .. }) => {
                    if held_back.contains_key(name) {
                        info!("{name}: stopped once the workers after it are gone");
                        continue;
                    }
                    self.stop_worker(name, None, None, AfterStop::Remove, now, out);
                }
                // Already stopping or draining; a spawn in flight is stopped once it
                // answers. Those without a process left above.
                Some(
                    State::Stopping { .. }
                    | State::Draining { .. }
                    | State::Spawning { .. }
                    | State::Blocked { .. }
                    | State::Waiting { .. }
                    | State::Failed { .. },
                )
                | None => {}
            }
        }
        if let Phase::ShuttingDown { held_back: h, .. } = &mut self.phase {
            *h = held_back;
        }
        self.check_shutdown_complete(now, out);
    }

    /// Once a shutdown has no worker left: answer its waiters and exit.
    pub(super) fn check_shutdown_complete(&mut self, now: Time, out: &mut Vec<Action>) {
        if !self.registry.is_empty() || !matches!(self.phase, Phase::ShuttingDown { .. }) {
            return;
        }
        let Phase::ShuttingDown {
            code,
            waiters,
            mut reports,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Exited)
        else {
            return;
        };
        reports.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        info!(
            "every worker is stopped ({} stopped by the shutdown)",
            reports.len()
        );
        for to in waiters {
            self.answer(to, Ok(Answer::Shutdown(reports.clone())), now, out);
        }
        out.push(Action::Exit { code });
    }
}
