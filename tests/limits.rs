//! Per-worker limits and the rest of DynamicSupervisor:
//! `on_limit = "give_up"`, `normal_exit_codes`, `max_children`, `extra_args`,
//! `restart`, `whois`, `count`'s full shape and the fields of `list`, with their CLI.

mod common;
use common::*;
use std::io::Write;
use std::os::unix::net::UnixStream;

/// A worker over its own limit with `on_limit = "give_up"` is marked
/// `failed` and stays listed with its last exit; every other worker is untouched, its
/// restarts never count toward the supervisor's intensity, and the daemon lives on.
#[test]
fn give_up_marks_only_that_worker_failed() {
    let config = r#"
[supervisor]
max_restarts = 1
max_seconds = 60

[templates.crashy]
command = ["sh", "-c", "exit 7"]
restart = "transient"
max_restarts = 2
max_seconds = 60
on_limit = "give_up"

[[children]]
name = "boot_sibling"
template = "sleeper"
"#;
    let mut d = TestDaemon::start(&[config, SLEEPER].concat());
    let mut siblings = vec![(
        "boot_sibling",
        d.lookup("boot_sibling").expect("boot child"),
    )];
    for name in ["sib_1", "sib_2"] {
        siblings.push((name, d.start_worker(name, Some("sleeper"), &[])));
    }
    let mut w = Watcher::subscribe(&d, &["crashy"]);
    d.start_worker("crashy", Some("crashy"), &[]);
    // The first start and max_restarts = 2 restarts; the third exit gives up.
    for round in 0..3 {
        w.expect("started crashy", |e| is_started(e, "crashy"));
        let ev = w.expect("exited crashy", |e| is_exited(e, "crashy")).event;
        assert!(
            matches!(&ev, Event::Exited { reason, .. } if reason == "exit 7"),
            "{ev:?}"
        );
        if round < 2 {
            w.expect("restarting crashy", |e| is_restarting(e, "crashy"));
        }
    }
    let ev = w.expect("failed crashy", |e| is_failed(e, "crashy")).event;
    assert_eq!(
        ev,
        Event::Failed {
            name: "crashy".into(),
            reason: "exit 7".into()
        }
    );

    let info = d.list_one("crashy").expect("a failed worker stays listed");
    assert_eq!(info.state, WorkerStateName::Failed, "{info:?}");
    assert_eq!(info.pid, None, "{info:?}");
    assert_eq!(info.next_try_ms, None, "{info:?}");
    // Three starts were seen above (the tripping restart was not performed);
    // `restarts` counts the restart-worthy exits, the refused one included, and the
    // window holds max_restarts + 1 of them (docs/PROTOCOL.md, `list`).
    assert_eq!(info.restarts, 3, "{info:?}");
    assert_eq!(info.restarts_in_window, 3, "{info:?}");
    let last = info
        .last_exit
        .as_ref()
        .expect("last_exit of a failed worker");
    assert_eq!(last.reason, "exit 7", "{info:?}");
    let reply = d.request_ok(&lookup_req("crashy"));
    assert_eq!(
        (reply.pid, reply.state),
        (None, Some(WorkerStateName::Failed)),
        "{reply:?}"
    );
    let counts = d.counts();
    assert_eq!(
        (counts.total, counts.active, counts.backoff, counts.failed),
        (4, 3, 0, 1),
        "{counts:?}"
    );

    assert!(!d.has_exited(), "the daemon exited{}", d.log_tail());
    for (name, pid) in &siblings {
        assert_eq!(d.lookup(name), Some(*pid), "{name} was touched");
        assert!(is_alive(*pid), "{name} ({pid}) is dead");
    }
    // The log is written by the daemon's log thread, maybe just after the reply.
    d.wait_log("giving up");
    assert!(
        w.try_next(std::time::Duration::ZERO).is_none(),
        "events after `failed`: {:?}",
        w.seen
    );

    // `start` of the same name replaces the failed worker...
    let pid = d.start_command("crashy", Some("crashy"), &["sleep", "100000"]);
    assert_eq!(d.lookup("crashy"), Some(pid));
    let replaced = d.list_one("crashy").unwrap();
    assert_eq!(
        (replaced.state, replaced.restarts),
        (WorkerStateName::Running, 0),
        "{replaced:?}"
    );
    d.request_ok(&stop_req("crashy", None));

    // ...and `stop` of a failed worker unregisters it.
    d.start_worker("crashy2", Some("crashy"), &[]);
    w = Watcher::subscribe(&d, &["crashy2"]);
    d.wait_until(DEADLINE, "crashy2 to fail", || {
        (d.list_one("crashy2")?.state == WorkerStateName::Failed).then_some(())
    });
    let reply = d.request_ok(&stop_req("crashy2", None));
    let report = reply.stopped.expect("stopped report");
    assert_eq!(
        (report.pid, report.exit.clone()),
        (None, None),
        "{report:?}"
    );
    w.wait_for("stopped crashy2", |e| is_stopped(e, "crashy2"));
    assert_eq!(d.lookup("crashy2"), None);
    assert!(!d.has_exited());
}

