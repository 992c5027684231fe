//! Rolling restarts: `restart` with `rolling` (a name, a template's running instances,
//! or every running worker), and a reload of a template that says `on_reload =
//! "rolling"`. One worker at a time is stopped and started again; the next begins only
//! once it is running and ready. A worker that does not get there stops the roll, and
//! the rest are left as they are.
//!
//! A roll in progress is looked at after every input (`Supervisor::handle`), so it
//! follows its current worker through whatever path it takes — stop, drain, spawn,
//! readiness, a crash, a stop by someone else — without hooks in those paths.

use super::replies::{Answer, Refusal, Rollout as Report};
use super::worker::{AfterStop, Ending, State, StopOrder};
use super::{Action, InstanceId, ReplyTo, Select, Supervisor, Time};
use crate::core::spec::ChildSpec;
use log::{info, warn};
use std::collections::VecDeque;
use std::rc::Rc;

/// One rolling restart.
#[derive(Debug)]
pub(super) struct Rollout {
    /// Who asked (none: a reload).
    reply_to: Option<ReplyTo>,
    /// Still to restart, in order; a spec when the roll brings a new one (a reloaded
    /// boot child), else the template as the config has it at the worker's turn.
    queue: VecDeque<(Rc<str>, Option<Rc<ChildSpec>>)>,
    /// The worker being restarted, and the instance it had.
    current: Option<(Rc<str>, InstanceId)>,
    /// The stop's timeout (none: each worker's `shutdown_ms`).
    timeout_ms: Option<u64>,
    report: Report,
}

impl Rollout {
    pub(super) fn new(
        reply_to: Option<ReplyTo>,
        queue: VecDeque<(Rc<str>, Option<Rc<ChildSpec>>)>,
        timeout_ms: Option<u64>,
    ) -> Rollout {
        Rollout {
            reply_to,
            queue,
            current: None,
            timeout_ms,
            report: Report::default(),
        }
    }
}

/// Where the current worker of a roll is.
enum Turn {
    InProgress,
    Ready,
    Failed(String),
}

/// A worker with a live process that is not being stopped: one a roll restarts.
fn is_up(state: &State) -> bool {
    matches!(state, State::Starting { .. } | State::Running { .. })
}

impl Supervisor {
    /// `restart` with `rolling`.
    pub(super) fn begin_rollout(
        &mut self,
        from: ReplyTo,
        select: Select,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            return self.answer(from, Err(Refusal::ShuttingDown), now, out);
        }
        let mut names: Vec<Rc<str>> = match &select {
            Select::Name(name) => match self.registry.get(name) {
                Some(entry) if is_up(entry.state()) => vec![entry.worker.spec.name.clone()],
                Some(_) => {
                    let refusal = Refusal::NotRunning {
                        name: name.to_string(),
                    };
                    return self.answer(from, Err(refusal), now, out);
                }
                None => return self.answer(from, Err(Refusal::not_found(name)), now, out),
            },
            Select::Template(template) => {
                if let Err(refusal) = self.template_for(Some(template)) {
                    return self.answer(from, Err(refusal), now, out);
                }
                self.registry
                    .iter()
                    .filter(|(_, e)| e.worker.spec.template.name == *template && is_up(e.state()))
                    .map(|(name, _)| name.clone())
                    .collect()
            }
            Select::All => self
                .registry
                .iter()
                .filter(|(_, e)| is_up(e.state()))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        names.sort_unstable();
        info!(
            "rolling restart of {} worker(s), one at a time: {}",
            names.len(),
            names.join(", ")
        );
        let queue = names.into_iter().map(|name| (name, None)).collect();
        self.rollouts
            .push(Rollout::new(Some(from), queue, timeout_ms));
    }

    /// Move every roll on as far as it can go now (after each input).
    pub(super) fn advance_rollouts(&mut self, now: Time, out: &mut Vec<Action>) {
        let rollouts = std::mem::take(&mut self.rollouts);
        let mut going = Vec::with_capacity(rollouts.len());
        for mut rollout in rollouts {
            if !self.advance(&mut rollout, now, out) {
                going.push(rollout);
            }
        }
        // A roll begun meanwhile (none is, today) goes after the ones in progress.
        going.append(&mut self.rollouts);
        self.rollouts = going;
    }

