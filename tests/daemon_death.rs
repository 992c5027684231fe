//! What happens to the workers when the daemon goes: SIGKILL (they die with it),
//! SIGTERM, SIGINT and the `shutdown` request (they are stopped first).

mod common;
use common::*;
use std::time::Duration;

/// A permanent sample worker (boot child `worker_1`) that takes its time to stop, a
/// sleeper, and a worker that ignores SIGTERM.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SLEEPER,
        WORKER_1_AT_BOOT,
        STUBBORN_WORKER,
        r#"
[templates.worker]
command = ["dynsup-worker"]
restart = "permanent"
shutdown_ms = 10000
"#,
    ]
    .concat()
}

/// Starts a few workers of different kinds; returns (name, stat) of each.
fn start_some(d: &TestDaemon) -> Vec<(String, Stat)> {
    let mut out = Vec::new();
    let boot = d.lookup("worker_1").expect("boot child worker_1");
    out.push(("worker_1".to_string(), stat(boot).unwrap()));
    for (name, template) in [
        ("worker_2", "worker"),
        ("worker_3", "worker"),
        ("sleeper", "sleeper"),
    ] {
        let pid = d.start_worker(name, Some(template), &[]);
        out.push((name.to_string(), stat(pid).expect("worker in /proc")));
    }
    for (name, s) in &out {
        assert_eq!(s.ppid, d.pid(), "{name} is not a child of the daemon");
    }
    for name in ["worker_1", "worker_2", "worker_3"] {
        d.wait_started(name, 1);
    }
    out
}

/// The workers are promised to be gone "within a second" of the daemon's SIGKILL; the
/// test allows 2 s because CI is a loaded two-core machine.
#[test]
fn sigkill_to_the_daemon_takes_every_worker_with_it_and_the_socket_is_reused() {
    let mut d = TestDaemon::start(&config());
    let workers = start_some(&d);
    d.signal(Signal::SIGKILL);
    d.wait_exit(DEADLINE);
    let still_running = || -> Vec<&String> {
        workers
            .iter()
            .filter(|(_, s)| !is_gone(s))
            .map(|(n, _)| n)
            .collect()
    };
    if try_wait_until(Duration::from_secs(2), || {
        still_running().is_empty().then_some(())
    })
    .is_none()
    {
        panic!(
            "workers {:?} still running 2 s after the daemon was SIGKILLed",
            still_running()
        );
    }
    // The socket file is stale now; the next daemon replaces it.
    assert!(
        d.socket().exists(),
        "the SIGKILLed daemon cannot have removed its socket"
    );
    let d2 = d.start_another(&config());
    assert_eq!(d2.socket(), d.socket());
    let pid = d2
        .lookup("worker_1")
        .expect("the new daemon started its boot child");
    assert_eq!(stat(pid).unwrap().ppid, d2.pid());
    assert_eq!(d2.count(), 1);
}

#[test]
fn sigterm_to_the_daemon_stops_every_worker_removes_the_socket_and_exits_0() {
    check_graceful_exit(|d| d.signal(Signal::SIGTERM));
}

#[test]
fn sigint_to_the_daemon_stops_every_worker_and_exits_0() {
    check_graceful_exit(|d| d.signal(Signal::SIGINT));
}

#[test]
fn shutdown_request_stops_every_worker_and_exits_0() {
    check_graceful_exit(|d| {
        let reply = d.request(&Request::Shutdown);
        assert!(reply.ok, "{reply:?}");
        let reports = reply.shutdown.expect("shutdown reply without reports");
        let mut names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["sleeper", "worker_1", "worker_2", "worker_3"],
            "{reports:?}"
        );
        for r in &reports {
            assert!(!r.killed, "{r:?}");
            if r.name.starts_with("worker_") {
                assert_eq!(r.exit, Some(ExitReport::Exited { code: 0 }), "{r:?}");
            }
        }
    });
}

fn check_graceful_exit(stop_daemon: impl FnOnce(&TestDaemon)) {
    let mut d = TestDaemon::start(&config());
    let workers = start_some(&d);
    stop_daemon(&d);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "daemon exit {status:?}{}",
        d.log_tail()
    );
    assert!(!d.socket().exists(), "the socket file was not removed");
    for (name, s) in &workers {
        // The daemon reaped its children before exiting: not even zombies remain.
        assert!(
            stat(s.pid).is_none_or(|now| now.starttime != s.starttime),
            "{name} (pid {}) is still there after the daemon exited: {:?}{}",
            s.pid,
            stat(s.pid),
            d.log_tail()
        );
    }
    // They were stopped, not killed: each sample worker ran its SIGTERM handler.
    for name in ["worker_1", "worker_2", "worker_3"] {
        assert_eq!(
            d.worker_lines(
                name,
                &format!("Exiting worker: {name} with reason: shutdown")
            ),
            1,
            "{name} was not stopped with SIGTERM{}",
            d.log_tail()
        );
    }
}

#[test]
fn shutdown_sigkills_workers_that_ignore_sigterm() {
    let mut d = TestDaemon::start(&config());
    let stubborn = d.start_worker("s", Some("stubborn"), &[]);
    let s = stat(stubborn).unwrap();
    d.wait_started("s", 1);
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{status:?}{}", d.log_tail());
    assert!(is_gone(&s));
    assert!(!d.socket().exists());
    assert!(d.log().contains("ignoring SIGTERM"), "{}", d.log_tail());
}

#[test]
fn a_second_daemon_on_a_live_socket_does_not_steal_it() {
    // Replacing a *stale* socket must not mean replacing a live one.
    let d = TestDaemon::start(&config());
    let pid = d.lookup("worker_1").unwrap();
    let mut second = Launch::new(&config())
        .in_dir(d.dir())
        .wait(WaitFor::Nothing)
        .start();
    let status = second.wait_exit(DEADLINE);
    assert!(
        !status.success(),
        "a second daemon on a live socket exited {status:?}"
    );
    // The first daemon still answers on its socket.
    assert_eq!(d.lookup("worker_1"), Some(pid));
    assert!(d.socket().exists());
}

#[test]
fn shutdown_loses_no_worker_output() {
    // Workers print a last line when they get SIGTERM; the daemon must drain their
    // pipes to EOF before it exits, even when it reaps them all in one go.
    const N: usize = 40;
    let mut d = TestDaemon::start(&config());
    let mut client = d.client();
    let lines: Vec<String> = (0..N)
        .map(|i| start_req(&format!("x{i}"), Some("worker"), &[]).to_line())
        .collect();
    for reply in client.pipeline(&lines) {
        assert!(reply.ok, "{reply:?}");
    }
    for i in 0..N {
        d.wait_started(&format!("x{i}"), 1);
    }
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{status:?}{}", d.log_tail());
    let missing: Vec<String> = (0..N)
        .map(|i| format!("x{i}"))
        .filter(|name| {
            d.worker_lines(
                name,
                &format!("Exiting worker: {name} with reason: shutdown"),
            ) != 1
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the last output line of {} worker(s) was lost: {missing:?}{}",
        missing.len(),
        d.log_tail()
    );
}
