//! The CLI: `dynsup [--socket PATH] COMMAND`, its output and its exit codes
//! (0 success, 1 error answered by the daemon, 2 usage, 3 daemon unreachable).

mod common;
use common::*;
use std::process::{Command, Output};

/// The sample worker as template `worker`.
fn config() -> String {
    [LENIENT_SUPERVISOR, SAMPLE_WORKER].concat()
}

/// The pid a `start` or `lookup` printed: the only thing on stdout.
#[track_caller]
fn printed_pid(out: &Output) -> i32 {
    assert_exit(out, 0);
    let text = stdout_of(out);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("stdout is not a pid: {text:?}"))
}

#[test]
fn start_lookup_count_stop() {
    let d = TestDaemon::start(&config());
    let pid = printed_pid(&d.cli(&["start", "worker_1"]));
    assert_eq!(d.lookup("worker_1"), Some(pid));
    assert_eq!(stat(pid).unwrap().ppid, d.pid());
    assert_eq!(printed_pid(&d.cli(&["lookup", "worker_1"])), pid);

    let out = d.cli(&["count"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), "1");

    let out = d.cli(&["list"]);
    assert_exit(&out, 0);
    assert!(stdout_of(&out).contains("worker_1"), "{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains(&pid.to_string()),
        "{}",
        stdout_of(&out)
    );

    d.wait_started("worker_1", 1);
    let out = d.cli(&["cast", "worker_1", "work"]);
    assert_exit(&out, 0);
    d.wait_worker_line("worker_1", "hola", 1);

    let out = d.cli(&["stop", "worker_1"]);
    assert_exit(&out, 0);
    assert!(
        !stdout_of(&out).trim().is_empty(),
        "stop prints how the worker ended"
    );
    d.assert_reaped(pid);
    assert_eq!(d.lookup("worker_1"), None);
    assert_eq!(stdout_of(&d.cli(&["count"])).trim(), "0");
}

#[test]
fn socket_and_json_are_accepted_before_and_after_the_command() {
    let d = TestDaemon::start(&config());
    let socket = d.socket().to_str().unwrap();
    let pid = printed_pid(&d.cli(&["start", "w"]));

    let run_cli = |args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.args(args).env_remove("DYNSUP_SOCKET");
        run(&mut cmd, DEADLINE)
    };
    assert_eq!(
        printed_pid(&run_cli(&["--socket", socket, "lookup", "w"])),
        pid
    );
    assert_eq!(
        printed_pid(&run_cli(&["lookup", "w", "--socket", socket])),
        pid
    );
    assert_eq!(
        printed_pid(&run_cli(&["lookup", "--socket", socket, "w"])),
        pid
    );

    for args in [
        vec!["--socket", socket, "--json", "lookup", "w"],
        vec!["--socket", socket, "lookup", "w", "--json"],
        vec!["lookup", "--json", "w", "--socket", socket],
    ] {
        let out = run_cli(&args);
        assert_exit(&out, 0);
        let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not a reply ({e}): {}", stdout_of(&out))
        });
        assert!(reply.ok);
        assert_eq!(reply.pid, Some(pid), "{args:?}");
    }

    let out = d.cli(&["count", "--json"]);
    assert_exit(&out, 0);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).unwrap();
    assert_eq!(reply.count, Some(1));

    // --json on an error: the raw error reply (on stdout or stderr), exit status 1.
    let out = d.cli(&["--json", "lookup", "ghost"]);
    assert_exit(&out, 1);
    let reply: Reply = [stdout_of(&out), stderr_of(&out)]
        .iter()
        .find_map(|text| serde_json::from_str(text.trim()).ok())
        .unwrap_or_else(|| panic!("no JSON reply printed: {out:?}"));
    assert_eq!(error_kind(&reply), Some(ErrorKind::NotFound));
}

#[test]
fn socket_from_the_environment() {
    let d = TestDaemon::start(&config());
    let mut cmd = Command::new(bin());
    cmd.args(["count"]).env("DYNSUP_SOCKET", d.socket());
    let out = run(&mut cmd, DEADLINE);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), "0");
}

