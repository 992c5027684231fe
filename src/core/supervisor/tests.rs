//! Scenario tests for [`Supervisor`], in the data-driven style: a script of inputs at
//! synthetic times, and the expected actions written out as text.
//!
//! The [`Harness`] plays the OS layer exactly as the contract in `supervisor.rs` asks:
//! every `Action::Spawn` is answered at once (depth first, before the next action is
//! looked at, as the reactor does) with `Spawned` and a fresh fake pid (101, 102, ...)
//! or, when told to, with `SpawnFailed`. Time is whatever the test sets with
//! [`Harness::at`]; nothing here reads a clock or sleeps.
//!
//! The trace of one input is rendered one action per line:
//!
//! ```text
//! spawn NAME #INSTANCE -> PID        (answered with Spawned)
//! spawn NAME #INSTANCE -> failed     (answered with SpawnFailed)
//! signal group PID SIGNAME           (Action::Signal { group: true })
//! signal pid PID SIGNAME             (Action::Signal { group: false })
//! cast #INSTANCE "MESSAGE" cCONN
//! reaped #INSTANCE
//! reply cCONN: ok field=value ...    (or: reply bootN: error KIND [pid=PID])
//! exit CODE
//! ```

use super::*;
use crate::core::spec::RestartType;
use crate::protocol::{StopReport, WorkerInfo};

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

fn temporary(name: &str) -> Template {
    template(name, RestartType::Temporary)
}

fn shutdown_ms(mut t: Template, ms: u64) -> Template {
    t.shutdown_ms = ms;
    t
}

fn segv() -> Signal {
    Signal::parse("SIGSEGV").expect("SIGSEGV")
}

// ----- inputs -------------------------------------------------------------------------

fn conn(conn: u64) -> ReplyTo {
    ReplyTo::Conn { conn, seq: 0 }
}

/// A request from connection 1.
fn request(req: Request) -> Input {
    Input::Request { from: conn(1), req }
}

/// The same input, from another reply target.
fn from(to: ReplyTo, input: Input) -> Input {
    match input {
        Input::Request { req, .. } => Input::Request { from: to, req },
        other => other,
    }
}

fn start(name: &str) -> Input {
    request(Request::Start {
        name: name.to_string(),
        template: None,
        args: Vec::new(),
        command: None,
    })
}

fn start_from(name: &str, template: &str) -> Input {
    request(Request::Start {
        name: name.to_string(),
        template: Some(template.to_string()),
        args: Vec::new(),
        command: None,
    })
}

fn stop(name: &str) -> Input {
    request(Request::Stop {
        name: name.to_string(),
        timeout_ms: None,
    })
}

fn stop_within(name: &str, timeout_ms: u64) -> Input {
    request(Request::Stop {
        name: name.to_string(),
        timeout_ms: Some(timeout_ms),
    })
}

fn kill(name: &str, signal: Option<&str>) -> Input {
    request(Request::Kill {
        name: name.to_string(),
        signal: signal.map(str::to_string),
    })
}

