//! Worker readiness (`ready = "notify"`): a worker gets the daemon's own NOTIFY_SOCKET,
//! stays `starting` until it sends `READY=1`, and `wait_ready` / `start --wait-ready`
//! answer only then; `ready_timeout_ms` kills a worker that never gets ready (the
//! restart rule applies); datagrams from processes that are not workers are ignored.
//!
//! The `gated` template runs the real `dynsup-worker` (which sends `READY=1` and
//! `STATUS=serving as NAME` once it has started) only after the test creates a gate
//! file: the shell waits for it and then execs the worker under the same pid.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The templates below, with gate files in `dir`.
fn config(dir: &Path) -> String {
    let templates = format!(
        r#"
[templates.gated]
command = ["sh", "-c", "while [ ! -e \"$0/gate-$DYNSUP_NAME\" ]; do sleep 0.01; done; exec \"$1\"", {dir}, {worker}]
ready = "notify"

[templates.never]
command = [{worker}, "--never-ready"]
ready = "notify"
ready_timeout_ms = 300
restart = "transient"

[templates.patient]
command = [{worker}, "--never-ready"]
ready = "notify"
ready_timeout_ms = 600000

[templates.plain]
command = ["sleep", "100000"]

[templates.helper]
command = ["sh", "-c", "\"$0\" -c \"$1\" & exec sleep 100000", {python}, {helper}]
ready = "notify"

[templates.with_fd]
command = [{python}, "-c", {with_fd}]
ready = "notify"
ready_timeout_ms = 3000
"#,
        dir = toml_str(dir.to_str().unwrap()),
        worker = toml_str(worker_bin().to_str().unwrap()),
        python = toml_str(python3().to_str().unwrap()),
        helper = toml_str(HELPER),
        with_fd = toml_str(WITH_FD),
    );
    [LENIENT_SUPERVISOR, &templates].concat()
}

/// A helper process in the worker's process group (not the worker itself) reports
/// readiness, then stays alive, as a shell script's helper might.
const HELPER: &str = r#"
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=helped", "\0" + addr[1:] if addr.startswith("@") else addr)
time.sleep(100000)
"#;

/// The worker itself reports readiness with a file descriptor attached (as
/// `sd_pid_notify_with_fds` or a `FDSTORE=1` message would), then stays alive.
const WITH_FD: &str = r#"
import array, os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
r, w = os.pipe()
s.sendmsg([b"READY=1\nSTATUS=with an fd"],
          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]).tobytes())],
          0, "\0" + addr[1:])
time.sleep(100000)
"#;

fn open_gate(dir: &Path, name: &str) {
    std::fs::write(dir.join(format!("gate-{name}")), "").expect("gate file");
}

