//! `stop`: the stop signal to the worker's process group, SIGKILL after the timeout,
//! a reply once the worker is reaped, never a restart.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// The sample worker, and workers that ignore SIGTERM, stop on another signal, or
/// have a child in their process group.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SAMPLE_WORKER,
        STUBBORN_WORKER,
        r#"
[templates.very_stubborn]
command = ["dynsup-worker", "--ignore-sigterm"]
restart = "permanent"
shutdown_ms = 60000

[templates.usr1]
command = ["sleep", "100000"]
restart = "permanent"
stop_signal = "SIGUSR1"

[templates.group]
command = ["sh", "-c", "sleep 100000 & echo child=$!; wait"]
restart = "permanent"
"#,
    ]
    .concat()
}

/// The daemon keeps time in whole milliseconds, so a deadline may fire up to a
/// millisecond before the exact instant; the tests allow a little more.
const CLOCK_SLACK: Duration = Duration::from_millis(5);

#[track_caller]
fn stopped(reply: &Reply) -> &StopReport {
    assert!(reply.ok, "stop failed: {reply:?}");
    reply
        .stopped
        .as_ref()
        .unwrap_or_else(|| panic!("stop reply without `stopped`: {reply:?}"))
}

/// A worker that obeys SIGTERM: a clean exit, reported once it is reaped.
#[test]
fn stop_sends_sigterm_and_the_worker_is_not_restarted() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("w", Some("worker"), &[]);
    d.wait_started("w", 1);

    let reply = d.request(&stop_req("w", None));
    let report = stopped(&reply);
    assert_eq!(report.name, "w");
    assert_eq!(report.pid, Some(pid));
    assert_eq!(
        report.exit,
        Some(ExitReport::Exited { code: 0 }),
        "{reply:?}"
    );
    assert!(!report.killed);

    // The reply comes once the worker is reaped.
    d.assert_reaped(pid);
    assert_eq!(d.lookup("w"), None);
    assert_eq!(d.count(), 0);
    assert!(
        children_of(d.pid()).is_empty(),
        "{:?}",
        children_of(d.pid())
    );
    d.wait_worker_line("w", "Exiting worker: w with reason: shutdown", 1);
    assert_eq!(
        d.worker_lines("w", "Starting \"w\""),
        1,
        "restarted after stop"
    );
}

/// A worker that ignores SIGTERM: SIGKILLed once `shutdown_ms` has passed.
#[test]
fn a_worker_ignoring_sigterm_is_sigkilled_after_shutdown_ms() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("s", Some("stubborn"), &[]);
    d.wait_started("s", 1);

    let begin = Instant::now();
    let reply = d.request(&stop_req("s", None));
    let elapsed = begin.elapsed();
    let report = stopped(&reply);
    assert!(report.killed, "{reply:?}");
    assert_eq!(
        report.exit,
        Some(ExitReport::Signaled {
            signal: "SIGKILL".into(),
            core_dumped: false
        }),
        "{reply:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) - CLOCK_SLACK,
        "SIGKILLed after {elapsed:?}, before shutdown_ms = 300"
    );
    d.assert_reaped(pid);
    // It did receive the SIGTERM first.
    d.wait_worker_line("s", "ignoring SIGTERM", 1);
    // Permanent, but stopped by dynsup: not restarted.
    assert_eq!(d.lookup("s"), None);
    assert!(children_of(d.pid()).is_empty());
}

#[test]
fn stop_timeout_ms_overrides_shutdown_ms() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("s", Some("very_stubborn"), &[]);
    d.wait_started("s", 1);
    let begin = Instant::now();
    let reply = d.request(&stop_req("s", Some(100)));
    let elapsed = begin.elapsed();
    assert!(stopped(&reply).killed, "{reply:?}");
    assert!(
        elapsed < Duration::from_secs(30),
        "stop with timeout_ms = 100 took {elapsed:?} (shutdown_ms is 60 s)"
    );
    assert!(
        elapsed >= Duration::from_millis(100) - CLOCK_SLACK,
        "{elapsed:?}"
    );
    d.assert_reaped(pid);
}

#[test]
fn stop_uses_the_template_stop_signal_and_never_restarts_permanent_workers() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("u", Some("usr1"), &[]);
    let reply = d.request(&stop_req("u", None));
    let report = stopped(&reply);
    assert_eq!(
        report.exit,
        Some(ExitReport::Signaled {
            signal: "SIGUSR1".into(),
            core_dumped: false
        }),
        "{reply:?}"
    );
    assert!(!report.killed);
    d.assert_reaped(pid);
    assert_eq!(d.lookup("u"), None);
    assert_eq!(d.count(), 0);
}

#[test]
fn stop_signals_the_whole_process_group() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("g", Some("group"), &[]);
    d.wait_worker_line("g", "child=", 1);
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("[g] ") && l.contains("child="))
        .unwrap();
    let grandchild: i32 = line
        .rsplit("child=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let grandchild_stat = stat(grandchild).expect("the grandchild runs");
    assert_eq!(
        grandchild_stat.pgrp, pid,
        "the grandchild is in the worker's group"
    );

    let reply = d.request(&stop_req("g", Some(10_000)));
    let report = stopped(&reply);
    assert!(
        !report.killed,
        "SIGTERM should have ended the shell: {reply:?}"
    );
    d.assert_reaped(pid);
    d.wait_until(
        DEADLINE,
        "the grandchild to die of the group's SIGTERM",
        || is_gone(&grandchild_stat).then_some(()),
    );
}

#[test]
fn stop_of_an_unknown_worker_is_not_found() {
    let d = TestDaemon::start(&config());
    assert_error(&d.request(&stop_req("ghost", None)), ErrorKind::NotFound);
}

#[test]
fn stopped_name_can_be_started_again() {
    let d = TestDaemon::start(&config());
    let first = d.start_worker("w", Some("worker"), &[]);
    d.wait_started("w", 1);
    d.request_ok(&stop_req("w", None));
    let second = d.start_worker("w", Some("worker"), &[]);
    assert_ne!(first, second);
    assert_eq!(d.lookup("w"), Some(second));
    assert!(is_alive(second));
}

#[test]
fn concurrent_stops_do_not_delay_each_other() {
    // Two stubborn workers with a long shutdown_ms, stopped with short timeouts from
    // two connections at once, while a third connection is still served.
    let d = TestDaemon::start(&config());
    let a = d.start_worker("a", Some("very_stubborn"), &[]);
    let b = d.start_worker("b", Some("very_stubborn"), &[]);
    d.wait_started("a", 1);
    d.wait_started("b", 1);
    let mut ca = d.client();
    let mut cb = d.client();
    let begin = Instant::now();
    ca.send(&stop_req("a", Some(2_000)));
    cb.send(&stop_req("b", Some(2_000)));
    // While both stops wait for their timeouts, other requests are answered.
    assert_eq!(d.count(), 2);
    assert!(
        begin.elapsed() < Duration::from_millis(1_900),
        "count was delayed by the stops"
    );
    let ra = ca.recv();
    let rb = cb.recv();
    assert!(stopped(&ra).killed && stopped(&rb).killed, "{ra:?} {rb:?}");
    d.assert_reaped(a);
    d.assert_reaped(b);
}
