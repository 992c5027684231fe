//! The request router: every request read from a connection comes through here. The
//! four that need the OS are handled here (`watch`, `ps`, `reload`, `whois`); every
//! other one is handed to the core unchanged, through [`core_request`].

use super::Reactor;
use crate::core::{Input, ReplyTo};
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
            // The pid's process group, from /proc, then fed as `Input::Whois`.
            Request::Whois { pid } => {
                let group = process::process_group(pid);
                self.feed(Input::Whois { from, pid, group });
            }
            // Answered by the core alone.
            req @ (Request::Start { .. }
            | Request::Stop { .. }
            | Request::Restart { .. }
            | Request::Kill { .. }
            | Request::Cast { .. }
            | Request::Lookup { .. }
            | Request::Count
            | Request::List
            | Request::Shutdown
            | Request::WaitReady { .. }) => self.feed(core_request(from, req)),
        }
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

/// A request the core answers alone, as the core's input. The one conversion from a
/// wire request to the core's (the boot children and the restored workers come this
/// way too).
pub(super) fn core_request(from: ReplyTo, req: Request) -> Input {
    Input::Request { from, req }
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
