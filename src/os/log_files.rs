//! The workers' log files: `DIR/NAME.log`, rotated by size, written by a thread of
//! their own so that a slow disk never stalls the loop.
//!
//! The loop hands each name's lines of a turn to [`LogFiles::write`] as one batch; the
//! batch goes on a queue bounded in bytes ([`QUEUE_BYTES`]). When the queue is full the
//! batch is dropped and its lines counted; the next batch of that name that fits starts
//! with a line saying how many were lost, and the daemon's log says so too.
//!
//! The writer thread ([`LogFiles`] starts it at the first batch) appends each batch to
//! its file, opened with `O_APPEND` (and `O_NOFOLLOW`). Before a line would take the
//! file past `log_max_bytes` the file is rotated: `NAME.log.(keep-1)` →
//! `NAME.log.keep`, …, `NAME.log` → `NAME.log.1` (the newest older file), and a new
//! `NAME.log` is begun; with `log_keep = 0` the old file is removed. A file is larger
//! than `log_max_bytes` only when a single line is. A `reopen_logs` request closes
//! every file; each is opened again (created if an external logrotate moved it) by its
//! next line.
//!
//! Errors never stop the daemon: a file that cannot be opened, written or rotated is
//! reported once in the daemon's log (and once more when it works again), and that
//! name's lines are not written meanwhile.

use crate::config::FileSettings;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The most bytes waiting for the writer; beyond, batches are dropped.
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// What a queued batch costs beyond its bytes.
const JOB_COST: usize = 128;

enum Job {
    Write {
        name: String,
        settings: FileSettings,
        bytes: Vec<u8>,
    },
    Reopen,
}

/// The loop's side of the log files: the queue to the writer thread, and the lines
/// dropped per name while it was full.
#[derive(Default)]
pub struct LogFiles {
    writer: Option<Writer>,
    /// The thread could not be started, or died: no files until `reopen`.
    broken: bool,
    /// Lines dropped per name since its last batch that fit.
    dropped: HashMap<String, u64>,
    /// Lines dropped since the daemon started, for `metrics`.
    pub dropped_total: u64,
}

struct Writer {
    jobs: Sender<Job>,
    /// Bytes (and job costs) sent and not written yet.
    queued: Arc<AtomicUsize>,
    /// Says the thread is done (all jobs written) after `jobs` is dropped.
    done: Receiver<()>,
}

impl LogFiles {
    pub fn new() -> LogFiles {
        LogFiles::default()
    }

    /// The writer thread, started at the first use.
    fn writer(&mut self) -> Option<&Writer> {
        if self.broken {
            return None;
        }
        if self.writer.is_none() {
            let (jobs, inbox) = mpsc::channel();
            let (done_tx, done) = mpsc::channel();
            let queued = Arc::new(AtomicUsize::new(0));
            let counter = queued.clone();
            let spawned = std::thread::Builder::new()
                .name("dynsup-logfiles".into())
                .spawn(move || run(inbox, counter, done_tx));
            match spawned {
                Ok(_) => {
                    self.writer = Some(Writer { jobs, queued, done });
                }
                Err(e) => {
                    log::error!(
                        "cannot start the log file writer ({e}); no worker log files are written (reopen_logs tries again)"
                    );
                    self.broken = true;
                    return None;
                }
            }
        }
        self.writer.as_ref()
    }

    /// Queue `bytes` (`lines` whole lines of `name`) for its file, or drop and count
    /// them if the queue is full.
    pub fn write(&mut self, name: &str, settings: &FileSettings, mut bytes: Vec<u8>, lines: u64) {
        let Some(writer) = self.writer() else {
            self.dropped_total += lines;
            *self.dropped.entry(name.to_string()).or_insert(0) += lines;
            return;
        };
        let queued = writer.queued.clone();
        let room = QUEUE_BYTES.saturating_sub(queued.load(Ordering::Relaxed));
        if bytes.len() + JOB_COST > room {
            let count = self.dropped.entry(name.to_string()).or_insert(0);
            if *count == 0 {
                log::warn!(
                    "{name}: its log file's writer is {} bytes behind (a slow disk?): lines are dropped until it catches up",
                    QUEUE_BYTES - room
                );
            }
            *count += lines;
            self.dropped_total += lines;
            return;
        }
        if let Some(lost) = self.dropped.remove(name).filter(|&n| n > 0) {
            log::warn!(
                "{name}: {lost} line(s) were not written to its log file: the disk did not keep up"
            );
            let note = format!(
                "{} 0 dynsup dropped {lost} line(s) here: the log file writer did not keep up\n",
                crate::logger::timestamp(SystemTime::now())
            );
            bytes.splice(0..0, note.into_bytes());
        }
        let cost = bytes.len() + JOB_COST;
        queued.fetch_add(cost, Ordering::Relaxed);
        let job = Job::Write {
            name: name.to_string(),
            settings: settings.clone(),
            bytes,
        };
        let sent = self.writer.as_ref().map(|w| w.jobs.send(job));
        if let Some(Err(_)) = sent {
            queued.fetch_sub(cost, Ordering::Relaxed);
            log::error!("the log file writer stopped; no more worker log files are written (reopen_logs tries again)");
            self.writer = None;
            self.broken = true;
        }
    }

