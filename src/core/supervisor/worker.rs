//! One worker's lifecycle: what it is ([`Worker`]), the state it is in ([`State`], each
//! owning at most one deadline), and the transition table ([`State::on`]).
//!
//! | state      | its process            | its deadline (→ `Due`)         | shown as               |
//! |------------|------------------------|--------------------------------|------------------------|
//! | `Blocked`  | none, not started yet  | `until`: a client's patience   | `waiting`              |
//! | `Spawning` | being spawned          | –                              | `restarting`           |
//! | `Starting` | live, not ready yet    | `ready_by`: the ready timeout  | `starting`             |
//! | `Running`  | live and ready         | the watchdog's or the next health check's, whichever is first | `running` |
//! | `Aborting` | live, SIGABRT sent (watchdog, health) | `kill_at`: SIGKILL | `stopping`             |
//! | `Stopping` | live, stop signal sent | `kill_at`: SIGKILL to its group| `stopping`             |
//! | `Draining` | ended; its group not yet | the drain's stage (below)    | `draining`             |
//! | `Waiting`  | none                   | `retry_at`: the next start     | `backoff`/`restarting` |
//! | `Failed`   | none                   | –                              | `failed`               |
//!
//! `Blocked` is a start put off until every worker it is `after` is running and ready
//! (the supervisor feeds `DepsReady` then). `Running` keeps the liveness checks: a
//! watchdog that each `WATCHDOG=1` pushes back, and the health check schedule; a missed
//! watchdog, `WATCHDOG=trigger`, or too many failed checks make it `Aborting`, whose
//! exit then counts as abnormal whatever its status.
//!
//! A worker is gone only when its whole process group (or cgroup) is gone. When its
//! main process ends — on its own, by an outside kill, by a stop, by the shutdown — it
//! is `Draining`: the OS layer says at once whether anything of its group is left; if
//! so, the leftovers get the stop signal, then SIGKILL at `kill_at` (at most
//! `shutdown_ms` after the end; a stop keeps its own deadline), and after that the
//! worker moves on anyway once `GIVE_UP_MS` have passed. Only then is the restart rule
//! applied or the stop answered.
//!
//! The table takes a state by value and an [`Event`] and returns where the worker goes
//! ([`Next`]) and what the OS layer must do ([`Effect`]s, in order). It decides nothing
//! that needs the rest of the supervisor: when a process ends, the row says so
//! ([`Next::Ended`]) and `lifecycle.rs` applies the restart rule and the intensity.
//! The registry re-indexes a worker's pid and deadline from its state on every change,
//! so a deadline can never outlive the state that owns it.

use super::replies::{Answer, Notice, Refusal, Whereabouts};
use super::{InstanceId, ReplyTo, Time};
use crate::core::exit::Exit;
use crate::core::intensity::Intensity;
use crate::core::spec::{ChildSpec, Readiness, Template};
use crate::signal::Signal;
use log::{info, warn};
use std::rc::Rc;

/// A registered name: its spec and its history. Its [`State`] is kept beside it by the
/// registry, which alone may change it.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) spec: Rc<ChildSpec>,
    /// Started at run time (recorded in the state file), not a `[[children]]` entry.
    pub(super) dynamic: bool,
    /// Restart attempts after exits.
    pub(super) restarts: u32,
    /// This worker's restart times: its own limit when the template sets one,
    /// otherwise only counted for `list`.
    pub(super) window: Intensity,
    /// Quick restarts in a row, for the backoff curve.
    pub(super) consecutive: u32,
    pub(super) last_exit: Option<LastExit>,
    /// The last `STATUS=` it sent.
    pub(super) status: Option<String>,
    /// Spawns in a row that failed for lack of a resource (they pace the next try).
    pub(super) shortages: u32,
    /// Output lines of this name dropped so far, as the OS layer last reported.
    pub(super) log_dropped: u64,
    /// Its current process's last health check, if one ran.
    pub(super) last_probe: Option<ProbeResult>,
}

/// How a health check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProbeResult {
    pub(super) ok: bool,
    pub(super) at_ms: u64,
    pub(super) message: String,
}

impl Worker {
    pub(super) fn new(spec: Rc<ChildSpec>, dynamic: bool, supervisor_seconds: u64) -> Worker {
        Worker {
            window: window_for(&spec.template, supervisor_seconds),
            spec,
            dynamic,
            restarts: 0,
            consecutive: 0,
            last_exit: None,
            status: None,
            shortages: 0,
            log_dropped: 0,
            last_probe: None,
        }
    }
}

/// A worker's restart window: its template's own limit, or (without one) an
/// unlimited window as long as the supervisor's, kept for `list`.
pub(super) fn window_for(template: &Template, supervisor_seconds: u64) -> Intensity {
    match template.limit {
        Some(limit) => Intensity::new(limit.max_restarts.unwrap_or(u32::MAX), limit.max_seconds),
        None => Intensity::unlimited(supervisor_seconds),
    }
}

/// How a worker's last process ended, and when (for `list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LastExit {
    pub(super) cause: EndCause,
    pub(super) at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EndCause {
    /// It exited on its own, or was killed from outside.
    Exited(Exit),
    /// dynsup stopped it.
    Stopped,
    /// Its restart could not be spawned.
    SpawnFailed(String),
    /// Restored `failed` from the state file, with why.
    NotRestored(String),
    /// dynsup killed it for a liveness failure; `exit` is how it then ended.
    Killed { why: Liveness, exit: Exit },
}

/// Why dynsup killed a live worker on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    /// Its watchdog expired (no `WATCHDOG=1` in time) or it sent `WATCHDOG=trigger`.
    Watchdog,
    /// Its health check failed `failures` times in a row.
    Health,
}

impl Liveness {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Liveness::Watchdog => "watchdog",
            Liveness::Health => "health",
        }
    }
}

