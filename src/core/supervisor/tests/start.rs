//! `start`: registration, the checks before a spawn (name, template, `max_children`), the command line, and a failed exec.

use super::*;

#[test]
fn start_registers_the_pid_and_lookup_count_list_see_it() {
    let mut h = Harness::simple();
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    h.at(1000)
        .check(
            start("worker_1"),
            "spawn worker_1 #1 -> 101
             reply c1: ok name=worker_1 pid=101",
        )
        .check(
            lookup("worker_1"),
            "reply c1: ok name=worker_1 pid=101 state=running",
        )
        .check(
            count(),
            "reply c1: ok count=1 counts={total=1 active=1 backoff=0 failed=0 stopping=0}",
        )
        .at(2000)
        .check(
            start("worker_0"),
            "spawn worker_0 #2 -> 102
             reply c1: ok name=worker_0 pid=102",
        )
        .check(
            count(),
            "reply c1: ok count=2 counts={total=2 active=2 backoff=0 failed=0 stopping=0}",
        )
        .check(
            list(),
            &format!(
                "reply c1: ok workers=[\
                 {{worker_0 pid=102 t transient running restarts=0 since={}}} \
                 {{worker_1 pid=101 t transient running restarts=0 since={}}}]",
                WALL0 + 2000,
                WALL0 + 1000
            ),
        )
        .check(lookup("nobody"), "reply c1: error not_found");
    assert_eq!(h.sup.count(), 2);
    // Nothing is due: the daemon may sleep until something happens.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
}

