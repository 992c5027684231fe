//! Integration tests: run the real `dynsup-worker` binary, talk to it over
//! stdin, watch its stderr and send it real signals. No sleeps: every wait
//! is on a stderr line or on the child's exit, bounded by a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running worker; killed and reaped on drop, even if the test panics.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn spawn(env_name: Option<&str>, args: &[&str]) -> Worker {
        Worker::spawn_with_env(env_name, args, &[])
    }

    fn spawn_with_env(env_name: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynsup-worker"));
        cmd.args(args)
            .env_remove("DYNSUP_NAME")
            .env_remove("RUST_BACKTRACE")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(name) = env_name {
            cmd.env("DYNSUP_NAME", name);
        }
        let mut child = cmd.spawn().expect("spawn dynsup-worker");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker {
            child,
            stdin,
            stdout,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to `TIMEOUT`) for a stderr line containing `needle`.
    fn expect_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {needle:?}; stderr so far: {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stderr closed before {needle:?}; stderr: {:#?}", self.seen)
                }
            }
        }
    }

    fn send(&mut self, msg: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{msg}").expect("write to worker stdin");
        stdin.flush().expect("flush worker stdin");
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the child is
        // not reaped yet (we own it), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the child to exit: first for its stderr to close (bounded
    /// by `TIMEOUT`), then reaps it. Returns the status and all stderr lines.
    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("worker did not exit in time; stderr: {:#?}", self.seen)
                }
            }
        }
        let status = self.child.wait().expect("wait for worker");
        (status, self.seen.clone())
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn starts_with_name_from_env() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    assert_eq!(w.expect_line("Starting"), r#"info: Starting "w1""#);
}

