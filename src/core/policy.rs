//! The restart rule: OTP's decision table, applied to an OS exit status.
//!
//! | how it ended                         | permanent | transient | temporary |
//! |--------------------------------------|-----------|-----------|-----------|
//! | exit 0                               | restart   | remove    | remove    |
//! | exit != 0                            | restart   | restart   | remove    |
//! | a clean signal (default SIGTERM)     | restart   | remove    | remove    |
//! | any other signal                     | restart   | restart   | remove    |
//!
//! A stop that dynsup ordered never reaches this function: the supervisor consumes
//! that exit itself (OTP's `terminate_child` does the same).

use super::exit::Exit;
use super::spec::RestartType;
use crate::signal::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart,
    Remove,
}

/// What counts as a clean exit (OTP's `:normal` / `:shutdown`) for a template: its
/// `normal_exit_codes` (default `[0]`) and its `clean_signals` (default `[SIGTERM]`).
#[derive(Debug, Clone, Copy)]
pub struct CleanExits<'a> {
    pub codes: &'a [i32],
    pub signals: &'a [Signal],
}

impl CleanExits<'_> {
    /// True when the exit is not a crash.
    pub fn contains(&self, exit: &Exit) -> bool {
        match *exit {
            Exit::Code(code) => self.codes.contains(&code),
            Exit::Signaled { signal, .. } => self.signals.contains(&signal),
        }
    }
}

pub fn decide(restart: RestartType, exit: &Exit, clean: CleanExits) -> Decision {
    match restart {
        RestartType::Permanent => Decision::Restart,
        RestartType::Temporary => Decision::Remove,
        RestartType::Transient if clean.contains(exit) => Decision::Remove,
        RestartType::Transient => Decision::Restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use RestartType::*;

    fn sig(signal: Signal) -> Exit {
        Exit::Signaled {
            signal,
            core_dumped: false,
        }
    }

    fn clean(signals: &[Signal]) -> CleanExits<'_> {
        CleanExits {
            codes: &[0],
            signals,
        }
    }

    #[test]
    fn otp_restart_table() {
        let clean = clean(&[Signal::TERM]);
        let segv = Signal(libc_segv());
        #[rustfmt::skip]
        let rows = [
            // how it ended,      permanent, transient, temporary
            (Exit::Code(0),       Restart,   Remove,    Remove),
            (Exit::Code(1),       Restart,   Restart,   Remove),
            (Exit::Code(101),     Restart,   Restart,   Remove),
            (sig(Signal::TERM),   Restart,   Remove,    Remove),
            (sig(Signal::KILL),   Restart,   Restart,   Remove),
            (sig(segv),           Restart,   Restart,   Remove),
            (sig(Signal::INT),    Restart,   Restart,   Remove),
        ];
        for (exit, permanent, transient, temporary) in rows {
            assert_eq!(
                decide(Permanent, &exit, clean),
                permanent,
                "permanent {exit}"
            );
            assert_eq!(
                decide(Transient, &exit, clean),
                transient,
                "transient {exit}"
            );
            assert_eq!(
                decide(Temporary, &exit, clean),
                temporary,
                "temporary {exit}"
            );
        }
    }

    #[test]
    fn clean_signals_are_configurable() {
        let both = [Signal::TERM, Signal::INT];
        assert_eq!(decide(Transient, &sig(Signal::INT), clean(&both)), Remove);
        assert_eq!(decide(Transient, &sig(Signal::TERM), clean(&[])), Restart);
    }

    #[test]
    fn normal_exit_codes_are_configurable() {
        let clean = CleanExits {
            codes: &[0, 3],
            signals: &[Signal::TERM],
        };
        assert_eq!(decide(Transient, &Exit::Code(3), clean), Remove);
        assert_eq!(decide(Transient, &Exit::Code(0), clean), Remove);
        assert_eq!(decide(Transient, &Exit::Code(1), clean), Restart);
        let no_zero = CleanExits {
            codes: &[2],
            signals: &[],
        };
        assert_eq!(decide(Transient, &Exit::Code(0), no_zero), Restart);
        assert_eq!(decide(Permanent, &Exit::Code(2), no_zero), Restart);
    }

    fn libc_segv() -> i32 {
        11
    }
}