/// `normal_exit_codes` are the clean exits of the transient rule.
#[test]
fn normal_exit_codes_decide_what_a_transient_worker_exit_means() {
    let config = r#"
[supervisor]
max_restarts = 100

# Exits with the code it reads on stdin.
[templates.codes]
command = ["sh", "-c", "read code; exit $code"]
restart = "transient"
normal_exit_codes = [0, 3]

[templates.only3]
command = ["sh", "-c", "read code; exit $code"]
restart = "transient"
normal_exit_codes = [3]

[templates.default]
command = ["sh", "-c", "read code; exit $code"]
restart = "transient"
"#;
    let d = TestDaemon::start(config);
    let mut w = Watcher::subscribe(&d, &[]);

    // (template, code, restarted?)
    let cases = [
        ("codes", "3", false),
        ("codes", "0", false),
        ("codes", "4", true),
        ("only3", "3", false),
        ("only3", "0", true),
        ("default", "3", true),
        ("default", "0", false),
    ];
    for (i, (template, code, restarted)) in cases.into_iter().enumerate() {
        let name = format!("n{i}_{template}_{code}");
        let pid = d.start_worker(&name, Some(template), &[]);
        w.wait_for("started", |e| is_started(e, &name));
        d.request_ok(&cast_req(&name, code));
        let (ev, _) = w.wait_for("exited", |e| is_exited(e, &name));
        assert!(
            matches!(&ev.event, Event::Exited { pid: p, exit: ExitReport::Exited { code: c }, .. } if *p == pid && c.to_string() == code),
            "{ev:?}"
        );
        let next = w.next().event;
        if restarted {
            assert!(
                is_restarting(&next, &name),
                "{name}: exit {code} should be abnormal, got {next:?}"
            );
            d.wait_restarted(&name, pid);
        } else {
            assert!(
                is_stopped(&next, &name),
                "{name}: exit {code} should be clean, got {next:?}"
            );
            assert_eq!(d.lookup(&name), None);
        }
    }
}