#[test]
fn second_start_of_a_live_name_is_already_started_with_its_pid() {
    let mut h = Harness::simple();
    h.check(
        start("w"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    )
    // No spawn: the error carries the live pid (OTP's {:error, {:already_started, pid}}).
    .check(start("w"), "reply c1: error already_started pid=101");
    let reply = h.reply();
    assert_eq!(reply.error.as_ref().and_then(|e| e.pid), Some(101));
    assert!(reply.error.unwrap().message.contains("101"));
    assert_eq!(h.sup.count(), 1);
    assert_eq!(h.specs.len(), 1);
}

#[test]
fn start_errors() {
    let several = || Harness::commands_only(3, 5, vec![transient("a"), permanent("b")]);

    #[rustfmt::skip]
    let cases: Vec<(Harness, Input, &str)> = vec![
        (Harness::simple(), start(""), "invalid_name"),
        (Harness::simple(), start("a b"), "invalid_name"),
        (Harness::simple(), start("a/b"), "invalid_name"),
        (Harness::simple(), start(&"x".repeat(129)), "invalid_name"),
        (Harness::simple(), start_from("w", "nope"), "unknown_template"),
        (several(), start("w"), "unknown_template"),
        (several(), start_from("w", "nope"), "unknown_template"),
        (Harness::commands_only(3, 5, vec![]), start("w"), "unknown_template"),
        (
            Harness::simple(),
            request(Command::Start {
                name: "w".into(), template: None, args: vec!["x".into()], command: Some(vec![]),
                env: Default::default(),
                fenced: false,
            }),
            "bad_request",
        ),
        (
            Harness::simple(),
            request(Command::Start {
                name: "w".into(), template: None, args: vec![], command: Some(vec![String::new()]),
                env: Default::default(),
                fenced: false,
            }),
            "bad_request",
        ),
    ];
    for (mut h, input, kind) in cases {
        let what = format!("{input:?}");
        let trace = h.feed(input);
        assert_eq!(trace, [format!("reply c1: error {kind}")], "{what}");
        assert_eq!(h.sup.count(), 0, "{what}");
        assert!(h.specs.is_empty(), "{what}");
    }

    // With several templates the message names them, so the user can pick one.
    let mut h = several();
    h.feed(start("w"));
    let message = h.reply().error.unwrap().message;
    assert!(message.contains('a') && message.contains('b'), "{message}");
}

#[test]
fn the_only_template_is_used_when_none_is_named() {
    let mut h = Harness::commands_only(3, 5, vec![permanent("only")]);
    h.check(
        start("w"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    );
    assert_eq!(h.specs[0].template.name, "only");

    // With several, a named template is used.
    let mut h = Harness::commands_only(3, 5, vec![transient("a"), permanent("b")]);
    h.check(
        start_from("w", "b"),
        "spawn w #1 -> 101
         reply c1: ok name=w pid=101",
    );
    assert_eq!(h.specs[0].template.name, "b");
    assert_eq!(h.specs[0].restart(), RestartType::Permanent);
}

#[test]
fn args_are_appended_and_command_overrides_the_template() {
    let mut h = Harness::simple();
    h.feed(request(Command::Start {
        name: "a".into(),
        template: None,
        args: vec!["x".into(), "y".into()],
        command: None,
        env: Default::default(),
        fenced: false,
    }));
    h.feed(request(Command::Start {
        name: "b".into(),
        template: None,
        args: vec!["y".into()],
        command: Some(vec!["/bin/other".into(), "x".into()]),
        env: Default::default(),
        fenced: false,
    }));
    assert_eq!(h.specs[0].argv, ["/opt/bin/worker", "--flag", "x", "y"]);
    assert_eq!(h.specs[1].argv, ["/bin/other", "x", "y"]);
    // The override keeps the template's other settings.
    assert_eq!(h.specs[1].template.name, "t");
}

#[test]
fn spawn_failure_on_start_replies_spawn_failed_and_registers_nothing() {
    let mut h = Harness::simple();
    h.fail_next = 1;
    h.check(
        start("w"),
        "spawn w #1 -> failed
         reply c1: error spawn_failed",
    );
    assert!(h
        .reply()
        .error
        .unwrap()
        .message
        .contains("No such file or directory"));
    h.check(
        count(),
        "reply c1: ok count=0 counts={total=0 active=0 backoff=0 failed=0 stopping=0}",
    )
    .check(lookup("w"), "reply c1: error not_found");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None);
    // Not a crash loop, and the name is free again.
    h.check(
        start("w"),
        "spawn w #2 -> 101
         reply c1: ok name=w pid=101",
    );
}

#[test]
fn start_of_a_failed_name_replaces_it() {
    let mut h = Harness::new(
        3,
        5,
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    );
    h.started(start_full("w", "g", &["old"], None));
    h.at(10).feed(exited(101, code(1)));
    h.check(lookup("w"), "reply c1: ok name=w state=failed");

    let trace = h.at(20).feed(start_full("w", "g", &["new"], None));
    assert_eq!(
        h.reply(),
        Reply {
            name: Some("w".to_string()),
            pid: Some(102),
            ..Reply::ok()
        },
        "{trace:#?}"
    );
    assert!(trace.contains(&"event started w pid=102".to_string()));
    // The state file is written (with the new args) before the reply.
    let reply_at = trace.iter().position(|l| l.starts_with("reply")).unwrap();
    assert!(
        trace[..reply_at].iter().any(|l| l == "save state"),
        "{trace:#?}"
    );
    assert_eq!(h.specs.last().unwrap().argv.last().unwrap(), "new");
    // A fresh worker: no restarts, no last exit, its own fresh window.
    let row = h.row("w");
    assert_eq!(row.state, WorkerStateName::Running);
    assert_eq!((row.pid, row.restarts, row.last_exit), (Some(102), 0, None));
    assert_eq!(h.sup.saved_workers()[0].args, ["new"]);
    h.check(
        count(),
        "reply c1: ok count=1 counts={total=1 active=1 backoff=0 failed=0 stopping=0}",
    );
}

#[test]
fn max_children_is_checked_first_and_backoff_holds_a_slot() {
    let mut h = Harness::new(100, 5, vec![paced(permanent("p"))]).max_children(2);
    h.started(start_from("a", "p")); // 101
    h.started(start_from("b", "p")); // 102
    h.check(start_from("c", "p"), "reply c1: error max_children")
        // Before name validation, the template lookup and the already_started check.
        .check(start_from("bad name", "p"), "reply c1: error max_children")
        .check(start_from("c", "nope"), "reply c1: error max_children")
        .check(start_from("a", "p"), "reply c1: error max_children");
    // A worker waiting in backoff still holds its slot.
    h.at(10).feed(exited(101, code(1)));
    h.check(lookup("a"), "reply c1: ok name=a state=backoff")
        .check(start_from("c", "p"), "reply c1: error max_children")
        // Once it is stopped the slot is free.
        .check(
            stop("a"),
            "event stopped a (stopped)
             save state
             reply c1: ok stopped={a killed=false}",
        )
        .check(
            start_from("c", "p"),
            "spawn c #3 -> 103
             event started c pid=103
             save state
             reply c1: ok name=c pid=103",
        );
    assert!(h.specs.iter().all(|s| &*s.name != "bad name"));
}

#[test]
fn max_children_a_failed_worker_holds_its_slot_but_may_be_replaced() {
    let mut h = Harness::new(
        3,
        5,
        vec![limited(permanent("g"), Some(0), 10, OnLimit::GiveUp)],
    )
    .max_children(1);
    h.started(start_from("a", "g"));
    h.at(10).feed(exited(101, code(1)));
    h.check(start_from("b", "g"), "reply c1: error max_children");
    assert_eq!(h.started(start_from("a", "g")), 102);
    h.check(
        count(),
        "reply c1: ok count=1 counts={total=1 active=1 backoff=0 failed=0 stopping=0}",
    );
}

#[test]
fn extra_args_are_prepended_and_a_command_override_replaces_them() {
    let mut t = permanent("t");
    t.extra_args = vec!["-x".to_string()];
    let mut h = Harness::new(3, 5, vec![t]);
    h.started(start_full("w", "t", &["a"], None));
    assert_eq!(h.specs[0].argv, ["/opt/bin/worker", "--flag", "-x", "a"]);
    assert_eq!(h.specs[0].args, ["a"]);
    assert_eq!(h.specs[0].command, None);
    // Also on restart.
    h.at(10).feed(exited(101, code(1)));
    assert_eq!(h.specs[1].argv, ["/opt/bin/worker", "--flag", "-x", "a"]);

    h.started(start_full("v", "t", &["a"], Some(&["/bin/echo", "hi"])));
    assert_eq!(h.specs[2].argv, ["/bin/echo", "hi", "a"]);
    assert_eq!(h.specs[2].template.extra_args, ["-x"]);
    // The state file records what was asked, not the expanded command line.
    assert_eq!(
        h.sup.saved_workers(),
        [
            SavedWorker {
                name: "v".to_string(),
                template: "t".to_string(),
                args: vec!["a".to_string()],
                command: Some(vec!["/bin/echo".to_string(), "hi".to_string()]),
                env: Default::default(),
                failed: None,
                fenced: false,
            },
            SavedWorker {
                name: "w".to_string(),
                template: "t".to_string(),
                args: vec!["a".to_string()],
                command: None,
                env: Default::default(),
                failed: None,
                fenced: false,
            },
        ]
    );
}

#[test]
fn the_daemons_own_template_is_never_the_implicit_one() {
    // Cluster mode adds the agent's template: a config with one template of its own
    // still starts from it when none is named.
    let mut agent = permanent("dynsup-cluster-agent");
    agent.internal = true;
    let mut h = Harness::commands_only(3, 5, vec![agent, transient("game")]);
    h.check(
        start("g1"),
        "spawn g1 #1 -> 101\nreply c1: ok name=g1 pid=101",
    );
    assert_eq!(h.specs[0].template.name, "game");
    // Two of its own: name one (the internal one is not offered among the known).
    let mut agent = permanent("dynsup-cluster-agent");
    agent.internal = true;
    let mut h = Harness::commands_only(3, 5, vec![agent, transient("a"), transient("b")]);
    h.check(start("g1"), "reply c1: error unknown_template");
    let message = h.reply().error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("has 2 templates"), "{message}");
    assert!(!message.contains("dynsup-cluster-agent"), "{message}");
    // Nor when the template named is unknown.
    h.check(start_from("g2", "nope"), "reply c1: error unknown_template");
    let message = h.reply().error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("known: a, b"), "{message}");
}
