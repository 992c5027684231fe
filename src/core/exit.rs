//! How a process ended, as data (the `waitpid` status, decoded).

use crate::signal::Signal;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit(code)`.
    Code(i32),
    /// A signal ended it.
    Signaled { signal: Signal, core_dumped: bool },
}

/// `exit 1`, `signal SIGKILL`, `signal SIGSEGV (core dumped)`: the words of logs, of
/// `list`'s last exit and of events (the wire's `ExitReport` reads the same).
impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signaled {
                signal,
                core_dumped: true,
            } => write!(f, "signal {signal} (core dumped)"),
            Exit::Signaled { signal, .. } => write!(f, "signal {signal}"),
        }
    }
}