/// `max_children`: `start` beyond it answers `max_children`, checked before
/// anything else; a worker waiting in backoff holds its slot.
#[test]
fn max_children_is_checked_first_and_backoff_holds_a_slot() {
    let config = r#"
[supervisor]
max_restarts = 100
max_children = 3

[templates.crash_later]
command = ["sh", "-c", "read x; exit 1"]
restart = "permanent"
backoff = { initial_ms = 60000 }

[[children]]
name = "boot"
template = "sleeper"
"#;
    let d = TestDaemon::start(&[config, SLEEPER].concat());
    d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("crash_later"), &[]);
    assert_eq!(d.count(), 3);

    let full = |req: &Request| {
        let reply = d.request(req);
        assert_error(&reply, ErrorKind::MaxChildren);
    };
    full(&start_req("c", Some("sleeper"), &[]));
    // Checked before the name, the template and the registry.
    full(&start_req("bad name", Some("sleeper"), &[]));
    full(&start_req("c", Some("no_such_template"), &[]));
    full(&start_req("a", Some("sleeper"), &[]));

    // b crashes and waits 60 s for its restart: it still holds its slot.
    let mut w = Watcher::subscribe(&d, &["b"]);
    d.request_ok(&cast_req("b", "crash"));
    w.wait_for("restarting b", |e| is_restarting(e, "b"));
    assert_eq!(d.list_one("b").unwrap().state, WorkerStateName::Backoff);
    full(&start_req("c", Some("sleeper"), &[]));

    d.request_ok(&stop_req("b", None));
    let c = d.start_worker("c", Some("sleeper"), &[]);
    assert_eq!(d.lookup("c"), Some(c));
    full(&start_req("d", Some("sleeper"), &[]));
    d.request_ok(&stop_req("boot", None));
    d.start_worker("d", Some("sleeper"), &[]);
    assert_eq!(d.count(), 3);

    // The CLI says so, with status 1.
    let out = d.cli(&["start", "e", "--template", "sleeper"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("max_children"),
        "{}",
        stderr_of(&out)
    );
}

/// `extra_args` are prepended to every start's arguments (OTP's `extra_arguments`),
/// boot children's too; a `command` override replaces them with the command.
#[test]
fn extra_args_come_before_the_start_arguments() {
    let config = r#"
[templates.echo]
command = ["sh", "-c", "echo \"argv=[$*]\"; exec sleep 100000", "sh"]
restart = "permanent"
extra_args = ["--mode", "fast"]

[[children]]
name = "boot"
template = "echo"
args = ["from-config"]
"#;
    let d = TestDaemon::start(config);
    d.start_worker("plain", Some("echo"), &[]);
    d.start_worker("with_args", Some("echo"), &["x y", "z"]);
    d.start_command(
        "override",
        Some("echo"),
        &[
            "sh",
            "-c",
            "echo \"argv=[$*]\"; exec sleep 100000",
            "sh",
            "own",
        ],
    );
    for (name, line) in [
        ("boot", "argv=[--mode fast from-config]"),
        ("plain", "argv=[--mode fast]"),
        ("with_args", "argv=[--mode fast x y z]"),
        ("override", "argv=[own]"),
    ] {
        d.wait_until(DEADLINE, &format!("`[{name}] {line}`"), || {
            (d.worker_output_exact(name, line) == 1).then_some(())
        });
    }
    // A crash restart keeps them (once, not twice).
    let pid = d.lookup("with_args").unwrap();
    send_signal(pid, Signal::SIGKILL);
    d.wait_restarted("with_args", pid);
    d.wait_until(DEADLINE, "the restarted worker's argv", || {
        (d.worker_output_exact("with_args", "argv=[--mode fast x y z]") == 2).then_some(())
    });
}

