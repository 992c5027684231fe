//! The supervisor: the Registry and the DynamicSupervisor as one pure state machine.
//!
//! [`Supervisor::handle`] takes one [`Input`] (a command, an exit, a spawn result, the
//! passing of time, a shutdown signal, a worker's notification, a reloaded config) and
//! the current [`Time`], and returns the [`Action`]s the OS layer must carry out, in
//! order. It never performs a syscall and never reads the clock.
//!
//! Rooms, one job each:
//! - `worker.rs`: one worker's lifecycle — its states, the one deadline each owns, and
//!   the transition table `(state, event, now) -> (next, effects)`.
//! - `registry.rs`: the name map and the pid, spawn and deadline indexes, re-indexed
//!   from a worker's state on every change; the only code that touches them.
//! - `requests.rs`: [`Command`]s from clients turned into worker events and answers.
//! - `lifecycle.rs`: spawn results, exits and deadlines; the restart rule, backoff,
//!   per-worker limits, the intensity and escalation.
//! - `shutdown.rs`: stopping everything, and the end of the daemon.
//! - `readiness.rs`: `READY=1` / `STATUS=` / `WATCHDOG=` from workers.
//! - `ordering.rs`: `after` (blocked starts), `restart_with = "dependents"`, the order
//!   of a shutdown, the boot's completion, a critical worker's end.
//! - `liveness.rs`: health check results and the `health` request.
//! - `rollout.rs`: rolling restarts.
//! - `switch.rs`: the dead man's switch (`fence`): workers stopped unless renewed.
//! - `reload.rs`: a re-read config applied as a difference.
//! - `replies.rs`: answers and notices → the wire's values (the one place in the core
//!   that knows the wire format).
//!
//! Contract with the OS layer:
//! - Every `Action::Spawn` is carried out at once and answered with `Input::Spawned` or
//!   `Input::SpawnFailed` before any other input, so a pid is in the registry before
//!   `waitpid` can ever report it.
//! - `Input::Exited` is fed for each reaped pid as soon as it is reaped, before any
//!   other action is executed, so a signal is never sent to a reaped pid.
//! - Every `Action::Reaped` is answered with `Input::Leftovers` before any other input,
//!   and a group reported left is watched until `Input::LeftoversGone`.
//! - `Input::Tick` is fed whenever [`Supervisor::next_deadline`] has passed.
//! - `Action::SaveState` is carried out (the state file written) before any reply
//!   that follows it leaves the daemon, so a `start`/`stop` is answered only once it is
//!   durable; several in one loop turn may share one write.
//!
//! Every event costs O(1) in the number of workers (hash maps by name, pid and spawn,
//! an ordered deadline set); `list`, `count`, reload and the shutdown sweep visit each.

mod lifecycle;
mod liveness;
mod ordering;
mod readiness;
mod registry;
mod reload;
mod replies;
mod requests;
mod rollout;
mod selection;
mod shutdown;
mod switch;
mod worker;

#[cfg(test)]
mod tests;

pub use replies::Counts;
pub use requests::{Command, Select};
pub use selection::Among;

use super::intensity::Intensity;
use super::spec::{BootChild, SavedChange, SavedWorker, Template};
use super::ChildSpec;
use crate::signal::Signal;
use lifecycle::SpawnFailure;
use log::error;
use registry::Registry;
use replies::{Answer, Notice, Refusal, StopOutcome};
use std::collections::BTreeMap;
use std::rc::Rc;
use worker::{Effect, EndCause, Event as WorkerEvent, Next, State, Worker};

/// One spawned process of a worker. Never reused, so a late event from a dead
/// instance (an output pipe's EOF, say) can never be mistaken for its successor.
pub type InstanceId = u64;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTo {
    /// A request on a client connection.
    Conn { conn: u64, seq: u64 },
    /// A `[[children]]` entry at boot: its failure aborts the boot.
    Boot { index: usize },
    /// A worker restored from the state file at boot: failures are logged.
    Restore { index: usize },
    /// A child started by a reload: failures are logged.
    Reload,
    /// One worker's part of a client's request about several (`stop`, `kill` or
    /// `restart` of `names`, a `template` or `all`): the OS layer collects the parts of
    /// `batch` and answers the client once every `index` is in.
    Part { batch: u64, index: usize },
}

