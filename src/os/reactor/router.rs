//! The request router: every request read from a connection comes through here, and
//! one exhaustive `match` decides who answers it. `watch`, `ps`, `reload`, `logs` and
//! `reopen_logs` are answered here (with the core's help for `ps` and `reload`, and
//! the output room `logs.rs` for the last two); `whois` gets its pid's
//! process group from /proc; every request the core answers becomes its `Command`,
//! each variant spelled out, and goes in through [`Reactor::command`].
//!
//! A connection's share of a loop turn is bounded by cost, not only by count: it is
//! served until [`TURN_REQUESTS`] requests or [`TURN_TIME`] of work, whichever comes
//! first, so a client pipelining expensive reads (`ps` scans /proc, `list` visits
//! every worker) gets one of them per turn while every other client gets its own
//! share. The /proc scan of `ps` is shared by every `ps` of the turn.

use super::Reactor;
use crate::core::{Command, Input, ReplyTo, Select};
use crate::os::cgroup::Cgroups;
use crate::os::process;
use crate::protocol::{ErrorKind, Processes, Reply, Request};
use mio::Token;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most requests a connection gets per loop turn...
const TURN_REQUESTS: usize = 64;
/// ...and no more once its requests of this turn have taken this long (the request
/// that crosses the line is finished; at least one is always served).
const TURN_TIME: Duration = Duration::from_millis(1);

impl Reactor {
    /// A connection is readable (or writable): route its requests, in order, up to
    /// its share of this turn.
    pub(super) fn on_conn(&mut self, token: Token) {
        self.clients.mark_dirty(token);
        if self.exiting.is_some() {
            // Exiting: no new requests are taken.
            return;
        }
        let began = Instant::now();
        let mut taken = 0;
        while let Some((seq, request)) = self.clients.next_request(token) {
            let from = ReplyTo::Conn {
                conn: token.0 as u64,
                seq,
            };
            match request {
                Ok(req) => self.route(token, seq, from, req),
                Err(message) => self.deliver(from, Reply::error(ErrorKind::BadRequest, message)),
            }
            taken += 1;
            if taken >= TURN_REQUESTS || began.elapsed() >= TURN_TIME {
                if self.clients.wants_more(token) {
                    self.poller.retry(token);
                }
                break;
            }
        }
    }

    /// The router: refuse what the connection may not use, then one arm per request.
    fn route(&mut self, token: Token, seq: u64, from: ReplyTo, req: Request) {
        if let Some(reply) = self.clients.refusal(token, req.cmd()) {
            return self.deliver(from, reply);
        }
        match req {
            // The connection becomes an event stream.
            Request::Watch { names } => self.clients.watch(token, seq, names),
            // Answered here: the core's live pids, and each one's cgroup or group.
            Request::Ps { name } => {
                let reply = self.ps(name.as_deref());
                self.deliver(from, reply);
            }
            // The config file is read and validated, then fed as `Input::Reload`.
            Request::Reload => self.reload(Some(from)),
            // A worker's kept output (and, with `follow`, a stream of it): `logs.rs`.
            Request::Logs {
                name,
                lines,
                follow,
            } => self.logs_request(token, seq, from, name, lines, follow),
            Request::ReopenLogs => self.reopen_logs(from),
            // The core answers; the pid's process group, read from /proc, goes with it.
            Request::Whois { pid } => {
                let group = process::process_group(pid);
                self.command(from, Command::Whois { pid, group });
            }
            // The core answers these alone.
            Request::Start {
                name,
                template,
                args,
                command,
                env,
            } => self.command(
                from,
                Command::Start {
                    name,
                    template,
                    args,
                    command,
                    env,
                },
            ),
            Request::Stop { name, timeout_ms } => {
                self.command(from, Command::Stop { name, timeout_ms })
            }
            Request::Restart {
                name: Some(name),
                rolling: false,
                timeout_ms,
                ..
            } => self.command(from, Command::Restart { name, timeout_ms }),
            Request::Restart {
                name,
                template,
                timeout_ms,
                ..
            } => {
                // The decoder let through only a name, a template or all.
                let select = match (name, template) {
                    (Some(name), _) => Select::Name(name),
                    (None, Some(template)) => Select::Template(template),
                    (None, None) => Select::All,
                };
                self.command(from, Command::Rollout { select, timeout_ms })
            }
            Request::Health => self.command(from, Command::Health),
            Request::Kill { name, signal } => self.command(from, Command::Kill { name, signal }),
            Request::Cast { name, message } => self.command(from, Command::Cast { name, message }),
            Request::Lookup { name } => self.command(from, Command::Lookup { name }),
            Request::Count => self.command(from, Command::Count),
            Request::List => self.command(from, Command::List),
            Request::Shutdown => self.command(from, Command::Shutdown),
            Request::WaitReady { name } => self.command(from, Command::WaitReady { name }),
        }
    }

    /// Hand the core a command to answer (a client's, a boot child's or a restored
    /// worker's `start`).
    pub(super) fn command(&mut self, from: ReplyTo, command: Command) {
        self.feed(Input::Command { from, command });
    }

    /// `ps`: the processes of each worker (or of one): its cgroup's members, or its
    /// process group's (from the turn's one scan of /proc).
    fn ps(&mut self, name: Option<&str>) -> Reply {
        let live = self.core.live_pids(name);
        if let (Some(name), true) = (name, live.is_empty()) {
            return Reply::error(
                ErrorKind::NotFound,
                format!("{name} is not registered or has no running process"),
            );
        }
        let processes = match self.cgroups.active() {
            Some(cgroups) => in_cgroups(live, cgroups),
            None if live.is_empty() => Vec::new(),
            None => in_process_groups(live, self.clients.process_groups()),
        };
        Reply {
            processes: Some(processes),
            ..Reply::ok()
        }
    }
}

/// Each live worker's processes: its cgroup's members.
fn in_cgroups(live: Vec<(String, i32)>, cgroups: &Cgroups) -> Vec<Processes> {
    live.into_iter()
        .map(|(name, _)| {
            let pids = cgroups.procs(&name);
            Processes { name, pids }
        })
        .collect()
}

/// Each live worker's processes: the members of its process group (`groups`: every
/// group on the host, by group id).
fn in_process_groups(live: Vec<(String, i32)>, groups: &HashMap<i32, Vec<i32>>) -> Vec<Processes> {
    live.into_iter()
        .map(|(name, pid)| {
            let pids = groups.get(&pid).cloned().unwrap_or_else(|| vec![pid]);
            Processes { name, pids }
        })
        .collect()
}
