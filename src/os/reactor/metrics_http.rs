//! `[supervisor] metrics_listen`: `GET /metrics` over HTTP/1.x from the event loop (no
//! thread, no HTTP library): accept, read a request head (bounded, `metrics::http`),
//! answer once, shut the writing side, and close once the client does (what it still
//! sends is discarded, bounded), so the answer is never lost to a reset.
//!
//! Slow or abusive clients are bounded like the control socket's: at most
//! [`MAX_CONNS`] at once (one more is answered 503 and closed), at most
//! [`MAX_HEAD`](crate::metrics::http::MAX_HEAD) bytes read from each, and each
//! connection has [`DEADLINE`] from its accept to its last byte written — a client that
//! sends its head slowly (slowloris) or reads its answer slowly is closed then. The
//! only timer is that deadline, and only while a connection is open.

use super::{Poller, Reactor};
use crate::metrics::http::{self as wire, Request, Status};
use crate::metrics::listen::MetricsListen;
use crate::metrics::HttpCounters;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The most HTTP connections open at once.
pub const MAX_CONNS: usize = 16;
/// How long a connection may take, from its accept to its answer's last byte.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// After its answer, what a client still sends is read and discarded, up to this
/// much, until it closes (a close with unread bytes would reset the connection, and the
/// client could lose the answer).
const DRAIN_MAX: usize = 64 * 1024;

