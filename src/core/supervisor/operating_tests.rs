//! Scenario tests for the issue-4 features of [`Supervisor`]: backoff, per-worker
//! limits (`give_up` / `escalate`), `normal_exit_codes`, `restart`, `max_children`,
//! `extra_args`, the `count` shape, `whois`, watch events, durable dynamic workers
//! (`SaveState`) and reload.
//!
//! The harness plays the OS layer as the contract in `supervisor.rs` asks: every
//! `Action::Spawn` is answered at once, depth first, with `Spawned` and a fresh fake pid
//! (101, 102, ...) or, when told to, with `SpawnFailed`. Unlike the one in `tests.rs`, it
//! keeps every action in the trace, events and state saves included, so the order of
//! what a `watch` subscriber sees and when the state file is written are asserted too.
//! Time is whatever the test sets with [`Harness::at`]; nothing reads a clock or sleeps.
//!
//! The trace of one input is rendered one action per line:
//!
//! ```text
//! spawn NAME #INSTANCE -> PID | failed
//! signal group|pid PID SIGNAME
//! reaped #INSTANCE
//! event started NAME pid=PID
//! event exited NAME pid=PID (REASON)
//! event restarting NAME delay=MS
//! event stopped NAME (REASON)
//! event failed NAME (REASON)
//! event intensity_tripped NAME
//! event shutdown
//! save state
//! reply TO: ok field=value ...   (or: reply TO: error KIND [pid=PID])
//! exit CODE
//! ```

use super::*;
use crate::core::spec::{Backoff, RestartLimit, RestartType};
use crate::protocol::{ExitReport, WorkerInfo};

const WALL0: u64 = 1_700_000_000_000;

// ----- templates ----------------------------------------------------------------------

fn template(name: &str, restart: RestartType) -> Template {
    Template {
        restart,
        ..Template::new(
            name,
            vec!["/opt/bin/worker".to_string(), "--flag".to_string()],
        )
    }
}

fn transient(name: &str) -> Template {
    template(name, RestartType::Transient)
}

fn permanent(name: &str) -> Template {
    template(name, RestartType::Permanent)
}

const PACED: Backoff = Backoff {
    initial_ms: 100,
    max_ms: 400,
    multiplier: 2.0,
    reset_after_ms: 1000,
};

/// The issue's pacing: 100, 200, 400, 400 ... ms; reset after a 1 s run.
fn paced(mut t: Template) -> Template {
    t.backoff = PACED;
    t
}

fn limited(mut t: Template, max_restarts: Option<u32>, max_seconds: u64, on: OnLimit) -> Template {
    t.limit = Some(RestartLimit {
        max_restarts,
        max_seconds,
    });
    t.on_limit = on;
    t
}

// ----- inputs -------------------------------------------------------------------------

fn conn(conn: u64) -> ReplyTo {
    ReplyTo::Conn { conn, seq: 0 }
}

/// A request from connection 1.
fn request(req: Request) -> Input {
    Input::Request { from: conn(1), req }
}

/// The same request, from another reply target.
fn from(to: ReplyTo, input: Input) -> Input {
    match input {
        Input::Request { req, .. } => Input::Request { from: to, req },
        Input::Whois { pid, group, .. } => Input::Whois {
            from: to,
            pid,
            group,
        },
        other => other,
    }
}

fn start_full(name: &str, template: &str, args: &[&str], command: Option<&[&str]>) -> Input {
    request(Request::Start {
        name: name.to_string(),
        template: Some(template.to_string()),
        args: args.iter().map(|s| s.to_string()).collect(),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
    })
}

/// Start `name` from the named template, no arguments.
fn start(name: &str, template: &str) -> Input {
    start_full(name, template, &[], None)
}

fn stop(name: &str) -> Input {
    request(Request::Stop {
        name: name.to_string(),
        timeout_ms: None,
    })
}

fn restart(name: &str) -> Input {
    request(Request::Restart {
        name: name.to_string(),
        timeout_ms: None,
    })
}

fn restart_within(name: &str, timeout_ms: u64) -> Input {
    request(Request::Restart {
        name: name.to_string(),
        timeout_ms: Some(timeout_ms),
    })
}

fn kill(name: &str) -> Input {
    request(Request::Kill {
        name: name.to_string(),
        signal: None,
    })
}

fn lookup(name: &str) -> Input {
    request(Request::Lookup {
        name: name.to_string(),
    })
}

fn count() -> Input {
    request(Request::Count)
}

fn list() -> Input {
    request(Request::List)
}

fn shutdown() -> Input {
    request(Request::Shutdown)
}

fn whois(pid: i32, group: Option<i32>) -> Input {
    Input::Whois {
        from: conn(1),
        pid,
        group,
    }
}

fn exited(pid: i32, exit: Exit) -> Input {
    Input::Exited { pid, exit }
}

fn code(code: i32) -> Exit {
    Exit::Code(code)
}

fn signaled(signal: Signal) -> Exit {
    Exit::Signaled {
        signal,
        core_dumped: false,
    }
}

