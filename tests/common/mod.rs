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
    /// The kernel's `PF_*` flags (`PF_KTHREAD` marks a kernel thread).
    pub flags: u32,
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
        flags: fields.get(6)?.parse().ok()?,
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

/// `PF_KTHREAD` in the flags of `/proc/<pid>/stat`.
const PF_KTHREAD: u32 = 0x0020_0000;

/// Wait until `pid` has finished exec'ing. The daemon answers once the exec is
/// committed (its vfork-style spawn resumes then), and for a few microseconds more the
/// kernel is still laying out the new program's arguments: `/proc/PID/cmdline` is empty
/// until it is done. A process that is already gone (or a zombie) counts as settled, and
/// so does a kernel thread, whose cmdline is empty for good: a pid that a daemon in
/// another PID namespace reports (2, 3, ...) names one of those here.
pub fn settled(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let exec_pending = || {
            stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X' && s.flags & PF_KTHREAD == 0)
        };
        match fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(bytes) if bytes.is_empty() && exec_pending() => thread::yield_now(),
            _ => return,
        }
    }
}

/// The process's command line (waiting first until a fresh process has finished
/// exec'ing, see `settled`).
pub fn cmdline(pid: i32) -> Vec<String> {
    settled(pid);
    nul_separated(format!("/proc/{pid}/cmdline"))
}

/// The process's initial environment, as `KEY=value` strings.
pub fn environ(pid: i32) -> Vec<String> {
    settled(pid);
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
        let log = self.log.clone();
        self.wait_until_listening(|| {
            fs::read_to_string(&log)
                .map(|t| t.contains("listening on"))
                .unwrap_or(false)
        });
    }

    /// Waits until the socket accepts a connection and `also` holds; panics (with the
    /// log tail) if the daemon exits first or the deadline passes.
    #[track_caller]
    fn wait_until_listening(&mut self, mut also: impl FnMut() -> bool) {
        let socket = self.socket.clone();
        let child = &mut self.child;
        let mut exited = None;
        let ready = try_wait_until(DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            (also() && UnixStream::connect(&socket).is_ok()).then_some(true)
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
        settled(pid);
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
        settled(pid);
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

// ---------------------------------------------------------------------------------------
// Issue 4: requests, event streams (`watch`), the CLI as a long-running process

#[allow(unused_imports)]
pub use dynsup::protocol::{Counts, Event, LastExit, ReloadReport};
use std::sync::mpsc;

pub fn restart_req(name: &str, timeout_ms: Option<u64>) -> Request {
    Request::Restart {
        name: name.to_string(),
        timeout_ms,
    }
}

pub fn whois_req(pid: i32) -> Request {
    Request::Whois { pid }
}

pub fn watch_req(names: &[&str]) -> Request {
    Request::Watch {
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Milliseconds since the Unix epoch, as the daemon reports times in `list`.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The resident set size of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Waits until `path` holds a pid (written by a worker, ideally with write-then-rename)
/// and returns it.
#[track_caller]
pub fn wait_pid_file(path: &Path) -> i32 {
    wait_until(DEADLINE, &format!("a pid in {}", path.display()), || {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|&p| p > 0)
    })
}

/// One line of an event stream, with the instant the test read it.
#[derive(Debug, Clone)]
pub struct Timed {
    pub event: Event,
    pub at: Instant,
}

enum StreamLine {
    Line(String, Instant),
    End(String),
}

/// Reads lines from `reader` on a thread and hands them over, stamped with the instant
/// they were read, until the stream ends.
fn line_pump<R: BufRead + Send + 'static>(mut reader: R) -> mpsc::Receiver<StreamLine> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                let _ = tx.send(StreamLine::End("end of stream".to_string()));
                return;
            }
            Ok(_) => {
                if tx.send(StreamLine::Line(line, Instant::now())).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(StreamLine::End(format!("read error: {e}")));
                return;
            }
        }
    });
    rx
}

/// A `watch` subscription: a connection turned into an event stream, read on a
/// thread so that every event is stamped with the instant it arrived.
pub struct Watcher {
    stream: UnixStream,
    rx: mpsc::Receiver<StreamLine>,
    log: Option<PathBuf>,
    /// Set once the stream has ended (why).
    ended: Option<String>,
    /// Every event received so far, for failure messages.
    pub seen: Vec<Event>,
}

impl Watcher {
    /// Connects, sends `watch` and checks the reply (`ok`, `watching` = `names`).
    #[track_caller]
    pub fn subscribe(d: &TestDaemon, names: &[&str]) -> Watcher {
        let stream = UnixStream::connect(d.socket())
            .unwrap_or_else(|e| panic!("connect for watch: {e}{}", d.log_tail()));
        Watcher::send_watch(&stream, names);
        let mut w = Watcher::from_subscribed(stream, Some(d.log_path().to_path_buf()));
        w.expect_reply(names);
        w
    }