fn cast(name: &str, message: &str) -> Input {
    request(Request::Cast {
        name: name.to_string(),
        message: message.to_string(),
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

fn render_worker(w: &WorkerInfo) -> String {
    let pid = w.pid.map_or("-".to_string(), |p| p.to_string());
    format!(
        "{{{} pid={pid} {} {} {} restarts={} since={}}}",
        w.name,
        w.template,
        w.restart,
        w.state.as_str(),
        w.restarts,
        w.started_at_ms,
    )
}

fn render_reply(r: &Reply) -> String {
    let mut s = String::new();
    if !r.ok {
        let error = r.error.as_ref().expect("a failed reply carries an error");
        s += &format!("error {}", error.kind.as_str());
        if let Some(pid) = error.pid {
            s += &format!(" pid={pid}");
        }
        assert!(!error.message.is_empty(), "an error needs a message: {r:?}");
        return s;
    }
    assert!(r.error.is_none(), "an ok reply with an error: {r:?}");
    s += "ok";
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
    if let Some(workers) = &r.workers {
        let rows: Vec<String> = workers.iter().map(render_worker).collect();
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
    if let Some(queued) = r.queued {
        s += &format!(" queued={queued}");
    }
    s
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
        // `reply` may be a `Reply` or a `Box<Reply>`: deref coercion takes either.
        Action::Reply { to, reply } => format!("reply {}: {}", render_to(to), render_reply(reply)),
        Action::Exit { code } => format!("exit {code}"),
        Action::Event(event) => format!(
            "event {}",
            String::from_utf8_lossy(&event.encode()).trim_end()
        ),
        Action::SaveState => "save state".to_string(),
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
    now_ms: u64,
    last_pid: i32,
    /// How many of the next spawns fail.
    fail_next: u32,
    /// Every spawn fails while this is set.
    fail_always: bool,
    /// Every spec the core asked to spawn, in order.
    specs: Vec<Rc<ChildSpec>>,
    /// Every action of the last `feed`, spawns included, in order.
    last: Vec<Action>,
}

impl Harness {
    fn new(max_restarts: u32, max_seconds: u64, templates: Vec<Template>) -> Harness {
        let templates = templates
            .into_iter()
            .map(|t| (t.name.clone(), Rc::new(t)))
            .collect();
        Harness {
            sup: Supervisor::new(
                Limits {
                    max_restarts,
                    max_seconds,
                    max_children: None,
                },
                templates,
            ),
            now_ms: 0,
            last_pid: 100,
            fail_next: 0,
            fail_always: false,
            specs: Vec::new(),
            last: Vec::new(),
        }
    }

    /// One transient template `t` and the OTP default intensity (3 in 5 s).
    fn simple() -> Harness {
        Harness::new(3, 5, vec![transient("t")])
    }

    fn time(&self) -> Time {
        Time {
            mono_us: self.now_ms * 1000,
            wall_ms: WALL0 + self.now_ms,
        }
    }

    /// Move the synthetic clock (monotonic milliseconds). Time never goes back.
    fn at(&mut self, ms: u64) -> &mut Self {
        assert!(
            ms >= self.now_ms,
            "time goes forward: {} -> {ms}",
            self.now_ms
        );
        self.now_ms = ms;
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
                // Events and state saves have their own tests (`operating_tests.rs`); the
                // scenario traces here show the commands only.
                if !matches!(action, Action::Event(_) | Action::SaveState) {
                    trace.push(render(&action));
                }
                continue;
            };
            self.specs.push(spec.clone());
            let answer = if self.fail_always || self.fail_next > 0 {
                self.fail_next = self.fail_next.saturating_sub(1);
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

    /// Feed one input and compare its trace with `want` (one action per line).
    #[track_caller]
    fn check(&mut self, input: Input, want: &str) -> &mut Self {
        let got = self.feed(input);
        let want = lines(want);
        assert!(
            got == want,
            "at {} ms\n--- want\n{}\n--- got\n{}\n",
            self.now_ms,
            want.join("\n"),
            got.join("\n")
        );
        self
    }

    /// Like `check`, for steps whose order is the registry's (hash) order.
    #[track_caller]
    fn check_unordered(&mut self, input: Input, want: &str) -> &mut Self {
        let mut got = self.feed(input);
        let mut want = lines(want);
        got.sort();
        want.sort();
        assert!(
            got == want,
            "at {} ms (unordered)\n--- want\n{}\n--- got\n{}\n",
            self.now_ms,
            want.join("\n"),
            got.join("\n")
        );
        self
    }

    /// Start `name` from the only template and return its pid.
    #[track_caller]
    fn started(&mut self, name: &str) -> i32 {
        self.started_from(name, None)
    }

    #[track_caller]
    fn started_from(&mut self, name: &str, template: Option<&str>) -> i32 {
        let input = match template {
            Some(t) => start_from(name, t),
            None => start(name),
        };
        let pid = self.last_pid + 1;
        let trace = self.feed(input);
        assert_eq!(
            trace.last().map(String::as_str),
            Some(format!("reply c1: ok name={name} pid={pid}").as_str()),
            "starting {name}: {trace:#?}"
        );
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

    /// The contract's invariants, checked after every input:
    /// - every spawn was answered, so none is pending;
    /// - the pid index and the registry agree.
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
    }
}

// ----- start, lookup, count, list -----------------------------------------------------

#[test]
fn start_registers_the_pid_and_lookup_count_list_see_it() {
    let mut h = Harness::simple();
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.at(1000)
        .check(
            start("worker_1"),
            "spawn worker_1 #1 -> 101
             reply c1: ok name=worker_1 pid=101",
        )
        .check(
            lookup("worker_1"),
            "reply c1: ok name=worker_1 pid=101 state=running",
        )
        .check(count(), "reply c1: ok count=1")
        .at(2000)
        .check(
            start("worker_0"),
            "spawn worker_0 #2 -> 102
             reply c1: ok name=worker_0 pid=102",
        )
        .check(count(), "reply c1: ok count=2")
        .check(
            list(),
            &format!(
                "reply c1: ok workers=[\
                 {{worker_0 pid=102 t transient running restarts=0 since={}}} \
                 {{worker_1 pid=101 t transient running restarts=0 since={}}}]",
                WALL0 + 2000,
                WALL0 + 1000
            ),
        )
        .check(lookup("nobody"), "reply c1: error not_found");
    assert_eq!(h.sup.count(), 2);
    // Nothing is due: the daemon may sleep until something happens.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
}

#[test]
fn second_start_of_a_live_name_is_already_started_with_its_pid() {
    let mut h = Harness::simple();
    h.check(
        start("w"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    )
    // No spawn: the error carries the live pid (OTP's {:error, {:already_started, pid}}).
    .check(start("w"), "reply c1: error already_started pid=101");
    let reply = h.reply();
    assert_eq!(reply.error.as_ref().and_then(|e| e.pid), Some(101));
    assert!(reply.error.unwrap().message.contains("101"));
    assert_eq!(h.sup.count(), 1);
    assert_eq!(h.specs.len(), 1);
}

#[test]
fn start_errors() {
    let several = || Harness::new(3, 5, vec![transient("a"), permanent("b")]);

    #[rustfmt::skip]
    let cases: Vec<(Harness, Input, &str)> = vec![
        (Harness::simple(), start(""), "invalid_name"),
        (Harness::simple(), start("a b"), "invalid_name"),
        (Harness::simple(), start("a/b"), "invalid_name"),
        (Harness::simple(), start(&"x".repeat(129)), "invalid_name"),
        (Harness::simple(), start_from("w", "nope"), "unknown_template"),
        (several(), start("w"), "unknown_template"),
        (several(), start_from("w", "nope"), "unknown_template"),
        (Harness::new(3, 5, vec![]), start("w"), "unknown_template"),
        (
            Harness::simple(),
            request(Request::Start {
                name: "w".into(), template: None, args: vec!["x".into()], command: Some(vec![]),
            }),
            "bad_request",
        ),
        (
            Harness::simple(),
            request(Request::Start {
                name: "w".into(), template: None, args: vec![], command: Some(vec![String::new()]),
            }),
            "bad_request",
        ),
    ];
    for (mut h, input, kind) in cases {
        let what = format!("{input:?}");
        let trace = h.feed(input);
        assert_eq!(trace, [format!("reply c1: error {kind}")], "{what}");
        assert_eq!(h.sup.count(), 0, "{what}");
        assert!(h.specs.is_empty(), "{what}");
    }

    // With several templates the message names them, so the user can pick one.
    let mut h = several();
    h.feed(start("w"));
    let message = h.reply().error.unwrap().message;
    assert!(message.contains('a') && message.contains('b'), "{message}");
}

#[test]
fn the_only_template_is_used_when_none_is_named() {
    let mut h = Harness::new(3, 5, vec![permanent("only")]);
    h.check(
        start("w"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    );
    assert_eq!(h.specs[0].template.name, "only");

    // With several, a named template is used.
    let mut h = Harness::new(3, 5, vec![transient("a"), permanent("b")]);
    h.check(
        start_from("w", "b"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    );
    assert_eq!(h.specs[0].template.name, "b");
    assert_eq!(h.specs[0].restart(), RestartType::Permanent);
}

#[test]
fn args_are_appended_and_command_overrides_the_template() {
    let mut h = Harness::simple();
    h.feed(request(Request::Start {
        name: "a".into(),
        template: None,
        args: vec!["x".into(), "y".into()],
        command: None,
    }));
    h.feed(request(Request::Start {
        name: "b".into(),
        template: None,
        args: vec!["y".into()],
        command: Some(vec!["/bin/other".into(), "x".into()]),
    }));
    assert_eq!(h.specs[0].argv, ["/opt/bin/worker", "--flag", "x", "y"]);
    assert_eq!(h.specs[1].argv, ["/bin/other", "x", "y"]);
    // The override keeps the template's other settings.
    assert_eq!(h.specs[1].template.name, "t");
}

#[test]
fn spawn_failure_on_start_replies_spawn_failed_and_registers_nothing() {
    let mut h = Harness::simple();
    h.fail_next = 1;
    h.check(
        start("w"),
        "spawn w #1 -> failed
         reply c1: error spawn_failed",
    );
    assert!(h
        .reply()
        .error
        .unwrap()
        .message
        .contains("No such file or directory"));
    h.check(count(), "reply c1: ok count=0")
        .check(lookup("w"), "reply c1: error not_found");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    // Not a crash loop, and the name is free again.
    h.check(
        start("w"),
        "spawn w #2 -> 101
         reply c1: ok name=w pid=101",
    );
}

// ----- the restart rule ---------------------------------------------------------------

#[test]
fn the_restart_table() {
    use Decision::{Remove, Restart};
    #[rustfmt::skip]
    let rows = [
        // how it ended,            permanent, transient, temporary
        (code(0),                   [Restart,  Remove,    Remove]),
        (code(1),                   [Restart,  Restart,   Remove]),
        (code(101),                 [Restart,  Restart,   Remove]),
        (signaled(Signal::TERM),    [Restart,  Remove,    Remove]),
        (signaled(Signal::KILL),    [Restart,  Restart,   Remove]),
        (signaled(segv()),          [Restart,  Restart,   Remove]),
        (Exit::Signaled { signal: segv(), core_dumped: true },
                                    [Restart,  Restart,   Remove]),
        (signaled(Signal::INT),     [Restart,  Restart,   Remove]),
    ];
    for (exit, decisions) in rows {
        for (template, decision) in [permanent("t"), transient("t"), temporary("t")]
            .into_iter()
            .zip(decisions)
        {
            let what = format!("{} {exit}", template.restart.as_str());
            let mut h = Harness::new(3, 5, vec![template]);
            h.started("w");
            let trace = h.at(10).feed(exited(101, exit));
            match decision {
                Restart => {
                    assert_eq!(trace, ["reaped #1", "spawn w #2 -> 102"], "{what}");
                    // Same name, template and command line; a new pid.
                    assert!(Rc::ptr_eq(&h.specs[0], &h.specs[1]), "{what}");
                    assert_eq!(
                        h.feed(lookup("w")),
                        ["reply c1: ok name=w pid=102 state=running"],
                        "{what}"
                    );
                    assert_eq!(h.sup.count(), 1, "{what}");
                }
                Remove => {
                    assert_eq!(trace, ["reaped #1"], "{what}");
                    assert_eq!(h.feed(lookup("w")), ["reply c1: error not_found"], "{what}");
                    assert_eq!(h.sup.count(), 0, "{what}");
                }
            }
            assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None, "{what}");
            // The old pid is gone from the index: a second report of it is ignored.
            assert_eq!(h.feed(exited(101, code(1))), Vec::<String>::new(), "{what}");
        }
    }
}

#[test]
fn clean_signals_are_configurable() {
    // SIGINT counts as clean too: a transient worker killed by it is not restarted.
    let mut t = transient("t");
    t.clean_signals = vec![Signal::TERM, Signal::INT];
    let mut h = Harness::new(3, 5, vec![t]);
    h.started("w");
    h.check(exited(101, signaled(Signal::INT)), "reaped #1");
    assert_eq!(h.sup.count(), 0);

    // No clean signals at all: even SIGTERM from outside is a crash.
    let mut t = transient("t");
    t.clean_signals = vec![];
    let mut h = Harness::new(3, 5, vec![t]);
    h.started("w");
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         spawn w #2 -> 102",
    );
}

#[test]
fn a_restart_updates_list_and_restart_count() {
    let mut h = Harness::simple();
    h.at(1000).started("w");
    h.at(7000)
        .check(
            exited(101, code(3)),
            "reaped #1
             spawn w #2 -> 102",
        )
        .check(
            list(),
            &format!(
                "reply c1: ok workers=[{{w pid=102 t transient running restarts=1 since={}}}]",
                WALL0 + 7000
            ),
        );
}

#[test]
fn an_exit_of_an_unknown_pid_is_ignored() {
    let mut h = Harness::simple();
    h.check(exited(4242, code(1)), "");
    h.started("w");
    h.check(exited(4242, signaled(Signal::KILL)), "")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=running");
}

// ----- stop ---------------------------------------------------------------------------

#[test]
fn stop_signals_the_group_and_replies_once_reaped() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 1000)]);
    h.started("w");
    h.at(100)
        .check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=stopping");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    // Before the deadline a tick does nothing.
    h.at(1099).check(Input::Tick, "");
    // A permanent worker exiting 1 while stopped by dynsup: not restarted, not counted.
    h.check(
        exited(101, code(1)),
        "reaped #1
         reply c2: ok stopped={w pid=101 exit 1 killed=false}",
    )
    .check(lookup("w"), "reply c1: error not_found")
    .check(count(), "reply c1: ok count=0");
    assert!(h.sup.intensity.is_empty());
    assert_eq!(h.specs.len(), 1);
    // A tick at the old deadline finds nothing to kill.
    h.at(1100).check(Input::Tick, "");
}

#[test]
fn next_deadline_is_none_once_a_stop_completed() {
    // The stop's SIGKILL deadline belongs to a worker that is gone: the daemon should
    // be able to sleep until something happens, not wake up for nothing.
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started("w");
    h.at(100).check(stop("w"), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    h.at(200).check(
        exited(101, code(0)),
        "reaped #1
         reply c1: ok stopped={w pid=101 exit 0 killed=false}",
    );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(
        h.sup.next_deadline().map(|us| us / 1000),
        None,
        "stale stop deadline left behind"
    );
}

#[test]
fn stop_kills_the_group_at_the_deadline() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started("w");
    h.at(500)
        .check(stop("w"), "signal group 101 SIGTERM")
        .at(1499)
        .check(Input::Tick, "")
        .at(1500)
        .check(Input::Tick, "signal group 101 SIGKILL");
    // Killed once: no second SIGKILL, nothing more is due.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.at(5000).check(Input::Tick, "").check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         reply c1: ok stopped={w pid=101 signal SIGKILL killed=true}",
    );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.specs.len(), 1);

    // A late tick (the loop was busy) kills as well.
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started("w");
    h.check(stop("w"), "signal group 101 SIGTERM")
        .at(9000)
        .check(Input::Tick, "signal group 101 SIGKILL");
}

