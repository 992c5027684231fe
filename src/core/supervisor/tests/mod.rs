//! Scenario tests for [`Supervisor`], in the data-driven style: a script of inputs at
//! synthetic times, and the expected actions written out as text. One file per topic;
//! this file is the harness they share.
//!
//! The [`Harness`] plays the OS layer exactly as the contract in `mod.rs` asks: every
//! `Action::Spawn` is answered at once (depth first, before the next action is looked
//! at, as the reactor does) with `Spawned` and a fresh fake pid (101, 102, ...) or, when
//! told to, with `SpawnFailed`. Time is whatever the test sets with [`Harness::at`];
//! nothing here reads a clock or sleeps. After every input it checks the registry's
//! invariants: no spawn left unanswered, and the name map, the pid, spawn and deadline
//! indexes agree.
//!
//! The trace of one input is rendered one action per line:
//!
//! ```text
//! spawn NAME #INSTANCE -> PID | failed
//! signal group|pid PID SIGNAME
//! cast #INSTANCE "MESSAGE" cCONN
//! reaped #INSTANCE
//! event started NAME pid=PID
//! event ready NAME pid=PID
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
//!
//! A harness made with [`Harness::commands_only`] leaves out the `event` and
//! `save state` lines, for scenarios about what is done rather than what is told.

mod backoff;
mod boot;
mod draining;
mod durable;
mod events;
mod intensity;
mod kill_and_cast;
mod limits;
mod liveness;
mod operator_restart;
mod ordering;
mod queries;
mod readiness;
mod reload;
mod restart_rule;
mod rolling;
mod shutdown;
mod start;
mod stop;
mod switch;

use super::registry::Entry;
use super::worker::State;
use super::*;
use crate::core::exit::Exit;
use crate::core::policy::Decision;
use crate::core::spec::{Backoff, ChildSpec, OnLimit, RestartLimit, RestartType};
use crate::protocol::{
    Event, ExitReport, LastExit, Reply, StopReport, WorkerInfo, WorkerStateName,
};

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

const PACED: Backoff = Backoff {
    initial_ms: 100,
    max_ms: 400,
    multiplier: 2.0,
    reset_after_ms: 1000,
    jitter: 0.0,
};

/// Restarts paced 100, 200, 400, 400 ... ms; reset after a 1 s run.
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

fn segv() -> Signal {
    Signal::parse("SIGSEGV").expect("SIGSEGV")
}

fn by_name(templates: Vec<Template>) -> BTreeMap<String, Rc<Template>> {
    templates
        .into_iter()
        .map(|t| (t.name.clone(), Rc::new(t)))
        .collect()
}

// ----- inputs -------------------------------------------------------------------------

fn conn(conn: u64) -> ReplyTo {
    ReplyTo::Conn { conn, seq: 0 }
}

/// A command from connection 1.
fn request(command: Command) -> Input {
    Input::Command {
        from: conn(1),
        command,
    }
}

/// The same command, from another reply target.
fn from(to: ReplyTo, input: Input) -> Input {
    match input {
        Input::Command { command, .. } => Input::Command { from: to, command },
        other => other,
    }
}

fn start_request(
    name: &str,
    template: Option<&str>,
    args: &[&str],
    command: Option<&[&str]>,
) -> Input {
    request(Command::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: args.iter().map(|s| s.to_string()).collect(),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        env: Default::default(),
        fenced: false,
    })
}

/// Start `name` from the only template.
fn start(name: &str) -> Input {
    start_request(name, None, &[], None)
}

/// Start `name` from the named template, no arguments.
fn start_from(name: &str, template: &str) -> Input {
    start_request(name, Some(template), &[], None)
}

/// Start `name` from the named template, with arguments and maybe a command override.
fn start_full(name: &str, template: &str, args: &[&str], command: Option<&[&str]>) -> Input {
    start_request(name, Some(template), args, command)
}

fn stop(name: &str) -> Input {
    request(Command::Stop {
        name: name.to_string(),
        timeout_ms: None,
    })
}

fn stop_within(name: &str, timeout_ms: u64) -> Input {
    request(Command::Stop {
        name: name.to_string(),
        timeout_ms: Some(timeout_ms),
    })
}

fn restart(name: &str) -> Input {
    request(Command::Restart {
        name: name.to_string(),
        timeout_ms: None,
    })
}

