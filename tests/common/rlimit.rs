//! Another process's resource limits, read from `/proc/PID/limits` and changed from
//! outside as an operator's `prlimit --pid` would: to starve a running daemon of open
//! files or processes, and to give them back. The tests run as root but may lack
//! `CAP_SYS_RESOURCE`, which changing another user's process needs: a process of another
//! uid is changed by the `prlimit` program run as that uid (which may lower and raise a
//! soft limit up to the hard one).

use super::cli::run;
use super::proc::status_field;
use super::wait::DEADLINE;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `RLIMIT_NOFILE` and `RLIMIT_NPROC`, the limits the exhaustion tests change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    OpenFiles,
    Processes,
}

impl Limit {
    fn resource(self) -> libc::__rlimit_resource_t {
        match self {
            Limit::OpenFiles => libc::RLIMIT_NOFILE,
            Limit::Processes => libc::RLIMIT_NPROC,
        }
    }

    /// The row of `/proc/PID/limits`.
    fn row(self) -> &'static str {
        match self {
            Limit::OpenFiles => "Max open files",
            Limit::Processes => "Max processes",
        }
    }

    /// The option of the `prlimit` program.
    fn option(self) -> &'static str {
        match self {
            Limit::OpenFiles => "--nofile",
            Limit::Processes => "--nproc",
        }
    }
}

/// `pid`'s (soft, hard) limit; `u64::MAX` is unlimited.
#[track_caller]
pub fn rlimit_of(pid: i32, limit: Limit) -> (u64, u64) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/limits: {e}"));
    let row = text
        .lines()
        .find_map(|l| l.strip_prefix(limit.row()))
        .unwrap_or_else(|| panic!("no {:?} in /proc/{pid}/limits:\n{text}", limit.row()));
    let value = |v: &str| match v {
        "unlimited" => u64::MAX,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad limit {v:?} in {row:?}")),
    };
    let mut fields = row.split_whitespace();
    let soft = value(fields.next().expect("soft limit"));
    let hard = value(fields.next().expect("hard limit"));
    (soft, hard)
}

/// Sets `pid`'s (soft, hard) limit (`u64::MAX`: unlimited).
#[track_caller]
pub fn set_rlimit_of(pid: i32, limit: Limit, soft: u64, hard: u64) {
    let owner: u32 = status_field(pid, "Uid")
        .and_then(|uids| uids.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status"));
    // SAFETY: getuid has no preconditions.
    if owner == unsafe { libc::getuid() } {
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: prlimit reads `new`, a local, and writes nothing (null old limit).
        let rc = unsafe { libc::prlimit(pid, limit.resource(), &new, std::ptr::null_mut()) };
        if rc != 0 {
            panic!(
                "prlimit({pid}, {limit:?}, {soft}, {hard}): {}",
                io::Error::last_os_error()
            );
        }
        return;
    }
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let mut cmd = Command::new("prlimit");
    cmd.arg("--pid")
        .arg(pid.to_string())
        .arg(format!("{}={}:{}", limit.option(), show(soft), show(hard)))
        .uid(owner)
        .gid(owner);
    let out = run(&mut cmd, DEADLINE);
    assert!(
        out.status.success(),
        "prlimit --pid {pid} {}={}:{} as uid {owner}: {}",
        limit.option(),
        show(soft),
        show(hard),
        String::from_utf8_lossy(&out.stderr)
    );
}
