//! Starting workers, the registry, and what happens when a worker is killed from
//! outside, plus the `start`/`kill` error cases.

mod common;
use common::*;

/// The sample worker as template `worker`, with an environment of its own.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        r#"
[templates.worker]
command = ["dynsup-worker"]
restart = "transient"
env = { RUST_LOG = "info", GREETING = "hi there" }
"#,
    ]
    .concat()
}

/// A started worker is registered, alive, the daemon's child, leader of its own
/// process group, and gets its name, the socket and the template's env.
#[test]
fn start_registers_a_live_child_in_its_own_process_group() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("worker_1", None, &[]);
    assert_eq!(d.lookup("worker_1"), Some(pid));

    let s = stat(pid).expect("the worker is in /proc");
    assert!(is_alive(pid), "worker {pid} is not alive: {s:?}");
    assert_eq!(s.ppid, d.pid(), "the worker's parent is not the daemon");
    assert_eq!(
        s.pgrp, pid,
        "the worker is not the leader of its own process group"
    );
    assert_eq!(d.count(), 1);

    let env = environ(pid);
    assert!(env.contains(&"DYNSUP_NAME=worker_1".to_string()), "{env:?}");
    let socket_var = format!("DYNSUP_SOCKET={}", d.socket().display());
    assert!(env.contains(&socket_var), "no {socket_var} in {env:?}");
    assert!(
        env.contains(&"GREETING=hi there".to_string()),
        "template env missing: {env:?}"
    );

    // The worker really runs: its first log line reaches the daemon log.
    d.wait_started("worker_1", 1);
}

/// kill(2) from outside, not through dynsup: the old pid is reaped, the restarted worker
/// runs the same command and is listed with one restart.
#[test]
fn sigkill_from_outside_registers_a_new_pid_and_reaps_the_old_one() {
    let d = TestDaemon::start(&config());
    let old = d.start_worker("w", None, &[]);
    let argv = cmdline(old);
    send_signal(old, Signal::SIGKILL);

    let new = d.wait_restarted("w", old);
    assert_ne!(new, old);
    // The daemon registers the new pid only after reaping the old one.
    d.assert_reaped(old);
    let s = stat(new).unwrap();
    assert_eq!(
        s.pgrp, new,
        "the restarted worker has no process group of its own"
    );
    assert_eq!(
        cmdline(new),
        argv,
        "the restarted worker runs another command"
    );
    assert!(environ(new).contains(&"DYNSUP_NAME=w".to_string()));
    assert_eq!(d.count(), 1);
    assert!(
        zombie_children_of(d.pid()).is_empty(),
        "zombies: {:?}",
        zombie_children_of(d.pid())
    );

    let list = d.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].name, "w");
    assert_eq!(list[0].pid, Some(new));
    assert_eq!(list[0].template, "worker");
    assert_eq!(list[0].restart, "transient");
    assert_eq!(list[0].state, WorkerStateName::Running);
    assert_eq!(list[0].restarts, 1);
    let now_ms = now_ms();
    let started = list[0].started_at_ms;
    assert!(
        started <= now_ms && now_ms - started < 600_000,
        "started_at_ms {started} is not a recent time (now {now_ms})"
    );
}

#[test]
fn kill_request_signals_the_worker_and_the_restart_rule_applies() {
    let d = TestDaemon::start(&config());
    let old = d.start_worker("w", None, &[]);
    let reply = d.request_ok(&kill_req("w", None));
    assert_eq!(reply.signal.as_deref(), Some("SIGKILL"), "{reply:?}");
    let new = d.wait_restarted("w", old);
    d.assert_reaped(old);

    // A signal by number, then an external clean signal (SIGTERM) on a sleep: not
    // restarted.
    let reply = d.request_ok(&kill_req("w", Some("9")));
    assert_eq!(reply.signal.as_deref(), Some("SIGKILL"), "{reply:?}");
    d.wait_restarted("w", new);

    let pid = d.start_command("s", None, &["sleep", "100000"]);
    d.request_ok(&kill_req("s", Some("SIGTERM")));
    d.wait_unregistered("s");
    d.assert_reaped(pid);
}

