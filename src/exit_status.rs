//! The process's exit statuses, decided here and nowhere else: `main` turns the outcome
//! of the daemon or of a client command into one of these.

use std::process::ExitCode;

/// How `dynsup` ends. The numbers are part of the CLI's contract (scripts test them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command succeeded; the daemon shut down in order.
    Ok = 0,
    /// The daemon answered with an error; the daemon reached its restart intensity, a
    /// boot child failed, or the event loop failed.
    Error = 1,
    /// A usage error (clap's); the daemon's config is invalid or its socket unusable.
    Usage = 2,
    /// The daemon cannot be reached (no socket, refused, closed without replying).
    Unreachable = 3,
}

/// What `dynsup --help` says about them.
pub const HELP: &str = "Exit status: 0 success, 1 the daemon answered with an error, 2 usage error, 3 the daemon cannot be reached.";

impl ExitStatus {
    /// The status after the core's shutdown: its code is 0 for an orderly shutdown, 1
    /// when the intensity was reached or a boot child failed.
    pub fn after_shutdown(code: i32) -> ExitStatus {
        if code == 0 {
            ExitStatus::Ok
        } else {
            ExitStatus::Error
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
        self as u8
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
    }
}
