//! A worker is gone only when its whole process group (or cgroup) is gone: what is left
//! after its main process ended gets the stop signal, then SIGKILL, before the restart
//! rule is applied or the stop is answered.

use super::*;

#[test]
fn a_crash_with_leftovers_restarts_only_once_they_are_gone() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 1000)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.at(10).check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1 -> leftovers
         signal leftovers #1 SIGTERM",
    );
    // No pid, state `draining`, and the kill deadline is the template's shutdown_ms.
    h.check(lookup("w"), "reply c1: ok name=w state=draining");
    assert_eq!(h.deadline(), Some(1_010_000));
    assert!(h.sup.intensity.is_empty(), "nothing decided yet");
    h.at(200).check(
        Input::LeftoversGone { instance: 1 },
        "event exited w pid=101 (signal SIGKILL)
         event restarting w delay=0
         spawn w #2 -> 102
         event started w pid=102",
    );
    assert_eq!(h.deadline(), None);
    assert_eq!(h.sup.intensity.len(), 1);
}

#[test]
fn leftovers_that_ignore_the_stop_signal_get_sigkill_then_the_worker_moves_on() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 1000)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.at(10)
        .check(
            exited(101, code(1)),
            "reaped #1 -> leftovers
             signal leftovers #1 SIGTERM",
        )
        .at(1009)
        .check(Input::Tick, "")
        .at(1010)
        .check(Input::Tick, "signal leftovers #1 SIGKILL");
    assert_eq!(
        h.deadline(),
        Some(2_010_000),
        "one second for SIGKILL to work"
    );
    // Normally they are gone at once; here one is stuck: the worker moves on anyway.
    h.at(2010).check(
        Input::Tick,
        "event exited w pid=101 (exit 1)
         event restarting w delay=0
         spawn w #2 -> 102
         event started w pid=102",
    );
    // A late word about the old instance changes nothing.
    h.check(Input::LeftoversGone { instance: 1 }, "");
}

#[test]
fn a_stop_is_answered_once_the_whole_group_is_gone() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 1000)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.check(stop("w"), "signal group 101 SIGTERM")
        .at(100)
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1 -> leftovers
             signal leftovers #1 SIGTERM",
        )
        // Still registered, and its kill deadline is the stop's own.
        .check(lookup("w"), "reply c1: ok name=w state=draining");
    assert_eq!(h.deadline(), Some(1_000_000));
    h.at(1000)
        .check(Input::Tick, "signal leftovers #1 SIGKILL")
        .at(1005)
        .check(
            Input::LeftoversGone { instance: 1 },
            "event stopped w (stopped)
             save state
             reply c1: ok stopped={w pid=101 signal SIGTERM killed=false}",
        )
        .check(lookup("w"), "reply c1: error not_found");
}

#[test]
fn a_stop_of_a_worker_killed_by_its_timeout_kills_its_leftovers_at_once() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(transient("t"), 100)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.check(stop("w"), "signal group 101 SIGTERM")
        .at(100)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check(
            exited(101, signaled(Signal::KILL)),
            "reaped #1 -> leftovers
             signal leftovers #1 SIGKILL",
        )
        .check(
            Input::LeftoversGone { instance: 1 },
            "event stopped w (killed after its stop timeout)
             save state
             reply c1: ok stopped={w pid=101 signal SIGKILL killed=true}",
        );
}

#[test]
fn a_stop_while_a_crash_drains_turns_the_restart_into_a_stop() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 1000)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.at(10)
        .check(
            exited(101, code(1)),
            "reaped #1 -> leftovers
             signal leftovers #1 SIGTERM",
        )
        .check(from(conn(2), stop("w")), "")
        .check(
            Input::LeftoversGone { instance: 1 },
            "event stopped w (stopped)
             save state
             reply c2: ok stopped={w pid=101 exit 1 killed=false}",
        );
    assert!(h.sup.intensity.is_empty(), "a stop is not a crash");
    assert_eq!(h.sup.count(), 0);
}

#[test]
fn the_shutdown_waits_for_every_group_and_a_second_signal_kills_leftovers() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 5000)]);
    h.started(start("w"));
    h.leftovers.push(101);
    h.check(
        shutdown(),
        "event shutdown
         signal group 101 SIGTERM",
    )
    .check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1 -> leftovers
         signal leftovers #1 SIGTERM",
    )
    .check(
        Input::ShutdownSignal {
            signal: Signal::INT,
        },
        "signal leftovers #1 SIGKILL",
    )
    .check(
        Input::LeftoversGone { instance: 1 },
        "event stopped w (stopped)
         reply c1: ok shutdown=[{w pid=101 signal SIGTERM killed=false}]
         exit 0",
    );
}

#[test]
fn a_spawn_short_of_resources_is_retried_later_and_never_counted() {
    // Intensity 0: any counted restart would trip it.
    let mut h = Harness::new(0, 5, vec![permanent("p")]);
    h.started(start("w"));
    h.short_next = 2;
    h.at(10)
        .check(from(conn(2), restart("w")), "signal group 101 SIGTERM");
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event exited w pid=101 (signal SIGTERM (stopped to be restarted))
         event restarting w delay=0
         spawn w #2 -> failed (shortage)
         reply c2: error spawn_failed
         event restarting w delay=100",
    )
    .check(lookup("w"), "reply c1: ok name=w state=backoff");
    assert_eq!(h.deadline(), Some(110_000));
    h.at(110).check(
        Input::Tick,
        "spawn w #3 -> failed (shortage)
         event restarting w delay=200",
    );
    h.at(310).check(
        Input::Tick,
        "spawn w #4 -> 102
         event started w pid=102",
    );
    assert!(h.sup.intensity.is_empty());
    assert!(!h.sup.is_shutting_down());
    let row = h.row("w");
    assert_eq!((row.restarts, row.pid), (0, Some(102)));
}
