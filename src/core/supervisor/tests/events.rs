//! `watch` events: what a subscriber sees, and in what order.

use super::*;

#[test]
fn events_of_a_crash_and_a_stop_in_order() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    assert_eq!(
        h.events(),
        [Event::Started {
            name: "w".to_string(),
            pid: 101
        }]
    );
    h.at(10).feed(exited(101, signaled(Signal::KILL)));
    assert_eq!(
        h.events(),
        [
            Event::Exited {
                name: "w".to_string(),
                pid: 101,
                reason: "signal SIGKILL".to_string(),
                exit: ExitReport::Signaled {
                    signal: "SIGKILL".to_string(),
                    core_dumped: false
                },
            },
            Event::Restarting {
                name: "w".to_string(),
                delay_ms: 0
            },
            Event::Started {
                name: "w".to_string(),
                pid: 102
            },
        ]
    );
    h.feed(stop("w"));
    assert!(h.events().is_empty(), "nothing until it is reaped");
    h.feed(exited(102, signaled(Signal::TERM)));
    assert_eq!(
        h.events(),
        [Event::Stopped {
            name: "w".to_string(),
            reason: "stopped".to_string()
        }]
    );
}

#[test]
fn a_stop_that_needs_sigkill_says_so() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    h.check(
        request(Command::Stop {
            name: "w".to_string(),
            timeout_ms: Some(100),
        }),
        "signal group 101 SIGTERM",
    )
    .at(100)
    .check(Input::Tick, "signal group 101 SIGKILL")
    .check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         event stopped w (killed after its stop timeout)
         save state
         reply c1: ok stopped={w pid=101 signal SIGKILL killed=true}",
    );
}

#[test]
fn shutdown_emits_shutdown_first_and_saves_no_state() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("a", "t")); // 101
    h.started(start_from("b", "t")); // 102
    let trace = h.feed(shutdown());
    assert_eq!(trace[0], "event shutdown");
    let mut signals = trace[1..].to_vec();
    signals.sort();
    assert_eq!(
        signals,
        ["signal group 101 SIGTERM", "signal group 102 SIGTERM"]
    );
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped a (stopped)",
    )
    .check(
        exited(102, code(0)),
        "reaped #2
         event stopped b (stopped)
         reply c1: ok shutdown=[{a pid=101 signal SIGTERM killed=false} {b pid=102 exit 0 killed=false}]
         exit 0",
    );
}

#[test]
fn the_supervisor_intensity_trips_with_an_event() {
    let mut h = Harness::new(0, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    h.at(10).check(
        exited(101, code(1)),
        "reaped #1
         event exited w pid=101 (exit 1)
         save state
         event intensity_tripped w
         event shutdown
         exit 1",
    );
}
