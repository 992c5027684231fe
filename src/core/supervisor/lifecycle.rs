//! What follows when a process comes, ends or is due: spawn results, exits and
//! deadlines. Here the restart rule (`policy::decide`), the backoff, a worker's own
//! limit and the supervisor-wide intensity are applied, and escalation begins.

use super::replies::{Answer, Notice, Refusal, StopCause, StopOutcome};
use super::worker::{
    window_for, AfterStop, EndCause, Ending, Event, LastExit, Liveness, Next, SpawnPurpose, State,
    StopOrder, StopRequest, Worker,
};
use super::{Action, Phase, ReplyTo, Supervisor, Time};
use crate::core::exit::Exit;
use crate::core::intensity::Verdict;
use crate::core::policy::{decide, CleanExits, Decision};
use crate::core::spec::{ChildSpec, OnLimit};
use log::{debug, error, info, warn};
use std::rc::Rc;

/// What kind of spawn failure `Input::SpawnFailed` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpawnFailure {
    /// For lack of a resource: retried later, never counted.
    pub(super) shortage: bool,
    /// An `env_file` of its template could not be used: a client's `start` or
    /// `restart` is answered `invalid_env_file`; a restart counts it as a failed spawn.
    pub(super) bad_env_file: bool,
}

/// When a restart without backoff is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// In the same turn (after an exit).
    Now,
    /// At a deadline due now, after the events already waiting (after a failed exec,
    /// so a command that can never exec cannot monopolise the loop).
    AfterOtherEvents,
}

/// How many due deadlines one `Input::Tick` handles at most (spawns, kills, timeouts).
pub const TICK_BUDGET: usize = 4;

impl Supervisor {
    /// Register `worker` as being spawned and ask the OS layer to spawn it — or, when
    /// a worker it is `after` is not running and ready, register it `Blocked` until
    /// they all are (a client that asked waits at most its `ready_timeout_ms`).
    pub(super) fn spawn(
        &mut self,
        worker: Worker,
        purpose: SpawnPurpose,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if !worker.spec.after.is_empty() && !self.deps_ready(&worker.spec) {
            return self.block(worker, purpose, now, out);
        }
        let instance = self.new_instance();
        let spec = worker.spec.clone();
        self.registry
            .put(worker, State::Spawning { instance, purpose });
        out.push(Action::Spawn { instance, spec });
    }

    /// Start `worker` again at once with `spec` (an operator action: the backoff and
    /// its own window start afresh, and nothing is counted).
    pub(super) fn respawn(
        &mut self,
        mut worker: Worker,
        spec: Rc<ChildSpec>,
        reply_to: Option<ReplyTo>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        worker.consecutive = 0;
        worker.window = window_for(&spec.template, self.limits.max_seconds);
        worker.spec = spec;
        self.spawn(worker, SpawnPurpose::Operator { reply_to }, now, out);
    }

    /// `respawn` for a registered worker with no process (`Waiting`, `Failed`).
    pub(super) fn respawn_now(
        &mut self,
        name: &str,
        spec: Rc<ChildSpec>,
        reply_to: Option<ReplyTo>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some((worker, state)) = self.registry.take(name) else {
            debug_assert!(false, "{name} is not registered");
            return;
        };
        debug_assert!(
            matches!(state, State::Waiting { .. } | State::Failed { .. }),
            "{name} has a process or a spawn: {state:?}"
        );
        self.respawn(worker, spec, reply_to, now, out);
    }

    /// A worker has left the registry: if the state file lists it, it must be
    /// written again (except during a shutdown, after which the file should bring
    /// every dynamic worker back); the boot waits no more for it; a shutdown may now
    /// stop what it was after.
    pub(super) fn forget(&mut self, worker: &Worker, now: Time, out: &mut Vec<Action>) {
        if self.is_shutting_down() {
            self.stop_what_it_was_after(worker, now, out);
        } else {
            self.unrecord(&worker.spec.name, out);
        }
        self.boot_done_with(&worker.spec.name, out);
    }

