//! Resource exhaustion, with the real limits of a real daemon changed from outside
//! (`prlimit(2)`, as an operator's `prlimit --pid` would): no open files left (EMFILE for
//! a spawn's pipes, for `accept`), no processes left (EAGAIN from `clone`, for a daemon
//! run as an unprivileged user, since root is exempt from `RLIMIT_NPROC`). Each gets a
//! clear error to the caller and a log line; the daemon never crashes and never loses a
//! worker, and recovers once the resource is back. Also: the open-files soft limit is
//! raised at start without the workers inheriting it, and a daemon frozen with SIGSTOP
//! while its workers die handles every death after SIGCONT.

mod common;
use common::*;
use std::collections::HashMap;
use std::rc::Rc;

/// Lenient intensity; `sleeper` (permanent sleep) and `limited`, whose template sets
/// its own open-files limit.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SLEEPER,
        r#"
[templates.limited]
command = ["sleep", "100000"]
rlimits = { nofile = [100, 200] }
"#,
    ]
    .concat()
}

/// OTP's default intensity (a handful of restarts in 5 s), which a restart that fails
/// at once, over and over, used to exhaust within a millisecond.
fn strict_config() -> String {
    [
        "\n[supervisor]\nmax_restarts = 5\nmax_seconds = 5\n",
        SLEEPER,
    ]
    .concat()
}

