//! One client connection on the control socket.
//!
//! Requests are lines of at most [`MAX_REQUEST_LINE`] bytes; replies go out in request
//! order even when some take time (a `stop` waits for the reap): each request gets a
//! sequence number, and a reply that is ready early is parked until those before it
//! have been written. Every buffer is bounded: the reader stops taking requests while
//! too many replies are pending or unsent (the client must read), and an oversized
//! line gets one `bad_request` and the connection is closed.

use crate::access::Access;
use crate::protocol::{decode_request, Event, Request, MAX_REQUEST_LINE};
use mio::net::UnixStream;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::net::Shutdown;

/// Requests taken per wake-up before other sources get their turn.
const REQUEST_BUDGET: usize = 64;
/// Stop reading while this many replies are still owed...
const MAX_IN_FLIGHT: u64 = 1024;
/// ...or this many reply bytes are waiting for the client to read them.
const MAX_UNSENT: usize = 4 * 1024 * 1024;
/// After an oversized line, read and drop at most this much before closing hard.
const DISCARD_LIMIT: usize = 16 * 1024 * 1024;
/// A watcher's queue: events beyond this many unsent bytes are dropped (and counted).
pub const WATCH_QUEUE: usize = 256 * 1024;

/// A connection that became an event stream (`watch`).
struct Watch {
    /// Only events about these names; all when empty.
    names: HashSet<String>,
    /// Events dropped since the watcher last kept up.
    dropped: u64,
}

pub struct Conn {
    pub stream: UnixStream,
    inbuf: Vec<u8>,
    /// Where the newline search resumes in `inbuf`.
    scanned: usize,
    out: Vec<u8>,
    written: usize,
    next_seq: u64,
    next_to_send: u64,
    parked: BTreeMap<u64, Vec<u8>>,
    /// No more requests: the client sent EOF, or a line was too long.
    read_done: bool,
    /// A line was too long: close once the error is written.
    closing: bool,
    discarded: usize,
    /// Registered for writability (only while output waits).
    pub want_write: bool,
    watch: Option<Watch>,
    /// What the peer may do (`Full` or `ReadOnly`; a denied peer is never registered).
    pub access: Access,
}

/// What reading produced: requests to handle (with their sequence numbers), and
/// whether the connection has more to read now.
pub struct ReadBatch {
    pub requests: Vec<(u64, Result<Request, String>)>,
    pub more: bool,
}

pub enum ConnStatus {
    Open,
    /// Drop it: closed by the peer with nothing owed, failed, or done closing.
    Close,
}