#[test]
fn a_second_stop_while_stopping_is_answered_too() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started("w");
    h.check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        // No second signal and no new deadline.
        .check(from(conn(3), stop_within("w", 10)), "");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.at(20).check(
        exited(101, code(0)),
        "reaped #1
         reply c2: ok stopped={w pid=101 exit 0 killed=false}
         reply c3: ok stopped={w pid=101 exit 0 killed=false}",
    );
}

#[test]
fn stop_timeout_overrides_the_template() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 5000)]);
    h.started("w");
    h.at(1000)
        .check(stop_within("w", 10), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1010));
    h.at(1010).check(Input::Tick, "signal group 101 SIGKILL");

    // A zero timeout: SIGKILL at the first tick.
    let mut h = Harness::simple();
    h.started("w");
    h.at(1000)
        .check(stop_within("w", 0), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.check(Input::Tick, "signal group 101 SIGKILL");
}

#[test]
fn stop_uses_the_template_stop_signal() {
    let mut t = transient("t");
    t.stop_signal = Signal::INT;
    let mut h = Harness::new(3, 5, vec![t]);
    h.started("w");
    h.check(stop("w"), "signal group 101 SIGINT").check(
        exited(101, signaled(Signal::INT)),
        "reaped #1
         reply c1: ok stopped={w pid=101 signal SIGINT killed=false}",
    );
}