#[test]
fn start_with_args_and_command_override() {
    let config = r#"
[templates.sh]
command = ["sh", "-c", "echo \"args: $*\"; exec sleep 100000", "sh"]
restart = "temporary"
"#;
    let d = TestDaemon::start(config);
    let pid = d.start_worker("a", Some("sh"), &["one", "two three"]);
    d.wait_worker_line("a", "args: one two three", 1);
    // The shell then execs sleep in the same process.
    d.wait_until(DEADLINE, "the worker to exec sleep", || {
        (cmdline(pid) == ["sleep", "100000"]).then_some(())
    });

    let pid = d.start_command("b", Some("sh"), &["sleep", "99999"]);
    assert_eq!(cmdline(pid), ["sleep", "99999"]);
    assert_eq!(stat(pid).unwrap().ppid, d.pid());
}

#[test]
fn template_cwd_is_the_workers_working_directory() {
    let dir = TestDir::new();
    let config = format!(
        "[templates.t]\ncommand = [\"sleep\", \"100000\"]\ncwd = {}\n",
        toml_str(&dir.path().display().to_string())
    );
    let d = TestDaemon::start(&config);
    let pid = d.start_worker("c", None, &[]);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, dir.path());
}

#[test]
fn workers_start_with_default_signal_mask_and_dispositions() {
    // The daemon inherits ignored signals (as under nohup or in a background job) and
    // ignores SIGPIPE itself, like every Rust program; none of that reaches a worker.
    let mut d = Launch::new(&config()).ignoring("USR2 INT HUP").start();
    let usr2 = 1u64 << (libc::SIGUSR2 - 1);
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    let daemon_ignores = signal_set(d.pid(), "SigIgn");
    assert_eq!(
        daemon_ignores & usr2,
        usr2,
        "test setup: the daemon should ignore SIGUSR2"
    );
    let pid = d.start_command("s", None, &["sleep", "100000"]);
    assert_eq!(cmdline(pid), ["sleep", "100000"]);
    assert_eq!(
        signal_set(pid, "SigBlk"),
        0,
        "the worker has blocked signals"
    );
    // The real-time signals glibc reserves for itself (32 and 33) cannot be set by a
    // program, and some kernels' /proc show them as ignored in every process.
    let reserved: u64 = (32..libc::SIGRTMIN()).map(|s| 1u64 << (s - 1)).sum();
    let ignored = signal_set(pid, "SigIgn") & !reserved;
    assert_eq!(
        ignored, 0,
        "the worker ignores signals {ignored:#x} (SIGPIPE is {sigpipe:#x}, SIGUSR2 {usr2:#x})"
    );
    // The daemon itself handles SIGINT although it inherited it ignored.
    d.signal(Signal::SIGINT);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{status:?}{}", d.log_tail());
}

#[test]
fn boot_children_start_in_order_and_are_registered() {
    let config = config()
        + "\n[[children]]\nname = \"b1\"\n\n[[children]]\nname = \"b2\"\ntemplate = \"worker\"\nargs = []\n";
    let d = TestDaemon::start(&config);
    let b1 = d.lookup("b1").expect("b1 registered at boot");
    let b2 = d.lookup("b2").expect("b2 registered at boot");
    // Started in order: b1's process is not younger than b2's.
    assert!(stat(b1).unwrap().starttime <= stat(b2).unwrap().starttime);
    assert_eq!(d.count(), 2);
    for pid in [b1, b2] {
        assert_eq!(stat(pid).unwrap().ppid, d.pid());
    }
    let names: Vec<String> = d.list().into_iter().map(|w| w.name).collect();
    assert!(
        names.contains(&"b1".into()) && names.contains(&"b2".into()),
        "{names:?}"
    );
}

