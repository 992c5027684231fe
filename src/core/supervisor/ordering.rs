//! Start ordering: a worker starts only once every worker it is `after` is running and
//! ready (until then it is `Blocked`, shown `waiting`); a worker whose template says
//! `restart_with = "dependents"` takes the workers after it along when it restarts
//! (OTP's `rest_for_one`); a shutdown stops dependents before what they are after; and
//! the boot is complete — `READY=1` to systemd — once every boot child is running and
//! ready.
//!
//! The registry keeps, by name, the workers that are after it, so each of these costs
//! the number of dependents, never the number of workers.

use super::replies::{self, Notice, Refusal};
use super::worker::{AfterStop, Event, Next, SpawnPurpose, State, Worker};
use super::{Action, Phase, Supervisor, Time};
use crate::core::spec::{ChildSpec, RestartWith, Template};
use log::{error, info};
use std::collections::HashMap;
use std::rc::Rc;

/// How far the boot is: `READY=1` is sent once every boot child handed over (`fed`) was
/// running and ready at least once, or left for good.
#[derive(Debug, Default)]
pub(super) struct Boot {
    fed: bool,
    /// Boot children not running and ready yet.
    pending: std::collections::HashSet<Rc<str>>,
    complete: bool,
}

impl Boot {
    pub(super) fn complete(&self) -> bool {
        self.complete
    }

    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// A worker that holds a process, or is about to (so a shutdown waits for it).
fn has_process(state: &State) -> bool {
    match state {
        State::Spawning { .. }
        | State::Starting { .. }
        | State::Running { .. }
        | State::Aborting { .. }
        | State::Stopping { .. }
        | State::Draining { .. } => true,
        State::Blocked { .. } | State::Waiting { .. } | State::Failed { .. } => false,
    }
}

/// A live worker not being stopped yet.
fn is_up(state: &State) -> bool {
    matches!(
        state,
        State::Starting { .. } | State::Running { .. } | State::Aborting { .. }
    )
}

impl Supervisor {
    /// Whether every worker `spec` is after is running and ready.
    pub(super) fn deps_ready(&self, spec: &ChildSpec) -> bool {
        spec.after.iter().all(|dependency| {
            matches!(
                self.registry.get(dependency).map(|e| e.state()),
                Some(State::Running { .. })
            )
        })
    }

    /// The names `spec` is after that are not registered at all.
    pub(super) fn unregistered_deps(&self, spec: &ChildSpec) -> Vec<String> {
        spec.after
            .iter()
            .filter(|dependency| !self.registry.contains(dependency))
            .map(|dependency| dependency.to_string())
            .collect()
    }

    /// Register `worker` waiting for what it is after; it is spawned for `purpose` once
    /// they are all running and ready. A client waiting for it waits at most the
    /// worker's `ready_timeout_ms`.
    pub(super) fn block(
        &mut self,
        worker: Worker,
        purpose: SpawnPurpose,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let name = worker.spec.name.clone();
        let on = replies::not_ready(&self.registry, &worker.spec.after);
        info!("{name}: waits for {} before it starts", on.join(", "));
        let timeout_ms = worker.spec.template.ready_timeout_ms;
        let until = purpose
            .client()
            .map(|_| now.mono_us.saturating_add(timeout_ms.saturating_mul(1000)));
        self.registry.put(worker, State::Blocked { purpose, until });
        self.notify_watchers(&name, Notice::Waiting { on }, out);
    }

    /// `name` became running and ready: start the workers that waited only for it, and
    /// count it for the boot.
    pub(super) fn on_running(&mut self, name: &Rc<str>, now: Time, out: &mut Vec<Action>) {
        self.boot_done_with(name, out);
        if !self.registry.has_dependents(name) || self.is_shutting_down() {
            return;
        }
        for dependent in self.registry.dependents_of(name) {
            let ready = match self.registry.get(&dependent) {
                Some(entry) if matches!(entry.state(), State::Blocked { .. }) => {
                    self.deps_ready(&entry.worker.spec)
                }
                _ => false,
            };
            if !ready {
                continue;
            }
            match self.step(&dependent, Event::DepsReady, now, out) {
                Some((mut worker, Next::Spawn(purpose))) => {
                    info!("{dependent}: what it is after is ready; starting it");
                    self.spec_for_restart_of(&mut worker, purpose);
                    self.spawn(worker, purpose, now, out);
                }
                Some((worker, next)) => {
                    debug_assert!(false, "{dependent}: DepsReady led to {next:?}");
                    self.registry.put(worker, State::Failed { held: false });
                }
                None => {}
            }
        }
    }

    /// A restart picks up the template as the config has it now; a first start keeps
    /// the spec it was given.
    fn spec_for_restart_of(&self, worker: &mut Worker, purpose: SpawnPurpose) {
        if purpose == SpawnPurpose::Restart {
            self.spec_for_restart(worker);
        }
    }

