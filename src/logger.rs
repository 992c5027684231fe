//! The daemon's logger: one line per record on stderr, and each worker's lines.
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
//!
//! Nothing here waits on stderr: every line is handed to a queue bounded in bytes
//! ([`QUEUE_CAPACITY`]) that a writer thread empties ([`stderr_queue`]); when stderr
//! does not keep up, new lines are dropped and counted, and one `dropped N lines`
//! record marks the gap once the queue has drained to half. [`finish`] gives the queue
//! a bounded grace at exit.
//!
//! Worker output arrives through [`worker_line`] (its level from [`split_priority`]):
//! as `[NAME] line` records on stderr, or, under journald, as native journal entries
//! ([`journal`]) carrying the worker's name in `SYSLOG_IDENTIFIER=` and
//! `DYNSUP_WORKER=`, so that one worker's lines can be selected.

mod journal;
mod stderr_queue;

use journal::{JournalSocket, SendOutcome};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stderr_queue::StderrQueue;

/// Bound on the bytes handed to stderr and not yet written.
pub const QUEUE_CAPACITY: usize = 2 * 1024 * 1024;
/// How long [`finish`] waits, at most, for the queue to be written at exit.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// stderr is the journal stream: `<N>` prefixes, no timestamps.
static JOURNAL: AtomicBool = AtomicBool::new(false);
/// The writer thread runs: lines go through [`QUEUE`] (else straight to stderr).
static WRITER_UP: AtomicBool = AtomicBool::new(false);
static QUEUE: StderrQueue = StderrQueue::new(QUEUE_CAPACITY, dropped_record);
/// Under journald: the native socket worker lines are sent to, created for the first
/// worker line (`None`: it could not be created).
static NATIVE: OnceLock<Option<Native>> = OnceLock::new();

struct Native {
    socket: JournalSocket,
    /// Entries journald had no room for since the last `dropped` record.
    dropped: AtomicU64,
    /// The last send failed (and its lines went to stderr); warned once.
    unreachable: AtomicBool,
}

thread_local! {
    /// Where a line is put together before it is queued or sent (no allocation per line).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the thread's scratch buffer, emptied (a fresh one if it is in use).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = f(&mut buf);
            // Do not keep an exceptional line's memory.
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        emit_record(record.level(), *record.args());
    }

    /// Never waits: see [`finish`].
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// One record, in the current format, onto stderr's queue.
fn emit_record(level: Level, args: fmt::Arguments) {
    if WRITER_UP.load(Ordering::Relaxed) && QUEUE.refuses_next() {
        return;
    }
    with_scratch(|line| {
        format_record(line, level, args);
        emit(line);
    })
}

fn format_record(out: &mut Vec<u8>, level: Level, args: fmt::Arguments) {
    // Writing into a Vec cannot fail.
    let _ = if JOURNAL.load(Ordering::Relaxed) {
        writeln!(out, "<{}>{args}", priority(level))
    } else {
        append_timestamp(out, SystemTime::now());
        writeln!(out, " {:<5} {args}", level)
    };
}

thread_local! {
    /// The last timestamp formatted, by millisecond: a flood of lines within one
    /// millisecond formats it once.
    static LAST_STAMP: RefCell<(u128, [u8; 24])> = const { RefCell::new((u128::MAX, [0; 24])) };
}

/// `2026-11-24T16:34:00.123Z` (24 bytes), appended to `out`.
fn append_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    LAST_STAMP.with(|cell| {
        let mut last = cell.borrow_mut();
        if last.0 != ms {
            let text = Timestamp(at).to_string();
            let mut stamp = [b' '; 24];
            let n = text.len().min(24);
            stamp[..n].copy_from_slice(&text.as_bytes()[..n]);
            *last = (ms, stamp);
        }
        out.extend_from_slice(&last.1);
    });
}

fn emit(line: &[u8]) {
    if WRITER_UP.load(Ordering::Relaxed) {
        QUEUE.push(line);
    } else {
        // Before the writer thread runs, or if it could not be started. A failed
        // write to stderr has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(line);
    }
}

/// The record that marks a gap in stderr's lines (made on the writer thread).
fn dropped_record(count: u64) -> Vec<u8> {
    let mut line = Vec::new();
    format_record(
        &mut line,
        Level::Warn,
        format_args!("dropped {count} lines: stderr did not keep up"),
    );
    line
}

/// Install the logger: level from `RUST_LOG` (default info), journald format when
/// stderr is the journal stream, and then the native journal socket for worker lines;
/// start the writer thread.
pub fn init() {
    let journal = stderr_is_journal();
    JOURNAL.store(journal, Ordering::Relaxed);
    if log::set_logger(&LOGGER).is_err() {
        return;
    }
    log::set_max_level(env_level().unwrap_or(LevelFilter::Info));
    if let Err(err) = start_writer() {
        log::warn!(
            "cannot start the log writer thread ({err}): the log is written synchronously, so a stalled stderr stalls the daemon"
        );
    }
}

/// The thread that writes [`QUEUE`] to stderr. It is created with every signal
/// blocked, so signals keep going to the loop's thread.
fn start_writer() -> std::io::Result<()> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut previous = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut previous),
    )?;
    let started = std::thread::Builder::new()
        .name("dynsup-log".into())
        .stack_size(256 * 1024)
        .spawn(|| QUEUE.write_forever(std::io::stderr()));
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
    started?;
    WRITER_UP.store(true, Ordering::Relaxed);
    Ok(())
}