impl ReplyTo {
    /// Workers started for these are dynamic: recorded in the state file.
    fn is_dynamic(self) -> bool {
        matches!(
            self,
            ReplyTo::Conn { .. } | ReplyTo::Restore { .. } | ReplyTo::Part { .. }
        )
    }
}

/// The time of an input: monotonic microseconds (for deadlines and intensity; fine
/// enough that a timeout never fires early by a rounding) and wall milliseconds since the
/// Unix epoch (for what `list` shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub mono_us: u64,
    pub wall_ms: u64,
}

impl Time {
    fn secs(self) -> u64 {
        self.mono_us / 1_000_000
    }
}

/// Supervisor-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_restarts: u32,
    pub max_seconds: u64,
    /// `None`: no limit.
    pub max_children: Option<usize>,
}

/// A reloaded, validated config, as the core needs it.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    pub limits: Limits,
    pub templates: BTreeMap<String, Rc<Template>>,
    pub children: Vec<BootChild>,
}

#[derive(Debug, Clone)]
pub enum Input {
    /// A command from a client (or from boot, restore or reload) that the core answers.
    Command { from: ReplyTo, command: Command },
    /// `waitpid` reported this pid.
    Exited { pid: i32, exit: super::Exit },
    /// The answer to `Action::Spawn`: the process exists and has exec'd.
    Spawned { instance: InstanceId, pid: i32 },
    /// The answer to `Action::Spawn`: the clone or the exec failed, nothing runs.
    /// `shortage`: for lack of a resource (EMFILE, ENFILE, EAGAIN, ENOMEM).
    SpawnFailed {
        instance: InstanceId,
        error: String,
        shortage: bool,
        /// One of its template's `env_file`s could not be read or has a syntax error
        /// (a `start` or `restart` is then answered `invalid_env_file`).
        bad_env_file: bool,
    },
    /// The answer to `Action::Reaped`: is anything of the instance's process group
    /// (or cgroup) left?
    Leftovers { instance: InstanceId, left: bool },
    /// What was left of the instance's group (see `Leftovers`) is gone now.
    LeftoversGone { instance: InstanceId },
    /// How many output lines of `name` were dropped so far (for `list`).
    LogDropped { name: String, dropped: u64 },
    /// Time has passed; deadlines at or before now are due.
    Tick,
    /// SIGTERM or SIGINT reached the daemon.
    ShutdownSignal { signal: Signal },
    /// A worker's sd_notify datagram, from `pid` (whose process group the OS layer
    /// read).
    Notify {
        pid: i32,
        group: Option<i32>,
        note: Notification,
    },
    /// The answer to `Action::Probe`, once the health check ended (or was killed at
    /// its timeout): `ok` when it exited 0 in time; `message` says what it did.
    ProbeDone {
        name: String,
        instance: InstanceId,
        ok: bool,
        message: String,
    },
    /// Every `[[children]]` entry was handed over (as `Command::StartChild`): once
    /// they are all running and ready, `Action::BootReady` follows.
    BootFed,
    /// The config was read again (SIGHUP or `reload`): apply it, or report why not.
    Reload {
        from: Option<ReplyTo>,
        config: Result<Box<ReloadConfig>, String>,
    },
}