fn boot_child(name: &str, template: &str, args: &[&str]) -> BootChild {
    BootChild {
        name: name.to_string(),
        template: template.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

fn reload(max_restarts: u32, templates: Vec<Template>, children: Vec<BootChild>) -> Input {
    Input::Reload {
        from: Some(conn(1)),
        config: Ok(Box::new(ReloadConfig {
            limits: Limits {
                max_restarts,
                max_seconds: 5,
                max_children: None,
            },
            templates: by_name(templates),
            children,
        })),
    }
}

fn by_name(templates: Vec<Template>) -> BTreeMap<String, Rc<Template>> {
    templates
        .into_iter()
        .map(|t| (t.name.clone(), Rc::new(t)))
        .collect()
}

// ----- rendering ----------------------------------------------------------------------

fn render_to(to: &ReplyTo) -> String {
    match to {
        ReplyTo::Conn { conn, .. } => format!("c{conn}"),
        ReplyTo::Boot { index } => format!("boot{index}"),
        ReplyTo::Restore { index } => format!("restore{index}"),
        ReplyTo::Reload => "reload".to_string(),
    }
}

fn render_stop_report(r: &StopReport) -> String {
    let mut s = format!("{{{}", r.name);
    if let Some(pid) = r.pid {
        s += &format!(" pid={pid}");
    }
    if let Some(exit) = &r.exit {
        s += &format!(" {exit}");
    }
    s += &format!(" killed={}}}", r.killed);
    s
}

fn render_reply(r: &Reply) -> String {
    if !r.ok {
        let error = r.error.as_ref().expect("a failed reply carries an error");
        assert!(!error.message.is_empty(), "an error needs a message: {r:?}");
        let mut s = format!("error {}", error.kind.as_str());
        if let Some(pid) = error.pid {
            s += &format!(" pid={pid}");
        }
        return s;
    }
    assert!(r.error.is_none(), "an ok reply with an error: {r:?}");
    let mut s = "ok".to_string();
    if let Some(name) = &r.name {
        s += &format!(" name={name}");
    }
    if let Some(pid) = r.pid {
        s += &format!(" pid={pid}");
    }
    if let Some(state) = r.state {
        s += &format!(" state={}", state.as_str());
    }
    if let Some(count) = r.count {
        s += &format!(" count={count}");
    }
    if let Some(c) = &r.counts {
        s += &format!(
            " counts={{total={} active={} backoff={} failed={} stopping={}}}",
            c.total, c.active, c.backoff, c.failed, c.stopping
        );
    }
    if let Some(workers) = &r.workers {
        let rows: Vec<String> = workers
            .iter()
            .map(|w| format!("{}:{}", w.name, w.state.as_str()))
            .collect();
        s += &format!(" workers=[{}]", rows.join(" "));
    }
    if let Some(stopped) = &r.stopped {
        s += &format!(" stopped={}", render_stop_report(stopped));
    }
    if let Some(reports) = &r.shutdown {
        let rows: Vec<String> = reports.iter().map(render_stop_report).collect();
        s += &format!(" shutdown=[{}]", rows.join(" "));
    }
    if let Some(signal) = &r.signal {
        s += &format!(" signal={signal}");
    }
    if let Some(report) = &r.reload {
        // Skipped entries carry a reason after the name; the trace shows the name.
        let skipped: Vec<&str> = report
            .skipped
            .iter()
            .map(|s| s.split(':').next().unwrap_or(s))
            .collect();
        s += &format!(
            " reload={{started=[{}] stopped=[{}] restarted=[{}] unchanged=[{}] skipped=[{}]}}",
            report.started.join(" "),
            report.stopped.join(" "),
            report.restarted.join(" "),
            report.unchanged.join(" "),
            skipped.join(" "),
        );
    }
    s
}

fn render_event(event: &Event) -> String {
    match event {
        Event::Started { name, pid } => format!("event started {name} pid={pid}"),
        Event::Ready { name, pid } => format!("event ready {name} pid={pid}"),
        Event::Exited {
            name,
            pid,
            reason,
            exit,
        } => {
            assert!(
                reason.starts_with(&exit.to_string()),
                "the reason {reason:?} begins with the exit {exit}"
            );
            format!("event exited {name} pid={pid} ({reason})")
        }
        Event::Restarting { name, delay_ms } => format!("event restarting {name} delay={delay_ms}"),
        Event::Stopped { name, reason } => format!("event stopped {name} ({reason})"),
        Event::Failed { name, reason } => format!("event failed {name} ({reason})"),
        Event::IntensityTripped { name } => format!("event intensity_tripped {name}"),
        Event::Shutdown => "event shutdown".to_string(),
        Event::Lagged { dropped } => format!("event lagged {dropped}"),
    }
}

/// Every action but `Spawn` (which the harness renders with its answer).
fn render(action: &Action) -> String {
    match action {
        Action::Spawn { instance, spec } => format!("spawn {} #{instance}", spec.name),
        Action::Signal { pid, signal, group } => {
            let target = if *group { "group" } else { "pid" };
            format!("signal {target} {pid} {}", signal.name())
        }
        Action::Cast {
            instance,
            message,
            reply_to,
        } => format!("cast #{instance} {message:?} {}", render_to(reply_to)),
        Action::Reaped { instance } => format!("reaped #{instance}"),
        Action::Reply { to, reply } => format!("reply {}: {}", render_to(to), render_reply(reply)),
        Action::Event(event) => render_event(event),
        Action::SaveState => "save state".to_string(),
        Action::Exit { code } => format!("exit {code}"),
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

// ----- the harness --------------------------------------------------------------------

struct Harness {
    sup: Supervisor,
    now_us: u64,
    last_pid: i32,
    /// How many of the next spawns fail.
    fail_next: u32,
    /// Every spec the core asked to spawn, in order.
    specs: Vec<Rc<ChildSpec>>,
    /// Every action of the last `feed`, spawns and events included, in order.
    last: Vec<Action>,
}

impl Harness {
    fn new(
        max_restarts: u32,
        max_seconds: u64,
        max_children: Option<usize>,
        templates: Vec<Template>,
    ) -> Harness {
        Harness {
            sup: Supervisor::new(
                Limits {
                    max_restarts,
                    max_seconds,
                    max_children,
                },
                by_name(templates),
            ),
            now_us: 0,
            last_pid: 100,
            fail_next: 0,
            specs: Vec::new(),
            last: Vec::new(),
        }
    }

    fn time(&self) -> Time {
        Time {
            mono_us: self.now_us,
            wall_ms: WALL0 + self.now_us / 1000,
        }
    }

    /// Move the synthetic clock to `ms` milliseconds. Time never goes back.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.at_us(ms * 1000)
    }

    fn at_us(&mut self, us: u64) -> &mut Self {
        assert!(
            us >= self.now_us,
            "time goes forward: {} -> {us} us",
            self.now_us
        );
        self.now_us = us;
        self
    }

    /// Feed one input, answer its spawns, and return the rendered trace.
    fn feed(&mut self, input: Input) -> Vec<String> {
        self.last.clear();
        let mut trace = Vec::new();
        self.feed_into(input, &mut trace);
        self.check_invariants();
        trace
    }

    fn feed_into(&mut self, input: Input, trace: &mut Vec<String>) {
        let actions = self.sup.handle(input, self.time());
        for action in actions {
            self.last.push(action.clone());
            let Action::Spawn { instance, spec } = action else {
                trace.push(render(&action));
                continue;
            };
            self.specs.push(spec.clone());
            let answer = if self.fail_next > 0 {
                self.fail_next -= 1;
                trace.push(format!("spawn {} #{instance} -> failed", spec.name));
                Input::SpawnFailed {
                    instance,
                    error: "No such file or directory (os error 2)".to_string(),
                }
            } else {
                self.last_pid += 1;
                trace.push(format!(
                    "spawn {} #{instance} -> {}",
                    spec.name, self.last_pid
                ));
                Input::Spawned {
                    instance,
                    pid: self.last_pid,
                }
            };
            self.feed_into(answer, trace);
        }
    }

    /// Feed one input and compare its whole trace with `want` (one action per line).
    #[track_caller]
    fn check(&mut self, input: Input, want: &str) -> &mut Self {
        let got = self.feed(input);
        let want = lines(want);
        assert!(
            got == want,
            "at {} us\n--- want\n{}\n--- got\n{}\n",
            self.now_us,
            want.join("\n"),
            got.join("\n")
        );
        self
    }

    /// Feed a start request that must succeed; return the new pid.
    #[track_caller]
    fn started(&mut self, input: Input) -> i32 {
        let trace = self.feed(input);
        let reply = self.reply();
        assert!(reply.ok, "{trace:#?}");
        let pid = reply.pid.expect("a start reply carries the pid");
        assert_eq!(pid, self.last_pid, "{trace:#?}");
        pid
    }

    /// The one reply of the last `feed`.
    #[track_caller]
    fn reply(&self) -> Reply {
        let replies: Vec<Reply> = self
            .last
            .iter()
            .filter_map(|a| match a {
                Action::Reply { reply, .. } => Some(Reply::clone(reply)),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "{:#?}", self.last);
        replies.into_iter().next().expect("one reply")
    }

    /// The one reply of the last `feed` that goes to `to`.
    #[track_caller]
    fn reply_to(&self, to: ReplyTo) -> Reply {
        let replies: Vec<Reply> = self
            .last
            .iter()
            .filter_map(|a| match a {
                Action::Reply { to: t, reply } if *t == to => Some(Reply::clone(reply)),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "{:#?}", self.last);
        replies.into_iter().next().expect("one reply")
    }

    /// The events of the last `feed`, in order.
    fn events(&self) -> Vec<Event> {
        self.last
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `list` row of `name` (feeds a `list` request).
    #[track_caller]
    fn row(&mut self, name: &str) -> WorkerInfo {
        self.feed(list());
        let workers = self.reply().workers.expect("list answers workers");
        workers
            .into_iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    }

    /// The monotonic deadline in microseconds.
    fn deadline(&self) -> Option<u64> {
        self.sup.next_deadline()
    }

    /// The contract's invariants, checked after every input:
    /// - every spawn was answered, so none is pending;
    /// - the pid index and the registry agree;
    /// - a worker waiting to be restarted has its deadline (else it would never come back).
    fn check_invariants(&self) {
        assert!(
            self.sup.pending.is_empty(),
            "a spawn was left unanswered: {:?}",
            self.sup.pending
        );
        let live: Vec<(i32, &str)> = self
            .sup
            .workers
            .iter()
            .filter_map(|(name, w)| w.state.pid().map(|pid| (pid, &**name)))
            .collect();
        assert_eq!(
            live.len(),
            self.sup.by_pid.len(),
            "by_pid: {:?}",
            self.sup.by_pid
        );
        for (pid, name) in live {
            assert_eq!(
                self.sup.by_pid.get(&pid).map(|n| &**n),
                Some(name),
                "pid {pid}"
            );
        }
        for (name, worker) in &self.sup.workers {
            if let State::Waiting { retry_at, .. } = worker.state {
                assert!(
                    self.sup.deadlines.contains(&(retry_at, name.clone())),
                    "{name} waits for {retry_at} us without a deadline: {:?}",
                    self.sup.deadlines
                );
            }
        }
    }
}

// ----- backoff ------------------------------------------------------------------------

#[test]
fn backoff_delay_table() {
    let curve = |b: Backoff, n: u32| b.delay_ms(n);
    #[rustfmt::skip]
    let rows: &[(Backoff, &[(u32, u64)])] = &[
        // The issue's example: doubling from 100, capped at 400.
        (PACED, &[(0, 100), (1, 200), (2, 400), (3, 400), (10, 400), (64, 400), (u32::MAX, 400)]),
        // The default: OTP restarts at once, whatever the count.
        (Backoff::default(), &[(0, 0), (1, 0), (30, 0), (u32::MAX, 0)]),
        // A fractional multiplier; the delay is truncated to whole milliseconds.
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 1.5, reset_after_ms: 1000 },
            &[(0, 100), (1, 150), (2, 225), (3, 337), (4, 506), (5, 759), (6, 1000)],
        ),
        // A multiplier below 1 never shrinks the delay; 1 keeps it constant.
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 0.5, reset_after_ms: 1000 },
            &[(0, 100), (1, 100), (9, 100)],
        ),
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 1.0, reset_after_ms: 1000 },
            &[(0, 100), (5, 100)],
        ),
        // max_ms below initial_ms caps even the first delay.
        (
            Backoff { initial_ms: 500, max_ms: 400, multiplier: 2.0, reset_after_ms: 1000 },
            &[(0, 400), (1, 400)],
        ),
        // Huge values saturate at max_ms instead of overflowing.
        (
            Backoff { initial_ms: u64::MAX / 2, max_ms: u64::MAX, multiplier: 1e300, reset_after_ms: 0 },
            &[(0, u64::MAX / 2 + 1), (1, u64::MAX), (u32::MAX, u64::MAX)],
        ),
    ];
    for (backoff, table) in rows {
        for &(n, want) in *table {
            assert_eq!(curve(*backoff, n), want, "{backoff:?} after {n}");
        }
    }
}

