//! Readiness (`ready = "notify"`): `starting` until `READY=1`, `wait_ready`, the ready
//! timeout, and `STATUS=`.

use super::*;
use crate::core::spec::Readiness;

fn notifying(mut t: Template, timeout_ms: u64) -> Template {
    t.ready = Readiness::Notify;
    t.ready_timeout_ms = timeout_ms;
    t
}

#[test]
fn a_notify_worker_starts_then_is_ready_and_answers_its_waiters() {
    let mut h = Harness::new(3, 5, vec![notifying(transient("t"), 1000)]);
    assert_eq!(h.started(start("w")), 101);
    h.check(lookup("w"), "reply c1: ok name=w pid=101 state=starting")
        .check(from(conn(2), wait_ready("w")), "")
        .check(from(conn(3), wait_ready("w")), "");
    assert_eq!(h.deadline(), Some(1_000_000), "the ready timeout");
    h.at(200)
        .check(notify(101, false, Some("loading")), "")
        .check(
            notify(101, true, None),
            "event ready w pid=101
             reply c2: ok name=w pid=101 state=running
             reply c3: ok name=w pid=101 state=running",
        );
    assert_eq!(h.deadline(), None, "no timeout once ready");
    let row = h.row("w");
    assert!(row.ready);
    assert_eq!(row.status.as_deref(), Some("loading"));
    // Ready already: answered at once; a second READY=1 changes nothing.
    h.check(wait_ready("w"), "reply c1: ok name=w pid=101 state=running")
        .check(notify(101, true, None), "");
}

#[test]
fn a_worker_not_ready_in_time_is_killed_and_restarted_by_the_rule() {
    let mut h = Harness::new(3, 5, vec![notifying(transient("t"), 1000)]);
    h.started(start("w"));
    h.check(from(conn(2), wait_ready("w")), "")
        .at(999)
        .check(Input::Tick, "")
        .at(1000)
        .check(
            Input::Tick,
            "signal group 101 SIGKILL
             reply c2: error not_ready",
        )
        // Still `starting` until its exit is reaped; a waiter now waits for the next.
        .check(from(conn(3), wait_ready("w")), "")
        .check(
            exited(101, signaled(Signal::KILL)),
            "reaped #1
             event exited w pid=101 (signal SIGKILL)
             event restarting w delay=0
             spawn w #2 -> 102
             event started w pid=102
             reply c3: error not_ready",
        );
    assert_eq!(
        h.deadline(),
        Some(2_000_000),
        "the new process has its own timeout"
    );
}

#[test]
fn stopping_a_worker_before_it_is_ready_answers_its_waiters() {
    let mut h = Harness::new(3, 5, vec![notifying(transient("t"), 1000)]);
    h.started(start("w"));
    h.check(from(conn(2), wait_ready("w")), "").check(
        stop("w"),
        "reply c2: error not_ready
         signal group 101 SIGTERM",
    );
    assert_eq!(
        h.deadline(),
        Some(5_000_000),
        "only the stop's deadline is left"
    );
    h.check(wait_ready("w"), "reply c1: error not_ready")
        .check(notify(101, true, None), "");
    assert!(!h.row("w").ready, "a stopping worker is never ready");
}

#[test]
fn notifications_from_a_group_member_count_and_strangers_are_ignored() {
    let mut h = Harness::new(3, 5, vec![notifying(transient("t"), 1000)]);
    h.started(start("w"));
    h.check(
        Input::Notify {
            pid: 555,
            group: Some(101),
            note: Notification {
                ready: true,
                ..Notification::default()
            },
        },
        "event ready w pid=101",
    )
    .check(notify(777, true, Some("who?")), "");
}
