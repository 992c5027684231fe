//! `stop`: the stop signal to the group, SIGKILL at the deadline, the reply once reaped, and workers with no process.

use super::*;

#[test]
fn stop_signals_the_group_and_replies_once_reaped() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(permanent("p"), 1000)]);
    h.started(start("w"));
    h.at(100)
        .check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=stopping");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    // Before the deadline a tick does nothing.
    h.at(1099).check(Input::Tick, "");
    // A permanent worker exiting 1 while stopped by dynsup: not restarted, not counted.
    h.check(
        exited(101, code(1)),
        "reaped #1
         reply c2: ok stopped={w pid=101 exit 1 killed=false}",
    )
    .check(lookup("w"), "reply c1: error not_found")
    .check(
        count(),
        "reply c1: ok count=0 counts={total=0 active=0 backoff=0 failed=0 stopping=0}",
    );
    assert!(h.sup.intensity.is_empty());
    assert_eq!(h.specs.len(), 1);
    // A tick at the old deadline finds nothing to kill.
    h.at(1100).check(Input::Tick, "");
}

#[test]
fn next_deadline_is_none_once_a_stop_completed() {
    // The stop's SIGKILL deadline belongs to a worker that is gone: the daemon should
    // be able to sleep until something happens, not wake up for nothing.
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("w"));
    h.at(100).check(stop("w"), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    h.at(200).check(
        exited(101, code(0)),
        "reaped #1
         reply c1: ok stopped={w pid=101 exit 0 killed=false}",
    );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(
        h.sup.next_deadline().map(|us| us / 1000),
        None,
        "stale stop deadline left behind"
    );
}

#[test]
fn stop_kills_the_group_at_the_deadline() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("w"));
    h.at(500)
        .check(stop("w"), "signal group 101 SIGTERM")
        .at(1499)
        .check(Input::Tick, "")
        .at(1500)
        .check(Input::Tick, "signal group 101 SIGKILL");
    // Killed once: no second SIGKILL, nothing more is due.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.at(5000).check(Input::Tick, "").check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         reply c1: ok stopped={w pid=101 signal SIGKILL killed=true}",
    );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.specs.len(), 1);

    // A late tick (the loop was busy) kills as well.
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("w"));
    h.check(stop("w"), "signal group 101 SIGTERM")
        .at(9000)
        .check(Input::Tick, "signal group 101 SIGKILL");
}

#[test]
fn a_second_stop_while_stopping_is_answered_too() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("w"));
    h.check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        // No second signal and no new deadline.
        .check(from(conn(3), stop_within("w", 10)), "");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.at(20).check(
        exited(101, code(0)),
        "reaped #1
         reply c2: ok stopped={w pid=101 exit 0 killed=false}
         reply c3: ok stopped={w pid=101 exit 0 killed=false}",
    );
}

#[test]
fn stop_timeout_overrides_the_template() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 5000)]);
    h.started(start("w"));
    h.at(1000)
        .check(stop_within("w", 10), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1010));
    h.at(1010).check(Input::Tick, "signal group 101 SIGKILL");

    // A zero timeout: SIGKILL at the first tick.
    let mut h = Harness::simple();
    h.started(start("w"));
    h.at(1000)
        .check(stop_within("w", 0), "signal group 101 SIGTERM");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.check(Input::Tick, "signal group 101 SIGKILL");
}

#[test]
fn stop_uses_the_template_stop_signal() {
    let mut t = transient("t");
    t.stop_signal = Signal::INT;
    let mut h = Harness::commands_only(3, 5, vec![t]);
    h.started(start("w"));
    h.check(stop("w"), "signal group 101 SIGINT").check(
        exited(101, signaled(Signal::INT)),
        "reaped #1
         reply c1: ok stopped={w pid=101 signal SIGINT killed=false}",
    );
}

#[test]
fn stop_of_an_unknown_name_is_not_found() {
    let mut h = Harness::simple();
    h.check(stop("w"), "reply c1: error not_found");
    h.started(start("w"));
    h.check(stop("v"), "reply c1: error not_found");
}

#[test]
fn stop_of_a_restarting_worker_removes_it_at_once() {
    let mut h = Harness::simple();
    h.started(start("w"));
    h.fail_next = 1;
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         spawn w #2 -> failed",
    );
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(10));
    h.check(stop("w"), "reply c1: ok stopped={w killed=false}");
    assert_eq!(h.sup.count(), 0);
    // The retry is cancelled.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.check(Input::Tick, "");
}

#[test]
fn stop_of_a_worker_in_backoff_removes_it_and_its_deadline() {
    let mut h = Harness::new(100, 5, vec![paced(permanent("p"))]);
    h.started(start_from("w", "p"));
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(
        stop("w"),
        "event stopped w (stopped)
         save state
         reply c1: ok stopped={w killed=false}",
    );
    assert_eq!(h.deadline(), None);
    h.at(200)
        .check(Input::Tick, "")
        .check(lookup("w"), "reply c1: error not_found");
}

#[test]
fn stop_of_a_failed_worker_removes_it() {
    let mut h = Harness::new(
        3,
        5,
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    );
    h.started(start_from("w", "g"));
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         event exited w pid=101 (exit 1)
         event failed w (exit 1)",
    );
    h.check(
        stop("w"),
        "event stopped w (stopped)
         save state
         reply c1: ok stopped={w killed=false}",
    )
    .check(lookup("w"), "reply c1: error not_found")
    .check(
        count(),
        "reply c1: ok count=0 counts={total=0 active=0 backoff=0 failed=0 stopping=0}",
    );
    assert!(h.sup.saved_workers().is_empty());
}
