//! Running commands: the `dynsup` CLI (to completion, or as a long-lived
//! [`CliProcess`]), any command with its output captured, and checks on exit codes.

use super::bins::bin;
use super::wait::{each_moment_until, try_wait_until, DEADLINE};
use super::watch::{line_pump, StreamLine};
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// `dynsup --socket SOCKET`, without `DYNSUP_SOCKET` from the test's environment: add
/// the command and its arguments.
pub fn cli_command(socket: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--socket").arg(socket).env_remove("DYNSUP_SOCKET");
    cmd
}

/// A command running with its stdin closed and its stdout and stderr read on threads
/// (so that neither pipe can fill up and block it).
pub struct Captured {
    child: Child,
    what: String,
    out: thread::JoinHandle<Vec<u8>>,
    err: thread::JoinHandle<Vec<u8>>,
}

impl Captured {
    #[track_caller]
    pub fn spawn(cmd: &mut Command) -> Captured {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let read_all = |mut pipe: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                buf
            })
        };
        let out = read_all(Box::new(child.stdout.take().unwrap()));
        let err = read_all(Box::new(child.stderr.take().unwrap()));
        Captured {
            child,
            what: format!("{cmd:?}"),
            out,
            err,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for it to exit and returns its status and output; kills it and panics if
    /// it runs longer than `timeout`.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> Output {
        let child = &mut self.child;
        let Some(status) = try_wait_until(timeout, || child.try_wait().ok().flatten()) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let stderr = self.err.join().unwrap_or_default();
            panic!(
                "{} did not finish within {timeout:?}; stderr so far:\n{}",
                self.what,
                String::from_utf8_lossy(&stderr)
            );
        };
        Output {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
        }
    }
}

/// Runs `cmd` to completion with stdout and stderr captured; kills it and panics if
/// it runs longer than `timeout`.
#[track_caller]
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    Captured::spawn(cmd).finish(timeout)
}

/// stdout of a command, as text.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a command, as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that a command exited with `code`; the message shows its output.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}, expected {code}\nstdout: {}\nstderr: {}",
        out.status,
        stdout_of(out),
        stderr_of(out)
    );
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
    /// Starts `cmd` with its stdout read line by line on a thread.
    #[track_caller]
    pub fn spawn(cmd: &mut Command) -> CliProcess {
        cmd.stdin(Stdio::null())
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
        let found = each_moment_until(DEADLINE, |left| match self.try_line(left) {
            Some(line) if pred(&line) => Some(Some(line)),
            None if self.ended => Some(None),
            _ => None,
        });
        found.flatten().unwrap_or_else(|| {
            panic!(
                "no line {what} from the CLI (ended: {}); lines so far: {:#?}",
                self.ended, self.lines
            )
        })
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
