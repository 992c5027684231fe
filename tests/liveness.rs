//! Liveness: the sd_notify watchdog (`watchdog_ms`) and health checks (`health`), with
//! real workers, real keep-alives, real check processes and real signals.
//!
//! - A watchdog worker gets `WATCHDOG_USEC` and the daemon's `NOTIFY_SOCKET` (even with
//!   `ready = "exec"`), never `WATCHDOG_PID`; what systemd gave the daemon itself
//!   (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`) never reaches any worker.
//! - A worker that stops sending `WATCHDOG=1` is killed with SIGABRT and restarted: the
//!   new pid through `lookup` and /proc, `last_exit` (through `list --json`) and the
//!   `exited` event say `watchdog`. `WATCHDOG=trigger` kills at once.
//! - An unmodified shell script that uses the real `systemd-notify` (from the systemd
//!   package) for `--ready` and `WATCHDOG=1`, as root (which lets `systemd-notify` send
//!   in its parent's name) and as `nobody` (which sends in its own name: its process
//!   group is what makes it the worker's), stays alive for several periods.
//! - A failing health check restarts its worker after `failures` (`unhealthy` events
//!   1, 2, 3, then `exited` with reason `health`); a hanging one is killed at its
//!   timeout (its process gone) and counts as failed; a passing one keeps the worker,
//!   `list` shows it passing, and it runs with the worker's environment, user, cwd and
//!   umask; no check outlives the daemon.
//!
//! The sample worker sends `WATCHDOG=1` every half `WATCHDOG_USEC` once ready; its test
//! flags stop the keep-alives after N (`--stop-watchdog-after`) or send
//! `WATCHDOG=trigger` (`--watchdog-trigger-after`). Templates that are killed with
//! SIGABRT set `core = 0`, so no test leaves a core file behind.

mod common;
use common::*;
use std::path::Path;

/// The templates of this file; check files and pid files go in `dir`.
fn config(dir: &Path) -> String {
    let worker = toml_str(worker_bin().to_str().unwrap());
    let path = |name: &str| toml_str(dir.join(name).to_str().unwrap());
    let templates = format!(
        r#"
[templates.pinger]
command = ["sh", "-c", {first_run_only}, {pinger_mark}, {worker}, "--stop-watchdog-after", "3"]
restart = "permanent"
ready = "notify"
watchdog_ms = 400
rlimits = {{ core = 0 }}

[templates.plain]
command = ["sleep", "100000"]

[templates.exec_keepalive]
command = [{worker}]
restart = "permanent"
watchdog_ms = 2000
rlimits = {{ core = 0 }}

[templates.trigger]
command = ["sh", "-c", {first_run_only}, {trigger_mark}, {worker}, "--watchdog-ping-ms", "20", "--watchdog-trigger-after", "2"]
restart = "permanent"
watchdog_ms = 600000
rlimits = {{ core = 0 }}

[templates.shell]
command = ["sh", "-c", {script}]
restart = "permanent"
ready = "notify"
watchdog_ms = 1000
rlimits = {{ core = 0 }}

[templates.shell_nobody]
command = ["sh", "-c", {script}]
restart = "permanent"
ready = "notify"
watchdog_ms = 1000
user = "nobody"
rlimits = {{ core = 0 }}

[templates.failing]
command = ["sh", "-c", "if [ -e \"$0\" ]; then touch \"$0.healthy\"; fi; touch \"$0\"; exec sleep 100000", {failing_mark}]
restart = "permanent"
rlimits = {{ core = 0 }}
health = {{ command = ["sh", "-c", "[ -e \"$0.healthy\" ] && exit 0; echo not ok; exit 1", {failing_mark}], interval_ms = 100, timeout_ms = 10000, failures = 3 }}

[templates.hanging]
command = ["sleep", "100000"]
restart = "permanent"
health = {{ command = ["sh", "-c", "echo $$ >> \"$0\"; exec sleep 100000", {hanging_pids}], interval_ms = 100, timeout_ms = 200, failures = 100 }}

[templates.passing]
command = ["sleep", "100000"]
restart = "permanent"
user = "nobody"
cwd = {dir}
umask = "0027"
env = {{ FROM_TEMPLATE = "yes" }}
health = {{ command = ["sh", "-c", {report}, {report_file}], interval_ms = 100, timeout_ms = 10000, failures = 3 }}

[templates.slow_check]
command = ["sleep", "100000"]
restart = "permanent"
health = {{ command = ["sh", "-c", "echo $$ >> \"$0\"; exec sleep 100000", {slow_pids}], interval_ms = 50, timeout_ms = 600000, failures = 3 }}
"#,
        script = toml_str(SHELL_WORKER),
        first_run_only = toml_str(FIRST_RUN_ONLY),
        pinger_mark = path("pinger-ran"),
        trigger_mark = path("trigger-ran"),
        failing_mark = path("failing-ran"),
        hanging_pids = path("hanging-pids"),
        slow_pids = path("slow-pids"),
        dir = toml_str(dir.to_str().unwrap()),
        report = toml_str(REPORT),
        report_file = path("report"),
    );
    [LENIENT_SUPERVISOR, &templates].concat()
}