/// Crash `pid` (instance `pid - 100`, as no spawn failed) and check the delay that
/// follows, the `backoff` state with its next try, and that the retry happens at the
/// deadline and not a microsecond before.
#[track_caller]
fn crash_and_wait(h: &mut Harness, name: &str, pid: i32, crash_at_ms: u64, delay: u64) -> i32 {
    h.at(crash_at_ms).check(
        exited(pid, code(1)),
        &format!(
            "reaped #{instance}
             event exited {name} pid={pid} (exit 1)
             event restarting {name} delay={delay}",
            instance = pid - 100
        ),
    );
    let retry_ms = crash_at_ms + delay;
    assert_eq!(h.deadline(), Some(retry_ms * 1000), "deadline = retry time");
    h.check(
        lookup(name),
        &format!("reply c1: ok name={name} state=backoff"),
    );
    let row = h.row(name);
    assert_eq!(row.state, WorkerStateName::Backoff);
    assert_eq!(row.pid, None);
    assert_eq!(row.next_try_ms, Some(WALL0 + retry_ms));
    assert_eq!(row.started_at_ms, 0);
    let last = row.last_exit.expect("a last exit");
    assert_eq!(last.reason, "exit 1");
    assert_eq!(last.at_ms, WALL0 + crash_at_ms);

    // A tick before the deadline does nothing; at the deadline the worker is spawned.
    h.at_us(retry_ms * 1000 - 1).check(Input::Tick, "");
    let next = h.last_pid + 1;
    h.at(retry_ms).check(
        Input::Tick,
        &format!(
            "spawn {name} #{instance} -> {next}
             event started {name} pid={next}",
            instance = next - 100
        ),
    );
    assert_eq!(h.deadline(), None);
    h.check(
        lookup(name),
        &format!("reply c1: ok name={name} pid={next} state=running"),
    );
    next
}

#[test]
fn backoff_delays_grow_then_cap() {
    // A generous intensity: this test is about pacing only.
    let mut h = Harness::new(100, 5, None, vec![paced(permanent("p"))]);
    h.at(0).check(
        start("w", "p"),
        "spawn w #1 -> 101
         event started w pid=101
         save state
         reply c1: ok name=w pid=101",
    );
    assert_eq!(h.deadline(), None);
    // Each run lasts 10 ms, far below reset_after_ms.
    let pid = crash_and_wait(&mut h, "w", 101, 10, 100); // retry at 110
    let pid = crash_and_wait(&mut h, "w", pid, 120, 200); // retry at 320
    let pid = crash_and_wait(&mut h, "w", pid, 330, 400); // retry at 730
    let pid = crash_and_wait(&mut h, "w", pid, 740, 400); // capped; retry at 1140
    assert_eq!(pid, 105);
    let row = h.row("w");
    assert_eq!(row.restarts, 4);
    assert_eq!(row.restarts_in_window, 4);
}

#[test]
fn a_long_run_resets_the_backoff() {
    let mut h = Harness::new(100, 5, None, vec![paced(permanent("p"))]);
    h.started(start("w", "p"));
    let pid = crash_and_wait(&mut h, "w", 101, 10, 100); // up at 110
    let pid = crash_and_wait(&mut h, "w", pid, 120, 200); // up at 320
                                                          // Ran exactly reset_after_ms (1000 ms): the curve starts again.
    let pid = crash_and_wait(&mut h, "w", pid, 1320, 100); // up at 1420
                                                           // Ran 999 ms: not long enough, the curve goes on.
    let pid = crash_and_wait(&mut h, "w", pid, 2419, 200); // up at 2619
    let _ = crash_and_wait(&mut h, "w", pid, 2620, 400);
}

#[test]
fn default_backoff_restarts_at_once_without_a_deadline() {
    let mut h = Harness::new(3, 5, None, vec![permanent("p")]);
    h.started(start("w", "p"));
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         event exited w pid=101 (exit 1)
         event restarting w delay=0
         spawn w #2 -> 102
         event started w pid=102",
    );
    assert_eq!(h.deadline(), None);
    h.check(lookup("w"), "reply c1: ok name=w pid=102 state=running");
}

