//! One client connection on the control socket.
//!
//! Requests are lines of at most [`MAX_REQUEST_LINE`] bytes; replies go out in request
//! order even when some take time (a `stop` waits for the reap): each request gets a
//! sequence number, and a reply that is ready early is parked until those before it
//! have been written. Every buffer is bounded: the reader stops taking requests while
//! too many replies are owed, or while [`MAX_QUEUED`] bytes of replies are queued —
//! unsent, or parked behind an earlier request that is not answered yet — so a client
//! that does not read its replies (or whose replies wait behind a long `stop`) stops
//! being read, and the kernel's socket buffer then stops the client. An oversized line
//! gets one `bad_request` and the connection is closed.
//!
//! The connection takes requests one at a time ([`Conn::next_request`]), so the router
//! can weigh each one against the connection's share of a loop turn, and the bounds
//! are checked again before every request.
//!
//! A connection may end as a one-way stream: of events (`watch`) or of one worker's
//! output lines (`logs` with `follow`). Either is bounded the same way: at most
//! [`WATCH_QUEUE`] unsent bytes; what does not fit is dropped, counted, and announced by
//! one `lagged` line before the next that fits.

use crate::access::Access;
use crate::os::process::Peer;
use crate::protocol::{decode_request, Event, LogEvent, Request, MAX_REQUEST_LINE};
use mio::net::UnixStream;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

/// Stop reading while this many replies are still owed...
const MAX_IN_FLIGHT: u64 = 1024;
/// ...or this many reply bytes are queued for the client: unsent, or parked behind an
/// unanswered earlier request.
pub const MAX_QUEUED: usize = 1024 * 1024;
/// After an oversized line, read and drop at most this much before closing hard.
const DISCARD_LIMIT: usize = 16 * 1024 * 1024;
/// A stream's queue (a watcher's, a log follower's): events or lines beyond this many
/// unsent bytes are dropped (and counted).
pub const WATCH_QUEUE: usize = 256 * 1024;
/// An empty buffer larger than this is given back to the allocator, so a connection
/// that once had a burst does not keep its memory while it lives.
const KEEP_CAPACITY: usize = 64 * 1024;
/// How much one `read` takes from the socket.
const READ_CHUNK: usize = 16 * 1024;

/// A connection that became a one-way stream.
struct Stream {
    kind: StreamKind,
    /// Events or lines dropped since the client last kept up.
    dropped: u64,
    /// Its last line was queued: nothing more goes on it.
    ended: bool,
}

enum StreamKind {
    /// `watch`: only events about these names; all when empty.
    Events { names: HashSet<String> },
    /// `logs` with `follow`: the lines of `name` from sequence number `next` on.
    Log { name: String, next: u64 },
}

