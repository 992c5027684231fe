//! Liveness: the watchdog (`WATCHDOG=1` in time, `WATCHDOG=trigger`, `WATCHDOG_USEC=`),
//! health checks, critical workers, and the `health` request.

use super::*;
use crate::core::spec::{HealthCheck, Readiness};

fn watched(mut t: Template, ms: u64) -> Template {
    t.watchdog_ms = Some(ms);
    t
}

fn checked(mut t: Template, interval_ms: u64, failures: u32) -> Template {
    t.health = Some(HealthCheck {
        command: vec!["/bin/check".to_string()],
        interval_ms,
        timeout_ms: 50,
        failures,
    });
    t
}

fn critical(mut t: Template) -> Template {
    t.critical = true;
    t
}

fn abrt() -> Signal {
    Signal::ABRT
}

#[test]
fn a_missed_watchdog_aborts_the_group_and_the_restart_rule_applies_as_abnormal() {
    // Transient: even a clean exit after SIGABRT is restarted.
    let t = shutdown_ms(watched(transient("t"), 1000), 300);
    let mut h = Harness::new(3, 5, vec![t]);
    h.started(start("w")); // 101
    assert_eq!(h.deadline(), Some(1_000_000));
    h.at(600).check(watchdog_ping(101), "");
    assert_eq!(h.deadline(), Some(1_600_000));
    h.at(1600)
        .check(Input::Tick, "signal group 101 SIGABRT")
        .at(1900)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check(
            exited(101, code(0)),
            "reaped #1
             event exited w pid=101 (watchdog)
             event restarting w delay=0
             spawn w #2 -> 102
             event started w pid=102",
        );
    let row = h.row("w");
    assert_eq!(
        row.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("watchdog")
    );
    assert_eq!(
        row.last_exit.and_then(|e| e.exit),
        Some(ExitReport::Exited { code: 0 })
    );
    assert_eq!(row.restarts, 1);
    // The new process has its own watchdog, from its start.
    assert_eq!(h.deadline(), Some(2_900_000));
}

#[test]
fn a_temporary_worker_killed_by_its_watchdog_is_not_restarted() {
    let mut h = Harness::commands_only(3, 5, vec![watched(temporary("t"), 100)]);
    h.started(start("w"));
    h.at(100)
        .check(Input::Tick, "signal group 101 SIGABRT")
        .check(exited(101, signaled(abrt())), "reaped #1");
    assert!(!h.sup.is_registered("w"));
}

#[test]
fn the_watchdog_starts_once_a_notify_worker_is_ready() {
    let mut t = watched(permanent("t"), 500);
    t.ready = Readiness::Notify;
    t.ready_timeout_ms = 10_000;
    let mut h = Harness::commands_only(3, 5, vec![t]);
    h.started(start("w"));
    assert_eq!(h.deadline(), Some(10_000_000));
    // Pings before READY=1 do not count; READY=1 starts the watchdog.
    h.at(2000).check(watchdog_ping(101), "");
    h.at(3000).check(notify(101, true, None), "");
    assert_eq!(h.deadline(), Some(3_500_000));
}

#[test]
fn watchdog_trigger_aborts_at_once_and_watchdog_usec_changes_the_interval() {
    let mut h = Harness::commands_only(3, 5, vec![watched(permanent("t"), 1000)]);
    h.started(start("w")); // 101
    h.at(100).check(
        note(
            101,
            Notification {
                watchdog_usec: Some(5_000_000),
                ..Notification::default()
            },
        ),
        "",
    );
    assert_eq!(h.deadline(), Some(5_100_000));
    h.check(
        note(
            101,
            Notification {
                watchdog_usec: Some(0),
                ..Notification::default()
            },
        ),
        "",
    );
    assert_eq!(h.deadline(), None);
    h.check(
        note(
            101,
            Notification {
                watchdog_trigger: true,
                ..Notification::default()
            },
        ),
        "signal group 101 SIGABRT",
    );
    assert_eq!(h.row("w").state, WorkerStateName::Stopping);
    // A stop takes the kill over: no restart.
    h.check(stop("w"), "").check(
        exited(101, signaled(abrt())),
        "reaped #1
         reply c1: ok stopped={w pid=101 signal SIGABRT killed=false}",
    );
}

#[test]
fn a_watchdog_from_a_group_member_counts() {
    let mut h = Harness::commands_only(3, 5, vec![watched(permanent("t"), 1000)]);
    h.started(start("w"));
    h.at(900).check(
        Input::Notify {
            pid: 555,
            group: Some(101),
            note: Notification {
                watchdog: true,
                ..Notification::default()
            },
        },
        "",
    );
    assert_eq!(h.deadline(), Some(1_900_000));
}

