//! Shutdown: a request or a signal stops everything, a second signal kills, and the daemon exits.

use super::*;

#[test]
fn shutdown_request_stops_everyone_and_replies_after_the_last_exit() {
    let mut h = Harness::commands_only(
        3,
        5,
        vec![
            shutdown_ms(transient("fast"), 1000),
            shutdown_ms(permanent("slow"), 3000),
        ],
    );
    h.started(start_from("a", "fast")); // 101
    h.started(start_from("b", "slow")); // 102
    h.started(start_from("c", "slow")); // 103
    h.at(100).check_unordered(
        shutdown(),
        "signal group 101 SIGTERM
         signal group 102 SIGTERM
         signal group 103 SIGTERM",
    );
    assert!(h.sup.is_shutting_down());
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1100));
    h.check(start("d"), "reply c1: error shutting_down")
        .check(lookup("b"), "reply c1: ok name=b pid=102 state=stopping")
        // A second shutdown request waits for the same end.
        .check(from(conn(2), shutdown()), "")
        // So does a stop of a worker the shutdown is stopping.
        .check(from(conn(3), stop("c")), "")
        .check(cast("c", "bye"), "cast #3 \"bye\" c1")
        .at(200)
        .check(exited(102, code(1)), "reaped #2")
        .at(1100)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check(exited(101, signaled(Signal::KILL)), "reaped #1")
        .at(1200)
        .check(
            exited(103, signaled(Signal::TERM)),
            "reaped #3
             reply c3: ok stopped={c pid=103 signal SIGTERM killed=false}
             reply c1: ok shutdown=[{a pid=101 signal SIGKILL killed=true} {b pid=102 exit 1 killed=false} {c pid=103 signal SIGTERM killed=false}]
             reply c2: ok shutdown=[{a pid=101 signal SIGKILL killed=true} {b pid=102 exit 1 killed=false} {c pid=103 signal SIGTERM killed=false}]
             exit 0",
        );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.specs.len(), 3);
}

#[test]
fn shutdown_with_no_workers_exits_at_once() {
    let mut h = Harness::simple();
    h.check(
        shutdown(),
        "reply c1: ok shutdown=[]
         exit 0",
    );
    let mut h = Harness::simple();
    h.check(
        Input::ShutdownSignal {
            signal: Signal::TERM,
        },
        "exit 0",
    );
}

#[test]
fn shutdown_signal_then_a_second_one_kills_every_stopping_worker() {
    let mut h = Harness::commands_only(3, 5, vec![shutdown_ms(transient("t"), 5000)]);
    h.started(start("a")); // 101
    h.started(start("b")); // 102
    h.started(start("c")); // 103
    h.at(10)
        .check(from(conn(9), stop("c")), "signal group 103 SIGTERM")
        .check_unordered(
            Input::ShutdownSignal {
                signal: Signal::TERM,
            },
            "signal group 101 SIGTERM
             signal group 102 SIGTERM",
        )
        .check(from(conn(2), shutdown()), "")
        .at(20)
        .check_unordered(
            Input::ShutdownSignal {
                signal: Signal::INT,
            },
            "signal group 101 SIGKILL
             signal group 102 SIGKILL
             signal group 103 SIGKILL",
        );
    // Every kill deadline is gone with the SIGKILL.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    // A worker that was already on its way out is reported as killed all the same.
    h.check(exited(101, code(0)), "reaped #1")
    .check(
        exited(103, signaled(Signal::KILL)),
        "reaped #3
         reply c9: ok stopped={c pid=103 signal SIGKILL killed=true}",
    )
    .check(
        exited(102, signaled(Signal::KILL)),
        "reaped #2
         reply c2: ok shutdown=[{a pid=101 exit 0 killed=true} {b pid=102 signal SIGKILL killed=true} {c pid=103 signal SIGKILL killed=true}]
         exit 0",
    );
}

#[test]
fn shutdown_drops_a_worker_waiting_to_be_restarted() {
    let mut h = Harness::simple();
    h.started(start("a")); // 101
    h.started(start("b")); // 102
    h.fail_next = 1;
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn a #3 -> failed",
    )
    .check(shutdown(), "signal group 102 SIGTERM");
    assert_eq!(h.sup.count(), 1);
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(5000));
    h.check(
        exited(102, code(0)),
        "reaped #2
         reply c1: ok shutdown=[{b pid=102 exit 0 killed=false}]
         exit 0",
    );
}

#[test]
fn a_shutdown_request_after_the_exit_is_still_answered() {
    // Once the core said `exit`, the daemon still reads requests while it flushes its
    // replies. Every request must get exactly one reply, or the connection's later
    // replies stay parked behind the missing one.
    let mut h = Harness::simple();
    h.check(
        shutdown(),
        "reply c1: ok shutdown=[]
         exit 0",
    );
    h.feed(from(conn(2), shutdown()));
    let replies: Vec<&Action> = h
        .last
        .iter()
        .filter(|a| matches!(a, Action::Reply { to, .. } if *to == conn(2)))
        .collect();
    assert_eq!(replies.len(), 1, "actions: {:?}", h.last);
    // Other requests are answered as usual.
    h.check(
        count(),
        "reply c1: ok count=0 counts={total=0 active=0 backoff=0 failed=0 stopping=0}",
    )
    .check(start("w"), "reply c1: error shutting_down");
}

/// A shutdown that begins while another spawn is in flight (two retries due at one
/// tick; the first one's failed exec trips the intensity) stops the second process as
/// soon as it comes up: nothing of a worker outlives the daemon.
#[test]
fn a_spawn_in_flight_when_the_shutdown_begins_is_stopped_once_it_is_up() {
    let mut h = Harness::new(2, 5, vec![paced(permanent("p"))]);
    h.started(start("a"));
    h.started(start("b"));
    h.at(10)
        .check(
            exited(101, code(1)),
            "reaped #1
             event exited a pid=101 (exit 1)
             event restarting a delay=100",
        )
        .check(
            exited(102, code(1)),
            "reaped #2
             event exited b pid=102 (exit 1)
             event restarting b delay=100",
        );
    h.fail_next = 1;
    let trace = h.at(110).feed(Input::Tick);
    // Which retry spawns first is the registry's order; the first fails and trips the
    // intensity (a third restart in 5 s, over 2), the second is up and stopped at once.
    let (first, second) = match trace[0].as_str() {
        "spawn a #3 -> failed" => ("a", "b"),
        _ => ("b", "a"),
    };
    assert_eq!(
        trace,
        lines(&format!(
            "spawn {first} #3 -> failed
             save state
             event intensity_tripped {first}
             event shutdown
             spawn {second} #4 -> 103
             event started {second} pid=103
             signal group 103 SIGTERM"
        )),
    );
    assert_eq!(h.sup.count(), 1);
    h.check(
        exited(103, signaled(Signal::TERM)),
        &format!(
            "reaped #4
             event stopped {second} (stopped)
             exit 1"
        ),
    );
}
