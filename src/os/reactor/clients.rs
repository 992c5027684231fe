//! The clients of the control socket: accepting and admitting connections (room and
//! `SO_PEERCRED` access), reading their requests, the read-only check, replies in
//! request order, flushing with writable interest only while bytes wait, and the
//! watchers that `watch` turned into event streams.

use super::Poller;
use crate::access::{Access, AccessPolicy};
use crate::config::Config;
use crate::os::conn::{Conn, ConnStatus, ReadBatch};
use crate::os::process;
use crate::protocol::{Cmd, ErrorKind, Event, Reply};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io;

pub(super) struct Clients {
    /// None once the daemon is exiting.
    listener: Option<UnixListener>,
    conns: HashMap<Token, Conn>,
    /// Connections that turned into event streams.
    watchers: Vec<Token>,
    /// Connections that got replies or events since they were last flushed.
    dirty: Vec<Token>,
    /// Who may connect (a reload replaces it, keeping the daemon's own uid).
    access: AccessPolicy,
    /// How many may be connected at once (a reload changes it).
    max_connections: usize,
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
            watchers: Vec::new(),
            dirty: Vec::new(),
            access,
            max_connections,
        }
    }

    pub(super) fn has(&self, token: Token) -> bool {
        self.conns.contains_key(&token)
    }

    /// Accept until the queue is empty.
    pub(super) fn accept(&mut self, poller: &mut Poller) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream, poller),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the pending connection stays queued; log and
                    // return to the loop rather than spin.
                    log::error!("cannot accept a connection: {e}");
                    return;
                }
            }
        }
    }

    /// Check who is connecting and whether there is room; register or turn away.
    fn admit(&mut self, mut stream: UnixStream, poller: &mut Poller) {
        let refuse = |stream: &mut UnixStream, kind: ErrorKind, message: String| {
            // Best effort, never blocking: a fresh socket's buffer takes one line.
            let _ = io::Write::write(stream, &Reply::error(kind, message).encode());
        };
        let connections = self.conns.len();
        if connections >= self.max_connections {
            log::warn!(
                "refusing a connection: {connections} clients are connected (max_connections)"
            );
            let message = format!(
                "the daemon serves at most {} connections",
                self.max_connections
            );
            return refuse(&mut stream, ErrorKind::TooManyConnections, message);
        }
        let access = match process::peer_credentials(&stream) {
            Ok(peer) => {
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
                access
            }
            Err(e) => {
                log::warn!("refused a connection whose credentials cannot be read: {e}");
                let message = "the peer's credentials cannot be read".to_string();
                return refuse(&mut stream, ErrorKind::PermissionDenied, message);
            }
        };
        let token = poller.new_token();
        match poller
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            Ok(()) => {
                self.conns.insert(token, Conn::new(stream, access));
            }
            Err(e) => log::error!("cannot watch a new connection: {e}"),
        }
    }

    /// Read and decode up to a budget of the connection's requests.
    pub(super) fn read(&mut self, token: Token) -> Option<ReadBatch> {
        Some(self.conns.get_mut(&token)?.read())
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

    pub(super) fn is_watching(&self, token: Token) -> bool {
        self.conns.get(&token).is_some_and(Conn::is_watching)
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

    /// Write what the connections that got replies can take; want writability only
    /// while bytes wait; resume reading a connection the bounds had paused.
    pub(super) fn flush(&mut self, poller: &mut Poller) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for token in dirty.drain(..) {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let was_paused = !conn.resumable();
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
                    if was_paused && conn.resumable() {
                        poller.retry(token);
                    }
                }
            }
        }
        // Keep the allocation for next time.
        self.dirty = dirty;
    }

    /// A watcher's peer hung up: close it (it reads nothing, so this is the only sign).
    pub(super) fn close_if_watching(&mut self, token: Token, registry: &Registry) {
        if self.is_watching(token) {
            self.close(token, registry);
        }
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut conn.stream);
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
    }

    /// A reload's new `allow_*`/`read_only_*` lists and `max_connections`; they apply
    /// to connections made from now on.
    pub(super) fn apply_config(&mut self, config: &Config) {
        let mut access = config.access.clone();
        access.daemon_uid = self.access.daemon_uid;
        self.access = access;
        self.max_connections = config.max_connections;
    }
}
