//! Restart pacing: per-template `backoff` delays that grow, are
//! capped and reset after a long enough run, the `backoff` state in `list`, `lookup`
//! and `count`, and "retry forever with capped backoff" in one template.
//!
//! Delays are timed from the `watch` stream, never by sleeping. The lower bounds are
//! exact: the test takes the time just before it SIGKILLs the worker, and the next
//! `started` event cannot be read before that time plus the delay. The upper bounds
//! allow a generous slack for a loaded two-core CI machine.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// How late a restart may come (after its delay) before the test calls it wrong.
const SLACK: Duration = Duration::from_millis(1500);

/// How much later than the worker's death the test may read its `exited` event, when
/// comparing the gap between `exited` and `started` as read from the stream (the
/// reader thread may be scheduled late for one and on time for the other).
const READ_JITTER: Duration = Duration::from_millis(50);

/// `flappy` (below) beside a sleeper.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SLEEPER,
        r#"
# Waits for a line on stdin; `slow` makes it run 1.7 s, then print `ready` and go on.
# Killed before that, it crashes quickly; killed after, it has run long enough to
# reset the backoff.
[templates.flappy]
command = ["sh", "-c", "read mode; sleep 1.7; echo ready; exec sleep 100000"]
restart = "transient"
backoff = { initial_ms = 200, max_ms = 800, multiplier = 2, reset_after_ms = 1500 }
"#,
    ]
    .concat()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Kills the current instance (`pid`) and follows the stream to the next start.
/// Returns the new pid after checking the delay announced and the delay observed.
#[track_caller]
fn kill_and_time_restart(w: &mut Watcher, pid: i32, expected_delay_ms: u64) -> i32 {
    let delay = Duration::from_millis(expected_delay_ms);
    let killed_at = Instant::now();
    send_signal(pid, Signal::SIGKILL);
    let exited = w.expect("exited w", |e| is_exited(e, "w"));
    assert!(
        matches!(&exited.event, Event::Exited { pid: p, .. } if *p == pid),
        "{:?}",
        exited.event
    );
    let restarting = w.expect("restarting w", |e| is_restarting(e, "w"));
    assert_eq!(
        restarting_delay(&restarting.event),
        expected_delay_ms,
        "the announced delay; events: {:?}",
        w.seen
    );
    let started = w.expect("started w", |e| is_started(e, "w"));
    let since_kill = started.at - killed_at;
    let gap = started.at.saturating_duration_since(exited.at);
    eprintln!(
        "delay {expected_delay_ms} ms: started {} ms after the kill, {} ms after `exited` was read",
        ms(since_kill),
        ms(gap)
    );
    assert!(
        since_kill >= delay,
        "restarted {} ms after the kill; the backoff is {expected_delay_ms} ms",
        ms(since_kill)
    );
    assert!(
        gap + READ_JITTER >= delay,
        "`started` came {} ms after `exited`; the backoff is {expected_delay_ms} ms",
        ms(gap)
    );
    assert!(
        gap < delay + SLACK && since_kill < delay + SLACK,
        "restarted {} ms after `exited` ({} ms after the kill); the backoff is {expected_delay_ms} ms",
        ms(gap),
        ms(since_kill)
    );
    started_pid(&started.event)
}

/// Backoff delays grow (×2), are capped (800 ms), and a run longer than
/// `reset_after_ms` brings the delay back to `initial_ms`.
#[test]
fn backoff_grows_is_capped_and_resets_after_a_long_run() {
    let d = TestDaemon::start(&config());
    let cpu_before = cpu_time(d.pid());
    let began = Instant::now();
    let mut w = Watcher::subscribe(&d, &["w"]);
    let first = d.start_worker("w", Some("flappy"), &[]);
    let mut pid = started_pid(&w.expect("started w", |e| is_started(e, "w")).event);
    assert_eq!(pid, first);

    for delay in [200, 400, 800, 800] {
        pid = kill_and_time_restart(&mut w, pid, delay);
    }
    let info = d.list_one("w").expect("w listed");
    assert_eq!(info.restarts, 4, "{info:?}");
    assert_eq!(info.pid, Some(pid), "{info:?}");
    assert_eq!(info.state, WorkerStateName::Running, "{info:?}");
    assert_eq!(
        info.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("signal SIGKILL"),
        "{info:?}"
    );

    // A long run: the worker itself waits 1.7 s (more than reset_after_ms) and says
    // `ready`; killed then, it gets the initial delay again, and the curve starts over.
    d.request_ok(&cast_req("w", "slow"));
    d.wait_worker_line("w", "ready", 1);
    pid = kill_and_time_restart(&mut w, pid, 200);
    kill_and_time_restart(&mut w, pid, 400);

    // No busy loop: the daemon slept through the waits (seconds of them).
    let cpu = cpu_time(d.pid()) - cpu_before;
    let elapsed = began.elapsed();
    eprintln!("daemon CPU {cpu:?} in {elapsed:?}");
    assert!(
        cpu < elapsed / 4,
        "the daemon used {cpu:?} of CPU in {elapsed:?} of mostly waiting"
    );
}