    pub(super) fn on_spawned(&mut self, instance: u64, pid: i32, now: Time, out: &mut Vec<Action>) {
        let Some(name) = self.registry.name_of_instance(instance) else {
            debug_assert!(false, "spawn #{instance} was never asked for");
            return;
        };
        let Some(&State::Spawning { purpose, .. }) = self.registry.get(&name).map(|e| e.state())
        else {
            debug_assert!(
                false,
                "the spawn index points at {name}, which is not spawning"
            );
            return;
        };
        if let Some(worker) = self.registry.worker_mut(&name) {
            worker.shortages = 0;
            // A new process has its own health.
            worker.last_probe = None;
        }
        self.step(&name, Event::Spawned { pid }, now, out);
        match purpose {
            SpawnPurpose::Start { reply_to } => {
                info!("{name}: started, pid {pid}");
                if let Some(entry) = self.registry.get(&name) {
                    let (spec, dynamic) = (entry.worker.spec.clone(), entry.worker.dynamic);
                    self.record(&spec, dynamic, None, out);
                }
                let answer = Ok(Answer::Started {
                    name: name.to_string(),
                    pid,
                });
                self.answer(reply_to, answer, now, out);
            }
            SpawnPurpose::Restart | SpawnPurpose::Operator { .. } => {
                info!("{name}: restarted, pid {pid}");
                if let SpawnPurpose::Operator { reply_to } = purpose {
                    let answer = Ok(Answer::Started {
                        name: name.to_string(),
                        pid,
                    });
                    self.answer_opt(reply_to, answer, now, out);
                }
            }
        }
        if self.is_shutting_down() && self.registry.contains(&name) {
            // The shutdown began while this spawn was in flight: nothing outlives it.
            self.stop_worker(&name, None, None, AfterStop::Remove, now, out);
        }
    }

    /// A spawn failed. `failure.shortage`: for lack of a resource (EMFILE, ENFILE,
    /// EAGAIN, ENOMEM) — not the worker's fault, and likely to pass.
    pub(super) fn on_spawn_failed(
        &mut self,
        instance: u64,
        error: String,
        failure: SpawnFailure,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let shortage = failure.shortage;
        let Some(name) = self.registry.name_of_instance(instance) else {
            debug_assert!(false, "spawn #{instance} was never asked for");
            return;
        };
        let Some((mut worker, Next::Ended(Ending::NotStarted { error, purpose }))) =
            self.step(&name, Event::SpawnFailed { error }, now, out)
        else {
            debug_assert!(false, "a failed spawn of {name} always ends it");
            return;
        };
        match purpose {
            SpawnPurpose::Start { reply_to } => {
                // Never registered as far as anyone could see: nothing to save.
                warn!("{name}: could not be started: {error}");
                let name = name.to_string();
                let refusal = match failure.bad_env_file {
                    true => Refusal::BadEnvFile {
                        name,
                        error,
                        restart: false,
                    },
                    false => Refusal::StartFailed { name, error },
                };
                self.answer(reply_to, Err(refusal), now, out);
                self.forget(&worker, now, out);
                self.check_shutdown_complete(now, out);
            }
            SpawnPurpose::Restart | SpawnPurpose::Operator { .. } if shortage => {
                // Out of fds, processes or memory: try again a little later, without
                // counting it against the worker or the intensity (it is not the
                // worker's fault, and a burst of such failures in one millisecond must
                // not take every worker down). The worker keeps its name meanwhile.
                worker.last_exit = Some(LastExit {
                    cause: EndCause::SpawnFailed(error.clone()),
                    at_ms: now.wall_ms,
                });
                if let SpawnPurpose::Operator { reply_to: Some(to) } = purpose {
                    let refusal = Refusal::RestartFailed {
                        name: name.to_string(),
                        error: format!("{error}; it will be retried"),
                    };
                    self.answer(to, Err(refusal), now, out);
                }
                if self.is_shutting_down() {
                    self.forget(&worker, now, out);
                    return self.check_shutdown_complete(now, out);
                }
                let delay_ms = shortage_delay_ms(worker.shortages);
                worker.shortages = worker.shortages.saturating_add(1);
                warn!("{name}: cannot be spawned for lack of a resource ({error}); retrying in {delay_ms} ms (not counted as a restart)");
                self.notify_watchers(&name, Notice::Restarting { delay_ms }, out);
                self.wait_then_respawn(worker, delay_ms, now);
            }
            SpawnPurpose::Operator { reply_to } => {
                // The old process is gone and the new one cannot start: unregister,
                // and say so to whoever asked.
                warn!("{name}: could not be restarted: {error}");
                let cause = StopCause::RestartNotSpawned(error.clone());
                self.notify_watchers(&name, Notice::Stopped(cause), out);
                self.forget(&worker, now, out);
                let name = name.to_string();
                let refusal = match failure.bad_env_file {
                    true => Refusal::BadEnvFile {
                        name,
                        error,
                        restart: true,
                    },
                    false => Refusal::RestartFailed { name, error },
                };
                self.answer_opt(reply_to, Err(refusal), now, out);
                if worker.spec.critical {
                    self.critical_gone(&worker, 1, now, out);
                }
                self.check_shutdown_complete(now, out);
            }
            SpawnPurpose::Restart => {
                // A failed exec on restart is an abnormal exit: it counts toward the
                // intensity, and the next attempt is due after other events.
                warn!("{name}: restart failed: {error}");
                worker.last_exit = Some(LastExit {
                    cause: EndCause::SpawnFailed(error),
                    at_ms: now.wall_ms,
                });
                self.restart_or_give_up(worker, Retry::AfterOtherEvents, now, out);
            }
        }
    }

