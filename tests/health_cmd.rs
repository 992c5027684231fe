//! `dynsup health`, the probe for container runtimes and orchestrators: exit 0 and
//! `healthy (N checked)` when every boot child and every critical worker is running and
//! ready; exit 1 and exactly one line (the first problem, and how many more) while a
//! boot child is not ready or waits, or one is in backoff, or a critical worker is not
//! running; exit 3 without a daemon. A read-only peer may ask.

mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::process::Output;

/// Runs `dynsup health` (with `extra` arguments).
#[track_caller]
fn health(d: &TestDaemon, extra: &[&str]) -> Output {
    let mut args = vec!["health"];
    args.extend_from_slice(extra);
    d.cli(&args)
}

/// The `health` report, over the socket.
#[track_caller]
fn report(d: &TestDaemon) -> dynsup::protocol::HealthReport {
    let reply = d.request_ok(&Request::Health);
    match reply.health {
        Some(report) => report,
        None => panic!("health reply without a report: {reply:?}"),
    }
}

/// Asserts that `dynsup health` says unhealthy: exit 1 and exactly one line, the first
/// of the report's problems and how many more there are (the report is read right
/// after, so the two must agree on what the first problem is about). Returns the line.
#[track_caller]
fn assert_unhealthy(d: &TestDaemon) -> String {
    let out = health(d, &[]);
    assert_exit(&out, 1);
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {stdout:?}");
    assert!(stdout.ends_with('\n'), "{stdout:?}");
    assert!(!lines[0].trim().is_empty(), "an empty line");
    let report = report(d);
    assert!(!report.healthy, "{report:?}");
    assert!(!report.problems.is_empty(), "{report:?}");
    let more = report.problems.len() - 1;
    if more > 0 {
        assert!(
            lines[0].ends_with(&format!(" (and {more} more)")),
            "{stdout:?} vs {report:?}"
        );
    }
    lines[0].to_string()
}

/// Waits until `dynsup health` exits 0 printing `healthy (N checked)`.
#[track_caller]
fn wait_healthy(d: &TestDaemon, checked: usize) {
    let want = format!("healthy ({checked} checked)\n");
    d.wait_until(DEADLINE, &format!("dynsup health to say {want:?}"), || {
        let out = health(d, &[]);
        (out.status.code() == Some(0) && stdout_of(&out) == want).then_some(())
    });
}

/// While a boot child is not ready, and another waits for it: exit 1, one line; the
/// report names both. Once they are ready: exit 0, with `--json` too.
#[test]
fn health_waits_for_the_boot_children_to_be_ready() {
    let f = Recorded::new();
    let config = [
        LENIENT_SUPERVISOR,
        &f.template("node", ""),
        &boot_child_after("a", "node", &[], &["0", "gate"]),
        &boot_child_after("b", "node", &["a"], &[]),
    ]
    .concat();
    let d = Launch::new(&config).in_dir(f.dir.clone()).start();
    d.wait_until(DEADLINE, "a to start", || {
        (f.read().count("a", "start") == 1).then_some(())
    });

    assert_unhealthy(&d);
    let report = report(&d);
    assert_eq!(report.checked, 2, "{report:?}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with("b: ") && p.contains("waiting") && p.contains('a')),
        "{report:?}"
    );
    assert!(
        report.problems.iter().any(|p| p.starts_with("a: ")),
        "{report:?}"
    );
    let out = health(&d, &["--json"]);
    assert_exit(&out, 1);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).expect("a JSON reply");
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.health.map(|h| h.healthy), Some(false));

    f.open_gate("a");
    wait_healthy(&d, 2);
    let out = health(&d, &["--json"]);
    assert_exit(&out, 0);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).expect("a JSON reply");
    let report = reply.health.expect("a health report");
    assert!(report.healthy && report.problems.is_empty(), "{report:?}");
}

/// A boot child in backoff, and a critical dynamic worker in backoff, make it unhealthy;
/// a dynamic worker that is not critical does not.
#[test]
fn health_names_a_boot_child_or_critical_worker_that_is_not_running() {
    let config = [
        LENIENT_SUPERVISOR,
        r#"
[templates.slow]
command = ["sleep", "100000"]
restart = "permanent"
backoff = { initial_ms = 600000 }

[templates.crit]
command = ["sleep", "100000"]
restart = "permanent"
critical = true
backoff = { initial_ms = 600000 }
"#,
        &boot_child("boot_1", "slow", &[]),
    ]
    .concat();
    let d = TestDaemon::start(&config);
    wait_healthy(&d, 1);

    // A worker that is not critical is not looked at, whatever its state.
    let plain = d.start_worker("plain", Some("slow"), &[]);
    send_signal(plain, Signal::SIGKILL);
    d.wait_until(DEADLINE, "plain to be in backoff", || {
        d.list_one("plain")
            .filter(|w| w.state == WorkerStateName::Backoff)
    });
    wait_healthy(&d, 1);

    // A critical one is.
    let crit = d.start_worker("crit_1", Some("crit"), &[]);
    wait_healthy(&d, 2);
    send_signal(crit, Signal::SIGKILL);
    d.wait_until(DEADLINE, "crit_1 to be in backoff", || {
        d.list_one("crit_1")
            .filter(|w| w.state == WorkerStateName::Backoff)
    });
    let line = assert_unhealthy(&d);
    assert!(
        line.contains("crit_1") && line.contains("backoff"),
        "{line}"
    );
    d.request_ok(&stop_req("crit_1", None));
    wait_healthy(&d, 1);

    // The boot child.
    let boot = d.lookup("boot_1").expect("boot_1 runs");
    send_signal(boot, Signal::SIGKILL);
    d.wait_until(DEADLINE, "boot_1 to be in backoff", || {
        d.list_one("boot_1")
            .filter(|w| w.state == WorkerStateName::Backoff)
    });
    let line = assert_unhealthy(&d);
    assert!(
        line.contains("boot_1") && line.contains("backoff"),
        "{line}"
    );
}

/// A read-only peer may ask (and may not restart anything); no daemon: exit 3.
#[test]
fn a_read_only_peer_may_probe_and_no_daemon_is_exit_3() {
    let config = [
        "\n[supervisor]\nsocket_mode = \"0666\"\nread_only_uids = [65534]\n",
        SLEEPER,
        &boot_child("boot_1", "sleeper", &[]),
    ]
    .concat();
    let mut d = Launch::new(&config)
        .in_dir(TestDir::world_searchable())
        .start();
    wait_healthy(&d, 1);
    let as_nobody = |args: &[&str]| {
        let mut cmd = cli_command(d.socket());
        cmd.args(args).uid(NOBODY).gid(NOBODY);
        run(&mut cmd, DEADLINE)
    };
    let out = as_nobody(&["health"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out), "healthy (1 checked)\n");
    let boot = d.lookup("boot_1");
    let out = as_nobody(&["restart", "--all", "--rolling"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("read-only"), "{}", stderr_of(&out));
    assert_eq!(d.lookup("boot_1"), boot);

    d.request_ok(&Request::Shutdown);
    d.wait_exit(DEADLINE);
    let out = health(&d, &[]);
    assert_exit(&out, 3);
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
}
