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

/// True when the exit is OTP's `:normal` or `:shutdown`: not a crash.
pub fn is_clean(exit: &Exit, clean_signals: &[Signal]) -> bool {
    match *exit {
        Exit::Code(code) => code == 0,
        Exit::Signaled { signal, .. } => clean_signals.contains(&signal),
    }
}

pub fn decide(restart: RestartType, exit: &Exit, clean_signals: &[Signal]) -> Decision {
    match restart {
        RestartType::Permanent => Decision::Restart,
        RestartType::Temporary => Decision::Remove,
        RestartType::Transient if is_clean(exit, clean_signals) => Decision::Remove,
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

    #[test]
    fn the_issue_table() {
        let clean = [Signal::TERM];
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
                decide(Permanent, &exit, &clean),
                permanent,
                "permanent {exit}"
            );
            assert_eq!(
                decide(Transient, &exit, &clean),
                transient,
                "transient {exit}"
            );
            assert_eq!(
                decide(Temporary, &exit, &clean),
                temporary,
                "temporary {exit}"
            );
        }
    }

    #[test]
    fn clean_signals_are_configurable() {
        let clean = [Signal::TERM, Signal::INT];
        assert_eq!(decide(Transient, &sig(Signal::INT), &clean), Remove);
        assert_eq!(decide(Transient, &sig(Signal::TERM), &[]), Restart);
    }

    fn libc_segv() -> i32 {
        11
    }
}
