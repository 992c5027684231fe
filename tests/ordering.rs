//! Start ordering on readiness (`after`): a boot graph starts every child only once
//! each worker it is after has sent `READY=1`, independent children at once; a waiting
//! child is listed `waiting` with what it waits for; the daemon's own `READY=1` comes
//! once every boot child is ready; shutdown stops dependents first.
//! `restart_with = "dependents"` restarts what is after a worker once it is ready
//! again, in order. A dynamic `start` after a worker that is not ready waits for it; one
//! after a worker that is not registered is refused with `dependency_not_running`.
//!
//! The workers are [`RECORDING_WORKER`]s: each writes down (CLOCK_MONOTONIC) when it
//! started, got ready and was stopped, so the order is checked on what the processes
//! did, not on what the daemon says; gates (files the test creates) decide when the
//! slow ones get ready.

mod common;
use common::*;
use std::time::Duration;

/// Waits until the record shows `name` did `what` `n` times.
#[track_caller]
fn wait_recorded(d: &TestDaemon, f: &Recorded, name: &str, what: &str, n: usize) {
    d.wait_until(
        DEADLINE,
        &format!(
            "{name} to `{what}` {n} time(s) (record: {})",
            f.record.display()
        ),
        || (f.read().count(name, what) >= n).then_some(()),
    )
}

/// Waits until every name in `names` is `running` and ready; returns their rows.
#[track_caller]
fn wait_all_ready(d: &TestDaemon, names: &[&str]) -> Vec<WorkerInfo> {
    d.wait_until(
        DEADLINE,
        &format!("{names:?} to be running and ready"),
        || {
            let list = d.list();
            let rows: Vec<WorkerInfo> = names
                .iter()
                .filter_map(|n| list.iter().find(|w| &w.name == n).cloned())
                .collect();
            (rows.len() == names.len()
                && rows
                    .iter()
                    .all(|w| w.state == WorkerStateName::Running && w.ready))
            .then_some(rows)
        },
    )
}

#[track_caller]
fn row(d: &TestDaemon, name: &str) -> WorkerInfo {
    d.list_one(name)
        .unwrap_or_else(|| panic!("{name} is not listed{}", d.log_tail()))
}

/// Asserts that `name` is listed `waiting` for exactly `on`.
#[track_caller]
fn assert_waiting(d: &TestDaemon, name: &str, on: &[&str]) {
    let w = row(d, name);
    assert_eq!(w.state, WorkerStateName::Waiting, "{w:?}");
    assert_eq!(w.waiting_for, on, "{w:?}");
    assert_eq!(w.pid, None, "a waiting worker has no process: {w:?}");
    assert!(!w.ready, "{w:?}");
}

/// The boot graph: `a` and `b` are independent and gated; `c` after `a`; `d` after `a`
/// and `b` (gated); `e` after `c`; `f` after `d` and `e`. `c` and `e` take a while to
/// get ready on their own.
const EDGES: [(&str, &str); 6] = [
    ("c", "a"),
    ("d", "a"),
    ("d", "b"),
    ("e", "c"),
    ("f", "d"),
    ("f", "e"),
];

fn graph_config(f: &Recorded) -> String {
    [
        LENIENT_SUPERVISOR,
        &f.template("node", ""),
        &boot_child_after("a", "node", &[], &["0", "gate"]),
        &boot_child_after("b", "node", &[], &["0", "gate"]),
        &boot_child_after("c", "node", &["a"], &["150"]),
        &boot_child_after("d", "node", &["a", "b"], &["0", "gate"]),
        &boot_child_after("e", "node", &["c"], &["50"]),
        &boot_child_after("f", "node", &["d", "e"], &[]),
    ]
    .concat()
}