    /// Put `worker` back with no process, its next start due in `delay_ms`.
    fn wait_then_respawn(&mut self, worker: Worker, delay_ms: u64, now: Time) {
        let state = State::Waiting {
            retry_at: now.mono_us.saturating_add(delay_ms.saturating_mul(1000)),
            retry_wall_ms: now.wall_ms.saturating_add(delay_ms),
            delay_ms,
        };
        self.registry.put(worker, state);
    }

    /// `waitpid` reported `pid`: if it is a worker's main process, the worker drains
    /// (the OS layer is asked, through `Reaped`, what is left of its group).
    pub(super) fn on_exited(&mut self, pid: i32, exit: Exit, now: Time, out: &mut Vec<Action>) {
        let Some(name) = self.registry.name_of_pid(pid) else {
            debug!("reaped pid {pid} ({exit}), which is not a worker's main process");
            return;
        };
        if let Some((_, next)) = self.step(&name, Event::Exited { exit }, now, out) {
            debug_assert!(false, "{name}: an exit led to {next:?}");
        }
    }

    /// The OS layer's answer to `Reaped` (`left`), or its later word that the group is
    /// empty (`left: false` from a drain already signalled).
    pub(super) fn on_leftovers(
        &mut self,
        instance: u64,
        event: Event,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(name) = self.registry.name_of_instance(instance) else {
            // A drain that already gave up, or finished by another path.
            debug!("leftovers of instance #{instance}, which no worker awaits");
            return;
        };
        match self.step(&name, event, now, out) {
            None => {}
            Some((worker, Next::Ended(ending))) => self.ended(worker, ending, now, out),
            Some((worker, next)) => {
                debug_assert!(false, "{name}: leftovers led to {next:?}");
                self.registry.put(worker, State::Failed { held: false });
            }
        }
    }

    /// A worker's process and its whole group are gone: what follows.
    fn ended(&mut self, worker: Worker, ending: Ending, now: Time, out: &mut Vec<Action>) {
        match ending {
            Ending::Exited {
                pid,
                exit,
                ran_us,
                killed_for,
            } => self.on_ended_on_its_own(worker, pid, exit, ran_us, killed_for, now, out),
            Ending::Stopped {
                pid,
                exit,
                killed,
                order,
            } => self.on_stopped(worker, pid, exit, killed, order, now, out),
            Ending::NotStarted { .. } => {
                debug_assert!(false, "a failed spawn ends in on_spawn_failed");
                self.registry.put(worker, State::Failed { held: false });
            }
        }
    }

