//! dynsup as a container's init, for real: `unshare --pid --fork --mount-proc` runs the
//! daemon as PID 1 of a new PID namespace (the tests run as root). Workers fork
//! grandchildren and let them go; those come back to the daemon, which reaps them (no
//! zombie), never mistakes them for workers, and SIGTERM / SIGINT / SIGQUIT shut
//! everything down with status 0 (1 after intensity escalation). Outside a namespace
//! the daemon is a child subreaper and does the same for orphaned descendants.
//!
//! The namespace is looked at from the host: the daemon's host pid is the child of the
//! `unshare` process, and its processes are its descendants in the host's /proc.

mod common;
use common::*;

/// Workers whose inner shell starts background processes and exits at once: two
/// long sleeps (orphans that stay) and a `true` (an orphan that dies at once, possibly
/// already a zombie when it is handed over).
fn forking() -> String {
    [LENIENT_SUPERVISOR, FORKER].concat()
}

/// Template `forker`, the workers of [`forking`].
const FORKER: &str = r#"
[templates.forker]
command = ["sh", "-c", "sh -c 'sleep 100000 & sleep 100000 & true & exit 0'; exec sleep 100000"]
restart = "permanent"
"#;

const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

/// The daemon's host pid: the only child of the `unshare` process, PID 1 inside.
#[track_caller]
fn daemon_host_pid(d: &TestDaemon) -> i32 {
    let pid = d.wait_until(DEADLINE, "the daemon under unshare", || {
        let children = children_of(d.pid());
        (children.len() == 1).then(|| children[0].pid)
    });
    let ns = ns_pids(pid);
    assert_eq!(
        ns.last(),
        Some(&1),
        "the daemon is not PID 1 of its namespace (NSpid {ns:?})"
    );
    assert!(ns.len() >= 2, "no new PID namespace (NSpid {ns:?})");
    pid
}

/// The zombies among `pid`'s descendants.
fn zombies_under(pid: i32) -> Vec<Stat> {
    descendants_of(pid)
        .into_iter()
        .filter(|s| s.state == 'Z')
        .collect()
}

/// Starts `n` forking workers and waits until their orphans have come back to the
/// daemon (host pid `host`) and no zombie is left; returns the orphans.
#[track_caller]
fn start_forkers(d: &TestDaemon, host: i32, n: usize) -> Vec<Stat> {
    for i in 0..n {
        d.start_worker(&format!("f{i}"), Some("forker"), &[]);
    }
    let workers: Vec<i32> = (0..n)
        .map(|i| d.lookup(&format!("f{i}")).expect("registered"))
        .collect();
    d.wait_until(
        DEADLINE,
        "every worker's two orphaned sleeps to be children of the daemon, and no zombie",
        || {
            let orphans: Vec<Stat> = children_of(host)
                .into_iter()
                .filter(|s| {
                    s.state != 'Z' && cmdline(s.pid).first().map(String::as_str) == Some("sleep")
                })
                .filter(|s| {
                    !workers.contains(&s.pid)
                        && !workers.contains(&ns_pids(s.pid).last().copied().unwrap_or(0))
                })
                .collect();
            (orphans.len() == 2 * n && zombies_under(host).is_empty()).then_some(orphans)
        },
    )
}

/// Runs the daemon as PID 1 with forking workers, checks the reaping, then sends
/// `signal` to the daemon's host pid: everything stops and unshare exits 0.
fn pid1_shutdown_with(signal: Signal) {
    let mut d = Launch::new(&forking()).wrapper(UNSHARE).start();
    let host = daemon_host_pid(&d);
    d.wait_log("running as PID 1");
    let orphans = start_forkers(&d, host, 3);
    // The orphans are not workers.
    assert_eq!(d.count(), 3);

    // An orphan killed from outside is reaped by PID 1 (no zombie), silently.
    let victim = orphans[0];
    send_signal(victim.pid, Signal::SIGKILL);
    d.wait_until(DEADLINE, "the killed orphan to be reaped", || {
        stat(victim.pid)
            .is_none_or(|s| s.starttime != victim.starttime)
            .then_some(())
    });
    assert!(zombies_under(host).is_empty(), "{:?}", zombies_under(host));
    assert_eq!(d.count(), 3, "an orphan's exit changed the workers");
    for row in d.list() {
        assert_eq!(
            row.restarts, 0,
            "an orphan's exit restarted a worker: {row:?}"
        );
        assert_eq!(row.state, WorkerStateName::Running);
    }

    let mut everything = descendants_of(host);
    // Three workers and their six orphans, less the one killed.
    assert!(everything.len() >= 3 + 6 - 1, "{everything:?}");
    everything.push(stat(host).expect("the daemon in /proc"));
    send_signal(host, signal);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "unshare (the container) exited with {status:?} after {signal}{}",
        d.log_tail()
    );
    assert!(
        d.log()
            .contains(&format!("{signal} received: stopping every worker")),
        "{}",
        d.log_tail()
    );
    assert!(
        d.log().contains("exiting with status 0"),
        "{}",
        d.log_tail()
    );
    for s in &everything {
        assert!(is_gone(s), "{s:?} survived the shutdown");
    }
    assert!(!d.socket().exists(), "the socket file was left behind");
}