#[test]
fn stop_of_an_unknown_name_is_not_found() {
    let mut h = Harness::simple();
    h.check(stop("w"), "reply c1: error not_found");
    h.started("w");
    h.check(stop("v"), "reply c1: error not_found");
}

#[test]
fn stop_of_a_restarting_worker_removes_it_at_once() {
    let mut h = Harness::simple();
    h.started("w");
    h.fail_next = 1;
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         spawn w #2 -> failed",
    );
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(10));
    h.check(stop("w"), "reply c1: ok stopped={w killed=false}");
    assert_eq!(h.sup.count(), 0);
    // The retry is cancelled.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.check(Input::Tick, "");
}

// ----- kill and cast ------------------------------------------------------------------

#[test]
fn kill_signals_the_pid_only() {
    let mut h = Harness::simple();
    h.started("w");
    h.check(
        kill("w", None),
        "signal pid 101 SIGKILL
         reply c1: ok name=w pid=101 signal=SIGKILL",
    )
    .check(
        kill("w", Some("term")),
        "signal pid 101 SIGTERM
         reply c1: ok name=w pid=101 signal=SIGTERM",
    )
    .check(
        kill("w", Some("11")),
        "signal pid 101 SIGSEGV
         reply c1: ok name=w pid=101 signal=SIGSEGV",
    )
    .check(kill("w", Some("SIGNOPE")), "reply c1: error invalid_signal")
    .check(kill("w", Some("0")), "reply c1: error invalid_signal")
    .check(kill("nobody", None), "reply c1: error not_found")
    // The kill is "from outside": the restart rule applies to the exit.
    .check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         spawn w #2 -> 102",
    );
}