/// One live process of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Proc {
    pub(super) pid: i32,
    pub(super) instance: InstanceId,
    pub(super) since: Time,
}

/// Why a process is being spawned, and so what its spawn result leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpawnPurpose {
    /// A new name (`start`, boot, restore, reload): unregistered again if it fails.
    Start { reply_to: ReplyTo },
    /// A restart after an exit: a failure counts like a crash.
    Restart,
    /// An operator restart (`restart`, reload of a changed child): a failure
    /// unregisters the worker and is answered.
    Operator { reply_to: Option<ReplyTo> },
}

impl SpawnPurpose {
    /// The client connection waiting for this spawn, if any (boot, restore and reload
    /// starts report their failures elsewhere).
    pub(super) fn client(self) -> Option<ReplyTo> {
        match self {
            SpawnPurpose::Start {
                reply_to: to @ ReplyTo::Conn { .. },
            }
            | SpawnPurpose::Operator {
                reply_to: Some(to @ ReplyTo::Conn { .. }),
            } => Some(to),
            SpawnPurpose::Start { .. } | SpawnPurpose::Operator { .. } | SpawnPurpose::Restart => {
                None
            }
        }
    }
}

/// What a finished stop leads to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AfterStop {
    /// Unregister (`stop`, shutdown, a child removed by reload).
    Remove,
    /// Start again with `spec` (`restart`, a child changed by reload).
    Restart {
        spec: Rc<ChildSpec>,
        reply_to: Option<ReplyTo>,
    },
    /// Restart it by the restart rule (counted, with its backoff): a worker it is
    /// `after`, whose template says `restart_with = "dependents"`, is restarting.
    Cascade { after: Rc<str> },
    /// Unregister, as `Remove`: the dead man's switch (`fence`) fired.
    Fence,
}

/// How long leftovers that were sent SIGKILL may take to be gone before the worker
/// moves on without them (a process in uninterruptible sleep cannot be hurried).
pub(super) const GIVE_UP_MS: u64 = 1000;

/// A stop in progress: who waits for it and what follows.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StopOrder {
    pub(super) waiters: Vec<ReplyTo>,
    pub(super) then: AfterStop,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum State {
    Spawning {
        instance: InstanceId,
        purpose: SpawnPurpose,
    },
    /// Waits for `READY=1` (`ready = "notify"`); `ready_by` is gone once the timeout
    /// fired (the process was killed and its exit is awaited).
    Starting {
        proc: Proc,
        ready_by: Option<u64>,
        waiters: Vec<ReplyTo>,
    },
    Running {
        proc: Proc,
        live: Live,
    },
    /// Killed for `why`: SIGABRT was sent to its group; SIGKILL at `kill_at` (gone once
    /// sent).
    Aborting {
        proc: Proc,
        kill_at: Option<u64>,
        why: Liveness,
    },
    /// Its start waits until every worker it is `after` is running and ready; then it
    /// is spawned for `purpose`. `until`: when a client that asked for the start stops
    /// waiting.
    Blocked {
        purpose: SpawnPurpose,
        until: Option<u64>,
    },
    /// `kill_at` is gone once SIGKILL was sent.
    Stopping {
        proc: Proc,
        kill_at: Option<u64>,
        order: StopOrder,
    },
    /// Its main process (`pgid`, instance `instance`) ended; what is left of its group
    /// is being stopped, then `ending` is carried out.
    Draining {
        pgid: i32,
        instance: InstanceId,
        stage: Drain,
        ending: Ending,
    },
    /// `delay_ms` is 0 after a failed exec (`restarting`), else a backoff.
    Waiting {
        retry_at: u64,
        retry_wall_ms: u64,
        delay_ms: u64,
    },
    /// No process. `held`: kept failed across daemon restarts (recorded so in the
    /// state file) — it made the daemon escalate, or was not restored; else it gave up
    /// after its own limit (a new daemon starts it again).
    Failed {
        held: bool,
    },
}