#[test]
fn errors_answered_by_the_daemon_exit_1() {
    let d = TestDaemon::start(&config());
    let out = d.cli(&["lookup", "worker_9"]);
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("dynsup: "), "{stderr}");
    assert!(stderr.contains("worker_9 is not registered"), "{stderr}");
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));

    assert_exit(&d.cli(&["stop", "worker_9"]), 1);
    assert_exit(&d.cli(&["kill", "worker_9"]), 1);
    assert_exit(&d.cli(&["cast", "worker_9", "work"]), 1);

    let pid = printed_pid(&d.cli(&["start", "w"]));
    let out = d.cli(&["start", "w"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains(&pid.to_string()),
        "{}",
        stderr_of(&out)
    );
    assert_exit(&d.cli(&["start", "x", "--template", "nope"]), 1);
    assert_exit(&d.cli(&["kill", "w", "--signal", "SIGFOO"]), 1);
    assert_eq!(d.lookup("w"), Some(pid));
}

#[test]
fn usage_errors_exit_2() {
    let d = TestDaemon::start(&config());
    for args in [
        vec!["frobnicate"],
        vec!["start"],
        vec!["lookup"],
        vec!["cast", "w"],
        vec!["stop", "w", "--timeout", "soon"],
        vec!["count", "--bogus-flag"],
    ] {
        let out = d.cli(&args);
        assert_exit(&out, 2);
        assert!(!stderr_of(&out).is_empty(), "{args:?}: no message");
    }
    // None of them reached the daemon.
    assert_eq!(d.count(), 0);
}

#[test]
fn unreachable_daemon_exits_3_and_names_the_socket() {
    let dir = TestDir::new();
    let socket = dir.join("nobody-listens.sock");
    let mut cmd = Command::new(bin());
    cmd.arg("--socket").arg(&socket).arg("count");
    let out = run(&mut cmd, DEADLINE);
    assert_exit(&out, 3);
    let stderr = stderr_of(&out);
    assert!(stderr.contains(socket.to_str().unwrap()), "{stderr}");

    // A stale socket file with no daemon behind it.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(_listener);
    let mut cmd = Command::new(bin());
    cmd.arg("count").arg("--socket").arg(&socket);
    let out = run(&mut cmd, DEADLINE);
    assert_exit(&out, 3);
    assert!(stderr_of(&out).contains(socket.to_str().unwrap()));
}

#[test]
fn start_with_template_args_and_command() {
    let config = r#"
[templates.worker]
command = ["dynsup-worker"]

[templates.sleeper]
command = ["sleep"]
restart = "temporary"
"#;
    let d = TestDaemon::start(config);
    let pid = printed_pid(&d.cli(&["start", "s", "--template", "sleeper", "--arg", "100000"]));
    assert_eq!(cmdline(pid), ["sleep", "100000"]);

    let pid = printed_pid(&d.cli(&[
        "start",
        "c",
        "--template",
        "sleeper",
        "--",
        "sleep",
        "99999",
    ]));
    assert_eq!(cmdline(pid), ["sleep", "99999"]);
    let list = d.list();
    let c = list.iter().find(|w| w.name == "c").unwrap();
    assert_eq!(c.template, "sleeper");
    assert_eq!(c.restart, "temporary");
}

#[test]
fn kill_restarts_and_shutdown_ends_the_daemon() {
    let mut d = TestDaemon::start(&config());
    let pid = printed_pid(&d.cli(&["start", "w"]));
    let out = d.cli(&["kill", "w"]);
    assert_exit(&out, 0);
    let new = d.wait_restarted("w", pid);
    assert_ne!(new, pid);
    let out = d.cli(&["kill", "w", "--signal", "SIGTERM"]);
    assert_exit(&out, 0);
    d.wait_unregistered("w");

    printed_pid(&d.cli(&["start", "w2"]));
    let out = d.cli(&["shutdown"]);
    assert_exit(&out, 0);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", d.log_tail());
    assert!(!d.socket().exists());

    // Now nobody is listening.
    assert_exit(&d.cli(&["count"]), 3);
}