#[test]
fn kill_and_cast_of_a_restarting_worker_are_not_running() {
    let mut h = Harness::simple();
    h.started("w");
    h.fail_next = 1;
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn w #2 -> failed",
    )
    .check(lookup("w"), "reply c1: ok name=w state=restarting")
    .check(kill("w", None), "reply c1: error not_running")
    .check(cast("w", "work"), "reply c1: error not_running")
    .check(start("w"), "reply c1: error already_started");
}

#[test]
fn cast_queues_for_a_live_worker() {
    let mut h = Harness::simple();
    h.started("w");
    h.check(cast("w", "work"), "cast #1 \"work\" c1")
        .check(cast("w", "a\nb"), "reply c1: error bad_request")
        .check(cast("nobody", "work"), "reply c1: error not_found")
        .check(
            exited(101, code(1)),
            "reaped #1
             spawn w #2 -> 102",
        )
        // The new instance gets the next message.
        .check(from(conn(7), cast("w", "")), "cast #2 \"\" c7");
}

// ----- intensity ----------------------------------------------------------------------

#[test]
fn intensity_trips_on_the_fourth_restart_within_the_window() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    for name in ["a", "b", "c", "d"] {
        h.started(name); // a=101 b=102 c=103 d=104
    }
    // The list of restart times is shared by all children.
    h.at(100)
        .check(
            exited(101, code(1)),
            "reaped #1
             spawn a #5 -> 105",
        )
        .at(1000)
        .check(
            exited(102, signaled(Signal::KILL)),
            "reaped #2
             spawn b #6 -> 106",
        )
        .at(2000)
        .check(
            exited(105, signaled(segv())),
            "reaped #5
             spawn a #7 -> 107",
        );
    assert_eq!(h.sup.intensity.len(), 3);
    // The 4th: c is not restarted; every other worker gets its stop signal.
    h.at(3000).check_unordered(
        exited(103, code(2)),
        "reaped #3
         signal group 107 SIGTERM
         signal group 106 SIGTERM
         signal group 104 SIGTERM",
    );
    assert!(h.sup.is_shutting_down());
    h.check(lookup("c"), "reply c1: error not_found")
        .check(lookup("a"), "reply c1: ok name=a pid=107 state=stopping")
        .check(count(), "reply c1: ok count=3")
        .check(start("e"), "reply c1: error shutting_down")
        // Exits now are stops: nothing is restarted, nothing exits early.
        .at(3100)
        .check(exited(107, code(0)), "reaped #7")
        .check(exited(104, code(1)), "reaped #4")
        // The last one outlives its shutdown_ms.
        .at(4000)
        .check(Input::Tick, "signal group 106 SIGKILL")
        .check(
            exited(106, signaled(Signal::KILL)),
            "reaped #6
             exit 1",
        );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.specs.len(), 7);
}