/// Every edge is kept at boot (a child starts only after each worker it is after wrote
/// `ready`, which it does before it sends READY=1), independent children start at
/// once, waiting ones are listed as such, systemd hears READY=1 only once all six are
/// ready, and shutdown stops every dependent before what it is after.
#[test]
fn a_boot_graph_starts_in_order_of_readiness_and_stops_in_reverse() {
    let f = Recorded::new();
    let mut n = NotifyListener::bind_path(&f.dir.join("notify.sock"));
    let mut d = Launch::new(&graph_config(&f))
        .in_dir(f.dir.clone())
        .env("NOTIFY_SOCKET", &n.address)
        .start();

    // The independent roots both start although neither is ready: no serial boot.
    wait_recorded(&d, &f, "a", "start", 1);
    wait_recorded(&d, &f, "b", "start", 1);
    assert_waiting(&d, "c", &["a"]);
    assert_waiting(&d, "d", &["a", "b"]);
    assert_waiting(&d, "e", &["c"]);
    assert_waiting(&d, "f", &["d", "e"]);
    assert_eq!(d.counts().waiting, 4, "{:?}", d.counts());
    assert_eq!(row(&d, "a").state, WorkerStateName::Starting);
    // The table shows what a waiting child waits for.
    let out = d.cli(&["list"]);
    assert_exit(&out, 0);
    let table = stdout_of(&out);
    let d_row = table
        .lines()
        .find(|l| l.starts_with("d "))
        .unwrap_or_else(|| panic!("no row for d:\n{table}"));
    assert!(
        d_row.contains("waiting") && d_row.contains("after a, b"),
        "{table}"
    );
    // No READY=1 to systemd while the boot children are not ready.
    n.drain_for(Duration::from_millis(200));
    assert_eq!(n.count("READY=1"), 0, "{:?}", n.messages());

    // b is ready: d still waits, for a only.
    f.open_gate("b");
    wait_all_ready(&d, &["b"]);
    assert_waiting(&d, "d", &["a"]);
    assert_waiting(&d, "c", &["a"]);

    // a is ready: c and d start; e and f follow on their own once c and d are.
    f.open_gate("a");
    wait_recorded(&d, &f, "d", "start", 1);
    f.open_gate("d");
    n.wait_for(DEADLINE, "with READY=1", |m| {
        m.lines().any(|l| l == "READY=1")
    });
    // f wrote `ready` before it sent its own READY=1, which the daemon needed before
    // it could send its own.
    let at_ready = f.read();
    for name in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(
            at_ready.count(name, "ready"),
            1,
            "the daemon said READY=1 before {name} was ready:\n{at_ready}"
        );
    }
    let rows = wait_all_ready(&d, &["a", "b", "c", "d", "e", "f"]);
    assert!(rows.iter().all(|w| w.waiting_for.is_empty()), "{rows:?}");
    assert_eq!(d.counts().waiting, 0);

    let record = f.read();
    for (after, dep) in EDGES {
        assert!(
            record.nth(after, "start", 1) > record.nth(dep, "ready", 1),
            "{after} started before {dep} was ready:\n{record}"
        );
    }
    // Independent children overlap: each root started before the other was ready.
    assert!(
        record.nth("b", "start", 1) < record.nth("a", "ready", 1)
            && record.nth("a", "start", 1) < record.nth("b", "ready", 1),
        "a and b did not start together:\n{record}"
    );
    for name in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(
            record.count(name, "start"),
            1,
            "{name} started twice:\n{record}"
        );
    }

    // Shutdown: a worker gets its stop signal only once nothing after it is alive.
    let reply = d.request_ok(&Request::Shutdown);
    assert_eq!(reply.shutdown.as_ref().map(Vec::len), Some(6), "{reply:?}");
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", d.log_tail());
    let record = f.read();
    for (after, dep) in EDGES {
        assert!(
            record.nth(after, "stop", 1) < record.nth(dep, "stop", 1),
            "{dep} was stopped before {after}, which is after it:\n{record}"
        );
    }
}

/// `restart_with = "dependents"`: when `db` is killed, `app` (after db) and `web`
/// (after app, which also restarts its dependents) are stopped, wait while `db` gets
/// ready again, and start again in order; every one of them gets a new pid and counts
/// one restart.
#[test]
fn restart_with_dependents_restarts_them_in_order_after_it_is_ready_again() {
    let f = Recorded::new();
    let config = [
        LENIENT_SUPERVISOR,
        &f.template("db", "restart_with = \"dependents\""),
        &f.template("app", "after = [\"db\"]\nrestart_with = \"dependents\""),
        &f.template("web", "after = [\"app\"]"),
        &boot_child_after("db", "db", &[], &["0", "gate"]),
        &boot_child_after("app", "app", &[], &[]),
        &boot_child_after("web", "web", &[], &[]),
    ]
    .concat();
    f.open_gate("db");
    let d = Launch::new(&config).in_dir(f.dir.clone()).start();
    let before = wait_all_ready(&d, &["db", "app", "web"]);
    let old: Vec<i32> = before.iter().map(|w| w.pid.expect("pid")).collect();
    let mut watcher = Watcher::subscribe(&d, &[]);

    // The next db waits at its gate: what is after it must wait with it.
    f.close_gate("db");
    send_signal(old[0], Signal::SIGKILL);
    wait_recorded(&d, &f, "db", "start", 2);
    d.wait_until(DEADLINE, "app and web to wait for db and app", || {
        let list = d.list();
        let state = |n: &str| list.iter().find(|w| w.name == n).map(|w| w.state);
        (state("app") == Some(WorkerStateName::Waiting)
            && state("web") == Some(WorkerStateName::Waiting))
        .then_some(())
    });
    assert_waiting(&d, "app", &["db"]);
    assert_waiting(&d, "web", &["app"]);
    for pid in &old {
        d.assert_reaped(*pid);
    }
    let db = row(&d, "db");
    assert_eq!(db.state, WorkerStateName::Starting, "{db:?}");
    assert_ne!(db.pid, Some(old[0]));

    f.open_gate("db");
    let after = wait_all_ready(&d, &["db", "app", "web"]);
    for (w, old) in after.iter().zip(&old) {
        let pid = w.pid.expect("pid");
        assert_ne!(pid, *old, "{} kept its pid", w.name);
        assert!(is_alive(pid), "{} (pid {pid}) is not alive", w.name);
        assert_eq!(stat(pid).expect("in /proc").ppid, d.pid(), "{w:?}");
        assert_eq!(w.restarts, 1, "each restart counts: {w:?}");
    }
    let record = f.read();
    assert_eq!(
        record.count("app", "stop"),
        1,
        "app was not stopped:\n{record}"
    );
    assert_eq!(
        record.count("web", "stop"),
        1,
        "web was not stopped:\n{record}"
    );
    assert!(
        record.nth("app", "start", 2) > record.nth("db", "ready", 2),
        "app started again before db was ready again:\n{record}"
    );
    assert!(
        record.nth("web", "start", 2) > record.nth("app", "ready", 2),
        "web started again before app was ready again:\n{record}"
    );
    // The stream said so too: waiting, then started, for each dependent.
    for name in ["app", "web"] {
        let (_, _) = watcher.wait_for(
            &format!("{name} waiting"),
            |e| matches!(e, Event::Waiting { name: n, .. } if n == name),
        );
    }
}