#[test]
fn stop_of_a_worker_in_backoff_removes_it_and_its_deadline() {
    let mut h = Harness::new(100, 5, None, vec![paced(permanent("p"))]);
    h.started(start("w", "p"));
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(
        stop("w"),
        "event stopped w (stopped)
         save state
         reply c1: ok stopped={w killed=false}",
    );
    assert_eq!(h.deadline(), None);
    h.at(200)
        .check(Input::Tick, "")
        .check(lookup("w"), "reply c1: error not_found");
}

// ----- per-template limits ------------------------------------------------------------

#[test]
fn give_up_marks_only_that_worker_failed() {
    // 1 restart in 5 s for the supervisor: the worker's two restarts would trip it if
    // they counted there.
    let mut h = Harness::new(
        1,
        5,
        None,
        vec![
            transient("t"),
            limited(permanent("g"), Some(2), 10, OnLimit::GiveUp),
        ],
    );
    assert_eq!(h.started(start("s", "t")), 101);
    assert_eq!(h.started(start("w", "g")), 102);
    h.at(1000)
        .check(
            exited(102, code(1)),
            "reaped #2
             event exited w pid=102 (exit 1)
             event restarting w delay=0
             spawn w #3 -> 103
             event started w pid=103",
        )
        .at(1100)
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited w pid=103 (exit 1)
             event restarting w delay=0
             spawn w #4 -> 104
             event started w pid=104",
        )
        // The third restart within 10 s is over the limit of 2: given up.
        .at(1200)
        .check(
            exited(104, code(7)),
            "reaped #4
             event exited w pid=104 (exit 7)
             event failed w (exit 7)",
        );
    assert!(h.sup.intensity.is_empty(), "never counted supervisor-wide");
    assert_eq!(h.deadline(), None);
    assert!(!h.sup.is_shutting_down());
    h.check(lookup("w"), "reply c1: ok name=w state=failed")
        .check(lookup("s"), "reply c1: ok name=s pid=101 state=running")
        .check(kill("w"), "reply c1: error not_running")
        .check(
            count(),
            "reply c1: ok count=2 counts={total=2 active=1 backoff=0 failed=1 stopping=0}",
        );
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Failed);
    assert_eq!(row.pid, None);
    assert_eq!(row.next_try_ms, None);
    // Two restarts, plus the attempt that hit the limit.
    assert_eq!(row.restarts, 3);
    assert_eq!(
        row.last_exit,
        Some(LastExit {
            reason: "exit 7".to_string(),
            at_ms: WALL0 + 1200,
        })
    );
    // The sibling is untouched and still restartable as usual.
    let s = h.row("s");
    assert_eq!((s.pid, s.restarts), (Some(101), 0));
    h.at(2000).check(
        exited(101, code(1)),
        "reaped #1
         event exited s pid=101 (exit 1)
         event restarting s delay=0
         spawn s #5 -> 105
         event started s pid=105",
    );
}

#[test]
fn restarts_in_window_never_exceeds_restarts() {
    // `WorkerInfo::restarts_in_window` is documented as "of those [restarts], how
    // many fall within the restart window"; a failed worker must not show more
    // restarts in its window than it had at all.
    let mut h = Harness::new(
        100,
        5,
        None,
        vec![limited(permanent("g"), Some(2), 10, OnLimit::GiveUp)],
    );
    h.started(start("w", "g"));
    for (i, at) in [100, 200, 300].into_iter().enumerate() {
        h.at(at).feed(exited(101 + i as i32, code(1)));
    }
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Failed);
    assert!(
        row.restarts_in_window <= row.restarts,
        "restarts={} restarts_in_window={}",
        row.restarts,
        row.restarts_in_window
    );
}

#[test]
fn give_up_with_infinite_limit_retries_forever_and_never_trips_the_supervisor() {
    // max_restarts 0: any restart counted supervisor-wide would escalate at once.
    let mut h = Harness::new(
        0,
        5,
        None,
        vec![limited(paced(permanent("g")), None, 10, OnLimit::GiveUp)],
    );
    let mut pid = h.started(start("w", "g"));
    let mut now = 0;
    for i in 0..50 {
        now += 5;
        h.at(now).feed(exited(pid, code(1)));
        let delay = [100, 200].get(i).copied().unwrap_or(400);
        assert_eq!(
            h.events().last(),
            Some(&Event::Restarting {
                name: "w".to_string(),
                delay_ms: delay
            }),
            "crash {i}"
        );
        now += delay;
        assert_eq!(h.deadline(), Some(now * 1000));
        h.at(now).feed(Input::Tick);
        pid = h.last_pid;
        assert_eq!(
            h.events(),
            [Event::Started {
                name: "w".to_string(),
                pid
            }]
        );
        assert!(!h.sup.is_shutting_down(), "crash {i}");
    }
    assert!(h.sup.intensity.is_empty());
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Running);
    assert_eq!(row.restarts, 50);
}

#[test]
fn stop_of_a_failed_worker_removes_it() {
    let mut h = Harness::new(
        3,
        5,
        None,
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    );
    h.started(start("w", "g"));
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         event exited w pid=101 (exit 1)
         event failed w (exit 1)",
    );
    h.check(
        stop("w"),
        "event stopped w (stopped)
         save state
         reply c1: ok stopped={w killed=false}",
    )
    .check(lookup("w"), "reply c1: error not_found")
    .check(
        count(),
        "reply c1: ok count=0 counts={total=0 active=0 backoff=0 failed=0 stopping=0}",
    );
    assert!(h.sup.saved_workers().is_empty());
}

#[test]
fn start_of_a_failed_name_replaces_it() {
    let mut h = Harness::new(
        3,
        5,
        None,
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    );
    h.started(start_full("w", "g", &["old"], None));
    h.at(10).feed(exited(101, code(1)));
    h.check(lookup("w"), "reply c1: ok name=w state=failed");

    let trace = h.at(20).feed(start_full("w", "g", &["new"], None));
    assert_eq!(
        h.reply(),
        Reply {
            name: Some("w".to_string()),
            pid: Some(102),
            ..Reply::ok()
        },
        "{trace:#?}"
    );
    assert!(trace.contains(&"event started w pid=102".to_string()));
    // The state file is written (with the new args) before the reply.
    let reply_at = trace.iter().position(|l| l.starts_with("reply")).unwrap();
    assert!(
        trace[..reply_at].iter().any(|l| l == "save state"),
        "{trace:#?}"
    );
    assert_eq!(h.specs.last().unwrap().argv.last().unwrap(), "new");
    // A fresh worker: no restarts, no last exit, its own fresh window.
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Running);
    assert_eq!((row.pid, row.restarts, row.last_exit), (Some(102), 0, None));
    assert_eq!(h.sup.saved_workers()[0].args, ["new"]);
    h.check(
        count(),
        "reply c1: ok count=1 counts={total=1 active=1 backoff=0 failed=0 stopping=0}",
    );
}

#[test]
fn escalate_with_its_own_limit_stops_everything_and_exits_1() {
    // The supervisor-wide intensity is generous; the worker's own limit (1 in 10 s) trips.
    let mut h = Harness::new(
        100,
        5,
        None,
        vec![
            transient("t"),
            limited(permanent("e"), Some(1), 10, OnLimit::Escalate),
        ],
    );
    h.started(start("s", "t")); // 101
    h.started(start("w", "e")); // 102
    h.at(1000).check(
        exited(102, code(1)),
        "reaped #2
         event exited w pid=102 (exit 1)
         event restarting w delay=0
         spawn w #3 -> 103
         event started w pid=103",
    );
    // Escalate also counts in the supervisor-wide window.
    assert_eq!(h.sup.intensity.len(), 1);
    h.at(2000)
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited w pid=103 (exit 1)
             event intensity_tripped w
             event shutdown
             signal group 101 SIGTERM",
        )
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1
             event stopped s (stopped)
             exit 1",
        );
    assert_eq!(h.sup.count(), 0);
}

