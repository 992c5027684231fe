//! Process syscalls: reaping exits and sending signals; and the `/proc` reads about
//! processes (process groups, a peer's groups).
//!
//! The daemon is the only place that waits for its children, so each exit is seen
//! exactly once: a child it spawned through its pidfd (`waitid(P_PIDFD)`, one child,
//! O(1)), an adopted orphan — or any child on a kernel without pidfds — by
//! `waitpid(-1)`, which walks every child. A pid stays reserved by the kernel until it
//! is reaped, so signalling a pid the core still lists as live is always safe.

use crate::core::Exit;
use crate::signal::Signal;
use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io;

/// Reap one exited child, if any has exited. Call until it returns `None`: SIGCHLD
/// signals coalesce, so one notification may stand for many exits.
///
/// Raw `waitpid` (`spawn::wait_any_nohang`), not nix's: nix fails with EINVAL on a child
/// killed by a real-time signal *after* reaping it, and that exit would be lost.
pub fn reap_one() -> Option<(i32, Exit)> {
    loop {
        match crate::os::spawn::wait_any_nohang() {
            Ok(Some((pid, status))) => {
                if libc::WIFEXITED(status) {
                    return Some((pid, Exit::Code(libc::WEXITSTATUS(status))));
                }
                if libc::WIFSIGNALED(status) {
                    return Some((
                        pid,
                        Exit::Signaled {
                            signal: Signal(libc::WTERMSIG(status)),
                            core_dumped: libc::WCOREDUMP(status),
                        },
                    ));
                }
                // Stops and continues are not exits (and are not requested anyway).
                continue;
            }
            // No child has exited yet.
            Ok(None) => return None,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            // ECHILD: no children at all.
            Err(_) => return None,
        }
    }
}

/// What a child's pidfd says.
pub enum PidfdReap {
    /// It exited and is reaped now.
    Exited(i32, Exit),
    /// It has not exited (a spurious wake-up).
    Running,
    /// It was reaped already, by `waitpid(-1)`.
    Gone,
}

/// Reap the child `pidfd` refers to, if it has exited.
pub fn reap_pidfd(pidfd: std::os::fd::BorrowedFd<'_>) -> PidfdReap {
    loop {
        match crate::os::spawn::wait_pidfd_nohang(pidfd) {
            Ok(Some(end)) => {
                let exit = match end.code {
                    libc::CLD_EXITED => Exit::Code(end.status),
                    libc::CLD_KILLED | libc::CLD_DUMPED => Exit::Signaled {
                        signal: Signal(end.status),
                        core_dumped: end.code == libc::CLD_DUMPED,
                    },
                    // WEXITED only: stops and continues are not reported.
                    _ => continue,
                };
                return PidfdReap::Exited(end.pid, exit);
            }
            Ok(None) => return PidfdReap::Running,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return PidfdReap::Gone,
        }
    }
}

/// Wait for one specific child that is known to be exiting (a child whose exec failed).
pub fn reap_pid(pid: i32) {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Whether any process (a zombie included) is still in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    // Signal 0: the kernel checks, sends nothing.
    pgid > 0
        && !matches!(
            crate::os::spawn::kill_raw(-pgid, 0),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH)
        )
}

/// Send `signal` to `pid`, or to the process group `pid` leads when `group` is set. Any
/// signal `Signal::parse` accepts, real-time ones included (a raw `kill(2)`: nix's
/// `Signal` cannot name them).
pub fn send_signal(pid: i32, signal: Signal, group: bool) -> io::Result<()> {
    if pid <= 0 {
        // kill(0) or kill(-1) would signal the daemon's own group or every process.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    let target = if group { -pid } else { pid };
    crate::os::spawn::kill_raw(target, signal.0)
}

/// The process group of `pid`, read from `/proc/PID/stat`; `None` if there is no such
/// process.
pub fn process_group(pid: i32) -> Option<i32> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // The fields after it: state, ppid, pgrp.
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Who is at the other end of a Unix socket (`SO_PEERCRED`: set by the kernel at
/// connect, not forgeable by the peer).
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn peer_credentials(stream: &impl std::os::fd::AsFd) -> io::Result<Peer> {
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    Ok(Peer {
        pid: creds.pid(),
        uid: creds.uid(),
        gid: creds.gid(),
    })
}

/// A process's groups: `gid` plus its supplementary groups from `/proc/PID/status`
/// (best effort: a process that is already gone has just `gid`).
pub fn groups_of(pid: i32, gid: u32) -> Vec<u32> {
    let mut groups = vec![gid];
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        if let Some(line) = status.lines().find(|l| l.starts_with("Groups:")) {
            groups.extend(
                line["Groups:".len()..]
                    .split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    groups
}

/// Every process group on the system: pgid -> member pids (sorted), from one scan of
/// `/proc`. For `ps` without cgroups.
pub fn process_groups() -> HashMap<i32, Vec<i32>> {
    let mut groups: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(pgid) = process_group(pid) {
            groups.entry(pgid).or_default().push(pid);
        }
    }
    for members in groups.values_mut() {
        members.sort_unstable();
    }
    groups
}

/// The pid of every process on the system: the numeric names in `/proc` (none if
/// `/proc` cannot be read).
pub fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}
