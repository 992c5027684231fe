//! The supervisor: the Registry and the DynamicSupervisor as one pure state machine.
//!
//! [`Supervisor::handle`] takes one [`Input`] (a request, an exit, a spawn result, the
//! passing of time, a shutdown signal, a reloaded config) and the current [`Time`], and
//! returns the [`Action`]s the OS layer must carry out, in order. It never performs a
//! syscall and never reads the clock.
//!
//! Contract with the OS layer:
//! - Every `Action::Spawn` is carried out at once and answered with `Input::Spawned` or
//!   `Input::SpawnFailed` before any other input, so a pid is in the registry before
//!   `waitpid` can ever report it.
//! - `Input::Exited` is fed for each reaped pid as soon as it is reaped, before any
//!   other action is executed, so a signal is never sent to a reaped pid.
//! - `Input::Tick` is fed whenever [`Supervisor::next_deadline`] has passed.
//! - `Action::SaveState` is carried out (the state file written) before the actions
//!   that follow it, so a `start`/`stop` reply is sent only once it is durable.
//!
//! Every event costs O(1) in the number of workers (hash maps by name and by pid, a
//! sorted deadline set); `list`, `count`, reload and the shutdown sweep visit each.

use super::exit::Exit;
use super::intensity::{Intensity, Verdict};
use super::policy::{decide, CleanExits, Decision};
use super::spec::{BootChild, ChildSpec, OnLimit, Readiness, SavedWorker, Template};
use crate::protocol::{
    validate_name, Counts, ErrorKind, Event, LastExit, ReloadReport, Reply, Request, StopReport,
    WireError, WorkerInfo, WorkerStateName,
};
use crate::signal::Signal;
use log::{debug, error, info, warn};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

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
}

impl ReplyTo {
    /// Workers started for these are dynamic: recorded in the state file.
    fn is_dynamic(self) -> bool {
        matches!(self, ReplyTo::Conn { .. } | ReplyTo::Restore { .. })
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
    Request {
        from: ReplyTo,
        req: Request,
    },
    /// `whois PID`, with the process group of `pid` read by the OS layer (if `pid` exists).
    Whois {
        from: ReplyTo,
        pid: i32,
        group: Option<i32>,
    },
    /// `waitpid` reported this pid.
    Exited {
        pid: i32,
        exit: Exit,
    },
    /// The answer to `Action::Spawn`: the process exists and has exec'd.
    Spawned {
        instance: InstanceId,
        pid: i32,
    },
    /// The answer to `Action::Spawn`: fork or exec failed, nothing runs.
    SpawnFailed {
        instance: InstanceId,
        error: String,
    },
    /// Time has passed; deadlines at or before now are due.
    Tick,
    /// SIGTERM or SIGINT reached the daemon.
    ShutdownSignal {
        signal: Signal,
    },
    /// A worker's sd_notify datagram, from `pid` (whose process group the OS layer
    /// read): `READY=1` and/or `STATUS=...`.
    Notify {
        pid: i32,
        group: Option<i32>,
        ready: bool,
        status: Option<String>,
    },
    /// The config was read again (SIGHUP or `reload`): apply it, or report why not.
    Reload {
        from: Option<ReplyTo>,
        config: Result<Box<ReloadConfig>, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fork and exec `spec`; answer with `Spawned` or `SpawnFailed` for `instance`.
    Spawn {
        instance: InstanceId,
        spec: Rc<ChildSpec>,
    },
    /// Send `signal` to the pid, or to its process group when `group` is set.
    Signal {
        pid: i32,
        signal: Signal,
        group: bool,
    },
    /// Queue `message` and a newline on the instance's stdin; the OS layer replies
    /// (`queued` or `mailbox_full`), since the buffer lives there.
    Cast {
        instance: InstanceId,
        message: String,
        reply_to: ReplyTo,
    },
    /// The instance's process was reaped: close its stdin.
    Reaped { instance: InstanceId },
    /// Boxed: a reply is large, and most actions are not replies.
    Reply { to: ReplyTo, reply: Box<Reply> },
    /// For `watch` subscribers.
    Event(Event),
    /// The set of dynamic workers changed: write [`Supervisor::saved_workers`] to the
    /// state file now, before the actions that follow.
    SaveState,
    /// Every worker is gone; the daemon should exit with this status.
    Exit { code: i32 },
}

#[derive(Debug)]
enum State {
    Running {
        pid: i32,
        instance: InstanceId,
        since_wall_ms: u64,
        since_us: u64,
        /// False until `READY=1` for `ready = "notify"` templates.
        ready: bool,
        /// While not ready: when the ready timeout kills it.
        ready_by: Option<u64>,
    },
    Stopping {
        pid: i32,
        instance: InstanceId,
        since_wall_ms: u64,
        /// When to SIGKILL; `None` once SIGKILL was sent.
        kill_at: Option<u64>,
        killed: bool,
        waiters: Vec<ReplyTo>,
        then: AfterStop,
    },
    /// No process: the next start is due at `retry_at` (a restart spawn may also be in
    /// flight). `delay_ms` is 0 after a failed exec (`restarting`), else a backoff.
    Waiting {
        retry_at: u64,
        retry_wall_ms: u64,
        delay_ms: u64,
    },
    /// Gave up after its own restart limit; no process, no deadline.
    Failed,
}

/// What a finished stop leads to.
#[derive(Debug)]
enum AfterStop {
    /// Unregister (`stop`, shutdown, a child removed by reload).
    Remove,
    /// Start again with `spec` (`restart`, a child changed by reload).
    Restart {
        spec: Rc<ChildSpec>,
        reply_to: Option<ReplyTo>,
    },
}

#[derive(Debug)]
struct Worker {
    spec: Rc<ChildSpec>,
    /// Started at run time (recorded in the state file), not a `[[children]]` entry.
    dynamic: bool,
    /// Restart attempts after exits.
    restarts: u32,
    /// This worker's restart times: its own limit when the template sets one,
    /// otherwise only counted for `list`.
    window: Intensity,
    /// Quick restarts in a row, for the backoff curve.
    consecutive: u32,
    last_exit: Option<LastExit>,
    /// The last `STATUS=` it sent.
    status: Option<String>,
    /// `wait_ready` requests, answered at `READY=1` (or with `not_ready`).
    ready_waiters: Vec<ReplyTo>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Now,
    AfterOtherEvents,
}

#[derive(Debug, Clone, Copy)]
enum SpawnPurpose {
    /// A new worker (`start`, boot, restore, reload): registered on success.
    Start { reply_to: ReplyTo },
    /// A crash restart: the worker is registered already.
    Restart,
    /// An operator restart (`restart`, reload of a changed child): registered already.
    Operator { reply_to: Option<ReplyTo> },
}

#[derive(Debug)]
struct PendingSpawn {
    spec: Rc<ChildSpec>,
    purpose: SpawnPurpose,
}

#[derive(Debug)]
enum Phase {
    Running,
    ShuttingDown {
        code: i32,
        waiters: Vec<ReplyTo>,
        reports: Vec<StopReport>,
    },
    Exited,
}

#[derive(Debug)]
pub struct Supervisor {
    limits: Limits,
    templates: BTreeMap<String, Rc<Template>>,
    workers: HashMap<Rc<str>, Worker>,
    by_pid: HashMap<i32, Rc<str>>,
    /// (due time, worker name) for stop timeouts and restart retries.
    deadlines: BTreeSet<(u64, Rc<str>)>,
    pending: HashMap<InstanceId, PendingSpawn>,
    intensity: Intensity,
    next_instance: InstanceId,
    phase: Phase,
}

impl Supervisor {
    pub fn new(limits: Limits, templates: BTreeMap<String, Rc<Template>>) -> Supervisor {
        Supervisor {
            intensity: Intensity::new(limits.max_restarts, limits.max_seconds),
            limits,
            templates,
            workers: HashMap::new(),
            by_pid: HashMap::new(),
            deadlines: BTreeSet::new(),
            pending: HashMap::new(),
            next_instance: 1,
            phase: Phase::Running,
        }
    }

    /// The earliest monotonic time (µs) at which `Input::Tick` has work to do, if any.
    /// `None` means the daemon may sleep until something happens.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    pub fn is_registered(&self, name: &str) -> bool {
        self.workers.contains_key(name)
    }

    /// How many names are registered.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        !matches!(self.phase, Phase::Running)
    }