/// One sd_notify datagram from a worker, decoded (the assignments the core uses;
/// others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// `READY=1`
    pub ready: bool,
    /// `STATUS=...`
    pub status: Option<String>,
    /// `WATCHDOG=1`: the worker is alive.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the worker asks to be treated as if its watchdog expired.
    pub watchdog_trigger: bool,
    /// `WATCHDOG_USEC=N`: a new watchdog interval for this process (0 turns it off).
    pub watchdog_usec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Spawn (clone + exec) `spec`; answer with `Spawned` or `SpawnFailed` for `instance`.
    Spawn {
        instance: InstanceId,
        spec: Rc<super::ChildSpec>,
    },
    /// Send `signal` to the pid, or to its process group when `group` is set.
    Signal {
        pid: i32,
        signal: Signal,
        group: bool,
    },
    /// `kill`: send `signal` to `pid` (not its group) and answer `reply_to` with `sent`,
    /// or, if the kernel refuses, with an error saying why.
    Kill {
        pid: i32,
        signal: Signal,
        reply_to: ReplyTo,
        sent: Box<replies::WireReply>,
    },
    /// Queue `message` and a newline on the instance's stdin; the OS layer replies
    /// (`queued` or `mailbox_full`), since the buffer lives there.
    Cast {
        instance: InstanceId,
        message: String,
        reply_to: ReplyTo,
    },
    /// The instance's main process `pid` was reaped: close its stdin, log what it
    /// wrote, and answer at once with `Input::Leftovers`: is anything of its process
    /// group (`pid`) or cgroup left? If so, watch it and send `Input::LeftoversGone`
    /// once it is empty.
    Reaped { instance: InstanceId, pid: i32 },
    /// Send `signal` to whatever is left of the instance's process group and cgroup
    /// (SIGKILL: through `cgroup.kill` when cgroups are on).
    SignalLeftovers {
        instance: InstanceId,
        signal: Signal,
    },
    /// Boxed: a reply is large, and most actions are not replies.
    Reply {
        to: ReplyTo,
        reply: Box<replies::WireReply>,
    },
    /// For `watch` subscribers.
    Event(replies::Event),
    /// The record of dynamic workers ([`Supervisor::saved_workers`]) changed: write it
    /// to the state file before any reply that follows reaches its client (the reactor
    /// writes once per loop turn, before it flushes replies). Only emitted when the
    /// supervisor records its dynamic workers ([`Supervisor::record_dynamic_workers`]).
    SaveState,
    /// Run the health check of `spec.template.health` for the worker's live instance
    /// `instance` (with the worker's environment, user and directory, in its own
    /// process group, killed at its timeout), and answer with `Input::ProbeDone` once
    /// it ended. Never more than one per instance at a time.
    Probe {
        name: Rc<str>,
        instance: InstanceId,
        spec: Rc<super::ChildSpec>,
    },
    /// Every boot child is running and ready (once per daemon, after `Input::BootFed`):
    /// tell systemd `READY=1`.
    BootReady,
    /// Every worker is gone; the daemon should exit with this status (0, 1 for an
    /// escalation or a failed boot, or a critical worker's own status).
    Exit { code: i32 },
}

#[derive(Debug)]
enum Phase {
    Running,
    ShuttingDown {
        code: i32,
        waiters: Vec<ReplyTo>,
        reports: Vec<StopOutcome>,
        /// Live workers that live workers are `after`, with how many: each is stopped
        /// once its count is down to 0.
        held_back: std::collections::HashMap<Rc<str>, usize>,
    },
    Exited,
}

#[derive(Debug)]
pub struct Supervisor {
    limits: Limits,
    templates: BTreeMap<String, Rc<Template>>,
    registry: Registry,
    intensity: Intensity,
    next_instance: InstanceId,
    phase: Phase,
    /// A state file is kept: dynamic workers are recorded in `saved`, and `SaveState`
    /// asks for the file to be written.
    durable: bool,
    /// The dynamic workers as the state file records them. Changed only by the events
    /// that change that record — a dynamic start, a stop, a hold, an escalation — never
    /// by a shutdown, so a daemon that comes back restores what was running.
    saved: BTreeMap<Rc<str>, SavedWorker>,
    /// The changes of `saved` since the reactor last took them (the journal's lines).
    saved_changes: Vec<SavedChange>,
    /// How far the boot is (for `READY=1` and `health`).
    boot: ordering::Boot,
    /// Rolling restarts in progress.
    rollouts: Vec<rollout::Rollout>,
    /// The dead man's switch (`fence`), armed or not.
    switch: switch::Switch,
}

impl Supervisor {
    pub fn new(limits: Limits, templates: BTreeMap<String, Rc<Template>>) -> Supervisor {
        Supervisor {
            intensity: Intensity::new(limits.max_restarts, limits.max_seconds),
            limits,
            templates,
            registry: Registry::default(),
            next_instance: 1,
            phase: Phase::Running,
            durable: false,
            saved: BTreeMap::new(),
            saved_changes: Vec::new(),
            boot: ordering::Boot::default(),
            rollouts: Vec::new(),
            switch: switch::Switch::default(),
        }
    }

    /// Emit `SaveState` whenever the set of dynamic workers changes (when the daemon
    /// keeps a state file).
    pub fn record_dynamic_workers(mut self) -> Supervisor {
        self.durable = true;
        self
    }

