//! Health checks and `health`: a running worker's check results (the transition table
//! decides when the next runs and when too many failures kill it), and the answer to
//! `health` — are the boot children and the critical workers running, ready and healthy?

use super::replies::{self, Answer, HealthSummary, Whereabouts};
use super::worker::{Event, ProbeResult, State};
use super::{Action, InstanceId, ReplyTo, Supervisor, Time};
use log::debug;

/// At most so many problems are listed in a `health` answer.
const MAX_PROBLEMS: usize = 20;

impl Supervisor {
    /// A health check of `name`'s instance ended.
    pub(super) fn on_probe_done(
        &mut self,
        name: &str,
        instance: InstanceId,
        ok: bool,
        message: String,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let current = match self.registry.get(name) {
            Some(entry) => match entry.state() {
                State::Running { proc, .. } if proc.instance == instance => {
                    Some(entry.worker.spec.name.clone())
                }
                _ => None,
            },
            None => None,
        };
        let Some(key) = current else {
            debug!("{name}: a health check of instance #{instance}, which is gone, ended");
            return;
        };
        if let Some(worker) = self.registry.worker_mut(&key) {
            worker.last_probe = Some(ProbeResult {
                ok,
                at_ms: now.wall_ms,
                message: message.clone(),
            });
        }
        self.step(&key, Event::ProbeDone { ok, message }, now, out);
    }

    /// `health`: every boot child and every critical worker running and ready (and
    /// passing its health check), the boot complete, no shutdown under way. Visits only
    /// those workers.
    pub(super) fn health(&self, from: ReplyTo, out: &mut Vec<Action>) {
        let mut problems = Vec::new();
        if self.is_shutting_down() {
            problems.push("the daemon is shutting down".to_string());
        }
        let mut checked = 0;
        for (name, entry) in self.registry.vital() {
            checked += 1;
            let worker = &entry.worker;
            let state = entry.state();
            let problem = match state {
                State::Running { live, .. } => match (live.probe, &worker.last_probe) {
                    (Some(probe), Some(last)) if probe.failures > 0 => Some(format!(
                        "unhealthy ({} failed check{} in a row: {})",
                        probe.failures,
                        if probe.failures == 1 { "" } else { "s" },
                        last.message
                    )),
                    _ => None,
                },
                State::Blocked { .. } => Some(format!(
                    "waiting for {}",
                    replies::not_ready(&self.registry, &worker.spec.after).join(", ")
                )),
                state => {
                    let what = Whereabouts::of(state).state_str();
                    Some(match &worker.last_exit {
                        Some(last) if !matches!(state, State::Starting { .. }) => {
                            format!("{what} (last exit: {})", replies::end_reason(&last.cause))
                        }
                        _ => what.to_string(),
                    })
                }
            };
            if let Some(problem) = problem {
                if problems.len() < MAX_PROBLEMS {
                    problems.push(format!("{name}: {problem}"));
                }
            }
        }
        if !self.boot.complete() && problems.is_empty() {
            let pending = self.boot.pending();
            problems.push(match pending {
                0 => "boot: not complete yet".to_string(),
                n => format!("boot: {n} boot children not ready yet"),
            });
        }
        let summary = HealthSummary {
            healthy: problems.is_empty(),
            checked,
            problems,
        };
        out.push(Action::Reply {
            to: from,
            reply: Box::new(replies::reply(Ok(Answer::Health(summary)))),
        });
    }
}
