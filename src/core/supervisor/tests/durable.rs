//! Durable dynamic workers: when the state file is written (`save state`), and when not.

use super::*;

#[test]
fn state_is_saved_before_the_reply_for_dynamic_workers_only() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    // A boot child is not recorded.
    h.check(
        from(
            ReplyTo::Boot { index: 0 },
            start_full("boot", "t", &["b"], None),
        ),
        "spawn boot #1 -> 101
         event started boot pid=101
         reply boot0: ok name=boot pid=101",
    );
    assert!(h.sup.saved_workers().is_empty());
    // Dynamic ones are, before the reply.
    h.check(
        start_full("zed", "t", &["z"], None),
        "spawn zed #2 -> 102
         event started zed pid=102
         save state
         reply c1: ok name=zed pid=102",
    )
    .check(
        start_full("alpha", "t", &[], Some(&["/bin/sleep", "9"])),
        "spawn alpha #3 -> 103
         event started alpha pid=103
         save state
         reply c1: ok name=alpha pid=103",
    );
    assert_eq!(
        h.sup.saved_workers(),
        [
            SavedWorker {
                name: "alpha".to_string(),
                template: "t".to_string(),
                args: Vec::new(),
                command: Some(vec!["/bin/sleep".to_string(), "9".to_string()]),
            },
            SavedWorker {
                name: "zed".to_string(),
                template: "t".to_string(),
                args: vec!["z".to_string()],
                command: None,
            },
        ]
    );
    // A crash restart changes nothing durable: no save.
    h.at(10).check_restarted_at_once(102, code(1));
    // A failed start changes nothing either.
    h.fail_next = 1;
    h.check(
        start_from("nope", "t"),
        "spawn nope #5 -> failed
         reply c1: error spawn_failed",
    );
    // Stopping a boot child: no save. Stopping a dynamic one: save, then reply.
    h.check(stop("boot"), "signal group 101 SIGTERM").check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped boot (stopped)
         reply c1: ok stopped={boot pid=101 signal SIGTERM killed=false}",
    );
    h.check(stop("alpha"), "signal group 103 SIGTERM").check(
        exited(103, signaled(Signal::TERM)),
        "reaped #3
         event stopped alpha (stopped)
         save state
         reply c1: ok stopped={alpha pid=103 signal SIGTERM killed=false}",
    );
    // A clean exit of a transient dynamic worker removes it: save.
    h.check(
        exited(104, code(0)),
        "reaped #4
         event exited zed pid=104 (exit 0)
         event stopped zed (exit 0; not restarted)
         save state",
    );
    assert!(h.sup.saved_workers().is_empty());
}

#[test]
fn shutdown_keeps_the_state_file_as_it_was() {
    let mut h = Harness::new(3, 5, vec![paced(transient("t"))]);
    h.started(start_from("a", "t")); // 101
    h.started(start_from("b", "t")); // 102
    h.at(10).feed(exited(102, code(1))); // b waits in backoff
    let trace = h.feed(shutdown());
    assert_eq!(
        trace,
        ["event shutdown", "signal group 101 SIGTERM"],
        "b is dropped without a save"
    );
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped a (stopped)
         reply c1: ok shutdown=[{a pid=101 signal SIGTERM killed=false}]
         exit 0",
    );
}