fn restart_within(name: &str, timeout_ms: u64) -> Input {
    request(Command::Restart {
        name: name.to_string(),
        timeout_ms: Some(timeout_ms),
    })
}

/// `kill` with the default signal (SIGKILL).
fn kill(name: &str) -> Input {
    request(Command::Kill {
        name: name.to_string(),
        signal: None,
    })
}

fn kill_with(name: &str, signal: &str) -> Input {
    request(Command::Kill {
        name: name.to_string(),
        signal: Some(signal.to_string()),
    })
}

fn cast(name: &str, message: &str) -> Input {
    request(Command::Cast {
        name: name.to_string(),
        message: message.to_string(),
    })
}

fn lookup(name: &str) -> Input {
    request(Command::Lookup {
        name: name.to_string(),
    })
}

fn wait_ready(name: &str) -> Input {
    request(Command::WaitReady {
        name: name.to_string(),
    })
}

fn count() -> Input {
    request(Command::Count)
}

fn list() -> Input {
    request(Command::List {
        names: Vec::new(),
        template: None,
    })
}

fn shutdown() -> Input {
    request(Command::Shutdown)
}

fn whois(pid: i32, group: Option<i32>) -> Input {
    request(Command::Whois { pid, group })
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

fn notify(pid: i32, ready: bool, status: Option<&str>) -> Input {
    Input::Notify {
        pid,
        group: None,
        note: Notification {
            ready,
            status: status.map(str::to_string),
            ..Notification::default()
        },
    }
}

/// A `[[children]]` entry handed over at boot, as the reactor does.
fn boot_start(index: usize, child: BootChild) -> Input {
    Input::Command {
        from: ReplyTo::Boot { index },
        command: Command::StartChild(child),
    }
}

/// `child` with its own `after`.
fn after(mut child: BootChild, names: &[&str]) -> BootChild {
    child.after = names.iter().map(|s| s.to_string()).collect();
    child
}

fn note(pid: i32, note: Notification) -> Input {
    Input::Notify {
        pid,
        group: None,
        note,
    }
}

fn watchdog_ping(pid: i32) -> Input {
    note(
        pid,
        Notification {
            watchdog: true,
            ..Notification::default()
        },
    )
}

fn probe_done(name: &str, instance: InstanceId, ok: bool, message: &str) -> Input {
    Input::ProbeDone {
        name: name.to_string(),
        instance,
        ok,
        message: message.to_string(),
    }
}

fn health() -> Input {
    request(Command::Health)
}

fn rolling(select: Select) -> Input {
    request(Command::Rollout {
        select,
        timeout_ms: None,
    })
}

fn boot_child(name: &str, template: &str, args: &[&str]) -> BootChild {
    BootChild {
        name: name.to_string(),
        template: template.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        after: Vec::new(),
        critical: false,
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

/// Start a `[[children]]` entry at boot; returns its pid.
fn boot(h: &mut Harness, index: usize, name: &str, template: &str, args: &[&str]) -> i32 {
    let input = from(
        ReplyTo::Boot { index },
        start_full(name, template, args, None),
    );
    h.started(input)
}

// ----- rendering ----------------------------------------------------------------------

fn render_to(to: &ReplyTo) -> String {
    match to {
        ReplyTo::Conn { conn, .. } => format!("c{conn}"),
        ReplyTo::Boot { index } => format!("boot{index}"),
        ReplyTo::Restore { index } => format!("restore{index}"),
        ReplyTo::Reload => "reload".to_string(),
        ReplyTo::Part { batch, index } => format!("b{batch}.{index}"),
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
    if !r.ok {
        let error = r.error.as_ref().expect("a failed reply carries an error");
        assert!(!error.message.is_empty(), "an error needs a message: {r:?}");
        let mut s = format!("error {}", error.kind.as_str());
        if let Some(pid) = error.pid {
            s += &format!(" pid={pid}");
        }
        if let Some(report) = &r.rollout {
            s += &format!(
                " restarted=[{}] not_restarted=[{}]",
                report.restarted.join(" "),
                report.not_restarted.join(" ")
            );
        }
        return s;
    }
    assert!(r.error.is_none(), "an ok reply with an error: {r:?}");
    let mut s = "ok".to_string();
    if let Some(report) = &r.rollout {
        s += &format!(" rollout=[{}]", report.restarted.join(" "));
    }
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
    if let Some(h) = &r.health {
        s += &format!(
            " health={{healthy={} checked={} problems=[{}]}}",
            h.healthy,
            h.checked,
            h.problems.join("; ")
        );
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
                reason.starts_with(&exit.to_string()) || reason == "watchdog" || reason == "health",
                "the reason {reason:?} begins with the exit {exit}, or is a liveness kill's"
            );
            format!("event exited {name} pid={pid} ({reason})")
        }
        Event::Restarting { name, delay_ms } => format!("event restarting {name} delay={delay_ms}"),
        Event::Stopped { name, reason } => format!("event stopped {name} ({reason})"),
        Event::Failed { name, reason } => format!("event failed {name} ({reason})"),
        Event::IntensityTripped { name } => format!("event intensity_tripped {name}"),
        Event::Waiting { name, on } => format!("event waiting {name} on={}", on.join(",")),
        Event::Unhealthy {
            name,
            failures,
            message,
        } => format!("event unhealthy {name} failures={failures} ({message})"),
        Event::Healthy { name } => format!("event healthy {name}"),
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
        // Two lines: the signal and, as when the kernel takes it, the reply.
        Action::Kill {
            pid,
            signal,
            reply_to,
            sent,
        } => format!(
            "signal pid {pid} {}\nreply {}: {}",
            signal.name(),
            render_to(reply_to),
            render_reply(sent)
        ),
        Action::Cast {
            instance,
            message,
            reply_to,
        } => format!("cast #{instance} {message:?} {}", render_to(reply_to)),
        Action::Reaped { instance, .. } => format!("reaped #{instance}"),
        Action::SignalLeftovers { instance, signal } => {
            format!("signal leftovers #{instance} {}", signal.name())
        }
        Action::Reply { to, reply } => format!("reply {}: {}", render_to(to), render_reply(reply)),
        Action::Event(event) => render_event(event),
        Action::SaveState => "save state".to_string(),
        Action::Probe { name, instance, .. } => format!("probe {name} #{instance}"),
        Action::BootReady => "boot ready".to_string(),
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
    /// Every spawn fails while this is set.
    fail_always: bool,
    /// How many of the next spawns fail for lack of a resource (EMFILE and the like).
    short_next: u32,
    /// Main pids whose process groups still have processes when they are reaped.
    leftovers: Vec<i32>,
    /// Traces leave out events and state saves.
    commands_only: bool,
    /// Every spec the core asked to spawn, in order.
    specs: Vec<Rc<ChildSpec>>,
    /// Every action of the last `feed`, spawns and events included, in order.
    last: Vec<Action>,
}

impl Harness {
    fn new(max_restarts: u32, max_seconds: u64, templates: Vec<Template>) -> Harness {
        Harness {
            sup: Supervisor::new(
                Limits {
                    max_restarts,
                    max_seconds,
                    max_children: None,
                },
                by_name(templates),
            )
            .record_dynamic_workers(),
            now_us: 0,
            last_pid: 100,
            fail_next: 0,
            fail_always: false,
            short_next: 0,
            leftovers: Vec::new(),
            commands_only: false,
            specs: Vec::new(),
            last: Vec::new(),
        }
    }

    /// A harness whose traces show the commands only: no events, no state saves.
    fn commands_only(max_restarts: u32, max_seconds: u64, templates: Vec<Template>) -> Harness {
        Harness {
            commands_only: true,
            ..Harness::new(max_restarts, max_seconds, templates)
        }
    }

    /// One transient template `t` and the OTP default intensity (3 in 5 s); traces
    /// show the commands only.
    fn simple() -> Harness {
        Harness::commands_only(3, 5, vec![transient("t")])
    }

    fn max_children(mut self, max: usize) -> Harness {
        self.sup.limits.max_children = Some(max);
        self
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
            if let Action::Reaped { instance, pid } = action {
                // Answered at once, as the reactor does: is anything of its group left?
                let left = self.leftovers.contains(&pid);
                trace.push(match left {
                    true => format!("reaped #{instance} -> leftovers"),
                    false => format!("reaped #{instance}"),
                });
                self.feed_into(Input::Leftovers { instance, left }, trace);
                continue;
            }
            let Action::Spawn { instance, spec } = action else {
                if !(self.commands_only && matches!(action, Action::Event(_) | Action::SaveState)) {
                    trace.extend(render(&action).lines().map(str::to_string));
                }
                continue;
            };
            self.specs.push(spec.clone());
            let answer = if self.short_next > 0 {
                self.short_next -= 1;
                trace.push(format!(
                    "spawn {} #{instance} -> failed (shortage)",
                    spec.name
                ));
                Input::SpawnFailed {
                    instance,
                    error: "Too many open files (os error 24)".to_string(),
                    shortage: true,
                    bad_env_file: false,
                }
            } else if self.fail_always || self.fail_next > 0 {
                self.fail_next = self.fail_next.saturating_sub(1);
                trace.push(format!("spawn {} #{instance} -> failed", spec.name));
                Input::SpawnFailed {
                    instance,
                    error: "No such file or directory (os error 2)".to_string(),
                    shortage: false,
                    bad_env_file: false,
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

    /// `pid` ends with `exit` and its worker is restarted at once (no backoff): checks
    /// the whole trace of that, the reap, the `exited` and `restarting` events, the
    /// spawn and its `started` event.
    #[track_caller]
    fn check_restarted_at_once(&mut self, pid: i32, exit: Exit) -> &mut Self {
        self.check_respawned(pid, exit, "", None)
    }

    /// `pid`, stopped by an operator restart (`restart`, reload), ends with `exit` and
    /// its worker starts again: the same trace as a crash restart, the exit marked
    /// `stopped to be restarted`, and the reply to `answered`, if any, last.
    #[track_caller]
    fn check_restarted_by_operator(
        &mut self,
        pid: i32,
        exit: Exit,
        answered: Option<&str>,
    ) -> &mut Self {
        self.check_respawned(pid, exit, " (stopped to be restarted)", answered)
    }

    #[track_caller]
    fn check_respawned(
        &mut self,
        pid: i32,
        exit: Exit,
        why: &str,
        answered: Option<&str>,
    ) -> &mut Self {
        let name = self
            .sup
            .registry
            .name_of_pid(pid)
            .unwrap_or_else(|| panic!("pid {pid} is not a worker's"));
        let instance = self.entry(&name).state().proc().map(|p| p.instance);
        assert!(!self.leftovers.contains(&pid), "pid {pid} leaves leftovers");
        let (next_instance, next_pid) = (self.sup.next_instance, self.last_pid + 1);
        let mut want = format!(
            "reaped #{}
             event exited {name} pid={pid} ({exit}{why})
             event restarting {name} delay=0
             spawn {name} #{next_instance} -> {next_pid}
             event started {name} pid={next_pid}",
            instance.unwrap_or_default()
        );
        if let Some(to) = answered {
            want += &format!("\nreply {to}: ok name={name} pid={next_pid}");
        }
        self.check(exited(pid, exit), &want)
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
            "at {} us (unordered)\n--- want\n{}\n--- got\n{}\n",
            self.now_us,
            want.join("\n"),
            got.join("\n")
        );
        self
    }

    /// Feed a start command that must succeed: its trace ends with the reply
    /// `ok name=NAME pid=PID` to whoever asked, PID being the pid just spawned.
    /// Returns it.
    #[track_caller]
    fn started(&mut self, input: Input) -> i32 {
        let (to, name) = match &input {
            Input::Command {
                from,
                command: Command::Start { name, .. },
            } => (render_to(from), name.clone()),
            other => panic!("not a start: {other:?}"),
        };
        let trace = self.feed(input);
        let pid = self.last_pid;
        assert_eq!(
            trace.last().map(String::as_str),
            Some(format!("reply {to}: ok name={name} pid={pid}").as_str()),
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

    /// The registry's entry for `name`.
    #[track_caller]
    fn entry(&self, name: &str) -> &Entry {
        self.sup
            .registry
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not registered"))
    }

    /// The next deadline, in monotonic microseconds.
    fn deadline(&self) -> Option<u64> {
        self.sup.next_deadline()
    }

    /// The contract's invariants, checked after every input: every spawn was
    /// answered, so none is in flight; the name map and the pid, spawn and deadline
    /// indexes agree (so a worker waiting to be restarted has its deadline, or it
    /// would never come back).
    #[track_caller]
    fn check_invariants(&self) {
        if let Err(broken) = self.sup.registry.check() {
            panic!("at {} us: {broken}", self.now_us);
        }
        for (name, entry) in self.sup.registry.iter() {
            assert!(
                !matches!(
                    entry.state(),
                    State::Spawning { .. }
                        | State::Draining {
                            stage: worker::Drain::Checking { .. },
                            ..
                        }
                ),
                "{name}: an OS answer (spawn, leftovers) was left unanswered: {:?}",
                entry.state()
            );
        }
    }
}
