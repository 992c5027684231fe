//! The health checks in flight: `Action::Probe` carried out (a check process started
//! with the worker's settings, see `os::probes`), its output read, its timeout kept,
//! its reap taken from the loop's `waitpid(-1)` — a check's pid is never fed to the
//! core as `Input::Exited` — and its verdict fed back as `Input::ProbeDone`.
//!
//! Every `Action::Probe` is answered exactly once: at once when the check cannot be
//! started (`cannot run: ...`) or another check of the same worker's process is still
//! running (`a check is still running ...`; the core never asks for that), otherwise
//! once its main process is reaped. A check still running at its timeout gets SIGKILL
//! (its whole process group) and is answered `timed out after N ms` at its reap; one
//! that is still not reaped `KILL_GRACE` after the SIGKILL (uninterruptible sleep) is
//! answered anyway, and its later reap is swallowed here.
//!
//! A check of a worker's earlier process that is still running when a check of its new
//! process is asked for is killed and answered `cancelled` (the core ignores results
//! for an instance that is no longer the worker's). At exit, and whenever the reactor
//! is dropped, every check in flight gets SIGKILL to its process group: no check
//! outlives the daemon.
//!
//! Timers: only while a check runs (its timeout, then the kill grace); with no check in
//! flight `next_deadline` is `None` and the idle loop never wakes for checks.

use super::Poller;
use crate::core::{ChildSpec, Exit, Input, InstanceId};
use crate::os::pipes::Drained;
use crate::os::probes::{self, Probe};
use crate::os::spawn::{ExecPlan, SpawnContext, Spawner};
use mio::{Interest, Token};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a check SIGKILLed at its timeout may take to be reaped before it is
/// answered anyway.
const KILL_GRACE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Probes {
    /// Checks in flight, by pid.
    running: HashMap<i32, Running>,
    /// The check in flight of each worker name, by pid.
    by_name: HashMap<Rc<str>, i32>,
    /// Output pipes being read, by token.
    by_token: HashMap<Token, i32>,
    /// Each running check's next deadline: its timeout, then (killed) its kill grace.
    deadlines: BTreeSet<(Instant, i32)>,
    /// Checks answered before their reap (cancelled, or not gone after SIGKILL): their
    /// reap is still theirs, not the core's.
    answered_unreaped: HashSet<i32>,
}

struct Running {
    name: Rc<str>,
    instance: InstanceId,
    probe: Probe,
    /// Its output pipe's token, while registered.
    token: Option<Token>,
    deadline: Instant,
}

impl Probes {
    /// Carry out `Action::Probe`: start the check of `spec`'s template for the worker
    /// `name`'s process `instance`. Returns the answers due at once (a check that could
    /// not start; a check of an earlier process, cancelled).
    pub(super) fn start(
        &mut self,
        name: Rc<str>,
        instance: InstanceId,
        spec: &ChildSpec,
        (spawner, ctx): (&mut Spawner, &SpawnContext),
        poller: &mut Poller,
    ) -> Vec<Input> {
        let mut answers = Vec::new();
        if let Some(&pid) = self.by_name.get(&name) {
            let same = self
                .running
                .get(&pid)
                .is_some_and(|r| r.instance == instance);
            if same {
                log::warn!("{name}: a health check was asked for while one (pid {pid}) is still running; answered as failed");
                answers.push(done(
                    &name,
                    instance,
                    false,
                    format!("a check is still running (pid {pid})"),
                ));
                return answers;
            }
            answers.extend(self.cancel(pid, poller));
        }
        let Some(health) = &spec.template.health else {
            answers.push(done(
                &name,
                instance,
                false,
                probes::cannot_run("the template has no health check"),
            ));
            return answers;
        };
        let timeout = Duration::from_millis(health.timeout_ms);
        let started = ExecPlan::for_probe(spec, ctx).and_then(|plan| {
            Probe::start(spawner, &plan, ctx.daemon_pid, timeout).map_err(|e| e.message)
        });
        let mut probe = match started {
            Ok(probe) => probe,
            Err(error) => {
                log::warn!("{name}: cannot run its health check: {error}");
                answers.push(done(&name, instance, false, probes::cannot_run(&error)));
                return answers;
            }
        };
        let pid = probe.pid;
        let mut token = None;
        if let Some(pipe) = probe.output.as_mut() {
            let new = poller.new_token();
            match poller.registry().register(pipe, new, Interest::READABLE) {
                Ok(()) => {
                    self.by_token.insert(new, pid);
                    token = Some(new);
                }
                Err(e) => {
                    // The check runs on; only its output is lost (it gets EPIPE).
                    log::warn!("{name}: cannot watch its health check's output: {e}");
                    probe.output = None;
                }
            }
        }
        log::debug!("{name}: health check started, pid {pid}");
        let deadline = Instant::now() + timeout;
        self.deadlines.insert((deadline, pid));
        self.by_name.insert(name.clone(), pid);
        self.running.insert(
            pid,
            Running {
                name,
                instance,
                probe,
                token,
                deadline,
            },
        );
        answers
    }

