//! A worker's own restart limit: `on_limit = "give_up"` (failed) and `"escalate"`.

use super::*;

#[test]
fn give_up_marks_only_that_worker_failed() {
    // 1 restart in 5 s for the supervisor: the worker's two restarts would trip it if
    // they counted there.
    let mut h = Harness::new(
        1,
        5,
        vec![
            transient("t"),
            limited(permanent("g"), Some(2), 10, OnLimit::GiveUp),
        ],
    );
    assert_eq!(h.started(start_from("s", "t")), 101);
    assert_eq!(h.started(start_from("w", "g")), 102);
    h.at(1000)
        .check_restarted_at_once(102, code(1))
        .at(1100)
        .check_restarted_at_once(103, code(1))
        // The third restart within 10 s is over the limit of 2: given up.
        .at(1200)
        .check(
            exited(104, code(7)),
            "reaped #4
             event exited w pid=104 (exit 7)
             event failed w (exit 7)",
        );
    assert!(h.sup.intensity.is_empty(), "never counted supervisor-wide");
    assert_eq!(h.deadline(), None);
    assert!(!h.sup.is_shutting_down());
    h.check(lookup("w"), "reply c1: ok name=w state=failed")
        .check(lookup("s"), "reply c1: ok name=s pid=101 state=running")
        .check(kill("w"), "reply c1: error not_running")
        .check(
            count(),
            "reply c1: ok count=2 counts={total=2 active=1 backoff=0 failed=1 stopping=0}",
        );
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Failed);
    assert_eq!(row.pid, None);
    assert_eq!(row.next_try_ms, None);
    // Two restarts, plus the attempt that hit the limit.
    assert_eq!(row.restarts, 3);
    assert_eq!(
        row.last_exit,
        Some(LastExit {
            reason: "exit 7".to_string(),
            at_ms: WALL0 + 1200,
            exit: Some(ExitReport::Exited { code: 7 }),
        })
    );
    // The sibling is untouched and still restartable as usual.
    let s = h.row("s");
    assert_eq!((s.pid, s.restarts), (Some(101), 0));
    h.at(2000).check_restarted_at_once(101, code(1));
}

#[test]
fn restarts_in_window_never_exceeds_restarts() {
    // `WorkerInfo::restarts_in_window` is documented as "of those [restarts], how
    // many fall within the restart window"; a failed worker must not show more
    // restarts in its window than it had at all.
    let mut h = Harness::new(
        100,
        5,
        vec![limited(permanent("g"), Some(2), 10, OnLimit::GiveUp)],
    );
    h.started(start_from("w", "g"));
    for (i, at) in [100, 200, 300].into_iter().enumerate() {
        h.at(at).feed(exited(101 + i as i32, code(1)));
    }
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Failed);
    assert!(
        row.restarts_in_window <= row.restarts,
        "restarts={} restarts_in_window={}",
        row.restarts,
        row.restarts_in_window
    );
}

#[test]
fn give_up_with_infinite_limit_retries_forever_and_never_trips_the_supervisor() {
    // max_restarts 0: any restart counted supervisor-wide would escalate at once.
    let mut h = Harness::new(
        0,
        5,
        vec![limited(paced(permanent("g")), None, 10, OnLimit::GiveUp)],
    );
    let mut pid = h.started(start_from("w", "g"));
    let mut now = 0;
    for i in 0..50 {
        now += 5;
        h.at(now).feed(exited(pid, code(1)));
        let delay = [100, 200].get(i).copied().unwrap_or(400);
        assert_eq!(
            h.events().last(),
            Some(&Event::Restarting {
                name: "w".to_string(),
                delay_ms: delay
            }),
            "crash {i}"
        );
        now += delay;
        assert_eq!(h.deadline(), Some(now * 1000));
        h.at(now).feed(Input::Tick);
        pid = h.last_pid;
        assert_eq!(
            h.events(),
            [Event::Started {
                name: "w".to_string(),
                pid
            }]
        );
        assert!(!h.sup.is_shutting_down(), "crash {i}");
    }
    assert!(h.sup.intensity.is_empty());
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Running);
    assert_eq!(row.restarts, 50);
}

#[test]
fn escalate_with_its_own_limit_stops_everything_and_exits_1() {
    // The supervisor-wide intensity is generous; the worker's own limit (1 in 10 s) trips.
    let mut h = Harness::new(
        100,
        5,
        vec![
            transient("t"),
            limited(permanent("e"), Some(1), 10, OnLimit::Escalate),
        ],
    );
    h.started(start_from("s", "t")); // 101
    h.started(start_from("w", "e")); // 102
    h.at(1000).check_restarted_at_once(102, code(1));
    // Escalate also counts in the supervisor-wide window.
    assert_eq!(h.sup.intensity.len(), 1);
    h.at(2000)
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited w pid=103 (exit 1)
             save state
             event intensity_tripped w
             event shutdown
             signal group 101 SIGTERM",
        )
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1
             event stopped s (stopped)
             exit 1",
        );
    assert_eq!(h.sup.count(), 0);
}

#[test]
fn escalate_own_limit_counts_per_worker() {
    // Two workers of a 1-in-10 s template each crash once: within each one's own limit.
    let mut h = Harness::new(
        100,
        5,
        vec![limited(permanent("e"), Some(1), 10, OnLimit::Escalate)],
    );
    h.started(start_from("a", "e")); // 101
    h.started(start_from("b", "e")); // 102
    h.at(100).feed(exited(101, code(1)));
    h.at(200).feed(exited(102, code(1)));
    assert!(!h.sup.is_shutting_down());
    assert_eq!(h.sup.intensity.len(), 2);
    // Outside its own 10 s window, a's next crash is fine too.
    h.at(11_100).feed(exited(103, code(1)));
    assert!(!h.sup.is_shutting_down());
}
