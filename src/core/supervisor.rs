//! The supervisor: the Registry and the DynamicSupervisor as one pure state machine.
//!
//! [`Supervisor::handle`] takes one [`Input`] (a request, an exit, a spawn result, the
//! passing of time, a shutdown signal) and the current [`Time`], and returns the
//! [`Action`]s the OS layer must carry out, in order. It never performs a syscall and
//! never reads the clock.
//!
//! Contract with the OS layer:
//! - Every `Action::Spawn` is carried out at once and answered with `Input::Spawned` or
//!   `Input::SpawnFailed` before any other input, so a pid is in the registry before
//!   `waitpid` can ever report it.
//! - `Input::Exited` is fed for each reaped pid as soon as it is reaped, before any
//!   other action is executed, so a signal is never sent to a reaped pid.
//! - `Input::Tick` is fed whenever [`Supervisor::next_deadline`] has passed.
//!
//! Every operation is O(1) in the number of workers (hash maps by name and by pid, a
//! sorted deadline set) except `list` and the shutdown sweep, which must visit each.

use super::exit::Exit;
use super::intensity::{Intensity, Verdict};
use super::policy::{decide, is_clean, Decision};
use super::spec::{ChildSpec, Template};
use crate::protocol::{
    validate_name, ErrorKind, Reply, Request, StopReport, WireError, WorkerInfo, WorkerStateName,
};
use crate::signal::Signal;
use log::{debug, error, info, warn};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// One spawned process of a worker. Never reused, so a late event from a dead
/// instance (an output pipe's EOF, say) can never be mistaken for its successor.
pub type InstanceId = u64;

/// Where a reply goes: a request on a client connection, or a boot child from the
/// config (whose replies are logged, and whose failure aborts the boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTo {
    Conn { conn: u64, seq: u64 },
    Boot { index: usize },
}

/// The time of an input: monotonic microseconds (for deadlines and intensity; fine
/// enough that a timeout never fires early by a rounding) and wall milliseconds since the
/// Unix epoch (for what `list` shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub mono_us: u64,
    pub wall_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Request {
        from: ReplyTo,
        req: Request,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnPurpose {
    Start { reply_to: ReplyTo },
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Every worker is gone; the daemon should exit with this status.
    Exit { code: i32 },
}

/// Supervisor-wide settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_restarts: u32,
    pub max_seconds: u64,
}

#[derive(Debug)]
enum State {
    Running {
        pid: i32,
        instance: InstanceId,
        since_wall_ms: u64,
    },
    Stopping {
        pid: i32,
        instance: InstanceId,
        since_wall_ms: u64,
        /// When to SIGKILL; `None` once SIGKILL was sent.
        kill_at: Option<u64>,
        killed: bool,
        waiters: Vec<ReplyTo>,
    },
    /// No process: a restart is due at `retry_at` (or a restart spawn is in flight).
    Restarting { retry_at: u64 },
}