    /// `name` (of `template`) is restarting: when its template says `restart_with =
    /// "dependents"`, every live worker after it is stopped, to be restarted by the
    /// restart rule — which puts it `waiting` until `name` is running and ready again.
    pub(super) fn restart_dependents(
        &mut self,
        name: &Rc<str>,
        template: &Template,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if template.restart_with != RestartWith::Dependents || self.is_shutting_down() {
            return;
        }
        // Given up on (or gone): its dependents are left as they are.
        let restarting = self
            .registry
            .get(name)
            .is_some_and(|e| !matches!(e.state(), State::Failed { .. } | State::Stopping { .. }));
        if !restarting {
            return;
        }
        for dependent in self.registry.dependents_of(name) {
            let up = self
                .registry
                .get(&dependent)
                .is_some_and(|e| is_up(e.state()));
            if up {
                info!("{dependent}: {name} restarts (restart_with = \"dependents\"): stopping it to restart it after {name} is ready again");
                let then = AfterStop::Cascade {
                    after: name.clone(),
                };
                self.stop_worker(&dependent, None, None, then, now, out);
            }
        }
    }

    /// The boot child `name` is running and ready, or gone: the boot waits no more for
    /// it.
    pub(super) fn boot_done_with(&mut self, name: &str, out: &mut Vec<Action>) {
        if self.boot.pending.remove(name) {
            self.check_boot_complete(out);
        }
    }

    /// A boot child was handed over: the boot is complete once it is ready.
    pub(super) fn boot_child_started(&mut self, name: &Rc<str>) {
        if !self.boot.complete {
            self.boot.pending.insert(name.clone());
        }
    }

    /// Every boot child was handed over.
    pub(super) fn on_boot_fed(&mut self, out: &mut Vec<Action>) {
        self.boot.fed = true;
        // Those that were ready at once were counted already.
        let pending: Vec<Rc<str>> = self.boot.pending.iter().cloned().collect();
        for name in pending {
            let running = matches!(
                self.registry.get(&name).map(|e| e.state()),
                Some(State::Running { .. }) | None
            );
            if running {
                self.boot.pending.remove(&name);
            }
        }
        self.check_boot_complete(out);
    }

    fn check_boot_complete(&mut self, out: &mut Vec<Action>) {
        if self.boot.fed
            && !self.boot.complete
            && self.boot.pending.is_empty()
            && !self.is_shutting_down()
        {
            self.boot.complete = true;
            info!("every boot child is running and ready");
            out.push(Action::BootReady);
        }
    }

    /// A critical worker is given up on or ended for good: shut down, exiting `code`.
    pub(super) fn critical_gone(
        &mut self,
        worker: &Worker,
        code: i32,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            return;
        }
        let name = &worker.spec.name;
        error!("{name}: a critical worker ended for good: the daemon shuts down and exits with its status {code}");
        self.begin_shutdown(code, None, now, out);
    }

    // ----- the order of a shutdown ---------------------------------------------------

    /// At the start of a shutdown: how many live workers are after each live worker.
    /// Those with a count are held back; the others are stopped now.
    pub(super) fn live_dependents(&self) -> HashMap<Rc<str>, usize> {
        let mut counts: HashMap<Rc<str>, usize> = HashMap::new();
        for (_, entry) in self.registry.iter() {
            if entry.worker.spec.after.is_empty() || !has_process(entry.state()) {
                continue;
            }
            for dependency in &entry.worker.spec.after {
                if self
                    .registry
                    .get(dependency)
                    .is_some_and(|d| is_up(d.state()))
                {
                    *counts.entry(dependency.clone()).or_default() += 1;
                }
            }
        }
        counts
    }

    /// During a shutdown, `worker` is gone: what it was after may be stopped now, once
    /// nothing else live is after it.
    pub(super) fn stop_what_it_was_after(
        &mut self,
        worker: &Worker,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let mut free = Vec::new();
        if let Phase::ShuttingDown { held_back, .. } = &mut self.phase {
            for dependency in &worker.spec.after {
                if let Some(count) = held_back.get_mut(dependency) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        held_back.remove(dependency);
                        free.push(dependency.clone());
                    }
                }
            }
        }
        for name in free {
            if self.registry.get(&name).is_some_and(|e| is_up(e.state())) {
                info!("{name}: nothing running is after it any more; stopping it");
                self.stop_worker(&name, None, None, AfterStop::Remove, now, out);
            }
        }
    }

    /// A second shutdown signal: what was held back is stopped now, with no grace.
    pub(super) fn stop_held_back_now(&mut self, now: Time, out: &mut Vec<Action>) {
        let held: Vec<Rc<str>> = match &mut self.phase {
            Phase::ShuttingDown { held_back, .. } => held_back.drain().map(|(n, _)| n).collect(),
            _ => Vec::new(),
        };
        for name in held {
            if self.registry.get(&name).is_some_and(|e| is_up(e.state())) {
                self.stop_worker(&name, Some(0), None, AfterStop::Remove, now, out);
            }
        }
    }

    /// `restart` of a worker that waits for its dependencies is refused: it starts by
    /// itself once they are ready.
    pub(super) fn blocked_refusal(&self, name: &str) -> Refusal {
        Refusal::Blocked {
            name: name.to_string(),
        }
    }
}
