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
        poller.watch_exit(pid, probe.pidfd.take());
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

#[cfg(test)]
mod tests {
    //! The room with real processes, without the rest of the loop: a poller of its
    //! own, and each check's pid reaped by `waitpid(pid)` (never `waitpid(-1)`: other
    //! tests of this binary have children too).
    use super::*;
    use crate::core::{HealthCheck, Template};
    use crate::signal::Signal;
    use mio::{Events, Poll};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    use signal_hook_mio::v1_0::Signals;

    struct Bench {
        probes: Probes,
        poller: Poller,
        spawner: Spawner,
        ctx: SpawnContext,
        events: Events,
    }

    impl Bench {
        fn new() -> Bench {
            Bench {
                probes: Probes::default(),
                poller: Poller {
                    poll: Poll::new().expect("poll"),
                    signals: Signals::new(Vec::<i32>::new()).expect("no signals"),
                    worker_notify: None,
                    next_token: 3,
                    exits: Default::default(),
                    retry: Vec::new(),
                },
                spawner: Spawner::new().expect("spawner"),
                ctx: SpawnContext::from_process("/nonexistent/d.sock".into()),
                events: Events::with_capacity(16),
            }
        }

        fn start(
            &mut self,
            name: &str,
            instance: u64,
            command: &[&str],
            timeout_ms: u64,
        ) -> Vec<Input> {
            let mut template = Template::new("t", vec!["sleep".to_string(), "1000".to_string()]);
            template.health = Some(HealthCheck {
                command: command.iter().map(|s| s.to_string()).collect(),
                interval_ms: 100,
                timeout_ms,
                failures: 3,
            });
            let spec =
                ChildSpec::new(name.into(), Rc::new(template), None, Vec::new()).expect("spec");
            self.probes.start(
                name.into(),
                instance,
                &spec,
                (&mut self.spawner, &self.ctx),
                &mut self.poller,
            )
        }

        /// The pid of the check of `name`.
        fn pid_of(&self, name: &str) -> i32 {
            *self.probes.by_name.get(name).expect("a check in flight")
        }