#[derive(Debug)]
struct Worker {
    spec: Rc<ChildSpec>,
    restarts: u32,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Now,
    AfterOtherEvents,
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
            templates,
            workers: HashMap::new(),
            by_pid: HashMap::new(),
            deadlines: BTreeSet::new(),
            pending: HashMap::new(),
            intensity: Intensity::new(limits.max_restarts, limits.max_seconds),
            next_instance: 1,
            phase: Phase::Running,
        }
    }

    /// The earliest monotonic time (µs) at which `Input::Tick` has work to do, if any.
    /// `None` means the daemon may sleep until something happens.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// How many names are registered.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        !matches!(self.phase, Phase::Running)
    }

    pub fn handle(&mut self, input: Input, now: Time) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Request { from, req } => self.on_request(from, req, now, &mut out),
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
                let reply = Reply {
                    count: Some(self.workers.len()),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
            Request::List => {
                let reply = Reply {
                    workers: Some(self.list()),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
            Request::Shutdown => {
                if let Phase::ShuttingDown { waiters, .. } = &mut self.phase {
                    waiters.push(from);
                } else if let Phase::Exited = self.phase {
                    // Everything is already stopped; the daemon is on its way out.
                    let reply = Reply {
                        shutdown: Some(Vec::new()),
                        ..Reply::ok()
                    };
                    self.reply(from, reply, now, out);
                } else {
                    info!("shutdown requested: stopping every worker");
                    self.begin_shutdown(0, Some(from), now, out);
                }
            }
        }
    }

    fn start(&mut self, from: ReplyTo, spec: Rc<ChildSpec>, out: &mut Vec<Action>) {
        let instance = self.new_instance();
        self.pending.insert(
            instance,
            PendingSpawn {
                spec: spec.clone(),
                purpose: SpawnPurpose::Start { reply_to: from },
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
        validate_name(&name).map_err(|msg| err(ErrorKind::InvalidName, msg))?;
        if let Some(worker) = self.workers.get(name.as_str()) {
            let mut reply = err(
                ErrorKind::AlreadyStarted,
                match worker.state.pid() {
                    Some(pid) => format!("{name} is already started (pid {pid})"),
                    None => format!("{name} is already started (restarting)"),
                },
            );
            if let Some(err) = reply.error.as_mut() {
                err.pid = worker.state.pid();
            }
            reply.pid = worker.state.pid();
            return Err(reply);
        }
        if self
            .pending
            .values()
            .any(|p| &*p.spec.name == name.as_str())
        {
            return Err(err(
                ErrorKind::AlreadyStarted,
                format!("{name} is already being started"),
            ));
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
        match &mut worker.state {
            State::Running { .. } => {
                let timeout = timeout_ms.unwrap_or(worker.spec.template.shutdown_ms);
                let key: Rc<str> = worker.spec.name.clone();
                self.begin_stop(&key, timeout, Some(from), now, out);
            }
            State::Stopping { waiters, .. } => waiters.push(from),
            State::Restarting { retry_at } => {
                let retry_at = *retry_at;
                let key = worker.spec.name.clone();
                self.deadlines.remove(&(retry_at, key.clone()));
                self.workers.remove(&key);
                info!("{key}: stopped while waiting to be restarted");
                let report = StopReport {
                    name: key.to_string(),
                    pid: None,
                    exit: None,
                    killed: false,
                };
                let reply = Reply {
                    stopped: Some(report),
                    ..Reply::ok()
                };
                self.reply(from, reply, now, out);
            }
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
            let reply = Reply::error(
                ErrorKind::BadRequest,
                "a message must not contain a newline (each line is one message)",
            );
            return out.push(Action::Reply {
                to: from,
                reply: Box::new(reply),
            });
        }
        match self.workers.get(name).map(|w| &w.state) {
            Some(State::Running { instance, .. } | State::Stopping { instance, .. }) => {
                out.push(Action::Cast {
                    instance: *instance,
                    message,
                    reply_to: from,
                })
            }
            Some(State::Restarting { .. }) => out.push(Action::Reply {
                to: from,
                reply: Box::new(not_running(name)),
            }),
            None => out.push(Action::Reply {
                to: from,
                reply: Box::new(not_found(name)),
            }),
        }
    }

    fn list(&self) -> Vec<WorkerInfo> {
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
                started_at_ms: w.state.since_wall_ms(),
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    // ----- process events -------------------------------------------------------

    fn on_spawned(&mut self, instance: InstanceId, pid: i32, now: Time, out: &mut Vec<Action>) {
        let Some(PendingSpawn { spec, purpose }) = self.pending.remove(&instance) else {
            return;
        };
        let name = spec.name.clone();
        self.by_pid.insert(pid, name.clone());
        let running = State::Running {
            pid,
            instance,
            since_wall_ms: now.wall_ms,
        };
        match purpose {
            SpawnPurpose::Start { reply_to } => {
                info!("{name}: started, pid {pid}");
                self.workers.insert(
                    name.clone(),
                    Worker {
                        spec,
                        restarts: 0,
                        state: running,
                    },
                );
                let reply = Reply {
                    name: Some(name.to_string()),
                    pid: Some(pid),
                    ..Reply::ok()
                };
                self.reply(reply_to, reply, now, out);
            }
            SpawnPurpose::Restart => {
                info!("{name}: restarted, pid {pid}");
                if let Some(worker) = self.workers.get_mut(&name) {
                    worker.state = running;
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
            SpawnPurpose::Restart => {
                // A failed exec on restart is an abnormal exit: it counts toward the
                // intensity, and the next attempt is due at once (after other events).
                warn!("{name}: restart failed: {error}");
                self.restart_or_escalate(&name, Retry::AfterOtherEvents, now, out);
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
        match std::mem::replace(&mut worker.state, State::Restarting { retry_at: 0 }) {
            State::Running { instance, .. } => {
                out.push(Action::Reaped { instance });
                let template = &worker.spec.template;
                let decision = if shutting_down {
                    Decision::Remove
                } else {
                    decide(template.restart, &exit, &template.clean_signals)
                };
                let clean = is_clean(&exit, &template.clean_signals);
                match decision {
                    Decision::Remove => {
                        if clean {
                            info!("{name}: exited ({exit}); not restarted");
                        } else {
                            warn!(
                                "{name}: exited abnormally ({exit}); not restarted ({})",
                                template.restart.as_str()
                            );
                        }
                        self.workers.remove(&name);
                        self.check_shutdown_complete(now, out);
                    }
                    Decision::Restart => {
                        if clean {
                            info!(
                                "{name}: exited ({exit}); restarting ({})",
                                template.restart.as_str()
                            );
                        } else {
                            warn!("{name}: exited abnormally ({exit}); restarting");
                        }
                        self.restart_or_escalate(&name, Retry::Now, now, out);
                    }
                }
            }
            State::Stopping {
                instance,
                killed,
                waiters,
                kill_at,
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
                self.workers.remove(&name);
                let report = StopReport {
                    name: name.to_string(),
                    pid: Some(pid),
                    exit: Some(exit.report()),
                    killed,
                };
                for to in waiters {
                    let reply = Reply {
                        stopped: Some(report.clone()),
                        ..Reply::ok()
                    };
                    self.reply(to, reply, now, out);
                }
                if let Phase::ShuttingDown { reports, .. } = &mut self.phase {
                    reports.push(report);
                }
                self.check_shutdown_complete(now, out);
            }
            restarting @ State::Restarting { .. } => worker.state = restarting,
        }
    }

    /// Count a restart against the intensity; restart `name` or escalate. A restart
    /// after a failed spawn is scheduled as a deadline due now rather than spawned at
    /// once, so a command that can never exec cannot monopolise the loop.
    fn restart_or_escalate(
        &mut self,
        name: &Rc<str>,
        retry: Retry,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            self.workers.remove(name);
            return self.check_shutdown_complete(now, out);
        }
        match self.intensity.record(now.mono_us / 1_000_000) {
            Verdict::Within => {
                let Some(worker) = self.workers.get_mut(name) else {
                    return;
                };
                worker.restarts += 1;
                worker.state = State::Restarting {
                    retry_at: now.mono_us,
                };
                if retry == Retry::AfterOtherEvents {
                    self.deadlines.insert((now.mono_us, name.clone()));
                    return;
                }
                let spec = worker.spec.clone();
                let instance = self.new_instance();
                self.pending.insert(
                    instance,
                    PendingSpawn {
                        spec: spec.clone(),
                        purpose: SpawnPurpose::Restart,
                    },
                );
                out.push(Action::Spawn { instance, spec });
            }
            Verdict::Exceeded => {
                error!(
                    "{name}: reached max restart intensity ({} restarts in {} s): stopping every worker and exiting with status 1",
                    self.intensity.len(),
                    self.intensity.max_seconds()
                );
                self.workers.remove(name);
                self.begin_shutdown(1, None, now, out);
            }
        }
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
                State::Restarting { retry_at } if *retry_at == at => {
                    let spec = worker.spec.clone();
                    let instance = self.new_instance();
                    self.pending.insert(
                        instance,
                        PendingSpawn {
                            spec: spec.clone(),
                            purpose: SpawnPurpose::Restart,
                        },
                    );
                    out.push(Action::Spawn { instance, spec });
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
        } = worker.state
        else {
            return;
        };
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
        let names: Vec<Rc<str>> = self.workers.keys().cloned().collect();
        for name in names {
            let Some(worker) = self.workers.get(&name) else {
                continue;
            };
            match worker.state {
                State::Running { .. } => {
                    let timeout = worker.spec.template.shutdown_ms;
                    self.begin_stop(&name, timeout, None, now, out);
                }
                State::Restarting { retry_at } => {
                    self.deadlines.remove(&(retry_at, name.clone()));
                    self.workers.remove(&name);
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

    fn new_instance(&mut self) -> InstanceId {
        let id = self.next_instance;
        self.next_instance += 1;
        id
    }

    /// Send a reply. A boot child's failure aborts the boot: like an OTP supervisor
    /// whose static child fails to start, the daemon stops and exits 1.
    fn reply(&mut self, to: ReplyTo, reply: Reply, now: Time, out: &mut Vec<Action>) {
        let boot_failed = matches!(to, ReplyTo::Boot { .. }) && !reply.ok;
        if let (true, Some(WireError { message, .. })) = (boot_failed, &reply.error) {
            error!("boot child failed: {message}; stopping every worker and exiting with status 1");
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
    fn pid(&self) -> Option<i32> {
        match *self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            State::Restarting { .. } => None,
        }
    }

    fn name(&self) -> WorkerStateName {
        match self {
            State::Running { .. } => WorkerStateName::Running,
            State::Stopping { .. } => WorkerStateName::Stopping,
            State::Restarting { .. } => WorkerStateName::Restarting,
        }
    }

    fn since_wall_ms(&self) -> u64 {
        match *self {
            State::Running { since_wall_ms, .. } | State::Stopping { since_wall_ms, .. } => {
                since_wall_ms
            }
            State::Restarting { .. } => 0,
        }
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
        format!("{name} has no running process (it is waiting to be restarted)"),
    )
}

#[cfg(test)]
mod tests;