/// Lines (records and worker lines) dropped since the daemon started because stderr
/// did not keep up (for `metrics`).
pub fn stderr_dropped_total() -> u64 {
    QUEUE.dropped_total()
}

/// At exit: waits until everything logged so far is written to stderr, at most
/// `grace`. `false`: stderr did not take it all in time (the rest is lost with the
/// process).
pub fn finish(grace: Duration) -> bool {
    !WRITER_UP.load(Ordering::Relaxed) || QUEUE.wait_drained(grace)
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
    Timestamp(at).to_string()
}

/// [`timestamp`] written straight into a line, without a string of its own.
struct Timestamp(SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            since.subsec_millis()
        )
    }
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

/// One line a worker wrote (`name`), at `level` (see [`split_priority`]). Never blocks
/// the caller. Under journald, a native journal entry:
/// `MESSAGE=line`, `PRIORITY=N`, `SYSLOG_IDENTIFIER=name`, `DYNSUP_WORKER=name`
/// (dropped and counted when journald has no room; sent to stderr instead when the
/// socket cannot be reached). Otherwise a `[name] line` record on stderr.
pub fn worker_line(name: &str, level: Level, line: &str) {
    if level > log::max_level() {
        return;
    }
    // Created here rather than in `init`: by now the daemon has filled fds 0-2, so the
    // socket cannot take a standard stream's number.
    let native = NATIVE.get_or_init(|| {
        if !JOURNAL.load(Ordering::Relaxed) {
            return None;
        }
        match JournalSocket::from_env() {
            Ok(socket) => Some(Native {
                socket,
                dropped: AtomicU64::new(0),
                unreachable: AtomicBool::new(false),
            }),
            Err(err) => {
                log::warn!(
                    "cannot create a socket for the journal ({err}): worker lines go to stderr"
                );
                None
            }
        }
    });
    if let Some(native) = native {
        if send_native(native, name, level, line) {
            return;
        }
    }
    emit_record(level, format_args!("[{name}] {line}"));
}

/// Sends one worker line as a journal entry. `false`: journald cannot be reached, the
/// line must go elsewhere.
fn send_native(native: &Native, name: &str, level: Level, line: &str) -> bool {
    let sent = with_scratch(|entry| {
        journal::append_field(entry, "MESSAGE", line.as_bytes());
        journal::append_field(entry, "PRIORITY", &[b'0' + priority(level)]);
        journal::append_field(entry, "SYSLOG_IDENTIFIER", name.as_bytes());
        journal::append_field(entry, "DYNSUP_WORKER", name.as_bytes());
        native.socket.send(entry)
    });
    match sent {
        SendOutcome::Delivered => {
            if native.unreachable.swap(false, Ordering::Relaxed) {
                log::info!(
                    "the journal socket {} works again: worker lines go there",
                    native.socket.path().display()
                );
            }
            let dropped = native.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                log::warn!("dropped {dropped} lines: the journal socket was full");
            }
            true
        }
        SendOutcome::NoRoom => {
            native.dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        SendOutcome::Unreachable(err) => {
            if !native.unreachable.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "cannot send to the journal socket {} ({err}): worker lines go to stderr until it works again",
                    native.socket.path().display()
                );
            }
            false
        }
    }
}

/// A worker line's level from its sd-daemon priority prefix (`<0>` … `<7>`, as in
/// `sd-daemon.h`), and the line without it: `<0>`–`<3>` error, `<4>` warn, `<5>` and
/// `<6>` info, `<7>` debug. A line without such a prefix is info, and is returned
/// whole.
pub fn split_priority(line: &str) -> (Level, &str) {
    let level = match line.as_bytes() {
        [b'<', digit, b'>', ..] => match digit {
            b'0'..=b'3' => Level::Error,
            b'4' => Level::Warn,
            b'5' | b'6' => Level::Info,
            b'7' => Level::Debug,
            _ => return (Level::Info, line),
        },
        _ => return (Level::Info, line),
    };
    // The first three bytes are ASCII: index 3 is a character boundary.
    (level, &line[3..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn split_priority_reads_sd_daemon_prefixes() {
        assert_eq!(split_priority("<0>emerg"), (Level::Error, "emerg"));
        assert_eq!(
            split_priority("<3>disk on fire"),
            (Level::Error, "disk on fire")
        );
        assert_eq!(split_priority("<4>careful"), (Level::Warn, "careful"));
        assert_eq!(split_priority("<5>notice"), (Level::Info, "notice"));
        assert_eq!(split_priority("<6>"), (Level::Info, ""));
        assert_eq!(split_priority("<7>details"), (Level::Debug, "details"));
        // Only the first prefix is read.
        assert_eq!(split_priority("<3><4>x"), (Level::Error, "<4>x"));
        // Anything else is info and kept whole.
        for line in [
            "plain",
            "",
            "<8>x",
            "<13>x",
            "<a>x",
            "<3",
            " <3>x",
            "<html>",
            "<3\u{e9}>",
        ] {
            assert_eq!(split_priority(line), (Level::Info, line), "{line:?}");
        }
    }

    #[test]
    fn a_cached_timestamp_is_the_same_text() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_540_440_123);
        for _ in 0..2 {
            let mut out = Vec::new();
            append_timestamp(&mut out, t);
            assert_eq!(out, timestamp(t).into_bytes());
        }
    }

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_538_040_123);
        assert_eq!(timestamp(t), "2026-11-24T16:34:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