    /// Whether `token` is a check's output pipe.
    pub(super) fn has(&self, token: Token) -> bool {
        self.by_token.contains_key(&token)
    }

    /// A check's output pipe is readable: read it (bounded).
    pub(super) fn on_ready(&mut self, token: Token, poller: &mut Poller) {
        let Some(running) = self
            .by_token
            .get(&token)
            .and_then(|pid| self.running.get_mut(pid))
        else {
            return;
        };
        match running.probe.read_output() {
            Drained::WouldBlock => {}
            Drained::More => poller.retry(token),
            Drained::Eof => {
                if let Some(mut pipe) = running.probe.output.take() {
                    let _ = poller.registry().deregister(&mut pipe);
                }
                running.token = None;
                self.by_token.remove(&token);
            }
        }
    }

    /// Whether `pid` is (or was) a check's: its reap belongs here, not to the core.
    pub(super) fn owns(&self, pid: i32) -> bool {
        self.running.contains_key(&pid) || self.answered_unreaped.contains(&pid)
    }

    /// The check `pid` was reaped with `exit`: its answer (none if it was answered
    /// already).
    pub(super) fn reaped(&mut self, pid: i32, exit: Exit, poller: &mut Poller) -> Option<Input> {
        if self.answered_unreaped.remove(&pid) {
            return None;
        }
        let running = self.remove(pid, poller)?;
        let (ok, message) = running.probe.finish(Some(exit));
        log::debug!("{}: health check (pid {pid}): {message}", running.name);
        Some(done(&running.name, running.instance, ok, message))
    }

    /// When the loop must wake for a check's timeout or kill grace, if any runs.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The deadlines that passed: checks at their timeout get SIGKILL; checks still not
    /// reaped after the kill grace are answered.
    pub(super) fn on_deadlines(&mut self, now: Instant, poller: &mut Poller) -> Vec<Input> {
        let mut answers = Vec::new();
        while let Some(&(at, pid)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, pid));
            let Some(running) = self.running.get_mut(&pid) else {
                continue;
            };
            if running.probe.killed_at().is_none() {
                log::info!(
                    "{}: health check (pid {pid}) still running after {} ms; killing it",
                    running.name,
                    running.probe.timeout().as_millis()
                );
                running.probe.kill(now);
                running.deadline = now + KILL_GRACE;
                self.deadlines.insert((running.deadline, pid));
            } else if let Some(running) = self.remove(pid, poller) {
                log::warn!(
                    "{}: health check (pid {pid}) still not gone {} ms after SIGKILL; answered as timed out",
                    running.name,
                    KILL_GRACE.as_millis()
                );
                self.answered_unreaped.insert(pid);
                let (ok, message) = running.probe.finish(None);
                answers.push(done(&running.name, running.instance, ok, message));
            }
        }
        answers
    }

    /// A check of a worker's earlier process: kill it and answer it (the core ignores
    /// the answer; it only keeps every `Probe` answered once).
    fn cancel(&mut self, pid: i32, poller: &mut Poller) -> Option<Input> {
        let running = self.remove(pid, poller)?;
        probes::kill_group(pid);
        self.answered_unreaped.insert(pid);
        log::debug!(
            "{}: health check (pid {pid}) of an earlier process cancelled",
            running.name
        );
        Some(done(
            &running.name,
            running.instance,
            false,
            "cancelled: the worker has a new process".to_string(),
        ))
    }

    /// Take `pid` out of every index (its pipe deregistered).
    fn remove(&mut self, pid: i32, poller: &mut Poller) -> Option<Running> {
        let mut running = self.running.remove(&pid)?;
        self.deadlines.remove(&(running.deadline, pid));
        if self.by_name.get(&running.name) == Some(&pid) {
            self.by_name.remove(&running.name);
        }
        if let Some(token) = running.token.take() {
            self.by_token.remove(&token);
            if let Some(pipe) = running.probe.output.as_mut() {
                let _ = poller.registry().deregister(pipe);
            }
        }
        Some(running)
    }

    /// At exit: SIGKILL to every check in flight (its whole process group). They are
    /// not waited for; the daemon's exit leaves nothing to reap them but init, and
    /// `PR_SET_PDEATHSIG` would kill their main processes anyway.
    pub(super) fn kill_all(&mut self) {
        for (pid, running) in self.running.drain() {
            log::debug!("{}: health check (pid {pid}) killed at exit", running.name);
            probes::kill_group(pid);
        }
        self.by_name.clear();
        self.by_token.clear();
        self.deadlines.clear();
    }
}

impl Drop for Probes {
    /// Whatever way the loop ends, no check outlives it.
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn done(name: &str, instance: InstanceId, ok: bool, message: String) -> Input {
    Input::ProbeDone {
        name: name.to_string(),
        instance,
        ok,
        message,
    }
}
