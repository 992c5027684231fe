//! The integration-test harness: real daemons, real processes, real signals.
//!
//! - [`TestDir`]: a unique temporary directory per test (config, socket, daemon log),
//!   removed when the test passes and kept (its path printed) when it fails.
//! - [`TestDaemon`]: runs `dynsup daemon --config FILE --socket PATH` with its stderr
//!   sent to a file (never an unread pipe, which would block the daemon's logging), waits
//!   until the socket accepts and the log says `listening on`, and offers requests,
//!   log access, CLI runs and exit waits. Its `Drop` SIGKILLs the daemon, checks that
//!   every worker died with it (PDEATHSIG) and kills whatever is left, so a failing test
//!   leaves no process behind.
//! - [`wait_until`] / [`TestDaemon::wait_until`]: the only way to wait for something.
//!   They poll with a short backoff up to a deadline; no test sleeps to synchronise.
//! - `/proc` helpers: [`stat`], [`is_alive`], [`is_zombie`], [`fd_count`],
//!   [`children_of`], [`cmdline`], [`environ`].
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[allow(unused_imports)]
pub use dynsup::protocol::{
    ErrorKind, ExitReport, Reply, Request, StopReport, WorkerInfo, WorkerStateName,
};
pub use nix::sys::signal::Signal;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// The deadline for anything that should happen "soon". Generous on purpose: CI is a
/// loaded two-core machine, and a passing test never waits for the full deadline.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How long a request may take to be answered before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Binaries

/// The `dynsup` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dynsup"))
}

