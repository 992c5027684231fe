//! The daemon under systemd, tested for real without systemd: a datagram socket of the
//! test stands in for the manager's `NOTIFY_SOCKET` (a path, or an abstract `@name`),
//! and the daemon's stderr file stands in for the journal stream (`JOURNAL_STREAM`).
//!
//! - `READY=1` (with `MAINPID=` and `STATUS=`) once the socket accepts and the boot
//!   children run; a paced `STATUS=` after worker changes; `STOPPING=1` at shutdown.
//! - `WATCHDOG=1` at half of `WATCHDOG_USEC`, only when `WATCHDOG_PID` is absent or the
//!   daemon's; without a watchdog the idle daemon never wakes up.
//! - Log lines: `<N>` syslog priorities and no timestamp when stderr is the journal
//!   stream, timestamps otherwise; the level from `RUST_LOG`, else `log_level`.

mod common;
use common::*;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Template `sleeper`, transient, in both configs of this file.
const TRANSIENT_SLEEPER: &str = r#"
[templates.sleeper]
command = ["sleep", "100000"]
restart = "transient"
"#;

/// Boot child `boot_1`, and a template whose workers wait ten minutes to restart.
fn boot_config() -> String {
    [
        LENIENT_SUPERVISOR,
        TRANSIENT_SLEEPER,
        r#"
[templates.slow_backoff]
command = ["sleep", "100000"]
restart = "permanent"
backoff = { initial_ms = 600000 }
"#,
        &boot_child("boot_1", "sleeper", &[]),
    ]
    .concat()
}

fn is_ready(msg: &str) -> bool {
    msg.lines().any(|l| l == "READY=1")
}

fn is_stopping(msg: &str) -> bool {
    msg.lines().any(|l| l == "STOPPING=1")
}

/// `voluntary_ctxt_switches` of a process: it grows each time the process sleeps
/// again after a wake-up.
fn voluntary_switches(pid: i32) -> u64 {
    status_field(pid, "voluntary_ctxt_switches")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no voluntary_ctxt_switches for pid {pid}"))
}

/// Waits until the daemon sleeps in `epoll_wait` (it has finished what it was doing).
/// Where the kernel hides wait channels (`wchan` reads 0), sleeping must do.
fn wait_until_asleep_in_epoll(d: &TestDaemon) {
    d.wait_until(DEADLINE, "the daemon to sleep in epoll_wait", || {
        let wchan = std::fs::read_to_string(format!("/proc/{}/wchan", d.pid())).ok()?;
        let in_epoll = wchan.contains("epoll") || wchan.trim() == "0";
        (stat(d.pid())?.state == 'S' && in_epoll).then_some(())
    })
}