    /// A stop dynsup ordered is complete (the process and its group are gone).
    #[allow(clippy::too_many_arguments)]
    fn on_stopped(
        &mut self,
        mut worker: Worker,
        pid: i32,
        exit: Exit,
        killed: bool,
        order: StopOrder,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let name = worker.spec.name.clone();
        worker.last_exit = Some(LastExit {
            cause: EndCause::Stopped,
            at_ms: now.wall_ms,
        });
        let outcome = StopOutcome {
            name: name.to_string(),
            pid: Some(pid),
            exit: Some(exit),
            killed,
        };
        match order.then {
            AfterStop::Restart { spec, reply_to } if !self.is_shutting_down() => {
                let notice = Notice::Exited {
                    pid,
                    exit,
                    to_restart: true,
                    killed_for: None,
                };
                self.notify_watchers(&name, notice, out);
                self.notify_watchers(&name, Notice::Restarting { delay_ms: 0 }, out);
                let template = worker.spec.template.clone();
                self.respawn(worker, spec, reply_to, now, out);
                self.restart_dependents(&name, &template, now, out);
            }
            AfterStop::Cascade { after } if !self.is_shutting_down() => {
                info!("{name}: stopped because {after} restarts; restarting it (counted)");
                let notice = Notice::Exited {
                    pid,
                    exit,
                    to_restart: true,
                    killed_for: None,
                };
                self.notify_watchers(&name, notice, out);
                let template = worker.spec.template.clone();
                self.restart_or_give_up(worker, Retry::Now, now, out);
                self.restart_dependents(&name, &template, now, out);
            }
            AfterStop::Restart { reply_to, .. } => {
                self.finish_stop(&worker, outcome.clone(), false, now, out);
                self.answer_opt(reply_to, Err(Refusal::ShuttingDown), now, out);
            }
            AfterStop::Remove | AfterStop::Cascade { .. } => {
                self.finish_stop(&worker, outcome.clone(), false, now, out)
            }
            AfterStop::Fence => self.finish_stop(&worker, outcome.clone(), true, now, out),
        }
        for to in order.waiters {
            self.answer(to, Ok(Answer::Stopped(outcome.clone())), now, out);
        }
        self.check_shutdown_complete(now, out);
    }

    /// The process ended without dynsup asking (or killed by a liveness check): apply
    /// the restart rule.
    #[allow(clippy::too_many_arguments)]
    fn on_ended_on_its_own(
        &mut self,
        mut worker: Worker,
        pid: i32,
        exit: Exit,
        ran_us: u64,
        killed_for: Option<Liveness>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let name = worker.spec.name.clone();
        let template = worker.spec.template.clone();
        // A new process reports its own status.
        worker.status = None;
        worker.last_exit = Some(LastExit {
            cause: match killed_for {
                Some(why) => EndCause::Killed { why, exit },
                None => EndCause::Exited(exit),
            },
            at_ms: now.wall_ms,
        });
        // A run that lasted long enough resets the backoff curve.
        if ran_us / 1000 >= template.backoff.reset_after_ms {
            worker.consecutive = 0;
        }
        // A process killed for a liveness failure ended abnormally, whatever its status.
        let clean = match killed_for {
            Some(_) => CleanExits {
                codes: &[],
                signals: &[],
            },
            None => CleanExits {
                codes: &template.normal_exit_codes,
                signals: &template.clean_signals,
            },
        };
        let decision = if self.is_shutting_down() {
            Decision::Remove
        } else {
            decide(template.restart, &exit, clean)
        };
        let notice = Notice::Exited {
            pid,
            exit,
            to_restart: false,
            killed_for,
        };
        self.notify_watchers(&name, notice, out);
        let restart = template.restart.as_str();
        match (decision, clean.contains(&exit)) {
            (Decision::Remove, true) => info!("{name}: exited ({exit}); not restarted"),
            (Decision::Remove, false) => {
                warn!("{name}: exited abnormally ({exit}); not restarted ({restart})")
            }
            (Decision::Restart, true) => info!("{name}: exited ({exit}); restarting ({restart})"),
            (Decision::Restart, false) => warn!("{name}: exited abnormally ({exit}); restarting"),
        }
        match decision {
            Decision::Remove => {
                let cause = StopCause::NotRestarted(exit);
                self.notify_watchers(&name, Notice::Stopped(cause), out);
                self.forget(&worker, now, out);
                if worker.spec.critical && !self.is_shutting_down() {
                    self.critical_gone(&worker, exit_status(exit), now, out);
                }
                self.check_shutdown_complete(now, out);
            }
            Decision::Restart => {
                self.restart_or_give_up(worker, Retry::Now, now, out);
                self.restart_dependents(&name, &template, now, out);
            }
        }
    }

