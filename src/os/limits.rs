//! The daemon's own resource limits: at start, the soft limit on open files is raised to
//! the hard limit, so that the daemon's two fds per worker and one per connection run
//! into the hard limit the operator set (`LimitNOFILE=` in the shipped unit), not into
//! the 1024 most shells and service managers start a process with.
//!
//! Workers do not inherit the raised limit: they start with the soft limit the daemon
//! itself was started with ([`worker_open_files`]), as they would have without dynsup
//! (programs that use `select(2)` break above 1024 fds), unless their template sets
//! `rlimits.nofile`.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::sync::OnceLock;

/// The open-files limit (soft, hard) the daemon was started with, once it raised its own
/// soft limit; unset when nothing was raised.
static INHERITED_OPEN_FILES: OnceLock<(u64, u64)> = OnceLock::new();

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, and log what was done (a failure is
/// a warning: the daemon runs with the limit it has). Call once, at start, before any
/// worker is spawned.
pub fn raise_open_files() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            log::warn!("cannot read the open-files limit (RLIMIT_NOFILE): {err}");
            return;
        }
    };
    if soft >= hard {
        log::debug!("open-files limit: {soft} (already the hard limit)");
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            let _ = INHERITED_OPEN_FILES.set((soft, hard));
            log::info!(
                "open-files limit raised from {soft} to the hard limit {} (workers still start with {soft})",
                show(hard)
            );
        }
        Err(err) => log::warn!(
            "cannot raise the open-files limit from {soft} to the hard limit {}: {err}",
            show(hard)
        ),
    }
}

/// The open-files limit (soft, hard) a worker gets when its template sets none: the one
/// the daemon was started with, if the daemon raised its own; `None` when the worker can
/// simply inherit the daemon's.
pub fn worker_open_files() -> Option<(u64, u64)> {
    INHERITED_OPEN_FILES.get().copied()
}

fn show(limit: u64) -> String {
    if limit == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        limit.to_string()
    }
}