/// `{"cmd":"wait_ready"}` over the socket is answered only after the worker's READY=1;
/// until then `list` shows it `starting`; then `running`, ready, with its STATUS=.
#[test]
fn wait_ready_request_answers_only_after_ready() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let mut client = d.client();
    client.send_batch(&[start_req("w", Some("gated"), &[]), wait_ready_req("w")]);
    let started = client.recv();
    assert!(started.ok, "{started:?}");
    let pid = started.pid.expect("start reply pid");

    // Both requests were one batch: wait_ready has been handled, and must be waiting.
    let row = d.list_one("w").expect("w registered");
    assert_eq!(row.state, WorkerStateName::Starting, "{row:?}");
    assert!(!row.ready, "{row:?}");
    assert_eq!(row.pid, Some(pid));
    assert_eq!(row.status, None, "{row:?}");
    assert_eq!(d.counts().active, 1);
    assert!(
        !client.has_pending(),
        "wait_ready answered before READY=1: {:?}",
        client.recv()
    );
    // A second waiter, on another connection, waits too.
    let mut other = d.client();
    other.send_batch(&[wait_ready_req("w")]);

    open_gate(dir.path(), "w");
    let ready = client.recv();
    assert!(ready.ok, "wait_ready: {ready:?}{}", d.log_tail());
    assert_eq!(ready.pid, Some(pid), "{ready:?}");
    assert_eq!(ready.state, Some(WorkerStateName::Running), "{ready:?}");
    let ready2 = other.recv();
    assert!(ready2.ok && ready2.pid == Some(pid), "{ready2:?}");
    // The log is written by the daemon's log thread, maybe just after the reply.
    d.wait_log(&format!("w: ready (pid {pid})"));
    // The worker itself says it sent READY=1 (it is the real dynsup-worker).
    d.wait_worker_line("w", "sent READY=1", 1);

    let row = d.list_one("w").expect("w registered");
    assert_eq!(row.state, WorkerStateName::Running, "{row:?}");
    assert!(row.ready, "{row:?}");
    assert_eq!(row.status.as_deref(), Some("serving as w"), "{row:?}");

    // Once ready, wait_ready answers at once; for an exec-ready worker too.
    let again = d.request_ok(&wait_ready_req("w"));
    assert_eq!(again.pid, Some(pid));
    let plain = d.start_worker("p", Some("plain"), &[]);
    let row = d.list_one("p").unwrap();
    assert!(
        row.ready && row.state == WorkerStateName::Running,
        "{row:?}"
    );
    assert_eq!(d.request_ok(&wait_ready_req("p")).pid, Some(plain));
    assert_error(&d.request(&wait_ready_req("nope")), ErrorKind::NotFound);
}

/// `dynsup start NAME --wait-ready` returns (status 0) only once the worker is ready.
#[test]
fn start_wait_ready_cli_returns_once_ready() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let mut cli = d.cli_process(&["start", "c", "--template", "gated", "--wait-ready"]);
    let pid = d.wait_until(DEADLINE, "c to be registered", || {
        d.list_one("c").and_then(|row| row.pid)
    });
    let row = d.list_one("c").unwrap();
    assert_eq!(row.state, WorkerStateName::Starting, "{row:?}");
    assert!(
        cli.try_status().is_none(),
        "start --wait-ready returned before READY=1: {:?}",
        cli.lines
    );
    open_gate(dir.path(), "c");
    let (status, stderr) = cli.wait_exit(DEADLINE);
    assert!(status.success(), "{status:?}: {stderr}{}", d.log_tail());
    while cli.try_line(Duration::from_millis(1)).is_some() {}
    assert!(
        cli.lines.iter().any(|l| l.contains(&pid.to_string())),
        "stdout does not name pid {pid}: {:?}",
        cli.lines
    );
    let row = d.list_one("c").unwrap();
    assert!(
        row.ready && row.state == WorkerStateName::Running,
        "{row:?}"
    );
    assert_eq!(row.status.as_deref(), Some("serving as c"));
}

/// A worker that never sends READY=1: `starting`, then killed after
/// ready_timeout_ms; its waiter gets `not_ready`; (transient) it is restarted.
#[test]
fn never_ready_worker_is_killed_after_the_timeout_and_restarted() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let mut client = d.client();
    let sent = Instant::now();
    client.send_batch(&[
        start_req("n", Some("never"), &[]),
        Request::list(),
        wait_ready_req("n"),
    ]);
    let started = client.recv();
    assert!(started.ok, "{started:?}");
    let first = started.pid.expect("pid");
    let first_stat = stat(first).expect("the worker in /proc");
    let list = client.recv();
    let row = list
        .workers
        .as_ref()
        .and_then(|w| w.iter().find(|w| w.name == "n"))
        .unwrap_or_else(|| panic!("n not listed: {list:?}"));
    assert_eq!(row.state, WorkerStateName::Starting, "{row:?}");
    assert!(!row.ready);

    let not_ready = client.recv();
    let waited = sent.elapsed();
    assert_error(&not_ready, ErrorKind::NotReady);
    assert!(
        waited >= Duration::from_millis(300),
        "not_ready after {waited:?}, before ready_timeout_ms = 300"
    );
    let message = &not_ready.error.as_ref().unwrap().message;
    assert!(message.contains("300 ms"), "{message}");

    // Killed (SIGKILL), reaped, restarted under a new pid, `starting` again.
    let second = d.wait_restarted("n", first);
    d.wait_until(DEADLINE, "the first instance to be gone", || {
        is_gone(&first_stat).then_some(())
    });
    d.assert_reaped(first);
    d.wait_log("n: not ready within 300 ms");
    let row = d.list_one("n").unwrap();
    assert!(row.restarts >= 1, "{row:?}");
    let last = row.last_exit.as_ref().expect("last_exit");
    assert!(last.reason.contains("SIGKILL"), "{row:?}");
    if row.pid == Some(second) {
        assert_eq!(row.state, WorkerStateName::Starting, "{row:?}");
    }
    d.request_ok(&stop_req("n", None));
    d.wait_unregistered("n");
}

