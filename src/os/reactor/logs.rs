//! The workers' output, the loop's side: the output store and the log files, the
//! `logs` and `reopen_logs` requests, and the end of each loop turn for output — the
//! drop notes that are due, new lines to the followers (`logs` with `follow`), each
//! name's lines of the turn to its file, changed drop counts to the core (`list`
//! shows them as `log_dropped`), and names left with nothing forgotten.

use super::Reactor;
use crate::config::LogConfig;
use crate::core::{Input, ReplyTo};
use crate::os::conn::MAX_QUEUED;
use crate::os::log_files::LogFiles;
use crate::os::worker_logs::{NameId, Stamp, WorkerLogs};
use crate::protocol::{ErrorKind, LogEvent, Reply};
use mio::Token;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long the file writer may take at exit to write what is queued.
const FILES_GRACE: Duration = Duration::from_secs(1);

/// The workers' output: what is kept of it, its files, and the settings of each
/// template.
pub(super) struct Logs {
    pub(super) store: WorkerLogs,
    files: LogFiles,
    config: LogConfig,
}

impl Logs {
    pub(super) fn new(config: LogConfig) -> Logs {
        Logs {
            store: WorkerLogs::new(config.buffer_total),
            files: LogFiles::new(),
            config,
        }
    }

    /// A worker of `template` got an output pipe: its entry, with the template's
    /// settings.
    pub(super) fn open_pipe(&mut self, name: &Rc<str>, template: &str) -> NameId {
        let settings = self.config.for_template(template);
        self.store.open_pipe(name, settings)
    }

    /// Lines dropped because the log file writer was behind, since the daemon started
    /// (for `metrics`).
    pub(super) fn file_drops(&self) -> u64 {
        self.files.dropped_total
    }

    /// When a drop note is due, if any (a poll timeout).
    pub(super) fn next_wake(&self) -> Option<Instant> {
        self.store.next_wake()
    }

    /// A reload's settings: the new total bound at once, and each live worker's
    /// template settings at once. A template the new config lacks keeps its settings
    /// (a dynamic worker keeps its template when it is removed).
    pub(super) fn apply_config<'a>(
        &mut self,
        config: &LogConfig,
        live: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let mut config = config.clone();
        for (template, settings) in &self.config.templates {
            config
                .templates
                .entry(template.clone())
                .or_insert_with(|| settings.clone());
        }
        self.config = config;
        self.store.set_total_cap(self.config.buffer_total);
        for (name, template) in live {
            self.store
                .reconfigure(name, self.config.for_template(template));
        }
    }

    /// Hand each name's lines of this turn to the file writer.
    fn write_files(&mut self) {
        for batch in self.store.take_file_batches() {
            if let Some(file) = &batch.settings.file {
                self.files
                    .write(&batch.name, file, batch.bytes, batch.lines);
            }
        }
    }

    /// At exit: the last lines to the files, and a moment for the writer to finish.
    pub(super) fn finish(&mut self) {
        self.write_files();
        self.files.finish(FILES_GRACE);
    }
}

impl Reactor {
    /// `logs`: the last `lines` kept lines of `name`, oldest first, at most
    /// [`MAX_QUEUED`] bytes of them; with `follow`, the connection then gets each new
    /// line of the name (across its restarts) until the daemon exits.
    pub(super) fn logs_request(
        &mut self,
        token: Token,
        seq: u64,
        from: ReplyTo,
        name: String,
        lines: usize,
        follow: bool,
    ) {
        if !self.logs.store.knows(&name) && !self.core.is_registered(&name) {
            let reply = Reply::error(
                ErrorKind::NotFound,
                format!("{name} is not registered and no output of it is kept"),
            );
            return self.deliver(from, reply);
        }
        let log = self.logs.store.tail(&name, lines, MAX_QUEUED);
        if follow {
            let next = self.logs.store.next_seq();
            if let Err(why) = self.clients.follow(token, seq, &name, next) {
                return self.deliver(from, Reply::error(ErrorKind::BadRequest, why));
            }
        }
        let reply = Reply {
            name: Some(name),
            log: Some(log),
            ..Reply::ok()
        };
        self.deliver(from, reply);
    }

    /// `reopen_logs`: every log file is closed, and opened again by its next line.
    pub(super) fn reopen_logs(&mut self, from: ReplyTo) {
        self.logs.files.reopen();
        log::info!("reopen_logs: worker log files are reopened at their next line");
        self.deliver(from, Reply::ok());
    }

    /// The end of a loop turn for output (see the module doc).
    pub(super) fn end_log_turn(&mut self) {
        if self.logs.next_wake().is_some_and(|at| at <= Instant::now()) {
            self.logs.store.close_due_windows(&mut Stamp::now());
        }
        for (name, from) in self.logs.store.take_new_lines() {
            if !self.clients.has_followers(&name) {
                continue;
            }
            let lines: Vec<(u64, Vec<u8>)> = self
                .logs
                .store
                .lines_since(&name, from)
                .into_iter()
                .map(|(seq, line)| (seq, LogEvent::Line(line).encode()))
                .collect();
            self.clients.push_log_lines(&name, &lines);
        }
        self.logs.write_files();
        for (name, dropped) in self.logs.store.take_changed_drops() {
            self.feed(Input::LogDropped {
                name: name.to_string(),
                dropped,
            });
        }
        self.logs.store.end_turn();
    }

    /// Every worker is gone and the daemon is about to exit: their last lines go to
    /// the followers, then each follower's stream ends with `shutdown`.
    pub(super) fn end_log_streams(&mut self) {
        self.workers.drain_outputs(&mut self.logs.store);
        self.end_log_turn();
        self.clients.end_log_streams();
    }
}