    /// Sends the `watch` request on `stream` (and nothing else: the caller may then
    /// leave the stream unread, as a stalled watcher does).
    #[track_caller]
    pub fn send_watch(mut stream: &UnixStream, names: &[&str]) {
        let mut line = watch_req(names).to_line();
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("send watch: {e}"));
    }

    /// Starts reading a stream on which `watch` was sent; its first line is the reply.
    pub fn from_subscribed(stream: UnixStream, log: Option<PathBuf>) -> Watcher {
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        Watcher {
            stream,
            rx: line_pump(reader),
            log,
            ended: None,
            seen: Vec::new(),
        }
    }

    fn context(&self) -> String {
        let mut out = format!("\nevents so far: {:?}", self.seen);
        if let Some(path) = &self.log {
            out.push_str(&log_tail_of(path));
        }
        out
    }

    fn next_line(&mut self, timeout: Duration) -> Option<(String, Instant)> {
        if self.ended.is_some() {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(StreamLine::Line(line, at)) => Some((line, at)),
            Ok(StreamLine::End(why)) => {
                self.ended = Some(why);
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.ended = Some("reader thread gone".to_string());
                None
            }
        }
    }

    /// Reads the reply to `watch`: it must succeed and echo `names`.
    #[track_caller]
    pub fn expect_reply(&mut self, names: &[&str]) {
        let Some((line, _)) = self.next_line(REPLY_TIMEOUT) else {
            panic!("no reply to watch ({:?}){}", self.ended, self.context())
        };
        let reply: Reply = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("undecodable watch reply {line:?}: {e}"));
        assert!(reply.ok, "watch failed: {line}{}", self.context());
        let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(reply.watching.as_ref(), Some(&want), "watch reply {line}");
    }

    /// The next event within `timeout`; `None` on timeout or at the end of the stream.
    #[track_caller]
    pub fn try_next(&mut self, timeout: Duration) -> Option<Timed> {
        let (line, at) = self.next_line(timeout)?;
        let event: Event = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("undecodable event {line:?}: {e}{}", self.context()));
        self.seen.push(event.clone());
        Some(Timed { event, at })
    }

    /// The next event; panics after [`DEADLINE`].
    #[track_caller]
    pub fn next(&mut self) -> Timed {
        match self.try_next(DEADLINE) {
            Some(t) => t,
            None => panic!(
                "no event within {DEADLINE:?} ({}){}",
                self.ended.as_deref().unwrap_or("stream open"),
                self.context()
            ),
        }
    }

    /// The next event, which must satisfy `pred` (`what` describes it).
    #[track_caller]
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Timed {
        let t = self.next();
        assert!(
            pred(&t.event),
            "expected {what}, got {:?}{}",
            t.event,
            self.context()
        );
        t
    }

    /// Skips events until one satisfies `pred`; returns it and the skipped ones.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> (Timed, Vec<Event>) {
        let deadline = Instant::now() + DEADLINE;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_next(left) {
                Some(t) if pred(&t.event) => return (t, skipped),
                Some(t) => skipped.push(t.event),
                None => panic!(
                    "no {what} within {DEADLINE:?} ({}){}",
                    self.ended.as_deref().unwrap_or("stream open"),
                    self.context()
                ),
            }
        }
    }

    /// Waits until the daemon closes the stream; returns the events read until then.
    #[track_caller]
    pub fn expect_end(&mut self) -> Vec<Event> {
        let mut rest = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while self.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "the stream did not end within {DEADLINE:?}{}",
                    self.context()
                );
            }
            if let Some(t) = self.try_next(left) {
                rest.push(t.event);
            }
        }
        rest
    }

    /// True once the stream has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Event predicates.
pub fn is_started(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Started { name, .. } if name == who)
}

pub fn is_exited(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Exited { name, .. } if name == who)
}

pub fn is_restarting(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Restarting { name, .. } if name == who)
}

pub fn is_stopped(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Stopped { name, .. } if name == who)
}

pub fn is_failed(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Failed { name, .. } if name == who)
}

/// The pid of a `started` event.
#[track_caller]
pub fn started_pid(ev: &Event) -> i32 {
    match ev {
        Event::Started { pid, .. } => *pid,
        other => panic!("not a started event: {other:?}"),
    }
}