#[test]
fn starts_with_name_from_argv() {
    let mut w = Worker::spawn(None, &["--print-pid", "w1"]);
    assert_eq!(w.expect_line("Starting"), r#"info: Starting "w1""#);
}

#[test]
fn env_name_wins_over_argv_and_default_is_worker() {
    let mut w = Worker::spawn(Some("from-env"), &["from-argv"]);
    assert_eq!(w.expect_line("Starting"), r#"info: Starting "from-env""#);
    let mut w = Worker::spawn(None, &[]);
    assert_eq!(w.expect_line("Starting"), r#"info: Starting "worker""#);
}

#[test]
fn work_says_hola() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    w.expect_line(r#"Starting "w1""#);
    w.send("work");
    assert_eq!(w.expect_line("hola"), "info: hola");
}

#[test]
fn unknown_message_is_ignored_and_worker_keeps_going() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    w.expect_line(r#"Starting "w1""#);
    w.send("");
    w.send("bogus\r");
    assert_eq!(
        w.expect_line("unknown"),
        r#"warn: unknown message "bogus" ignored"#
    );
    w.send("work");
    w.expect_line("info: hola");
    assert!(w.is_running());
}

#[test]
fn raise_crashes_with_status_101() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    w.expect_line(r#"Starting "w1""#);
    w.send("raise");
    let (status, stderr) = w.wait_exit();
    assert_eq!(status.code(), Some(101), "stderr: {stderr:#?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("Error, Server w1 has crashed")),
        "stderr: {stderr:#?}"
    );
}

#[test]
fn sigterm_exits_zero_while_blocked_on_stdin() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    w.expect_line(r#"Starting "w1""#);
    w.signal(libc::SIGTERM);
    assert_eq!(
        w.expect_line("Exiting"),
        "info: Exiting worker: w1 with reason: shutdown"
    );
    let (status, _) = w.wait_exit();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ignore_sigterm_keeps_running_until_sigkill() {
    let mut w = Worker::spawn(Some("w1"), &["--ignore-sigterm"]);
    w.expect_line(r#"Starting "w1""#);
    w.signal(libc::SIGTERM);
    assert_eq!(w.expect_line("SIGTERM"), "info: ignoring SIGTERM");
    // Still alive and serving its mailbox.
    w.send("work");
    w.expect_line("info: hola");
    assert!(w.is_running());
    w.signal(libc::SIGKILL);
    let (status, stderr) = w.wait_exit();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!stderr.iter().any(|l| l.contains("Exiting worker")));
}

#[test]
fn stdin_eof_exits_zero() {
    let mut w = Worker::spawn(Some("w1"), &[]);
    w.expect_line(r#"Starting "w1""#);
    drop(w.stdin.take());
    assert_eq!(w.expect_line("stdin"), "info: stdin closed, exiting");
    let (status, _) = w.wait_exit();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn exit_code_flag_sets_status() {
    let mut w = Worker::spawn(Some("w1"), &["--exit-code", "3"]);
    w.expect_line(r#"Starting "w1""#);
    let (status, _) = w.wait_exit();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn bad_flags_are_errors_not_panics() {
    for args in [&["--exit-code"][..], &["--exit-code", "x"], &["--nope"]] {
        let mut w = Worker::spawn(Some("w1"), args);
        let (status, stderr) = w.wait_exit();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr:#?}");
        assert!(
            stderr.iter().any(|l| l.starts_with("error: ")),
            "{stderr:#?}"
        );
    }
}

#[test]
fn print_pid_writes_pid_to_stdout() {
    let mut w = Worker::spawn(None, &["--print-pid", "--exit-code", "0", "w1"]);
    w.expect_line(r#"Starting "w1""#);
    let pid = w.child.id();
    let (status, _) = w.wait_exit();
    assert!(status.success());
    // The worker has exited, so its stdout is at EOF: this cannot block.
    let mut out = String::new();
    w.stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("read worker stdout");
    assert_eq!(out, format!("pid={pid}\n"));
}

/// An abstract datagram socket standing in for the supervisor's `NOTIFY_SOCKET`.
fn notify_listener() -> (std::os::unix::net::UnixDatagram, String) {
    use std::os::linux::net::SocketAddrExt;
    let name = format!(
        "dynsup-worker-test-{}-{:?}",
        std::process::id(),
        Instant::now()
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind");
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    (socket, format!("@{name}"))
}

fn recv_message(socket: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notify datagram in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn with_watchdog_usec_it_pings_at_half_the_interval_once_ready() {
    let (socket, address) = notify_listener();
    let mut w = Worker::spawn_with_env(
        Some("wd"),
        &["--stop-watchdog-after", "3"],
        &[("NOTIFY_SOCKET", &address), ("WATCHDOG_USEC", "100000")],
    );
    assert!(recv_message(&socket).starts_with("READY=1"));
    assert_eq!(
        w.expect_line("watchdog:"),
        "info: watchdog: sending WATCHDOG=1 every 50 ms"
    );
    for _ in 0..3 {
        assert_eq!(recv_message(&socket), "WATCHDOG=1");
    }
    w.expect_line("watchdog: stopped after 3 pings");
    assert!(w.is_running());
}

#[test]
fn watchdog_flags_ping_on_their_own_period_and_trigger() {
    let (socket, address) = notify_listener();
    let mut w = Worker::spawn_with_env(
        Some("wd"),
        &[
            "--never-ready",
            "--watchdog-ping-ms",
            "5",
            "--watchdog-trigger-after",
            "2",
        ],
        &[("NOTIFY_SOCKET", &address)],
    );
    w.expect_line("sending WATCHDOG=1 every 5 ms");
    assert_eq!(recv_message(&socket), "WATCHDOG=1");
    assert_eq!(recv_message(&socket), "WATCHDOG=1");
    assert_eq!(recv_message(&socket), "WATCHDOG=trigger");
    w.expect_line("watchdog: sending WATCHDOG=trigger");
}

#[test]
fn without_watchdog_usec_or_a_flag_it_never_pings() {
    let (socket, address) = notify_listener();
    let mut w = Worker::spawn_with_env(Some("quiet"), &[], &[("NOTIFY_SOCKET", &address)]);
    assert!(recv_message(&socket).starts_with("READY=1"));
    // Proof that nothing else came: the next datagram is the test's own marker.
    w.send("work");
    w.expect_line("hola");
    let me = std::os::unix::net::UnixDatagram::unbound().unwrap();
    use std::os::linux::net::SocketAddrExt;
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(&address.as_bytes()[1..]).unwrap();
    me.send_to_addr(b"MARKER", &addr).unwrap();
    assert_eq!(recv_message(&socket), "MARKER");
}
