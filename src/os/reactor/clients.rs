//! The clients of the control socket: accepting and admitting connections (room,
//! `SO_PEERCRED` access, the share of one uid), reading their requests one at a time,
//! the read-only check, replies in request order, flushing with writable interest only
//! while bytes wait, the watchers that `watch` turned into event streams and the
//! followers of a worker's output (`logs` with `follow`), and the two timers of the
//! socket: accepting again after the fd limit stopped it, and closing
//! idle connections.

use super::Poller;
use crate::access::{Access, AccessPolicy};
use crate::config::Config;
use crate::metrics::Connections;
use crate::os::conn::{Conn, ConnStatus};
use crate::os::process;
use crate::protocol::{Cmd, ErrorKind, Event, LogEvent, Reply, Request};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// After `accept` failed for lack of a resource (the fd limit, say), the first retry
/// comes after this long, and each further one after twice as long, up to
/// [`ACCEPT_RETRY_MAX`]; a connection closed by the daemon retries at once.
const ACCEPT_RETRY_MIN: Duration = Duration::from_millis(50);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

pub(super) struct Clients {
    /// None once the daemon is exiting.
    listener: Option<UnixListener>,
    conns: HashMap<Token, Conn>,
    /// Open connections per peer uid.
    by_uid: HashMap<u32, usize>,
    /// Connections that turned into event streams.
    watchers: Vec<Token>,
    /// Connections that follow a worker's output, by worker name.
    followers: HashMap<String, Vec<Token>>,
    /// Connections that got replies or events since they were last flushed.
    dirty: Vec<Token>,
    /// Who may connect, and how many connections each uid may hold (a reload replaces
    /// it, keeping the daemon's own uid).
    access: AccessPolicy,
    /// How many may be connected at once (a reload changes it).
    max_connections: usize,
    /// `accept` failed with connections still queued: when to try again.
    accept_retry: Option<AcceptRetry>,
    /// When the next idle connection may be due to be closed (none: no connection
    /// that could become idle, or no idle timeout).
    idle_check_at: Option<Instant>,
    /// The process groups read from /proc for the `ps` requests of this loop turn:
    /// one scan shared by all of them, dropped at the end of the turn.
    process_groups: Option<HashMap<i32, Vec<i32>>>,
    /// Connections admitted and turned away, for `metrics`.
    pub(super) counted: Connections,
}

/// The listener could not accept (its queue still holds connections).
struct AcceptRetry {
    at: Instant,
    /// The wait after the next failure.
    delay: Duration,
}

impl Clients {
    pub(super) fn new(
        listener: UnixListener,
        access: AccessPolicy,
        max_connections: usize,
    ) -> Clients {
        Clients {
            listener: Some(listener),
            conns: HashMap::new(),
            by_uid: HashMap::new(),
            watchers: Vec::new(),
            followers: HashMap::new(),
            dirty: Vec::new(),
            access,
            max_connections,
            accept_retry: None,
            idle_check_at: None,
            process_groups: None,
            counted: Connections::default(),
        }
    }

    /// How many connections are open (for `metrics`).
    pub(super) fn open(&self) -> usize {
        self.conns.len()
    }

    pub(super) fn has(&self, token: Token) -> bool {
        self.conns.contains_key(&token)
    }