#[test]
fn intensity_with_no_other_worker_exits_at_once() {
    let mut h = Harness::new(3, 5, vec![permanent("p")]);
    h.started("w");
    for (i, ms) in [0, 10, 20].into_iter().enumerate() {
        let pid = 101 + i as i32;
        h.at(ms).check(
            exited(pid, code(1)),
            &format!(
                "reaped #{}
                 spawn w #{} -> {}",
                i + 1,
                i + 2,
                pid + 1
            ),
        );
    }
    h.at(30).check(
        exited(104, code(1)),
        "reaped #4
         exit 1",
    );
    assert_eq!(h.sup.count(), 0);
}

#[test]
fn intensity_window_edges_are_whole_seconds() {
    // Three restarts in second 0; the next at second 5 trips, at second 6 does not.
    for (last_ms, trips) in [(5_000, true), (5_999, true), (6_000, false), (7_500, false)] {
        let mut h = Harness::new(3, 5, vec![permanent("p")]);
        h.started("w");
        for (i, ms) in [0, 400, 999].into_iter().enumerate() {
            h.at(ms).feed(exited(101 + i as i32, code(1)));
        }
        let trace = h.at(last_ms).feed(exited(104, code(1)));
        if trips {
            assert_eq!(trace, ["reaped #4", "exit 1"], "at {last_ms} ms");
        } else {
            assert_eq!(trace, ["reaped #4", "spawn w #5 -> 105"], "at {last_ms} ms");
        }
    }
}

#[test]
fn intensity_zero_trips_on_the_first_crash() {
    let mut h = Harness::new(0, 5, vec![transient("t")]);
    h.started("a");
    h.started("b");
    // A clean exit is not a restart: nothing trips.
    h.check(exited(102, code(0)), "reaped #2");
    h.at(60_000).check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         exit 1",
    );
}

#[test]
fn clean_and_temporary_exits_never_count() {
    let mut h = Harness::new(3, 5, vec![transient("t"), temporary("tmp")]);
    // Many clean transient exits and temporary crashes in the same second.
    for _ in 0..10 {
        let pid = h.started_from("w", Some("t"));
        h.check(exited(pid, code(0)), &format!("reaped #{}", pid - 100));
        let pid = h.started_from("x", Some("tmp"));
        h.check(exited(pid, code(1)), &format!("reaped #{}", pid - 100));
        let pid = h.started_from("y", Some("t"));
        h.check(
            exited(pid, signaled(Signal::TERM)),
            &format!("reaped #{}", pid - 100),
        );
    }
    assert!(h.sup.intensity.is_empty());
    // The budget is whole: three crashes are restarted, the fourth trips.
    let mut pid = h.started_from("w", Some("t"));
    for _ in 0..3 {
        let trace = h.feed(exited(pid, code(1)));
        assert_eq!(trace.len(), 2, "{trace:?}");
        pid += 1;
    }
    let trace = h.feed(exited(pid, code(1)));
    assert_eq!(trace.last().map(String::as_str), Some("exit 1"));
}

#[test]
fn a_permanent_clean_exit_counts() {
    // OTP restarts a permanent child after :normal, and counts the restart.
    let mut h = Harness::new(1, 5, vec![permanent("p")]);
    h.started("w");
    h.check(
        exited(101, code(0)),
        "reaped #1
         spawn w #2 -> 102",
    )
    .check(
        exited(102, signaled(Signal::TERM)),
        "reaped #2
         exit 1",
    );
}

