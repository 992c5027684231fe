//! Signal names and numbers: a pure lookup table shared by the config, the core and the CLI.
//!
//! Signals are plain data here (a number with a name); sending one is `os::process`'s job.
//! Names are accepted with or without the `SIG` prefix and in any case (`SIGTERM`, `term`),
//! and a decimal number is accepted too, so `kill NAME --signal 9` works.
//!
//! Real-time signals are named as systemd and `kill -l` name them, counted from the C
//! library's `SIGRTMIN` (34 with glibc, which keeps 32 and 33 for its threads):
//! `SIGRTMIN`, `SIGRTMIN+1` … `SIGRTMIN+29`, `SIGRTMAX` (64). `RTMAX-N` is accepted too,
//! and named back as the `SIGRTMIN+N` it is. Numbers 32 and 33 are refused: they lie
//! between the standard signals and `SIGRTMIN`, and the C library uses them internally.

use std::fmt;

/// A signal number, as the kernel numbers it on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(pub i32);

impl Signal {
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    pub const HUP: Signal = Signal(libc::SIGHUP);
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const TERM: Signal = Signal(libc::SIGTERM);

    /// Parse `SIGTERM`, `TERM`, `term`, `15`, `SIGRTMIN+2`, `rtmax-1` or `36`.
    pub fn parse(text: &str) -> Result<Signal, String> {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return Signal::from_number(number);
        }
        let upper = trimmed.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(signal) = NAMES
            .iter()
            .find(|(name, _)| *name == bare)
            .map(|&(_, number)| Signal(number))
        {
            return Ok(signal);
        }
        if bare.starts_with("RTMIN") || bare.starts_with("RTMAX") {
            return Signal::parse_realtime(text, bare);
        }
        Err(format!(
            "unknown signal {text:?} (expected a name such as SIGTERM or SIGRTMIN+2, or a number)"
        ))
    }

    /// A signal number as the kernel numbers it: 1 to 31, or `SIGRTMIN` to `SIGRTMAX`.
    fn from_number(number: i32) -> Result<Signal, String> {
        let (rtmin, rtmax) = realtime_range();
        if (1..=LAST_STANDARD).contains(&number) || (rtmin..=rtmax).contains(&number) {
            Ok(Signal(number))
        } else if (LAST_STANDARD + 1..rtmin).contains(&number) {
            Err(format!(
                "signal number {number} is reserved by the C library; real-time signals are {rtmin} (SIGRTMIN) to {rtmax} (SIGRTMAX)"
            ))
        } else {
            Err(format!(
                "signal number {number} is out of range (1 to {LAST_STANDARD}, or {rtmin} to {rtmax})"
            ))
        }
    }

    /// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (`bare`: upper case, no `SIG`).
    fn parse_realtime(text: &str, bare: &str) -> Result<Signal, String> {
        let (rtmin, rtmax) = realtime_range();
        let (base, rest, sign) = match bare.strip_prefix("RTMIN") {
            Some(rest) => (rtmin, rest, '+'),
            None => (rtmax, &bare["RTMAX".len()..], '-'),
        };
        let offset = if rest.is_empty() {
            Some(0)
        } else {
            rest.strip_prefix(sign)
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<i32>().ok())
        };
        let number = offset.map(|n| if sign == '+' { base + n } else { base - n });
        match number {
            Some(number) if (rtmin..=rtmax).contains(&number) => Ok(Signal(number)),
            _ => Err(format!(
                "unknown signal {text:?}: real-time signals are SIGRTMIN to SIGRTMIN+{} (or SIGRTMAX-{} to SIGRTMAX)",
                rtmax - rtmin,
                rtmax - rtmin
            )),
        }
    }

    /// The conventional name: `SIGTERM`, `SIGRTMIN+2`; `SIG32` for a number without one.
    pub fn name(self) -> String {
        if let Some((name, _)) = NAMES.iter().find(|&&(_, number)| number == self.0) {
            return format!("SIG{name}");
        }
        let (rtmin, rtmax) = realtime_range();
        match self.0 {
            n if n == rtmin => "SIGRTMIN".to_string(),
            n if n == rtmax => "SIGRTMAX".to_string(),
            n if n > rtmin && n < rtmax => format!("SIGRTMIN+{}", n - rtmin),
            n => format!("SIG{n}"),
        }
    }

    /// Whether this is a real-time signal (`SIGRTMIN` to `SIGRTMAX`).
    pub fn is_realtime(self) -> bool {
        let (rtmin, rtmax) = realtime_range();
        (rtmin..=rtmax).contains(&self.0)
    }
}

/// The last of the standard signals (`SIGSYS`); 32 and above are real-time numbers.
const LAST_STANDARD: i32 = 31;

/// `SIGRTMIN` and `SIGRTMAX` as the C library defines them for programs (glibc: 34 and
/// 64; the numbers below 34 it keeps for itself).
fn realtime_range() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
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
        assert!(Signal::parse("-9").is_err());
    }

    #[test]
    fn names_round_trip() {
        for &(_, number) in NAMES {
            assert_eq!(Signal::parse(&Signal(number).name()), Ok(Signal(number)));
        }
        for number in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            let name = Signal(number).name();
            assert_eq!(Signal::parse(&name), Ok(Signal(number)), "{name}");
            assert_eq!(Signal::parse(&number.to_string()), Ok(Signal(number)));
        }
    }

    #[test]
    fn real_time_signals_have_systemds_names() {
        let rtmin = libc::SIGRTMIN();
        let rtmax = libc::SIGRTMAX();
        assert_eq!(Signal(rtmin).name(), "SIGRTMIN");
        assert_eq!(Signal(rtmin + 2).name(), "SIGRTMIN+2");
        assert_eq!(Signal(rtmax).name(), "SIGRTMAX");
        assert_eq!(Signal::parse("SIGRTMIN+2"), Ok(Signal(rtmin + 2)));
        assert_eq!(Signal::parse("rtmin+2"), Ok(Signal(rtmin + 2)));
        assert_eq!(Signal::parse("RTMIN"), Ok(Signal(rtmin)));
        assert_eq!(Signal::parse("SIGRTMAX"), Ok(Signal(rtmax)));
        assert_eq!(Signal::parse("SIGRTMAX-1"), Ok(Signal(rtmax - 1)));
        assert_eq!(
            Signal(rtmax - 1).name(),
            format!("SIGRTMIN+{}", rtmax - 1 - rtmin)
        );
        assert!(Signal(rtmin + 5).is_realtime());
        assert!(!Signal::TERM.is_realtime());
        for bad in [
            "SIGRTMIN+31",
            "SIGRTMAX+1",
            "SIGRTMIN-1",
            "SIGRTMAX-31",
            "RTMIN+",
            "RTMIN+x",
            "RTMIN++1",
            "RTMIN+-1",
            "RTMINX",
            "65",
        ] {
            let err = Signal::parse(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn the_c_librarys_own_signals_are_refused_by_number() {
        for number in 32..libc::SIGRTMIN() {
            let err = Signal::parse(&number.to_string()).expect_err("reserved");
            assert!(err.contains("reserved by the C library"), "{err}");
            assert_eq!(Signal(number).name(), format!("SIG{number}"));
        }
    }
}
