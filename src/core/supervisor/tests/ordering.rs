//! Start ordering: `after` (boot children and dynamic starts wait in `waiting` for what
//! they are after to be running and ready), `restart_with = "dependents"`, the order of
//! a shutdown, and the boot's completion (`READY=1`).

use super::*;
use crate::core::spec::{Readiness, RestartWith};

fn notifying(mut t: Template) -> Template {
    t.ready = Readiness::Notify;
    t
}

fn with_dependents(mut t: Template) -> Template {
    t.restart_with = RestartWith::Dependents;
    t
}

fn ready(pid: i32) -> Input {
    notify(pid, true, None)
}

/// db (ready = "notify"), cache (exec), web after both.
fn graph() -> Harness {
    Harness::new(10, 5, vec![notifying(permanent("db")), permanent("plain")])
}

#[test]
fn a_boot_child_waits_for_what_it_is_after_and_the_boot_completes_when_all_are_ready() {
    let mut h = graph();
    h.check(
        boot_start(0, boot_child("db", "db", &[])),
        "spawn db #1 -> 101
         event started db pid=101
         reply boot0: ok name=db pid=101",
    )
    .check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db", "cache"])),
        "event waiting web on=db,cache",
    )
    .check(
        boot_start(2, boot_child("cache", "plain", &[])),
        "spawn cache #2 -> 102
         event started cache pid=102
         reply boot2: ok name=cache pid=102",
    )
    .check(Input::BootFed, "");
    let row = h.row("web");
    assert_eq!(row.state, WorkerStateName::Waiting);
    assert_eq!(row.waiting_for, vec!["db".to_string()]);
    assert_eq!(h.sup.counts().waiting, 1);
    h.check(
        ready(101),
        "event ready db pid=101
         spawn web #3 -> 103
         event started web pid=103
         boot ready
         reply boot1: ok name=web pid=103",
    );
    assert_eq!(h.row("web").state, WorkerStateName::Running);
    // Once only.
    h.check(
        exited(103, code(1)),
        "reaped #3
         event exited web pid=103 (exit 1)
         event restarting web delay=0
         spawn web #4 -> 104
         event started web pid=104",
    );
}

#[test]
fn the_boot_completes_at_once_without_ordering_and_waits_for_notify_children() {
    let mut h = graph();
    h.check(Input::BootFed, "boot ready");
    let mut h = graph();
    boot(&mut h, 0, "cache", "plain", &[]);
    h.check(
        boot_start(1, boot_child("db", "db", &[])),
        "spawn db #2 -> 102
         event started db pid=102
         reply boot1: ok name=db pid=102",
    )
    .check(Input::BootFed, "")
    .check(
        ready(102),
        "event ready db pid=102
         boot ready",
    );
}

#[test]
fn a_dynamic_start_waits_for_a_registered_dependency_and_is_refused_for_an_unknown_one() {
    let mut db = notifying(permanent("db"));
    db.ready_timeout_ms = 10_000;
    let mut game = permanent("game");
    game.after = vec!["db".to_string()];
    game.ready_timeout_ms = 2_000;
    let mut h = Harness::new(10, 5, vec![db, game]);
    // Not registered at all: refused at once.
    h.check(
        start_from("g1", "game"),
        "reply c1: error dependency_not_running",
    );
    assert!(!h.sup.is_registered("g1"));
    boot(&mut h, 0, "db", "db", &[]); // 101, starting
    h.check(start_from("g1", "game"), "event waiting g1 on=db")
        .check(
            from(conn(2), start_from("g2", "game")),
            "event waiting g2 on=db",
        );
    assert_eq!(h.deadline(), Some(2_000_000));
    // g2's client gives up after the worker's ready_timeout_ms; g1 is stopped.
    h.at(1000).check(
        from(conn(3), stop("g1")),
        "reply c1: error not_running
         event stopped g1 (stopped)
         reply c3: ok stopped={g1 killed=false}",
    );
    h.at(2000).check(
        Input::Tick,
        "reply c2: error dependency_not_running
         event stopped g2 (not started: what it is after did not become ready in time)",
    );
    assert!(!h.sup.is_registered("g2"));
    h.check(start_from("g3", "game"), "event waiting g3 on=db")
        .check(
            ready(101),
            "event ready db pid=101
             spawn g3 #2 -> 102
             event started g3 pid=102
             save state
             reply c1: ok name=g3 pid=102",
        );
    // Ready dependencies: no wait.
    h.started(start_from("g4", "game"));
}

#[test]
fn a_worker_cannot_be_after_itself() {
    let mut t = permanent("t");
    t.after = vec!["x".to_string()];
    let mut h = Harness::new(3, 5, vec![t]);
    h.check(start("x"), "reply c1: error bad_request");
}