/// `restart NAME`: stop as `stop` does, start again with the same spec. An operator
/// action: not a crash, so not counted (with `max_restarts = 0`, a single counted
/// restart would stop the daemon).
#[test]
fn restart_gives_a_new_pid_reaps_the_old_one_and_counts_nothing() {
    let config = r#"
[supervisor]
max_restarts = 0
max_seconds = 60

[templates.stubborn]
command = ["sh", "-c", "trap '' TERM; echo armed; exec sleep 100000"]
restart = "transient"
shutdown_ms = 60000
"#;
    let mut d = TestDaemon::start(&[config, SAMPLE_WORKER].concat());
    let mut pid = d.start_worker("w", Some("worker"), &["--print-pid"]);
    let argv = cmdline(pid);
    d.wait_started("w", 1);
    let mut w = Watcher::subscribe(&d, &["w"]);
    for round in 1..=3 {
        let reply = d.request_ok(&restart_req("w", None));
        assert_eq!(reply.name.as_deref(), Some("w"), "{reply:?}");
        let new = reply.pid.expect("restart reply with the new pid");
        assert_ne!(new, pid);
        // The old process was stopped gracefully (SIGTERM: the worker says goodbye)
        // and reaped before the new one started.
        d.assert_reaped(pid);
        d.wait_worker_line("w", "Exiting worker: w with reason: shutdown", round);
        assert!(is_alive(new));
        assert_eq!(stat(new).unwrap().ppid, d.pid());
        assert_eq!(d.lookup("w"), Some(new));
        assert_eq!(cmdline(new), argv, "the same spec");
        // Its SIGTERM handler is installed once it says hello.
        d.wait_started("w", round + 1);

        let ev = w.expect("exited w", |e| is_exited(e, "w")).event;
        assert!(
            matches!(&ev, Event::Exited { pid: p, .. } if *p == pid),
            "{ev:?}"
        );
        w.expect("restarting w", |e| is_restarting(e, "w"));
        assert_eq!(
            started_pid(&w.expect("started w", |e| is_started(e, "w")).event),
            new
        );
        pid = new;
    }
    let info = d.list_one("w").unwrap();
    assert_eq!(
        info.restarts, 0,
        "operator restarts are not counted: {info:?}"
    );
    assert_eq!(info.restarts_in_window, 0, "{info:?}");
    assert_eq!(info.state, WorkerStateName::Running);
    assert_eq!(
        info.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("stopped"),
        "{info:?}"
    );
    assert!(!d.has_exited());

    // A worker that ignores SIGTERM: the timeout applies, then SIGKILL.
    let old = d.start_worker("s", Some("stubborn"), &[]);
    d.wait_worker_line("s", "armed", 1);
    let reply = d.request_ok(&restart_req("s", Some(100)));
    let new = reply.pid.expect("pid");
    assert_ne!(new, old);
    d.assert_reaped(old);
    d.wait_log("s: stopped: did not exit in time, killed");
    assert_eq!(d.lookup("s"), Some(new));

    assert_error(
        &d.request(&restart_req("nobody", None)),
        ErrorKind::NotFound,
    );

    // The CLI.
    let out = d.cli(&["restart", "w"]);
    assert_exit(&out, 0);
    let now = d.lookup("w").unwrap();
    assert_ne!(now, pid);
    assert_eq!(stdout_of(&out).trim(), format!("w restarted (pid {now})"));
    let out = d.cli(&["restart", "nobody"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("nobody"), "{}", stderr_of(&out));
    assert!(!d.has_exited());
    assert_eq!(d.list_one("w").unwrap().restarts, 0);
}

/// `whois PID`: the name of the worker owning PID, also for any pid in the worker's
/// process group (a grandchild).
#[test]
fn whois_finds_a_worker_by_its_pid_and_by_a_pid_in_its_group() {
    let dir = TestDir::new();
    let child_file = dir.join("grandchild.pid");
    let config = format!(
        r#"
[templates.group]
command = ["sh", "-c", "sleep 100000 & echo $! > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; wait", {file}]
restart = "permanent"
"#,
        file = toml_str(child_file.to_str().unwrap())
    );
    let d = TestDaemon::start(&(config + SLEEPER));
    let other = d.start_worker("other", Some("sleeper"), &[]);
    let pid = d.start_worker("g", Some("group"), &[]);
    let grandchild = wait_pid_file(&child_file);
    let s = stat(grandchild).expect("the grandchild runs");
    assert_eq!(
        s.pgrp, pid,
        "the grandchild is in the worker's process group"
    );
    assert_eq!(s.ppid, pid, "the grandchild is the worker's child");

    for (who, want) in [(pid, "g"), (grandchild, "g"), (other, "other")] {
        let reply = d.request_ok(&whois_req(who));
        assert_eq!(reply.name.as_deref(), Some(want), "whois {who}: {reply:?}");
    }
    let reply = d.request_ok(&whois_req(grandchild));
    assert_eq!(reply.state, Some(WorkerStateName::Running), "{reply:?}");
    assert_eq!(
        reply.pid,
        Some(pid),
        "whois answers with the worker's pid: {reply:?}"
    );

    for stranger in [std::process::id() as i32, d.pid(), 1, i32::MAX, 0, -pid] {
        assert_error(&d.request(&whois_req(stranger)), ErrorKind::NotFound);
    }

    // The CLI.
    let out = d.cli(&["whois", &grandchild.to_string()]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), "g");
    let out = d.cli(&["whois", &std::process::id().to_string()]);
    assert_exit(&out, 1);

    // Once stopped, its old pids belong to nobody.
    d.request_ok(&stop_req("g", None));
    assert_error(&d.request(&whois_req(pid)), ErrorKind::NotFound);
}