/// A path `NOTIFY_SOCKET`: READY=1 + MAINPID + STATUS once the socket accepts and the
/// boot child runs; STATUS= after changes (running, backoff); STOPPING=1 on SIGTERM;
/// no WATCHDOG=1 without WATCHDOG_USEC, and no periodic wake-ups either.
#[test]
fn path_notify_socket_gets_ready_status_and_stopping() {
    let dir = Rc::new(TestDir::new());
    let mut n = NotifyListener::bind_path(&dir.join("notify.sock"));
    let mut d = Launch::new(&boot_config())
        .in_dir(dir.clone())
        .env("NOTIFY_SOCKET", &n.address)
        .wait(WaitFor::Nothing)
        .start();

    let ready = n.wait_for(DEADLINE, "with READY=1", is_ready);
    // At this instant (no retry) the socket must accept and the boot child must run.
    let mut client = Client::connect(d.socket()).unwrap_or_else(|e| {
        panic!(
            "READY=1 arrived but the socket does not accept: {e}{}",
            d.log_tail()
        )
    });
    let reply = client.request(&lookup_req("boot_1"));
    assert!(reply.ok, "boot child not registered at READY=1: {reply:?}");
    let boot = reply.pid.expect("boot child pid");
    assert!(is_alive(boot), "boot child {boot} is not running");
    assert_eq!(
        n.received.len(),
        1,
        "READY=1 is not the first message: {:?}",
        n.messages()
    );
    assert_eq!(
        notify_field(&ready, "MAINPID"),
        Some(d.pid().to_string().as_str()),
        "MAINPID in {ready:?}"
    );
    let status =
        notify_field(&ready, "STATUS").unwrap_or_else(|| panic!("no STATUS= in {ready:?}"));
    assert!(
        status.contains("1 running")
            && status.contains("0 in backoff")
            && status.contains("0 failed"),
        "first STATUS= does not summarise one running boot child: {status:?}"
    );
    // Logged before READY=1 was sent; written by the daemon's log thread, maybe a
    // moment after.
    d.wait_log("listening on");

    // A worker change: a new, paced STATUS= line.
    d.start_command("w", Some("sleeper"), &["sleep", "100000"]);
    n.wait_for(DEADLINE, "with STATUS= counting 2 running", |m| {
        notify_field(m, "STATUS").is_some_and(|s| s.starts_with("2 running"))
    });
    // A worker in backoff is counted as such.
    let slow = d.start_worker("slow", Some("slow_backoff"), &[]);
    send_signal(slow, Signal::SIGKILL);
    n.wait_for(DEADLINE, "with STATUS= counting 1 in backoff", |m| {
        notify_field(m, "STATUS")
            .is_some_and(|s| s.starts_with("2 running") && s.contains(" 1 in backoff"))
    });

    // Idle now: nothing is due for systemd (no watchdog), so the daemon sleeps. Over a
    // window worth many watchdog periods, it neither sends anything nor wakes up.
    wait_until_asleep_in_epoll(&d);
    let before = voluntary_switches(d.pid());
    let messages_before = n.received.len();
    n.drain_for(Duration::from_millis(1200));
    let after = voluntary_switches(d.pid());
    assert_eq!(
        n.received.len(),
        messages_before,
        "messages while idle: {:?}",
        &n.messages()[messages_before..]
    );
    assert_eq!(
        before,
        after,
        "the idle daemon woke up {} time(s) without a watchdog{}",
        after - before,
        d.log_tail()
    );

    d.signal(Signal::SIGTERM);
    n.wait_for(DEADLINE, "with STOPPING=1", is_stopping);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", d.log_tail());
    // Everything the daemon ever sent is in; count what must be there once or never.
    while n.recv(Duration::from_millis(1)).is_some() {}
    assert_eq!(n.count("READY=1"), 1, "{:?}", n.messages());
    assert_eq!(n.count("STOPPING=1"), 1, "{:?}", n.messages());
    assert_eq!(
        n.count("WATCHDOG=1"),
        0,
        "WATCHDOG=1 without WATCHDOG_USEC: {:?}",
        n.messages()
    );
}

/// An abstract `@name` NOTIFY_SOCKET, and the watchdog: WATCHDOG_USEC=200000 means a
/// keep-alive every 100 ms, no more often.
#[test]
fn abstract_notify_socket_and_watchdog_keepalives() {
    let mut n = NotifyListener::bind_abstract();
    let launched = Instant::now();
    let mut d = Launch::new(&boot_config())
        .env("NOTIFY_SOCKET", &n.address)
        .env("WATCHDOG_USEC", "200000")
        .wait(WaitFor::Nothing)
        .start();
    let ready = n.wait_for(DEADLINE, "with READY=1", is_ready);
    assert_eq!(
        notify_field(&ready, "MAINPID"),
        Some(d.pid().to_string().as_str()),
        "MAINPID in {ready:?}"
    );
    assert!(notify_field(&ready, "STATUS").is_some(), "{ready:?}");
    d.wait_socket();

    n.wait_for(DEADLINE, "with WATCHDOG=1", |m| m == "WATCHDOG=1");
    n.wait_for(DEADLINE, "with a second WATCHDOG=1", |m| m == "WATCHDOG=1");

    d.signal(Signal::SIGTERM);
    n.wait_for(DEADLINE, "with STOPPING=1", is_stopping);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0), "{}", d.log_tail());
    let lived = launched.elapsed();
    while n.recv(Duration::from_millis(1)).is_some() {}
    // At most one keep-alive per 100 ms of the daemon's life (plus rounding).
    let keepalives = n.count("WATCHDOG=1");
    let most = (lived.as_millis() / 100) as usize + 2;
    assert!(
        (2..=most).contains(&keepalives),
        "{keepalives} WATCHDOG=1 in {lived:?} (at most {most} expected)"
    );
}