#[test]
fn restart_with_dependents_restarts_them_after_the_dependency_is_ready_again() {
    let mut h = Harness::new(
        10,
        5,
        vec![
            with_dependents(notifying(permanent("db"))),
            permanent("plain"),
        ],
    );
    h.check(
        boot_start(0, boot_child("db", "db", &[])),
        "spawn db #1 -> 101
         event started db pid=101
         reply boot0: ok name=db pid=101",
    );
    h.check(ready(101), "event ready db pid=101");
    boot(&mut h, 1, "other", "plain", &[]); // 102, not after db
    h.check(
        boot_start(2, after(boot_child("web", "plain", &[]), &["db"])),
        "spawn web #3 -> 103
         event started web pid=103
         reply boot2: ok name=web pid=103",
    );
    h.check(
        boot_start(3, after(boot_child("api", "plain", &[]), &["web"])),
        "spawn api #4 -> 104
         event started api pid=104
         reply boot3: ok name=api pid=104",
    );
    // db crashes: web (after db) is stopped; api is after web, whose template does
    // not take its dependents along, so api stays.
    h.at(100).check(
        exited(101, signaled(Signal::KILL)),
        "reaped #1
         event exited db pid=101 (signal SIGKILL)
         event restarting db delay=0
         spawn db #5 -> 105
         event started db pid=105
         signal group 103 SIGTERM",
    );
    // web ends: its restart is counted, and waits for db.
    h.at(110).check(
        exited(103, signaled(Signal::TERM)),
        "reaped #3
         event exited web pid=103 (signal SIGTERM (stopped to be restarted))
         event restarting web delay=0
         event waiting web on=db",
    );
    let row = h.row("web");
    assert_eq!((row.state, row.restarts), (WorkerStateName::Waiting, 1));
    h.at(200).check(
        ready(105),
        "event ready db pid=105
         spawn web #6 -> 106
         event started web pid=106",
    );
    assert_eq!(h.row("api").pid, Some(104));
    assert_eq!(h.row("other").pid, Some(102));
}

#[test]
fn a_dependents_restart_counts_in_the_intensity() {
    let mut h = Harness::commands_only(
        1,
        5,
        vec![with_dependents(permanent("db")), permanent("plain")],
    );
    boot(&mut h, 0, "db", "db", &[]); // 101
    h.check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db"])),
        "spawn web #2 -> 102
         reply boot1: ok name=web pid=102",
    );
    // db's restart is the 1st in the window; web's is the 2nd: over the limit of 1,
    // so the daemon escalates.
    h.check(
        exited(101, code(1)),
        "reaped #1
         spawn db #3 -> 103
         signal group 102 SIGTERM",
    )
    .check_unordered(
        exited(102, signaled(Signal::TERM)),
        "reaped #2
         signal group 103 SIGTERM",
    );
}

#[test]
fn a_shutdown_stops_dependents_before_what_they_are_after() {
    let mut h = Harness::commands_only(3, 5, vec![permanent("plain")]);
    boot(&mut h, 0, "db", "plain", &[]); // 101
    h.check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db"])),
        "spawn web #2 -> 102
         reply boot1: ok name=web pid=102",
    );
    h.check(
        boot_start(2, after(boot_child("api", "plain", &[]), &["web", "db"])),
        "spawn api #3 -> 103
         reply boot2: ok name=api pid=103",
    );
    boot(&mut h, 3, "lone", "plain", &[]); // 104
    h.check_unordered(
        shutdown(),
        "signal group 103 SIGTERM
         signal group 104 SIGTERM",
    )
    .check(exited(104, code(0)), "reaped #4")
    .check(exited(103, code(0)), "reaped #3
         signal group 102 SIGTERM")
    .check(exited(102, code(0)), "reaped #2
         signal group 101 SIGTERM")
    .check(
        exited(101, code(0)),
        "reaped #1
         reply c1: ok shutdown=[{api pid=103 exit 0 killed=false} {db pid=101 exit 0 killed=false} {lone pid=104 exit 0 killed=false} {web pid=102 exit 0 killed=false}]
         exit 0",
    );
}

#[test]
fn a_second_signal_stops_what_was_held_back_at_once() {
    let mut h = Harness::commands_only(3, 5, vec![permanent("plain")]);
    boot(&mut h, 0, "db", "plain", &[]); // 101
    h.check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db"])),
        "spawn web #2 -> 102
         reply boot1: ok name=web pid=102",
    );
    let term = || Input::ShutdownSignal {
        signal: Signal::TERM,
    };
    // db is stopped and killed at once with the rest.
    h.check(term(), "signal group 102 SIGTERM").check_unordered(
        term(),
        "signal group 101 SIGTERM
             signal group 101 SIGKILL
             signal group 102 SIGKILL",
    );
}

#[test]
fn waiting_workers_leave_at_a_shutdown_and_their_clients_are_answered() {
    let mut t = permanent("t");
    t.after = vec!["db".to_string()];
    let mut h = Harness::commands_only(3, 5, vec![notifying(permanent("db")), t]);
    h.check(
        boot_start(0, boot_child("db", "db", &[])),
        "spawn db #1 -> 101
         reply boot0: ok name=db pid=101",
    );
    h.check(from(conn(2), start_from("w", "t")), "").check(
        shutdown(),
        "reply c2: error shutting_down
             signal group 101 SIGTERM",
    );
}

#[test]
fn a_dependency_given_up_on_leaves_its_dependents_alone() {
    let db = limited(
        with_dependents(permanent("db")),
        Some(0),
        5,
        OnLimit::GiveUp,
    );
    let mut h = Harness::commands_only(10, 5, vec![db, permanent("plain")]);
    boot(&mut h, 0, "db", "db", &[]); // 101
    h.check(
        boot_start(1, after(boot_child("web", "plain", &[]), &["db"])),
        "spawn web #2 -> 102
         reply boot1: ok name=web pid=102",
    );
    h.check(exited(101, code(1)), "reaped #1");
    assert_eq!(h.row("db").state, WorkerStateName::Failed);
    assert_eq!(h.row("web").pid, Some(102));
}