/// `count` in OTP's `count_children` shape: total, active (a live pid), backoff,
/// failed, stopping; and `count --all` on the CLI.
#[test]
fn count_has_the_full_shape() {
    let config = r#"
[supervisor]
max_restarts = 100

[templates.backoff]
command = ["sh", "-c", "exit 1"]
restart = "permanent"
backoff = { initial_ms = 60000 }

[templates.giveup]
command = ["sh", "-c", "exit 1"]
restart = "permanent"
max_restarts = 0
on_limit = "give_up"

[templates.stubborn]
command = ["sh", "-c", "trap '' TERM; echo armed; exec sleep 100000"]
restart = "permanent"
shutdown_ms = 60000
"#;
    let d = TestDaemon::start(&[config, SLEEPER].concat());
    let out = d.cli(&["count", "--all"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out).trim(),
        "total 0  active 0  backoff 0  failed 0  stopping 0"
    );

    let mut w = Watcher::subscribe(&d, &[]);
    d.start_worker("running", Some("sleeper"), &[]);
    d.start_worker("waiting", Some("backoff"), &[]);
    d.start_worker("failed", Some("giveup"), &[]);
    d.start_worker("stopping", Some("stubborn"), &[]);
    // Those two happen in either order.
    let (_, skipped) = w.wait_for("restarting waiting", |e| is_restarting(e, "waiting"));
    if !skipped.iter().any(|e| is_failed(e, "failed")) {
        w.wait_for("failed failed", |e| is_failed(e, "failed"));
    }
    d.wait_worker_line("stopping", "armed", 1);
    // A stop that cannot finish for a minute: sent, its reply never read.
    let mut stopper = UnixStream::connect(d.socket()).unwrap();
    let mut line = stop_req("stopping", None).to_line();
    line.push('\n');
    stopper.write_all(line.as_bytes()).unwrap();
    d.wait_until(DEADLINE, "`stopping` to be stopping", || {
        (d.list_one("stopping")?.state == WorkerStateName::Stopping).then_some(())
    });

    let counts = d.counts();
    assert_eq!(
        counts,
        Counts {
            total: 4,
            active: 2,
            backoff: 1,
            failed: 1,
            stopping: 1,
            waiting: 0,
        }
    );
    let out = d.cli(&["count", "--all"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out).trim(),
        "total 4  active 2  backoff 1  failed 1  stopping 1"
    );
    let out = d.cli(&["count"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), "4");
    let out = d.cli(&["--json", "count"]);
    assert_exit(&out, 0);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).expect("JSON reply");
    assert_eq!(reply.count, Some(4));
    assert_eq!(reply.counts, Some(counts));
}