/// `start --wait-ready` of a worker that never gets ready fails (status 1) and says why.
#[test]
fn start_wait_ready_cli_reports_the_timeout() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let out = d.cli(&["start", "n", "--template", "never", "--wait-ready"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("READY=1") && stderr.contains("300 ms"),
        "stderr: {stderr}"
    );
}

/// A datagram to a worker's NOTIFY_SOCKET from a process that is not a worker (the
/// test itself) is ignored, and logged at debug level with its pid.
#[test]
fn notify_from_a_process_that_is_not_a_worker_is_ignored() {
    let dir = TestDir::new();
    let text = with_debug_log(&config(dir.path()));
    let d = Launch::new(&text).start();
    let pid = d.start_worker("p", Some("patient"), &[]);
    let address = environ(pid)
        .iter()
        .find_map(|v| v.strip_prefix("NOTIFY_SOCKET=").map(str::to_string))
        .unwrap_or_else(|| panic!("no NOTIFY_SOCKET for the worker: {:?}", environ(pid)));
    assert!(address.starts_with('@'), "{address}");

    send_notify(&address, "READY=1\nSTATUS=forged").expect("send to the worker's socket");
    d.wait_log(&format!(
        "ignored an sd_notify message from pid {}",
        std::process::id()
    ));
    let row = d.list_one("p").unwrap();
    assert_eq!(row.state, WorkerStateName::Starting, "{row:?}");
    assert!(!row.ready, "{row:?}");
    assert_eq!(row.status, None, "a stranger set the status: {row:?}");
    assert_eq!(row.pid, Some(pid));
    assert_eq!(d.count(), 1);
}

/// A process in the worker's process group (a helper of a shell-script worker) may
/// report for it: the pid is mapped through its process group.
#[test]
fn a_helper_in_the_workers_process_group_reports_for_it() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let mut client = d.client();
    client.send_batch(&[start_req("h", Some("helper"), &[]), wait_ready_req("h")]);
    let pid = client.recv().pid.expect("pid");
    let ready = client.recv();
    assert!(ready.ok, "{ready:?}{}", d.log_tail());
    // The main pid is reported, not the helper's.
    assert_eq!(ready.pid, Some(pid));
    let row = d.list_one("h").unwrap();
    assert!(row.ready, "{row:?}");
    assert_eq!(row.status.as_deref(), Some("helped"));
}

/// A READY=1 datagram that carries a file descriptor (SCM_RIGHTS, as sd_notify's
/// FDSTORE or systemd-notify's barrier do) still counts: the daemon's control buffer
/// has room for the fds (which it closes), so the credentials are not truncated away.
#[test]
fn ready_with_a_file_descriptor_attached_is_accepted() {
    let dir = TestDir::new();
    let d = TestDaemon::start(&config(dir.path()));
    let mut client = d.client();
    client.send_batch(&[start_req("f", Some("with_fd"), &[]), wait_ready_req("f")]);
    assert!(client.recv().ok);
    let reply = client.recv();
    assert!(
        reply.ok,
        "READY=1 with an fd attached was ignored: {reply:?}{}",
        d.log_tail()
    );
}
