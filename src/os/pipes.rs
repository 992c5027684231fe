//! Worker pipes: the output pipe (the worker's stdout and stderr share it) logged line
//! by line, and the stdin mailbox.
//!
//! Both sides are non-blocking and bounded. An output line longer than
//! [`MAX_OUTPUT_LINE`] is logged in pieces; a partial last line is logged at EOF, so
//! nothing a worker printed is lost when it exits (the pipe is drained to EOF even
//! after the process was reaped). The mailbox holds at most [`MAILBOX_CAPACITY`] bytes;
//! a cast that does not fit is refused whole.

use mio::unix::pipe::{Receiver, Sender};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

/// Longest output line logged in one piece.
pub const MAX_OUTPUT_LINE: usize = 16 * 1024;
/// Bytes a worker's stdin buffer may hold.
pub const MAILBOX_CAPACITY: usize = 1024 * 1024;

/// Bytes read from one pipe per wake-up before other sources get their turn.
const READ_BUDGET: usize = 256 * 1024;

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
    partial: Vec<u8>,
}

impl OutputPipe {
    pub fn new(pipe: Receiver, name: Rc<str>) -> OutputPipe {
        OutputPipe {
            pipe,
            name,
            partial: Vec::new(),
        }
    }

    /// Read what is there and log each complete line as `[name] line`.
    pub fn drain(&mut self) -> Drained {
        let mut chunk = [0u8; 16 * 1024];
        let mut total = 0;
        loop {
            match self.pipe.read(&mut chunk) {
                Ok(0) => {
                    self.flush_partial();
                    return Drained::Eof;
                }
                Ok(n) => {
                    self.take(&chunk[..n]);
                    total += n;
                    if total >= READ_BUDGET {
                        return Drained::More;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("{}: output pipe failed: {e}", self.name);
                    self.flush_partial();
                    return Drained::Eof;
                }
            }
        }
    }

    fn take(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline);
            if self.partial.is_empty() {
                self.emit(line);
            } else {
                self.partial.extend_from_slice(line);
                self.emit(&self.partial);
                self.partial.clear();
            }
            bytes = &rest[1..];
        }
        while !bytes.is_empty() {
            let room = MAX_OUTPUT_LINE - self.partial.len();
            let (piece, rest) = bytes.split_at(room.min(bytes.len()));
            self.partial.extend_from_slice(piece);
            bytes = rest;
            if self.partial.len() == MAX_OUTPUT_LINE {
                self.flush_partial();
            }
        }
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            self.emit(&self.partial);
            self.partial.clear();
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line);
        let (level, line) = crate::logger::split_priority(&line);
        crate::logger::worker_line(&self.name, level, line);
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
