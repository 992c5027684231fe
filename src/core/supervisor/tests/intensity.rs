//! The supervisor-wide restart intensity: OTP's max_restarts in max_seconds, what counts, and escalation.

use super::*;

#[test]
fn intensity_trips_on_the_fourth_restart_within_the_window() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    for name in ["a", "b", "c", "d"] {
        h.started(start(name)); // a=101 b=102 c=103 d=104
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
        .check(
            count(),
            "reply c1: ok count=3 counts={total=3 active=3 backoff=0 failed=0 stopping=3}",
        )
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
    let mut h = Harness::commands_only(3, 5, vec![permanent("p")]);
    h.started(start("w"));
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
        let mut h = Harness::commands_only(3, 5, vec![permanent("p")]);
        h.started(start("w"));
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
    let mut h = Harness::commands_only(0, 5, vec![transient("t")]);
    h.started(start("a"));
    h.started(start("b"));
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
    let mut h = Harness::commands_only(3, 5, vec![transient("t"), temporary("tmp")]);
    // Many clean transient exits and temporary crashes in the same second.
    for _ in 0..10 {
        let pid = h.started(start_from("w", "t"));
        h.check(exited(pid, code(0)), &format!("reaped #{}", pid - 100));
        let pid = h.started(start_from("x", "tmp"));
        h.check(exited(pid, code(1)), &format!("reaped #{}", pid - 100));
        let pid = h.started(start_from("y", "t"));
        h.check(
            exited(pid, signaled(Signal::TERM)),
            &format!("reaped #{}", pid - 100),
        );
    }
    assert!(h.sup.intensity.is_empty());
    // The budget is whole: three crashes are restarted, the fourth trips.
    let mut pid = h.started(start_from("w", "t"));
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
    let mut h = Harness::commands_only(1, 5, vec![permanent("p")]);
    h.started(start("w"));
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
    let mut h = Harness::commands_only(3, 5, vec![transient("t")]);
    h.started(start("w"));
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
        .check(
            count(),
            "reply c1: ok count=1 counts={total=1 active=0 backoff=1 failed=0 stopping=0}",
        )
        // The retry is due now: the next tick spawns again.
        .check(Input::Tick, "spawn w #3 -> 102")
        .check(lookup("w"), "reply c1: ok name=w pid=102 state=running");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    assert_eq!(h.sup.intensity.len(), 2);
}

#[test]
fn a_restart_that_can_never_spawn_exhausts_the_intensity() {
    let mut h = Harness::commands_only(3, 5, vec![transient("t")]);
    h.started(start("w"));
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
    let mut h = Harness::commands_only(2, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("a")); // 101
    h.started(start("b")); // 102
    h.started(start("c")); // 103
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
