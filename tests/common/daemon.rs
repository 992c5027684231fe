//! [`TestDaemon`]: a running `dynsup daemon` (started by [`Launch`](super::Launch)),
//! and everything a test does with it: requests, its log, waits on its workers, the
//! CLI against it, its exit. Its `Drop` SIGKILLs the daemon, checks that every worker
//! died with it (PDEATHSIG) and kills whatever is left, so a failing test leaves no
//! process behind.

use super::cli::{cli_command, run, CliProcess};
use super::client::{error_kind, logs_req, lookup_req, start_cmd_req, start_req, Client, ToLine};
use super::dirs::TestDir;
use super::log::log_tail_of;
use super::proc::{children_of, is_alive, is_gone, send_signal, settled, stat, zombie_children_of};
use super::wait::{try_wait_until, DEADLINE};
use dynsup::protocol::{Counts, ErrorKind, LogLine, Reply, Request, WorkerInfo};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

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
    // ----- Starting: what Launch calls once it has spawned the daemon --------------------

    /// A daemon [`Launch`](super::Launch) has just spawned, not yet waited for.
    pub(crate) fn spawned(
        dir: Rc<TestDir>,
        child: Child,
        socket: PathBuf,
        config: Option<PathBuf>,
        log: PathBuf,
    ) -> TestDaemon {
        TestDaemon {
            dir,
            pid: child.id() as i32,
            child,
            status: None,
            socket,
            config,
            log,
        }
    }

    /// Waits until the socket accepts and the log says `listening on`.
    #[track_caller]
    pub(crate) fn wait_listening(&mut self) {
        let log = self.log.clone();
        self.wait_until_listening(|| {
            fs::read_to_string(&log)
                .map(|t| t.contains("listening on"))
                .unwrap_or(false)
        });
    }

    /// Waits until the socket accepts a connection (whatever the log says).
    #[track_caller]
    pub fn wait_socket(&mut self) {
        self.wait_until_listening(|| true);
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

    // ----- Where things are --------------------------------------------------------------

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn dir(&self) -> Rc<TestDir> {
        self.dir.clone()
    }

    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .expect("this daemon has no config file")
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

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    // ----- Waiting -----------------------------------------------------------------------

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

    // ----- The log -----------------------------------------------------------------------

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

    /// Waits until the log contains `needle`.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) {
        self.wait_until(DEADLINE, &format!("`{needle}` in the daemon log"), || {
            self.log().contains(needle).then_some(())
        })
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

    // ----- Requests ----------------------------------------------------------------------

    /// A new connection to the daemon.
    #[track_caller]
    pub fn client(&self) -> Client {
        match Client::connect(&self.socket) {
            Ok(client) => client.quoting_log(self.log.clone()),
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

    #[track_caller]
    pub fn list(&self) -> Vec<WorkerInfo> {
        let reply = self.request_ok(&Request::list());
        match reply.workers {
            Some(workers) => workers,
            None => panic!("list reply without workers: {reply:?}"),
        }
    }

    /// The row of `list` for `name`, if it is registered.
    #[track_caller]
    pub fn list_one(&self, name: &str) -> Option<WorkerInfo> {
        self.list().into_iter().find(|w| w.name == name)
    }

    /// `logs`: the last `n` kept lines of `name` (which must be known).
    #[track_caller]
    pub fn logs(&self, name: &str, n: usize) -> Vec<LogLine> {
        let reply = self.request_ok(&logs_req(name, n, false));
        match reply.log {
            Some(lines) => lines,
            None => panic!("logs reply without log: {reply:?}"),
        }
    }

    /// The text of the last `n` kept lines of `name`.
    #[track_caller]
    pub fn log_texts(&self, name: &str, n: usize) -> Vec<String> {
        self.logs(name, n).into_iter().map(|l| l.line).collect()
    }

    /// Waits until one of the last `n` kept lines of `name` is `line`.
    #[track_caller]
    pub fn wait_kept_line(&self, name: &str, n: usize, line: &str) {
        self.wait_until(
            DEADLINE,
            &format!("`{line}` among the last {n} kept lines of {name}"),
            || {
                self.log_texts(name, n)
                    .iter()
                    .any(|l| l == line)
                    .then_some(())
            },
        )
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

    // ----- Workers -----------------------------------------------------------------------

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

    /// Waits until `pid`, a child of the daemon that was signalled from outside (its
    /// end is not what a reply waited for), is dead and reaped.
    #[track_caller]
    pub fn wait_reaped(&self, pid: i32) {
        self.wait_until(DEADLINE, &format!("pid {pid} to be reaped"), || {
            (!is_alive(pid) && !zombie_children_of(self.pid).contains(&pid)).then_some(())
        });
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

    // ----- The daemon process ------------------------------------------------------------

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

    // ----- The CLI against this daemon ---------------------------------------------------

    /// Runs the CLI against this daemon: `dynsup --socket PATH ARGS...`.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> Output {
        run(cli_command(&self.socket).args(args), DEADLINE)
    }

    /// Runs the CLI as a long-lived process (`watch`), its stdout read line by line.
    #[track_caller]
    pub fn cli_process(&self, args: &[&str]) -> CliProcess {
        CliProcess::spawn(cli_command(&self.socket).args(args))
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