        /// Run the room's part of the loop until the check `pid` is reaped; its answer.
        fn run_until_reaped(&mut self, pid: i32) -> Option<Input> {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                assert!(Instant::now() < deadline, "check {pid} never ended");
                let timeout = self
                    .probes
                    .next_deadline()
                    .map(|at| at.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(20))
                    .min(Duration::from_millis(20));
                match self.poller.poll.poll(&mut self.events, Some(timeout)) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    result => result.expect("poll"),
                }
                let mut ready: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
                ready.append(&mut self.poller.retry);
                ready.sort();
                ready.dedup();
                for token in ready {
                    // A pipe that reached EOF is forgotten (as the loop does).
                    if self.probes.has(token) {
                        self.probes.on_ready(token, &mut self.poller);
                    }
                }
                let answers = self.probes.on_deadlines(Instant::now(), &mut self.poller);
                assert!(answers.is_empty(), "answered before the reap: {answers:?}");
                match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                    WaitStatus::Exited(_, code) => {
                        assert!(self.probes.owns(pid));
                        return self.probes.reaped(pid, Exit::Code(code), &mut self.poller);
                    }
                    WaitStatus::Signaled(_, signal, core_dumped) => {
                        assert!(self.probes.owns(pid));
                        let exit = Exit::Signaled {
                            signal: Signal(signal as i32),
                            core_dumped,
                        };
                        return self.probes.reaped(pid, exit, &mut self.poller);
                    }
                    _ => {}
                }
            }
        }
    }

    fn answer(input: Option<Input>) -> (String, u64, bool, String) {
        match input {
            Some(Input::ProbeDone {
                name,
                instance,
                ok,
                message,
            }) => (name, instance, ok, message),
            other => panic!("not a ProbeDone: {other:?}"),
        }
    }

    /// Whether every process of group `pgid` is dead within a deadline (polled, with a
    /// short pause between looks). Zombies count as dead: orphans of a check are
    /// reaped by whoever reaps this test's orphans, which is not the test.
    fn group_empties(pgid: i32) -> bool {
        let live = || {
            crate::os::process::process_groups()
                .remove(&pgid)
                .unwrap_or_default()
                .into_iter()
                .filter(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
                    // The state follows the command name's closing parenthesis.
                    stat.ok()
                        .and_then(|s| Some(s[s.rfind(')')? + 1..].trim_start().starts_with('Z')))
                        == Some(false)
                })
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if live() == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_passing_check_and_a_failing_one_with_its_first_line() {
        let mut bench = Bench::new();
        assert!(bench
            .start("ok", 1, &["sh", "-c", "echo fine; exit 0"], 10_000)
            .is_empty());
        let pid = bench.pid_of("ok");
        assert_eq!(
            answer(bench.run_until_reaped(pid)),
            ("ok".to_string(), 1, true, "exit 0".to_string())
        );
        assert!(!bench.probes.owns(pid));
        assert!(bench
            .start(
                "bad",
                2,
                &["sh", "-c", "echo \"db down: $DYNSUP_NAME\" >&2; exit 3"],
                10_000
            )
            .is_empty());
        let pid = bench.pid_of("bad");
        assert_eq!(
            answer(bench.run_until_reaped(pid)),
            (
                "bad".to_string(),
                2,
                false,
                "exit 3: db down: bad".to_string()
            )
        );
        assert_eq!(bench.probes.next_deadline(), None, "no check, no timer");
    }

    #[test]
    fn a_hanging_check_is_killed_at_its_timeout_with_its_group() {
        let mut bench = Bench::new();
        // A background sleeper in its group, and a foreground one.
        bench.start("hang", 1, &["sh", "-c", "sleep 1000 & sleep 1000"], 100);
        let pid = bench.pid_of("hang");
        assert!(bench.probes.next_deadline().is_some());
        assert_eq!(
            answer(bench.run_until_reaped(pid)),
            (
                "hang".to_string(),
                1,
                false,
                "timed out after 100 ms".to_string()
            )
        );
        assert!(
            group_empties(pid),
            "the check's process group outlived its timeout"
        );
        assert_eq!(bench.probes.next_deadline(), None);
    }

    #[test]
    fn a_check_that_floods_its_output_is_read_and_ends() {
        let mut bench = Bench::new();
        // 1 MiB, far more than a pipe holds: it ends only if it is read.
        bench.start(
            "chatty",
            1,
            &["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; exit 4"],
            20_000,
        );
        let pid = bench.pid_of("chatty");
        let (_, _, ok, message) = answer(bench.run_until_reaped(pid));
        assert!(!ok);
        assert_eq!(
            message,
            format!("exit 4: {}", "x".repeat(crate::os::probes::KEPT_OUTPUT))
        );
    }

    #[test]
    fn what_a_check_leaves_in_its_group_is_killed_at_its_end() {
        let mut bench = Bench::new();
        bench.start(
            "leaves",
            1,
            &["sh", "-c", "sleep 1000 >/dev/null 2>&1 & exit 0"],
            10_000,
        );
        let pid = bench.pid_of("leaves");
        assert_eq!(answer(bench.run_until_reaped(pid)).3, "exit 0");
        assert!(
            group_empties(pid),
            "a background process of the check outlived it"
        );
    }

    #[test]
    fn a_check_that_cannot_start_is_answered_at_once() {
        let mut bench = Bench::new();
        let answers = bench.start("missing", 7, &["/nonexistent/check"], 1000);
        assert_eq!(answers.len(), 1);
        let (name, instance, ok, message) = answer(answers.into_iter().next());
        assert_eq!((name.as_str(), instance, ok), ("missing", 7, false));
        assert!(
            message.starts_with("cannot run: cannot execute /nonexistent/check"),
            "{message}"
        );
        assert_eq!(bench.probes.next_deadline(), None);
    }

    #[test]
    fn a_second_check_of_the_same_process_is_refused_and_one_of_an_old_process_cancelled() {
        let mut bench = Bench::new();
        assert!(bench.start("w", 1, &["sleep", "1000"], 60_000).is_empty());
        let first = bench.pid_of("w");
        // The same instance again: refused at once, the first goes on.
        let answers = bench.start("w", 1, &["sleep", "1000"], 60_000);
        let (_, instance, ok, message) = answer(answers.into_iter().next());
        assert_eq!((instance, ok), (1, false));
        assert_eq!(message, format!("a check is still running (pid {first})"));
        assert_eq!(bench.pid_of("w"), first);
        // A new instance: the old check is killed and answered, the new one runs.
        let answers = bench.start("w", 2, &["sh", "-c", "exit 0"], 60_000);
        let (_, instance, ok, message) = answer(answers.into_iter().next());
        assert_eq!((instance, ok), (1, false));
        assert_eq!(message, "cancelled: the worker has a new process");
        let second = bench.pid_of("w");
        assert_ne!(second, first);
        // The old one's reap is still the room's, and answers nothing.
        let status = waitpid(Pid::from_raw(first), None).expect("waitpid");
        assert!(matches!(
            status,
            WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
        ));
        assert!(bench.probes.owns(first));
        let exit = Exit::Signaled {
            signal: Signal::KILL,
            core_dumped: false,
        };
        assert!(bench
            .probes
            .reaped(first, exit, &mut bench.poller)
            .is_none());
        assert!(!bench.probes.owns(first));
        assert_eq!(answer(bench.run_until_reaped(second)).3, "exit 0");
    }

    #[test]
    fn kill_all_leaves_no_check_running() {
        let mut bench = Bench::new();
        bench.start("a", 1, &["sleep", "1000"], 60_000);
        bench.start("b", 2, &["sleep", "1000"], 60_000);
        let pids = [bench.pid_of("a"), bench.pid_of("b")];
        drop(bench.probes);
        for pid in pids {
            let status = waitpid(Pid::from_raw(pid), None).expect("waitpid");
            assert!(
                matches!(
                    status,
                    WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
                ),
                "{status:?}"
            );
        }
    }
}
