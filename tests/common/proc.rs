//! Processes as `/proc` shows them, and signals sent as an outsider would: the tests
//! check what the daemon says against these.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

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

/// The fields of a `/proc/<pid>/stat` text after `comm`, which is in parentheses and may
/// itself contain spaces and parentheses: they start after the *last* ')'. The first
/// one is field 3 (state).
fn fields_after_comm(text: &str) -> Option<Vec<&str>> {
    Some(text[text.rfind(')')? + 1..].split_whitespace().collect())
}

/// Parses the text of a `/proc/<pid>/stat` file.
pub fn parse_stat(pid: i32, text: &str) -> Option<Stat> {
    let fields = fields_after_comm(text)?;
    // fields[0] is field 3 (state); flags is field 9, starttime field 22.
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

/// What each of `pid`'s fds points at (`3 -> pipe:[123]`), for failure messages.
pub fn fd_targets(pid: i32) -> Vec<String> {
    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    let target = fs::read_link(e.path())
                        .map_or_else(|_| "?".to_string(), |t| t.display().to_string());
                    format!("{} -> {target}", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds
}

/// Every process on the system (one scan of /proc), sorted by pid.
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
    out.sort_by_key(|s| s.pid);
    out
}

/// Every process whose parent is `ppid`, zombies included.
pub fn children_of(ppid: i32) -> Vec<Stat> {
    all_processes()
        .into_iter()
        .filter(|s| s.ppid == ppid)
        .collect()
}

/// The zombie children of `ppid`: exited but not reaped.
pub fn zombie_children_of(ppid: i32) -> Vec<i32> {
    children_of(ppid)
        .into_iter()
        .filter(|s| s.state == 'Z')
        .map(|s| s.pid)
        .collect()
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

/// A line of `/proc/<pid>/status` (`Uid`, `Umask`, `NSpid`, ...), without the key.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// A hexadecimal signal-set line of `/proc/<pid>/status` (`SigBlk`, `SigIgn`, ...).
pub fn signal_set(pid: i32, field: &str) -> u64 {
    let value = status_field(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status (or no such process)"));
    u64::from_str_radix(&value, 16).expect("hex signal set")
}

/// The resident set size of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status (or no such process)"))
}

/// The peak resident set size of `pid` so far, in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status (or no such process)"))
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

/// The process's cgroup v2 path (the `0::` line of `/proc/<pid>/cgroup`).
pub fn cgroup_of(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Bytes a process (all its threads) has read so far, from files, pipes and sockets
/// (`rchar` of `/proc/<pid>/io`).
pub fn bytes_read(pid: i32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/io: {e}"));
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in /proc/{pid}/io: {io:?}"))
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: i32) -> Duration {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    let fields = fields_after_comm(&text).expect("comm");
    // utime and stime are fields 14 and 15.
    let ticks: Vec<u64> = fields[11..13]
        .iter()
        .map(|f| f.parse().expect("utime/stime"))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks[0] + ticks[1]) * 1000 / hz)
}

/// Sends `signal` to `pid` with kill(2), as an outsider would.
#[track_caller]
pub fn send_signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("kill({pid}, {signal}): {e}"));
}

/// Sends signal number `signo` to `pid` with kill(2), as an outsider would: for the
/// real-time signals nix's `Signal` cannot name.
#[track_caller]
pub fn send_signal_number(pid: i32, signo: i32) {
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    if unsafe { libc::kill(pid, signo) } != 0 {
        panic!("kill({pid}, {signo}): {}", std::io::Error::last_os_error());
    }
}