#[test]
fn escalate_own_limit_counts_per_worker() {
    // Two workers of a 1-in-10 s template each crash once: within each one's own limit.
    let mut h = Harness::new(
        100,
        5,
        None,
        vec![limited(permanent("e"), Some(1), 10, OnLimit::Escalate)],
    );
    h.started(start("a", "e")); // 101
    h.started(start("b", "e")); // 102
    h.at(100).feed(exited(101, code(1)));
    h.at(200).feed(exited(102, code(1)));
    assert!(!h.sup.is_shutting_down());
    assert_eq!(h.sup.intensity.len(), 2);
    // Outside its own 10 s window, a's next crash is fine too.
    h.at(11_100).feed(exited(103, code(1)));
    assert!(!h.sup.is_shutting_down());
}

// ----- normal_exit_codes ------------------------------------------------------------------

#[test]
fn normal_exit_codes_decide_the_transient_rule() {
    let mut t = transient("t");
    t.normal_exit_codes = vec![0, 3];
    let mut p = permanent("p");
    p.normal_exit_codes = vec![0, 3];
    let mut h = Harness::new(10, 5, None, vec![t, p]);
    h.started(start("a", "t")); // 101
    h.started(start("b", "t")); // 102
    h.started(start("c", "t")); // 103
    h.started(start("d", "p")); // 104
    h.at(10)
        .check(
            exited(101, code(3)),
            "reaped #1
             event exited a pid=101 (exit 3)
             event stopped a (exit 3; not restarted)
             save state",
        )
        .check(
            exited(102, code(0)),
            "reaped #2
             event exited b pid=102 (exit 0)
             event stopped b (exit 0; not restarted)
             save state",
        )
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited c pid=103 (exit 1)
             event restarting c delay=0
             spawn c #5 -> 105
             event started c pid=105",
        )
        // Permanent restarts whatever the code.
        .check(
            exited(104, code(3)),
            "reaped #4
             event exited d pid=104 (exit 3)
             event restarting d delay=0
             spawn d #6 -> 106
             event started d pid=106",
        );
    // Only the two restarts counted; clean exits never do.
    assert_eq!(h.sup.intensity.len(), 2);
}

// ----- restart ------------------------------------------------------------------------

#[test]
fn restart_stops_then_spawns_the_same_spec_and_counts_nothing() {
    // max_restarts 0: a counted restart would escalate at once.
    let mut h = Harness::new(0, 5, None, vec![transient("t")]);
    h.started(start_full("w", "t", &["a"], None)); // 101
    h.at(10)
        .check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=stopping")
        .at(20)
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1
             event exited w pid=101 (signal SIGTERM (stopped to be restarted))
             event restarting w delay=0
             spawn w #2 -> 102
             event started w pid=102
             reply c2: ok name=w pid=102",
        );
    assert!(Rc::ptr_eq(&h.specs[0], &h.specs[1]), "the same spec");
    assert!(h.sup.intensity.is_empty());
    let row = h.row("w");
    assert_eq!(
        (row.pid, row.restarts, row.restarts_in_window),
        (Some(102), 0, 0)
    );
    assert_eq!(row.started_at_ms, WALL0 + 20);
    assert_eq!(row.last_exit.map(|e| e.reason), Some("stopped".to_string()));
    // Again: still nothing counted.
    h.at(30)
        .check(restart("w"), "signal group 102 SIGTERM")
        .check(
            exited(102, signaled(Signal::TERM)),
            "reaped #2
             event exited w pid=102 (signal SIGTERM (stopped to be restarted))
             event restarting w delay=0
             spawn w #3 -> 103
             event started w pid=103
             reply c1: ok name=w pid=103",
        );
    assert!(!h.sup.is_shutting_down());
}

#[test]
fn restart_timeout_kills_the_group() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    h.check(restart_within("w", 200), "signal group 101 SIGTERM");
    assert_eq!(h.deadline(), Some(200_000));
    h.at(200)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check(
            exited(101, signaled(Signal::KILL)),
            "reaped #1
             event exited w pid=101 (signal SIGKILL (stopped to be restarted))
             event restarting w delay=0
             spawn w #2 -> 102
             event started w pid=102
             reply c1: ok name=w pid=102",
        );
    assert_eq!(h.deadline(), None);
}

#[test]
fn restart_of_a_waiting_or_failed_worker_spawns_at_once() {
    let mut h = Harness::new(
        100,
        5,
        None,
        vec![
            paced(permanent("p")),
            limited(permanent("g"), Some(0), 10, OnLimit::GiveUp),
        ],
    );
    h.started(start("b", "p")); // 101
    h.started(start("f", "g")); // 102
    h.at(10).feed(exited(101, code(1)));
    h.feed(exited(102, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(lookup("f"), "reply c1: ok name=f state=failed")
        .check(
            restart("b"),
            "spawn b #3 -> 103
             event started b pid=103
             reply c1: ok name=b pid=103",
        )
        .check(
            restart("f"),
            "spawn f #4 -> 104
             event started f pid=104
             reply c1: ok name=f pid=104",
        );
    assert_eq!(h.deadline(), None, "the backoff deadline is cancelled");
    h.at(200).check(Input::Tick, "");
    // An operator restart starts the backoff curve afresh.
    h.at(220).check(
        exited(103, code(1)),
        "reaped #3
         event exited b pid=103 (exit 1)
         event restarting b delay=100",
    );
    h.check(lookup("f"), "reply c1: ok name=f pid=104 state=running");
}

#[test]
fn restart_errors() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.check(restart("nobody"), "reply c1: error not_found");
    h.started(start("w", "t"));
    h.check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        .check(restart("w"), "reply c1: error not_running");
}

#[test]
fn a_stop_during_a_restart_answers_both_requests() {
    // Every request gets exactly one reply: the connection's replies are sent in
    // order, so a request left unanswered blocks that connection for good.
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    // The stop wins; the restart's caller is told at once.
    h.check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(from(conn(3), stop("w")), "reply c2: error not_running");
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace.iter().any(|l| l.starts_with("reply c3: ok stopped=")),
        "{trace:#?}"
    );
    h.check(lookup("w"), "reply c1: error not_found");
}

#[test]
fn a_reload_during_a_restart_still_answers_the_restart() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.check(
        from(
            ReplyTo::Boot { index: 0 },
            start_full("c", "t", &["1"], None),
        ),
        "spawn c #1 -> 101
         event started c pid=101
         reply boot0: ok name=c pid=101",
    );
    h.check(from(conn(2), restart("c")), "signal group 101 SIGTERM")
        .check(
            reload(3, vec![transient("t")], vec![boot_child("c", "t", &["2"])]),
            "reply c1: ok reload={started=[] stopped=[] restarted=[c] unchanged=[] skipped=[]}",
        );
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert_eq!(
        h.specs.last().unwrap().argv.last().unwrap(),
        "2",
        "new spec"
    );
    assert!(
        trace.iter().any(|l| l.starts_with("reply c2:")),
        "the restart request (c2) is never answered:\n{}",
        trace.join("\n")
    );
}