    /// Accept until the queue is empty. If `accept` fails otherwise (the fd limit,
    /// say), the connections left in the queue would never be signalled again
    /// (readiness is edge-triggered): a retry is scheduled instead, until an
    /// `accept` succeeds or finds the queue empty. (At the fd limit `accept` fails
    /// before it looks at the queue, so an empty queue retries too.)
    pub(super) fn accept(&mut self, poller: &mut Poller) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    self.accepting_again();
                    self.admit(stream, poller);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accepting_again();
                    return;
                }
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted =>
                {
                    continue
                }
                Err(e) => {
                    let delay = match &self.accept_retry {
                        Some(retry) => retry.delay,
                        None => {
                            log::error!(
                                "cannot accept a connection: {e}; clients that connect meanwhile wait in the queue and are accepted once the daemon can (retrying, and whenever a connection closes)"
                            );
                            ACCEPT_RETRY_MIN
                        }
                    };
                    self.accept_retry = Some(AcceptRetry {
                        at: Instant::now() + delay,
                        delay: (delay * 2).min(ACCEPT_RETRY_MAX),
                    });
                    return;
                }
            }
        }
    }

    /// `accept` works again: end the retries.
    fn accepting_again(&mut self) {
        if self.accept_retry.take().is_some() {
            log::info!("accepting connections again");
        }
    }

    /// Check who is connecting and whether there is room; register or turn away
    /// (counted for `metrics`).
    fn admit(&mut self, stream: UnixStream, poller: &mut Poller) {
        match self.admit_or_refuse(stream, poller) {
            None => self.counted.accepted += 1,
            Some(ErrorKind::TooManyConnections) => self.counted.refused_full += 1,
            Some(_) => self.counted.refused_denied += 1,
        }
    }

    /// `admit`'s decision; the kind of the refusal, if it was turned away.
    fn admit_or_refuse(
        &mut self,
        mut stream: UnixStream,
        poller: &mut Poller,
    ) -> Option<ErrorKind> {
        let refuse = |stream: &mut UnixStream, kind: ErrorKind, message: String| {
            // Best effort, never blocking: a fresh socket's buffer takes one line.
            let _ = io::Write::write(stream, &Reply::error(kind, message).encode());
            Some(kind)
        };
        let open = self.conns.len();
        if open >= self.max_connections {
            log::warn!("refusing a connection: {open} clients are connected (max_connections)");
            let message = format!(
                "the daemon serves at most {} connections",
                self.max_connections
            );
            return refuse(&mut stream, ErrorKind::TooManyConnections, message);
        }
        let peer = match process::peer_credentials(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                log::warn!("refused a connection whose credentials cannot be read: {e}");
                let message = "the peer's credentials cannot be read".to_string();
                return refuse(&mut stream, ErrorKind::PermissionDenied, message);
            }
        };
        let gids = if self.access.needs_groups(peer.uid) {
            process::groups_of(peer.pid, peer.gid)
        } else {
            vec![peer.gid]
        };
        let access = self.access.decide(peer.uid, &gids);
        if access == Access::Denied {
            log::warn!(
                "refused a connection from uid {} (pid {}): not allowed by the config",
                peer.uid,
                peer.pid
            );
            let message = format!("uid {} may not use this daemon", peer.uid);
            return refuse(&mut stream, ErrorKind::PermissionDenied, message);
        }
        let of_uid = self.by_uid.get(&peer.uid).copied().unwrap_or(0);
        if let Err(no_room) = self
            .access
            .room_for(peer.uid, open, of_uid, self.max_connections)
        {
            log::warn!(
                "refusing a connection from uid {} (pid {}): {no_room}",
                peer.uid,
                peer.pid
            );
            return refuse(
                &mut stream,
                ErrorKind::TooManyConnections,
                no_room.to_string(),
            );
        }
        let token = poller.new_token();
        match poller
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            Ok(()) => self.register(token, Conn::new(stream, access, peer)),
            Err(e) => log::error!("cannot watch a new connection: {e}"),
        }
        None
    }

    fn register(&mut self, token: Token, conn: Conn) {
        *self.by_uid.entry(conn.peer.uid).or_insert(0) += 1;
        self.conns.insert(token, conn);
        if let Some(timeout) = self.access.connections.idle_timeout {
            let due = Instant::now() + timeout;
            if self.idle_check_at.is_none_or(|at| due < at) {
                self.idle_check_at = Some(due);
            }
        }
    }

    /// The connection's next request (see [`Conn::next_request`]).
    pub(super) fn next_request(&mut self, token: Token) -> Option<(u64, Result<Request, String>)> {
        self.conns.get_mut(&token)?.next_request()
    }

    /// The connection's share of this turn is used up: whether it should be read again
    /// on the next turn (see [`Conn::wants_more`]).
    pub(super) fn wants_more(&mut self, token: Token) -> bool {
        self.conns.get_mut(&token).is_some_and(Conn::wants_more)
    }

    /// The read-only check: if the connection may not use `cmd`, the reply that says
    /// so.
    pub(super) fn refusal(&self, token: Token, cmd: Cmd) -> Option<Reply> {
        let access = self.conns.get(&token).map_or(Access::Full, |c| c.access);
        if access.allows(cmd) {
            return None;
        }
        Some(Reply::error(
            ErrorKind::PermissionDenied,
            format!("`{cmd}` needs full access; this connection is read-only"),
        ))
    }

    /// Put a reply in line on its connection (gone: dropped).
    pub(super) fn deliver(&mut self, token: Token, seq: u64, reply: &Reply) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.deliver(seq, reply.encode());
            self.dirty.push(token);
        }
    }

    /// The connection has something to flush.
    pub(super) fn mark_dirty(&mut self, token: Token) {
        self.dirty.push(token);
    }

    /// `watch`: the connection becomes an event stream, once every earlier request on
    /// it is answered (so its events cannot overtake those replies).
    pub(super) fn watch(&mut self, token: Token, seq: u64, names: Vec<String>) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if !conn.is_next(seq) {
            let reply = Reply::error(
                ErrorKind::BadRequest,
                "watch must wait until the earlier requests on this connection are answered",
            );
            return self.deliver(token, seq, &reply);
        }
        conn.start_watching(names.clone());
        self.watchers.push(token);
        let reply = Reply {
            watching: Some(names),
            ..Reply::ok()
        };
        self.deliver(token, seq, &reply);
    }

    /// `logs` with `follow`: the connection becomes a stream of `name`'s lines from
    /// sequence number `next` on, once every earlier request on it is answered (so its
    /// lines cannot overtake those replies). The `bad_request` message if it cannot.
    pub(super) fn follow(
        &mut self,
        token: Token,
        seq: u64,
        name: &str,
        next: u64,
    ) -> Result<(), &'static str> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if !conn.is_next(seq) {
            return Err("logs with follow must wait until the earlier requests on this connection are answered");
        }
        conn.start_following(name, next);
        self.followers
            .entry(name.to_string())
            .or_default()
            .push(token);
        Ok(())
    }

    /// Whether any connection follows `name`'s output.
    pub(super) fn has_followers(&self, name: &str) -> bool {
        self.followers.contains_key(name)
    }

    /// Queue `name`'s new lines (sequence number, encoded line) on each of its
    /// followers.
    pub(super) fn push_log_lines(&mut self, name: &str, lines: &[(u64, Vec<u8>)]) {
        let Some(tokens) = self.followers.get(name) else {
            return;
        };
        for token in tokens {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            let mut queued = false;
            for (seq, line) in lines {
                queued |= conn.push_log(*seq, line);
            }
            if queued {
                self.dirty.push(*token);
            }
        }
    }

    /// The daemon is exiting: each follower's stream ends with `shutdown`.
    pub(super) fn end_log_streams(&mut self) {
        let line = LogEvent::Shutdown.encode();
        for token in self.followers.values().flatten() {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.push_last(&line);
                self.dirty.push(*token);
            }
        }
    }

    /// Queue an event on every watcher that wants it (encoded once).
    pub(super) fn broadcast(&mut self, event: &Event) {
        if self.watchers.is_empty() {
            return;
        }
        let line = event.encode();
        let conns = &mut self.conns;
        let dirty = &mut self.dirty;
        self.watchers.retain(|token| match conns.get_mut(token) {
            Some(conn) => {
                if conn.push_event(event, &line) {
                    dirty.push(*token);
                }
                true
            }
            None => false,
        });
    }

    /// Every process group on the host, as `ps` needs them without cgroups: read from
    /// /proc once per loop turn, however many `ps` requests the turn serves.
    pub(super) fn process_groups(&mut self) -> &HashMap<i32, Vec<i32>> {
        self.process_groups
            .get_or_insert_with(process::process_groups)
    }

    /// When a timer of the socket is due: a retry of `accept`, or a check for idle
    /// connections.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let retry = self.accept_retry.as_ref().map(|retry| retry.at);
        [retry, self.idle_check_at].into_iter().flatten().min()
    }

    /// The end of a loop turn: the timers that are due, then the flush of every
    /// connection that got replies; the turn's /proc scan is dropped.
    pub(super) fn end_turn(&mut self, poller: &mut Poller) {
        let now = Instant::now();
        if self.idle_check_at.is_some_and(|at| at <= now) {
            self.close_idle(now, poller.registry());
        }
        if self
            .accept_retry
            .as_ref()
            .is_some_and(|retry| retry.at <= now)
        {
            self.accept(poller);
        }
        self.flush(poller);
        self.process_groups = None;
    }

    /// Send the replies ready so far, before the turn's deadlines (restarts due, kills):
    /// a `lookup` answered in this turn does not wait for the spawns that follow it.
    /// Replies held for the state file's write are not in the connections yet.
    pub(super) fn flush_answered(&mut self, poller: &mut Poller) {
        self.flush(poller);
    }

    /// Write what the connections that got replies can take; want writability only
    /// while bytes wait; resume reading a connection the bounds had paused.
    fn flush(&mut self, poller: &mut Poller) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for token in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            match conn.flush() {
                ConnStatus::Close => self.close(token, poller.registry()),
                ConnStatus::Open => {
                    let want_write = conn.has_unsent();
                    if want_write != conn.want_write {
                        let interest = if want_write {
                            Interest::READABLE | Interest::WRITABLE
                        } else {
                            Interest::READABLE
                        };
                        match poller
                            .registry()
                            .reregister(&mut conn.stream, token, interest)
                        {
                            Ok(()) => conn.want_write = want_write,
                            Err(_) => {
                                self.close(token, poller.registry());
                                continue;
                            }
                        }
                    }
                    // Reading paused for backpressure and may go on: with edge-triggered
                    // readiness no new event would come for bytes already waiting.
                    if conn.resume() {
                        poller.retry(token);
                    }
                }
            }
        }
        // Keep the allocation for next time.
        self.dirty = dirty;
    }

    /// The peer hung up (closed its socket: both directions are shut): close the
    /// connection now, whatever it is waiting for. The replies it is owed or was
    /// sent could never be read; dropping them frees their memory at once. (A peer
    /// that only shut down its writing side has not hung up: it is still answered.)
    pub(super) fn hung_up(&mut self, token: Token, registry: &Registry) {
        self.close(token, registry);
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        let _ = registry.deregister(&mut conn.stream);
        if let Some(n) = self.by_uid.get_mut(&conn.peer.uid) {
            *n -= 1;
            if *n == 0 {
                self.by_uid.remove(&conn.peer.uid);
            }
        }
        if let Some(name) = conn.following() {
            if let Some(tokens) = self.followers.get_mut(name) {
                tokens.retain(|&t| t != token);
                if tokens.is_empty() {
                    self.followers.remove(name);
                }
            }
        } else if conn.is_streaming() {
            self.watchers.retain(|&t| t != token);
        }
        if let Some(retry) = &mut self.accept_retry {
            // A descriptor was freed: the queued connections may fit now.
            retry.at = Instant::now();
        }
    }

    /// Close the connections idle for `idle_timeout_ms`, and find when the next one
    /// can be due.
    fn close_idle(&mut self, now: Instant, registry: &Registry) {
        self.idle_check_at = None;
        let Some(timeout) = self.access.connections.idle_timeout else {
            return;
        };
        let mut idle = Vec::new();
        for (&token, conn) in &self.conns {
            if conn.is_streaming() {
                continue;
            }
            // A busy connection becomes idle no sooner than a full timeout from now.
            let due = conn.idle_since().unwrap_or(now) + timeout;
            if due <= now {
                idle.push(token);
            } else if self.idle_check_at.is_none_or(|at| due < at) {
                self.idle_check_at = Some(due);
            }
        }
        for token in idle {
            if let Some(conn) = self.conns.get(&token) {
                log::info!(
                    "closing an idle connection from uid {} (pid {}): nothing sent or received for {} ms (idle_timeout_ms)",
                    conn.peer.uid,
                    conn.peer.pid,
                    timeout.as_millis()
                );
            }
            self.close(token, registry);
        }
    }

    /// True when no connection has bytes waiting to be written.
    pub(super) fn all_sent(&self) -> bool {
        self.conns.values().all(|conn| !conn.has_unsent())
    }

    /// At exit: accept no more connections.
    pub(super) fn stop_listening(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
        }
        self.accept_retry = None;
    }

    /// A reload's new `allow_*`/`read_only_*` lists, `max_connections` and connection
    /// limits; the lists and caps apply to connections made from now on, the idle
    /// timeout to every connection.
    pub(super) fn apply_config(&mut self, config: &Config) {
        let mut access = config.access.clone();
        access.daemon_uid = self.access.daemon_uid;
        self.access = access;
        self.max_connections = config.max_connections;
        self.idle_check_at = match self.conns.is_empty() {
            true => None,
            false => self.access.connections.idle_timeout.map(|_| Instant::now()),
        };
    }
}
