//! The restart rule: OTP's permanent / transient / temporary table, `clean_signals` and `normal_exit_codes`.

use super::*;

#[test]
fn the_restart_table() {
    use Decision::{Remove, Restart};
    #[rustfmt::skip]
    let rows = [
        // how it ended,            permanent, transient, temporary
        (code(0),                   [Restart,  Remove,    Remove]),
        (code(1),                   [Restart,  Restart,   Remove]),
        (code(101),                 [Restart,  Restart,   Remove]),
        (signaled(Signal::TERM),    [Restart,  Remove,    Remove]),
        (signaled(Signal::KILL),    [Restart,  Restart,   Remove]),
        (signaled(segv()),          [Restart,  Restart,   Remove]),
        (Exit::Signaled { signal: segv(), core_dumped: true },
                                    [Restart,  Restart,   Remove]),
        (signaled(Signal::INT),     [Restart,  Restart,   Remove]),
    ];
    for (exit, decisions) in rows {
        for (template, decision) in [permanent("t"), transient("t"), temporary("t")]
            .into_iter()
            .zip(decisions)
        {
            let what = format!("{} {exit}", template.restart.as_str());
            let mut h = Harness::commands_only(3, 5, vec![template]);
            h.started(start("w"));
            let trace = h.at(10).feed(exited(101, exit));
            match decision {
                Restart => {
                    assert_eq!(trace, ["reaped #1", "spawn w #2 -> 102"], "{what}");
                    // Same name, template and command line; a new pid.
                    assert!(Rc::ptr_eq(&h.specs[0], &h.specs[1]), "{what}");
                    assert_eq!(
                        h.feed(lookup("w")),
                        ["reply c1: ok name=w pid=102 state=running"],
                        "{what}"
                    );
                    assert_eq!(h.sup.count(), 1, "{what}");
                }
                Remove => {
                    assert_eq!(trace, ["reaped #1"], "{what}");
                    assert_eq!(h.feed(lookup("w")), ["reply c1: error not_found"], "{what}");
                    assert_eq!(h.sup.count(), 0, "{what}");
                }
            }
            assert_eq!(h.sup.next_deadline().map(|us| us / 1000), None, "{what}");
            // The old pid is gone from the index: a second report of it is ignored.
            assert_eq!(h.feed(exited(101, code(1))), Vec::<String>::new(), "{what}");
        }
    }
}

#[test]
fn clean_signals_are_configurable() {
    // SIGINT counts as clean too: a transient worker killed by it is not restarted.
    let mut t = transient("t");
    t.clean_signals = vec![Signal::TERM, Signal::INT];
    let mut h = Harness::commands_only(3, 5, vec![t]);
    h.started(start("w"));
    h.check(exited(101, signaled(Signal::INT)), "reaped #1");
    assert_eq!(h.sup.count(), 0);

    // No clean signals at all: even SIGTERM from outside is a crash.
    let mut t = transient("t");
    t.clean_signals = vec![];
    let mut h = Harness::commands_only(3, 5, vec![t]);
    h.started(start("w"));
    h.check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         spawn w #2 -> 102",
    );
}

#[test]
fn normal_exit_codes_decide_the_transient_rule() {
    let mut t = transient("t");
    t.normal_exit_codes = vec![0, 3];
    let mut p = permanent("p");
    p.normal_exit_codes = vec![0, 3];
    let mut h = Harness::new(10, 5, vec![t, p]);
    h.started(start_from("a", "t")); // 101
    h.started(start_from("b", "t")); // 102
    h.started(start_from("c", "t")); // 103
    h.started(start_from("d", "p")); // 104
    h.at(10)
        .check(
            exited(101, code(3)),
            "reaped #1
             event exited a pid=101 (exit 3)
             event stopped a (exit 3; not restarted)
             save state",
        )
        .check(
            exited(102, code(0)),
            "reaped #2
             event exited b pid=102 (exit 0)
             event stopped b (exit 0; not restarted)
             save state",
        )
        .check_restarted_at_once(103, code(1))
        // Permanent restarts whatever the code.
        .check_restarted_at_once(104, code(3));
    // Only the two restarts counted; clean exits never do.
    assert_eq!(h.sup.intensity.len(), 2);
}

#[test]
fn a_restart_updates_list_and_restart_count() {
    let mut h = Harness::simple();
    h.at(1000).started(start("w"));
    h.at(7000)
        .check(
            exited(101, code(3)),
            "reaped #1
             spawn w #2 -> 102",
        )
        .check(
            list(),
            &format!(
                "reply c1: ok workers=[{{w pid=102 t transient running restarts=1 since={}}}]",
                WALL0 + 7000
            ),
        );
}

#[test]
fn an_exit_of_an_unknown_pid_is_ignored() {
    let mut h = Harness::simple();
    h.check(exited(4242, code(1)), "");
    h.started(start("w"));
    h.check(exited(4242, signaled(Signal::KILL)), "")
        .check(lookup("w"), "reply c1: ok name=w pid=101 state=running");
}