/// `restart` takes names, `--template` or `--all` (exactly one kind), and one name at
/// most with `--rolling`: anything else is a usage error, and nothing reaches the daemon.
#[test]
fn restart_selection_usage_errors_exit_2() {
    let d = TestDaemon::start(&config());
    let pid = printed_pid(&d.cli(&["start", "w"]));
    for (args, says) in [
        (vec!["restart"], "<NAMES|--template <T>|--all>"),
        (vec!["restart", "w", "x", "--rolling"], "takes one NAME"),
        (vec!["stop"], "<NAMES|--template <T>|--all>"),
        (vec!["kill", "w", "--all"], "cannot be used with"),
        (
            vec!["restart", "w", "--all", "--rolling"],
            "cannot be used with",
        ),
        (
            vec!["restart", "w", "--template", "worker", "--rolling"],
            "cannot be used with",
        ),
        (
            vec!["restart", "--template", "worker", "--all", "--rolling"],
            "cannot be used with",
        ),
        (vec!["health", "extra"], "unexpected argument"),
    ] {
        let out = d.cli(&args);
        assert_exit(&out, 2);
        assert!(
            stderr_of(&out).contains(says),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    assert_eq!(d.lookup("w"), Some(pid), "a usage error restarted w");
}

/// `dynsup health` and `dynsup restart --rolling` without a daemon: exit 3, naming the
/// socket, like every other command.
#[test]
fn health_and_rolling_restart_without_a_daemon_exit_3() {
    let dir = TestDir::new();
    let socket = dir.join("nobody-listens.sock");
    for args in [
        vec!["health"],
        vec!["health", "--json"],
        vec!["restart", "--all", "--rolling"],
    ] {
        let out = run(cli_command(&socket).args(&args), DEADLINE);
        assert_exit(&out, 3);
        assert!(
            stderr_of(&out).contains(socket.to_str().unwrap()),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert!(stdout_of(&out).is_empty(), "{args:?}: {}", stdout_of(&out));
    }
}

/// `lookup` of a worker with no pid: nothing on stdout (so `kill $(dynsup lookup x)`
/// gets no word), its state on stderr, exit 1; `--json` prints the reply and exits 0.
#[test]
fn lookup_of_a_worker_without_a_pid_exits_1_with_its_state_on_stderr() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, GIVES_UP].concat());
    d.start_worker("c", Some("crash"), &[]);
    d.wait_until(DEADLINE, "c to fail", || {
        (d.list_one("c")?.state == WorkerStateName::Failed).then_some(())
    });
    let out = d.cli(&["lookup", "c"]);
    assert_exit(&out, 1);
    assert_eq!(stdout_of(&out), "");
    assert_eq!(stderr_of(&out).trim(), "dynsup: c: no pid (state failed)");
    let out = d.cli(&["lookup", "c", "--json"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out).trim(),
        r#"{"ok":true,"name":"c","state":"failed"}"#
    );
}

/// Template `crash`: exits 3 at once, permanent, given up after one restart in a minute.
const GIVES_UP: &str = r#"
[templates.crash]
command = ["sh", "-c", "exit 3"]
restart = "permanent"
on_limit = "give_up"
max_restarts = 1
max_seconds = 60
backoff = { initial_ms = 10, max_ms = 10 }
"#;

/// `restart` of a `failed` worker starts its own window afresh (as the backoff): it
/// gets its whole `max_restarts` again before it is given up; `restarts` keeps the
/// total.
#[test]
fn restart_of_a_failed_worker_starts_its_window_afresh() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, GIVES_UP].concat());
    d.start_worker("c", Some("crash"), &[]);
    let failed = |d: &TestDaemon| {
        d.wait_until(DEADLINE, "c to fail", || {
            let row = d.list_one("c")?;
            (row.state == WorkerStateName::Failed).then_some(row)
        })
    };
    let row = failed(&d);
    assert_eq!((row.restarts, row.restarts_in_window), (2, 2), "{row:?}");
    let mut w = Watcher::subscribe(&d, &["c"]);
    d.request_ok(&restart_req("c", None));
    // With its old window it would be given up at its next exit; with a fresh one it
    // is restarted once more first.
    w.wait_for("c restarting", |e| matches!(e, Event::Restarting { .. }));
    w.wait_for("c failed", |e| matches!(e, Event::Failed { .. }));
    let row = failed(&d);
    assert_eq!((row.restarts, row.restarts_in_window), (4, 2), "{row:?}");
}