/// WATCHDOG_PID equal to the daemon's pid (set by a shell that execs it): keep-alives.
#[test]
fn watchdog_pid_naming_the_daemon_gets_keepalives() {
    let mut n = NotifyListener::bind_abstract();
    let d = Launch::new(&boot_config())
        .env("NOTIFY_SOCKET", &n.address)
        .env("WATCHDOG_USEC", "200000")
        .wrapper(&["sh", "-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
        .wait(WaitFor::Nothing)
        .start();
    n.wait_for(DEADLINE, "with READY=1", is_ready);
    assert!(
        environ(d.pid()).contains(&format!("WATCHDOG_PID={}", d.pid())),
        "the daemon's WATCHDOG_PID is not its pid: {:?}",
        environ(d.pid())
    );
    n.wait_for(DEADLINE, "with WATCHDOG=1", |m| m == "WATCHDOG=1");
    n.wait_for(DEADLINE, "with a second WATCHDOG=1", |m| m == "WATCHDOG=1");
}

/// WATCHDOG_PID naming another process: the watchdog is not for us.
#[test]
fn watchdog_pid_naming_another_process_gets_none() {
    let mut n = NotifyListener::bind_abstract();
    let d = Launch::new(&boot_config())
        .env("NOTIFY_SOCKET", &n.address)
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .wait(WaitFor::Nothing)
        .start();
    n.wait_for(DEADLINE, "with READY=1", is_ready);
    // Ten watchdog periods: none may come.
    n.drain_for(Duration::from_millis(1000));
    assert_eq!(
        n.count("WATCHDOG=1"),
        0,
        "WATCHDOG=1 although WATCHDOG_PID is not the daemon: {:?}{}",
        n.messages(),
        d.log_tail()
    );
}

/// The daemon's own NOTIFY_SOCKET never reaches a worker: exec-ready workers get none,
/// notify-ready workers get the daemon's socket for them, and their READY=1 is not
/// forwarded to the manager.
#[test]
fn workers_never_inherit_the_managers_notify_socket() {
    let mut n = NotifyListener::bind_abstract();
    let config = format!(
        r#"
[templates.sleeper]
command = ["sleep", "100000"]

[templates.notifier]
command = [{worker}]
ready = "notify"
"#,
        worker = toml_str(worker_bin().to_str().unwrap())
    );
    let mut d = Launch::new(&config)
        .env("NOTIFY_SOCKET", &n.address)
        .wait(WaitFor::Nothing)
        .start();
    n.wait_for(DEADLINE, "with READY=1", is_ready);
    d.wait_socket();

    let plain = d.start_worker("plain", Some("sleeper"), &[]);
    let env = environ(plain);
    assert!(
        !env.iter().any(|v| v.starts_with("NOTIFY_SOCKET=")),
        "an exec-ready worker got a NOTIFY_SOCKET: {env:?}"
    );

    let notifier = d.start_worker("notifier", Some("notifier"), &[]);
    let env = environ(notifier);
    let theirs = env
        .iter()
        .find_map(|v| v.strip_prefix("NOTIFY_SOCKET="))
        .unwrap_or_else(|| panic!("a notify-ready worker got no NOTIFY_SOCKET: {env:?}"));
    assert_ne!(theirs, n.address, "the worker got the manager's socket");
    assert!(theirs.starts_with('@'), "not an abstract socket: {theirs}");
    let reply = d.request_ok(&wait_ready_req("notifier"));
    assert_eq!(reply.pid, Some(notifier), "{reply:?}");
    // The worker's READY=1 went to the daemon, not to the manager.
    n.drain_for(Duration::from_millis(300));
    assert_eq!(n.count("READY=1"), 1, "{:?}", n.messages());
}

// ---------------------------------------------------------------------------------------
// Logging

/// `2026-11-24T16:54:00.123Z ` at the start of a line.
fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 24
        && b[..24].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `<N>` at the start of a line (N a syslog priority), if any.
fn priority_of(line: &str) -> Option<u8> {
    let b = line.as_bytes();
    (b.len() >= 3 && b[0] == b'<' && b[2] == b'>' && b[1].is_ascii_digit()).then(|| b[1] - b'0')
}

/// A sleeper, and a template whose workers give up at once (see [`info_warn_error`]).
fn logging_config() -> String {
    [
        LENIENT_SUPERVISOR,
        TRANSIENT_SLEEPER,
        r#"
[templates.give_up]
command = ["sh", "-c", "exit 3"]
restart = "transient"
max_restarts = 0
on_limit = "give_up"
"#,
    ]
    .concat()
}

/// Produces an info, a warn and an error line: start a worker, SIGKILL it (`exited
/// abnormally ... restarting` is a warning), and a worker that gives up (an error).
fn info_warn_error(d: &TestDaemon) {
    let pid = d.start_worker("w", Some("sleeper"), &[]);
    d.request_ok(&kill_req("w", None));
    d.wait_restarted("w", pid);
    d.start_worker("quitter", Some("give_up"), &[]);
    d.wait_log("giving up");
}

/// JOURNAL_STREAM naming the daemon's stderr: `<N>` priorities, no timestamps.
#[test]
fn journal_stream_lines_have_priorities_and_no_timestamp() {
    let n = NotifyListener::bind_abstract();
    let d = Launch::new(&logging_config())
        .journal_stream()
        .env("RUST_LOG", "debug")
        .env("NOTIFY_SOCKET", &n.address)
        .start();
    info_warn_error(&d);
    let log = d.log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            priority_of(line).is_some_and(|p| [3, 4, 6, 7].contains(&p)),
            "a line without a syslog priority prefix: {line:?}{}",
            d.log_tail()
        );
        assert!(
            !has_timestamp(&line[3..]),
            "a timestamp in a journal line: {line:?}"
        );
    }
    let find = |prefix: &str, needle: &str| {
        assert!(
            log.lines()
                .any(|l| l.starts_with(prefix) && l.contains(needle)),
            "no `{prefix}...{needle}...` line{}",
            d.log_tail()
        )
    };
    find("<6>", "listening on");
    find("<6>", "w: started, pid");
    find("<4>", "exited abnormally");
    find("<3>", "giving up");
    find("<7>", "sd_notify: READY=1");
}