pub struct Conn {
    pub stream: UnixStream,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` already taken as requests (dropped before the next read).
    consumed: usize,
    /// Where the newline search resumes in `inbuf`.
    scanned: usize,
    out: Vec<u8>,
    written: usize,
    next_seq: u64,
    next_to_send: u64,
    /// Replies ready before an earlier one, by sequence number.
    parked: BTreeMap<u64, Vec<u8>>,
    /// The bytes in `parked`.
    parked_bytes: usize,
    /// No more requests: the client sent EOF, or a line was too long.
    read_done: bool,
    /// A line was too long: close once the error is written.
    closing: bool,
    discarded: usize,
    /// Reading stopped at a bound (replies owed or queued) and must be resumed by the
    /// daemon when the bound allows: no readiness event comes for bytes already waiting.
    paused: bool,
    /// When a byte last went either way.
    last_active: Instant,
    /// Registered for writability (only while output waits).
    pub want_write: bool,
    one_way: Option<Stream>,
    /// What the peer may do (`Full` or `ReadOnly`; a denied peer is never registered).
    pub access: Access,
    /// Who is at the other end (`SO_PEERCRED`, read at connect).
    pub peer: Peer,
}

/// What one read from the socket gave.
enum Filled {
    /// Bytes: look for a line again.
    More,
    /// Nothing now (would block), or the end with nothing left.
    Nothing,
    /// The end, after a last request without its newline (it still counts).
    LastLine(u64, Result<Request, String>),
}

pub enum ConnStatus {
    Open,
    /// Drop it: closed by the peer with nothing owed, failed, or done closing.
    Close,
}

impl Conn {
    pub fn new(stream: UnixStream, access: Access, peer: Peer) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            consumed: 0,
            scanned: 0,
            out: Vec::new(),
            written: 0,
            next_seq: 0,
            next_to_send: 0,
            parked: BTreeMap::new(),
            parked_bytes: 0,
            read_done: false,
            closing: false,
            discarded: 0,
            paused: false,
            last_active: Instant::now(),
            want_write: false,
            one_way: None,
            access,
            peer,
        }
    }

    /// Reply bytes waiting for the client: unsent, or parked.
    fn queued(&self) -> usize {
        self.out.len() - self.written + self.parked_bytes
    }

    fn within_bounds(&self) -> bool {
        self.next_seq - self.next_to_send < MAX_IN_FLIGHT && self.queued() < MAX_QUEUED
    }

    fn takes_requests(&self) -> bool {
        !self.read_done && !self.closing && self.one_way.is_none()
    }

    /// The next request, with its sequence number: from a complete line already
    /// buffered, else read from the socket. `None` when there is none now: the socket
    /// is drained (readiness will say when more comes), the client is done, or the
    /// bounds stop reading (then [`Conn::resume`] says when to come back).
    pub fn next_request(&mut self) -> Option<(u64, Result<Request, String>)> {
        if self.closing || self.one_way.is_some() {
            // No more requests: drop what arrives, but notice when the client leaves.
            self.discard();
            return None;
        }
        loop {
            if !self.within_bounds() {
                if !self.read_done {
                    self.paused = true;
                }
                return None;
            }
            // Complete lines already buffered go first (also after EOF).
            if let Some(request) = self.next_line() {
                let seq = self.next_seq;
                self.next_seq += 1;
                return Some((seq, request));
            }
            if self.read_done {
                return None;
            }
            match self.fill() {
                Filled::More => {}
                Filled::Nothing => return None,
                Filled::LastLine(seq, request) => return Some((seq, request)),
            }
        }
    }

    /// Read one chunk from the socket into `inbuf`.
    fn fill(&mut self) -> Filled {
        if self.consumed > 0 {
            self.inbuf.drain(..self.consumed);
            self.scanned -= self.consumed;
            self.consumed = 0;
        }
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.read_done = true;
                if self.inbuf.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                    self.clear_inbuf();
                    return Filled::Nothing;
                }
                // A last request without its newline still counts.
                let line = std::mem::take(&mut self.inbuf);
                self.scanned = 0;
                let seq = self.next_seq;
                self.next_seq += 1;
                Filled::LastLine(seq, decode_request(trim_cr(&line)))
            }
            Ok(n) => {
                self.inbuf.extend_from_slice(&chunk[..n]);
                self.last_active = Instant::now();
                Filled::More
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Filled::Nothing,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Filled::More,
            Err(_) => {
                self.read_done = true;
                Filled::Nothing
            }
        }
    }

    /// The next complete line, decoded; or the oversize error. Blank lines (nothing
    /// but spaces, tabs and a CR) are skipped, as line protocols do: they are not
    /// requests and get no reply.
    fn next_line(&mut self) -> Option<Result<Request, String>> {
        loop {
            match self.next_raw_line() {
                Some(Ok(None)) => continue,
                Some(Ok(Some(request))) => return Some(Ok(request)),
                Some(Err(message)) => return Some(Err(message)),
                None => return None,
            }
        }
    }

    /// The next complete line: `None` inside when it is blank.
    fn next_raw_line(&mut self) -> Option<Result<Option<Request>, String>> {
        let unscanned = &self.inbuf[self.scanned..];
        match unscanned.iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                let line = &self.inbuf[self.consumed..end];
                let result = if end - self.consumed > MAX_REQUEST_LINE {
                    Err(self.oversize())
                } else if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                    Ok(None)
                } else {
                    decode_request(trim_cr(line)).map(Some)
                };
                self.consumed = end + 1;
                self.scanned = self.consumed;
                if self.consumed == self.inbuf.len() {
                    self.clear_inbuf();
                }
                Some(result)
            }
            None if self.inbuf.len() - self.consumed > MAX_REQUEST_LINE => {
                self.clear_inbuf();
                Some(Err(self.oversize()))
            }
            None => {
                self.scanned = self.inbuf.len();
                None
            }
        }
    }

    fn clear_inbuf(&mut self) {
        if self.inbuf.capacity() > KEEP_CAPACITY {
            self.inbuf = Vec::new();
        } else {
            self.inbuf.clear();
        }
        self.consumed = 0;
        self.scanned = 0;
    }

    fn oversize(&mut self) -> String {
        self.closing = true;
        self.read_done = true;
        format!("request line is longer than {MAX_REQUEST_LINE} bytes; closing the connection")
    }

    /// After an oversized line, or on a watcher: drop what the client still sends, so
    /// that closing does not reset the connection before it has read the error.
    fn discard(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                // A watcher that shuts down its writing side (`echo ... | socat`) still
                // reads: it is closed when it hangs up or a write fails, not here.
                Ok(0) if self.one_way.is_some() => return,
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

    /// The daemon stopped taking this connection's requests for this loop turn (its
    /// share is used up): whether to come back on the next turn. When the bounds are
    /// what stops it, it is marked paused instead, to be resumed by [`Conn::resume`].
    pub fn wants_more(&mut self) -> bool {
        if !self.takes_requests() {
            return false;
        }
        if self.within_bounds() {
            return true;
        }
        self.paused = true;
        false
    }

    /// True (once) when reading was paused by the bounds and may go on now.
    pub fn resume(&mut self) -> bool {
        if self.paused && self.within_bounds() {
            self.paused = false;
            return self.takes_requests();
        }
        false
    }

    /// True when every request before `seq` has been answered (so a reply to `seq`
    /// goes out at once, and events can follow it in order).
    pub fn is_next(&self, seq: u64) -> bool {
        self.next_to_send == seq
    }

    /// Turn the connection into an event stream; later input is ignored.
    pub fn start_watching(&mut self, names: Vec<String>) {
        self.start_stream(StreamKind::Events {
            names: names.into_iter().collect(),
        });
    }

    /// Turn the connection into a stream of `name`'s output lines from sequence
    /// number `next` on; later input is ignored.
    pub fn start_following(&mut self, name: &str, next: u64) {
        self.start_stream(StreamKind::Log {
            name: name.to_string(),
            next,
        });
    }

    fn start_stream(&mut self, kind: StreamKind) {
        self.read_done = true;
        self.clear_inbuf();
        self.one_way = Some(Stream {
            kind,
            dropped: 0,
            ended: false,
        });
    }

    /// True for a `watch` or a `logs` follower.
    pub fn is_streaming(&self) -> bool {
        self.one_way.is_some()
    }

    /// The worker whose lines this connection follows, if it does.
    pub fn following(&self) -> Option<&str> {
        match &self.one_way {
            Some(Stream {
                kind: StreamKind::Log { name, .. },
                ..
            }) => Some(name),
            _ => None,
        }
    }

    /// When it became idle: not a watcher, no reply owed, nothing to send, not
    /// closing — since its last byte either way. `None` while it is busy.
    pub fn idle_since(&self) -> Option<Instant> {
        let busy = self.one_way.is_some()
            || self.closing
            || self.next_seq != self.next_to_send
            || self.has_unsent();
        (!busy).then_some(self.last_active)
    }

    /// Queue an event for a watcher, if it wants it. When the queue is full the event
    /// is dropped and counted; the next event that fits is preceded by one `lagged`.
    /// Returns true when bytes were queued.
    pub fn push_event(&mut self, event: &Event, line: &[u8]) -> bool {
        let Some(Stream {
            kind: StreamKind::Events { names },
            ..
        }) = &self.one_way
        else {
            return false;
        };
        if let Some(name) = event.name() {
            if !names.is_empty() && !names.contains(name) {
                return false;
            }
        }
        self.push_bounded(line)
    }

    /// Queue an output line of sequence number `seq` for a follower (one it has not
    /// had yet), within the same bound as events. Returns true when bytes were queued.
    pub fn push_log(&mut self, seq: u64, line: &[u8]) -> bool {
        let Some(Stream {
            kind: StreamKind::Log { next, .. },
            ..
        }) = &mut self.one_way
        else {
            return false;
        };
        if seq < *next {
            return false;
        }
        *next = seq + 1;
        self.push_bounded(line)
    }

    /// Queue `line` on the stream unless the queue is full (then it is counted, and
    /// the next line that fits is preceded by one `lagged`).
    fn push_bounded(&mut self, line: &[u8]) -> bool {
        let unsent = self.out.len() - self.written;
        let Some(stream) = self.one_way.as_mut().filter(|s| !s.ended) else {
            return false;
        };
        if unsent + line.len() > WATCH_QUEUE {
            stream.dropped += 1;
            return false;
        }
        if stream.dropped > 0 {
            // The same line for both kinds of stream.
            let lagged = LogEvent::Lagged {
                dropped: stream.dropped,
            };
            self.out.extend_from_slice(&lagged.encode());
            stream.dropped = 0;
        }
        self.out.extend_from_slice(line);
        true
    }

    /// The stream's last line (the daemon is exiting): queued whatever the bound.
    pub fn push_last(&mut self, line: &[u8]) {
        if let Some(stream) = self.one_way.as_mut().filter(|s| !s.ended) {
            stream.ended = true;
            self.out.extend_from_slice(line);
        }
    }

    /// Put the reply to request `seq` in line; it is written once those before it are.
    pub fn deliver(&mut self, seq: u64, mut line: Vec<u8>) {
        if seq != self.next_to_send {
            // It may wait long: keep only its bytes.
            line.shrink_to_fit();
            self.parked_bytes += line.len();
            self.parked.insert(seq, line);
            return;
        }
        self.out.extend_from_slice(&line);
        self.next_to_send += 1;
        while let Some(line) = self.parked.remove(&self.next_to_send) {
            self.parked_bytes -= line.len();
            self.out.extend_from_slice(&line);
            self.next_to_send += 1;
        }
    }

    pub fn has_unsent(&self) -> bool {
        self.written < self.out.len()
    }

    /// Write what the socket takes; say whether the connection lives on.
    pub fn flush(&mut self) -> ConnStatus {
        let before = self.written;
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ConnStatus::Close,
            }
        }
        if self.written > before {
            self.last_active = Instant::now();
        }
        if self.written == self.out.len() {
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
            self.written = 0;
        } else if self.written > 64 * 1024 {
            self.out.drain(..self.written);
            self.written = 0;
        }
        let owed = self.next_seq - self.next_to_send;
        if self.one_way.is_some() && self.discarded >= DISCARD_LIMIT {
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
            && self.one_way.is_none()
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
