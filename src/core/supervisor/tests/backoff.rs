//! Restart pacing: backoff delays as deadlines, their growth, cap and reset.

use super::*;

#[test]
fn backoff_delay_table() {
    let curve = |b: Backoff, n: u32| b.delay_ms(n);
    #[rustfmt::skip]
    let rows: &[(Backoff, &[(u32, u64)])] = &[
        // Doubling from 100, capped at 400.
        (PACED, &[(0, 100), (1, 200), (2, 400), (3, 400), (10, 400), (64, 400), (u32::MAX, 400)]),
        // The default: OTP restarts at once, whatever the count.
        (Backoff::default(), &[(0, 0), (1, 0), (30, 0), (u32::MAX, 0)]),
        // A fractional multiplier; the delay is truncated to whole milliseconds.
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 1.5, reset_after_ms: 1000, jitter: 0.0 },
            &[(0, 100), (1, 150), (2, 225), (3, 337), (4, 506), (5, 759), (6, 1000)],
        ),
        // A multiplier below 1 never shrinks the delay; 1 keeps it constant.
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 0.5, reset_after_ms: 1000, jitter: 0.0 },
            &[(0, 100), (1, 100), (9, 100)],
        ),
        (
            Backoff { initial_ms: 100, max_ms: 1000, multiplier: 1.0, reset_after_ms: 1000, jitter: 0.0 },
            &[(0, 100), (5, 100)],
        ),
        // max_ms below initial_ms caps even the first delay.
        (
            Backoff { initial_ms: 500, max_ms: 400, multiplier: 2.0, reset_after_ms: 1000, jitter: 0.0 },
            &[(0, 400), (1, 400)],
        ),
        // Huge values saturate at max_ms instead of overflowing.
        (
            Backoff { initial_ms: u64::MAX / 2, max_ms: u64::MAX, multiplier: 1e300, reset_after_ms: 0, jitter: 0.0 },
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
    let mut h = Harness::new(100, 5, vec![paced(permanent("p"))]);
    h.at(0).check(
        start_from("w", "p"),
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
    let mut h = Harness::new(100, 5, vec![paced(permanent("p"))]);
    h.started(start_from("w", "p"));
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
    let mut h = Harness::new(3, 5, vec![permanent("p")]);
    h.started(start_from("w", "p"));
    h.at(10).check_restarted_at_once(101, code(1));
    assert_eq!(h.deadline(), None);
    h.check(lookup("w"), "reply c1: ok name=w pid=102 state=running");
}

#[test]
fn retries_due_at_the_same_tick_all_spawn() {
    let mut h = Harness::commands_only(10, 5, vec![transient("t")]);
    h.started(start("b")); // 101
    h.started(start("a")); // 102
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

/// Jitter shortens a delay by less than its fraction, the same way every time for the
/// same name and restart, and differently across names: a herd is spread.
#[test]
fn jitter_spreads_a_herd_within_its_fraction() {
    let b = Backoff {
        initial_ms: 1000,
        max_ms: 1000,
        multiplier: 2.0,
        reset_after_ms: 1000,
        jitter: 0.5,
    };
    let delays: Vec<u64> = (0..1000)
        .map(|i| b.delay_ms_for(&format!("crash{i}"), 3))
        .collect();
    assert!(
        delays.iter().all(|&d| (500..=1000).contains(&d)),
        "{delays:?}"
    );
    assert_eq!(b.delay_ms_for("crash7", 3), delays[7], "deterministic");
    let distinct: std::collections::HashSet<u64> = delays.iter().copied().collect();
    assert!(
        distinct.len() > 300,
        "only {} distinct delays",
        distinct.len()
    );
    let none = Backoff { jitter: 0.0, ..b };
    assert_eq!(none.delay_ms_for("crash7", 3), 1000);
}