    /// Advance one roll; true when it is over (and answered).
    fn advance(&mut self, rollout: &mut Rollout, now: Time, out: &mut Vec<Action>) -> bool {
        loop {
            if let Some((name, old)) = rollout.current.clone() {
                match self.turn(&name, old) {
                    Turn::InProgress => return false,
                    Turn::Ready => {
                        info!("rolling restart: {name} is ready again");
                        rollout.report.restarted.push(name.to_string());
                        rollout.current = None;
                    }
                    Turn::Failed(why) => {
                        rollout.report.not_restarted.push(name.to_string());
                        rollout
                            .report
                            .not_restarted
                            .extend(rollout.queue.drain(..).map(|(n, _)| n.to_string()));
                        warn!("rolling restart stopped at {name}: {why}");
                        let refusal = Refusal::RolloutStopped {
                            name: name.to_string(),
                            why,
                            rollout: std::mem::take(&mut rollout.report),
                        };
                        self.answer_opt(rollout.reply_to, Err(refusal), now, out);
                        return true;
                    }
                }
            }
            if self.is_shutting_down() {
                rollout
                    .report
                    .not_restarted
                    .extend(rollout.queue.drain(..).map(|(n, _)| n.to_string()));
                self.answer_opt(rollout.reply_to, Err(Refusal::ShuttingDown), now, out);
                return true;
            }
            let Some((name, spec)) = rollout.queue.pop_front() else {
                info!(
                    "rolling restart complete: {} restarted",
                    rollout.report.restarted.len()
                );
                let report = std::mem::take(&mut rollout.report);
                self.answer_opt(rollout.reply_to, Ok(Answer::RolledOut(report)), now, out);
                return true;
            };
            let Some(entry) = self.registry.get(&name) else {
                rollout.report.not_restarted.push(name.to_string());
                continue;
            };
            let (Some(proc), true) = (entry.state().proc(), is_up(entry.state())) else {
                info!("rolling restart: {name} has no running process now; skipped");
                rollout.report.not_restarted.push(name.to_string());
                continue;
            };
            let old = proc.instance;
            let spec = spec.unwrap_or_else(|| self.refreshed_spec(&entry.worker.spec));
            info!("rolling restart: restarting {name}");
            let then = AfterStop::Restart {
                spec,
                reply_to: None,
            };
            self.stop_worker(&name, rollout.timeout_ms, None, then, now, out);
            rollout.current = Some((name, old));
        }
    }

    /// Where the worker a roll restarts is, given the instance it had.
    fn turn(&self, name: &str, old: InstanceId) -> Turn {
        let Some(entry) = self.registry.get(name) else {
            return Turn::Failed(
                "it is no longer registered (it was stopped, or its restart could not be spawned)"
                    .to_string(),
            );
        };
        let restarting = |order: &StopOrder| matches!(order.then, AfterStop::Restart { .. });
        match entry.state() {
            State::Running { proc, .. } if proc.instance != old => Turn::Ready,
            State::Running { .. } => Turn::Failed("it was not restarted".to_string()),
            State::Spawning { .. }
            | State::Blocked { .. }
            | State::Starting {
                ready_by: Some(_), ..
            } => Turn::InProgress,
            State::Stopping { order, .. }
            | State::Draining {
                ending: Ending::Stopped { order, .. },
                ..
            } if restarting(order) => Turn::InProgress,
            State::Stopping { .. }
            | State::Draining {
                ending: Ending::Stopped { .. },
                ..
            } => Turn::Failed("it was stopped during the rolling restart".to_string()),
            State::Starting { ready_by: None, .. } => Turn::Failed(format!(
                "it did not report READY=1 within {} ms",
                entry.worker.spec.template.ready_timeout_ms
            )),
            State::Draining {
                ending: Ending::Exited { exit, .. },
                ..
            } => Turn::Failed(format!("it exited ({exit}) before it was ready")),
            State::Draining {
                ending: Ending::NotStarted { error, .. },
                ..
            } => Turn::Failed(format!("it could not be started: {error}")),
            State::Aborting { why, .. } => Turn::Failed(format!(
                "it was killed by its {} check before it was ready",
                why.as_str()
            )),
            State::Waiting { .. } | State::Failed { .. } => {
                let last = entry
                    .worker
                    .last_exit
                    .as_ref()
                    .map_or_else(String::new, |e| super::replies::end_reason(&e.cause));
                Turn::Failed(format!("it ended ({last}) before it was ready"))
            }
        }
    }
}
