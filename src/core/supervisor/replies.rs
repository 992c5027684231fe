//! The core's answers and notices as data, and their one translation into the wire's
//! values (`protocol::Reply`, `protocol::Event`). This is the only file under `core/`
//! that knows the wire format or words a message for a client: the rules elsewhere say
//! *what* happened ([`Answer`], [`Refusal`], [`Notice`]), this file says how it reads.

use super::registry::Registry;
use super::worker::{EndCause, LastExit, Liveness, State};
use super::Time;
use crate::core::exit::Exit;
use crate::protocol::{self, ErrorKind, ExitReport, Reply, WireError, WorkerStateName};
use std::fmt;

/// The wire types the OS layer receives from the core.
pub use crate::protocol::{Counts, Event, Reply as WireReply};

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Answer {
    /// `start` and `restart`: the new process.
    Started {
        name: String,
        pid: i32,
    },
    /// `lookup`, `whois` and a ready `wait_ready`: its pid (if any) and state.
    Whereis {
        name: String,
        at: Whereabouts,
    },
    Count(Counts),
    List(Vec<protocol::WorkerInfo>),
    Stopped(StopOutcome),
    Shutdown(Vec<StopOutcome>),
    /// `kill`: the signal went to `pid`.
    Signalled {
        name: String,
        pid: i32,
        signal: String,
    },
    Reloaded(ReloadSummary),
    Health(HealthSummary),
    /// A rolling restart completed: these were restarted and are ready again.
    RolledOut(Rollout),
    /// `fence`: armed (or disarmed) over `armed` registered workers.
    Fenced {
        armed: usize,
    },
}

/// What `health` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct HealthSummary {
    pub healthy: bool,
    pub checked: usize,
    pub problems: Vec<String>,
}

/// Where a rolling restart got to.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Rollout {
    pub restarted: Vec<String>,
    pub not_restarted: Vec<String>,
}

/// Why a request was refused, or a waiter let down. `Display` is the message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Refusal {
    NotFound {
        name: String,
    },
    NoOwner {
        pid: i32,
    },
    NotRunning {
        name: String,
    },
    BeingStopped {
        name: String,
    },
    AlreadyStarted {
        name: String,
        at: Whereabouts,
    },
    InvalidName(String),
    NoSuchTemplate {
        name: String,
        known: String,
    },
    TemplateNotNamed {
        count: usize,
        known: String,
    },
    BadCommand(String),
    MultilineMessage,
    InvalidSignal(String),
    MaxChildren {
        max: usize,
    },
    /// `start` during a shutdown.
    NoNewWorkers,
    ShuttingDown,
    StartFailed {
        name: String,
        error: String,
    },
    RestartFailed {
        name: String,
        error: String,
    },
    /// A `start` or `restart` whose template's `env_file` could not be read or has a
    /// syntax error: nothing was spawned.
    BadEnvFile {
        name: String,
        error: String,
        /// An operator's restart (else a start).
        restart: bool,
    },
    StoppedBeforeRestart {
        name: String,
    },
    ReadyTimeout {
        name: String,
        timeout_ms: u64,
    },
    StoppedBeforeReady {
        name: String,
    },
    ExitedBeforeReady {
        name: String,
        exit: Exit,
    },
    NoProcessToWaitFor {
        name: String,
        at: Whereabouts,
    },
    InvalidConfig(String),
    /// `start`: names in its `after` are not registered.
    DependencyNotRunning {
        name: String,
        missing: Vec<String>,
    },
    /// `start`: what it is after was not ready in time; it was not started.
    DependencyTimeout {
        name: String,
        on: Vec<String>,
        timeout_ms: u64,
    },
    /// A start that waited for its dependencies was cancelled by a stop.
    StoppedBeforeStart {
        name: String,
    },
    /// `start` of a worker that would be after itself.
    AfterItself {
        name: String,
    },
    /// `restart` of a worker that waits for its dependencies.
    Blocked {
        name: String,
    },
    /// A rolling restart stopped at `name`, which did not become ready again.
    RolloutStopped {
        name: String,
        why: String,
        rollout: Rollout,
    },
}