/// While waiting, the worker is `backoff` with the time of its next try; its name
/// stays registered without a pid; `stop` and `restart` act on it at once.
#[test]
fn a_worker_in_backoff_is_listed_with_its_next_try() {
    let crash = r#"
[templates.crash]
command = ["sh", "-c", "exit 3"]
restart = "permanent"
backoff = { initial_ms = 60000, max_ms = 600000 }
"#;
    let d = TestDaemon::start(&[crash, SLEEPER].concat());
    let sibling = d.start_worker("sibling", Some("sleeper"), &[]);
    let mut w = Watcher::subscribe(&d, &["c"]);
    let before = now_ms();
    let pid = d.start_worker("c", Some("crash"), &[]);
    w.expect("started c", |e| is_started(e, "c"));
    let ev = w.expect("exited c", |e| is_exited(e, "c")).event;
    assert!(
        matches!(&ev, Event::Exited { pid: p, reason, exit: ExitReport::Exited { code: 3 }, .. } if *p == pid && reason == "exit 3"),
        "{ev:?}"
    );
    let ev = w.expect("restarting c", |e| is_restarting(e, "c")).event;
    assert_eq!(restarting_delay(&ev), 60000);

    let info = d.list_one("c").expect("c is still listed");
    let after = now_ms();
    assert_eq!(info.state, WorkerStateName::Backoff, "{info:?}");
    assert_eq!(info.pid, None, "{info:?}");
    assert_eq!(info.started_at_ms, 0, "{info:?}");
    assert_eq!(info.restarts, 1, "{info:?}");
    let last = info.last_exit.as_ref().expect("last_exit");
    assert_eq!(last.reason, "exit 3");
    assert!(
        before <= last.at_ms && last.at_ms <= after,
        "last exit at {} not within [{before}, {after}]",
        last.at_ms
    );
    let next = info.next_try_ms.expect("next_try_ms while in backoff");
    assert!(
        next >= last.at_ms + 60000 && next <= after + 60000,
        "next try at {next}: the exit was at {}, now is {after}",
        last.at_ms
    );
    d.assert_reaped(pid);

    // The name stays registered: lookup answers with the state and no pid.
    let reply = d.request_ok(&lookup_req("c"));
    assert_eq!(reply.pid, None, "{reply:?}");
    assert_eq!(reply.state, Some(WorkerStateName::Backoff), "{reply:?}");
    assert_error(
        &d.request(&start_req("c", Some("crash"), &[])),
        ErrorKind::AlreadyStarted,
    );
    assert_error(&d.request(&kill_req("c", None)), ErrorKind::NotRunning);
    assert_error(&d.request(&cast_req("c", "x")), ErrorKind::NotRunning);
    let counts = d.counts();
    assert_eq!(
        (
            counts.total,
            counts.active,
            counts.backoff,
            counts.failed,
            counts.stopping
        ),
        (2, 1, 1, 0, 0),
        "{counts:?}"
    );

    // `restart` starts it now; the backoff curve starts afresh (the next delay is the
    // initial one, not 120 s), and an operator restart is not counted.
    let reply = d.request_ok(&restart_req("c", None));
    let again = reply.pid.expect("restart reply with a pid");
    assert_eq!(
        started_pid(&w.expect("started c", |e| is_started(e, "c")).event),
        again
    );
    w.expect("exited c", |e| is_exited(e, "c"));
    let ev = w.expect("restarting c", |e| is_restarting(e, "c")).event;
    assert_eq!(restarting_delay(&ev), 60000, "{:?}", w.seen);
    assert_eq!(d.list_one("c").unwrap().restarts, 2);

    // `stop` while in backoff cancels the restart and answers at once, without a pid.
    let reply = d.request_ok(&stop_req("c", None));
    let report = reply.stopped.expect("stopped report");
    assert_eq!(report.pid, None, "{report:?}");
    assert_eq!(report.exit, None, "{report:?}");
    assert!(is_stopped(&w.next().event, "c"), "{:?}", w.seen);
    assert_eq!(d.lookup("c"), None);
    assert_eq!(d.lookup("sibling"), Some(sibling));
}

/// "Retry forever with capped backoff" is one template: `max_restarts = "infinity"` and
/// `on_limit = "give_up"`. Its restarts never reach the supervisor-wide intensity,
/// here 0 (any counted restart would stop the daemon).
#[test]
fn retry_forever_with_capped_backoff_never_escalates() {
    let config = r#"
[supervisor]
max_restarts = 0
max_seconds = 60

[templates.forever]
command = ["sh", "-c", "exit 1"]
restart = "permanent"
backoff = { initial_ms = 10, max_ms = 40 }
max_restarts = "infinity"
on_limit = "give_up"
"#;
    let mut d = TestDaemon::start(&[config, SLEEPER].concat());
    let sibling = d.start_worker("sibling", Some("sleeper"), &[]);
    let mut w = Watcher::subscribe(&d, &["f"]);
    d.start_worker("f", Some("forever"), &[]);
    let mut delays = Vec::new();
    while delays.len() < 12 {
        let (t, _) = w.wait_for("restarting f", |e| is_restarting(e, "f"));
        delays.push(restarting_delay(&t.event));
    }
    assert_eq!(delays, [10, 20, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40]);
    assert!(!d.has_exited(), "the daemon exited{}", d.log_tail());
    assert_eq!(d.lookup("sibling"), Some(sibling));
    let info = d.list_one("f").expect("f listed");
    assert!(info.restarts >= 12, "{info:?}");
    assert_ne!(info.state, WorkerStateName::Failed, "{info:?}");
}