/// Waits until the log holds `n` lines with `needle`, or the daemon exits (then fails).
#[track_caller]
fn wait_for_lines_while_alive(d: &mut TestDaemon, needle: &str, n: usize) {
    let log = d.log_path().to_path_buf();
    let lines = wait_until(DEADLINE, &format!("{n} log lines with `{needle}`"), || {
        if d.has_exited() {
            return Some(0);
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let count = lines_with(&text, needle).len();
        (count >= n).then_some(count)
    });
    assert!(lines >= n, "the daemon exited{}", d.log_tail());
}

/// The "Max open files" (soft, hard) of `/proc/PID/limits`.
fn open_files_of(pid: i32) -> (u64, u64) {
    rlimit_of(pid, Limit::OpenFiles)
}

/// The daemon raises its soft open-files limit to the hard limit at start and says so;
/// its workers start with the soft limit it was given, or with their template's.
#[test]
fn the_open_files_soft_limit_is_raised_for_the_daemon_only() {
    let d = Launch::new(&config())
        .wrapper(&["prlimit", "--nofile=256:4096"])
        .start();
    assert_eq!(open_files_of(d.pid()), (4096, 4096));
    d.wait_log("open-files limit raised from 256 to the hard limit 4096");
    let plain = d.start_worker("plain", Some("sleeper"), &[]);
    assert_eq!(open_files_of(plain), (256, 4096));
    let limited = d.start_worker("limited", Some("limited"), &[]);
    assert_eq!(open_files_of(limited), (100, 200));
    // A restarted worker too.
    send_signal(plain, Signal::SIGKILL);
    let again = d.wait_restarted("plain", plain);
    assert_eq!(open_files_of(again), (256, 4096));

    // Already at the hard limit: nothing to raise, and workers inherit as before.
    let d = Launch::new(&config())
        .wrapper(&["prlimit", "--nofile=512:512"])
        .start();
    assert_eq!(open_files_of(d.pid()), (512, 512));
    assert!(!d.log().contains("open-files limit raised"), "{}", d.log());
    let pid = d.start_worker("plain", Some("sleeper"), &[]);
    assert_eq!(open_files_of(pid), (512, 512));
}

/// Starves the daemon of open files: its soft limit below the fds it holds, so that
/// every new fd fails with EMFILE. Returns the limit to restore.
fn starve_of_open_files(d: &TestDaemon) -> (u64, u64) {
    let before = open_files_of(d.pid());
    set_rlimit_of(d.pid(), Limit::OpenFiles, 3, before.1);
    before
}

/// No open files left: a `start` fails with a clear `spawn_failed` naming EMFILE, and
/// a log line; a `stop` is done but cannot be recorded in the state file (it answers
/// `not_recorded`), which stays intact (no temp file left); the running workers are untouched; once fds are back,
/// `start` works and the state file records everything again.
#[test]
fn a_start_without_open_files_fails_clearly_and_recovers() {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let config = format!(
        "{}state_file = {}\n{SLEEPER}",
        LENIENT_SUPERVISOR,
        toml_str(state.to_str().unwrap())
    );
    let d = Launch::new(&config).in_dir(dir.clone()).start();
    let a = d.start_worker("a", Some("sleeper"), &[]);
    let s = d.start_worker("s", Some("sleeper"), &[]);
    let recorded_before = read_state(&state);
    // An accepted connection, so that requests can still be made while starved.
    let mut client = d.client();
    assert!(client.request(&Request::Count).ok);

    let before = starve_of_open_files(&d);
    let reply = client.request(&start_req("b", Some("sleeper"), &[]));
    assert_error(&reply, ErrorKind::SpawnFailed);
    let message = &reply.error.as_ref().unwrap().message;
    assert!(message.contains("Too many open files"), "{message}");
    d.wait_log("Too many open files");
    assert_eq!(
        client.request(&lookup_req("a")).pid,
        Some(a),
        "a worker was lost"
    );
    assert!(is_alive(a));
    assert!(client.request(&lookup_req("b")).pid.is_none());

    // The stop is done, and its reply says it could not be recorded.
    let reply = client.request(&stop_req("s", None));
    assert_error(&reply, ErrorKind::NotRecorded);
    d.assert_reaped(s);
    d.wait_log("cannot write the state file");
    assert_eq!(
        read_state(&state),
        recorded_before,
        "the state file changed"
    );
    assert!(
        !dir.join(".state.json.tmp").exists(),
        "a temp file was left"
    );

    set_rlimit_of(d.pid(), Limit::OpenFiles, before.0, before.1);
    let reply = client.request(&start_req("b", Some("sleeper"), &[]));
    assert!(reply.ok, "{reply:?}{}", d.log_tail());
    assert!(is_alive(reply.pid.unwrap()));
    assert!(is_alive(a));
    assert_eq!(recorded_names(&state), ["a", "b"]);
}

/// No open files left when a worker dies: its restart cannot get its pipes. It must be
/// retried after a short delay (not burn the restart intensity in a millisecond, which
/// took every worker down), and succeed once fds are back; the other workers stay.
#[test]
fn a_restart_without_open_files_is_retried_until_fds_are_back() {
    let mut d = TestDaemon::start(&strict_config());
    let a = d.start_worker("a", Some("sleeper"), &[]);
    let b = d.start_worker("b", Some("sleeper"), &[]);
    let mut client = d.client();
    assert!(client.request(&Request::Count).ok);

    let before = starve_of_open_files(&d);
    send_signal(b, Signal::SIGKILL);
    // More failed attempts than the intensity allows restarts: retried, not escalated.
    wait_for_lines_while_alive(&mut d, "Too many open files", 7);
    let list = client.request(&Request::list());
    assert!(list.ok, "{list:?}");
    assert!(
        list.workers.unwrap().iter().any(|w| w.name == "b"),
        "b was dropped{}",
        d.log_tail()
    );

    set_rlimit_of(d.pid(), Limit::OpenFiles, before.0, before.1);
    d.wait_restarted("b", b);
    d.assert_reaped(b);
    assert_eq!(d.lookup("a"), Some(a));
    assert!(!d.has_exited());
}

/// No open files left when a client connects: `accept` fails with EMFILE. The client
/// is not forgotten: once fds are back, its request is answered without another client
/// having to connect first (the listener used to go deaf).
#[test]
fn a_client_that_connects_without_open_files_is_served_once_fds_are_back() {
    let d = TestDaemon::start(&config());
    d.start_worker("a", Some("sleeper"), &[]);
    let before = starve_of_open_files(&d);
    // The kernel completes the connection (the backlog); the daemon cannot accept it.
    let mut waiting = Client::connect(d.socket()).expect("connect");
    waiting.send(&Request::Count);
    d.wait_log("Too many open files");

    set_rlimit_of(d.pid(), Limit::OpenFiles, before.0, before.1);
    let reply = waiting.recv();
    if reply.ok {
        assert_eq!(reply.count, Some(1), "{reply:?}");
    } else {
        // Turned away with an error line while starved: a new connection now works.
        assert!(reply.error.is_some(), "{reply:?}");
        assert_eq!(d.count(), 1);
    }
}

/// An unprivileged uid of this test's own (RLIMIT_NPROC counts every process of the
/// real uid, so no other test may run processes as it).
const NPROC_UID: u32 = 47_101;
const NPROC_RESTART_UID: u32 = 47_102;

/// A daemon run as `uid` (not root: root is exempt from RLIMIT_NPROC).
fn unprivileged_daemon(uid: u32) -> TestDaemon {
    Launch::new(&config())
        .in_dir(TestDir::owned_by(uid, uid))
        .user(uid, uid)
        .start()
}

/// Fork fails with EAGAIN (RLIMIT_NPROC reached): a `start` fails with a clear
/// `spawn_failed` and a log line; nothing is lost; once processes are allowed again,
/// `start` works.
#[test]
fn a_start_without_processes_left_fails_clearly_and_recovers() {
    let d = unprivileged_daemon(NPROC_UID);
    let a = d.start_worker("a", Some("sleeper"), &[]);
    let before = rlimit_of(d.pid(), Limit::Processes);
    // The daemon and `a` already count: no room for a third process.
    set_rlimit_of(d.pid(), Limit::Processes, 1, before.1);

    let reply = d.request(&start_req("b", Some("sleeper"), &[]));
    assert_error(&reply, ErrorKind::SpawnFailed);
    let message = &reply.error.as_ref().unwrap().message;
    assert!(
        message.contains("Resource temporarily unavailable"),
        "{message}"
    );
    d.wait_log("Resource temporarily unavailable");
    assert_eq!(d.lookup("a"), Some(a));
    assert_eq!(d.lookup("b"), None);

    set_rlimit_of(d.pid(), Limit::Processes, before.0, before.1);
    let b = d.start_worker("b", Some("sleeper"), &[]);
    assert_eq!(stat(b).unwrap().ppid, d.pid());
    assert!(is_alive(a));
}

/// Fork fails with EAGAIN when a worker dies: the restart is retried after a short
/// delay, without tripping the intensity, and succeeds once processes are allowed.
#[test]
fn a_restart_without_processes_left_is_retried_until_allowed() {
    let mut d = Launch::new(&strict_config())
        .in_dir(TestDir::owned_by(NPROC_RESTART_UID, NPROC_RESTART_UID))
        .user(NPROC_RESTART_UID, NPROC_RESTART_UID)
        .start();
    let a = d.start_worker("a", Some("sleeper"), &[]);
    let b = d.start_worker("b", Some("sleeper"), &[]);
    let before = rlimit_of(d.pid(), Limit::Processes);
    set_rlimit_of(d.pid(), Limit::Processes, 1, before.1);

    send_signal(b, Signal::SIGKILL);
    wait_for_lines_while_alive(&mut d, "Resource temporarily unavailable", 7);
    assert!(d.list_one("b").is_some(), "b was dropped{}", d.log_tail());

    set_rlimit_of(d.pid(), Limit::Processes, before.0, before.1);
    d.wait_restarted("b", b);
    d.assert_reaped(b);
    assert_eq!(d.lookup("a"), Some(a));
    assert!(!d.has_exited());
}

/// A daemon frozen (SIGSTOP) while all its workers are killed: after SIGCONT, every exit
/// is reaped and every worker restarted, each exactly once.
#[test]
fn a_daemon_stopped_while_its_workers_die_handles_every_death_after_sigcont() {
    const N: usize = 30;
    let d = TestDaemon::start(&config());
    let names: Vec<String> = (0..N).map(|i| format!("w{i:02}")).collect();
    let mut old = HashMap::new();
    for name in &names {
        old.insert(name.clone(), d.start_worker(name, Some("sleeper"), &[]));
    }

    d.signal(Signal::SIGSTOP);
    wait_until(DEADLINE, "the daemon to be stopped", || {
        (stat(d.pid())?.state == 'T').then_some(())
    });
    for pid in old.values() {
        send_signal(*pid, Signal::SIGKILL);
    }
    // Every one is dead and waits, unreaped, for the frozen daemon.
    wait_until(DEADLINE, "every worker to be a zombie", || {
        old.values().all(|&p| is_zombie(p)).then_some(())
    });
    d.signal(Signal::SIGCONT);

    for name in &names {
        let pid = d.wait_restarted(name, old[name]);
        assert!(is_alive(pid));
    }
    for pid in old.values() {
        d.assert_reaped(*pid);
    }
    assert!(zombie_children_of(d.pid()).is_empty());
    for w in d.list() {
        assert_eq!(w.restarts, 1, "{w:?}");
    }
    assert_eq!(children_of(d.pid()).len(), N);
}