    /// The dynamic workers, as the state file records them, sorted by name.
    pub fn saved_workers(&self) -> Vec<SavedWorker> {
        let mut saved: Vec<SavedWorker> = self
            .workers
            .values()
            .filter(|w| w.dynamic)
            .map(|w| SavedWorker {
                name: w.spec.name.to_string(),
                template: w.spec.template.name.clone(),
                args: w.spec.args.clone(),
                command: w.spec.command.clone(),
            })
            .collect();
        saved.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        saved
    }

    pub fn handle(&mut self, input: Input, now: Time) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Request { from, req } => self.on_request(from, req, now, &mut out),
            Input::Whois { from, pid, group } => {
                let owner = self
                    .by_pid
                    .get(&pid)
                    .or_else(|| group.and_then(|g| self.by_pid.get(&g)))
                    .cloned();
                let reply = match owner.and_then(|n| self.workers.get(&n).map(|w| (n, w))) {
                    Some((name, worker)) => Reply {
                        name: Some(name.to_string()),
                        pid: worker.state.pid(),
                        state: Some(worker.state.name()),
                        ..Reply::ok()
                    },
                    None => Reply::error(ErrorKind::NotFound, format!("no worker owns pid {pid}")),
                };
                self.reply(from, reply, now, &mut out);
            }
            Input::Exited { pid, exit } => self.on_exited(pid, exit, now, &mut out),
            Input::Spawned { instance, pid } => self.on_spawned(instance, pid, now, &mut out),
            Input::SpawnFailed { instance, error } => {
                self.on_spawn_failed(instance, error, now, &mut out)
            }
            Input::Tick => self.on_tick(now, &mut out),
            Input::ShutdownSignal { signal } => {
                if self.is_shutting_down() {
                    warn!("{signal} received again during shutdown: killing every worker now");
                    self.kill_all_stopping(&mut out);
                } else {
                    info!("{signal} received: stopping every worker");
                    self.begin_shutdown(0, None, now, &mut out);
                }
            }
            Input::Reload { from, config } => self.reload(from, config, now, &mut out),
            Input::Notify {
                pid,
                group,
                ready,
                status,
            } => self.on_notify(pid, group, ready, status, now, &mut out),
        }
        out
    }

    // ----- requests -------------------------------------------------------------

    fn on_request(&mut self, from: ReplyTo, req: Request, now: Time, out: &mut Vec<Action>) {
        match req {
            Request::Start {
                name,
                template,
                args,
                command,
            } => match self.build_spec(name, template, args, command) {
                Ok(spec) => self.start(from, spec, out),
                Err(reply) => self.reply(from, *reply, now, out),
            },
            Request::Stop { name, timeout_ms } => self.stop(from, &name, timeout_ms, now, out),
            Request::Restart { name, timeout_ms } => {
                self.restart(from, &name, timeout_ms, now, out)
            }
            Request::Kill { name, signal } => self.kill(from, &name, signal.as_deref(), out),
            Request::Cast { name, message } => self.cast(from, &name, message, out),
            Request::Lookup { name } => {
                let reply = match self.workers.get(name.as_str()) {
                    Some(worker) => Reply {
                        name: Some(name),
                        pid: worker.state.pid(),
                        state: Some(worker.state.name()),
                        ..Reply::ok()
                    },
                    None => not_found(&name),
                };
                self.reply(from, reply, now, out);
            }
            Request::Count => {
                let counts = self.counts();
                let reply = Reply {
                    count: Some(counts.total),
                    counts: Some(counts),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
            Request::List => {
                let reply = Reply {
                    workers: Some(self.list(now)),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
            Request::Shutdown => match &mut self.phase {
                Phase::ShuttingDown { waiters, .. } => waiters.push(from),
                // Everything is already stopped; the daemon is on its way out.
                Phase::Exited => {
                    let reply = Reply {
                        shutdown: Some(Vec::new()),
                        ..Reply::ok()
                    };
                    self.reply(from, reply, now, out);
                }
                Phase::Running => {
                    info!("shutdown requested: stopping every worker");
                    self.begin_shutdown(0, Some(from), now, out);
                }
            },
            // These need the OS (a /proc read, a subscription, a file read): the event
            // loop turns them into other inputs and never passes them here.
            Request::WaitReady { name } => self.wait_ready(from, &name, now, out),
            req @ (Request::Whois { .. }
            | Request::Watch { .. }
            | Request::Reload
            | Request::Ps { .. }) => {
                let reply = Reply::error(
                    ErrorKind::BadRequest,
                    format!("`{}` is handled by the event loop", req.cmd()),
                );
                self.reply(from, reply, now, out);
            }
        }
    }

    fn start(&mut self, from: ReplyTo, spec: Rc<ChildSpec>, out: &mut Vec<Action>) {
        // A failed worker named again is replaced by the new start.
        if matches!(
            self.workers.get(&spec.name).map(|w| &w.state),
            Some(State::Failed)
        ) {
            self.remove_worker(&spec.name, out);
        }
        self.spawn(spec, SpawnPurpose::Start { reply_to: from }, out);
    }

    fn spawn(&mut self, spec: Rc<ChildSpec>, purpose: SpawnPurpose, out: &mut Vec<Action>) {
        let instance = self.next_instance;
        self.next_instance += 1;
        self.pending.insert(
            instance,
            PendingSpawn {
                spec: spec.clone(),
                purpose,
            },
        );
        out.push(Action::Spawn { instance, spec });
    }

    fn build_spec(
        &self,
        name: String,
        template: Option<String>,
        args: Vec<String>,
        command: Option<Vec<String>>,
    ) -> Result<Rc<ChildSpec>, Box<Reply>> {
        if self.is_shutting_down() {
            return Err(err(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down and starts no new workers",
            ));
        }
        if let Some(max) = self.limits.max_children {
            let replacing_failed = matches!(
                self.workers.get(name.as_str()).map(|w| &w.state),
                Some(State::Failed)
            );
            if self.workers.len() >= max && !replacing_failed {
                return Err(err(
                    ErrorKind::MaxChildren,
                    format!("{max} workers are registered, the configured max_children"),
                ));
            }
        }
        validate_name(&name).map_err(|msg| err(ErrorKind::InvalidName, msg))?;
        if let Some(worker) = self.workers.get(name.as_str()) {
            if !matches!(worker.state, State::Failed) {
                let pid = worker.state.pid();
                let mut reply = Reply::error(
                    ErrorKind::AlreadyStarted,
                    match pid {
                        Some(pid) => format!("{name} is already started (pid {pid})"),
                        None => format!(
                            "{name} is already started ({})",
                            worker.state.name().as_str()
                        ),
                    },
                );
                if let Some(error) = reply.error.as_mut() {
                    error.pid = pid;
                }
                reply.pid = pid;
                return Err(Box::new(reply));
            }
        }
        let template = self.template_for(template.as_deref())?;
        ChildSpec::new(name.into(), template, command, args)
            .map(Rc::new)
            .map_err(|msg| err(ErrorKind::BadRequest, msg))
    }

    fn template_for(&self, requested: Option<&str>) -> Result<Rc<Template>, Box<Reply>> {
        match requested {
            Some(name) => self.templates.get(name).cloned().ok_or_else(|| {
                err(
                    ErrorKind::UnknownTemplate,
                    format!(
                        "no template named {name:?} (known: {})",
                        self.template_names()
                    ),
                )
            }),
            None => match (self.templates.len(), self.templates.values().next()) {
                (1, Some(only)) => Ok(only.clone()),
                _ => Err(err(
                    ErrorKind::UnknownTemplate,
                    format!(
                        "the config has {} templates; name one with --template (known: {})",
                        self.templates.len(),
                        self.template_names()
                    ),
                )),
            },
        }
    }

    fn template_names(&self) -> String {
        if self.templates.is_empty() {
            return "none".to_string();
        }
        self.templates
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn stop(
        &mut self,
        from: ReplyTo,
        name: &str,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(worker) = self.workers.get_mut(name) else {
            return self.reply(from, not_found(name), now, out);
        };
        let key = worker.spec.name.clone();
        match &mut worker.state {
            State::Running { .. } => {
                let timeout = timeout_ms.unwrap_or(worker.spec.template.shutdown_ms);
                self.begin_stop(&key, timeout, Some(from), AfterStop::Remove, now, out);
            }
            State::Stopping { waiters, then, .. } => {
                // A stop wins over a pending operator restart, whose requester is told.
                let superseded = std::mem::replace(then, AfterStop::Remove);
                waiters.push(from);
                self.supersede_restart(superseded, &key, now, out);
            }
            State::Waiting { .. } | State::Failed => {
                info!("{key}: stopped (it had no running process)");
                out.push(Action::Event(Event::Stopped {
                    name: key.to_string(),
                    reason: "stopped".to_string(),
                }));
                self.remove_worker(&key, out);
                let reply = Reply {
                    stopped: Some(StopReport {
                        name: key.to_string(),
                        pid: None,
                        exit: None,
                        killed: false,
                    }),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
        }
    }

    fn restart(
        &mut self,
        from: ReplyTo,
        name: &str,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            let reply = Reply::error(ErrorKind::ShuttingDown, "the daemon is shutting down");
            return self.reply(from, reply, now, out);
        }
        let Some(key) = self.workers.get(name).map(|w| w.spec.name.clone()) else {
            return self.reply(from, not_found(name), now, out);
        };
        let Some(worker) = self.workers.get(&key) else {
            return;
        };
        // The stop uses the running process's settings (its stop signal and timeout);
        // the new process gets the template as the config has it now.
        let spec = self.refreshed_spec(&worker.spec);
        match worker.state {
            State::Running { .. } => {
                let timeout = timeout_ms.unwrap_or(worker.spec.template.shutdown_ms);
                info!("{key}: restart requested");
                let then = AfterStop::Restart {
                    spec,
                    reply_to: Some(from),
                };
                self.begin_stop(&key, timeout, None, then, now, out);
            }
            State::Stopping { .. } => {
                let reply = Reply::error(
                    ErrorKind::NotRunning,
                    format!("{key} is being stopped; start it again once it is gone"),
                );
                self.reply(from, reply, now, out);
            }
            State::Waiting { .. } | State::Failed => {
                info!("{key}: restart requested; starting it now");
                self.respawn_now(&key, spec, Some(from), out);
            }
        }
    }

    /// Cancel any wait and start `key` again at once with `spec` (an operator action:
    /// the backoff starts afresh and nothing is counted).
    fn respawn_now(
        &mut self,
        key: &Rc<str>,
        spec: Rc<ChildSpec>,
        reply_to: Option<ReplyTo>,
        out: &mut Vec<Action>,
    ) {
        let Some(worker) = self.workers.get_mut(key) else {
            return;
        };
        if let State::Waiting { retry_at, .. } = worker.state {
            self.deadlines.remove(&(retry_at, key.clone()));
        }
        // An operator restart starts afresh: backoff and the worker's own window too.
        worker.consecutive = 0;
        worker.window = window_for(&spec.template, self.limits.max_seconds);
        worker.spec = spec.clone();
        worker.state = State::SPAWN_IN_FLIGHT;
        self.spawn(spec, SpawnPurpose::Operator { reply_to }, out);
    }

    /// The spec to restart `name` with. A worker keeps its spec until its next
    /// restart; then it picks up its template as the config has it now (after a
    /// reload), with the same per-start args and command. A template whose settings
    /// changed also brings its own restart window.
    fn spec_for_restart(&mut self, name: &Rc<str>) -> Option<Rc<ChildSpec>> {
        let fresh = self.refreshed_spec(&self.workers.get(name)?.spec);
        let max_seconds = self.limits.max_seconds;
        let worker = self.workers.get_mut(name)?;
        if !Rc::ptr_eq(&fresh, &worker.spec) {
            if !fresh.template.same_effect(&worker.spec.template) {
                worker.window = window_for(&fresh.template, max_seconds);
            }
            worker.spec = fresh.clone();
        }
        Some(fresh)
    }

    /// `spec` rebuilt on its template as the config has it now (the same `Rc` when
    /// the template was not replaced, or no longer exists).
    fn refreshed_spec(&self, spec: &Rc<ChildSpec>) -> Rc<ChildSpec> {
        let current = self.templates.get(&spec.template.name);
        match current.filter(|t| !Rc::ptr_eq(t, &spec.template)) {
            Some(template) => ChildSpec::new(
                spec.name.clone(),
                template.clone(),
                spec.command.clone(),
                spec.args.clone(),
            )
            .map_or_else(|_| spec.clone(), Rc::new),
            None => spec.clone(),
        }
    }

    fn kill(&mut self, from: ReplyTo, name: &str, signal: Option<&str>, out: &mut Vec<Action>) {
        let signal = match signal.map(Signal::parse).unwrap_or(Ok(Signal::KILL)) {
            Ok(signal) => signal,
            Err(msg) => {
                return out.push(Action::Reply {
                    to: from,
                    reply: err(ErrorKind::InvalidSignal, msg),
                })
            }
        };
        let reply = match self.workers.get(name).and_then(|w| w.state.pid()) {
            Some(pid) => {
                info!("{name}: sending {signal} to pid {pid} (kill request)");
                out.push(Action::Signal {
                    pid,
                    signal,
                    group: false,
                });
                Reply {
                    name: Some(name.to_string()),
                    pid: Some(pid),
                    signal: Some(signal.name()),
                    ..Reply::ok()
                }
            }
            None if self.workers.contains_key(name) => not_running(name),
            None => not_found(name),
        };
        out.push(Action::Reply {
            to: from,
            reply: Box::new(reply),
        });
    }

    fn cast(&mut self, from: ReplyTo, name: &str, message: String, out: &mut Vec<Action>) {
        if message.contains('\n') {
            let reply = err(
                ErrorKind::BadRequest,
                "a message must not contain a newline (each line is one message)",
            );
            return out.push(Action::Reply { to: from, reply });
        }
        let reply = match self.workers.get(name).map(|w| &w.state) {
            Some(State::Running { instance, .. } | State::Stopping { instance, .. }) => {
                return out.push(Action::Cast {
                    instance: *instance,
                    message,
                    reply_to: from,
                })
            }
            Some(_) => not_running(name),
            None => not_found(name),
        };
        out.push(Action::Reply {
            to: from,
            reply: Box::new(reply),
        });
    }

    /// The registry by state (visits every worker).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            total: self.workers.len(),
            ..Counts::default()
        };
        for worker in self.workers.values() {
            match worker.state {
                State::Running { .. } => counts.active += 1,
                State::Stopping { .. } => {
                    counts.active += 1;
                    counts.stopping += 1;
                }
                State::Waiting { .. } => counts.backoff += 1,
                State::Failed => counts.failed += 1,
            }
        }
        counts
    }

    fn list(&self, now: Time) -> Vec<WorkerInfo> {
        let mut rows: Vec<WorkerInfo> = self
            .workers
            .values()
            .map(|w| WorkerInfo {
                name: w.spec.name.to_string(),
                pid: w.state.pid(),
                template: w.spec.template.name.clone(),
                restart: w.spec.restart().as_str().to_string(),
                state: w.state.name(),
                restarts: w.restarts,
                restarts_in_window: w.window.count_within(now.secs()) as u32,
                started_at_ms: w.state.since_wall_ms(),
                last_exit: w.last_exit.clone(),
                next_try_ms: match w.state {
                    State::Waiting { retry_wall_ms, .. } => Some(retry_wall_ms),
                    _ => None,
                },
                dynamic: w.dynamic,
                ready: matches!(w.state, State::Running { ready: true, .. }),
                status: w.status.clone(),
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Every worker with a live process: (name, pid), for `ps`.
    pub fn live_pids(&self, name: Option<&str>) -> Vec<(String, i32)> {
        let mut rows: Vec<(String, i32)> = self
            .workers
            .iter()
            .filter(|(n, _)| name.is_none_or(|want| want == &***n))
            .filter_map(|(n, w)| w.state.pid().map(|pid| (n.to_string(), pid)))
            .collect();
        rows.sort_unstable();
        rows
    }

    // ----- process events -------------------------------------------------------

    fn on_spawned(&mut self, instance: InstanceId, pid: i32, now: Time, out: &mut Vec<Action>) {
        let Some(PendingSpawn { spec, purpose }) = self.pending.remove(&instance) else {
            return;
        };
        let name = spec.name.clone();
        self.by_pid.insert(pid, name.clone());
        let waits_for_ready = spec.template.ready == Readiness::Notify;
        let ready_by = waits_for_ready.then(|| {
            now.mono_us
                .saturating_add(spec.template.ready_timeout_ms.saturating_mul(1000))
        });
        if let Some(at) = ready_by {
            self.deadlines.insert((at, name.clone()));
        }
        let running = State::Running {
            pid,
            instance,
            since_wall_ms: now.wall_ms,
            since_us: now.mono_us,
            ready: !waits_for_ready,
            ready_by,
        };
        out.push(Action::Event(Event::Started {
            name: name.to_string(),
            pid,
        }));
        match purpose {
            SpawnPurpose::Start { reply_to } => {
                info!("{name}: started, pid {pid}");
                let window = window_for(&spec.template, self.limits.max_seconds);
                let dynamic = reply_to.is_dynamic();
                self.workers.insert(
                    name.clone(),
                    Worker {
                        spec,
                        dynamic,
                        restarts: 0,
                        window,
                        consecutive: 0,
                        last_exit: None,
                        status: None,
                        ready_waiters: Vec::new(),
                        state: running,
                    },
                );
                if dynamic {
                    out.push(Action::SaveState);
                }
                let reply = Reply {
                    name: Some(name.to_string()),
                    pid: Some(pid),
                    ..Reply::ok()
                };
                self.reply(reply_to, reply, now, out);
            }
            SpawnPurpose::Restart | SpawnPurpose::Operator { .. } => {
                info!("{name}: restarted, pid {pid}");
                if let Some(worker) = self.workers.get_mut(&name) {
                    worker.state = running;
                }
                if let SpawnPurpose::Operator {
                    reply_to: Some(reply_to),
                } = purpose
                {
                    let reply = Reply {
                        name: Some(name.to_string()),
                        pid: Some(pid),
                        ..Reply::ok()
                    };
                    self.reply(reply_to, reply, now, out);
                }
            }
        }
    }

    fn on_spawn_failed(
        &mut self,
        instance: InstanceId,
        error: String,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(PendingSpawn { spec, purpose }) = self.pending.remove(&instance) else {
            return;
        };
        let name = spec.name.clone();
        match purpose {
            SpawnPurpose::Start { reply_to } => {
                warn!("{name}: could not be started: {error}");
                let reply = Reply::error(
                    ErrorKind::SpawnFailed,
                    format!("cannot start {name}: {error}"),
                );
                self.reply(reply_to, reply, now, out);
            }
            SpawnPurpose::Operator { reply_to } => {
                // The old process is gone and the new one cannot start: unregister,
                // and say so to whoever asked.
                warn!("{name}: could not be restarted: {error}");
                out.push(Action::Event(Event::Stopped {
                    name: name.to_string(),
                    reason: format!("spawn failed: {error}"),
                }));
                self.remove_worker(&name, out);
                if let Some(reply_to) = reply_to {
                    let reply = Reply::error(
                        ErrorKind::SpawnFailed,
                        format!("cannot restart {name}: {error}"),
                    );
                    self.reply(reply_to, reply, now, out);
                }
                self.check_shutdown_complete(now, out);
            }
            SpawnPurpose::Restart => {
                // A failed exec on restart is an abnormal exit: it counts toward the
                // intensity, and the next attempt is due after other events.
                warn!("{name}: restart failed: {error}");
                if let Some(worker) = self.workers.get_mut(&name) {
                    worker.last_exit = Some(LastExit {
                        reason: format!("spawn failed: {error}"),
                        at_ms: now.wall_ms,
                    });
                }
                self.restart_or_give_up(&name, Retry::AfterOtherEvents, now, out);
            }
        }
    }

    fn on_exited(&mut self, pid: i32, exit: Exit, now: Time, out: &mut Vec<Action>) {
        let Some(name) = self.by_pid.remove(&pid) else {
            debug!("reaped pid {pid} ({exit}), which is not a worker");
            return;
        };
        let shutting_down = self.is_shutting_down();
        let Some(worker) = self.workers.get_mut(&name) else {
            return;
        };
        match std::mem::replace(&mut worker.state, State::SPAWN_IN_FLIGHT) {
            State::Running {
                instance,
                since_us,
                ready_by,
                ..
            } => {
                out.push(Action::Reaped { instance });
                if let Some(at) = ready_by {
                    self.deadlines.remove(&(at, name.clone()));
                }
                let waiters = std::mem::take(&mut worker.ready_waiters);
                // A new process reports its own status.
                worker.status = None;
                for to in waiters {
                    let reply = Reply::error(
                        ErrorKind::NotReady,
                        format!("{name} exited ({exit}) before it was ready"),
                    );
                    out.push(Action::Reply {
                        to,
                        reply: Box::new(reply),
                    });
                }
                let Some(worker) = self.workers.get_mut(&name) else {
                    return;
                };
                worker.last_exit = Some(LastExit {
                    reason: exit.to_string(),
                    at_ms: now.wall_ms,
                });
                let template = worker.spec.template.clone();
                // A run that lasted long enough resets the backoff curve.
                let ran_ms = now.mono_us.saturating_sub(since_us) / 1000;
                if ran_ms >= template.backoff.reset_after_ms {
                    worker.consecutive = 0;
                }
                let clean = CleanExits {
                    codes: &template.normal_exit_codes,
                    signals: &template.clean_signals,
                };
                let decision = if shutting_down {
                    Decision::Remove
                } else {
                    decide(template.restart, &exit, clean)
                };
                out.push(Action::Event(Event::Exited {
                    name: name.to_string(),
                    pid,
                    reason: exit.to_string(),
                    exit: exit.report(),
                }));
                let restart = template.restart.as_str();
                match (decision, clean.contains(&exit)) {
                    (Decision::Remove, true) => info!("{name}: exited ({exit}); not restarted"),
                    (Decision::Remove, false) => {
                        warn!("{name}: exited abnormally ({exit}); not restarted ({restart})")
                    }
                    (Decision::Restart, true) => {
                        info!("{name}: exited ({exit}); restarting ({restart})")
                    }
                    (Decision::Restart, false) => {
                        warn!("{name}: exited abnormally ({exit}); restarting")
                    }
                }
                match decision {
                    Decision::Remove => {
                        out.push(Action::Event(Event::Stopped {
                            name: name.to_string(),
                            reason: format!("{exit}; not restarted"),
                        }));
                        self.remove_worker(&name, out);
                        self.check_shutdown_complete(now, out);
                    }
                    Decision::Restart => self.restart_or_give_up(&name, Retry::Now, now, out),
                }
            }
            State::Stopping {
                instance,
                killed,
                waiters,
                kill_at,
                then,
                ..
            } => {
                out.push(Action::Reaped { instance });
                if let Some(at) = kill_at {
                    self.deadlines.remove(&(at, name.clone()));
                }
                if killed {
                    warn!("{name}: stopped: did not exit in time, killed ({exit})");
                } else {
                    info!("{name}: stopped ({exit})");
                }
                worker.last_exit = Some(LastExit {
                    reason: "stopped".to_string(),
                    at_ms: now.wall_ms,
                });
                let report = StopReport {
                    name: name.to_string(),
                    pid: Some(pid),
                    exit: Some(exit.report()),
                    killed,
                };
                match then {
                    AfterStop::Restart { spec, reply_to } if !shutting_down => {
                        out.push(Action::Event(Event::Exited {
                            name: name.to_string(),
                            pid,
                            reason: format!("{exit} (stopped to be restarted)"),
                            exit: exit.report(),
                        }));
                        out.push(Action::Event(Event::Restarting {
                            name: name.to_string(),
                            delay_ms: 0,
                        }));
                        self.respawn_now(&name, spec, reply_to, out);
                    }
                    AfterStop::Restart { reply_to, .. } => {
                        self.finish_stop(&name, &report, killed, out);
                        if let Some(to) = reply_to {
                            let reply = Reply::error(
                                ErrorKind::ShuttingDown,
                                "the daemon is shutting down",
                            );
                            self.reply(to, reply, now, out);
                        }
                    }
                    AfterStop::Remove => self.finish_stop(&name, &report, killed, out),
                }
                for to in waiters {
                    let reply = Reply {
                        stopped: Some(report.clone()),
                        ..Reply::ok()
                    };
                    self.reply(to, reply, now, out);
                }
                self.check_shutdown_complete(now, out);
            }
            other => worker.state = other,
        }
    }

    /// The worker is gone for good after a stop: unregister and report.
    fn finish_stop(
        &mut self,
        name: &Rc<str>,
        report: &StopReport,
        killed: bool,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Event(Event::Stopped {
            name: name.to_string(),
            reason: if killed {
                "killed after its stop timeout".to_string()
            } else {
                "stopped".to_string()
            },
        }));
        self.remove_worker(name, out);
        if let Phase::ShuttingDown { reports, .. } = &mut self.phase {
            reports.push(report.clone());
        }
    }

    /// Count a restart against the worker's own limit and/or the supervisor's
    /// intensity, then restart `name` (at once or after its backoff), give it up, or
    /// escalate. A restart after a failed spawn is never spawned synchronously, so a
    /// command that can never exec cannot monopolise the loop.
    fn restart_or_give_up(
        &mut self,
        name: &Rc<str>,
        retry: Retry,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            self.remove_worker(name, out);
            return self.check_shutdown_complete(now, out);
        }
        let Some(worker) = self.workers.get_mut(name) else {
            return;
        };
        let template = worker.spec.template.clone();
        // Every restart-worthy exit is an attempt, including one that trips a limit,
        // so `restarts_in_window` never exceeds `restarts`.
        worker.restarts = worker.restarts.saturating_add(1);
        let own = worker.window.record(now.secs());
        let enforced = template.limit.is_some();
        if enforced && own == Verdict::Exceeded {
            let limit = template.limit.map_or(0, |l| l.max_seconds);
            match template.on_limit {
                OnLimit::GiveUp => {
                    let reason = worker
                        .last_exit
                        .as_ref()
                        .map_or_else(String::new, |e| e.reason.clone());
                    error!(
                        "{name}: reached its own restart limit ({} restarts in {limit} s); giving up (last exit: {reason})",
                        worker.window.len(),
                    );
                    worker.state = State::Failed;
                    out.push(Action::Event(Event::Failed {
                        name: name.to_string(),
                        reason,
                    }));
                    return;
                }
                OnLimit::Escalate => {
                    error!(
                        "{name}: reached its own restart limit ({} restarts in {limit} s): reached max restart intensity; stopping every worker and exiting with status 1",
                        worker.window.len(),
                    );
                    return self.escalate(name, now, out);
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
            return self.escalate(name, now, out);
        }
        let Some(worker) = self.workers.get_mut(name) else {
            return;
        };
        let delay_ms = template.backoff.delay_ms(worker.consecutive);
        worker.consecutive = worker.consecutive.saturating_add(1);
        out.push(Action::Event(Event::Restarting {
            name: name.to_string(),
            delay_ms,
        }));
        let retry_at = now.mono_us.saturating_add(delay_ms.saturating_mul(1000));
        worker.state = State::Waiting {
            retry_at,
            retry_wall_ms: now.wall_ms.saturating_add(delay_ms),
            delay_ms,
        };
        if delay_ms == 0 && retry == Retry::Now {
            if let Some(spec) = self.spec_for_restart(name) {
                self.spawn(spec, SpawnPurpose::Restart, out);
            }
            return;
        }
        if delay_ms > 0 {
            info!("{name}: next restart in {delay_ms} ms (backoff)");
        }
        self.deadlines.insert((retry_at, name.clone()));
    }

    /// Give up on the whole supervisor. The worker that tripped the limit has no
    /// process (it is `Waiting`), so the shutdown sweep unregisters it; like every
    /// other dynamic worker it stays in the state file, so a daemon restarted by its
    /// own supervisor brings it back.
    fn escalate(&mut self, name: &Rc<str>, now: Time, out: &mut Vec<Action>) {
        out.push(Action::Event(Event::IntensityTripped {
            name: name.to_string(),
        }));
        self.begin_shutdown(1, None, now, out);
    }

    // ----- time -----------------------------------------------------------------

    fn on_tick(&mut self, now: Time, out: &mut Vec<Action>) {
        while let Some((at, name)) = self.deadlines.first().cloned() {
            if at > now.mono_us {
                break;
            }
            self.deadlines.remove(&(at, name.clone()));
            let Some(worker) = self.workers.get_mut(&name) else {
                continue;
            };
            match &mut worker.state {
                State::Stopping {
                    pid,
                    kill_at,
                    killed,
                    ..
                } if *kill_at == Some(at) => {
                    warn!("{name}: did not exit within its timeout: sending SIGKILL to its process group");
                    *kill_at = None;
                    *killed = true;
                    out.push(Action::Signal {
                        pid: *pid,
                        signal: Signal::KILL,
                        group: true,
                    });
                }
                State::Waiting { retry_at, .. } if *retry_at == at => {
                    if let Some(spec) = self.spec_for_restart(&name) {
                        self.spawn(spec, SpawnPurpose::Restart, out);
                    }
                }
                State::Running {
                    pid,
                    ready: false,
                    ready_by,
                    ..
                } if *ready_by == Some(at) => {
                    let timeout = worker.spec.template.ready_timeout_ms;
                    warn!("{name}: not ready within {timeout} ms: killing it (a failed start; the restart rule applies)");
                    *ready_by = None;
                    out.push(Action::Signal {
                        pid: *pid,
                        signal: Signal::KILL,
                        group: true,
                    });
                    for to in std::mem::take(&mut worker.ready_waiters) {
                        let reply = Reply::error(
                            ErrorKind::NotReady,
                            format!(
                                "{name} did not report READY=1 within {timeout} ms; it was killed"
                            ),
                        );
                        out.push(Action::Reply {
                            to,
                            reply: Box::new(reply),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    // ----- stopping -------------------------------------------------------------

    /// Turn a running worker into a stopping one: stop signal to its group now,
    /// SIGKILL at the deadline.
    fn begin_stop(
        &mut self,
        name: &Rc<str>,
        timeout_ms: u64,
        waiter: Option<ReplyTo>,
        then: AfterStop,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(worker) = self.workers.get_mut(name) else {
            return;
        };
        let State::Running {
            pid,
            instance,
            since_wall_ms,
            ready_by,
            ..
        } = worker.state
        else {
            return;
        };
        if let Some(at) = ready_by {
            self.deadlines.remove(&(at, name.clone()));
        }
        for to in std::mem::take(&mut worker.ready_waiters) {
            let reply = Reply::error(
                ErrorKind::NotReady,
                format!("{name} is being stopped before it was ready"),
            );
            out.push(Action::Reply {
                to,
                reply: Box::new(reply),
            });
        }
        let signal = worker.spec.template.stop_signal;
        let kill_at = now.mono_us.saturating_add(timeout_ms.saturating_mul(1000));
        info!("{name}: stopping: sending {signal} to process group {pid} (SIGKILL after {timeout_ms} ms)");
        worker.state = State::Stopping {
            pid,
            instance,
            since_wall_ms,
            kill_at: Some(kill_at),
            killed: false,
            waiters: waiter.into_iter().collect(),
            then,
        };
        self.deadlines.insert((kill_at, name.clone()));
        out.push(Action::Signal {
            pid,
            signal,
            group: true,
        });
    }

    fn begin_shutdown(
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
        };
        out.push(Action::Event(Event::Shutdown));
        let names: Vec<Rc<str>> = self.workers.keys().cloned().collect();
        for name in names {
            let Some(worker) = self.workers.get(&name) else {
                continue;
            };
            match worker.state {
                State::Running { .. } => {
                    let timeout = worker.spec.template.shutdown_ms;
                    self.begin_stop(&name, timeout, None, AfterStop::Remove, now, out);
                }
                State::Waiting { .. } | State::Failed => {
                    // Not recorded as removed in the state file: a daemon that comes
                    // back after this shutdown starts them again.
                    if let Some(State::Waiting { retry_at, .. }) =
                        self.workers.remove(&name).map(|w| w.state)
                    {
                        self.deadlines.remove(&(retry_at, name.clone()));
                    }
                }
                State::Stopping { .. } => {}
            }
        }
        self.check_shutdown_complete(now, out);
    }

    fn kill_all_stopping(&mut self, out: &mut Vec<Action>) {
        for (name, worker) in self.workers.iter_mut() {
            if let State::Stopping {
                pid,
                kill_at,
                killed,
                ..
            } = &mut worker.state
            {
                if let Some(at) = kill_at.take() {
                    self.deadlines.remove(&(at, name.clone()));
                }
                *killed = true;
                out.push(Action::Signal {
                    pid: *pid,
                    signal: Signal::KILL,
                    group: true,
                });
            }
        }
    }

    fn check_shutdown_complete(&mut self, now: Time, out: &mut Vec<Action>) {
        if !self.workers.is_empty() || !matches!(self.phase, Phase::ShuttingDown { .. }) {
            return;
        }
        let Phase::ShuttingDown {
            code,
            waiters,
            mut reports,
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
            let reply = Reply {
                shutdown: Some(reports.clone()),
                ..Reply::ok()
            };
            self.reply(to, reply, now, out);
        }
        out.push(Action::Exit { code });
    }

    // ----- helpers --------------------------------------------------------------

    /// A pending operator restart was replaced by a stop: answer its requester.
    fn supersede_restart(
        &mut self,
        superseded: AfterStop,
        name: &str,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if let AfterStop::Restart {
            reply_to: Some(to), ..
        } = superseded
        {
            let reply = Reply::error(
                ErrorKind::NotRunning,
                format!("{name} was stopped before its restart completed"),
            );
            self.reply(to, reply, now, out);
        }
    }

    /// Unregister `name`, cancelling its deadline; record the change if it was dynamic.
    fn remove_worker(&mut self, name: &Rc<str>, out: &mut Vec<Action>) {
        let Some(worker) = self.workers.remove(name) else {
            return;
        };
        match worker.state {
            State::Waiting { retry_at, .. } => {
                self.deadlines.remove(&(retry_at, name.clone()));
            }
            State::Stopping {
                kill_at: Some(at), ..
            } => {
                self.deadlines.remove(&(at, name.clone()));
            }
            _ => {}
        }
        if worker.dynamic && !self.is_shutting_down() {
            out.push(Action::SaveState);
        }
    }

    fn reply_opt(&mut self, to: Option<ReplyTo>, reply: Reply, now: Time, out: &mut Vec<Action>) {
        if let Some(to) = to {
            self.reply(to, reply, now, out);
        }
    }

    /// Send a reply. A boot child's failure aborts the boot: like an OTP supervisor
    /// whose static child fails to start, the daemon stops and exits 1.
    fn reply(&mut self, to: ReplyTo, reply: Reply, now: Time, out: &mut Vec<Action>) {
        let boot_failed = matches!(to, ReplyTo::Boot { .. }) && !reply.ok;
        match (&to, &reply.error) {
            (ReplyTo::Boot { .. }, Some(WireError { message, .. })) => error!(
                "boot child failed: {message}; stopping every worker and exiting with status 1"
            ),
            (ReplyTo::Reload, Some(WireError { message, .. })) => {
                error!("reload could not start a child: {message}")
            }
            _ => {}
        }
        out.push(Action::Reply {
            to,
            reply: Box::new(reply),
        });
        if boot_failed {
            self.begin_shutdown(1, None, now, out);
        }
    }
}

impl State {
    /// No process, and no deadline: a restart spawn is about to be answered (or the
    /// decision about the exit just reaped is being made). Shown as `restarting`.
    const SPAWN_IN_FLIGHT: State = State::Waiting {
        retry_at: 0,
        retry_wall_ms: 0,
        delay_ms: 0,
    };

    fn pid(&self) -> Option<i32> {
        match *self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            State::Waiting { .. } | State::Failed => None,
        }
    }

    fn name(&self) -> WorkerStateName {
        match self {
            State::Running { ready: false, .. } => WorkerStateName::Starting,
            State::Running { .. } => WorkerStateName::Running,
            State::Stopping { .. } => WorkerStateName::Stopping,
            State::Waiting { delay_ms: 0, .. } => WorkerStateName::Restarting,
            State::Waiting { .. } => WorkerStateName::Backoff,
            State::Failed => WorkerStateName::Failed,
        }
    }

    fn since_wall_ms(&self) -> u64 {
        match *self {
            State::Running { since_wall_ms, .. } | State::Stopping { since_wall_ms, .. } => {
                since_wall_ms
            }
            State::Waiting { .. } | State::Failed => 0,
        }
    }
}

/// A worker's restart window: its template's own limit, or (without one) an
/// unlimited window as long as the supervisor's, kept for `list`.
fn window_for(template: &Template, supervisor_seconds: u64) -> Intensity {
    match template.limit {
        Some(limit) => Intensity::new(limit.max_restarts.unwrap_or(u32::MAX), limit.max_seconds),
        None => Intensity::unlimited(supervisor_seconds),
    }
}

fn err(kind: ErrorKind, message: impl Into<String>) -> Box<Reply> {
    Box::new(Reply::error(kind, message))
}

fn not_found(name: &str) -> Reply {
    Reply::error(ErrorKind::NotFound, format!("{name} is not registered"))
}

fn not_running(name: &str) -> Reply {
    Reply::error(
        ErrorKind::NotRunning,
        format!("{name} has no running process (it is waiting to be restarted, or failed)"),
    )
}

mod readiness;
mod reload;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod operating_tests;