#[test]
fn a_reload_removing_a_child_during_its_restart_still_answers_the_restart() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    boot(&mut h, 0, "c", "t", &[]);
    // Removed from the config: the restart's caller is told at once.
    h.check(from(conn(2), restart("c")), "signal group 101 SIGTERM")
        .check(
            reload(3, vec![transient("t")], vec![]),
            "reply c2: error not_running
             reply c1: ok reload={started=[] stopped=[c] restarted=[] unchanged=[] skipped=[]}",
        );
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace.contains(&"event stopped c (stopped)".to_string()),
        "{trace:#?}"
    );
    h.check(lookup("c"), "reply c1: error not_found");
}

#[test]
fn a_stop_in_progress_wins_over_a_reload_restart() {
    // `stop` says so for an operator restart ("a stop wins over a pending operator
    // restart"); a reload's restart of a changed child is one too. Whatever wins, the
    // stop's caller must not be told `stopped` while the name is registered again.
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    boot(&mut h, 0, "c", "t", &["1"]);
    h.check(from(conn(2), stop("c")), "signal group 101 SIGTERM");
    h.feed(reload(
        3,
        vec![transient("t")],
        vec![boot_child("c", "t", &["2"])],
    ));
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace
            .iter()
            .any(|l| l == "reply c2: ok stopped={c pid=101 signal SIGTERM killed=false}"),
        "{trace:#?}"
    );
    let trace = h.feed(lookup("c"));
    assert_eq!(
        trace,
        ["reply c1: error not_found"],
        "c2 was told `c` is stopped, yet it runs again"
    );
}

#[test]
fn a_restart_interrupted_by_shutdown_is_answered_shutting_down() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    h.check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(shutdown(), "event shutdown")
        .check(from(conn(3), restart("w")), "reply c3: error shutting_down")
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1
             event stopped w (stopped)
             reply c2: error shutting_down
             reply c1: ok shutdown=[{w pid=101 signal SIGTERM killed=false}]
             exit 0",
        );
}

#[test]
fn a_restart_whose_spawn_fails_unregisters_the_worker() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    h.check(restart("w"), "signal group 101 SIGTERM");
    h.fail_next = 1;
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event exited w pid=101 (signal SIGTERM (stopped to be restarted))
         event restarting w delay=0
         spawn w #2 -> failed
         event stopped w (spawn failed: No such file or directory (os error 2))
         save state
         reply c1: error spawn_failed",
    )
    .check(lookup("w"), "reply c1: error not_found");
    assert!(h.sup.saved_workers().is_empty());
    assert!(h.sup.intensity.is_empty());
}

// ----- max_children -------------------------------------------------------------------

#[test]
fn max_children_is_checked_first_and_backoff_holds_a_slot() {
    let mut h = Harness::new(100, 5, Some(2), vec![paced(permanent("p"))]);
    h.started(start("a", "p")); // 101
    h.started(start("b", "p")); // 102
    h.check(start("c", "p"), "reply c1: error max_children")
        // Before name validation, the template lookup and the already_started check.
        .check(start("bad name", "p"), "reply c1: error max_children")
        .check(start("c", "nope"), "reply c1: error max_children")
        .check(start("a", "p"), "reply c1: error max_children");
    // A worker waiting in backoff still holds its slot.
    h.at(10).feed(exited(101, code(1)));
    h.check(lookup("a"), "reply c1: ok name=a state=backoff")
        .check(start("c", "p"), "reply c1: error max_children")
        // Once it is stopped the slot is free.
        .check(
            stop("a"),
            "event stopped a (stopped)
             save state
             reply c1: ok stopped={a killed=false}",
        )
        .check(
            start("c", "p"),
            "spawn c #3 -> 103
             event started c pid=103
             save state
             reply c1: ok name=c pid=103",
        );
    assert!(h.specs.iter().all(|s| &*s.name != "bad name"));
}

#[test]
fn max_children_a_failed_worker_holds_its_slot_but_may_be_replaced() {
    let mut h = Harness::new(
        3,
        5,
        Some(1),
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    );
    h.started(start("a", "g"));
    h.at(10).feed(exited(101, code(1)));
    h.check(start("b", "g"), "reply c1: error max_children");
    assert_eq!(h.started(start("a", "g")), 102);
    h.check(
        count(),
        "reply c1: ok count=1 counts={total=1 active=1 backoff=0 failed=0 stopping=0}",
    );
}

// ----- extra_args -----------------------------------------------------------------------

#[test]
fn extra_args_are_prepended_and_a_command_override_replaces_them() {
    let mut t = permanent("t");
    t.extra_args = vec!["-x".to_string()];
    let mut h = Harness::new(3, 5, None, vec![t]);
    h.started(start_full("w", "t", &["a"], None));
    assert_eq!(h.specs[0].argv, ["/opt/bin/worker", "--flag", "-x", "a"]);
    assert_eq!(h.specs[0].args, ["a"]);
    assert_eq!(h.specs[0].command, None);
    // Also on restart.
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.specs[1].argv, ["/opt/bin/worker", "--flag", "-x", "a"]);

    h.started(start_full("v", "t", &["a"], Some(&["/bin/echo", "hi"])));
    assert_eq!(h.specs[2].argv, ["/bin/echo", "hi", "a"]);
    assert_eq!(h.specs[2].template.extra_args, ["-x"]);
    // The state file records what was asked, not the expanded command line.
    assert_eq!(
        h.sup.saved_workers(),
        [
            SavedWorker {
                name: "v".to_string(),
                template: "t".to_string(),
                args: vec!["a".to_string()],
                command: Some(vec!["/bin/echo".to_string(), "hi".to_string()]),
            },
            SavedWorker {
                name: "w".to_string(),
                template: "t".to_string(),
                args: vec!["a".to_string()],
                command: None,
            },
        ]
    );
}

// ----- count --------------------------------------------------------------------------

#[test]
fn count_has_the_count_children_shape() {
    let mut h = Harness::new(
        100,
        5,
        None,
        vec![
            transient("t"),
            paced(permanent("p")),
            limited(permanent("g"), Some(0), 10, OnLimit::GiveUp),
        ],
    );
    h.started(start("run", "t")); // 101
    h.started(start("stopping", "t")); // 102
    h.started(start("back", "p")); // 103
    h.started(start("fail", "g")); // 104
    h.started(start("retry", "t")); // 105
    h.at(10)
        .check(from(conn(2), stop("stopping")), "signal group 102 SIGTERM")
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited back pid=103 (exit 1)
             event restarting back delay=100",
        )
        .check(
            exited(104, code(1)),
            "reaped #4
             event exited fail pid=104 (exit 1)
             event failed fail (exit 1)",
        );
    h.fail_next = 1;
    h.check(
        exited(105, code(1)),
        "reaped #5
         event exited retry pid=105 (exit 1)
         event restarting retry delay=0
         spawn retry #6 -> failed
         event restarting retry delay=0",
    )
    .check(lookup("retry"), "reply c1: ok name=retry state=restarting")
    .check(
        count(),
        "reply c1: ok count=5 counts={total=5 active=2 backoff=2 failed=1 stopping=1}",
    )
    .check(
        list(),
        "reply c1: ok workers=[back:backoff fail:failed retry:restarting run:running stopping:stopping]",
    );
    // `restarting` shows the next try too (now: due at once).
    assert_eq!(h.row("retry").next_try_ms, Some(WALL0 + 10));
}

// ----- whois --------------------------------------------------------------------------

