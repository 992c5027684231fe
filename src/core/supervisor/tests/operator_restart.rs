//! `restart`: stop then start again with the current template; never counted as a crash.

use super::*;

#[test]
fn restart_stops_then_spawns_the_same_spec_and_counts_nothing() {
    // max_restarts 0: a counted restart would escalate at once.
    let mut h = Harness::new(0, 5, vec![transient("t")]);
    h.started(start_full("w", "t", &["a"], None)); // 101
    h.at(10)
        .check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=stopping")
        .at(20)
        .check_restarted_by_operator(101, signaled(Signal::TERM), Some("c2"));
    assert!(Rc::ptr_eq(&h.specs[0], &h.specs[1]), "the same spec");
    assert!(h.sup.intensity.is_empty());
    let row = h.row("w");
    assert_eq!(
        (row.pid, row.restarts, row.restarts_in_window),
        (Some(102), 0, 0)
    );
    assert_eq!(row.started_at_ms, WALL0 + 20);
    assert_eq!(row.last_exit.map(|e| e.reason), Some("stopped".to_string()));
    // Again: still nothing counted.
    h.at(30)
        .check(restart("w"), "signal group 102 SIGTERM")
        .check_restarted_by_operator(102, signaled(Signal::TERM), Some("c1"));
    assert!(!h.sup.is_shutting_down());
}

#[test]
fn restart_timeout_kills_the_group() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    h.check(restart_within("w", 200), "signal group 101 SIGTERM");
    assert_eq!(h.deadline(), Some(200_000));
    h.at(200)
        .check(Input::Tick, "signal group 101 SIGKILL")
        .check_restarted_by_operator(101, signaled(Signal::KILL), Some("c1"));
    assert_eq!(h.deadline(), None);
}

#[test]
fn restart_of_a_waiting_or_failed_worker_spawns_at_once() {
    let mut h = Harness::new(
        100,
        5,
        vec![
            paced(permanent("p")),
            limited(permanent("g"), Some(0), 10, OnLimit::GiveUp),
        ],
    );
    h.started(start_from("b", "p")); // 101
    h.started(start_from("f", "g")); // 102
    h.at(10).feed(exited(101, code(1)));
    h.feed(exited(102, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(lookup("f"), "reply c1: ok name=f state=failed")
        .check(
            restart("b"),
            "spawn b #3 -> 103
             event started b pid=103
             reply c1: ok name=b pid=103",
        )
        .check(
            restart("f"),
            "spawn f #4 -> 104
             event started f pid=104
             reply c1: ok name=f pid=104",
        );
    assert_eq!(h.deadline(), None, "the backoff deadline is cancelled");
    h.at(200).check(Input::Tick, "");
    // An operator restart starts the backoff curve afresh.
    h.at(220).check(
        exited(103, code(1)),
        "reaped #3
         event exited b pid=103 (exit 1)
         event restarting b delay=100",
    );
    h.check(lookup("f"), "reply c1: ok name=f pid=104 state=running");
}

#[test]
fn restart_errors() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.check(restart("nobody"), "reply c1: error not_found");
    h.started(start_from("w", "t"));
    h.check(from(conn(2), stop("w")), "signal group 101 SIGTERM")
        .check(restart("w"), "reply c1: error not_running");
}

#[test]
fn a_stop_during_a_restart_answers_both_requests() {
    // Every request gets exactly one reply: the connection's replies are sent in
    // order, so a request left unanswered blocks that connection for good.
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    // The stop wins; the restart's caller is told at once.
    h.check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(from(conn(3), stop("w")), "reply c2: error not_running");
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace.iter().any(|l| l.starts_with("reply c3: ok stopped=")),
        "{trace:#?}"
    );
    h.check(lookup("w"), "reply c1: error not_found");
}

#[test]
fn a_reload_during_a_restart_still_answers_the_restart() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.check(
        from(
            ReplyTo::Boot { index: 0 },
            start_full("c", "t", &["1"], None),
        ),
        "spawn c #1 -> 101
         event started c pid=101
         reply boot0: ok name=c pid=101",
    );
    h.check(from(conn(2), restart("c")), "signal group 101 SIGTERM")
        .check(
            reload(3, vec![transient("t")], vec![boot_child("c", "t", &["2"])]),
            "reply c1: ok reload={started=[] stopped=[] restarted=[c] unchanged=[] skipped=[]}",
        );
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert_eq!(
        h.specs.last().unwrap().argv.last().unwrap(),
        "2",
        "new spec"
    );
    assert!(
        trace.iter().any(|l| l.starts_with("reply c2:")),
        "the restart request (c2) is never answered:\n{}",
        trace.join("\n")
    );
}

#[test]
fn a_reload_removing_a_child_during_its_restart_still_answers_the_restart() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    boot(&mut h, 0, "c", "t", &[]);
    // Removed from the config: the restart's caller is told at once.
    h.check(from(conn(2), restart("c")), "signal group 101 SIGTERM")
        .check(
            reload(3, vec![transient("t")], vec![]),
            "reply c2: error not_running
             reply c1: ok reload={started=[] stopped=[c] restarted=[] unchanged=[] skipped=[]}",
        );
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace.contains(&"event stopped c (stopped)".to_string()),
        "{trace:#?}"
    );
    h.check(lookup("c"), "reply c1: error not_found");
}

#[test]
fn a_stop_in_progress_wins_over_a_reload_restart() {
    // `stop` says so for an operator restart ("a stop wins over a pending operator
    // restart"); a reload's restart of a changed child is one too. Whatever wins, the
    // stop's caller must not be told `stopped` while the name is registered again.
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    boot(&mut h, 0, "c", "t", &["1"]);
    h.check(from(conn(2), stop("c")), "signal group 101 SIGTERM");
    h.feed(reload(
        3,
        vec![transient("t")],
        vec![boot_child("c", "t", &["2"])],
    ));
    let trace = h.feed(exited(101, signaled(Signal::TERM)));
    assert!(
        trace
            .iter()
            .any(|l| l == "reply c2: ok stopped={c pid=101 signal SIGTERM killed=false}"),
        "{trace:#?}"
    );
    let trace = h.feed(lookup("c"));
    assert_eq!(
        trace,
        ["reply c1: error not_found"],
        "c2 was told `c` is stopped, yet it runs again"
    );
}

#[test]
fn a_restart_interrupted_by_shutdown_is_answered_shutting_down() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    h.check(from(conn(2), restart("w")), "signal group 101 SIGTERM")
        .check(shutdown(), "event shutdown")
        .check(from(conn(3), restart("w")), "reply c3: error shutting_down")
        .check(
            exited(101, signaled(Signal::TERM)),
            "reaped #1
             event stopped w (stopped)
             reply c2: error shutting_down
             reply c1: ok shutdown=[{w pid=101 signal SIGTERM killed=false}]
             exit 0",
        );
}

#[test]
fn a_restart_whose_spawn_fails_unregisters_the_worker() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t"));
    h.check(restart("w"), "signal group 101 SIGTERM");
    h.fail_next = 1;
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event exited w pid=101 (signal SIGTERM (stopped to be restarted))
         event restarting w delay=0
         spawn w #2 -> failed
         event stopped w (spawn failed: No such file or directory (os error 2))
         save state
         reply c1: error spawn_failed",
    )
    .check(lookup("w"), "reply c1: error not_found");
    assert!(h.sup.saved_workers().is_empty());
    assert!(h.sup.intensity.is_empty());
}
