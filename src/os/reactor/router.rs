//! The request router: every request read from a connection comes through here, and
//! one exhaustive `match` decides who answers it. `watch`, `ps`, `reload`, `logs`,
//! `reopen_logs` and `version` are answered here (with the core's help for `ps` and `reload`, and
//! the output room `logs.rs` for the last two); `whois` gets its pid's
//! process group from /proc; every request the core answers becomes its `Command`,
//! each variant spelled out, and goes in through [`Reactor::command`]; a `stop`, `kill`
//! or `restart` of several workers becomes one command per worker (`bulk`), collected
//! into one reply by `batches.rs`.
//!
//! A connection's share of a loop turn is bounded by cost, not only by count: it is
//! served until [`TURN_REQUESTS`] requests or [`TURN_TIME`] of work, whichever comes
//! first, so a client pipelining expensive reads (`ps` scans /proc, `list` visits
//! every worker) gets one of them per turn while every other client gets its own
//! share. The /proc scan of `ps` is shared by every `ps` of the turn.

use super::{batches, Reactor};
use crate::core::{Among, Command, Input, ReplyTo, Select};
use crate::os::cgroup::Cgroups;
use crate::os::process;
use crate::protocol::{
    ErrorKind, Processes, Reply, Request, Selection, Target, VersionReport, PROTOCOL_VERSION,
};
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
            // Rendered here from the loop's counters and the core's census: `metrics.rs`.
            Request::Metrics => {
                let reply = self.metrics_reply();
                self.deliver(from, reply);
            }
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
                fenced,
            } => self.command(
                from,
                Command::Start {
                    name,
                    template,
                    args,
                    command,
                    env,
                    fenced,
                },
            ),
            Request::Stop {
                name,
                names,
                template,
                all,
                timeout_ms,
            } => match target(name, names, template, all) {
                Target::Name(name) => self.command(from, Command::Stop { name, timeout_ms }),
                Target::Many(selection) => self.bulk(from, selection, Among::Registered, |name| {
                    Command::Stop { name, timeout_ms }
                }),
            },
            Request::Restart {
                name,
                names,
                template,
                all,
                rolling: false,
                timeout_ms,
            } => match target(name, names, template, all) {
                Target::Name(name) => self.command(from, Command::Restart { name, timeout_ms }),
                Target::Many(selection) => self.bulk(from, selection, Among::Registered, |name| {
                    Command::Restart { name, timeout_ms }
                }),
            },
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
            Request::Kill {
                name,
                names,
                template,
                all,
                signal,
            } => match target(name, names, template, all) {
                Target::Name(name) => self.command(from, Command::Kill { name, signal }),
                Target::Many(selection) => {
                    self.bulk(from, selection, Among::Live, |name| Command::Kill {
                        name,
                        signal: signal.clone(),
                    })
                }
            },
            Request::Cast { name, message } => self.command(from, Command::Cast { name, message }),
            Request::Lookup { name } => self.command(from, Command::Lookup { name }),
            Request::Count => self.command(from, Command::Count),
            Request::List { names, template } => {
                self.command(from, Command::List { names, template })
            }
            // Answered here: the daemon's own facts.
            Request::Version => {
                let reply = Reply {
                    version: Some(VersionReport {
                        daemon: env!("CARGO_PKG_VERSION").to_string(),
                        protocol: PROTOCOL_VERSION,
                        pid: std::process::id(),
                        uptime_ms: self.clock.epoch.elapsed().as_millis() as u64,
                    }),
                    ..Reply::ok()
                };
                self.deliver(from, reply);
            }
            Request::Shutdown => self.command(from, Command::Shutdown),
            Request::WaitReady { name } => self.command(from, Command::WaitReady { name }),
            Request::Fence {
                within_ms,
                timeout_ms,
            } => self.command(
                from,
                Command::Fence {
                    within_ms,
                    timeout_ms,
                },
            ),
        }
    }

    /// A request about several workers: the selection's names (distinct, in the
    /// order given; or the core's choice for a template or all), then one command per
    /// name, all in this turn, answered together by `batches.rs`. An unknown template
    /// is refused as a whole; an empty selection is answered at once, with no results.
    fn bulk(
        &mut self,
        from: ReplyTo,
        selection: Selection,
        among: Among,
        command: impl Fn(String) -> Command,
    ) {
        let names = match selection {
            Selection::Names(names) => distinct(names),
            Selection::Template(template) => match self.core.select(Some(&template), among) {
                Ok(names) => names,
                Err(reply) => return self.deliver(from, *reply),
            },
            Selection::All => match self.core.select(None, among) {
                Ok(names) => names,
                Err(reply) => return self.deliver(from, *reply),
            },
        };
        if names.is_empty() {
            return self.deliver(from, batches::combined(Vec::new()));
        }
        let batch = self.batches.open(from, names.clone());
        for (index, name) in names.into_iter().enumerate() {
            self.command(ReplyTo::Part { batch, index }, command(name));
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

/// The target of a `stop`, `kill` or `restart` whose fields the decoder checked
/// (exactly one of them is set).
fn target(name: Option<String>, names: Vec<String>, template: Option<String>, all: bool) -> Target {
    match (name, template) {
        (Some(name), _) => Target::Name(name),
        (None, Some(template)) => Target::Many(Selection::Template(template)),
        (None, None) if all => Target::Many(Selection::All),
        (None, None) => Target::Many(Selection::Names(names)),
    }
}

/// `names` without repeats, in the order first given (a name twice is stopped once).
fn distinct(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names
        .into_iter()
        .filter(|name| seen.insert(name.clone()))
        .collect()
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