/// The liveness checks of a running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Live {
    pub(super) watchdog: Option<Watchdog>,
    pub(super) probe: Option<ProbeSchedule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Watchdog {
    pub(super) every_us: u64,
    /// It expires here unless `WATCHDOG=1` comes first.
    pub(super) due_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProbeSchedule {
    /// When the next check is due; none while one runs.
    pub(super) next_at: Option<u64>,
    /// Failed checks in a row.
    pub(super) failures: u32,
}

impl Live {
    /// The checks a process of `template` gets once it is ready.
    fn start(template: &Template, now: Time) -> Live {
        Live {
            watchdog: template.watchdog_ms.map(|ms| Watchdog {
                every_us: ms.saturating_mul(1000),
                due_at: after_ms(now, ms),
            }),
            probe: template.health.as_ref().map(|h| ProbeSchedule {
                next_at: Some(after_ms(now, h.interval_ms)),
                failures: 0,
            }),
        }
    }

    fn deadline(&self) -> Option<u64> {
        let watchdog = self.watchdog.map(|w| w.due_at);
        let probe = self.probe.and_then(|p| p.next_at);
        match (watchdog, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The watchdog expires before (or with) the next check.
    fn watchdog_first(&self) -> bool {
        match (self.watchdog, self.probe.and_then(|p| p.next_at)) {
            (Some(w), Some(next)) => w.due_at <= next,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A watchdog message from a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WatchdogNote {
    /// `WATCHDOG=1`
    Ping,
    /// `WATCHDOG=trigger`
    Trigger,
    /// `WATCHDOG_USEC=N` (0: off)
    Interval(u64),
}

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drain {
    /// The OS layer is asked whether anything is left (answered at once). `kill_at`:
    /// when leftovers get SIGKILL (none: they get it at once).
    Checking { kill_at: Option<u64> },
    /// Leftovers got the stop signal; SIGKILL at `kill_at`.
    Signalled { kill_at: u64 },
    /// Leftovers got SIGKILL; the worker moves on at `give_up_at` regardless.
    Killed { give_up_at: u64 },
}

/// What happens to one worker.
#[derive(Debug)]
pub(super) enum Event {
    /// Its spawn succeeded: the process exists and has exec'd.
    Spawned { pid: i32 },
    /// Its spawn failed: nothing runs.
    SpawnFailed { error: String },
    /// It sent `READY=1`.
    Ready,
    /// Its process was reaped.
    Exited { exit: Exit },
    /// Its deadline passed.
    Due,
    /// dynsup stops it. A stop in progress takes the new waiter and the new `then`.
    Stop(StopRequest),
    /// SIGKILL now, if it is being stopped (a second shutdown signal).
    KillNow,
    /// The OS layer's answer to `Reaped`: is anything of its group left?
    Leftovers { left: bool },
    /// Nothing of its group is left any more.
    LeftoversGone,
    /// Answer `from` once it is ready.
    WaitReady { from: ReplyTo },
    /// Every worker it is `after` is running and ready.
    DepsReady,
    /// A watchdog message from its process (group).
    Watchdog(WatchdogNote),
    /// Its current process's health check ended.
    ProbeDone { ok: bool, message: String },
}

/// A stop dynsup orders: the stop signal now, SIGKILL after `timeout_ms`.
#[derive(Debug)]
pub(super) struct StopRequest {
    pub(super) timeout_ms: u64,
    pub(super) waiter: Option<ReplyTo>,
    pub(super) then: AfterStop,
}

/// Where a worker goes after an event.
#[derive(Debug)]
pub(super) enum Next {
    /// It stays registered, in this state.
    To(State),
    /// Its process is gone (or never came): the lifecycle decides what follows.
    Ended(Ending),
    /// It is to be spawned now, for this purpose (a restart due, or a start whose
    /// dependencies are ready): the lifecycle spawns it.
    Spawn(SpawnPurpose),
    /// It had no process and leaves the registry.
    Removed,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ending {
    /// It exited on its own, was killed from outside, by its ready timeout, or (then
    /// `killed_for` says why) by a liveness check.
    Exited {
        pid: i32,
        exit: Exit,
        ran_us: u64,
        killed_for: Option<Liveness>,
    },
    /// A stop that dynsup ordered completed.
    Stopped {
        pid: i32,
        exit: Exit,
        killed: bool,
        order: StopOrder,
    },
    /// The spawn (clone or exec) failed.
    NotStarted {
        error: String,
        purpose: SpawnPurpose,
    },
}

/// What the OS layer must do, in order (the lifecycle turns these into actions).
#[derive(Debug, PartialEq)]
pub(super) enum Effect {
    Signal {
        pid: i32,
        signal: Signal,
        group: bool,
    },
    /// Its main process `pid` was reaped; the OS layer answers with `Leftovers`.
    Reaped {
        instance: InstanceId,
        pid: i32,
    },
    /// Signal whatever is left of the instance's group (or cgroup).
    SignalLeftovers {
        instance: InstanceId,
        signal: Signal,
    },
    /// Run its health check for this live instance.
    RunProbe {
        instance: InstanceId,
    },
    Notice(Notice),
    Answer {
        to: ReplyTo,
        answer: Result<Answer, Refusal>,
    },
}

impl State {
    /// The transition table. `name` and `template` are the worker's, for messages and
    /// settings; `now` is the time of the event.
    ///
    /// | state \ event | Spawned          | SpawnFailed | Ready   | Exited           | Due                | Stop                | KillNow | Leftovers / Gone | WaitReady |
    /// |---------------|------------------|-------------|---------|------------------|--------------------|---------------------|---------|------------------|-----------|
    /// | Spawning      | Starting/Running | Ended       | –       | –                | –                  | (never)             | –       | –                | refused   |
    /// | Starting      | –                | –           | Running | Draining (+waiters) | SIGKILL (+waiters) | Stopping (+waiters) | –    | –                | parked    |
    /// | Running       | –                | –           | –       | Draining         | –                  | Stopping            | –       | –                | answered  |
    /// | Stopping      | –                | –           | –       | Draining         | SIGKILL            | joins the stop      | SIGKILL | –                | refused   |
    /// | Draining      | –                | –           | –       | –                | SIGKILL / Ended    | joins, or a stop    | SIGKILL | Ended or signal  | refused   |
    /// | Waiting       | –                | –           | –       | –                | Respawn            | Removed             | –       | –                | refused   |
    /// | Failed        | –                | –           | –       | –                | –                  | Removed             | –       | –                | refused   |
    ///
    /// "–" leaves the state as it is: a harmless repeat (a late `READY=1`), or a pair
    /// no caller feeds, which debug builds assert. Every pair is written out (no
    /// wildcard), so a new state does not compile until each event has its row.
    pub(super) fn on(
        self,
        event: Event,
        name: &str,
        template: &Template,
        now: Time,
    ) -> (Next, Vec<Effect>) {
        use Event as E;
        use State as S;
        let mut effects = Vec::with_capacity(2);
        let next = match (self, event) {
            (S::Spawning { instance, .. }, E::Spawned { pid }) => {
                let proc = Proc {
                    pid,
                    instance,
                    since: now,
                };
                effects.push(Effect::Notice(Notice::Started { pid }));
                Next::To(match template.ready {
                    Readiness::Notify => S::Starting {
                        proc,
                        ready_by: Some(after_ms(now, template.ready_timeout_ms)),
                        waiters: Vec::new(),
                    },
                    Readiness::Exec => S::Running {
                        proc,
                        live: Live::start(template, now),
                    },
                })
            }
            (S::Spawning { purpose, .. }, E::SpawnFailed { error }) => {
                Next::Ended(Ending::NotStarted { error, purpose })
            }

            (S::Starting { proc, waiters, .. }, E::Ready) => {
                info!("{name}: ready (pid {})", proc.pid);
                effects.push(Effect::Notice(Notice::Ready { pid: proc.pid }));
                for to in waiters {
                    effects.push(answer(to, ready(name, proc)));
                }
                Next::To(S::Running {
                    proc,
                    live: Live::start(template, now),
                })
            }
            (S::Starting { proc, waiters, .. }, E::Exited { exit }) => {
                let draining = drain_after_exit(proc, exit, template, now, &mut effects);
                for to in waiters {
                    let refusal = Refusal::ExitedBeforeReady {
                        name: name.to_string(),
                        exit,
                    };
                    effects.push(answer(to, Err(refusal)));
                }
                Next::To(draining)
            }
            (
                S::Starting {
                    proc,
                    ready_by: Some(_),
                    waiters,
                },
                E::Due,
            ) => {
                let timeout_ms = template.ready_timeout_ms;
                warn!("{name}: not ready within {timeout_ms} ms: killing it (a failed start; the restart rule applies)");
                effects.push(kill_group(proc.pid));
                for to in waiters {
                    let refusal = Refusal::ReadyTimeout {
                        name: name.to_string(),
                        timeout_ms,
                    };
                    effects.push(answer(to, Err(refusal)));
                }
                Next::To(S::Starting {
                    proc,
                    ready_by: None,
                    waiters: Vec::new(),
                })
            }
            (
                S::Starting {
                    proc,
                    ready_by,
                    mut waiters,
                },
                E::WaitReady { from },
            ) => {
                waiters.push(from);
                Next::To(S::Starting {
                    proc,
                    ready_by,
                    waiters,
                })
            }

            (S::Running { proc, .. }, E::Exited { exit }) => {
                Next::To(drain_after_exit(proc, exit, template, now, &mut effects))
            }
            (S::Running { proc, live }, E::WaitReady { from }) => {
                effects.push(answer(from, ready(name, proc)));
                Next::To(S::Running { proc, live })
            }
            (S::Running { proc, mut live }, E::Watchdog(note)) => {
                match note {
                    WatchdogNote::Trigger => {
                        warn!("{name}: sent WATCHDOG=trigger: killing it with SIGABRT (the restart rule applies)");
                        return abort(proc, Liveness::Watchdog, template, now, effects);
                    }
                    WatchdogNote::Ping => {
                        if let Some(w) = &mut live.watchdog {
                            w.due_at = now.mono_us.saturating_add(w.every_us);
                        }
                    }
                    WatchdogNote::Interval(0) => live.watchdog = None,
                    WatchdogNote::Interval(every_us) => {
                        live.watchdog = Some(Watchdog {
                            every_us,
                            due_at: now.mono_us.saturating_add(every_us),
                        })
                    }
                }
                Next::To(S::Running { proc, live })
            }
            (S::Running { proc, mut live }, E::Due) => {
                if live.watchdog_first() {
                    let ms = live.watchdog.map_or(0, |w| w.every_us / 1000);
                    warn!("{name}: no WATCHDOG=1 within {ms} ms: killing it with SIGABRT (the restart rule applies)");
                    return abort(proc, Liveness::Watchdog, template, now, effects);
                }
                if let Some(probe) = &mut live.probe {
                    probe.next_at = None;
                    effects.push(Effect::RunProbe {
                        instance: proc.instance,
                    });
                }
                Next::To(S::Running { proc, live })
            }
            (S::Running { proc, mut live }, E::ProbeDone { ok, message }) => {
                let (Some(probe), Some(health)) = (&mut live.probe, &template.health) else {
                    return (Next::To(S::Running { proc, live }), effects);
                };
                probe.next_at = Some(after_ms(now, health.interval_ms));
                if ok {
                    if probe.failures > 0 {
                        info!("{name}: passes its health check again");
                        effects.push(Effect::Notice(Notice::Healthy));
                    }
                    probe.failures = 0;
                    return (Next::To(S::Running { proc, live }), effects);
                }
                probe.failures = probe.failures.saturating_add(1);
                let failures = probe.failures;
                let limit = health.failures;
                warn!("{name}: health check failed ({failures} of {limit} in a row): {message}");
                effects.push(Effect::Notice(Notice::Unhealthy { failures, message }));
                if failures >= limit {
                    warn!("{name}: {failures} failed health checks in a row: killing it with SIGABRT (the restart rule applies)");
                    return abort(proc, Liveness::Health, template, now, effects);
                }
                Next::To(S::Running { proc, live })
            }
            (S::Starting { proc, waiters, .. }, E::Watchdog(WatchdogNote::Trigger)) => {
                warn!("{name}: sent WATCHDOG=trigger before it was ready: killing it with SIGABRT (the restart rule applies)");
                for to in waiters {
                    let refusal = Refusal::StoppedBeforeReady {
                        name: name.to_string(),
                    };
                    effects.push(answer(to, Err(refusal)));
                }
                return abort(proc, Liveness::Watchdog, template, now, effects);
            }
            // The watchdog runs once the worker is ready; a late message from a process
            // on its way out changes nothing.
            (
                state @ (S::Starting { .. } | S::Stopping { .. } | S::Aborting { .. }),
                E::Watchdog(_),
            )
            | (
                state @ (S::Starting { .. } | S::Stopping { .. } | S::Aborting { .. }),
                E::ProbeDone { .. },
            ) => Next::To(state),

            (S::Aborting { proc, kill_at, why }, E::Exited { exit }) => {
                warn!("{name}: ended after its {} kill ({exit})", why.as_str());
                let ending = Ending::Exited {
                    pid: proc.pid,
                    exit,
                    ran_us: now.mono_us.saturating_sub(proc.since.mono_us),
                    killed_for: Some(why),
                };
                Next::To(drain(proc, kill_at, ending, &mut effects))
            }
            (
                S::Aborting {
                    proc,
                    kill_at: Some(_),
                    why,
                },
                E::Due,
            )
            | (S::Aborting { proc, why, .. }, E::KillNow) => {
                effects.push(kill_group(proc.pid));
                Next::To(S::Aborting {
                    proc,
                    kill_at: None,
                    why,
                })
            }
            (S::Aborting { proc, kill_at, .. }, E::Stop(stop)) => {
                // The kill is under way; the stop takes it over (and what follows it).
                Next::To(S::Stopping {
                    proc,
                    kill_at,
                    order: StopOrder {
                        waiters: stop.waiter.into_iter().collect(),
                        then: stop.then,
                    },
                })
            }
            (state @ S::Aborting { .. }, E::Ready) => Next::To(state),

            (S::Blocked { purpose, .. }, E::DepsReady) => Next::Spawn(purpose),
            (
                S::Blocked {
                    purpose: SpawnPurpose::Start { reply_to },
                    until: Some(_),
                },
                E::Due,
            ) => {
                let on = template.after.clone();
                warn!(
                    "{name}: what it is after was not running and ready within {} ms; not started",
                    template.ready_timeout_ms
                );
                let refusal = Refusal::DependencyTimeout {
                    name: name.to_string(),
                    on,
                    timeout_ms: template.ready_timeout_ms,
                };
                effects.push(answer(reply_to, Err(refusal)));
                Next::Removed
            }
            (S::Blocked { purpose, .. }, E::Stop(_)) => {
                if let Some(to) = purpose.client() {
                    let refusal = Refusal::StoppedBeforeStart {
                        name: name.to_string(),
                    };
                    effects.push(answer(to, Err(refusal)));
                }
                Next::Removed
            }

            (S::Starting { proc, waiters, .. }, E::Stop(stop)) => {
                for to in waiters {
                    let refusal = Refusal::StoppedBeforeReady {
                        name: name.to_string(),
                    };
                    effects.push(answer(to, Err(refusal)));
                }
                Next::To(begin_stop(proc, stop, name, template, now, &mut effects))
            }
            (S::Running { proc, .. }, E::Stop(stop)) => {
                Next::To(begin_stop(proc, stop, name, template, now, &mut effects))
            }
            (
                S::Stopping {
                    proc,
                    kill_at,
                    mut order,
                },
                E::Stop(stop),
            ) => {
                join_stop(&mut order, stop, name, &mut effects);
                Next::To(S::Stopping {
                    proc,
                    kill_at,
                    order,
                })
            }
            (
                S::Stopping {
                    proc,
                    kill_at: Some(_),
                    order,
                },
                E::Due,
            )
            | (S::Stopping { proc, order, .. }, E::KillNow) => {
                effects.push(kill_group(proc.pid));
                Next::To(S::Stopping {
                    proc,
                    kill_at: None,
                    order,
                })
            }
            (
                S::Stopping {
                    proc,
                    kill_at,
                    order,
                },
                E::Exited { exit },
            ) => {
                let killed = kill_at.is_none();
                if killed {
                    warn!("{name}: stopped: did not exit in time, killed ({exit})");
                } else {
                    info!("{name}: stopped ({exit})");
                }
                let ending = Ending::Stopped {
                    pid: proc.pid,
                    exit,
                    killed,
                    order,
                };
                Next::To(drain(proc, kill_at, ending, &mut effects))
            }

            (
                S::Draining {
                    stage: Drain::Checking { .. },
                    ending,
                    ..
                },
                E::Leftovers { left: false },
            ) => Next::Ended(ending),
            (
                S::Draining {
                    pgid,
                    instance,
                    stage: Drain::Checking { kill_at },
                    ending,
                },
                E::Leftovers { left: true },
            ) => {
                let stage = match kill_at {
                    Some(kill_at) => {
                        let signal = template.stop_signal;
                        let wait_ms = kill_at.saturating_sub(now.mono_us) / 1000;
                        warn!("{name}: its main process ended, but its group still has processes: sending them {signal} (SIGKILL after {wait_ms} ms)");
                        effects.push(Effect::SignalLeftovers { instance, signal });
                        Drain::Signalled { kill_at }
                    }
                    None => {
                        warn!("{name}: its main process was killed, and its group still has processes: sending them SIGKILL");
                        effects.push(kill_leftovers(instance));
                        Drain::Killed {
                            give_up_at: after_ms(now, GIVE_UP_MS),
                        }
                    }
                };
                Next::To(S::Draining {
                    pgid,
                    instance,
                    stage,
                    ending,
                })
            }
            (
                S::Draining {
                    stage: Drain::Signalled { .. } | Drain::Killed { .. },
                    ending,
                    ..
                },
                E::LeftoversGone,
            ) => {
                info!("{name}: what was left of its group is gone");
                Next::Ended(ending)
            }
            (
                S::Draining {
                    pgid,
                    instance,
                    stage: Drain::Signalled { .. },
                    ending,
                },
                E::Due | E::KillNow,
            )
            | (
                S::Draining {
                    pgid,
                    instance,
                    stage: Drain::Killed { .. },
                    ending,
                },
                E::KillNow,
            ) => {
                warn!("{name}: processes left in its group did not exit in time: sending them SIGKILL");
                effects.push(kill_leftovers(instance));
                Next::To(S::Draining {
                    pgid,
                    instance,
                    stage: Drain::Killed {
                        give_up_at: after_ms(now, GIVE_UP_MS),
                    },
                    ending,
                })
            }
            (
                S::Draining {
                    stage: Drain::Killed { .. },
                    ending,
                    ..
                },
                E::Due,
            ) => {
                warn!("{name}: processes left in its group outlived SIGKILL by {GIVE_UP_MS} ms (uninterruptible?); going on without them");
                Next::Ended(ending)
            }
            (
                S::Draining {
                    pgid,
                    instance,
                    stage: stage @ (Drain::Signalled { .. } | Drain::Killed { .. }),
                    ending,
                },
                E::Stop(stop),
            ) => {
                // A stop while leftovers drain: it completes when they are gone, and
                // replaces what would have followed the exit (a restart).
                let ending = match ending {
                    Ending::Stopped {
                        pid,
                        exit,
                        killed,
                        mut order,
                    } => {
                        join_stop(&mut order, stop, name, &mut effects);
                        Ending::Stopped {
                            pid,
                            exit,
                            killed,
                            order,
                        }
                    }
                    Ending::Exited { pid, exit, .. } => Ending::Stopped {
                        pid,
                        exit,
                        killed: false,
                        order: StopOrder {
                            waiters: stop.waiter.into_iter().collect(),
                            then: stop.then,
                        },
                    },
                    ending @ Ending::NotStarted { .. } => ending,
                };
                Next::To(S::Draining {
                    pgid,
                    instance,
                    stage,
                    ending,
                })
            }

            (S::Waiting { .. }, E::Due) => Next::Spawn(SpawnPurpose::Restart),
            (S::Waiting { .. } | S::Failed { .. }, E::Stop(_)) => Next::Removed,

            // Without a live process there is nothing to wait for.
            (
                state @ (S::Spawning { .. }
                | S::Blocked { .. }
                | S::Aborting { .. }
                | S::Stopping { .. }
                | S::Draining { .. }
                | S::Waiting { .. }
                | S::Failed { .. }),
                E::WaitReady { from },
            ) => {
                let refusal = Refusal::NoProcessToWaitFor {
                    name: name.to_string(),
                    at: Whereabouts::of(&state),
                };
                effects.push(answer(from, Err(refusal)));
                Next::To(state)
            }
            // A repeated or late `READY=1`, or one from a process being stopped.
            (state @ (S::Running { .. } | S::Stopping { .. }), E::Ready) => Next::To(state),

            // Pairs no caller feeds: a spawn's answer goes to `Spawning` only, and comes
            // before anything else reaches that worker, as does the answer to `Reaped`
            // (`Checking`); only a live process exits, says READY=1 or WATCHDOG=1 (they
            // are found by pid), or has its health checked; only an owned deadline falls
            // due; only a stopping, aborting or draining worker is killed at once; only a
            // draining one hears of leftovers; only a blocked one of its dependencies.
            (
                state @ (S::Blocked { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Aborting { .. }
                | S::Stopping { .. }
                | S::Draining { .. }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ (E::Spawned { .. } | E::SpawnFailed { .. }),
            )
            | (
                state @ (S::Blocked { .. }
                | S::Spawning { .. }
                | S::Draining { .. }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ (E::Ready | E::Exited { .. } | E::Watchdog(_) | E::ProbeDone { .. }),
            )
            | (
                state @ (S::Blocked { .. }
                | S::Spawning { .. }
                | S::Starting { ready_by: None, .. }
                | S::Aborting { kill_at: None, .. }
                | S::Stopping { kill_at: None, .. }
                | S::Draining {
                    stage: Drain::Checking { .. },
                    ..
                }
                | S::Failed { .. }),
                event @ E::Due,
            )
            | (
                state @ (S::Spawning { .. }
                | S::Draining {
                    stage: Drain::Checking { .. },
                    ..
                }),
                event @ E::Stop(_),
            )
            | (
                state @ (S::Blocked { .. }
                | S::Spawning { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Draining {
                    stage: Drain::Checking { .. },
                    ..
                }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ E::KillNow,
            )
            | (
                state @ (S::Blocked { .. }
                | S::Spawning { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Aborting { .. }
                | S::Stopping { .. }
                | S::Draining {
                    stage: Drain::Signalled { .. } | Drain::Killed { .. },
                    ..
                }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ E::Leftovers { .. },
            )
            | (
                state @ (S::Blocked { .. }
                | S::Spawning { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Aborting { .. }
                | S::Stopping { .. }
                | S::Draining {
                    stage: Drain::Checking { .. },
                    ..
                }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ E::LeftoversGone,
            )
            | (
                state @ (S::Spawning { .. }
                | S::Starting { .. }
                | S::Running { .. }
                | S::Aborting { .. }
                | S::Stopping { .. }
                | S::Draining { .. }
                | S::Waiting { .. }
                | S::Failed { .. }),
                event @ E::DepsReady,
            ) => {
                debug_assert!(false, "{name}: no transition for {event:?} in {state:?}");
                Next::To(state)
            }
        };
        (next, effects)
    }

    /// The one deadline this state owns, if any (monotonic µs).
    pub(super) fn deadline(&self) -> Option<u64> {
        match *self {
            State::Starting { ready_by, .. } => ready_by,
            State::Stopping { kill_at, .. } => kill_at,
            State::Draining { stage, .. } => match stage {
                Drain::Checking { .. } => None,
                Drain::Signalled { kill_at } => Some(kill_at),
                Drain::Killed { give_up_at } => Some(give_up_at),
            },
            State::Waiting { retry_at, .. } => Some(retry_at),
            State::Running { live, .. } => live.deadline(),
            State::Aborting { kill_at, .. } => kill_at,
            State::Blocked { until, .. } => until,
            State::Spawning { .. } | State::Failed { .. } => None,
        }
    }

    /// The live process, if any.
    pub(super) fn proc(&self) -> Option<&Proc> {
        match self {
            State::Starting { proc, .. }
            | State::Running { proc, .. }
            | State::Aborting { proc, .. }
            | State::Stopping { proc, .. } => Some(proc),
            State::Blocked { .. }
            | State::Spawning { .. }
            | State::Draining { .. }
            | State::Waiting { .. }
            | State::Failed { .. } => None,
        }
    }

    pub(super) fn pid(&self) -> Option<i32> {
        self.proc().map(|p| p.pid)
    }

    /// The instance whose OS answer this state awaits, if any: a spawn in flight, or
    /// the leftovers of an ended process.
    pub(super) fn awaited_instance(&self) -> Option<InstanceId> {
        match *self {
            State::Spawning { instance, .. } | State::Draining { instance, .. } => Some(instance),
            _ => None,
        }
    }
}

fn after_ms(now: Time, ms: u64) -> u64 {
    now.mono_us.saturating_add(ms.saturating_mul(1000))
}

fn kill_group(pid: i32) -> Effect {
    Effect::Signal {
        pid,
        signal: Signal::KILL,
        group: true,
    }
}

fn answer(to: ReplyTo, answer: Result<Answer, Refusal>) -> Effect {
    Effect::Answer { to, answer }
}

fn ready(name: &str, proc: Proc) -> Result<Answer, Refusal> {
    Ok(Answer::Whereis {
        name: name.to_string(),
        at: Whereabouts::of(&State::Running {
            proc,
            live: Live::default(),
        }),
    })
}

fn kill_leftovers(instance: InstanceId) -> Effect {
    Effect::SignalLeftovers {
        instance,
        signal: Signal::KILL,
    }
}

/// The main process ended on its own (or was killed from outside, or by the ready
/// timeout): leftovers, if any, get at most `shutdown_ms` before SIGKILL.
fn drain_after_exit(
    proc: Proc,
    exit: Exit,
    template: &Template,
    now: Time,
    effects: &mut Vec<Effect>,
) -> State {
    let ending = Ending::Exited {
        pid: proc.pid,
        exit,
        ran_us: now.mono_us.saturating_sub(proc.since.mono_us),
        killed_for: None,
    };
    drain(
        proc,
        Some(after_ms(now, template.shutdown_ms)),
        ending,
        effects,
    )
}

/// Kill a live process for a liveness failure: SIGABRT to its group now (as systemd
/// does, so it can dump core), SIGKILL after `shutdown_ms`.
fn abort(
    proc: Proc,
    why: Liveness,
    template: &Template,
    now: Time,
    mut effects: Vec<Effect>,
) -> (Next, Vec<Effect>) {
    effects.push(Effect::Signal {
        pid: proc.pid,
        signal: Signal::ABRT,
        group: true,
    });
    let state = State::Aborting {
        proc,
        kill_at: Some(after_ms(now, template.shutdown_ms)),
        why,
    };
    (Next::To(state), effects)
}

/// The main process was reaped: ask the OS layer what is left of its group.
fn drain(proc: Proc, kill_at: Option<u64>, ending: Ending, effects: &mut Vec<Effect>) -> State {
    effects.push(Effect::Reaped {
        instance: proc.instance,
        pid: proc.pid,
    });
    State::Draining {
        pgid: proc.pid,
        instance: proc.instance,
        stage: Drain::Checking { kill_at },
        ending,
    }
}

/// A stop joins one in progress with the new `then`. A pending restart that a plain
/// stop cancels is answered; one replaced by another restart (a reload's new spec)
/// keeps its requester.
fn join_stop(order: &mut StopOrder, stop: StopRequest, name: &str, effects: &mut Vec<Effect>) {
    match (
        std::mem::replace(&mut order.then, stop.then),
        &mut order.then,
    ) {
        (
            AfterStop::Restart {
                reply_to: Some(to), ..
            },
            AfterStop::Restart {
                reply_to: inherited @ None,
                ..
            },
        ) => *inherited = Some(to),
        (
            AfterStop::Restart {
                reply_to: Some(to), ..
            },
            _,
        ) => {
            let refusal = Refusal::StoppedBeforeRestart {
                name: name.to_string(),
            };
            effects.push(answer(to, Err(refusal)));
        }
        _ => {}
    }
    order.waiters.extend(stop.waiter);
}

/// Stop signal to the group now, SIGKILL at the deadline.
fn begin_stop(
    proc: Proc,
    stop: StopRequest,
    name: &str,
    template: &Template,
    now: Time,
    effects: &mut Vec<Effect>,
) -> State {
    let StopRequest {
        timeout_ms,
        waiter,
        then,
    } = stop;
    let signal = template.stop_signal;
    info!(
        "{name}: stopping: sending {signal} to process group {} (SIGKILL after {timeout_ms} ms)",
        proc.pid
    );
    effects.push(Effect::Signal {
        pid: proc.pid,
        signal,
        group: true,
    });
    State::Stopping {
        proc,
        kill_at: Some(after_ms(now, timeout_ms)),
        order: StopOrder {
            waiters: waiter.into_iter().collect(),
            then,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::RestartType;

    const T0: Time = Time {
        mono_us: 1_000_000,
        wall_ms: 1_700_000_000_000,
    };

    fn template(ready: Readiness) -> Template {
        Template {
            ready,
            restart: RestartType::Permanent,
            ..Template::new("t", vec!["/bin/true".to_string()])
        }
    }

    fn proc() -> Proc {
        Proc {
            pid: 101,
            instance: 1,
            since: T0,
        }
    }

    fn conn() -> ReplyTo {
        ReplyTo::Conn { conn: 1, seq: 0 }
    }

    /// One state of each kind, deadlines included where the state may own one.
    fn every_state() -> Vec<State> {
        vec![
            State::Spawning {
                instance: 1,
                purpose: SpawnPurpose::Restart,
            },
            State::Starting {
                proc: proc(),
                ready_by: Some(2_000_000),
                waiters: vec![conn()],
            },
            State::Starting {
                proc: proc(),
                ready_by: None,
                waiters: Vec::new(),
            },
            State::Running {
                proc: proc(),
                live: Live::default(),
            },
            State::Running {
                proc: proc(),
                live: Live {
                    watchdog: Some(Watchdog {
                        every_us: 500_000,
                        due_at: 1_500_000,
                    }),
                    probe: Some(ProbeSchedule {
                        next_at: Some(1_200_000),
                        failures: 1,
                    }),
                },
            },
            State::Aborting {
                proc: proc(),
                kill_at: Some(3_000_000),
                why: Liveness::Watchdog,
            },
            State::Blocked {
                purpose: SpawnPurpose::Start { reply_to: conn() },
                until: Some(4_000_000),
            },
            State::Blocked {
                purpose: SpawnPurpose::Restart,
                until: None,
            },
            State::Stopping {
                proc: proc(),
                kill_at: Some(3_000_000),
                order: StopOrder {
                    waiters: vec![conn()],
                    then: AfterStop::Remove,
                },
            },
            State::Stopping {
                proc: proc(),
                kill_at: None,
                order: StopOrder {
                    waiters: Vec::new(),
                    then: AfterStop::Remove,
                },
            },
            State::Waiting {
                retry_at: 1_500_000,
                retry_wall_ms: 0,
                delay_ms: 500,
            },
            State::Failed { held: false },
        ]
    }

    /// The tick loop relies on it: a due deadline never survives its `Due` event.
    #[test]
    fn every_deadline_is_consumed_by_its_due_event() {
        let t = template(Readiness::Notify);
        for state in every_state() {
            let Some(at) = state.deadline() else {
                continue;
            };
            let before = format!("{state:?}");
            let (next, _) = state.on(Event::Due, "w", &t, T0);
            if let Next::To(after) = &next {
                assert_ne!(after.deadline(), Some(at), "{before} -> {next:?}");
            }
        }
    }

    /// Only a live process can end; every live state then drains, asking first what
    /// is left of its group.
    #[test]
    fn an_exit_drains_every_live_state_and_reaps_its_instance() {
        let t = template(Readiness::Exec);
        for state in every_state().into_iter().filter(|s| s.pid().is_some()) {
            let before = format!("{state:?}");
            let (next, effects) = state.on(
                Event::Exited {
                    exit: Exit::Code(3),
                },
                "w",
                &t,
                T0,
            );
            assert!(
                matches!(
                    next,
                    Next::To(State::Draining {
                        stage: Drain::Checking { .. },
                        ..
                    })
                ),
                "{before} -> {next:?}"
            );
            assert_eq!(
                effects.first(),
                Some(&Effect::Reaped {
                    instance: 1,
                    pid: 101
                }),
                "{before}"
            );
        }
    }

    #[test]
    fn a_spawn_comes_up_starting_or_running_by_the_template() {
        let spawning = || State::Spawning {
            instance: 7,
            purpose: SpawnPurpose::Restart,
        };
        let (next, effects) = spawning().on(
            Event::Spawned { pid: 42 },
            "w",
            &template(Readiness::Exec),
            T0,
        );
        assert!(
            matches!(next, Next::To(State::Running { proc, .. }) if proc.pid == 42 && proc.instance == 7)
        );
        assert_eq!(effects, [Effect::Notice(Notice::Started { pid: 42 })]);
        let t = template(Readiness::Notify);
        let (next, _) = spawning().on(Event::Spawned { pid: 42 }, "w", &t, T0);
        let Next::To(starting) = next else {
            panic!("{next:?}")
        };
        assert!(matches!(starting, State::Starting { .. }));
        assert_eq!(
            starting.deadline(),
            Some(T0.mono_us + t.ready_timeout_ms * 1000)
        );
    }

    #[test]
    fn a_stop_signals_the_group_and_owns_the_kill_deadline() {
        let mut t = template(Readiness::Exec);
        t.stop_signal = Signal::INT;
        let stop = StopRequest {
            timeout_ms: 250,
            waiter: Some(conn()),
            then: AfterStop::Remove,
        };
        let running = State::Running {
            proc: proc(),
            live: Live::default(),
        };
        let (next, effects) = running.on(Event::Stop(stop), "w", &t, T0);
        assert_eq!(
            effects,
            [Effect::Signal {
                pid: 101,
                signal: Signal::INT,
                group: true
            }]
        );
        let Next::To(stopping) = next else {
            panic!("{next:?}")
        };
        assert_eq!(stopping.deadline(), Some(T0.mono_us + 250_000));
        // The deadline sends SIGKILL once and leaves no deadline behind.
        let (next, effects) = stopping.on(Event::Due, "w", &t, T0);
        assert_eq!(
            effects,
            [Effect::Signal {
                pid: 101,
                signal: Signal::KILL,
                group: true
            }]
        );
        assert!(
            matches!(next, Next::To(ref s) if s.deadline().is_none()),
            "{next:?}"
        );
    }

    #[test]
    fn without_a_process_a_stop_removes_and_a_due_retry_respawns() {
        let t = template(Readiness::Exec);
        let stop = || {
            Event::Stop(StopRequest {
                timeout_ms: 1,
                waiter: None,
                then: AfterStop::Remove,
            })
        };
        let waiting = State::Waiting {
            retry_at: 5,
            retry_wall_ms: 0,
            delay_ms: 0,
        };
        assert!(matches!(
            waiting.clone().on(stop(), "w", &t, T0).0,
            Next::Removed
        ));
        assert!(matches!(
            State::Failed { held: false }.on(stop(), "w", &t, T0).0,
            Next::Removed
        ));
        assert!(matches!(
            waiting.on(Event::Due, "w", &t, T0).0,
            Next::Spawn(SpawnPurpose::Restart)
        ));
    }
}
