//! Signal names and numbers: a pure lookup table shared by the config, the core and the CLI.
//!
//! Signals are plain data here (a number with a name); sending one is `os::process`'s job.
//! Names are accepted with or without the `SIG` prefix and in any case (`SIGTERM`, `term`),
//! and a decimal number is accepted too, so `kill NAME --signal 9` works.

use std::fmt;

/// A signal number, as the kernel numbers it on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(pub i32);

impl Signal {
    pub const HUP: Signal = Signal(libc::SIGHUP);
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const TERM: Signal = Signal(libc::SIGTERM);

    /// Parse `SIGTERM`, `TERM`, `term` or `15`.
    pub fn parse(text: &str) -> Result<Signal, String> {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return if (1..=libc::SIGRTMAX()).contains(&number) {
                Ok(Signal(number))
            } else {
                Err(format!("signal number {number} is out of range"))
            };
        }
        let upper = trimmed.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        NAMES
            .iter()
            .find(|(name, _)| *name == bare)
            .map(|&(_, number)| Signal(number))
            .ok_or_else(|| {
                format!("unknown signal {text:?} (expected a name such as SIGTERM, or a number)")
            })
    }

    /// The conventional name, `SIGTERM`; `SIG42` for signals without one.
    pub fn name(self) -> String {
        match NAMES.iter().find(|&&(_, number)| number == self.0) {
            Some((name, _)) => format!("SIG{name}"),
            None => format!("SIG{}", self.0),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(Signal::parse("SIGTERM"), Ok(Signal::TERM));
        assert_eq!(Signal::parse("term"), Ok(Signal::TERM));
        assert_eq!(Signal::parse("9"), Ok(Signal::KILL));
        assert!(Signal::parse("SIGNOPE").is_err());
        assert!(Signal::parse("0").is_err());
        assert!(Signal::parse("1000").is_err());
    }

    #[test]
    fn names_round_trip() {
        for &(_, number) in NAMES {
            assert_eq!(Signal::parse(&Signal(number).name()), Ok(Signal(number)));
        }
        assert_eq!(
            Signal(libc::SIGRTMIN() + 1).name(),
            format!("SIG{}", libc::SIGRTMIN() + 1)
        );
    }
}
