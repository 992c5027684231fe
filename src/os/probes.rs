//! One health check run: a child process of the daemon, started with the worker's
//! settings ([`ExecPlan::for_probe`]), its output captured, SIGKILLed at its timeout,
//! and its end turned into a verdict (`ok` and a one-line message).
//!
//! - Spawned by the same spawner as the workers ([`spawn::spawn_probe`]): its own
//!   process group, the worker's environment (minus `NOTIFY_SOCKET` and
//!   `WATCHDOG_USEC`), user and groups, cwd, umask and rlimits, `PR_SET_PDEATHSIG`;
//!   stdin on `/dev/null`; no cgroup of its own (it stays in the daemon's).
//! - stdout and stderr share one non-blocking pipe, read from the loop at most
//!   [`READ_BUDGET`] bytes per turn; the first [`KEPT_OUTPUT`] bytes are kept for the
//!   message, the rest read and thrown away (so a chatty check never blocks on a full
//!   pipe, and never costs memory).
//! - At its timeout its whole process group gets SIGKILL; the verdict waits for the
//!   reap (the loop's `waitpid(-1)`), which [`Probe::finish`] turns into the verdict.
//! - Once its main process is reaped, whatever is left of its process group is
//!   SIGKILLed too: a check is one command, and nothing of it outlives its answer.
//!
//! The verdict: `ok` when it exited 0 before its timeout. The message:
//! `exit 0`, `exit 3: <first line of its output>`, `signal SIGSEGV`,
//! `timed out after 2000 ms`; a spawn failure is `cannot run: <error>`
//! ([`cannot_run`]).

use super::pipes::Drained;
use super::spawn::{self, ExecPlan, SpawnError, Spawner};
use crate::core::Exit;
use crate::signal::Signal;
use mio::unix::pipe::Receiver;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Bytes of a check's output kept for its message.
pub const KEPT_OUTPUT: usize = 512;
/// Bytes read from a check's pipe per loop turn before other sources get their turn.
pub const READ_BUDGET: usize = 64 * 1024;
/// Bytes read by one `read`.
const READ_CHUNK: usize = 4 * 1024;

/// A health check that is running (or was killed and is not reaped yet).
pub struct Probe {
    /// Its pid, which is also its process group's id.
    pub pid: i32,
    /// Its stdout and stderr, until EOF or its reap.
    pub output: Option<Receiver>,
    /// The first `KEPT_OUTPUT` bytes it wrote.
    kept: Vec<u8>,
    timeout: Duration,
    /// When its timeout ran out and it was sent SIGKILL.
    killed_at: Option<Instant>,
    /// Readable when it exits, until the loop takes it to watch.
    pub pidfd: Option<OwnedFd>,
}

impl Probe {
    /// Start the check `plan` describes; `timeout` is how long it may run.
    pub fn start(
        spawner: &mut Spawner,
        plan: &ExecPlan,
        daemon_pid: i32,
        timeout: Duration,
    ) -> Result<Probe, SpawnError> {
        let child = spawn::spawn_probe(spawner, plan, daemon_pid)?;
        Ok(Probe {
            pid: child.pid,
            output: Some(Receiver::from(child.output)),
            kept: Vec::new(),
            timeout,
            killed_at: None,
            pidfd: child.pidfd,
        })
    }

    /// Read its output, up to the budget, keeping the first `KEPT_OUTPUT` bytes.
    pub fn read_output(&mut self) -> Drained {
        let Some(pipe) = self.output.as_mut() else {
            return Drained::Eof;
        };
        read_bounded(pipe, &mut self.kept)
    }

    /// Its timeout ran out: SIGKILL to its whole process group (it is not reaped yet,
    /// so the group's id is still its own).
    pub fn kill(&mut self, now: Instant) {
        if self.killed_at.is_none() {
            self.killed_at = Some(now);
            kill_group(self.pid);
        }
    }