/// `sh -c FIRST_RUN_ONLY MARK WORKER FLAG...`: the worker with its misbehaving flags the
/// first time (MARK does not exist yet), without them once restarted — so the restarted
/// worker stays up for the test to look at. `exec`: the worker keeps the shell's pid.
const FIRST_RUN_ONLY: &str = r#"mark=$0; worker=$1; shift
if [ -e "$mark" ]; then exec "$worker"; fi
touch "$mark"; exec "$worker" "$@""#;

/// An unmodified sd_notify shell script: ready, then a keep-alive (with a count in
/// its status) every 50 ms, through the real `systemd-notify`.
const SHELL_WORKER: &str = r#"systemd-notify --ready --status="pings 0" || exit 90
i=0
while :; do
  i=$((i+1))
  systemd-notify WATCHDOG=1 "STATUS=pings $i"
  sleep 0.05
done"#;

/// A health check that writes what it runs with (write-then-rename) and passes.
const REPORT: &str = r#"echo "$DYNSUP_NAME $FROM_TEMPLATE $(id -u) $(pwd) $(umask) ${NOTIFY_SOCKET:-none} ${WATCHDOG_USEC:-none}" > "$0.tmp" && mv "$0.tmp" "$0""#;

/// Starts the daemon with this file's config in a directory `nobody` can write to.
fn daemon() -> TestDaemon {
    let dir = TestDir::owned_by_nobody();
    Launch::new(&config(dir.path())).in_dir(dir).start()
}

/// `systemd-notify` must be there: the tests use the real one.
fn require_systemd_notify() {
    let found = ["/usr/bin/systemd-notify", "/bin/systemd-notify"]
        .into_iter()
        .any(|p| Path::new(p).exists());
    assert!(
        found,
        "systemd-notify is missing: install the `systemd` package (.ci/run does)"
    );
}

/// The `exited` event's pid, reason and exit.
#[track_caller]
fn exited_of(ev: &Event) -> (i32, String, ExitReport) {
    match ev {
        Event::Exited {
            pid, reason, exit, ..
        } => (*pid, reason.clone(), exit.clone()),
        other => panic!("not an exited event: {other:?}"),
    }
}

#[track_caller]
fn assert_sigabrt(exit: &ExitReport) {
    assert!(
        matches!(exit, ExitReport::Signaled { signal, .. } if signal == "SIGABRT"),
        "expected a death by SIGABRT, got {exit:?}"
    );
}

/// `name`'s row of `list --json`, as the CLI prints it.
#[track_caller]
fn list_json_row(d: &TestDaemon, name: &str) -> serde_json::Value {
    let out = d.cli(&["list", "--json"]);
    assert_exit(&out, 0);
    let reply: serde_json::Value = serde_json::from_str(stdout_of(&out).trim())
        .unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {}", stdout_of(&out)));
    reply["workers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in list --json: {reply}"))
}

