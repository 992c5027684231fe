//! Another process's resource limits, read and changed from outside with `prlimit(2)`
//! (the tests run as root), as an operator's `prlimit --pid` would: to starve a running
//! daemon of open files or processes, and to give them back.

use std::io;

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
}

/// `pid`'s (soft, hard) limit; `u64::MAX` is unlimited.
#[track_caller]
pub fn rlimit_of(pid: i32, limit: Limit) -> (u64, u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only writes the old one into `old`, a local.
    let rc = unsafe { libc::prlimit(pid, limit.resource(), std::ptr::null(), &mut old) };
    if rc != 0 {
        panic!("prlimit({pid}, {limit:?}): {}", io::Error::last_os_error());
    }
    (old.rlim_cur, old.rlim_max)
}

/// Sets `pid`'s (soft, hard) limit (`u64::MAX`: unlimited).
#[track_caller]
pub fn set_rlimit_of(pid: i32, limit: Limit, soft: u64, hard: u64) {
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
}
