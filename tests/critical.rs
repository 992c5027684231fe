//! Critical workers (`critical = true` on a template or a `[[children]]` entry): when
//! one ends for good or is given up on, the daemon stops the other workers in order and
//! exits with that worker's status — its exit code, or 128 + the signal — as a
//! container's entrypoint would. A critical worker that is restarted is not the end;
//! an `escalate` limit still exits 1; an operator `stop` does not shut the daemon down.
//!
//! Workers wait for a gate file the test creates (`sh` polls for it), so the test
//! decides when they end; their pids are checked through the socket and /proc.

mod common;
use common::*;
use std::path::Path;

/// The templates of this file; gate and marker files go in `dir`.
fn config(dir: &Path, children: &str) -> String {
    let dir = toml_str(dir.to_str().unwrap());
    let templates = format!(
        r#"
[templates.sleeper]
command = ["sleep", "100000"]
restart = "permanent"

[templates.gated_exit]
command = ["sh", "-c", "while [ ! -e \"$0/gate\" ]; do sleep 0.01; done; exit \"$1\"", {dir}]
restart = "temporary"

[templates.critical_sleep]
command = ["sleep", "100000"]
restart = "temporary"
critical = true

[templates.crash_once]
command = ["sh", "-c", "if [ -e \"$0/crashed\" ]; then while [ ! -e \"$0/gate\" ]; do sleep 0.01; done; exit 0; fi; : > \"$0/crashed\"; exit 3", {dir}]
restart = "transient"
critical = true

[templates.give_up]
command = ["sh", "-c", "exit 5"]
restart = "permanent"
critical = true
on_limit = "give_up"
max_restarts = 1
max_seconds = 60

[templates.escalate]
command = ["sh", "-c", "exit 5"]
restart = "permanent"
critical = true
on_limit = "escalate"
max_restarts = 1
max_seconds = 60
"#
    );
    [LENIENT_SUPERVISOR, &templates, children].concat()
}

/// Boot children `a` and `b` (sleepers), and `crit`, a critical `[[children]]` entry
/// (its template is not critical) that exits 7 once the gate opens.
const BOOT: &str = r#"
[[children]]
name = "a"
template = "sleeper"

[[children]]
name = "b"
template = "sleeper"

[[children]]
name = "crit"
template = "gated_exit"
args = ["7"]
critical = true
"#;

/// Two sleepers at boot, and nothing else.
const SLEEPERS: &str = r#"
[[children]]
name = "a"
template = "sleeper"

[[children]]
name = "b"
template = "sleeper"
"#;

fn daemon(children: &str) -> TestDaemon {
    let dir = std::rc::Rc::new(TestDir::new());
    Launch::new(&config(dir.path(), children))
        .in_dir(dir)
        .start()
}

fn open_gate(d: &TestDaemon) {
    std::fs::write(d.dir().join("gate"), "").expect("gate file");
}

/// The pids of the boot sleepers `a` and `b`.
#[track_caller]
fn sleepers(d: &TestDaemon) -> [i32; 2] {
    ["a", "b"].map(|name| {
        let pid = d
            .lookup(name)
            .unwrap_or_else(|| panic!("{name} is not running{}", d.log_tail()));
        assert!(is_alive(pid));
        pid
    })
}

#[track_caller]
fn assert_daemon_exit(d: &mut TestDaemon, code: i32) {
    let status = d.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(code),
        "daemon exit status {status:?}{}",
        d.log_tail()
    );
}