/// The sample worker, which cargo builds next to `dynsup` only when the worker
/// package's tests are selected too (`cargo test --workspace`).
pub fn worker_bin() -> PathBuf {
    let path = bin().with_file_name("dynsup-worker");
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo test --workspace`",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Waiting

/// Polls `f` with a short backoff until it returns `Some`, or `timeout` passes.
pub fn try_wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(1);
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // Sleeping here is the backoff of a poll, not a synchronisation.
        thread::sleep(backoff.min(deadline - now));
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Polls `f` until it returns `Some`; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match try_wait_until(timeout, f) {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------------
// Temporary directories

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique directory for one test. Removed on drop unless the thread is panicking.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let mut base = std::env::temp_dir();
        // Unix socket paths are limited to 107 bytes; keep ours well below.
        if base.as_os_str().len() > 48 {
            base = PathBuf::from("/tmp");
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!(
            "dynsup-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// /proc

/// The fields of `/proc/<pid>/stat` the tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks after boot: tells a process from a later one that
    /// reused its pid.
    pub starttime: u64,
}

/// Parses `/proc/<pid>/stat`; `None` if there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Parses the text of a `/proc/<pid>/stat` file.
pub fn parse_stat(pid: i32, text: &str) -> Option<Stat> {
    // `comm` is in parentheses and may itself contain spaces and parentheses: the
    // fields that follow start after the *last* ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    Some(Stat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        starttime: fields.get(19)?.parse().ok()?,
    })
}

/// The process exists and is neither a zombie nor dead.
pub fn is_alive(pid: i32) -> bool {
    matches!(stat(pid), Some(s) if s.state != 'Z' && s.state != 'X')
}

pub fn is_zombie(pid: i32) -> bool {
    matches!(stat(pid), Some(s) if s.state == 'Z')
}

/// The process recorded as `s` is gone: no such pid, a zombie (reparented and not yet
/// reaped counts as gone), or the pid now belongs to a later process.
pub fn is_gone(s: &Stat) -> bool {
    match stat(s.pid) {
        None => true,
        Some(now) => now.state == 'Z' || now.state == 'X' || now.starttime != s.starttime,
    }
}

/// How many file descriptors the process has open.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// Every process whose parent is `ppid`, zombies included.
pub fn children_of(ppid: i32) -> Vec<Stat> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if s.ppid == ppid {
                out.push(s);
            }
        }
    }
    out.sort_by_key(|s| s.pid);
    out
}

/// The zombie children of `ppid`: exited but not reaped.
pub fn zombie_children_of(ppid: i32) -> Vec<i32> {
    children_of(ppid)
        .into_iter()
        .filter(|s| s.state == 'Z')
        .map(|s| s.pid)
        .collect()
}

fn nul_separated(path: String) -> Vec<String> {
    fs::read(path)
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The process's argv.
pub fn cmdline(pid: i32) -> Vec<String> {
    nul_separated(format!("/proc/{pid}/cmdline"))
}

/// The process's initial environment, as `KEY=value` strings.
pub fn environ(pid: i32) -> Vec<String> {
    nul_separated(format!("/proc/{pid}/environ"))
}

/// A hexadecimal signal-set line of `/proc/<pid>/status` (`SigBlk`, `SigIgn`, ...).
pub fn signal_set(pid: i32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(line[field.len() + 1..].trim(), 16).expect("hex signal set")
}

/// Sends `signal` to `pid` with kill(2), as an outsider would.
#[track_caller]
pub fn send_signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("kill({pid}, {signal}): {e}"));
}

// ---------------------------------------------------------------------------------------
// Requests

/// Anything that can be sent as one request line: a [`Request`] or raw text.
pub trait ToLine {
    fn to_line(&self) -> String;
}

impl ToLine for Request {
    fn to_line(&self) -> String {
        serde_json::to_string(self).expect("encode request")
    }
}

impl ToLine for str {
    fn to_line(&self) -> String {
        self.to_string()
    }
}

impl ToLine for String {
    fn to_line(&self) -> String {
        self.clone()
    }
}

impl<T: ToLine + ?Sized> ToLine for &T {
    fn to_line(&self) -> String {
        (**self).to_line()
    }
}

/// `start` from a template (or the only one), with extra arguments.
pub fn start_req(name: &str, template: Option<&str>, args: &[&str]) -> Request {
    Request::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: args.iter().map(|s| s.to_string()).collect(),
        command: None,
    }
}

/// `start` with a command that replaces the template's.
pub fn start_cmd_req(name: &str, template: Option<&str>, command: &[&str]) -> Request {
    Request::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: Vec::new(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
    }
}

pub fn lookup_req(name: &str) -> Request {
    Request::Lookup {
        name: name.to_string(),
    }
}

pub fn stop_req(name: &str, timeout_ms: Option<u64>) -> Request {
    Request::Stop {
        name: name.to_string(),
        timeout_ms,
    }
}

pub fn kill_req(name: &str, signal: Option<&str>) -> Request {
    Request::Kill {
        name: name.to_string(),
        signal: signal.map(str::to_string),
    }
}

pub fn cast_req(name: &str, message: &str) -> Request {
    Request::Cast {
        name: name.to_string(),
        message: message.to_string(),
    }
}

/// The error kind of a reply, or `None` if it succeeded.
pub fn error_kind(reply: &Reply) -> Option<ErrorKind> {
    reply.error.as_ref().map(|e| e.kind)
}

/// Asserts that `reply` failed with `kind`.
#[track_caller]
pub fn assert_error(reply: &Reply, kind: ErrorKind) {
    assert!(
        !reply.ok,
        "expected a {kind:?} error, got success: {reply:?}"
    );
    assert_eq!(error_kind(reply), Some(kind), "wrong error in {reply:?}");
    assert!(
        !reply.error.as_ref().unwrap().message.is_empty(),
        "error without a message: {reply:?}"
    );
}

/// One connection to the daemon's socket.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// The daemon log, quoted in failure messages.
    log: Option<PathBuf>,
}

impl Client {
    pub fn connect(socket: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client {
            stream,
            reader,
            log: None,
        })
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    fn context(&self) -> String {
        match &self.log {
            Some(path) => log_tail_of(path),
            None => String::new(),
        }
    }

    /// Writes one request line (the newline is added).
    #[track_caller]
    pub fn send<R: ToLine + ?Sized>(&mut self, req: &R) {
        let mut line = req.to_line();
        line.push('\n');
        if let Err(e) = self.stream.write_all(line.as_bytes()) {
            panic!("sending {:?}: {e}{}", line.trim_end(), self.context());
        }
    }

    /// Reads one raw reply line: `Ok(None)` at end of stream.
    pub fn recv_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    }

    /// Reads and decodes one reply.
    #[track_caller]
    pub fn recv(&mut self) -> Reply {
        match self.recv_line() {
            Ok(Some(line)) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("undecodable reply {line:?}: {e}{}", self.context())),
            Ok(None) => panic!("the daemon closed the connection{}", self.context()),
            Err(e) => panic!("no reply within {REPLY_TIMEOUT:?}: {e}{}", self.context()),
        }
    }

    /// Sends one request and reads its reply.
    #[track_caller]
    pub fn request<R: ToLine + ?Sized>(&mut self, req: &R) -> Reply {
        self.send(req);
        self.recv()
    }

    /// Sends every line (from a second thread, so that neither side can block the
    /// other) and reads as many replies, in order.
    #[track_caller]
    pub fn pipeline(&mut self, lines: &[String]) -> Vec<Reply> {
        let mut buf = String::new();
        for line in lines {
            buf.push_str(line);
            buf.push('\n');
        }
        let mut writer = self.stream.try_clone().expect("clone stream");
        let handle = thread::spawn(move || writer.write_all(buf.as_bytes()));
        let replies: Vec<Reply> = (0..lines.len()).map(|_| self.recv()).collect();
        if let Err(e) = handle.join().expect("writer thread") {
            panic!("pipelined write failed: {e}{}", self.context());
        }
        replies
    }

    /// True once the daemon has closed the connection (end of stream or reset).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The daemon

fn log_tail_of(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    let mut out = format!(
        "\n--- last {} lines of {} ---\n",
        lines.len() - from,
        path.display()
    );
    for line in &lines[from..] {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("--- end of log ---");
    out
}

/// A `dynsup daemon` child process.
pub struct TestDaemon {
    dir: Rc<TestDir>,
    child: Child,
    status: Option<ExitStatus>,
    pid: i32,
    socket: PathBuf,
    config: Option<PathBuf>,
    log: PathBuf,
}

impl TestDaemon {
    /// Writes `config`, starts the daemon and waits until it is listening.
    #[track_caller]
    pub fn start(config: &str) -> TestDaemon {
        TestDaemon::launch(Rc::new(TestDir::new()), Some(config), &[], true)
    }

    /// As [`TestDaemon::start`], with extra daemon arguments.
    #[track_caller]
    pub fn start_with_args(config: &str, args: &[&str]) -> TestDaemon {
        TestDaemon::launch(Rc::new(TestDir::new()), Some(config), args, true)
    }

    /// A daemon on its built-in defaults (no `--config`).
    #[track_caller]
    pub fn start_without_config() -> TestDaemon {
        TestDaemon::launch(Rc::new(TestDir::new()), None, &[], true)
    }

    /// Starts the daemon without waiting for it to listen (for daemons expected to
    /// exit on their own).
    #[track_caller]
    pub fn spawn(config: &str) -> TestDaemon {
        TestDaemon::launch(Rc::new(TestDir::new()), Some(config), &[], false)
    }

    /// Starts another daemon in the same directory, on the same socket path.
    #[track_caller]
    pub fn start_another(&self, config: &str) -> TestDaemon {
        TestDaemon::launch(self.dir.clone(), Some(config), &[], true)
    }

    /// Starts the daemon with `signals` (shell names such as `USR2 INT`) ignored, as
    /// `nohup` or a background job would leave them.
    #[track_caller]
    pub fn start_ignoring(config: &str, signals: &str) -> TestDaemon {
        TestDaemon::launch_full(
            Rc::new(TestDir::new()),
            Some(config),
            &[],
            true,
            Some(signals),
        )
    }

    /// Starts `dynsup daemon [--config FILE] --socket DIR/d.sock ARGS...`.
    #[track_caller]
    pub fn launch(
        dir: Rc<TestDir>,
        config: Option<&str>,
        args: &[&str],
        wait_ready: bool,
    ) -> TestDaemon {
        TestDaemon::launch_full(dir, config, args, wait_ready, None)
    }

    #[track_caller]
    fn launch_full(
        dir: Rc<TestDir>,
        config: Option<&str>,
        args: &[&str],
        wait_ready: bool,
        ignore: Option<&str>,
    ) -> TestDaemon {
        worker_bin();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let socket = dir.join("d.sock");
        let log = dir.join(&format!("daemon-{n}.log"));
        let config = config.map(|text| dir.write(&format!("config-{n}.toml"), text));
        let mut cmd = match ignore {
            // The shell execs the daemon: same pid, with those signals ignored.
            Some(signals) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!("trap '' {signals}; exec \"$0\" \"$@\""))
                    .arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("daemon");
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--socket").arg(&socket).args(args);
        cmd.env_remove("DYNSUP_SOCKET")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                fs::File::create(dir.join(&format!("daemon-{n}.stdout"))).expect("stdout file"),
            ))
            .stderr(Stdio::from(fs::File::create(&log).expect("log file")));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin().display()));
        let pid = child.id() as i32;
        let mut daemon = TestDaemon {
            dir,
            child,
            status: None,
            pid,
            socket,
            config,
            log,
        };
        if wait_ready {
            daemon.wait_ready();
        }
        daemon
    }

    #[track_caller]
    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let log = self.log.clone();
        let child = &mut self.child;
        let mut exited = None;
        let ready = try_wait_until(DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            let listening = fs::read_to_string(&log)
                .map(|t| t.contains("listening on"))
                .unwrap_or(false);
            (listening && UnixStream::connect(&socket).is_ok()).then_some(true)
        });
        match ready {
            Some(true) => {}
            Some(false) => {
                self.status = exited;
                panic!(
                    "the daemon exited ({:?}) before it listened{}",
                    self.status,
                    self.log_tail()
                )
            }
            None => panic!(
                "the daemon did not listen on {} within {DEADLINE:?}{}",
                self.socket.display(),
                self.log_tail()
            ),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .expect("this daemon has no config file")
    }

    pub fn dir(&self) -> Rc<TestDir> {
        self.dir.clone()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole daemon log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log, formatted for a failure message.
    pub fn log_tail(&self) -> String {
        log_tail_of(&self.log)
    }

    /// Log lines that are output of worker `name` (`[name] ...`) and contain `needle`.
    pub fn worker_lines(&self, name: &str, needle: &str) -> usize {
        let prefix = format!("[{name}] ");
        self.log()
            .lines()
            .filter(|l| l.contains(&prefix) && l.contains(needle))
            .count()
    }

    /// Log lines that are exactly the output line `text` of worker `name`: they end
    /// with `[name] text`.
    pub fn worker_output_exact(&self, name: &str, text: &str) -> usize {
        let suffix = format!("[{name}] {text}");
        self.log()
            .lines()
            .filter(|l| l.trim_end().ends_with(&suffix))
            .count()
    }

    /// Waits until worker `name` has logged a line containing `needle` at least `n`
    /// times.
    #[track_caller]
    pub fn wait_worker_line(&self, name: &str, needle: &str, n: usize) {
        self.wait_until(
            DEADLINE,
            &format!("{n} log line(s) `[{name}] ...{needle}...`"),
            || (self.worker_lines(name, needle) >= n).then_some(()),
        )
    }

    /// Waits until the `n`th instance of the sample worker `name` has logged
    /// `Starting "name"` (its SIGTERM handler is installed by then).
    #[track_caller]
    pub fn wait_started(&self, name: &str, n: usize) {
        self.wait_worker_line(name, &format!("Starting \"{name}\""), n)
    }

    /// Waits until the log contains `needle`.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) {
        self.wait_until(DEADLINE, &format!("`{needle}` in the daemon log"), || {
            self.log().contains(needle).then_some(())
        })
    }

    /// Polls `f` until it returns `Some`; the failure message quotes the daemon log.
    #[track_caller]
    pub fn wait_until<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
        match try_wait_until(timeout, f) {
            Some(value) => value,
            None => panic!(
                "timed out after {timeout:?} waiting for {what}{}",
                self.log_tail()
            ),
        }
    }

    /// A new connection to the daemon.
    #[track_caller]
    pub fn client(&self) -> Client {
        match Client::connect(&self.socket) {
            Ok(mut client) => {
                client.log = Some(self.log.clone());
                client
            }
            Err(e) => panic!(
                "cannot connect to {}: {e}{}",
                self.socket.display(),
                self.log_tail()
            ),
        }
    }

    /// One request on a fresh connection.
    #[track_caller]
    pub fn request<R: ToLine + ?Sized>(&self, req: &R) -> Reply {
        self.client().request(req)
    }

    /// Sends `req`, which must succeed.
    #[track_caller]
    pub fn request_ok<R: ToLine + ?Sized>(&self, req: &R) -> Reply {
        let reply = self.request(req);
        assert!(
            reply.ok,
            "{} failed: {reply:?}{}",
            req.to_line(),
            self.log_tail()
        );
        reply
    }

    /// Starts a worker (`start_req`) and returns its pid.
    #[track_caller]
    pub fn start_worker(&self, name: &str, template: Option<&str>, args: &[&str]) -> i32 {
        self.started_pid(&start_req(name, template, args))
    }

    /// Starts a worker with a command replacing the template's; returns its pid.
    #[track_caller]
    pub fn start_command(&self, name: &str, template: Option<&str>, command: &[&str]) -> i32 {
        self.started_pid(&start_cmd_req(name, template, command))
    }

    #[track_caller]
    fn started_pid(&self, req: &Request) -> i32 {
        let reply = self.request_ok(req);
        let pid = reply
            .pid
            .unwrap_or_else(|| panic!("start reply without a pid: {reply:?}"));
        assert!(pid > 0, "start reply with pid {pid}");
        pid
    }

    /// The pid registered under `name`: `None` when it is not registered (or has no
    /// live process right now).
    #[track_caller]
    pub fn lookup(&self, name: &str) -> Option<i32> {
        let reply = self.request(&lookup_req(name));
        if reply.ok {
            return reply.pid;
        }
        match error_kind(&reply) {
            Some(ErrorKind::NotFound) => None,
            _ => panic!(
                "lookup {name}: unexpected reply {reply:?}{}",
                self.log_tail()
            ),
        }
    }

    #[track_caller]
    pub fn count(&self) -> usize {
        let reply = self.request_ok(&Request::Count);
        match reply.count {
            Some(count) => count,
            None => panic!("count reply without a count: {reply:?}"),
        }
    }

    #[track_caller]
    pub fn list(&self) -> Vec<WorkerInfo> {
        let reply = self.request_ok(&Request::List);
        match reply.workers {
            Some(workers) => workers,
            None => panic!("list reply without workers: {reply:?}"),
        }
    }

    /// Waits until `name` is registered with a live pid other than `old`.
    #[track_caller]
    pub fn wait_restarted(&self, name: &str, old: i32) -> i32 {
        let pid = self.wait_until(
            DEADLINE,
            &format!("{name} to get a pid other than {old}"),
            || self.lookup(name).filter(|&p| p != old && is_alive(p)),
        );
        let s = stat(pid).expect("restarted worker in /proc");
        assert_eq!(
            s.ppid, self.pid,
            "restarted {name} is not a child of the daemon"
        );
        pid
    }

    /// Waits until `name` is no longer registered.
    #[track_caller]
    pub fn wait_unregistered(&self, name: &str) {
        self.wait_until(DEADLINE, &format!("{name} to be unregistered"), || {
            self.lookup(name).is_none().then_some(())
        })
    }

    /// Asserts that `pid` was reaped: not alive, and not a zombie child of the daemon.
    #[track_caller]
    pub fn assert_reaped(&self, pid: i32) {
        assert!(
            !is_alive(pid),
            "pid {pid} is still alive{}",
            self.log_tail()
        );
        let zombies = zombie_children_of(self.pid);
        assert!(
            !zombies.contains(&pid),
            "pid {pid} is an unreaped zombie child of the daemon{}",
            self.log_tail()
        );
    }

    /// Sends a signal to the daemon.
    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        send_signal(self.pid, signal);
    }

    /// The daemon's exit status once it has exited (waiting up to `timeout`).
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let child = &mut self.child;
        match try_wait_until(timeout, || child.try_wait().ok().flatten()) {
            Some(status) => {
                self.status = Some(status);
                status
            }
            None => panic!(
                "the daemon did not exit within {timeout:?}{}",
                self.log_tail()
            ),
        }
    }

    /// Has the daemon exited (reaping it if so)?
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status.is_some()
    }

    /// SIGKILLs the daemon and reaps it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the daemon");
        self.status = Some(status);
        status
    }

    /// Runs the CLI against this daemon: `dynsup --socket PATH ARGS...`.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.env_remove("DYNSUP_SOCKET");
        run(&mut cmd, DEADLINE)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.has_exited() {
            return;
        }
        // Freeze the daemon first: a stopped process cannot reap, so the pids of its
        // children stay theirs while we look at them.
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGSTOP);
        let workers = children_of(self.pid);
        self.kill_hard();
        // Every worker must die with the daemon (PR_SET_PDEATHSIG).
        let all_gone = try_wait_until(Duration::from_secs(10), || {
            workers.iter().all(is_gone).then_some(())
        })
        .is_some();
        let survivors: Vec<i32> = workers
            .iter()
            .filter(|w| !is_gone(w))
            .map(|w| w.pid)
            .collect();
        for w in &workers {
            if !is_gone(w) {
                let _ = kill(Pid::from_raw(w.pid), Signal::SIGKILL);
            }
        }
        // Whatever the workers left in their process groups (grandchildren).
        for w in &workers {
            if w.pgrp == w.pid {
                let _ = killpg(Pid::from_raw(w.pgrp), Signal::SIGKILL);
            }
        }
        if !all_gone && !thread::panicking() {
            panic!(
                "workers {survivors:?} survived the daemon's SIGKILL (no PDEATHSIG?){}",
                self.log_tail()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running commands

/// Runs `cmd` to completion with stdout and stderr captured; kills it and panics if
/// it runs longer than `timeout`.
#[track_caller]
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = match try_wait_until(timeout, || child.try_wait().ok().flatten()) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_thread.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// stdout of a command, as text.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a command, as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TOML string literal for a path or any other text.
pub fn toml_str(s: &str) -> String {
    format!("{s:?}")
}
