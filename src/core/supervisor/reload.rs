//! Reload: apply a re-read config as a difference.
//!
//! `[[children]]` are compared by name with the registered boot children: new ones
//! start, removed ones stop, ones whose effective spec changed (argv, or any template
//! setting) restart with the new spec, and unchanged ones are not touched. Dynamic
//! workers keep running on their old spec. Templates and limits are replaced for
//! future starts. A stop in progress is never undone.
//!
//! A changed template that says `on_reload = "rolling"` is applied as one rolling
//! restart instead: its changed boot children and its running dynamic workers are
//! restarted one at a time, each once the one before is ready again.

use super::replies::{Answer, Notice, Refusal, ReloadSummary, SkipReason, Skipped, StopCause};
use super::rollout::Rollout;
use super::worker::{AfterStop, Ending, Next, SpawnPurpose, State, StopOrder, Worker};
use super::{Action, ReloadConfig, ReplyTo, Supervisor, Time};
use crate::core::spec::{BootChild, ChildSpec, OnReload};
use log::{error, info, warn};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

/// The workers a reload restarts one at a time, in order.
type RollingQueue = VecDeque<(Rc<str>, Option<Rc<ChildSpec>>)>;

impl Supervisor {
    pub(super) fn reload(
        &mut self,
        from: Option<ReplyTo>,
        config: Result<Box<ReloadConfig>, String>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let config = match config {
            Ok(config) if !self.is_shutting_down() => config,
            Ok(_) => return self.answer_opt(from, Err(Refusal::ShuttingDown), now, out),
            Err(message) => {
                error!("reload refused, still running on the previous config: {message}");
                let refusal = Refusal::InvalidConfig(message);
                return self.answer_opt(from, Err(refusal), now, out);
            }
        };
        let ReloadConfig {
            limits,
            templates,
            children,
        } = *config;
        self.intensity
            .set_limits(limits.max_restarts, limits.max_seconds);
        self.limits = limits;
        // Changed templates that roll: their running dynamic workers roll too.
        let rolling: HashSet<String> = templates
            .values()
            .filter(|new| new.on_reload == OnReload::Rolling)
            .filter(|new| {
                self.templates
                    .get(&new.name)
                    .is_some_and(|old| !old.same_effect(new))
            })
            .map(|t| t.name.clone())
            .collect();
        self.templates = templates;
        let mut summary = ReloadSummary::default();
        let mut wanted: HashSet<String> = HashSet::new();
        let mut queue = RollingQueue::new();
        for child in children {
            wanted.insert(child.name.clone());
            self.reload_child(child, &mut summary, &mut queue, now, out);
        }
        if !rolling.is_empty() {
            let mut dynamic: Vec<Rc<str>> = self
                .registry
                .iter()
                .filter(|(_, e)| e.worker.dynamic && rolling.contains(&e.worker.spec.template.name))
                .filter(|(_, e)| {
                    matches!(e.state(), State::Starting { .. } | State::Running { .. })
                })
                .map(|(name, _)| name.clone())
                .collect();
            dynamic.sort_unstable();
            for name in dynamic {
                summary.restarted.push(name.to_string());
                queue.push_back((name, None));
            }
        }
        if !queue.is_empty() {
            info!(
                "reload: restarting {} worker(s) one at a time (on_reload = \"rolling\")",
                queue.len()
            );
            self.rollouts.push(Rollout::new(None, queue, None));
        }
        let removed: Vec<Rc<str>> = self
            .registry
            .iter()
            .filter(|(name, e)| !e.worker.dynamic && !wanted.contains(&***name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            summary.stopped.push(name.to_string());
            self.reload_remove(&name, now, out);
        }
        for list in [
            &mut summary.started,
            &mut summary.stopped,
            &mut summary.restarted,
            &mut summary.unchanged,
        ] {
            list.sort_unstable();
        }
        info!(
            "config reloaded: {} started, {} stopped, {} restarted, {} unchanged, {} skipped",
            summary.started.len(),
            summary.stopped.len(),
            summary.restarted.len(),
            summary.unchanged.len(),
            summary.skipped.len()
        );
        for skipped in &summary.skipped {
            warn!("reload skipped {skipped}");
        }
        self.answer_opt(from, Ok(Answer::Reloaded(summary)), now, out);
    }

    /// One `[[children]]` entry of the new config.
    fn reload_child(
        &mut self,
        child: BootChild,
        summary: &mut ReloadSummary,
        queue: &mut RollingQueue,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(template) = self.templates.get(&child.template).cloned() else {
            debug_assert!(
                false,
                "the config names an unknown template for {}",
                child.name
            );
            return;
        };
        let skip = |summary: &mut ReloadSummary, why| {
            summary.skipped.push(Skipped {
                name: child.name.clone(),
                why,
            })
        };
        let spec = match ChildSpec::for_boot_child(&child, template) {
            Ok(spec) => Rc::new(spec),
            Err(message) => return skip(summary, SkipReason::BadSpec(message)),
        };
        let Some(entry) = self.registry.get(&child.name) else {
            if self
                .limits
                .max_children
                .is_some_and(|max| self.registry.len() >= max)
            {
                return skip(summary, SkipReason::MaxChildren);
            }
            summary.started.push(child.name.clone());
            let worker = Worker::new(spec, false, self.limits.max_seconds);
            let purpose = SpawnPurpose::Start {
                reply_to: ReplyTo::Reload,
            };
            return self.spawn(worker, purpose, now, out);
        };
        if entry.worker.dynamic {
            return skip(summary, SkipReason::HeldByDynamic);
        }
        let old = &entry.worker.spec;
        if old.argv == spec.argv
            && old.after == spec.after
            && old.critical == spec.critical
            && old.template.same_effect(&spec.template)
        {
            return summary.unchanged.push(child.name);
        }
        let key = entry.worker.spec.name.clone();
        match entry.state() {
            State::Stopping {
                order:
                    StopOrder {
                        then: AfterStop::Remove | AfterStop::Fence,
                        ..
                    },
                ..
            }
            | State::Draining {
                ending:
                    Ending::Stopped {
                        order:
                            StopOrder {
                                then: AfterStop::Remove | AfterStop::Fence,
                                ..
                            },
                        ..
                    },
                ..
            } => {
                // A stop in progress wins: the child stays stopped.
                skip(summary, SkipReason::BeingStopped)
            }
            State::Waiting { .. } | State::Failed { .. } => {
                summary.restarted.push(child.name);
                self.respawn_now(&key, spec, None, now, out);
            }
            &State::Blocked { purpose, .. } => {
                // Not started yet: it starts with the new spec (and its new `after`).
                summary.restarted.push(child.name);
                if let Some((mut worker, _)) = self.registry.take(&key) {
                    worker.spec = spec;
                    self.spawn(worker, purpose, now, out);
                }
            }
            State::Starting { .. } | State::Running { .. }
                if spec.template.on_reload == OnReload::Rolling =>
            {
                summary.restarted.push(child.name);
                queue.push_back((key, Some(spec)));
            }
            // Live: stop, then start with the new spec. A restart in progress restarts
            // with the new spec instead, and still answers whoever asked. (A spawn in
            // flight cannot be seen here: it is answered before any other input.)
            State::Starting { .. }
            | State::Running { .. }
            | State::Aborting { .. }
            | State::Stopping {
                order:
                    StopOrder {
                        then: AfterStop::Cascade { .. },
                        ..
                    },
                ..
            }
            | State::Stopping {
                order:
                    StopOrder {
                        then: AfterStop::Restart { .. },
                        ..
                    },
                ..
            }
            | State::Draining { .. }
            | State::Spawning { .. } => {
                summary.restarted.push(child.name);
                let then = AfterStop::Restart {
                    spec,
                    reply_to: None,
                };
                self.stop_worker(&key, None, None, then, now, out);
            }
        }
    }

    /// A boot child the new config no longer has.
    fn reload_remove(&mut self, name: &Rc<str>, now: Time, out: &mut Vec<Action>) {
        if let Some((worker, Next::Removed)) =
            self.stop_worker(name, None, None, AfterStop::Remove, now, out)
        {
            self.notify_watchers(name, Notice::Stopped(StopCause::RemovedFromConfig), out);
            self.forget(&worker, now, out);
        }
    }
}