#[test]
fn daemon_without_config_runs_the_builtin_worker_template() {
    let d = TestDaemon::start_without_config();
    assert_eq!(d.count(), 0, "no boot children without a config");
    let pid = d.start_worker("w", None, &[]);
    assert_eq!(stat(pid).unwrap().ppid, d.pid());
    d.wait_started("w", 1);
    let list = d.list();
    assert_eq!(list[0].template, "worker");
    assert_eq!(list[0].restart, "transient");
}

#[test]
fn duplicate_start_answers_already_started_with_the_live_pid() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("w", None, &[]);
    let reply = d.request(&start_req("w", None, &[]));
    assert_error(&reply, ErrorKind::AlreadyStarted);
    assert_eq!(reply.error.unwrap().pid, Some(pid));
    assert_eq!(
        d.lookup("w"),
        Some(pid),
        "the duplicate start replaced the worker"
    );
    assert_eq!(d.count(), 1);
    assert_eq!(
        children_of(d.pid()).len(),
        1,
        "a second process was spawned"
    );
}

#[test]
fn start_errors() {
    let config = r#"
[templates.a]
command = ["sleep", "100000"]
[templates.b]
command = ["sleep", "100000"]
"#;
    let d = TestDaemon::start(config);
    assert_error(
        &d.request(&start_req("a b", Some("a"), &[])),
        ErrorKind::InvalidName,
    );
    assert_error(
        &d.request(&start_req("", Some("a"), &[])),
        ErrorKind::InvalidName,
    );
    assert_error(
        &d.request(&start_req("w", Some("nope"), &[])),
        ErrorKind::UnknownTemplate,
    );
    // Two templates: one must be named.
    assert_error(
        &d.request(&start_req("w", None, &[])),
        ErrorKind::UnknownTemplate,
    );
    assert_eq!(d.count(), 0);
    assert!(children_of(d.pid()).is_empty());
}

#[test]
fn failed_exec_is_reported_to_the_caller_and_registers_nothing() {
    let d = TestDaemon::start(&config());
    let reply = d.request(&start_cmd_req(
        "w",
        None,
        &["/nonexistent/dynsup-test-prog"],
    ));
    assert_error(&reply, ErrorKind::SpawnFailed);
    assert_eq!(d.lookup("w"), None);
    assert_eq!(d.count(), 0);

    // Not executable.
    let dir = TestDir::new();
    let file = dir.write("not-executable", "#!/bin/sh\nexit 0\n");
    let reply = d.request(&start_cmd_req("w", None, &[file.to_str().unwrap()]));
    assert_error(&reply, ErrorKind::SpawnFailed);
    assert_eq!(d.lookup("w"), None);

    // The daemon carries on, and the name is free.
    let pid = d.start_worker("w", None, &[]);
    assert_eq!(d.lookup("w"), Some(pid));
    assert_eq!(children_of(d.pid()).len(), 1, "{:?}", children_of(d.pid()));
}

#[test]
fn kill_and_lookup_errors() {
    let d = TestDaemon::start(&config());
    assert_error(&d.request(&kill_req("ghost", None)), ErrorKind::NotFound);
    assert_error(&d.request(&lookup_req("ghost")), ErrorKind::NotFound);
    let pid = d.start_worker("w", None, &[]);
    assert_error(
        &d.request(&kill_req("w", Some("SIGFOO"))),
        ErrorKind::InvalidSignal,
    );
    assert_eq!(d.lookup("w"), Some(pid));
    assert!(is_alive(pid));
}

#[test]
fn harness_parses_stat_with_odd_process_names() {
    let s = parse_stat(
        42,
        "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0",
    )
    .unwrap();
    assert_eq!((s.state, s.ppid, s.pgrp, s.starttime), ('S', 7, 42, 12345));
    let me = stat(std::process::id() as i32).expect("own stat");
    assert_ne!(me.state, 'Z');
}