/// Blank request lines are skipped (no reply); `kill`'s `signal` may be a JSON number.
#[test]
fn blank_lines_get_no_reply_and_a_signal_may_be_a_number() {
    let d = TestDaemon::start(&config());
    let pid = printed_pid(&d.cli(&["start", "w"]));
    d.wait_started("w", 1);
    let mut client = d.client();
    client.send("");
    client.send("  \r");
    client.send(r#"{"cmd":"kill","name":"w","signal":10}"#);
    let reply = client.recv();
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.signal.as_deref(), Some("SIGUSR1"));
    assert_eq!(reply.pid, Some(pid));
    // The next reply is the count's: nothing was owed for the blank lines.
    let reply = client.request(&Request::Count);
    assert_eq!(reply.count, Some(1), "{reply:?}");
    let reply = client.request(r#"{"cmd":"kill","name":"w","signal":1.5}"#);
    assert_error(&reply, ErrorKind::BadRequest);
}

/// A reload that changes a setting only a daemon restart applies says so in its reply
/// (and `dynsup reload` prints it), not only in the daemon's log.
#[test]
fn reload_names_the_settings_that_need_a_daemon_restart() {
    let d = TestDaemon::start(&config());
    let state = d.dir().join("state.json");
    let text = format!(
        "{}state_file = {}\n{SAMPLE_WORKER}",
        LENIENT_SUPERVISOR,
        toml_str(state.to_str().unwrap())
    );
    d.rewrite_config(&text);
    let out = d.cli(&["reload"]);
    assert_exit(&out, 0);
    assert!(
        stdout_of(&out).contains("not applied until the daemon restarts: [supervisor] state_file"),
        "{}",
        stdout_of(&out)
    );
    let reply = d.request_ok(&Request::Reload);
    let report = reply.reload.expect("a reload report");
    assert_eq!(report.needs_daemon_restart, ["state_file"]);
    d.rewrite_config(&config());
    let reply = d.request_ok(&Request::Reload);
    assert!(reply.reload.unwrap().needs_daemon_restart.is_empty());
}

/// `shutdown` prints a line per stopped worker, then the total (as the README shows).
#[test]
fn shutdown_prints_a_line_per_worker() {
    let mut d = TestDaemon::start(&config());
    let pid = printed_pid(&d.cli(&["start", "w"]));
    d.wait_started("w", 1);
    let out = d.cli(&["shutdown"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out),
        format!(
            "w (pid {pid}) stopped: exited with status 0\ndaemon stopped (1 worker(s) stopped)\n"
        )
    );
    d.wait_exit(DEADLINE);
}

/// `dynsup list | head -1`: a reader that goes away ends the CLI quietly with status 0
/// (no panic, nothing on stderr), for every command that prints.
#[test]
fn a_reader_that_goes_away_ends_the_cli_quietly() {
    let d = TestDaemon::start(&config());
    for i in 0..40 {
        d.start_worker(&format!("w{i}"), Some("worker"), &[]);
    }
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["count"],
        &["completions", "bash"],
        &["manpage"],
    ] {
        let mut child = cli_command(d.socket())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run the CLI");
        // The read end is closed before the CLI writes anything.
        drop(child.stdout.take());
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("read stderr");
        let status = child.wait().expect("wait for the CLI");
        assert_eq!(
            status.code(),
            Some(0),
            "dynsup {args:?}: {status:?}, stderr {err:?}"
        );
        assert_eq!(err, "", "dynsup {args:?}");
    }
}