/// The delay of a `restarting` event.
#[track_caller]
pub fn restarting_delay(ev: &Event) -> u64 {
    match ev {
        Event::Restarting { delay_ms, .. } => *delay_ms,
        other => panic!("not a restarting event: {other:?}"),
    }
}

impl TestDaemon {
    /// The row of `list` for `name`, if it is registered.
    #[track_caller]
    pub fn list_one(&self, name: &str) -> Option<WorkerInfo> {
        self.list().into_iter().find(|w| w.name == name)
    }

    /// `count` in its full shape.
    #[track_caller]
    pub fn counts(&self) -> Counts {
        let reply = self.request_ok(&Request::Count);
        let counts = reply
            .counts
            .unwrap_or_else(|| panic!("count reply without counts: {reply:?}"));
        assert_eq!(
            reply.count,
            Some(counts.total),
            "count != counts.total: {reply:?}"
        );
        counts
    }

    /// Replaces the config file this daemon was started with (for `reload`).
    #[track_caller]
    pub fn rewrite_config(&self, text: &str) {
        let path = self.config_path();
        // Write-then-rename, as an operator's editor or deployment tool would.
        let tmp = path.with_extension("toml.new");
        fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
    }

    /// Runs the CLI as a long-lived process (`watch`), its stdout read line by line.
    #[track_caller]
    pub fn cli_process(&self, args: &[&str]) -> CliProcess {
        let mut cmd = Command::new(bin());
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd.env_remove("DYNSUP_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stderr = child.stderr.take().expect("stderr");
        let err_thread = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        CliProcess {
            child,
            rx: line_pump(stdout),
            ended: false,
            err_thread: Some(err_thread),
            lines: Vec::new(),
        }
    }
}

/// A running CLI process whose stdout is read on a thread. Killed on drop.
pub struct CliProcess {
    child: Child,
    rx: mpsc::Receiver<StreamLine>,
    ended: bool,
    err_thread: Option<thread::JoinHandle<String>>,
    /// Every stdout line so far.
    pub lines: Vec<String>,
}

impl CliProcess {
    /// The next stdout line (without its newline) within `timeout`; `None` on timeout
    /// or at end of output.
    pub fn try_line(&mut self, timeout: Duration) -> Option<String> {
        if self.ended {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(StreamLine::Line(line, _)) => {
                let line = line.trim_end_matches('\n').to_string();
                self.lines.push(line.clone());
                Some(line)
            }
            Ok(StreamLine::End(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.ended = true;
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }

    /// Reads lines until one satisfies `pred`; panics after [`DEADLINE`].
    #[track_caller]
    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_line(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None if self.ended || left.is_zero() => panic!(
                    "no line {what} from the CLI (ended: {}); lines so far: {:#?}",
                    self.ended, self.lines
                ),
                None => {}
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Has it exited on its own (reaping it if so)?
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it to exit; returns its status and stderr.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let child = &mut self.child;
        let status = try_wait_until(timeout, || child.try_wait().ok().flatten())
            .unwrap_or_else(|| panic!("the CLI did not exit within {timeout:?}"));
        let stderr = self
            .err_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: i32) -> Duration {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("utime/stime"))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((fields[0] + fields[1]) * 1000 / hz)
}

// ---------------------------------------------------------------------------------------
// Issue 5: daemons launched with a chosen environment, wrapper or user; sd_notify
// listeners; processes seen from the host; cgroup v2 roots for tests.

use std::os::unix::net::UnixDatagram;

/// What [`Launch::start`] waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The socket accepts and the log says `listening on` (as [`TestDaemon::start`]).
    Listening,
    /// Only that the socket accepts (a log level that hides `listening on`).
    Socket,
    /// Nothing: the test observes readiness itself, or the daemon is expected to exit.
    Nothing,
}

/// A daemon launch with more control than [`TestDaemon::start`]: environment,
/// `JOURNAL_STREAM`, a wrapper command (`unshare ...`, `sh -c ...`), another user.
pub struct Launch {
    dir: Rc<TestDir>,
    config: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    journal_stream: bool,
    wrapper: Vec<String>,
    user: Option<(u32, u32)>,
    wait: WaitFor,
}

impl Launch {
    /// `dynsup daemon --config FILE --socket DIR/d.sock` in a fresh directory, waiting
    /// until it listens. `RUST_LOG` and `NOTIFY_SOCKET`/`WATCHDOG_*`/`JOURNAL_STREAM` of
    /// the test's own environment are not passed on unless set here.
    pub fn new(config: &str) -> Launch {
        Launch {
            dir: Rc::new(TestDir::new()),
            config: Some(config.to_string()),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: [
                "RUST_LOG",
                "NOTIFY_SOCKET",
                "WATCHDOG_USEC",
                "WATCHDOG_PID",
                "JOURNAL_STREAM",
            ]
            .map(String::from)
            .to_vec(),
            journal_stream: false,
            wrapper: Vec::new(),
            user: None,
            wait: WaitFor::Listening,
        }
    }

    /// Use this directory (for config files that refer to paths in it).
    pub fn in_dir(mut self, dir: Rc<TestDir>) -> Launch {
        self.dir = dir;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env_remove.retain(|k| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Set `JOURNAL_STREAM` to the `DEV:INODE` of the file the daemon's stderr goes to.
    pub fn journal_stream(mut self) -> Launch {
        self.env_remove.retain(|k| k != "JOURNAL_STREAM");
        self.journal_stream = true;
        self
    }

    /// Run the daemon command line as arguments of `wrapper`.
    pub fn wrapper(mut self, wrapper: &[&str]) -> Launch {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn arg(mut self, arg: &str) -> Launch {
        self.args.push(arg.to_string());
        self
    }

    /// Run the daemon as `uid`/`gid` (the test runs as root).
    pub fn user(mut self, uid: u32, gid: u32) -> Launch {
        self.user = Some((uid, gid));
        self
    }

    pub fn wait(mut self, wait: WaitFor) -> Launch {
        self.wait = wait;
        self
    }

    #[track_caller]
    pub fn start(self) -> TestDaemon {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        worker_bin();
        let dir = self.dir;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let socket = dir.join("d.sock");
        let log = dir.join(&format!("daemon-{n}.log"));
        let config = self.config.as_deref().map(|text| {
            let path = dir.write(&format!("config-{n}.toml"), text);
            // Readable by a daemon run as another user, whatever the test's umask.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            path
        });
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("daemon");
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--socket").arg(&socket).args(&self.args);
        let log_file = fs::File::create(&log).expect("log file");
        cmd.env_remove("DYNSUP_SOCKET").env("RUST_BACKTRACE", "0");
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if self.journal_stream {
            let meta = log_file.metadata().expect("stat the log file");
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(
                fs::File::create(dir.join(&format!("daemon-{n}.stdout"))).expect("stdout file"),
            ))
            .stderr(Stdio::from(log_file));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
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
        match self.wait {
            WaitFor::Listening => daemon.wait_ready(),
            WaitFor::Socket => daemon.wait_socket(),
            WaitFor::Nothing => {}
        }
        daemon
    }
}

impl TestDaemon {
    /// Waits until the socket accepts a connection (whatever the log says).
    #[track_caller]
    pub fn wait_socket(&mut self) {
        self.wait_until_listening(|| true);
    }

    /// `ps` for one worker (or all): name -> pids.
    #[track_caller]
    pub fn ps(&self, name: Option<&str>) -> Vec<(String, Vec<i32>)> {
        let reply = self.request_ok(&Request::Ps {
            name: name.map(str::to_string),
        });
        let Some(processes) = reply.processes.clone() else {
            panic!("ps reply without processes: {reply:?}")
        };
        processes.into_iter().map(|p| (p.name, p.pids)).collect()
    }
}

/// The log lines containing `needle`.
pub fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

// ----- sd_notify --------------------------------------------------------------------

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifyListener {
    socket: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub address: String,
    /// Every message received so far, with the instant it was read.
    pub received: Vec<(String, Instant)>,
}

impl NotifyListener {
    /// Bound to a path (which must not exist yet).
    pub fn bind_path(path: &Path) -> NotifyListener {
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        NotifyListener {
            socket,
            address: path.display().to_string(),
            received: Vec::new(),
        }
    }

    /// Bound to a unique abstract name.
    pub fn bind_abstract() -> NotifyListener {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "dynsup-test-notify-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let socket =
            UnixDatagram::bind_addr(&addr).unwrap_or_else(|e| panic!("bind abstract @{name}: {e}"));
        NotifyListener {
            socket,
            address: format!("@{name}"),
            received: Vec::new(),
        }
    }

    /// The next message within `timeout`, if any.
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
        let mut buf = vec![0u8; 65536];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.received.push((text.clone(), Instant::now()));
                Some(text)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// Reads messages until one satisfies `pred` (it is returned); panics after
    /// `timeout`, naming `what` and quoting what was received.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no sd_notify message {what} within {timeout:?}; received: {:?}",
                    self.messages()
                );
            }
            if let Some(msg) = self.recv(left) {
                if pred(&msg) {
                    return msg;
                }
            }
        }
    }

    /// Reads whatever arrives within `window` (a negative check: nothing is waited for).
    pub fn drain_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.recv(left);
        }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        self.received.iter().map(|(m, _)| m.clone()).collect()
    }

