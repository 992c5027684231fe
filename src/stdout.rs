//! The CLI's standard output: what `print!`/`println!` do, without their panic when
//! the reader has gone (`dynsup list | head -1`). A closed pipe ends the command
//! quietly with status 0, as the reader asked for no more; any other write error is
//! named on stderr and ends it with status 1. The daemon never writes here (its log
//! goes through `logger`).

use std::fmt;
use std::io::{self, Write};

/// `print!` for the CLI (see the module doc).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), false)
    };
}

/// `println!` for the CLI (see the module doc).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), true)
    };
}

/// Write `args` (and a newline) to standard output; exit on a write error.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        gone(&e);
    }
}

/// Flush standard output (a follower's line must be seen now); exit on a write error.
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        gone(&e);
    }
}

fn gone(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("dynsup: cannot write to standard output: {e}");
    std::process::exit(1);
}
