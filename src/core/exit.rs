//! How a process ended, as data (the `waitpid` status, decoded).

use crate::protocol::ExitReport;
use crate::signal::Signal;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit(code)`.
    Code(i32),
    /// A signal ended it.
    Signaled { signal: Signal, core_dumped: bool },
}

impl Exit {
    pub fn report(self) -> ExitReport {
        match self {
            Exit::Code(code) => ExitReport::Exited { code },
            Exit::Signaled {
                signal,
                core_dumped,
            } => ExitReport::Signaled {
                signal: signal.name(),
                core_dumped,
            },
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.report().fmt(f)
    }
}