#[test]
fn a_critical_worker_exiting_7_stops_the_rest_and_the_daemon_exits_7() {
    let mut d = daemon(BOOT);
    let [a, b] = sleepers(&d);
    let crit = d.lookup("crit").expect("crit runs");
    let mut watch = Watcher::subscribe(&d, &[]);
    open_gate(&d);
    // In order: the shutdown, then each of the others stopped (not left to die with
    // the daemon).
    let (_, before) = watch.wait_for("the shutdown event", |e| *e == Event::Shutdown);
    assert!(
        before.iter().any(|e| is_exited(e, "crit")),
        "crit's exit before the shutdown: {before:?}"
    );
    let mut rest = watch.expect_end();
    rest.extend(before);
    for name in ["a", "b"] {
        assert!(
            rest.iter().any(|e| is_stopped(e, name)),
            "{name} was not stopped: {rest:?}{}",
            d.log_tail()
        );
    }
    assert_daemon_exit(&mut d, 7);
    for pid in [a, b, crit] {
        assert!(!is_alive(pid), "pid {pid} outlived the daemon");
    }
}

#[test]
fn a_critical_worker_killed_by_sigkill_makes_the_daemon_exit_137() {
    let mut d = daemon(SLEEPERS);
    let [a, b] = sleepers(&d);
    let crit = d.start_worker("crit", Some("critical_sleep"), &[]);
    send_signal(crit, Signal::SIGKILL);
    assert_daemon_exit(&mut d, 128 + 9);
    for pid in [a, b] {
        wait_until(DEADLINE, "the sleepers to be gone", || {
            (!is_alive(pid)).then_some(())
        });
    }
}

#[test]
fn a_critical_transient_that_crashes_is_restarted_and_its_clean_exit_ends_the_daemon() {
    let mut d = daemon(SLEEPERS);
    let [a, b] = sleepers(&d);
    let mut watch = Watcher::subscribe(&d, &["crit"]);
    let first = d.start_worker("crit", Some("crash_once"), &[]);
    // Exit 3 is abnormal: restarted, not the end.
    watch.wait_for("crit's restart", |e| is_restarting(e, "crit"));
    let second = d.wait_restarted("crit", first);
    assert!(
        !d.has_exited(),
        "the daemon ended on a restarted critical worker"
    );
    assert_eq!(d.lookup("a"), Some(a));
    let info = d.list_one("crit").expect("registered");
    assert!(info.critical, "{info:?}");
    assert_eq!(info.restarts, 1);
    // A clean exit of a transient worker is its end for good: the daemon's too.
    open_gate(&d);
    assert_daemon_exit(&mut d, 0);
    for pid in [a, b, second] {
        assert!(!is_alive(pid), "pid {pid} outlived the daemon");
    }
}

#[test]
fn a_critical_worker_given_up_on_ends_the_daemon_with_its_last_status() {
    let mut d = daemon(SLEEPERS);
    let [a, b] = sleepers(&d);
    let _ = d.request(&start_req("crit", Some("give_up"), &[]));
    assert_daemon_exit(&mut d, 5);
    for pid in [a, b] {
        assert!(!is_alive(pid), "pid {pid} outlived the daemon");
    }
    assert!(
        d.log().contains("crit"),
        "the log names the critical worker{}",
        d.log_tail()
    );
}

#[test]
fn an_escalating_critical_worker_still_makes_the_daemon_exit_1() {
    let mut d = daemon(SLEEPERS);
    let _ = d.request(&start_req("crit", Some("escalate"), &[]));
    assert_daemon_exit(&mut d, 1);
}

#[test]
fn an_operator_stop_of_a_critical_worker_does_not_end_the_daemon() {
    let mut d = daemon(SLEEPERS);
    let [a, _] = sleepers(&d);
    let crit = d.start_worker("crit", Some("critical_sleep"), &[]);
    let reply = d.request_ok(&stop_req("crit", None));
    assert!(reply.stopped.is_some(), "{reply:?}");
    d.assert_reaped(crit);
    // Still serving, the others untouched.
    assert_eq!(d.lookup("crit"), None);
    assert_eq!(d.lookup("a"), Some(a));
    assert!(!d.has_exited());
    d.signal(Signal::SIGTERM);
    assert_daemon_exit(&mut d, 0);
}