    /// Record a dynamic worker for the state file (`failed`: held, with why), and ask
    /// for the file to be written.
    fn record(
        &mut self,
        spec: &ChildSpec,
        dynamic: bool,
        failed: Option<String>,
        out: &mut Vec<Action>,
    ) {
        if !(self.durable && dynamic) {
            return;
        }
        let saved = SavedWorker {
            name: spec.name.to_string(),
            template: spec.template.name.clone(),
            args: spec.args.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            failed,
            fenced: spec.fenced,
        };
        self.saved_changes.push(SavedChange::Put(saved.clone()));
        self.saved.insert(spec.name.clone(), saved);
        out.push(Action::SaveState);
    }

    /// A dynamic worker is gone for good: drop it from the state file.
    fn unrecord(&mut self, name: &str, out: &mut Vec<Action>) {
        if self.saved.remove(name).is_some() {
            self.saved_changes
                .push(SavedChange::Forget(name.to_string()));
            out.push(Action::SaveState);
        }
    }

    pub fn handle(&mut self, input: Input, now: Time) -> Vec<Action> {
        // Most inputs lead to a handful of actions.
        let mut out = Vec::with_capacity(8);
        match input {
            Input::Command { from, command } => self.on_command(from, command, now, &mut out),
            Input::Exited { pid, exit } => self.on_exited(pid, exit, now, &mut out),
            Input::Spawned { instance, pid } => self.on_spawned(instance, pid, now, &mut out),
            Input::SpawnFailed {
                instance,
                error,
                shortage,
                bad_env_file,
            } => {
                let failure = SpawnFailure {
                    shortage,
                    bad_env_file,
                };
                self.on_spawn_failed(instance, error, failure, now, &mut out)
            }
            Input::Leftovers { instance, left } => {
                self.on_leftovers(instance, WorkerEvent::Leftovers { left }, now, &mut out)
            }
            Input::LeftoversGone { instance } => {
                self.on_leftovers(instance, WorkerEvent::LeftoversGone, now, &mut out)
            }
            Input::LogDropped { name, dropped } => {
                if let Some(worker) = self.registry.worker_mut(&name) {
                    worker.log_dropped = dropped;
                }
            }
            Input::Tick => self.on_tick(now, &mut out),
            Input::ShutdownSignal { signal } => self.on_shutdown_signal(signal, now, &mut out),
            Input::Notify { pid, group, note } => self.on_notify(pid, group, note, now, &mut out),
            Input::ProbeDone {
                name,
                instance,
                ok,
                message,
            } => self.on_probe_done(&name, instance, ok, message, now, &mut out),
            Input::BootFed => self.on_boot_fed(&mut out),
            Input::Reload { from, config } => self.reload(from, config, now, &mut out),
        }
        if !self.rollouts.is_empty() {
            self.advance_rollouts(now, &mut out);
        }
        out
    }

    // ----- queries (for the OS layer) --------------------------------------------

