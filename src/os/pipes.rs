//! Worker pipes: the output pipe (the worker's stdout and stderr share it) read and
//! split into lines, and the stdin mailbox.
//!
//! Both sides are non-blocking and bounded. A pipe is read at most [`READ_BUDGET`]
//! bytes, and about [`LINE_BUDGET`] taken lines, per loop turn. Each line goes through its name's rate limit
//! ([`WorkerLogs::admit`]); past it, every line that ends in the chunk just read is
//! dropped and counted in one pass over its bytes, without being looked at. An output
//! line longer than [`MAX_OUTPUT_LINE`] is cut in pieces; a partial last line is taken
//! at EOF, so nothing a worker printed is lost when it exits (the pipe is drained to
//! EOF even after the process was reaped). The mailbox holds at most
//! [`MAILBOX_CAPACITY`] bytes; a cast that does not fit is refused whole.

use crate::os::worker_logs::{NameId, Stamp, WorkerLogs};
use mio::unix::pipe::{Receiver, Sender};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

/// Longest output line taken in one piece.
pub const MAX_OUTPUT_LINE: usize = 16 * 1024;
/// Bytes a worker's stdin buffer may hold.
pub const MAILBOX_CAPACITY: usize = 1024 * 1024;

/// Bytes read from one pipe per loop turn before other sources get their turn.
pub const READ_BUDGET: usize = 64 * 1024;
/// Lines taken (kept, logged, written to files) from one pipe per loop turn: the cost of
/// a line is per line, so a flood of short lines is bounded by this, not by bytes.
/// Lines dropped by the rate limit are counted in one pass and do not count here.
pub const LINE_BUDGET: usize = 1024;
/// Bytes read by one `read` (at most this many lines can end in one read).
const READ_CHUNK: usize = 4 * 1024;

pub enum Drained {
    /// Nothing more to read now.
    WouldBlock,
    /// The budget ran out with data left: come back after other sources.
    More,
    /// The writer closed its end: deregister and drop.
    Eof,
}

pub struct OutputPipe {
    pub pipe: Receiver,
    name: Rc<str>,
    /// The name's entry in the output store (valid while this pipe is open).
    id: NameId,
    /// The worker's pid, written with each of its lines.
    pid: i32,
    partial: Vec<u8>,
}

impl OutputPipe {
    pub fn new(pipe: Receiver, name: Rc<str>, id: NameId, pid: i32) -> OutputPipe {
        OutputPipe {
            pipe,
            name,
            id,
            pid,
            partial: Vec::new(),
        }
    }

    /// The name's entry in the output store.
    pub fn id(&self) -> NameId {
        self.id
    }

    /// Read what is there, up to the budget, and hand each complete line to `logs`.
    pub fn drain(&mut self, logs: &mut WorkerLogs) -> Drained {
        let mut at = Stamp::now();
        let mut chunk = [0u8; READ_CHUNK];
        let mut total = 0;
        let mut lines = 0;
        loop {
            match self.pipe.read(&mut chunk) {
                Ok(0) => {
                    self.flush_partial(logs, &mut at);
                    return Drained::Eof;
                }
                Ok(n) => {
                    lines += self.take(&chunk[..n], logs, &mut at);
                    total += n;
                    if total >= READ_BUDGET || lines >= LINE_BUDGET {
                        return Drained::More;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("{}: output pipe failed: {e}", self.name);
                    self.flush_partial(logs, &mut at);
                    return Drained::Eof;
                }
            }
        }
    }

    /// Split `bytes` into lines; returns how many were taken (not dropped).
    fn take(&mut self, mut bytes: &[u8], logs: &mut WorkerLogs, at: &mut Stamp) -> usize {
        let mut taken = 0;
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            if !logs.admit(self.id, at) {
                // Over the rate limit: every line that ends in this chunk is dropped,
                // counted in one pass. What follows the last newline starts a line of
                // its own, judged when it ends.
                let last = bytes.iter().rposition(|&b| b == b'\n').unwrap_or(newline);
                let ended = bytes[..=last].iter().filter(|&&b| b == b'\n').count();
                logs.drop_lines(self.id, ended as u64);
                self.partial.clear();
                bytes = &bytes[last + 1..];
                break;
            }
            let (line, rest) = bytes.split_at(newline);
            taken += 1;
            if self.partial.is_empty() {
                logs.push(self.id, self.pid, line, at);
            } else {
                self.extend_partial(line, logs, at);
                if !self.partial.is_empty() {
                    logs.push(self.id, self.pid, &self.partial, at);
                    self.partial.clear();
                }
            }
            bytes = &rest[1..];
        }
        self.extend_partial(bytes, logs, at);
        taken
    }

    /// Add to the line being read; a piece that reaches [`MAX_OUTPUT_LINE`] is a line
    /// of its own (through the rate limit).
    fn extend_partial(&mut self, mut bytes: &[u8], logs: &mut WorkerLogs, at: &mut Stamp) {
        while !bytes.is_empty() {
            let room = MAX_OUTPUT_LINE - self.partial.len();
            let (piece, rest) = bytes.split_at(room.min(bytes.len()));
            self.partial.extend_from_slice(piece);
            bytes = rest;
            if self.partial.len() == MAX_OUTPUT_LINE {
                self.flush_partial(logs, at);
            }
        }
    }

    fn flush_partial(&mut self, logs: &mut WorkerLogs, at: &mut Stamp) {
        if self.partial.is_empty() {
            return;
        }
        if logs.admit(self.id, at) {
            logs.push(self.id, self.pid, &self.partial, at);
        } else {
            logs.drop_lines(self.id, 1);
        }
        self.partial.clear();
        if self.partial.capacity() > MAX_OUTPUT_LINE {
            self.partial = Vec::new();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum CastError {
    Full,
    Closed,
}

pub struct Mailbox {
    pub pipe: Sender,
    buffer: VecDeque<u8>,
    /// Registered with the poller for writability (only while bytes wait).
    pub registered: bool,
    closed: bool,
}

impl Mailbox {
    pub fn new(pipe: Sender) -> Mailbox {
        Mailbox {
            pipe,
            buffer: VecDeque::new(),
            registered: false,
            closed: false,
        }
    }

    /// Queue `message` and a newline, and try to write at once. Returns the bytes
    /// queued.
    pub fn cast(&mut self, message: &str) -> Result<usize, CastError> {
        if self.closed {
            return Err(CastError::Closed);
        }
        let size = message.len() + 1;
        if self.buffer.len() + size > MAILBOX_CAPACITY {
            return Err(CastError::Full);
        }
        self.buffer.extend(message.as_bytes());
        self.buffer.push_back(b'\n');
        self.flush();
        if self.closed {
            return Err(CastError::Closed);
        }
        Ok(size)
    }

    /// True while queued bytes wait for the worker to read them.
    pub fn is_waiting(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Write as much as the pipe takes. Returns true while bytes are still waiting.
    pub fn flush(&mut self) -> bool {
        while !self.buffer.is_empty() {
            let (front, _) = self.buffer.as_slices();
            match self.pipe.write(front) {
                Ok(n) => {
                    self.buffer.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // EPIPE: the worker closed its stdin or died. Queued bytes are lost,
                    // as a dead process's mailbox is in OTP.
                    self.closed = true;
                    self.buffer = VecDeque::new();
                    return false;
                }
            }
        }
        false
    }
}