#[test]
fn failing_health_checks_kill_after_failures_in_a_row_and_a_pass_resets_them() {
    let t = shutdown_ms(checked(permanent("t"), 100, 2), 1000);
    let mut h = Harness::new(3, 5, vec![t]);
    h.started(start("w")); // 101, instance 1
    assert_eq!(h.deadline(), Some(100_000));
    h.at(100).check(Input::Tick, "probe w #1");
    // One at a time: no deadline while the check runs.
    assert_eq!(h.deadline(), None);
    h.at(150)
        .check(
            probe_done("w", 1, false, "exit 1: refused"),
            "event unhealthy w failures=1 (exit 1: refused)",
        )
        .at(250)
        .check(Input::Tick, "probe w #1")
        .check(probe_done("w", 1, true, "exit 0"), "event healthy w")
        .at(350)
        .check(Input::Tick, "probe w #1")
        .check(
            probe_done("w", 1, false, "timed out after 50 ms"),
            "event unhealthy w failures=1 (timed out after 50 ms)",
        );
    let row = h.row("w");
    let health = row.health.expect("a health result");
    assert!(!health.ok);
    assert_eq!(health.failures, 1);
    assert_eq!(health.message, "timed out after 50 ms");
    // A result for an instance that is gone is ignored.
    h.check(probe_done("w", 99, false, "stale"), "");
    h.at(450).check(Input::Tick, "probe w #1").check(
        probe_done("w", 1, false, "exit 1: refused"),
        "event unhealthy w failures=2 (exit 1: refused)
         signal group 101 SIGABRT",
    );
    h.check(
        exited(101, signaled(abrt())),
        "reaped #1
         event exited w pid=101 (health)
         event restarting w delay=0
         spawn w #2 -> 102
         event started w pid=102",
    );
    let row = h.row("w");
    assert_eq!(row.last_exit.map(|e| e.reason), Some("health".to_string()));
    assert_eq!(row.health, None, "a new process has no result yet");
}

#[test]
fn a_critical_worker_ending_for_good_ends_the_daemon_with_its_status() {
    let mut h = Harness::commands_only(3, 5, vec![critical(temporary("main")), permanent("side")]);
    h.started(start_from("side", "side")); // 101
    h.started(start_from("main", "main")); // 102
    h.check(
        exited(102, code(7)),
        "reaped #2
         signal group 101 SIGTERM",
    )
    .check(
        exited(101, code(0)),
        "reaped #1
         exit 7",
    );

    let mut h = Harness::commands_only(3, 5, vec![critical(temporary("main"))]);
    h.started(start("main"));
    h.check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         exit 137",
    );
}

#[test]
fn a_critical_worker_that_is_restarted_is_not_the_end_and_one_given_up_is() {
    let t = limited(critical(transient("main")), Some(1), 5, OnLimit::GiveUp);
    let mut h = Harness::commands_only(10, 5, vec![t]);
    h.started(start("main"));
    h.check(
        exited(101, code(3)),
        "reaped #1
         spawn main #2 -> 102",
    )
    .check(
        exited(102, code(4)),
        "reaped #2
         exit 4",
    );
    // A clean exit of a transient critical worker ends it for good.
    let mut h = Harness::commands_only(3, 5, vec![critical(transient("main"))]);
    h.started(start("main"));
    h.check(
        exited(101, code(0)),
        "reaped #1
         exit 0",
    );
    // An operator stop does not.
    let mut h = Harness::commands_only(3, 5, vec![critical(transient("main"))]);
    h.started(start("main"));
    h.check(stop("main"), "signal group 101 SIGTERM").check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         reply c1: ok stopped={main pid=101 signal SIGTERM killed=false}",
    );
    assert!(!h.sup.is_shutting_down());
}

#[test]
fn health_checks_the_boot_children_and_the_critical_workers_only() {
    let mut db = permanent("db");
    db.ready = Readiness::Notify;
    let mut h = Harness::commands_only(
        3,
        5,
        vec![db, permanent("plain"), critical(permanent("vip"))],
    );
    h.check(
        health(),
        "reply c1: ok health={healthy=false checked=0 problems=[boot: not complete yet]}",
    );
    h.check(
        boot_start(0, boot_child("db", "db", &[])),
        "spawn db #1 -> 101
         reply boot0: ok name=db pid=101",
    )
    .check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db"])),
        "",
    )
    .check(Input::BootFed, "");
    h.check(
        health(),
        "reply c1: ok health={healthy=false checked=2 problems=[db: starting; web: waiting for db]}",
    );
    h.check(
        notify(101, true, None),
        "spawn web #2 -> 102
         boot ready
         reply boot1: ok name=web pid=102",
    );
    // A dynamic worker that is not critical does not count; a critical one does.
    h.started(start_from("g", "plain")); // 103
    h.check(
        exited(103, code(1)),
        "reaped #3
         spawn g #4 -> 104",
    );
    h.check(
        health(),
        "reply c1: ok health={healthy=true checked=2 problems=[]}",
    );
    h.started(start_from("v", "vip")); // 105
    h.check(
        health(),
        "reply c1: ok health={healthy=true checked=3 problems=[]}",
    );
    h.check(
        kill("web"),
        "signal pid 102 SIGKILL
         reply c1: ok name=web pid=102 signal=SIGKILL",
    );
    h.fail_next = 1;
    h.check(
        exited(102, signaled(Signal::KILL)),
        "reaped #2
         spawn web #6 -> failed",
    );
    h.check(
        health(),
        "reply c1: ok health={healthy=false checked=3 problems=[web: restarting (last exit: spawn failed: No such file or directory (os error 2))]}",
    );
}