impl Conn {
    pub fn new(stream: UnixStream, access: Access) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            scanned: 0,
            out: Vec::new(),
            written: 0,
            next_seq: 0,
            next_to_send: 0,
            parked: BTreeMap::new(),
            read_done: false,
            closing: false,
            discarded: 0,
            want_write: false,
            watch: None,
            access,
        }
    }

    fn may_read(&self) -> bool {
        !self.read_done
            && self.next_seq - self.next_to_send < MAX_IN_FLIGHT
            && self.out.len() - self.written < MAX_UNSENT
    }

    /// Read and decode up to a budget of requests.
    pub fn read(&mut self) -> ReadBatch {
        let mut batch = ReadBatch {
            requests: Vec::new(),
            more: false,
        };
        if self.closing || self.watch.is_some() {
            // No more requests: drop what arrives, but notice when the client leaves.
            self.discard();
            return batch;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // Complete lines already buffered go first.
            while let Some(line) = self.next_line() {
                let seq = self.next_seq;
                self.next_seq += 1;
                batch.requests.push((seq, line));
                if self.closing {
                    return batch;
                }
                if batch.requests.len() >= REQUEST_BUDGET || !self.may_read() {
                    batch.more = self.may_read();
                    return batch;
                }
            }
            if !self.may_read() {
                return batch;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.read_done = true;
                    if !self.inbuf.is_empty() {
                        // A last request without its newline still counts.
                        let line = std::mem::take(&mut self.inbuf);
                        self.scanned = 0;
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        batch.requests.push((seq, decode_request(trim_cr(&line))));
                    }
                    return batch;
                }
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return batch,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.read_done = true;
                    return batch;
                }
            }
        }
    }

    /// The next complete line, decoded; or the oversize error.
    fn next_line(&mut self) -> Option<Result<Request, String>> {
        match self.inbuf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                let result = if end > MAX_REQUEST_LINE {
                    Err(self.oversize())
                } else {
                    Ok(decode_request(trim_cr(&self.inbuf[..end])))
                };
                self.inbuf.drain(..=end);
                self.scanned = 0;
                match result {
                    Ok(decoded) => Some(decoded),
                    Err(message) => Some(Err(message)),
                }
            }
            None if self.inbuf.len() > MAX_REQUEST_LINE => {
                self.inbuf = Vec::new();
                self.scanned = 0;
                Some(Err(self.oversize()))
            }
            None => {
                self.scanned = self.inbuf.len();
                None
            }
        }
    }

    fn oversize(&mut self) -> String {
        self.closing = true;
        self.read_done = true;
        format!("request line is longer than {MAX_REQUEST_LINE} bytes; closing the connection")
    }

    /// After an oversized line: drop what the client still sends, so that closing does
    /// not reset the connection before it has read the error.
    fn discard(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                // A watcher that shuts down its writing side (`echo ... | socat`) still
                // reads: it is closed when it hangs up or a write fails, not here.
                Ok(0) if self.watch.is_some() => return,
                Ok(0) => {
                    self.discarded = DISCARD_LIMIT;
                    return;
                }
                Ok(n) => {
                    self.discarded += n;
                    if self.discarded >= DISCARD_LIMIT {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.discarded = DISCARD_LIMIT;
                    return;
                }
            }
        }
    }

    /// True when every request before `seq` has been answered (so a reply to `seq`
    /// goes out at once, and events can follow it in order).
    pub fn is_next(&self, seq: u64) -> bool {
        self.next_to_send == seq
    }

    /// Turn the connection into an event stream; later input is ignored.
    pub fn start_watching(&mut self, names: Vec<String>) {
        self.read_done = true;
        self.watch = Some(Watch {
            names: names.into_iter().collect(),
            dropped: 0,
        });
    }

    pub fn is_watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Queue an event for a watcher, if it wants it. When the queue is full the event
    /// is dropped and counted; the next event that fits is preceded by one `lagged`.
    /// Returns true when bytes were queued.
    pub fn push_event(&mut self, event: &Event, line: &[u8]) -> bool {
        let Some(watch) = self.watch.as_mut() else {
            return false;
        };
        if let Some(name) = event.name() {
            if !watch.names.is_empty() && !watch.names.contains(name) {
                return false;
            }
        }
        if self.out.len() - self.written + line.len() > WATCH_QUEUE {
            watch.dropped += 1;
            return false;
        }
        if watch.dropped > 0 {
            let lagged = Event::Lagged {
                dropped: watch.dropped,
            };
            self.out.extend_from_slice(&lagged.encode());
            watch.dropped = 0;
        }
        self.out.extend_from_slice(line);
        true
    }

    /// Put the reply to request `seq` in line; it is written once those before it are.
    pub fn deliver(&mut self, seq: u64, line: Vec<u8>) {
        if seq == self.next_to_send {
            self.out.extend_from_slice(&line);
            self.next_to_send += 1;
            while let Some(line) = self.parked.remove(&self.next_to_send) {
                self.out.extend_from_slice(&line);
                self.next_to_send += 1;
            }
        } else {
            self.parked.insert(seq, line);
        }
    }

    /// True when reading was paused by the bounds and may resume now.
    pub fn resumable(&self) -> bool {
        self.may_read() && !self.closing
    }

    pub fn has_unsent(&self) -> bool {
        self.written < self.out.len()
    }

    /// Write what the socket takes; say whether the connection lives on.
    pub fn flush(&mut self) -> ConnStatus {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ConnStatus::Close,
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.written > 64 * 1024 {
            self.out.drain(..self.written);
            self.written = 0;
        }
        let owed = self.next_seq - self.next_to_send;
        if self.watch.is_some() && self.discarded >= DISCARD_LIMIT {
            // The watcher flooded us with input it had no business sending.
            return ConnStatus::Close;
        }
        if self.closing && !self.has_unsent() && owed == 0 {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.discard();
            if self.discarded >= DISCARD_LIMIT {
                return ConnStatus::Close;
            }
        } else if self.read_done
            && self.watch.is_none()
            && !self.closing
            && !self.has_unsent()
            && owed == 0
        {
            return ConnStatus::Close;
        }
        ConnStatus::Open
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