impl Refusal {
    pub(super) fn not_found(name: &str) -> Refusal {
        Refusal::NotFound {
            name: name.to_string(),
        }
    }

    fn kind(&self) -> ErrorKind {
        use Refusal as R;
        match self {
            R::NotFound { .. } | R::NoOwner { .. } => ErrorKind::NotFound,
            R::NotRunning { .. } | R::BeingStopped { .. } | R::StoppedBeforeRestart { .. } => {
                ErrorKind::NotRunning
            }
            R::AlreadyStarted { .. } => ErrorKind::AlreadyStarted,
            R::InvalidName(_) => ErrorKind::InvalidName,
            R::NoSuchTemplate { .. } | R::TemplateNotNamed { .. } => ErrorKind::UnknownTemplate,
            R::BadCommand(_) | R::MultilineMessage => ErrorKind::BadRequest,
            R::InvalidSignal(_) => ErrorKind::InvalidSignal,
            R::MaxChildren { .. } => ErrorKind::MaxChildren,
            R::NoNewWorkers | R::ShuttingDown => ErrorKind::ShuttingDown,
            R::StartFailed { .. } | R::RestartFailed { .. } => ErrorKind::SpawnFailed,
            R::BadEnvFile { .. } => ErrorKind::InvalidEnvFile,
            R::ReadyTimeout { .. }
            | R::StoppedBeforeReady { .. }
            | R::ExitedBeforeReady { .. }
            | R::NoProcessToWaitFor { .. }
            | R::RolloutStopped { .. } => ErrorKind::NotReady,
            R::InvalidConfig(_) => ErrorKind::InvalidConfig,
            R::DependencyNotRunning { .. } | R::DependencyTimeout { .. } => {
                ErrorKind::DependencyNotRunning
            }
            R::StoppedBeforeStart { .. } | R::Blocked { .. } => ErrorKind::NotRunning,
            R::AfterItself { .. } => ErrorKind::BadRequest,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal as R;
        match self {
            R::NotFound { name } => write!(f, "{name} is not registered"),
            R::NoOwner { pid } => write!(f, "no worker owns pid {pid}"),
            R::NotRunning { name } => write!(
                f,
                "{name} has no running process (it is waiting to be restarted, or failed)"
            ),
            R::BeingStopped { name } => {
                write!(f, "{name} is being stopped; start it again once it is gone")
            }
            R::AlreadyStarted { name, at } => match at.pid {
                Some(pid) => write!(f, "{name} is already started (pid {pid})"),
                None => write!(f, "{name} is already started ({})", at.state.as_str()),
            },
            R::InvalidName(message) | R::BadCommand(message) | R::InvalidSignal(message) => {
                f.write_str(message)
            }
            R::NoSuchTemplate { name, known } => {
                write!(f, "no template named {name:?} (known: {known})")
            }
            R::TemplateNotNamed { count, known } => write!(
                f,
                "the config has {count} templates; name one with --template (known: {known})"
            ),
            R::MultilineMessage => {
                f.write_str("a message must not contain a newline (each line is one message)")
            }
            R::MaxChildren { max } => write!(
                f,
                "{max} workers are registered, the configured max_children"
            ),
            R::NoNewWorkers => f.write_str("the daemon is shutting down and starts no new workers"),
            R::ShuttingDown => f.write_str("the daemon is shutting down"),
            R::StartFailed { name, error } => write!(f, "cannot start {name}: {error}"),
            R::RestartFailed { name, error } => write!(f, "cannot restart {name}: {error}"),
            R::BadEnvFile {
                name,
                error,
                restart,
            } => {
                let verb = if *restart { "restart" } else { "start" };
                write!(f, "cannot {verb} {name}: {error}")
            }
            R::StoppedBeforeRestart { name } => {
                write!(f, "{name} was stopped before its restart completed")
            }
            R::ReadyTimeout { name, timeout_ms } => write!(
                f,
                "{name} did not report READY=1 within {timeout_ms} ms; it was killed"
            ),
            R::StoppedBeforeReady { name } => {
                write!(f, "{name} is being stopped before it was ready")
            }
            R::ExitedBeforeReady { name, exit } => {
                write!(f, "{name} exited ({exit}) before it was ready")
            }
            R::NoProcessToWaitFor { name, at } => {
                write!(f, "{name} has no running process ({})", at.state.as_str())
            }
            R::InvalidConfig(message) => {
                write!(f, "reload refused, nothing changed: {message}")
            }
            R::DependencyNotRunning { name, missing } => write!(
                f,
                "cannot start {name}: it is after {}, which {} not registered",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
            R::DependencyTimeout {
                name,
                on,
                timeout_ms,
            } => write!(
                f,
                "{name} was not started: {} did not become running and ready within {timeout_ms} ms (its ready_timeout_ms)",
                on.join(", ")
            ),
            R::StoppedBeforeStart { name } => write!(
                f,
                "{name} was stopped while it waited for the workers it is after"
            ),
            R::AfterItself { name } => write!(f, "{name} cannot be after itself"),
            R::Blocked { name } => write!(
                f,
                "{name} waits for the workers it is after; it starts once they are ready"
            ),
            R::RolloutStopped { name, why, rollout } => {
                write!(f, "rolling restart stopped at {name}: {why}")?;
                if !rollout.restarted.is_empty() {
                    write!(f, "; restarted: {}", rollout.restarted.join(", "))?;
                }
                let untouched: Vec<&String> = rollout
                    .not_restarted
                    .iter()
                    .filter(|n| *n != name)
                    .collect();
                if !untouched.is_empty() {
                    let names: Vec<&str> = untouched.iter().map(|n| n.as_str()).collect();
                    write!(f, "; not restarted: {}", names.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Where a worker is: its live pid, if any, and its state as clients name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Whereabouts {
    pid: Option<i32>,
    state: WorkerStateName,
}

impl Whereabouts {
    pub(super) fn of(state: &State) -> Whereabouts {
        Whereabouts {
            pid: state.pid(),
            state: state_name(state),
        }
    }

    /// The state's name as clients see it.
    pub(super) fn state_str(&self) -> &'static str {
        self.state.as_str()
    }
}

/// Something a `watch` subscriber hears about one worker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Notice {
    Started {
        pid: i32,
    },
    Ready {
        pid: i32,
    },
    /// Its process ended: on its own, stopped by an operator restart (`to_restart`),
    /// or killed by a liveness check (`killed_for`).
    Exited {
        pid: i32,
        exit: Exit,
        to_restart: bool,
        killed_for: Option<Liveness>,
    },
    /// It waits for these before it starts.
    Waiting {
        on: Vec<String>,
    },
    Unhealthy {
        failures: u32,
        message: String,
    },
    Healthy,
    Restarting {
        delay_ms: u64,
    },
    Stopped(StopCause),
    /// Given up after its own restart limit.
    Failed {
        last_exit: Option<EndCause>,
    },
    IntensityTripped,
}

/// Why a worker left the registry.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum StopCause {
    /// It ended and its restart type says no restart.
    NotRestarted(Exit),
    /// dynsup stopped it (or it had no process when asked to stop).
    Stopped,
    /// dynsup stopped it and had to SIGKILL it.
    Killed,
    /// Its operator restart could not be spawned.
    RestartNotSpawned(String),
    RemovedFromConfig,
    /// What it is after was not ready within the start's patience.
    NotStarted,
    /// The dead man's switch (`fence`) was not renewed in time.
    Fenced,
}

/// How a stop ended, for `stop` and `shutdown` replies.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StopOutcome {
    pub name: String,
    /// Absent when the worker had no live process.
    pub pid: Option<i32>,
    pub exit: Option<Exit>,
    pub killed: bool,
}

/// The registry by state (OTP's `count_children`; visits every worker): live
/// processes (starting, running, stopping) are `active`; no process with a restart
/// due (`backoff`, `restarting`) is `backoff`.
pub(super) fn counts(registry: &Registry) -> Counts {
    let mut counts = Counts {
        total: registry.len(),
        ..Counts::default()
    };
    for (_, entry) in registry.iter() {
        match entry.state() {
            State::Starting { .. } | State::Running { .. } => counts.active += 1,
            State::Stopping { .. } | State::Draining { .. } => {
                counts.active += 1;
                counts.stopping += 1;
            }
            State::Aborting { .. } => {
                counts.active += 1;
                counts.stopping += 1;
            }
            State::Spawning { .. } | State::Waiting { .. } => counts.backoff += 1,
            State::Failed { .. } => counts.failed += 1,
            State::Blocked { .. } => counts.waiting += 1,
        }
    }
    counts
}

/// How many workers of each template are in each state, by (template, state name)
/// (visits every worker; for `metrics`).
pub(super) fn census(
    registry: &Registry,
) -> std::collections::BTreeMap<(&str, &'static str), usize> {
    let mut census = std::collections::BTreeMap::new();
    for (_, entry) in registry.iter() {
        let template = entry.worker.spec.template.name.as_str();
        *census
            .entry((template, state_name(entry.state()).as_str()))
            .or_insert(0) += 1;
    }
    census
}

/// What a reload did, by `[[children]]` name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ReloadSummary {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// A `[[children]]` entry a reload could not apply.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Skipped {
    pub name: String,
    pub why: SkipReason,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum SkipReason {
    BadSpec(String),
    MaxChildren,
    HeldByDynamic,
    BeingStopped,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.why {
            SkipReason::BadSpec(message) => write!(f, "{name}: {message}"),
            SkipReason::MaxChildren => write!(f, "{name}: max_children workers are registered"),
            SkipReason::HeldByDynamic => {
                write!(f, "{name}: a dynamically started worker holds that name")
            }
            SkipReason::BeingStopped => write!(f, "{name}: it is being stopped"),
        }
    }
}

/// The reply line for an answer or a refusal.
pub(super) fn reply(result: Result<Answer, Refusal>) -> Reply {
    let answer = match result {
        Ok(answer) => answer,
        Err(refusal) => {
            let pid = match &refusal {
                Refusal::AlreadyStarted { at, .. } => at.pid,
                _ => None,
            };
            let rollout = match &refusal {
                Refusal::RolloutStopped { rollout, .. } => Some(rollout_report(rollout)),
                _ => None,
            };
            return Reply {
                rollout,
                ok: false,
                // `already_started` carries the live pid twice: in the error, and where
                // a `start` reply has it.
                pid,
                error: Some(WireError {
                    kind: refusal.kind(),
                    message: refusal.to_string(),
                    pid,
                }),
                ..Reply::default()
            };
        }
    };
    match answer {
        Answer::Started { name, pid } => Reply {
            name: Some(name),
            pid: Some(pid),
            ..Reply::ok()
        },
        Answer::Whereis { name, at } => Reply {
            name: Some(name),
            pid: at.pid,
            state: Some(at.state),
            ..Reply::ok()
        },
        Answer::Fenced { armed } => Reply {
            count: Some(armed),
            ..Reply::ok()
        },
        Answer::Count(counts) => Reply {
            count: Some(counts.total),
            counts: Some(counts),
            ..Reply::ok()
        },
        Answer::List(rows) => Reply {
            workers: Some(rows),
            ..Reply::ok()
        },
        Answer::Stopped(outcome) => Reply {
            stopped: Some(stop_report(outcome)),
            ..Reply::ok()
        },
        Answer::Shutdown(outcomes) => Reply {
            shutdown: Some(outcomes.into_iter().map(stop_report).collect()),
            ..Reply::ok()
        },
        Answer::Signalled { name, pid, signal } => Reply {
            name: Some(name),
            pid: Some(pid),
            signal: Some(signal),
            ..Reply::ok()
        },
        Answer::Reloaded(summary) => Reply {
            reload: Some(protocol::ReloadReport {
                started: summary.started,
                stopped: summary.stopped,
                restarted: summary.restarted,
                unchanged: summary.unchanged,
                skipped: summary.skipped.iter().map(Skipped::to_string).collect(),
                // The OS layer knows which daemon-wide settings changed.
                needs_daemon_restart: Vec::new(),
            }),
            ..Reply::ok()
        },
        Answer::Health(summary) => Reply {
            health: Some(protocol::HealthReport {
                healthy: summary.healthy,
                checked: summary.checked,
                problems: summary.problems,
            }),
            ..Reply::ok()
        },
        Answer::RolledOut(rollout) => Reply {
            rollout: Some(rollout_report(&rollout)),
            ..Reply::ok()
        },
    }
}

fn rollout_report(rollout: &Rollout) -> protocol::RolloutReport {
    protocol::RolloutReport {
        restarted: rollout.restarted.clone(),
        not_restarted: rollout.not_restarted.clone(),
    }
}

/// The `watch` line for a notice about `name`.
pub(super) fn event(name: &str, notice: Notice) -> Event {
    let name = name.to_string();
    match notice {
        Notice::Started { pid } => Event::Started { name, pid },
        Notice::Ready { pid } => Event::Ready { name, pid },
        Notice::Exited {
            pid,
            exit,
            to_restart,
            killed_for,
        } => Event::Exited {
            name,
            pid,
            reason: match (killed_for, to_restart) {
                (Some(why), _) => why.as_str().to_string(),
                (None, true) => format!("{exit} (stopped to be restarted)"),
                (None, false) => exit.to_string(),
            },
            exit: exit_report(exit),
        },
        Notice::Waiting { on } => Event::Waiting { name, on },
        Notice::Unhealthy { failures, message } => Event::Unhealthy {
            name,
            failures,
            message,
        },
        Notice::Healthy => Event::Healthy { name },
        Notice::Restarting { delay_ms } => Event::Restarting { name, delay_ms },
        Notice::Stopped(cause) => Event::Stopped {
            name,
            reason: match cause {
                StopCause::NotRestarted(exit) => format!("{exit}; not restarted"),
                StopCause::Stopped => "stopped".to_string(),
                StopCause::Killed => "killed after its stop timeout".to_string(),
                StopCause::RestartNotSpawned(error) => format!("spawn failed: {error}"),
                StopCause::RemovedFromConfig => "removed from the config".to_string(),
                StopCause::NotStarted => {
                    "not started: what it is after did not become ready in time".to_string()
                }
                StopCause::Fenced => protocol::FENCED_REASON.to_string(),
            },
        },
        Notice::Failed { last_exit } => Event::Failed {
            name,
            reason: last_exit.as_ref().map_or_else(String::new, end_reason),
        },
        Notice::IntensityTripped => Event::IntensityTripped { name },
    }
}

/// The `watch` line of a shutdown.
pub(super) fn shutdown_event() -> Event {
    Event::Shutdown
}

/// One `list` row per worker, sorted by name (visits every worker).
pub(super) fn list(registry: &Registry, now: Time) -> Answer {
    list_where(registry, now, |_, _| true)
}

/// `list` of the workers `keep` takes (by name and template), sorted by name.
pub(super) fn list_where(
    registry: &Registry,
    now: Time,
    keep: impl Fn(&str, &str) -> bool,
) -> Answer {
    let mut rows: Vec<protocol::WorkerInfo> = registry
        .iter()
        .filter(|(name, entry)| keep(name, &entry.worker.spec.template.name))
        .map(|(name, entry)| {
            let w = &entry.worker;
            let state = entry.state();
            protocol::WorkerInfo {
                name: name.to_string(),
                pid: state.pid(),
                template: w.spec.template.name.clone(),
                restart: w.spec.restart().as_str().to_string(),
                state: state_name(state),
                restarts: w.restarts,
                restarts_in_window: w.window.count_within(now.secs()) as u32,
                started_at_ms: state.proc().map_or(0, |p| p.since.wall_ms),
                last_exit: w.last_exit.as_ref().map(last_exit),
                next_try_ms: match *state {
                    State::Waiting { retry_wall_ms, .. } => Some(retry_wall_ms),
                    _ => None,
                },
                dynamic: w.dynamic,
                ready: matches!(state, State::Running { .. }),
                status: w.status.clone(),
                log_dropped: w.log_dropped,
                waiting_for: match state {
                    State::Blocked { .. } => not_ready(registry, &w.spec.after),
                    _ => Vec::new(),
                },
                health: w.last_probe.as_ref().map(|p| protocol::HealthInfo {
                    ok: p.ok,
                    failures: match state {
                        State::Running {
                            live:
                                super::worker::Live {
                                    probe: Some(probe), ..
                                },
                            ..
                        } => probe.failures,
                        _ => u32::from(!p.ok),
                    },
                    at_ms: p.at_ms,
                    message: p.message.clone(),
                }),
                critical: w.spec.critical,
            }
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Answer::List(rows)
}

/// The names among `after` that are not running and ready (what a `waiting` worker
/// waits for).
pub(super) fn not_ready(registry: &Registry, after: &[std::rc::Rc<str>]) -> Vec<String> {
    after
        .iter()
        .filter(|d| {
            !matches!(
                registry.get(d).map(|e| e.state()),
                Some(State::Running { .. })
            )
        })
        .map(|d| d.to_string())
        .collect()
}

/// What a reason reads like in `list`'s last exit and in a `failed` event.
pub(super) fn end_reason(cause: &EndCause) -> String {
    match cause {
        EndCause::Killed { why, .. } => why.as_str().to_string(),
        EndCause::Exited(exit) => exit.to_string(),
        EndCause::Stopped => "stopped".to_string(),
        EndCause::SpawnFailed(error) => format!("spawn failed: {error}"),
        EndCause::NotRestored(why) => why.clone(),
    }
}

fn last_exit(last: &LastExit) -> protocol::LastExit {
    protocol::LastExit {
        reason: end_reason(&last.cause),
        at_ms: last.at_ms,
        exit: match &last.cause {
            EndCause::Exited(exit) | EndCause::Killed { exit, .. } => Some(exit_report(*exit)),
            EndCause::Stopped | EndCause::SpawnFailed(_) | EndCause::NotRestored(_) => None,
        },
    }
}

fn stop_report(outcome: StopOutcome) -> protocol::StopReport {
    protocol::StopReport {
        name: outcome.name,
        pid: outcome.pid,
        exit: outcome.exit.map(exit_report),
        killed: outcome.killed,
    }
}

pub(super) fn exit_report(exit: Exit) -> ExitReport {
    match exit {
        Exit::Code(code) => ExitReport::Exited { code },
        Exit::Signaled {
            signal,
            core_dumped,
        } => ExitReport::Signaled {
            signal: signal.name(),
            core_dumped,
        },
    }
}

/// How `list`, `lookup` and errors name a state.
fn state_name(state: &State) -> WorkerStateName {
    match state {
        State::Starting { .. } => WorkerStateName::Starting,
        State::Running { .. } => WorkerStateName::Running,
        State::Stopping { .. } | State::Aborting { .. } => WorkerStateName::Stopping,
        State::Blocked { .. } => WorkerStateName::Waiting,
        State::Spawning { .. } | State::Waiting { delay_ms: 0, .. } => WorkerStateName::Restarting,
        State::Waiting { .. } => WorkerStateName::Backoff,
        State::Draining { .. } => WorkerStateName::Draining,
        State::Failed { .. } => WorkerStateName::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Signal;

    #[test]
    fn an_exit_reads_the_same_in_logs_and_on_the_wire() {
        for exit in [
            Exit::Code(0),
            Exit::Code(101),
            Exit::Signaled {
                signal: Signal::KILL,
                core_dumped: false,
            },
            Exit::Signaled {
                signal: Signal(11),
                core_dumped: true,
            },
        ] {
            assert_eq!(exit.to_string(), exit_report(exit).to_string());
        }
    }
}