    /// Close every open log file; each is opened again by its next line (for an
    /// external logrotate). A writer that could not be started is tried again.
    pub fn reopen(&mut self) {
        self.broken = false;
        if let Some(writer) = &self.writer {
            if writer.jobs.send(Job::Reopen).is_err() {
                self.writer = None;
            }
        }
    }

    /// At exit: let the writer finish what is queued, waiting at most `grace`.
    pub fn finish(&mut self, grace: Duration) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let Writer { jobs, queued, done } = writer;
        drop(jobs);
        if done.recv_timeout(grace).is_err() {
            log::warn!(
                "the log file writer did not finish within {} ms; {} queued bytes of worker output are not written",
                grace.as_millis(),
                queued.load(Ordering::Relaxed)
            );
        }
    }
}

/// The writer thread: write each batch, until the loop drops its end of the queue.
fn run(inbox: Receiver<Job>, queued: Arc<AtomicUsize>, done: mpsc::Sender<()>) {
    let mut files = Files::default();
    for job in inbox.iter() {
        match job {
            Job::Write {
                name,
                settings,
                bytes,
            } => {
                files.write(&name, &settings, &bytes);
                queued.fetch_sub(bytes.len() + JOB_COST, Ordering::Relaxed);
            }
            Job::Reopen => files.reopen(),
        }
    }
    let _ = done.send(());
}

/// The open log files, by worker name (the writer thread's own).
#[derive(Default)]
struct Files {
    open: HashMap<String, OpenLog>,
    /// Names whose file failed (reported once, until it works again).
    failing: HashSet<String>,
}

struct OpenLog {
    path: PathBuf,
    file: File,
    size: u64,
}

impl Files {
    /// Append whole lines to `NAME.log` in the settings' directory, rotating before a
    /// line would take it past `max_bytes`.
    fn write(&mut self, name: &str, settings: &FileSettings, mut rest: &[u8]) {
        let path = settings.dir.join(format!("{name}.log"));
        while !rest.is_empty() {
            let log = match self.open_for(name, &path) {
                Ok(log) => log,
                Err(e) => return self.fail(name, format!("cannot open {}: {e}", path.display())),
            };
            let room =
                usize::try_from(settings.max_bytes.saturating_sub(log.size)).unwrap_or(usize::MAX);
            let cut = match whole_lines_within(rest, room) {
                0 if log.size > 0 => {
                    if let Err(e) = self.rotate(name, &path, settings.keep) {
                        return self.fail(name, format!("cannot rotate {}: {e}", path.display()));
                    }
                    continue;
                }
                // A single line longer than max_bytes: a file of its own.
                0 => first_line_len(rest),
                n => n,
            };
            if let Err(e) = log.file.write_all(&rest[..cut]) {
                self.open.remove(name);
                return self.fail(name, format!("cannot write {}: {e}", path.display()));
            }
            log.size += cut as u64;
            rest = &rest[cut..];
        }
        if self.failing.remove(name) {
            log::info!("{name}: its log file {} is written again", path.display());
        }
    }

    /// The open file of `name` at `path`, opened (created) if needed.
    fn open_for(&mut self, name: &str, path: &Path) -> io::Result<&mut OpenLog> {
        if self.open.get(name).is_some_and(|log| log.path != path) {
            // Its directory changed (a reload).
            self.open.remove(name);
        }
        if !self.open.contains_key(name) {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            let size = file.metadata()?.len();
            self.open.insert(
                name.to_string(),
                OpenLog {
                    path: path.to_path_buf(),
                    file,
                    size,
                },
            );
        }
        self.open
            .get_mut(name)
            .ok_or_else(|| io::Error::other("the file was not kept open"))
    }

