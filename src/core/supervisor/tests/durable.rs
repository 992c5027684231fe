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
                env: Default::default(),
                failed: None,
                fenced: false,
            },
            SavedWorker {
                name: "zed".to_string(),
                template: "t".to_string(),
                args: vec!["z".to_string()],
                command: None,
                env: Default::default(),
                failed: None,
                fenced: false,
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

/// The worker that made the daemon escalate is recorded `failed` before the shutdown,
/// so a daemon started again restores it `failed` instead of starting it (and escalating
/// again); every other dynamic worker stays as it was.
#[test]
fn the_worker_that_escalates_is_saved_failed() {
    let mut h = Harness::new(0, 5, vec![permanent("p")]);
    h.started(start_from("calm", "p"));
    h.started(start_from("loop", "p"));
    h.at(10).check(
        exited(102, code(3)),
        "reaped #2
         event exited loop pid=102 (exit 3)
         save state
         event intensity_tripped loop
         event shutdown
         signal group 101 SIGTERM",
    );
    // The shutdown that follows changes nothing in the record.
    let saved = h.sup.saved_workers();
    let failed: Vec<(&str, Option<&str>)> = saved
        .iter()
        .map(|w| (w.name.as_str(), w.failed.as_deref()))
        .collect();
    assert_eq!(
        failed,
        [
            ("calm", None),
            (
                "loop",
                Some("it made the daemon escalate (last exit: exit 3)")
            )
        ]
    );
}

fn hold(name: &str, why: &str) -> Input {
    from(
        ReplyTo::Restore { index: 0 },
        request(Command::Hold {
            name: name.to_string(),
            template: "p".to_string(),
            args: vec!["a".to_string()],
            command: None,
            env: Default::default(),
            why: why.to_string(),
        }),
    )
}

#[test]
fn a_held_worker_is_restored_failed_and_restart_brings_it_back() {
    let mut h = Harness::new(3, 5, vec![permanent("p")]);
    h.check(
        hold("loop", "it made the daemon escalate (last exit: exit 3)"),
        "reply restore0: ok name=loop state=failed",
    );
    assert_eq!(h.specs.len(), 0, "not started");
    let row = h.row("loop");
    assert_eq!(row.state, WorkerStateName::Failed);
    assert!(row.dynamic);
    assert_eq!(
        row.last_exit.map(|e| e.reason),
        Some("it made the daemon escalate (last exit: exit 3)".to_string())
    );
    // Saved as it came: still failed, with the same why.
    assert_eq!(
        h.sup.saved_workers()[0].failed.as_deref(),
        Some("it made the daemon escalate (last exit: exit 3)")
    );
    h.at(10).check(
        restart("loop"),
        "spawn loop #1 -> 101
         event started loop pid=101
         reply c1: ok name=loop pid=101
         save state",
    );
    assert_eq!(h.sup.saved_workers()[0].failed, None);
    assert_eq!(h.specs[0].argv.last().map(String::as_str), Some("a"));
}

#[test]
fn a_held_worker_is_refused_like_any_start_when_its_name_or_template_is_bad() {
    let mut h = Harness::new(3, 5, vec![permanent("p")]);
    h.started(start_from("taken", "p"));
    h.check(
        hold("taken", "x"),
        "reply restore0: error already_started pid=101",
    );
    let input = from(
        ReplyTo::Restore { index: 1 },
        request(Command::Hold {
            name: "x".to_string(),
            template: "gone".to_string(),
            args: Vec::new(),
            command: None,
            env: Default::default(),
            why: "x".to_string(),
        }),
    );
    h.check(input, "reply restore1: error unknown_template");
}