#[test]
fn whois_finds_a_worker_by_pid_or_process_group() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t")); // 101
    h.started(start("v", "t")); // 102
    h.check(
        whois(101, Some(101)),
        "reply c1: ok name=w pid=101 state=running",
    )
    .check(
        whois(101, None),
        "reply c1: ok name=w pid=101 state=running",
    )
    // A grandchild in v's process group.
    .check(
        whois(4242, Some(102)),
        "reply c1: ok name=v pid=102 state=running",
    )
    .check(whois(4242, None), "reply c1: error not_found")
    .check(whois(4242, Some(4000)), "reply c1: error not_found")
    .check(
        from(conn(7), whois(102, Some(102))),
        "reply c7: ok name=v pid=102 state=running",
    );
    let message = {
        h.feed(whois(4242, Some(4000)));
        h.reply().error.unwrap().message
    };
    assert!(message.contains("4242"), "{message}");
    // Still found while it is being stopped; gone once reaped.
    h.check(stop("v"), "signal group 102 SIGTERM").check(
        whois(102, Some(102)),
        "reply c1: ok name=v pid=102 state=stopping",
    );
    h.feed(exited(102, signaled(Signal::TERM)));
    h.check(whois(102, Some(102)), "reply c1: error not_found");
}

// ----- events -------------------------------------------------------------------------

#[test]
fn events_of_a_crash_and_a_stop_in_order() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    assert_eq!(
        h.events(),
        [Event::Started {
            name: "w".to_string(),
            pid: 101
        }]
    );
    h.at(10).feed(exited(101, signaled(Signal::KILL)));
    assert_eq!(
        h.events(),
        [
            Event::Exited {
                name: "w".to_string(),
                pid: 101,
                reason: "signal SIGKILL".to_string(),
                exit: ExitReport::Signaled {
                    signal: "SIGKILL".to_string(),
                    core_dumped: false
                },
            },
            Event::Restarting {
                name: "w".to_string(),
                delay_ms: 0
            },
            Event::Started {
                name: "w".to_string(),
                pid: 102
            },
        ]
    );
    h.feed(stop("w"));
    assert!(h.events().is_empty(), "nothing until it is reaped");
    h.feed(exited(102, signaled(Signal::TERM)));
    assert_eq!(
        h.events(),
        [Event::Stopped {
            name: "w".to_string(),
            reason: "stopped".to_string()
        }]
    );
}

#[test]
fn a_stop_that_needs_sigkill_says_so() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    h.check(
        request(Request::Stop {
            name: "w".to_string(),
            timeout_ms: Some(100),
        }),
        "signal group 101 SIGTERM",
    )
    .at(100)
    .check(Input::Tick, "signal group 101 SIGKILL")
    .check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         event stopped w (killed after its stop timeout)
         save state
         reply c1: ok stopped={w pid=101 signal SIGKILL killed=true}",
    );
}

#[test]
fn shutdown_emits_shutdown_first_and_saves_no_state() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.started(start("a", "t")); // 101
    h.started(start("b", "t")); // 102
    let trace = h.feed(shutdown());
    assert_eq!(trace[0], "event shutdown");
    let mut signals = trace[1..].to_vec();
    signals.sort();
    assert_eq!(
        signals,
        ["signal group 101 SIGTERM", "signal group 102 SIGTERM"]
    );
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped a (stopped)",
    )
    .check(
        exited(102, code(0)),
        "reaped #2
         event stopped b (stopped)
         reply c1: ok shutdown=[{a pid=101 signal SIGTERM killed=false} {b pid=102 exit 0 killed=false}]
         exit 0",
    );
}

#[test]
fn the_supervisor_intensity_trips_with_an_event() {
    let mut h = Harness::new(0, 5, None, vec![transient("t")]);
    h.started(start("w", "t"));
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         event exited w pid=101 (exit 1)
         event intensity_tripped w
         event shutdown
         exit 1",
    );
}

// ----- durable dynamic workers (SaveState) ------------------------------------------------

#[test]
fn state_is_saved_before_the_reply_for_dynamic_workers_only() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    // A boot child is not recorded.
    h.check(
        from(
            ReplyTo::Boot { index: 0 },
            start_full("boot", "t", &["b"], None),
        ),
        "spawn boot #1 -> 101
         event started boot pid=101
         reply boot0: ok name=boot pid=101",
    );
    assert!(h.sup.saved_workers().is_empty());
    // Dynamic ones are, before the reply.
    h.check(
        start_full("zed", "t", &["z"], None),
        "spawn zed #2 -> 102
         event started zed pid=102
         save state
         reply c1: ok name=zed pid=102",
    )
    .check(
        start_full("alpha", "t", &[], Some(&["/bin/sleep", "9"])),
        "spawn alpha #3 -> 103
         event started alpha pid=103
         save state
         reply c1: ok name=alpha pid=103",
    );
    assert_eq!(
        h.sup.saved_workers(),
        [
            SavedWorker {
                name: "alpha".to_string(),
                template: "t".to_string(),
                args: Vec::new(),
                command: Some(vec!["/bin/sleep".to_string(), "9".to_string()]),
            },
            SavedWorker {
                name: "zed".to_string(),
                template: "t".to_string(),
                args: vec!["z".to_string()],
                command: None,
            },
        ]
    );
    // A crash restart changes nothing durable: no save.
    h.at(10).check(
        exited(102, code(1)),
        "reaped #2
         event exited zed pid=102 (exit 1)
         event restarting zed delay=0
         spawn zed #4 -> 104
         event started zed pid=104",
    );
    // A failed start changes nothing either.
    h.fail_next = 1;
    h.check(
        start("nope", "t"),
        "spawn nope #5 -> failed
         reply c1: error spawn_failed",
    );
    // Stopping a boot child: no save. Stopping a dynamic one: save, then reply.
    h.check(stop("boot"), "signal group 101 SIGTERM").check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped boot (stopped)
         reply c1: ok stopped={boot pid=101 signal SIGTERM killed=false}",
    );
    h.check(stop("alpha"), "signal group 103 SIGTERM").check(
        exited(103, signaled(Signal::TERM)),
        "reaped #3
         event stopped alpha (stopped)
         save state
         reply c1: ok stopped={alpha pid=103 signal SIGTERM killed=false}",
    );
    // A clean exit of a transient dynamic worker removes it: save.
    h.check(
        exited(104, code(0)),
        "reaped #4
         event exited zed pid=104 (exit 0)
         event stopped zed (exit 0; not restarted)
         save state",
    );
    assert!(h.sup.saved_workers().is_empty());
}

#[test]
fn shutdown_keeps_the_state_file_as_it_was() {
    let mut h = Harness::new(3, 5, None, vec![paced(transient("t"))]);
    h.started(start("a", "t")); // 101
    h.started(start("b", "t")); // 102
    h.at(10).feed(exited(102, code(1))); // b waits in backoff
    let trace = h.feed(shutdown());
    assert_eq!(
        trace,
        ["event shutdown", "signal group 101 SIGTERM"],
        "b is dropped without a save"
    );
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped a (stopped)
         reply c1: ok shutdown=[{a pid=101 signal SIGTERM killed=false}]
         exit 0",
    );
}