    /// `NAME.log` becomes `NAME.log.1`, each older one moves up by one, the one beyond
    /// `keep` goes; with `keep = 0` the file is removed. The next line opens a new one.
    fn rotate(&mut self, name: &str, path: &Path, keep: u32) -> io::Result<()> {
        self.open.remove(name);
        let numbered = |n: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        // One left over from a larger `keep` is removed too.
        ignore_missing(std::fs::remove_file(numbered(keep + 1)))?;
        if keep == 0 {
            return ignore_missing(std::fs::remove_file(path));
        }
        for n in (1..keep).rev() {
            ignore_missing(std::fs::rename(numbered(n), numbered(n + 1)))?;
        }
        std::fs::rename(path, numbered(1))
    }

    fn reopen(&mut self) {
        self.open.clear();
    }

    fn fail(&mut self, name: &str, message: String) {
        if self.failing.insert(name.to_string()) {
            log::warn!(
                "{name}: {message}; its lines are not written to a file until this works again"
            );
        }
    }
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// How many bytes of whole lines at the start of `bytes` fit in `room` (batches are
/// whole lines, each ending with a newline).
fn whole_lines_within(bytes: &[u8], room: usize) -> usize {
    if bytes.len() <= room {
        return bytes.len();
    }
    bytes[..room]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

fn first_line_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dynsup-log-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn cuts_at_whole_lines() {
        assert_eq!(whole_lines_within(b"ab\ncd\n", 10), 6);
        assert_eq!(whole_lines_within(b"ab\ncd\n", 5), 3);
        assert_eq!(whole_lines_within(b"ab\ncd\n", 2), 0);
        assert_eq!(first_line_len(b"abc\nd\n"), 4);
    }

    #[test]
    fn rotates_before_a_line_would_pass_max_bytes_and_keeps_keep_files() {
        let dir = temp_dir("rotate");
        let settings = FileSettings {
            dir: dir.clone(),
            max_bytes: 10,
            keep: 2,
        };
        let mut files = Files::default();
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            files.write("w", &settings, line.as_bytes());
        }
        assert_eq!(read(&dir.join("w.log")), "gggg\n");
        assert_eq!(read(&dir.join("w.log.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.join("w.log.2")), "cccc\ndddd\n");
        assert!(!dir.join("w.log.3").exists());
        // One batch of many lines is split across files the same way.
        files.write("v", &settings, b"1111\n2222\n3333\n");
        assert_eq!(read(&dir.join("v.log")), "3333\n");
        assert_eq!(read(&dir.join("v.log.1")), "1111\n2222\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keep_zero_removes_the_full_file_and_reopen_follows_a_rename() {
        let dir = temp_dir("keep0");
        let settings = FileSettings {
            dir: dir.clone(),
            max_bytes: 12,
            keep: 0,
        };
        let mut files = Files::default();
        for line in ["aaaa\n", "bbbb\n", "cccc\n"] {
            files.write("w", &settings, line.as_bytes());
        }
        assert_eq!(read(&dir.join("w.log")), "cccc\n");
        assert!(!dir.join("w.log.1").exists());
        std::fs::rename(dir.join("w.log"), dir.join("moved")).unwrap();
        files.write("w", &settings, b"d\n");
        assert_eq!(read(&dir.join("moved")), "cccc\nd\n", "still the open file");
        files.reopen();
        files.write("w", &settings, b"e\n");
        assert_eq!(read(&dir.join("w.log")), "e\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_directory_is_reported_and_nothing_panics() {
        let settings = FileSettings {
            dir: PathBuf::from("/nonexistent-dynsup-dir"),
            max_bytes: 100,
            keep: 1,
        };
        let mut files = Files::default();
        files.write("w", &settings, b"x\n");
        files.write("w", &settings, b"y\n");
        assert!(files.failing.contains("w"));
    }

    #[test]
    fn the_thread_writes_what_was_queued_before_finish() {
        let dir = temp_dir("thread");
        let settings = FileSettings {
            dir: dir.clone(),
            max_bytes: 1 << 20,
            keep: 1,
        };
        let mut files = LogFiles::new();
        files.write("w", &settings, b"one\n".to_vec(), 1);
        files.write("w", &settings, b"two\n".to_vec(), 1);
        files.finish(Duration::from_secs(10));
        assert_eq!(read(&dir.join("w.log")), "one\ntwo\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