#[test]
fn as_pid1_sigterm_stops_everything_and_exits_0() {
    pid1_shutdown_with(Signal::SIGTERM);
}

#[test]
fn as_pid1_sigquit_stops_everything_and_exits_0() {
    pid1_shutdown_with(Signal::SIGQUIT);
}

#[test]
fn as_pid1_sigint_stops_everything_and_exits_0() {
    pid1_shutdown_with(Signal::SIGINT);
}

/// Intensity escalation as PID 1: the container exits with status 1.
#[test]
fn as_pid1_intensity_escalation_exits_1() {
    let config = r#"
[supervisor]
max_restarts = 2
max_seconds = 10

[templates.crash]
command = ["sh", "-c", "echo crashing; exit 3"]
restart = "permanent"

[[children]]
name = "crash"
template = "crash"
"#;
    let mut d = Launch::new(config)
        .wrapper(UNSHARE)
        .wait(WaitFor::Nothing)
        .start();
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    let log = d.log();
    assert!(log.contains("running as PID 1"), "{}", d.log_tail());
    assert!(
        log.contains("reached max restart intensity"),
        "{}",
        d.log_tail()
    );
    assert!(log.contains("exiting with status 1"), "{}", d.log_tail());
}

/// Without a namespace: the daemon is a child subreaper. A worker's orphaned
/// grandchild comes back to the daemon, is reaped when it dies (no zombie child of the
/// daemon), and is never taken for a worker.
#[test]
fn subreaper_reaps_orphaned_grandchildren_and_ignores_them() {
    let d = TestDaemon::start(&forking());
    assert!(!d.log().contains("running as PID 1"), "{}", d.log_tail());
    assert_eq!(
        status_field(d.pid(), "NSpid").map(|v| v.split_whitespace().count()),
        status_field(std::process::id() as i32, "NSpid").map(|v| v.split_whitespace().count()),
        "the daemon is not in the test's PID namespace"
    );
    let orphans = start_forkers(&d, d.pid(), 2);
    let workers: Vec<i32> = d.list().iter().filter_map(|w| w.pid).collect();
    assert_eq!(workers.len(), 2);
    for o in &orphans {
        assert_eq!(o.ppid, d.pid(), "{o:?} is not a child of the daemon");
        assert!(!workers.contains(&o.pid));
    }

    // Kill every orphan from outside: each is reaped by the daemon.
    for o in &orphans {
        send_signal(o.pid, Signal::SIGKILL);
    }
    d.wait_until(DEADLINE, "the killed orphans to be reaped", || {
        orphans
            .iter()
            .all(|o| stat(o.pid).is_none_or(|s| s.starttime != o.starttime))
            .then_some(())
    });
    assert!(
        zombie_children_of(d.pid()).is_empty(),
        "zombies: {:?}",
        zombie_children_of(d.pid())
    );
    // The workers are untouched and the daemon is fine.
    assert_eq!(d.count(), 2);
    let now: Vec<i32> = d.list().iter().filter_map(|w| w.pid).collect();
    assert_eq!(now, workers, "a worker changed when an orphan died");
    for row in d.list() {
        assert_eq!(row.restarts, 0, "{row:?}");
        assert!(row.last_exit.is_none(), "{row:?}");
    }
    assert!(
        !d.log().contains("exited"),
        "an orphan's exit was reported as a worker's{}",
        d.log_tail()
    );
    let pid = d.start_command("after", None, &["sleep", "100000"]);
    assert_eq!(d.lookup("after"), Some(pid));
}

/// The orphans are reaped silently: a debug line, no worker event.
#[test]
fn orphans_are_reaped_with_a_debug_line_only() {
    let config = with_debug_log(&forking());
    let d = Launch::new(&config).start();
    let orphans = start_forkers(&d, d.pid(), 1);
    let mut w = Watcher::subscribe(&d, &[]);
    let victim = orphans[0];
    send_signal(victim.pid, Signal::SIGKILL);
    d.wait_log(&format!("reaped pid {} ", victim.pid));
    let line = lines_with(&d.log(), &format!("reaped pid {} ", victim.pid));
    assert!(
        line[0].contains("DEBUG") && line[0].contains("not a worker"),
        "{line:?}"
    );
    // No event for it: the next event is about the worker we stop now.
    d.request_ok(&stop_req("f0", None));
    let ev = w.next();
    assert!(
        matches!(&ev.event, Event::Stopped { name, .. } | Event::Exited { name, .. } if name == "f0"),
        "unexpected event {:?}",
        ev.event
    );
}