    /// How many messages received so far contain the assignment `line`.
    pub fn count(&self, line: &str) -> usize {
        self.received
            .iter()
            .filter(|(m, _)| m.lines().any(|l| l == line))
            .count()
    }
}

/// The value of `KEY=` in an sd_notify message.
pub fn notify_field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// Sends one sd_notify datagram to `address` (`@name` or a path) from this process.
pub fn send_notify(address: &str, message: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = match address.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?,
        None => std::os::unix::net::SocketAddr::from_pathname(address)?,
    };
    UnixDatagram::unbound()?
        .send_to_addr(message.as_bytes(), &addr)
        .map(drop)
}

// ----- /proc, seen from the host --------------------------------------------------

/// A line of `/proc/<pid>/status` (`Uid`, `Umask`, `NSpid`, ...), without the key.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// The pids of a process in each PID namespace it belongs to, outermost first
/// (`NSpid`).
pub fn ns_pids(pid: i32) -> Vec<i32> {
    status_field(pid, "NSpid")
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process on the system (one scan of /proc).
pub fn all_processes() -> Vec<Stat> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        {
            if let Some(s) = stat(pid) {
                out.push(s);
            }
        }
    }
    out
}

/// Every descendant of `pid` (children, their children, ...), zombies included.
pub fn descendants_of(pid: i32) -> Vec<Stat> {
    let all = all_processes();
    let mut out: Vec<Stat> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for s in all.iter().filter(|s| s.ppid == parent) {
            if !out.iter().any(|o| o.pid == s.pid) {
                out.push(*s);
                frontier.push(s.pid);
            }
        }
    }
    out.sort_by_key(|s| s.pid);
    out
}

