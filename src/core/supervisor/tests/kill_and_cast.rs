//! `kill` (a signal from outside: the restart rule applies) and `cast` (a line on stdin).

use super::*;

#[test]
fn kill_signals_the_pid_only() {
    let mut h = Harness::simple();
    h.started(start("w"));
    h.check(
        kill("w"),
        "signal pid 101 SIGKILL
         reply c1: ok name=w pid=101 signal=SIGKILL",
    )
    .check(
        kill_with("w", "term"),
        "signal pid 101 SIGTERM
         reply c1: ok name=w pid=101 signal=SIGTERM",
    )
    .check(
        kill_with("w", "11"),
        "signal pid 101 SIGSEGV
         reply c1: ok name=w pid=101 signal=SIGSEGV",
    )
    .check(kill_with("w", "SIGNOPE"), "reply c1: error invalid_signal")
    .check(kill_with("w", "0"), "reply c1: error invalid_signal")
    .check(kill("nobody"), "reply c1: error not_found")
    // The kill is "from outside": the restart rule applies to the exit.
    .check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         spawn w #2 -> 102",
    );
}

#[test]
fn kill_and_cast_of_a_restarting_worker_are_not_running() {
    let mut h = Harness::simple();
    h.started(start("w"));
    h.fail_next = 1;
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn w #2 -> failed",
    )
    .check(lookup("w"), "reply c1: ok name=w state=restarting")
    .check(kill("w"), "reply c1: error not_running")
    .check(cast("w", "work"), "reply c1: error not_running")
    .check(start("w"), "reply c1: error already_started");
}

#[test]
fn cast_queues_for_a_live_worker() {
    let mut h = Harness::simple();
    h.started(start("w"));
    h.check(cast("w", "work"), "cast #1 \"work\" c1")
        .check(cast("w", "a\nb"), "reply c1: error bad_request")
        .check(cast("nobody", "work"), "reply c1: error not_found")
        .check(
            exited(101, code(1)),
            "reaped #1
             spawn w #2 -> 102",
        )
        // The new instance gets the next message.
        .check(from(conn(7), cast("w", "")), "cast #2 \"\" c7");
}