#[test]
fn restored_workers_are_dynamic_and_their_failures_do_not_abort() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    h.check(
        from(
            ReplyTo::Restore { index: 0 },
            start_full("r", "t", &["x"], None),
        ),
        "spawn r #1 -> 101
         event started r pid=101
         save state
         reply restore0: ok name=r pid=101",
    );
    assert!(h.row("r").dynamic);
    assert_eq!(h.sup.saved_workers()[0].name, "r");
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Restore { index: 1 }, start("s", "t")),
        "spawn s #2 -> failed
         reply restore1: error spawn_failed",
    )
    .check(
        from(ReplyTo::Restore { index: 2 }, start("u", "gone")),
        "reply restore2: error unknown_template",
    )
    .check(
        from(ReplyTo::Restore { index: 3 }, start("r", "t")),
        "reply restore3: error already_started pid=101",
    );
    assert!(!h.sup.is_shutting_down());
    h.check(lookup("r"), "reply c1: ok name=r pid=101 state=running");
    // Whereas a boot child's failure aborts the boot.
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 0 }, start("b", "t")),
        "spawn b #3 -> failed
         reply boot0: error spawn_failed
         event shutdown
         signal group 101 SIGTERM",
    );
}

// ----- reload -------------------------------------------------------------------------

fn boot(h: &mut Harness, index: usize, name: &str, template: &str, args: &[&str]) -> i32 {
    let input = from(
        ReplyTo::Boot { index },
        start_full(name, template, args, None),
    );
    h.started(input)
}

#[test]
fn reload_applies_only_the_difference() {
    let mut h = Harness::new(
        3,
        5,
        None,
        vec![transient("t"), permanent("u"), transient("old")],
    );
    assert_eq!(boot(&mut h, 0, "keep", "t", &["1"]), 101);
    assert_eq!(boot(&mut h, 1, "args", "t", &["1"]), 102);
    assert_eq!(boot(&mut h, 2, "tpl", "u", &[]), 103);
    assert_eq!(boot(&mut h, 3, "gone", "t", &[]), 104);
    assert_eq!(h.started(start("dyn", "u")), 105);
    assert_eq!(h.started(start("clash", "t")), 106);

    let mut u2 = permanent("u");
    u2.env = vec![("MODE".to_string(), "2".to_string())];
    h.at(1000).check(
        reload(
            3,
            vec![transient("t"), u2, transient("v")],
            vec![
                boot_child("keep", "t", &["1"]),
                boot_child("args", "t", &["2"]),
                boot_child("tpl", "u", &[]),
                boot_child("fresh", "t", &[]),
                boot_child("clash", "t", &[]),
            ],
        ),
        "signal group 102 SIGTERM
         signal group 103 SIGTERM
         spawn fresh #7 -> 107
         event started fresh pid=107
         reply reload: ok name=fresh pid=107
         signal group 104 SIGTERM
         reply c1: ok reload={started=[fresh] stopped=[gone] restarted=[args tpl] unchanged=[keep] skipped=[clash]}",
    );
    let report = h.reply_to(conn(1)).reload.unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].contains("dynamic"),
        "{:?}",
        report.skipped
    );

    // Changed children come back with their new spec; no save: they are not dynamic.
    h.at(1100)
        .check(
            exited(102, signaled(Signal::TERM)),
            "reaped #2
             event exited args pid=102 (signal SIGTERM (stopped to be restarted))
             event restarting args delay=0
             spawn args #8 -> 108
             event started args pid=108",
        )
        .check(
            exited(103, signaled(Signal::TERM)),
            "reaped #3
             event exited tpl pid=103 (signal SIGTERM (stopped to be restarted))
             event restarting tpl delay=0
             spawn tpl #9 -> 109
             event started tpl pid=109",
        )
        .check(
            exited(104, signaled(Signal::TERM)),
            "reaped #4
             event stopped gone (stopped)",
        );
    assert_eq!(h.specs[7].argv, ["/opt/bin/worker", "--flag", "2"]);
    assert_eq!(
        h.specs[8].template.env,
        [("MODE".to_string(), "2".to_string())]
    );
    assert!(
        h.sup.intensity.is_empty(),
        "reload restarts are not crashes"
    );

    // Unchanged and dynamic workers keep their pids; dynamic ones their old spec.
    h.check(
        list(),
        "reply c1: ok workers=[args:running clash:running dyn:running fresh:running keep:running tpl:running]",
    );
    let pids: Vec<(String, Option<i32>, bool)> = h
        .reply()
        .workers
        .unwrap()
        .into_iter()
        .map(|w| (w.name, w.pid, w.dynamic))
        .collect();
    assert_eq!(
        pids,
        [
            ("args".to_string(), Some(108), false),
            ("clash".to_string(), Some(106), true),
            ("dyn".to_string(), Some(105), true),
            ("fresh".to_string(), Some(107), false),
            ("keep".to_string(), Some(101), false),
            ("tpl".to_string(), Some(109), false),
        ]
    );
    assert!(h.sup.workers["dyn"].spec.template.env.is_empty());
    assert_eq!(h.row("keep").restarts, 0);
    let saved: Vec<String> = h.sup.saved_workers().into_iter().map(|s| s.name).collect();
    assert_eq!(saved, ["clash", "dyn"]);

    // Templates are updated for future starts.
    h.check(
        start("x", "v"),
        "spawn x #10 -> 110
         event started x pid=110
         save state
         reply c1: ok name=x pid=110",
    )
    .check(start("y", "old"), "reply c1: error unknown_template");
    h.started(start("z", "u"));
    assert_eq!(
        h.specs.last().unwrap().template.env,
        [("MODE".to_string(), "2".to_string())]
    );
}

#[test]
fn reload_twice_with_the_same_config_touches_nothing() {
    let children = || vec![boot_child("a", "t", &["1"]), boot_child("b", "t", &[])];
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    boot(&mut h, 0, "a", "t", &["1"]);
    boot(&mut h, 1, "b", "t", &[]);
    for _ in 0..2 {
        h.check(
            reload(3, vec![transient("t")], children()),
            "reply c1: ok reload={started=[] stopped=[] restarted=[] unchanged=[a b] skipped=[]}",
        );
    }
}

#[test]
fn reload_removes_a_waiting_child_at_once_and_updates_limits() {
    let mut h = Harness::new(3, 5, None, vec![paced(permanent("p"))]);
    boot(&mut h, 0, "w", "p", &[]);
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(
        reload(0, vec![paced(permanent("p"))], vec![]),
        "event stopped w (removed from the config)
         reply c1: ok reload={started=[] stopped=[w] restarted=[] unchanged=[] skipped=[]}",
    );
    assert_eq!(h.deadline(), None);
    assert_eq!(h.sup.count(), 0);
    // The new limits apply: 0 restarts allowed now.
    h.started(start("d", "p"));
    h.at(20).check(
        exited(102, code(1)),
        "reaped #2
         event exited d pid=102 (exit 1)
         event intensity_tripped d
         event shutdown
         exit 1",
    );
}

#[test]
fn an_invalid_reload_changes_nothing() {
    let mut h = Harness::new(3, 5, None, vec![transient("t")]);
    boot(&mut h, 0, "a", "t", &[]);
    h.started(start("d", "t"));
    h.check(
        Input::Reload {
            from: Some(conn(1)),
            config: Err("/etc/dynsup.toml:3:7: unknown field `restrat`".to_string()),
        },
        "reply c1: error invalid_config",
    );
    let message = h.reply().error.unwrap().message;
    assert!(message.contains("/etc/dynsup.toml:3:7"), "{message}");
    // SIGHUP (no requester): nothing at all.
    h.check(
        Input::Reload {
            from: None,
            config: Err("bad".to_string()),
        },
        "",
    );
    h.check(list(), "reply c1: ok workers=[a:running d:running]")
        .check(lookup("a"), "reply c1: ok name=a pid=101 state=running")
        // The old templates are still in use.
        .check(
            start("e", "t"),
            "spawn e #3 -> 103
         event started e pid=103
         save state
         reply c1: ok name=e pid=103",
        );
}