/// The value of `key` in a process's environment.
fn env_value(pid: i32, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    environ(pid)
        .into_iter()
        .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn a_worker_that_stops_its_keep_alives_is_aborted_and_restarted() {
    let d = daemon();
    let mut watch = Watcher::subscribe(&d, &["wd"]);
    let pid = d.start_worker("wd", Some("pinger"), &[]);
    // What systemd would give it: the interval, the socket, and no WATCHDOG_PID.
    assert_eq!(env_value(pid, "WATCHDOG_USEC").as_deref(), Some("400000"));
    assert!(env_value(pid, "NOTIFY_SOCKET").is_some_and(|s| s.starts_with('@')));
    assert_eq!(env_value(pid, "WATCHDOG_PID"), None);
    d.wait_worker_line("wd", "watchdog: sending WATCHDOG=1 every 200 ms", 1);

    let (exited, _) = watch.wait_for("wd's exit", |e| is_exited(e, "wd"));
    let (exited_pid, reason, exit) = exited_of(&exited.event);
    assert_eq!(exited_pid, pid);
    assert_eq!(reason, "watchdog", "{:?}{}", exited.event, d.log_tail());
    assert_sigabrt(&exit);
    // It had stopped its keep-alives; it did not die on its own.
    d.wait_worker_line("wd", "watchdog: stopped after 3 pings", 1);

    let new = d.wait_restarted("wd", pid);
    assert_ne!(new, pid);
    d.assert_reaped(pid);
    assert!(is_alive(new));
    watch.wait_for(
        "wd's restart",
        |e| matches!(e, Event::Started { name, pid } if name == "wd" && *pid == new),
    );

    let row = list_json_row(&d, "wd");
    assert_eq!(row["last_exit"]["reason"], "watchdog", "{row}");
    assert_eq!(row["last_exit"]["exit"]["status"], "signaled", "{row}");
    assert_eq!(row["last_exit"]["exit"]["signal"], "SIGABRT", "{row}");
}

#[test]
fn watchdog_trigger_kills_at_once() {
    let d = daemon();
    let mut watch = Watcher::subscribe(&d, &["tr"]);
    // Its interval is ten minutes: only the trigger can end it within the deadline.
    let pid = d.start_worker("tr", Some("trigger"), &[]);
    let (exited, _) = watch.wait_for("tr's exit", |e| is_exited(e, "tr"));
    let (exited_pid, reason, exit) = exited_of(&exited.event);
    assert_eq!((exited_pid, reason.as_str()), (pid, "watchdog"));
    assert_sigabrt(&exit);
    d.wait_worker_line("tr", "watchdog: sending WATCHDOG=trigger", 1);
    let new = d.wait_restarted("tr", pid);
    d.assert_reaped(pid);
    let info = d.list_one("tr").expect("tr is registered");
    let last = info.last_exit.expect("a last exit");
    assert_eq!(last.reason, "watchdog");
    assert_sigabrt(&last.exit.expect("how it ended"));
    assert!(is_alive(new));
}

#[test]
fn a_shell_script_using_systemd_notify_keeps_its_watchdog_happy() {
    require_systemd_notify();
    let d = daemon();
    let mut watch = Watcher::subscribe(&d, &["sh_root", "sh_nobody"]);
    let root = d.start_worker("sh_root", Some("shell"), &[]);
    let nobody = d.start_worker("sh_nobody", Some("shell_nobody"), &[]);
    // 60 keep-alives 50 ms apart: at least three watchdog periods of 1 s.
    let pings = |name: &str| -> u32 {
        d.list_one(name)
            .and_then(|w| w.status)
            .and_then(|s| s.strip_prefix("pings ")?.parse().ok())
            .unwrap_or(0)
    };
    d.wait_until(
        std::time::Duration::from_secs(60),
        "60 keep-alives from each script",
        || (pings("sh_root") >= 60 && pings("sh_nobody") >= 60).then_some(()),
    );
    for (name, pid) in [("sh_root", root), ("sh_nobody", nobody)] {
        assert_eq!(
            d.lookup(name),
            Some(pid),
            "{name} was restarted{}",
            d.log_tail()
        );
        assert!(is_alive(pid));
        let info = d.list_one(name).expect("registered");
        assert_eq!(info.state, WorkerStateName::Running, "{info:?}");
        assert!(info.ready, "{info:?}");
        assert_eq!(info.restarts, 0, "{info:?}");
    }
    // Nothing ended meanwhile.
    while let Some(t) = watch.try_next(std::time::Duration::ZERO) {
        assert!(
            !matches!(t.event, Event::Exited { .. }),
            "{:?}{}",
            t.event,
            d.log_tail()
        );
    }
}

#[test]
fn a_failing_health_check_restarts_the_worker_after_its_failures() {
    let d = daemon();
    let mut watch = Watcher::subscribe(&d, &["sick"]);
    let pid = d.start_worker("sick", Some("failing"), &[]);
    for n in 1..=3 {
        let (t, skipped) = watch.wait_for("an unhealthy event", |e| is_unhealthy(e, "sick"));
        assert!(
            !skipped.iter().any(|e| is_exited(e, "sick")),
            "exited before {n} failures: {skipped:?}"
        );
        let (failures, message) = unhealthy_of(&t.event);
        assert_eq!(failures, n);
        assert_eq!(message, "exit 1: not ok");
    }
    let (exited, _) = watch.wait_for("sick's exit", |e| is_exited(e, "sick"));
    let (exited_pid, reason, exit) = exited_of(&exited.event);
    assert_eq!((exited_pid, reason.as_str()), (pid, "health"));
    assert_sigabrt(&exit);
    let new = d.wait_restarted("sick", pid);
    d.assert_reaped(pid);
    let info = d.list_one("sick").expect("registered");
    assert_eq!(info.last_exit.expect("a last exit").reason, "health");
    assert!(is_alive(new));
}

#[test]
fn a_hanging_health_check_is_killed_at_its_timeout_and_counts_as_failed() {
    let d = daemon();
    let mut watch = Watcher::subscribe(&d, &["stuck"]);
    let pid = d.start_worker("stuck", Some("hanging"), &[]);
    let (t, _) = watch.wait_for("an unhealthy event", |e| is_unhealthy(e, "stuck"));
    assert_eq!(
        unhealthy_of(&t.event),
        (1, "timed out after 200 ms".to_string())
    );
    // The check that timed out is gone: killed, and reaped by the daemon.
    let pids_file = d.dir().join("hanging-pids");
    let first: i32 = std::fs::read_to_string(&pids_file)
        .expect("the check wrote its pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid");
    assert_ne!(first, pid);
    d.assert_reaped(first);
    // It was not counted as the worker's exit.
    assert_eq!(d.lookup("stuck"), Some(pid));
    let info = d.list_one("stuck").expect("registered");
    let health = info.health.expect("a health result");
    assert!(!health.ok);
    assert!(health.failures >= 1);
    assert_eq!(info.restarts, 0);
}

#[test]
fn a_passing_health_check_keeps_the_worker_and_runs_as_the_worker_would() {
    let d = daemon();
    let pid = d.start_worker("fine", Some("passing"), &[]);
    // Three results at least (each at its own time).
    let mut seen = std::collections::BTreeSet::new();
    d.wait_until(DEADLINE, "three passing health checks", || {
        let health = d.list_one("fine")?.health?;
        assert!(health.ok, "{health:?}{}", d.log_tail());
        assert_eq!((health.failures, health.message.as_str()), (0, "exit 0"));
        seen.insert(health.at_ms);
        (seen.len() >= 3).then_some(())
    });
    assert_eq!(d.lookup("fine"), Some(pid));
    assert_eq!(d.list_one("fine").expect("registered").restarts, 0);
    // The worker's environment (minus what only the worker may use), user, cwd, umask.
    let report = std::fs::read_to_string(d.dir().join("report")).expect("the check's report");
    let dir = d.dir();
    assert_eq!(
        report.trim(),
        format!("fine yes 65534 {} 0027 none none", dir.path().display())
    );
    let row = list_json_row(&d, "fine");
    assert_eq!(row["health"]["ok"], true, "{row}");
}

#[test]
fn no_health_check_outlives_the_daemon() {
    let mut d = daemon();
    d.start_worker("slow", Some("slow_check"), &[]);
    let pids_file = d.dir().join("slow-pids");
    let check = wait_pid_file(&pids_file);
    assert!(is_alive(check));
    assert_eq!(
        stat(check).expect("in /proc").ppid,
        d.pid(),
        "a child of the daemon"
    );
    assert_eq!(
        stat(check).expect("in /proc").pgrp,
        check,
        "its own process group"
    );
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", d.log_tail());
    wait_until(DEADLINE, "the health check to be gone", || {
        (!is_alive(check)).then_some(())
    });
}

#[test]
fn workers_get_their_own_watchdog_and_never_the_daemons() {
    // The daemon as systemd would start it with `WatchdogSec=`.
    let mut manager = NotifyListener::bind_abstract();
    let dir = TestDir::owned_by_nobody();
    let d = Launch::new(&config(dir.path()))
        .in_dir(dir)
        .env("NOTIFY_SOCKET", &manager.address)
        .env("WATCHDOG_USEC", "30000000")
        .env("WATCHDOG_PID", "1")
        .wait(WaitFor::Nothing)
        .start();
    manager.wait_for(DEADLINE, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    let mut d = d;
    d.wait_socket();

    let plain = d.start_worker("plain", Some("plain"), &[]);
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert_eq!(env_value(plain, key), None, "{key} reached a plain worker");
    }
    // `ready = "exec"` with a watchdog: its own interval and the daemon's socket.
    let keepalive = d.start_worker("keepalive", Some("exec_keepalive"), &[]);
    assert_eq!(
        env_value(keepalive, "WATCHDOG_USEC").as_deref(),
        Some("2000000")
    );
    assert_eq!(env_value(keepalive, "WATCHDOG_PID"), None);
    let socket = env_value(keepalive, "NOTIFY_SOCKET").expect("a NOTIFY_SOCKET");
    assert!(socket.starts_with('@'), "{socket}");
    assert_ne!(
        socket, manager.address,
        "the worker got the manager's socket"
    );
    // Its keep-alives went to the daemon, not to the manager (a negative check: what
    // arrives within a short window).
    d.wait_worker_line("keepalive", "watchdog: sending WATCHDOG=1 every 1000 ms", 1);
    manager.drain_for(std::time::Duration::from_millis(200));
    assert!(
        !manager.messages().iter().any(|m| m.contains("WATCHDOG=1")),
        "{:?}",
        manager.messages()
    );
    assert_eq!(d.lookup("keepalive"), Some(keepalive));
}