/// `list` shows per worker: state, pid, uptime (started_at_ms), restarts in total and
/// in the window, the last exit and when, the next try, and whether it is dynamic.
#[test]
fn list_shows_restarts_last_exit_and_origin() {
    let config = r#"
[supervisor]
max_restarts = 100
max_seconds = 30

[templates.crasher]
command = ["sh", "-c", "read x; exit 1"]
restart = "transient"

[[children]]
name = "boot"
template = "sleeper"
"#;
    let d = TestDaemon::start(&[config, SLEEPER].concat());
    let t0 = now_ms();
    let dyn1 = d.start_worker("dyn", Some("sleeper"), &[]);
    let crasher = d.start_worker("crasher", Some("crasher"), &[]);

    send_signal(dyn1, Signal::SIGKILL);
    let dyn2 = d.wait_restarted("dyn", dyn1);
    send_signal(dyn2, Signal::SIGKILL);
    let dyn3 = d.wait_restarted("dyn", dyn2);
    d.request_ok(&cast_req("crasher", "boom"));
    d.wait_restarted("crasher", crasher);
    let t1 = now_ms();

    let list = d.list();
    let names: Vec<&str> = list.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["boot", "crasher", "dyn"], "sorted by name");

    let boot = &list[0];
    assert!(!boot.dynamic, "{boot:?}");
    assert_eq!((boot.restarts, boot.restarts_in_window), (0, 0), "{boot:?}");
    assert_eq!(boot.last_exit, None, "{boot:?}");
    assert_eq!(boot.next_try_ms, None, "{boot:?}");
    assert!(
        boot.started_at_ms <= t1 && boot.started_at_ms > 0,
        "{boot:?}"
    );

    let dynw = &list[2];
    assert!(dynw.dynamic, "{dynw:?}");
    assert_eq!(dynw.pid, Some(dyn3));
    assert_eq!(dynw.state, WorkerStateName::Running);
    assert_eq!((dynw.restarts, dynw.restarts_in_window), (2, 2), "{dynw:?}");
    let last = dynw.last_exit.as_ref().expect("last_exit");
    assert_eq!(last.reason, "signal SIGKILL");
    assert!(
        t0 <= last.at_ms && last.at_ms <= t1,
        "{last:?} not in [{t0}, {t1}]"
    );
    assert!(
        dynw.started_at_ms >= last.at_ms && dynw.started_at_ms <= t1,
        "{dynw:?}"
    );
    assert_eq!(dynw.next_try_ms, None);

    let crash = &list[1];
    assert!(crash.dynamic);
    assert_eq!(crash.restarts, 1);
    assert_eq!(
        crash.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("exit 1"),
        "{crash:?}"
    );

    // After an operator restart the last exit says `stopped`.
    d.request_ok(&restart_req("boot", None));
    let boot = d.list_one("boot").unwrap();
    assert_eq!(
        boot.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("stopped"),
        "{boot:?}"
    );
    assert_eq!(boot.restarts, 0);

    // The CLI's table has the new columns.
    let out = d.cli(&["list"]);
    assert_exit(&out, 0);
    let text = stdout_of(&out);
    let header = text.lines().next().unwrap_or_default();
    for column in ["NAME", "PID", "STATE", "RESTARTS", "LAST EXIT", "NEXT TRY"] {
        assert!(header.contains(column), "no {column} column: {text}");
    }
    let row = text
        .lines()
        .find(|l| l.starts_with("dyn "))
        .unwrap_or_else(|| panic!("no dyn row: {text}"));
    assert!(row.contains(&dyn3.to_string()), "{row}");
    assert!(row.contains("signal SIGKILL"), "{row}");
}

/// `on_limit = "escalate"` (the default) with a template's own limit: exceeding it
/// stops every worker and exits 1, as the supervisor-wide intensity does.
#[test]
fn a_templates_own_limit_escalates_by_default() {
    let config = r#"
[supervisor]
max_restarts = 100
max_seconds = 60

[templates.crashy]
command = ["sh", "-c", "read x; exit 1"]
restart = "transient"
max_restarts = 1
max_seconds = 60
"#;
    let mut d = TestDaemon::start(&[config, SLEEPER].concat());
    let sibling = d.start_worker("sibling", Some("sleeper"), &[]);
    let first = d.start_worker("c", Some("crashy"), &[]);
    let mut w = Watcher::subscribe(&d, &["c"]);
    d.request_ok(&cast_req("c", "crash"));
    let second = d.wait_restarted("c", first);
    d.request_ok(&cast_req("c", "crash"));
    w.wait_for(
        "exited c",
        |e| matches!(e, Event::Exited { pid, .. } if *pid == second),
    );
    assert_eq!(
        w.next().event,
        Event::IntensityTripped { name: "c".into() },
        "{:?}",
        w.seen
    );
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    assert!(!is_alive(sibling), "the sibling outlived the escalation");
    assert!(
        d.log().contains("reached max restart intensity"),
        "{}",
        d.log_tail()
    );
}
