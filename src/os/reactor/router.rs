//! The request router: every request read from a connection comes through here, and
//! one exhaustive `match` decides who answers it. `watch`, `ps` and `reload` are
//! answered here (with the core's help for `ps` and `reload`); `whois` gets its pid's
//! process group from /proc; every request the core answers becomes its `Command`,
//! each variant spelled out, and goes in through [`Reactor::command`].

use super::Reactor;
use crate::core::{Command, Input, ReplyTo};
use crate::os::cgroup::Cgroups;
use crate::os::process;
use crate::protocol::{ErrorKind, Processes, Reply, Request};
use mio::Token;
use std::collections::HashMap;

impl Reactor {
    /// A connection is readable: route each request of its batch, in order.
    pub(super) fn on_conn(&mut self, token: Token) {
        let Some(batch) = self.clients.read(token) else {
            return;
        };
        if self.exiting.is_some() {
            // Exiting: no new requests are taken.
            return;
        }
        for (seq, request) in batch.requests {
            let from = ReplyTo::Conn {
                conn: token.0 as u64,
                seq,
            };
            match request {
                Ok(req) => self.route(token, seq, from, req),
                Err(message) => self.deliver(from, Reply::error(ErrorKind::BadRequest, message)),
            }
            if self.clients.is_watching(token) {
                // The rest of the batch arrived after `watch`: it is ignored.
                break;
            }
        }
        if batch.more {
            self.poller.retry(token);
        }
        self.clients.mark_dirty(token);
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
            } => self.command(
                from,
                Command::Start {
                    name,
                    template,
                    args,
                    command,
                },
            ),
            Request::Stop { name, timeout_ms } => {
                self.command(from, Command::Stop { name, timeout_ms })
            }
            Request::Restart { name, timeout_ms } => {
                self.command(from, Command::Restart { name, timeout_ms })
            }
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
    /// process group's.
    fn ps(&self, name: Option<&str>) -> Reply {
        let live = self.core.live_pids(name);
        if let (Some(name), true) = (name, live.is_empty()) {
            return Reply::error(
                ErrorKind::NotFound,
                format!("{name} is not registered or has no running process"),
            );
        }
        Reply {
            processes: Some(processes_of(live, self.cgroups.active())),
            ..Reply::ok()
        }
    }
}

/// Each live worker's processes: its cgroup's members, or (without cgroups) the
/// members of its process group, from one scan of `/proc`.
fn processes_of(live: Vec<(String, i32)>, cgroups: Option<&Cgroups>) -> Vec<Processes> {
    let groups = match cgroups {
        Some(_) => HashMap::new(),
        None => process::process_groups(),
    };
    live.into_iter()
        .map(|(name, pid)| {
            let pids = match cgroups {
                Some(cgroups) => cgroups.procs(&name),
                None => groups.get(&pid).cloned().unwrap_or_else(|| vec![pid]),
            };
            Processes { name, pids }
        })
        .collect()
}