/// Without JOURNAL_STREAM, or with one that names another file: timestamped lines.
#[test]
fn without_a_matching_journal_stream_lines_have_timestamps() {
    for other in [None, Some("1:2")] {
        let mut launch = Launch::new(&logging_config());
        if let Some(value) = other {
            launch = launch.env("JOURNAL_STREAM", value);
        }
        let d = launch.start();
        info_warn_error(&d);
        let log = d.log();
        for line in log.lines().filter(|l| !l.is_empty()) {
            assert!(
                has_timestamp(line),
                "a line without a timestamp (JOURNAL_STREAM={other:?}): {line:?}"
            );
            assert!(priority_of(line).is_none(), "{line:?}");
        }
        let listening = lines_with(&log, "listening on");
        assert!(
            listening.len() == 1 && listening[0][24..].trim_start().starts_with("INFO"),
            "{listening:?}"
        );
        assert!(
            lines_with(&log, "exited abnormally")
                .iter()
                .all(|l| l[24..].trim_start().starts_with("WARN")),
            "{}",
            d.log_tail()
        );
    }
}

/// RUST_LOG=warn hides info lines (it wins over the config's `log_level = "debug"`).
#[test]
fn rust_log_warn_hides_info_lines() {
    let config = with_debug_log(&logging_config());
    let d = Launch::new(&config)
        .env("RUST_LOG", "warn")
        .wait(WaitFor::Socket)
        .start();
    info_warn_error(&d);
    let log = d.log();
    assert!(
        !lines_with(&log, "exited abnormally").is_empty(),
        "no warning{}",
        d.log_tail()
    );
    for line in log.lines() {
        let level = line.get(24..).unwrap_or("").trim_start();
        assert!(
            level.starts_with("WARN") || level.starts_with("ERROR"),
            "RUST_LOG=warn let this through: {line:?}"
        );
    }
}

/// `log_level = "debug"` applies when RUST_LOG is not set at all.
#[test]
fn config_log_level_debug_applies_without_rust_log() {
    let n = NotifyListener::bind_abstract();
    let config = with_debug_log(&logging_config());
    // Launch never passes the test's own RUST_LOG on.
    let d = Launch::new(&config)
        .env("NOTIFY_SOCKET", &n.address)
        .start();
    assert!(
        !environ(d.pid()).iter().any(|v| v.starts_with("RUST_LOG=")),
        "the daemon has RUST_LOG set: {:?}",
        environ(d.pid())
    );
    d.wait_log("sd_notify: READY=1");
    let debug = lines_with(&d.log(), "sd_notify: READY=1");
    assert!(
        debug[0][24..].trim_start().starts_with("DEBUG"),
        "{debug:?}"
    );

    // And with the default level (no log_level, no RUST_LOG) debug lines stay hidden.
    let n2 = NotifyListener::bind_abstract();
    let d2 = Launch::new(&logging_config())
        .env("NOTIFY_SOCKET", &n2.address)
        .start();
    info_warn_error(&d2);
    assert!(
        !d2.log().contains("DEBUG"),
        "debug lines at the default level{}",
        d2.log_tail()
    );
}