#[test]
fn a_failed_restart_counts_and_is_retried_by_a_deadline() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started("w");
    h.fail_next = 1;
    // The failed spawn is not retried within the same input.
    h.at(1000).check(
        exited(101, code(1)),
        "reaped #1
         spawn w #2 -> failed",
    );
    assert_eq!(h.sup.intensity.len(), 2, "the crash and the failed restart");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.check(lookup("w"), "reply c1: ok name=w state=restarting")
        .check(count(), "reply c1: ok count=1")
        // The retry is due now: the next tick spawns again.
        .check(Input::Tick, "spawn w #3 -> 102")
        .check(lookup("w"), "reply c1: ok name=w pid=102 state=running");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    assert_eq!(h.sup.intensity.len(), 2);
}

#[test]
fn a_restart_that_can_never_spawn_exhausts_the_intensity() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started("w");
    h.fail_always = true;
    h.at(1000)
        .check(
            exited(101, code(1)),
            "reaped #1
             spawn w #2 -> failed",
        )
        .check(Input::Tick, "spawn w #3 -> failed");
    // The crash and two failed spawns: three restart decisions, as OTP's
    // try_again_restart calls add_restart on each retry.
    assert_eq!(h.sup.intensity.len(), 3);
    // The third failed spawn is the 4th restart decision: it trips.
    h.check(Input::Tick, "spawn w #4 -> failed\nexit 1");
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
}

#[test]
fn intensity_trip_drops_pending_restarts_and_keeps_user_stops() {
    let mut h = Harness::new(2, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started("a"); // 101
    h.started("b"); // 102
    h.started("c"); // 103
    h.fail_next = 1;
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn a #4 -> failed",
    );
    assert_eq!(h.sup.intensity.len(), 2);
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(0));
    // b is being stopped by a user when c's crash trips the limit (3rd restart > 2).
    h.check(from(conn(2), stop("b")), "signal group 102 SIGTERM")
        .check(exited(103, code(1)), "reaped #3");
    // a's pending retry is dropped; b goes on stopping and its caller is answered.
    assert_eq!(h.sup.count(), 1);
    h.check(lookup("a"), "reply c1: error not_found")
        .check(Input::Tick, "")
        .check(
            exited(102, code(0)),
            "reaped #2
             reply c2: ok stopped={b pid=102 exit 0 killed=false}
             exit 1",
        );
}

// ----- shutdown -----------------------------------------------------------------------

#[test]
fn shutdown_request_stops_everyone_and_replies_after_the_last_exit() {
    let mut h = Harness::new(
        3,
        5,
        vec![
            shutdown_ms(transient("fast"), 1000),
            shutdown_ms(permanent("slow"), 3000),
        ],
    );
    h.started_from("a", Some("fast")); // 101
    h.started_from("b", Some("slow")); // 102
    h.started_from("c", Some("slow")); // 103
    h.at(100).check_unordered(
        shutdown(),
        "signal group 101 SIGTERM
         signal group 102 SIGTERM
         signal group 103 SIGTERM",
    );
    assert!(h.sup.is_shutting_down());
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    h.check(start("d"), "reply c1: error shutting_down")
        .check(lookup("b"), "reply c1: ok name=b pid=102 state=stopping")
        // A second shutdown request waits for the same end.
        .check(from(conn(2), shutdown()), "")
        // So does a stop of a worker the shutdown is stopping.
        .check(from(conn(3), stop("c")), "")
        .check(cast("c", "bye"), "cast #3 \"bye\" c1")
        .at(200)
        .check(exited(102, code(1)), "reaped #2")
        .at(1100)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check(exited(101, signaled(Signal::KILL)), "reaped #1")
        .at(1200)
        .check(
            exited(103, signaled(Signal::TERM)),
            "reaped #3
             reply c3: ok stopped={c pid=103 signal SIGTERM killed=false}
             reply c1: ok shutdown=[{a pid=101 signal SIGKILL killed=true} {b pid=102 exit 1 killed=false} {c pid=103 signal SIGTERM killed=false}]
             reply c2: ok shutdown=[{a pid=101 signal SIGKILL killed=true} {b pid=102 exit 1 killed=false} {c pid=103 signal SIGTERM killed=false}]
             exit 0",
        );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.specs.len(), 3);
}

#[test]
fn shutdown_with_no_workers_exits_at_once() {
    let mut h = Harness::simple();
    h.check(
        shutdown(),
        "reply c1: ok shutdown=[]
         exit 0",
    );
    let mut h = Harness::simple();
    h.check(
        Input::ShutdownSignal {
            signal: Signal::TERM,
        },
        "exit 0",
    );
}

