//! The daemon's logger: one line per record on stderr.
//!
//! Small on purpose (it is the "one small logger" the project allows). Two formats:
//! - for a terminal or a file: `2026-11-24T16:54:00.123Z INFO  message` (UTC);
//! - under systemd, when `$JOURNAL_STREAM` names the very file stderr is (device and
//!   inode match): `<6>message`, the syslog priority prefix journald understands
//!   (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace), and no timestamp,
//!   since journald adds its own.
//!
//! The level comes from `RUST_LOG` when it is set (`error`, `warn`, `info`, `debug`,
//! `trace`, `off`), else from the config's `[supervisor] log_level`, else `info`.
//! Worker output arrives here as `[NAME] line` records.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static JOURNAL: AtomicBool = AtomicBool::new(false);

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if JOURNAL.load(Ordering::Relaxed) {
            format!("<{}>{}\n", priority(record.level()), record.args())
        } else {
            format!(
                "{} {:<5} {}\n",
                timestamp(SystemTime::now()),
                record.level(),
                record.args()
            )
        };
        // A failed write to stderr has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Install the logger: level from `RUST_LOG` (default info), journald format when
/// stderr is the journal stream.
pub fn init() {
    JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(env_level().unwrap_or(LevelFilter::Info));
    }
}

/// Apply the config's level, unless `RUST_LOG` says otherwise.
pub fn set_config_level(level: Option<LevelFilter>) {
    if let (None, Some(level)) = (env_level(), level) {
        log::set_max_level(level);
    }
}

/// `RUST_LOG`: a bare level (`debug`), or env_logger-style directives of which the
/// `dynsup=LEVEL` one wins over a bare default (`warn,dynsup=debug`).
fn env_level() -> Option<LevelFilter> {
    let value = std::env::var("RUST_LOG").ok()?;
    let mut default = None;
    for directive in value.split(',').map(str::trim) {
        match directive.split_once('=') {
            Some(("dynsup", level)) => return level.trim().parse().ok(),
            Some(_) => {}
            None => default = directive.parse().ok().or(default),
        }
    }
    default
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr (or stdout) goes
/// to the journal; it only counts if stderr is still that very stream.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}

/// `2026-11-24T16:54:00.123Z`, computed without a date crate.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_538_040_123);
        assert_eq!(timestamp(t), "2026-11-24T16:34:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}

/// One line a worker wrote (`name`), at `level`: the daemon's log gets it as
/// `[name] line`. Never blocks the caller.
pub fn worker_line(name: &str, level: Level, line: &str) {
    log::log!(target: "worker", level, "[{name}] {line}");
}