/// The process's cgroup v2 path (the `0::` line of `/proc/<pid>/cgroup`).
pub fn cgroup_of(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

// ----- cgroup v2 --------------------------------------------------------------------

/// A unique, not yet created `cgroup_root` for one test, on a writable cgroup2 mount
/// whose groups offer `cgroup.kill`. Everything under it is killed and removed on drop.
pub struct TestCgroup {
    pub mount: PathBuf,
    pub root: PathBuf,
}

impl TestCgroup {
    /// `Err(reason)` when this machine has no usable cgroup v2.
    pub fn new() -> Result<TestCgroup, String> {
        let mount = cgroup2_mount()?;
        let unique = format!(
            "dynsup-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let probe = mount.join(format!("{unique}-probe"));
        fs::create_dir(&probe)
            .map_err(|e| format!("cannot create a cgroup under {}: {e}", mount.display()))?;
        let has_kill = probe.join("cgroup.kill").exists();
        let _ = fs::remove_dir(&probe);
        if !has_kill {
            return Err(format!(
                "cgroups under {} offer no cgroup.kill (Linux < 5.14)",
                mount.display()
            ));
        }
        Ok(TestCgroup {
            root: mount.join(unique),
            mount,
        })
    }

    /// The root as a TOML string.
    pub fn toml(&self) -> String {
        toml_str(self.root.to_str().expect("utf-8 cgroup path"))
    }

    /// The group of worker `name`.
    pub fn worker(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The cgroup path of worker `name` as `/proc/<pid>/cgroup` shows it.
    pub fn worker_path(&self, name: &str) -> String {
        format!(
            "/{}",
            self.worker(name)
                .strip_prefix(&self.mount)
                .expect("root under mount")
                .display()
        )
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if !self.root.exists() {
            return;
        }
        let mut dirs = vec![self.root.clone()];
        if let Ok(entries) = fs::read_dir(&self.root) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for dir in &dirs {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        // Children first, then the root; killed processes take a moment to leave.
        for dir in dirs.iter().rev() {
            let _ = try_wait_until(Duration::from_secs(10), || match fs::remove_dir(dir) {
                Ok(()) => Some(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Some(()),
                Err(_) => None,
            });
        }
        if self.root.exists() && !thread::panicking() {
            eprintln!("warning: could not remove {}", self.root.display());
        }
    }
}

/// Where the cgroup2 filesystem is mounted.
pub fn cgroup2_mount() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(point))
        })
        .ok_or_else(|| "no cgroup2 filesystem is mounted".to_string())
}

// ----- Python helpers ---------------------------------------------------------------

/// A `python3` that any user can run (root's pyenv shims are not reachable for
/// `nobody`).
pub fn python3() -> PathBuf {
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("these tests need python3 at /usr/bin/python3 (or /usr/local/bin/python3)")
}