    /// The worker is gone for good after a stop (`fenced`: by the dead man's
    /// switch): report it.
    fn finish_stop(
        &mut self,
        worker: &Worker,
        outcome: StopOutcome,
        fenced: bool,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let cause = match (fenced, outcome.killed) {
            (true, _) => StopCause::Fenced,
            (false, true) => StopCause::Killed,
            (false, false) => StopCause::Stopped,
        };
        self.notify_watchers(&worker.spec.name, Notice::Stopped(cause), out);
        self.forget(worker, now, out);
        if let Phase::ShuttingDown { reports, .. } = &mut self.phase {
            reports.push(outcome);
        }
    }

    /// Count a restart against the worker's own limit and/or the supervisor's
    /// intensity, then restart it (at once or after its backoff), give it up, or
    /// escalate. `worker` is out of the registry; this puts it back (or not).
    fn restart_or_give_up(
        &mut self,
        mut worker: Worker,
        retry: Retry,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            self.forget(&worker, now, out);
            return self.check_shutdown_complete(now, out);
        }
        let name = worker.spec.name.clone();
        let template = worker.spec.template.clone();
        // Every restart-worthy exit is an attempt, including one that trips a limit,
        // so `restarts_in_window` never exceeds `restarts`.
        worker.restarts = worker.restarts.saturating_add(1);
        let own = worker.window.record(now.secs());
        if let (Some(limit), Verdict::Exceeded) = (template.limit, own) {
            let count = worker.window.len();
            let seconds = limit.max_seconds;
            match template.on_limit {
                OnLimit::GiveUp => {
                    let reason = worker
                        .last_exit
                        .as_ref()
                        .map_or_else(String::new, |e| super::replies::end_reason(&e.cause));
                    error!("{name}: reached its own restart limit ({count} restarts in {seconds} s); giving up (last exit: {reason})");
                    let last_exit = worker.last_exit.as_ref().map(|e| e.cause.clone());
                    let critical = worker.spec.critical.then(|| last_status(&worker));
                    self.registry.put(worker, State::Failed { held: false });
                    self.notify_watchers(&name, Notice::Failed { last_exit }, out);
                    if let Some(code) = critical {
                        error!("{name}: a critical worker was given up on: the daemon shuts down and exits with its status {code}");
                        self.begin_shutdown(code, None, now, out);
                    }
                    return;
                }
                OnLimit::Escalate => {
                    error!("{name}: reached its own restart limit ({count} restarts in {seconds} s): reached max restart intensity; stopping every worker and exiting with status 1");
                    return self.escalate(worker, now, out);
                }
            }
        }
        if template.on_limit == OnLimit::Escalate
            && self.intensity.record(now.secs()) == Verdict::Exceeded
        {
            error!(
                "{name}: reached max restart intensity ({} restarts in {} s): stopping every worker and exiting with status 1",
                self.intensity.len(),
                self.intensity.max_seconds()
            );
            return self.escalate(worker, now, out);
        }
        let delay_ms = template.backoff.delay_ms_for(&name, worker.consecutive);
        worker.consecutive = worker.consecutive.saturating_add(1);
        self.notify_watchers(&name, Notice::Restarting { delay_ms }, out);
        if delay_ms == 0 && retry == Retry::Now {
            self.spec_for_restart(&mut worker);
            return self.spawn(worker, SpawnPurpose::Restart, now, out);
        }
        if delay_ms > 0 {
            info!("{name}: next restart in {delay_ms} ms (backoff)");
        }
        self.wait_then_respawn(worker, delay_ms, now);
    }

    /// Give up on the whole supervisor. The worker that tripped the limit is held
    /// `failed`, and a dynamic one is recorded so in the state file before the shutdown
    /// begins: a daemon started again (by systemd, say) restores it as `failed` instead
    /// of starting it — it cannot make that daemon escalate again, the socket stays
    /// usable, and `restart NAME` brings it back. Every other dynamic worker stays in
    /// the state file as it was.
    fn escalate(&mut self, worker: Worker, now: Time, out: &mut Vec<Action>) {
        let name = worker.spec.name.clone();
        let why = super::held_why(&worker);
        self.record(&worker.spec, worker.dynamic, Some(why), out);
        self.registry.put(worker, State::Failed { held: true });
        self.notify_watchers(&name, Notice::IntensityTripped, out);
        self.begin_shutdown(1, None, now, out);
    }

    /// A worker keeps its spec until its next restart; then it picks up its template
    /// as the config has it now (after a reload), with the same per-start args and
    /// command. A template whose settings changed also brings its own restart window.
    pub(super) fn spec_for_restart(&self, worker: &mut Worker) {
        let fresh = self.refreshed_spec(&worker.spec);
        if !Rc::ptr_eq(&fresh, &worker.spec) {
            if !fresh.template.same_effect(&worker.spec.template) {
                worker.window = window_for(&fresh.template, self.limits.max_seconds);
            }
            worker.spec = fresh;
        }
    }

    /// Every deadline at or before now: stop timeouts, ready timeouts, restart times.
    pub(super) fn on_tick(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.switch.is_due(now.mono_us) {
            self.fire_switch(now, out);
        }
        // A budget per tick: the rest stay due, and the reactor ticks again on its next
        // turn (its poll does not sleep while a deadline has passed), after serving its
        // clients — so a thousand restarts due at once never hold a `lookup` behind all
        // of their spawns.
        for _ in 0..TICK_BUDGET {
            let Some(name) = self.registry.first_due(now.mono_us) else {
                break;
            };
            match self.step(&name, Event::Due, now, out) {
                None => {}
                Some((mut worker, Next::Spawn(purpose))) => {
                    self.spec_for_restart(&mut worker);
                    self.spawn(worker, purpose, now, out);
                }
                Some((worker, Next::Removed)) => {
                    // A start that waited too long for its dependencies.
                    self.notify_watchers(&name, Notice::Stopped(StopCause::NotStarted), out);
                    self.forget(&worker, now, out);
                    self.check_shutdown_complete(now, out);
                }
                Some((worker, Next::Ended(ending))) => self.ended(worker, ending, now, out),
                Some((worker, next)) => {
                    debug_assert!(false, "{name}: a deadline led to {next:?}");
                    // Keep the worker rather than lose it.
                    self.registry.put(worker, State::Failed { held: false });
                }
            }
        }
    }

    /// Stop `name` (SIGKILL after `timeout_ms`, or its template's `shutdown_ms`),
    /// then `then`; a stop already in progress takes the new waiter and `then`. What
    /// the transition table returns for a worker with no process is the caller's.
    pub(super) fn stop_worker(
        &mut self,
        name: &Rc<str>,
        timeout_ms: Option<u64>,
        waiter: Option<ReplyTo>,
        then: AfterStop,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<(Worker, Next)> {
        let Some(entry) = self.registry.get(name) else {
            debug_assert!(false, "{name} is not registered");
            return None;
        };
        let stop = StopRequest {
            timeout_ms: timeout_ms.unwrap_or(entry.worker.spec.template.shutdown_ms),
            waiter,
            then,
        };
        self.step(name, Event::Stop(stop), now, out)
    }
}

/// The status a critical worker's end gives the daemon: its exit code, or 128 + the
/// signal's number (as a shell reports it).
pub(super) fn exit_status(exit: Exit) -> i32 {
    match exit {
        Exit::Code(code) => code & 0xff,
        Exit::Signaled { signal, .. } => 128 + signal.0,
    }
}

/// The status of a worker's last exit (1 when it had none: it never ran).
fn last_status(worker: &Worker) -> i32 {
    match worker.last_exit.as_ref().map(|e| &e.cause) {
        Some(EndCause::Exited(exit) | EndCause::Killed { exit, .. }) => exit_status(*exit),
        _ => 1,
    }
}

/// The delay before spawning again after a spawn failed for lack of a resource: 100 ms,
/// doubling, at most 5 s.
fn shortage_delay_ms(shortages: u32) -> u64 {
    100u64.saturating_mul(1 << shortages.min(6)).min(5_000)
}
