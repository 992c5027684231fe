//! Reload: a new config applied as a difference.

use super::*;

#[test]
fn reload_applies_only_the_difference() {
    let mut h = Harness::new(3, 5, vec![transient("t"), permanent("u"), transient("old")]);
    assert_eq!(boot(&mut h, 0, "keep", "t", &["1"]), 101);
    assert_eq!(boot(&mut h, 1, "args", "t", &["1"]), 102);
    assert_eq!(boot(&mut h, 2, "tpl", "u", &[]), 103);
    assert_eq!(boot(&mut h, 3, "gone", "t", &[]), 104);
    assert_eq!(h.started(start_from("dyn", "u")), 105);
    assert_eq!(h.started(start_from("clash", "t")), 106);

    let mut u2 = permanent("u");
    u2.env = vec![("MODE".to_string(), "2".to_string())];
    h.at(1000).check(
        reload(
            3,
            vec![transient("t"), u2, transient("v")],
            vec![
                boot_child("keep", "t", &["1"]),
                boot_child("args", "t", &["2"]),
                boot_child("tpl", "u", &[]),
                boot_child("fresh", "t", &[]),
                boot_child("clash", "t", &[]),
            ],
        ),
        "signal group 102 SIGTERM
         signal group 103 SIGTERM
         spawn fresh #7 -> 107
         event started fresh pid=107
         reply reload: ok name=fresh pid=107
         signal group 104 SIGTERM
         reply c1: ok reload={started=[fresh] stopped=[gone] restarted=[args tpl] unchanged=[keep] skipped=[clash]}",
    );
    let report = h.reply_to(conn(1)).reload.unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].contains("dynamic"),
        "{:?}",
        report.skipped
    );

    // Changed children come back with their new spec; no save: they are not dynamic.
    h.at(1100)
        .check_restarted_by_operator(102, signaled(Signal::TERM), None)
        .check_restarted_by_operator(103, signaled(Signal::TERM), None)
        .check(
            exited(104, signaled(Signal::TERM)),
            "reaped #4
             event stopped gone (stopped)",
        );
    assert_eq!(h.specs[7].argv, ["/opt/bin/worker", "--flag", "2"]);
    assert_eq!(
        h.specs[8].template.env,
        [("MODE".to_string(), "2".to_string())]
    );
    assert!(
        h.sup.intensity.is_empty(),
        "reload restarts are not crashes"
    );

    // Unchanged and dynamic workers keep their pids; dynamic ones their old spec.
    h.check(
        list(),
        "reply c1: ok workers=[\
         {args pid=108 t transient running restarts=0 since=1700000001100} \
         {clash pid=106 t transient running restarts=0 since=1700000000000} \
         {dyn pid=105 u permanent running restarts=0 since=1700000000000} \
         {fresh pid=107 t transient running restarts=0 since=1700000001000} \
         {keep pid=101 t transient running restarts=0 since=1700000000000} \
         {tpl pid=109 u permanent running restarts=0 since=1700000001100}]",
    );
    let pids: Vec<(String, Option<i32>, bool)> = h
        .reply()
        .workers
        .unwrap()
        .into_iter()
        .map(|w| (w.name, w.pid, w.dynamic))
        .collect();
    assert_eq!(
        pids,
        [
            ("args".to_string(), Some(108), false),
            ("clash".to_string(), Some(106), true),
            ("dyn".to_string(), Some(105), true),
            ("fresh".to_string(), Some(107), false),
            ("keep".to_string(), Some(101), false),
            ("tpl".to_string(), Some(109), false),
        ]
    );
    assert!(h.entry("dyn").worker.spec.template.env.is_empty());
    assert_eq!(h.row("keep").restarts, 0);
    let saved: Vec<String> = h.sup.saved_workers().into_iter().map(|s| s.name).collect();
    assert_eq!(saved, ["clash", "dyn"]);

    // Templates are updated for future starts.
    h.check(
        start_from("x", "v"),
        "spawn x #10 -> 110
         event started x pid=110
         save state
         reply c1: ok name=x pid=110",
    )
    .check(start_from("y", "old"), "reply c1: error unknown_template");
    h.started(start_from("z", "u"));
    assert_eq!(
        h.specs.last().unwrap().template.env,
        [("MODE".to_string(), "2".to_string())]
    );
}

#[test]
fn reload_twice_with_the_same_config_touches_nothing() {
    let children = || vec![boot_child("a", "t", &["1"]), boot_child("b", "t", &[])];
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    boot(&mut h, 0, "a", "t", &["1"]);
    boot(&mut h, 1, "b", "t", &[]);
    for _ in 0..2 {
        h.check(
            reload(3, vec![transient("t")], children()),
            "reply c1: ok reload={started=[] stopped=[] restarted=[] unchanged=[a b] skipped=[]}",
        );
    }
}

#[test]
fn reload_removes_a_waiting_child_at_once_and_updates_limits() {
    let mut h = Harness::new(3, 5, vec![paced(permanent("p"))]);
    boot(&mut h, 0, "w", "p", &[]);
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.deadline(), Some(110_000));
    h.check(
        reload(0, vec![paced(permanent("p"))], vec![]),
        "event stopped w (removed from the config)
         reply c1: ok reload={started=[] stopped=[w] restarted=[] unchanged=[] skipped=[]}",
    );
    assert_eq!(h.deadline(), None);
    assert_eq!(h.sup.count(), 0);
    // The new limits apply: 0 restarts allowed now.
    h.started(start_from("d", "p"));
    h.at(20).check(
        exited(102, code(1)),
        "reaped #2
         event exited d pid=102 (exit 1)
         save state
         event intensity_tripped d
         event shutdown
         exit 1",
    );
}

#[test]
fn an_invalid_reload_changes_nothing() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    boot(&mut h, 0, "a", "t", &[]);
    h.started(start_from("d", "t"));
    h.check(
        Input::Reload {
            from: Some(conn(1)),
            config: Err("/etc/dynsup.toml:3:7: unknown field `restrat`".to_string()),
        },
        "reply c1: error invalid_config",
    );
    let message = h.reply().error.unwrap().message;
    assert!(message.contains("/etc/dynsup.toml:3:7"), "{message}");
    // SIGHUP (no requester): nothing at all.
    h.check(
        Input::Reload {
            from: None,
            config: Err("bad".to_string()),
        },
        "",
    );
    h.check(
        list(),
        "reply c1: ok workers=[\
         {a pid=101 t transient running restarts=0 since=1700000000000} \
         {d pid=102 t transient running restarts=0 since=1700000000000}]",
    )
    .check(lookup("a"), "reply c1: ok name=a pid=101 state=running")
    // The old templates are still in use.
    .check(
        start_from("e", "t"),
        "spawn e #3 -> 103
         event started e pid=103
         save state
         reply c1: ok name=e pid=103",
    );
}