/// The bound listener (made before the loop, like the control socket).
pub enum MetricsListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Binds `listen`: a TCP address, or a Unix socket path (created like the control
/// socket: `mode`, `group`; a stale one replaced, a live one refused).
pub fn bind(
    listen: &MetricsListen,
    mode: u32,
    group: Option<u32>,
) -> Result<MetricsListener, String> {
    match listen {
        MetricsListen::Tcp(addr) => TcpListener::bind(*addr)
            .map(MetricsListener::Tcp)
            .map_err(|e| format!("metrics_listen: cannot listen on {addr}: {e}")),
        MetricsListen::Unix(path) => crate::os::listener::bind(path, mode, group)
            .map(MetricsListener::Unix)
            .map_err(|e| format!("metrics_listen: {e}")),
    }
}

impl MetricsListener {
    /// Where it listens, as the log says it (the port the kernel chose for `:0`).
    pub fn describe(&self) -> String {
        match self {
            MetricsListener::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("http://{addr}/metrics"),
                Err(_) => "a TCP socket".to_string(),
            },
            MetricsListener::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(path) => format!("{path} (GET /metrics)"),
                None => "a Unix socket".to_string(),
            },
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    /// Read and discard what is there; `true` when the peer closed (or failed), or
    /// `budget` ran out.
    fn discard(&mut self, budget: &mut usize) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    *budget = budget.saturating_sub(n);
                    if *budget == 0 {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }
}

struct HttpConn {
    stream: Stream,
    /// The request head read so far (at most `MAX_HEAD` bytes).
    head: Vec<u8>,
    /// The answer, once there is one, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
    /// The answer is written and the writing side shut down: what the peer still sends
    /// is discarded (at most this many more bytes) until it closes.
    draining: Option<usize>,
    deadline: Instant,
}

/// The endpoint: its listener, its connections and its counters.
pub(super) struct MetricsHttp {
    listener: MetricsListener,
    token: Token,
    conns: HashMap<Token, HttpConn>,
    pub(super) counters: HttpCounters,
}

/// What a readable or writable connection needs next.
pub(super) enum Next {
    Nothing,
    /// Its head asks for the metrics: render them and call [`MetricsHttp::answer`].
    Render,
}

impl MetricsHttp {
    pub(super) fn new(
        mut listener: MetricsListener,
        poller: &mut Poller,
    ) -> io::Result<MetricsHttp> {
        let token = poller.new_token();
        let registry = poller.registry();
        match &mut listener {
            MetricsListener::Tcp(l) => registry.register(l, token, Interest::READABLE)?,
            MetricsListener::Unix(l) => registry.register(l, token, Interest::READABLE)?,
        }
        Ok(MetricsHttp {
            listener,
            token,
            conns: HashMap::new(),
            counters: HttpCounters::default(),
        })
    }

    pub(super) fn has(&self, token: Token) -> bool {
        token == self.token || self.conns.contains_key(&token)
    }

    pub(super) fn open(&self) -> usize {
        self.conns.len()
    }

    /// The earliest connection deadline (a poll timeout), if any is open.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }

    /// The listener or a connection is ready.
    pub(super) fn on_ready(&mut self, token: Token, poller: &mut Poller) -> Next {
        if token == self.token {
            self.accept(poller);
            return Next::Nothing;
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return Next::Nothing;
        };
        if let Some(budget) = conn.draining.as_mut() {
            if conn.stream.discard(budget) {
                self.close(token, poller.registry());
            }
            return Next::Nothing;
        }
        if conn.answer.is_some() {
            self.write(token, poller.registry());
            return Next::Nothing;
        }
        // Read what is there, within the head's bound (one byte more tells it is
        // exceeded).
        let mut chunk = [0u8; 4096];
        let mut closed = false;
        loop {
            let room = (wire::MAX_HEAD + 1).saturating_sub(conn.head.len());
            if room == 0 {
                break;
            }
            let want = room.min(chunk.len());
            match conn.stream.read(&mut chunk[..want]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        match wire::parse(&conn.head) {
            Some(Request::Metrics) => {
                // Counted before rendering: the answer counts itself.
                self.counters.ok += 1;
                Next::Render
            }
            Some(Request::Refuse(status, why)) => {
                self.counters.client_errors += 1;
                let body = format!("{why}\n");
                self.answer_with(
                    token,
                    wire::response(status, "text/plain; charset=utf-8", body.as_bytes()),
                    poller.registry(),
                );
                Next::Nothing
            }
            None if closed => {
                self.close(token, poller.registry());
                Next::Nothing
            }
            None => Next::Nothing,
        }
    }

    /// The metrics for a connection that asked for them.
    pub(super) fn answer(&mut self, token: Token, text: &str, registry: &Registry) {
        let response = wire::response(Status::Ok, crate::metrics::CONTENT_TYPE, text.as_bytes());
        self.answer_with(token, response, registry);
    }

    fn answer_with(&mut self, token: Token, response: Vec<u8>, registry: &Registry) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.head = Vec::new();
            conn.answer = Some((response, 0));
            // The socket has been writable since its accept: no new edge would say so.
            self.write(token, registry);
        }
    }

    /// Write what the peer takes; once all is written, shut the writing side down and
    /// discard what the peer still sends until it closes (closed at once if writing
    /// failed).
    fn write(&mut self, token: Token, registry: &Registry) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let Some((bytes, sent)) = conn.answer.as_mut() else {
            return;
        };
        let written = loop {
            if *sent == bytes.len() {
                break Some(true);
            }
            match conn.stream.write(&bytes[*sent..]) {
                Ok(0) => break Some(false),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break Some(false),
            }
        };
        match written {
            None => {}
            Some(true) if conn.stream.shutdown_write().is_ok() => {
                conn.answer = None;
                let mut budget = DRAIN_MAX;
                let closed = conn.stream.discard(&mut budget);
                conn.draining = Some(budget);
                if closed {
                    self.close(token, registry);
                }
            }
            Some(_) => self.close(token, registry),
        }
    }

    fn accept(&mut self, poller: &mut Poller) {
        loop {
            let accepted = match &self.listener {
                MetricsListener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                MetricsListener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            };
            let mut stream = match accepted {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of fds, say: the connections wait in the queue; the next one
                    // (or a closed connection) tries again.
                    log::warn!("metrics_listen: cannot accept a connection: {e}");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNS {
                // Answered connections whose peers hung up may not have had their
                // turn yet (the listener's event can come first): close those before
                // refusing anyone, so a burst right after served clients is not 503.
                self.close_hung_up(poller.registry());
            }
            if self.conns.len() >= MAX_CONNS {
                self.counters.refused += 1;
                // What it sent already is read first, so that the close that follows
                // is not a reset that could lose the answer (best effort).
                let mut budget = wire::MAX_HEAD;
                stream.discard(&mut budget);
                let body = format!("at most {MAX_CONNS} metrics connections at once\n");
                let response = wire::response(
                    Status::ServiceUnavailable,
                    "text/plain; charset=utf-8",
                    body.as_bytes(),
                );
                // Best effort, never blocking: a fresh socket's buffer takes it.
                let _ = stream.write(&response);
                continue;
            }
            let token = poller.new_token();
            if let Err(e) = poller.registry().register(
                stream.source(),
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("metrics_listen: cannot watch a connection: {e}");
                continue;
            }
            self.conns.insert(
                token,
                HttpConn {
                    stream,
                    head: Vec::new(),
                    answer: None,
                    draining: None,
                    deadline: Instant::now() + DEADLINE,
                },
            );
            // Edge-triggered: bytes that came with the connection get no new event.
            poller.retry(token);
        }
    }

    /// Close the connections past their deadline: a head not sent in time gets a 408
    /// (best effort), an answer not read in time is dropped.
    pub(super) fn close_late(&mut self, now: Instant, registry: &Registry) {
        let late: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            if let Some(conn) = self.conns.get_mut(&token) {
                if conn.draining.is_some() {
                    // Answered; the peer just did not close.
                    self.close(token, registry);
                    continue;
                }
                self.counters.timed_out += 1;
                if conn.answer.is_none() {
                    let body = b"the request head did not arrive in time\n";
                    let response =
                        wire::response(Status::RequestTimeout, "text/plain; charset=utf-8", body);
                    let _ = conn.stream.write(&response);
                }
            }
            self.close(token, registry);
        }
    }

    /// Close the answered connections whose peer has closed (at most [`MAX_CONNS`]
    /// looked at).
    fn close_hung_up(&mut self, registry: &Registry) {
        let gone: Vec<Token> = self
            .conns
            .iter_mut()
            .filter_map(|(token, conn)| {
                let budget = conn.draining.as_mut()?;
                conn.stream.discard(budget).then_some(*token)
            })
            .collect();
        for token in gone {
            self.close(token, registry);
        }
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry.deregister(conn.stream.source());
        }
    }
}

impl Reactor {
    /// The HTTP endpoint's listener or one of its connections is ready.
    pub(super) fn on_metrics_http(&mut self, token: Token) {
        let Some(http) = self.metrics.http.as_mut() else {
            return;
        };
        if let Next::Render = http.on_ready(token, &mut self.poller) {
            let text = self.render_metrics();
            if let Some(http) = self.metrics.http.as_mut() {
                http.answer(token, &text, self.poller.registry());
            }
        }
    }

    /// The end of a loop turn: close the HTTP connections past their deadline.
    pub(super) fn end_metrics_http_turn(&mut self) {
        if let Some(http) = self.metrics.http.as_mut() {
            if http.next_deadline().is_some_and(|at| at <= Instant::now()) {
                http.close_late(Instant::now(), self.poller.registry());
            }
        }
    }
}