#[test]
fn shutdown_signal_then_a_second_one_kills_every_stopping_worker() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 5000)]);
    h.started("a"); // 101
    h.started("b"); // 102
    h.started("c"); // 103
    h.at(10)
        .check(from(conn(9), stop("c")), "signal group 103 SIGTERM")
        .check_unordered(
            Input::ShutdownSignal {
                signal: Signal::TERM,
            },
            "signal group 101 SIGTERM
             signal group 102 SIGTERM",
        )
        .check(from(conn(2), shutdown()), "")
        .at(20)
        .check_unordered(
            Input::ShutdownSignal {
                signal: Signal::INT,
            },
            "signal group 101 SIGKILL
             signal group 102 SIGKILL
             signal group 103 SIGKILL",
        );
    // Every kill deadline is gone with the SIGKILL.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    // A worker that was already on its way out is reported as killed all the same.
    h.check(exited(101, code(0)), "reaped #1")
    .check(
        exited(103, signaled(Signal::KILL)),
        "reaped #3
         reply c9: ok stopped={c pid=103 signal SIGKILL killed=true}",
    )
    .check(
        exited(102, signaled(Signal::KILL)),
        "reaped #2
         reply c2: ok shutdown=[{a pid=101 exit 0 killed=true} {b pid=102 signal SIGKILL killed=true} {c pid=103 signal SIGKILL killed=true}]
         exit 0",
    );
}

#[test]
fn shutdown_drops_a_worker_waiting_to_be_restarted() {
    let mut h = Harness::simple();
    h.started("a"); // 101
    h.started("b"); // 102
    h.fail_next = 1;
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn a #3 -> failed",
    )
    .check(shutdown(), "signal group 102 SIGTERM");
    assert_eq!(h.sup.count(), 1);
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(5000));
    h.check(
        exited(102, code(0)),
        "reaped #2
         reply c1: ok shutdown=[{b pid=102 exit 0 killed=false}]
         exit 0",
    );
}

// ----- boot children ------------------------------------------------------------------

#[test]
fn a_boot_child_that_cannot_spawn_aborts_the_boot() {
    let mut h = Harness::simple();
    h.check(
        from(ReplyTo::Boot { index: 0 }, start("first")),
        "spawn first #1 -> 101
         reply boot0: ok name=first pid=101",
    );
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 1 }, start("second")),
        "spawn second #2 -> failed
         reply boot1: error spawn_failed
         signal group 101 SIGTERM",
    );
    assert!(h.sup.is_shutting_down());
    h.check(
        exited(101, code(0)),
        "reaped #1
         exit 1",
    );

    // Alone, it exits 1 at once.
    let mut h = Harness::simple();
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 0 }, start("w")),
        "spawn w #1 -> failed
         reply boot0: error spawn_failed
         exit 1",
    );
}

#[test]
fn a_shutdown_request_after_the_exit_is_still_answered() {
    // Once the core said `exit`, the daemon still reads requests while it flushes its
    // replies. Every request must get exactly one reply, or the connection's later
    // replies stay parked behind the missing one.
    let mut h = Harness::simple();
    h.check(
        shutdown(),
        "reply c1: ok shutdown=[]
         exit 0",
    );
    h.feed(from(conn(2), shutdown()));
    let replies: Vec<&Action> = h
        .last
        .iter()
        .filter(|a| matches!(a, Action::Reply { to, .. } if *to == conn(2)))
        .collect();
    assert_eq!(replies.len(), 1, "actions: {:?}", h.last);
    // Other requests are answered as usual.
    h.check(count(), "reply c1: ok count=0")
        .check(start("w"), "reply c1: error shutting_down");
}

#[test]
fn a_boot_child_refused_before_spawning_aborts_the_boot_too() {
    // Like a spawn failure, any refusal of a boot child's start is a failed boot: the
    // config is checked first, but the core should not depend on that.
    for (child, kind) in [
        (start_from("w", "nope"), "unknown_template"),
        (start("bad name"), "invalid_name"),
    ] {
        let mut h = Harness::simple();
        h.check(
            from(ReplyTo::Boot { index: 3 }, child),
            &format!(
                "reply boot3: error {kind}
                 exit 1"
            ),
        );
    }
}

#[test]
fn retries_due_at_the_same_tick_all_spawn() {
    let mut h = Harness::new(10, 5, vec![transient("t")]);
    h.started("b"); // 101
    h.started("a"); // 102
    h.fail_next = 2;
    h.at(3000)
        .check(
            exited(101, code(1)),
            "reaped #1
             spawn b #3 -> failed",
        )
        .check(
            exited(102, code(1)),
            "reaped #2
             spawn a #4 -> failed",
        );
    assert_eq!(h.sup.intensity.len(), 4, "two crashes, two failed spawns");
    // Both retries are due; one tick serves them, in deadline order.
    h.at(3001).check(
        Input::Tick,
        "spawn a #5 -> 103
         spawn b #6 -> 104",
    );
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.check(lookup("b"), "reply c1: ok name=b pid=104 state=running");
}