    /// When it was sent SIGKILL at its timeout, if it was.
    pub fn killed_at(&self) -> Option<Instant> {
        self.killed_at
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Its main process was reaped with `exit`: take what is left in its pipe (a
    /// bounded read: a descendant may still hold the pipe and write), kill what is left
    /// of its group, and say how it went. `exit` is `None` when it is not reaped
    /// (given up on after SIGKILL).
    pub fn finish(mut self, exit: Option<Exit>) -> (bool, String) {
        if let Some(pipe) = self.output.as_mut() {
            let _ = read_bounded(pipe, &mut self.kept);
        }
        // Background processes the check left in its group. The group's id cannot
        // have been reused yet: no process was created since the reap.
        if exit.is_some() {
            kill_group(self.pid);
        }
        verdict(
            exit,
            self.killed_at.is_some(),
            self.timeout.as_millis() as u64,
            &self.kept,
        )
    }
}

/// SIGKILL to the process group `pgid` (it may be empty already).
pub fn kill_group(pgid: i32) {
    if let Err(e) = super::process::send_signal(pgid, Signal::KILL, true) {
        if e.raw_os_error() != Some(libc::ESRCH) {
            log::warn!("cannot send SIGKILL to the health check's process group {pgid}: {e}");
        }
    }
}

/// Read `pipe` until it would block, closes, or `READ_BUDGET` bytes were read; the
/// first bytes go into `kept` until it holds `KEPT_OUTPUT`.
fn read_bounded(pipe: &mut Receiver, kept: &mut Vec<u8>) -> Drained {
    let mut chunk = [0u8; READ_CHUNK];
    let mut total = 0;
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => return Drained::Eof,
            Ok(n) => {
                let room = KEPT_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
                total += n;
                if total >= READ_BUDGET {
                    return Drained::More;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Drained::Eof,
        }
    }
}

/// The verdict of a check that ended with `exit` (`None`: never reaped), was killed at
/// its timeout or not, and wrote `output` (its first bytes): `ok` when it exited 0 in
/// time, and the message.
pub fn verdict(
    exit: Option<Exit>,
    timed_out: bool,
    timeout_ms: u64,
    output: &[u8],
) -> (bool, String) {
    if timed_out {
        let mut message = format!("timed out after {timeout_ms} ms");
        if exit.is_none() {
            message.push_str(" (and still not gone after SIGKILL)");
        }
        return (false, message);
    }
    match exit {
        Some(Exit::Code(0)) => (true, "exit 0".to_string()),
        Some(exit @ Exit::Code(_)) => match first_line(output) {
            Some(line) => (false, format!("{exit}: {line}")),
            None => (false, exit.to_string()),
        },
        Some(exit @ Exit::Signaled { .. }) => (false, exit.to_string()),
        None => (false, "ended without an exit status".to_string()),
    }
}

/// The message of a check that could not be started.
pub fn cannot_run(error: &str) -> String {
    format!("cannot run: {error}")
}

/// The first line of `output` that is not blank, trimmed (invalid UTF-8 replaced).
fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_zero_in_time_is_the_only_pass() {
        assert_eq!(
            verdict(Some(Exit::Code(0)), false, 2000, b"all good\n"),
            (true, "exit 0".to_string())
        );
        assert_eq!(
            verdict(Some(Exit::Code(0)), true, 2000, b""),
            (false, "timed out after 2000 ms".to_string())
        );
    }

    #[test]
    fn a_failure_says_its_status_and_first_line() {
        assert_eq!(
            verdict(
                Some(Exit::Code(3)),
                false,
                2000,
                b"\n  db unreachable \nretrying\n"
            ),
            (false, "exit 3: db unreachable".to_string())
        );
        assert_eq!(
            verdict(Some(Exit::Code(1)), false, 2000, b""),
            (false, "exit 1".to_string())
        );
        assert_eq!(
            verdict(Some(Exit::Code(1)), false, 2000, b" \n\n"),
            (false, "exit 1".to_string())
        );
        let segv = Exit::Signaled {
            signal: Signal(libc::SIGSEGV),
            core_dumped: false,
        };
        assert_eq!(
            verdict(Some(segv), false, 2000, b"oops\n"),
            (false, "signal SIGSEGV".to_string())
        );
        // Output cut inside a UTF-8 sequence still makes a line.
        let (ok, message) = verdict(
            Some(Exit::Code(2)),
            false,
            10,
            "héllo".as_bytes()[..2].as_ref(),
        );
        assert!(!ok);
        assert!(message.starts_with("exit 2: h"), "{message}");
    }

    #[test]
    fn a_check_that_outlives_sigkill_is_still_answered() {
        assert_eq!(
            verdict(None, true, 500, b""),
            (
                false,
                "timed out after 500 ms (and still not gone after SIGKILL)".to_string()
            )
        );
        assert_eq!(cannot_run("nope: not found"), "cannot run: nope: not found");
    }

    #[test]
    fn only_the_first_bytes_are_kept_and_reading_is_bounded() {
        use std::io::Write;
        let (mut writer, mut reader) = mio::unix::pipe::new().expect("pipe");
        let line = [b'x'; 1000];
        writer.write_all(&line).expect("write");
        let mut kept = Vec::new();
        assert!(matches!(
            read_bounded(&mut reader, &mut kept),
            Drained::WouldBlock
        ));
        assert_eq!(kept.len(), KEPT_OUTPUT);
        drop(writer);
        assert!(matches!(read_bounded(&mut reader, &mut kept), Drained::Eof));
        assert_eq!(kept.len(), KEPT_OUTPUT);
    }
}