/// A dynamic `start` of a worker whose template is after a boot child that is not
/// ready yet waits, is listed `waiting`, and is answered once it has been spawned; one
/// whose dependency does not get ready within its ready_timeout_ms, or is not
/// registered at all, gets `dependency_not_running` and is not registered.
#[test]
fn a_dynamic_start_waits_for_what_it_is_after() {
    let f = Recorded::new();
    let config = [
        LENIENT_SUPERVISOR,
        &f.template("db", ""),
        &f.template("client", "after = [\"db\"]"),
        &f.template("impatient", "after = [\"db\"]\nready_timeout_ms = 300"),
        &boot_child_after("db", "db", &[], &["0", "gate"]),
    ]
    .concat();
    let d = Launch::new(&config).in_dir(f.dir.clone()).start();
    wait_recorded(&d, &f, "db", "start", 1);
    let mut watcher = Watcher::subscribe(&d, &["w1"]);

    let mut waiting = d.client();
    waiting.send(&start_req("w1", Some("client"), &[]));
    d.wait_until(DEADLINE, "w1 to be listed waiting", || {
        d.list_one("w1")
            .filter(|w| w.state == WorkerStateName::Waiting)
    });
    assert_waiting(&d, "w1", &["db"]);
    assert!(
        !waiting.has_pending(),
        "start was answered before db was ready: {:?}",
        waiting.recv()
    );
    watcher.expect(
        "w1 waiting for db",
        |e| matches!(e, Event::Waiting { name, on } if name == "w1" && on == &["db"]),
    );

    // Not ready within its own ready_timeout_ms: refused, and gone.
    let reply = d.request(&start_req("imp", Some("impatient"), &[]));
    assert_error(&reply, ErrorKind::DependencyNotRunning);
    assert!(
        reply.error.as_ref().unwrap().message.contains("db"),
        "{reply:?}"
    );
    assert_eq!(d.lookup("imp"), None);
    assert!(!waiting.has_pending(), "w1 was answered too early");

    f.open_gate("db");
    let reply = waiting.recv();
    assert!(reply.ok, "{reply:?}{}", d.log_tail());
    let pid = reply.pid.expect("start reply pid");
    assert!(is_alive(pid));
    assert_eq!(stat(pid).expect("in /proc").ppid, d.pid());
    wait_recorded(&d, &f, "w1", "start", 1);
    let record = f.read();
    assert!(
        record.nth("w1", "start", 1) > record.nth("db", "ready", 1),
        "w1 started before db was ready:\n{record}"
    );
    watcher.wait_for("w1 started", |e| is_started(e, "w1"));

    // db is not registered at all: refused at once, nothing registered.
    d.request_ok(&stop_req("db", None));
    let reply = d.request(&start_req("w2", Some("client"), &[]));
    assert_error(&reply, ErrorKind::DependencyNotRunning);
    assert!(
        reply.error.as_ref().unwrap().message.contains("db"),
        "{reply:?}"
    );
    assert_eq!(d.lookup("w2"), None);
    // The CLI says so, and exits 1.
    let out = d.cli(&["start", "w3", "--template", "client"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("db"), "{}", stderr_of(&out));
}