    /// The earliest monotonic time (µs) at which `Input::Tick` has work to do, if any.
    /// `None` means the daemon may sleep until something happens.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.registry.next_deadline(), self.switch.due_us()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn is_registered(&self, name: &str) -> bool {
        self.registry.contains(name)
    }

    /// How many names are registered.
    pub fn count(&self) -> usize {
        self.registry.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        !matches!(self.phase, Phase::Running)
    }

    /// The dynamic workers, as the state file records them, sorted by name.
    pub fn saved_workers(&self) -> Vec<SavedWorker> {
        self.saved.values().cloned().collect()
    }

    /// The changes of the record since the last call, in order (for an append to the
    /// state file's journal instead of a rewrite of the whole record).
    pub fn take_saved_changes(&mut self) -> Vec<SavedChange> {
        std::mem::take(&mut self.saved_changes)
    }

    /// The registry by state (visits every worker).
    pub fn counts(&self) -> Counts {
        replies::counts(&self.registry)
    }

    /// For `metrics`: how many workers of each template are in each state, by
    /// (template, state name as `list` shows it) (visits every worker).
    pub fn census(&self) -> BTreeMap<(&str, &'static str), usize> {
        replies::census(&self.registry)
    }

    /// For `metrics`: the config's template names.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// For `metrics`: the supervisor-wide intensity at `now`: the restarts within its
    /// window, its `max_restarts` and its `max_seconds`.
    pub fn intensity_fill(&self, now: Time) -> (usize, u32, u64) {
        (
            self.intensity.count_within(now.secs()),
            self.limits.max_restarts,
            self.limits.max_seconds,
        )
    }

    /// Every worker with a live process: (name, pid), for `ps`.
    pub fn live_pids(&self, name: Option<&str>) -> Vec<(String, i32)> {
        let mut rows: Vec<(String, i32)> = self
            .registry
            .iter()
            .filter(|(n, _)| name.is_none_or(|want| want == &***n))
            .filter_map(|(n, e)| e.state().pid().map(|pid| (n.to_string(), pid)))
            .collect();
        rows.sort_unstable();
        rows
    }

    // ----- the worker state machine --------------------------------------------------

    /// Feed `event` to `name`'s transition table, then carry out the effects. A worker
    /// that stays registered is re-indexed in its next state; otherwise it leaves the
    /// registry and is handed back with what follows, for the caller to decide.
    fn step(
        &mut self,
        name: &Rc<str>,
        event: WorkerEvent,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<(Worker, Next)> {
        let transition = self.registry.transition(name, |state, worker| {
            let was_running = matches!(state, State::Running { .. });
            let (next, effects) = state.on(event, name, &worker.spec.template, now);
            let up = !was_running && matches!(next, Next::To(State::Running { .. }));
            match next {
                Next::To(state) => (Some(state), (None, effects, up)),
                next => (None, (Some(next), effects, up)),
            }
        });
        let Some(((next, effects, up), worker)) = transition else {
            debug_assert!(false, "{name} is not registered");
            return None;
        };
        for effect in effects {
            self.apply(name, effect, now, out);
        }
        if up {
            self.on_running(name, now, out);
        }
        worker.zip(next)
    }

    fn apply(&mut self, name: &str, effect: Effect, now: Time, out: &mut Vec<Action>) {
        match effect {
            Effect::Signal { pid, signal, group } => {
                out.push(Action::Signal { pid, signal, group })
            }
            Effect::Reaped { instance, pid } => out.push(Action::Reaped { instance, pid }),
            Effect::SignalLeftovers { instance, signal } => {
                out.push(Action::SignalLeftovers { instance, signal })
            }
            Effect::RunProbe { instance } => {
                if let Some(entry) = self.registry.get(name) {
                    out.push(Action::Probe {
                        name: entry.worker.spec.name.clone(),
                        instance,
                        spec: entry.worker.spec.clone(),
                    });
                }
            }
            Effect::Notice(notice) => self.notify_watchers(name, notice, out),
            Effect::Answer { to, answer } => self.answer(to, answer, now, out),
        }
    }

    fn notify_watchers(&self, name: &str, notice: Notice, out: &mut Vec<Action>) {
        out.push(Action::Event(replies::event(name, notice)));
    }

    /// Send an answer. A boot child's failure aborts the boot: like an OTP supervisor
    /// whose static child fails to start, the daemon stops and exits 1.
    fn answer(
        &mut self,
        to: ReplyTo,
        answer: Result<Answer, Refusal>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let boot_failed = match (&to, &answer) {
            (ReplyTo::Boot { .. }, Err(refusal)) => {
                error!(
                    "boot child failed: {refusal}; stopping every worker and exiting with status 1"
                );
                true
            }
            (ReplyTo::Reload, Err(refusal)) => {
                error!("reload could not start a child: {refusal}");
                false
            }
            _ => false,
        };
        out.push(Action::Reply {
            to,
            reply: Box::new(replies::reply(answer)),
        });
        if boot_failed {
            self.begin_shutdown(1, None, now, out);
        }
    }

    fn answer_opt(
        &mut self,
        to: Option<ReplyTo>,
        answer: Result<Answer, Refusal>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if let Some(to) = to {
            self.answer(to, answer, now, out);
        }
    }

    /// A new instance id for a spawn.
    fn new_instance(&mut self) -> InstanceId {
        let instance = self.next_instance;
        self.next_instance += 1;
        instance
    }
}

/// Why a held worker is held, as the state file records it.
fn held_why(worker: &Worker) -> String {
    match worker.last_exit.as_ref().map(|e| &e.cause) {
        Some(EndCause::NotRestored(why)) => why.clone(),
        Some(cause) => format!(
            "it made the daemon escalate (last exit: {})",
            replies::end_reason(cause)
        ),
        None => "it made the daemon escalate".to_string(),
    }
}
