//! The process's exit statuses, decided here and nowhere else: `main` turns the outcome
//! of the daemon or of a client command into one of these.

use std::process::ExitCode;

/// How `dynsup` ends. The numbers are part of the CLI's contract (scripts, container
/// runtimes and systemd units test them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command succeeded; the daemon shut down in order.
    Ok,
    /// 1: the daemon answered with an error; the daemon reached its restart intensity
    /// (or a worker's `on_limit = "escalate"` limit), a boot child failed, or the event
    /// loop failed.
    Error,
    /// 2: a usage error (clap's); the daemon's config is invalid or its socket unusable.
    Usage,
    /// 3: the daemon cannot be reached (no socket, refused, closed without replying).
    Unreachable,
    /// The daemon shut down because a `critical` worker ended for good or was given up
    /// on: that worker's exit status (its exit code, or 128 + the signal's number).
    Critical(u8),
}

/// What `dynsup --help` says about them.
pub const HELP: &str = "Exit status: 0 success, 1 the daemon answered with an error, 2 usage error, 3 the daemon cannot be reached. `dynsup daemon`: 0 after an orderly shutdown, 1 when the restart intensity was reached or a boot child failed, 2 for an invalid config, or the exit status of a critical worker that ended (its exit code, or 128+signal).";

impl ExitStatus {
    /// The status after the core's shutdown: its code is 0 for an orderly shutdown, 1
    /// when the intensity was reached or a boot child failed, or a critical worker's
    /// status (0..=255), passed through as it is. Anything else (the core never says
    /// it) is an error.
    pub fn after_shutdown(code: i32) -> ExitStatus {
        match code {
            0 => ExitStatus::Ok,
            1 => ExitStatus::Error,
            2..=255 => ExitStatus::Critical(code as u8),
            _ => ExitStatus::Error,
        }
    }

    /// Success or the daemon's error, for a client command that got a reply.
    pub fn of_reply(ok: bool) -> ExitStatus {
        if ok {
            ExitStatus::Ok
        } else {
            ExitStatus::Error
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::Error => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Unreachable => 3,
            ExitStatus::Critical(code) => code,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_are_the_documented_ones() {
        assert_eq!(ExitStatus::Ok.code(), 0);
        assert_eq!(ExitStatus::Error.code(), 1);
        assert_eq!(ExitStatus::Usage.code(), 2);
        assert_eq!(ExitStatus::Unreachable.code(), 3);
        assert_eq!(ExitStatus::after_shutdown(0), ExitStatus::Ok);
        assert_eq!(ExitStatus::after_shutdown(1), ExitStatus::Error);
        for number in [
            "0 success",
            "1 the daemon",
            "2 usage",
            "3 the daemon cannot",
        ] {
            assert!(HELP.contains(number), "HELP does not say {number:?}");
        }
        assert!(HELP.contains("critical worker"), "{HELP}");
    }

    #[test]
    fn a_critical_workers_status_passes_through() {
        // Every status a process can end with reaches the daemon's own exit status.
        for code in 0..=255 {
            assert_eq!(ExitStatus::after_shutdown(code).code() as i32, code);
        }
        assert_eq!(ExitStatus::after_shutdown(7), ExitStatus::Critical(7));
        // 128 + SIGKILL, as a shell reports a death by signal.
        assert_eq!(ExitStatus::after_shutdown(137).code(), 137);
        // Out of range (never said by the core): an error, not a truncated number.
        assert_eq!(ExitStatus::after_shutdown(256), ExitStatus::Error);
        assert_eq!(ExitStatus::after_shutdown(-1), ExitStatus::Error);
    }
}
