//! Carrying out the core's actions, in the order the core returned them: spawn (and
//! feed the result back at once), signal, cast to a mailbox, clean up after a reap,
//! deliver a reply, broadcast an event, save the state file, begin the exit.

use super::{Exiting, Reactor};
use crate::core::{Action, Input, InstanceId, ReplyTo};
use crate::os::process;
use crate::protocol::{Event, Reply};
use mio::Token;
use std::time::Instant;

impl Reactor {
    /// Hand the core one input, stamped with the time, and carry out its actions.
    pub(super) fn feed(&mut self, input: Input) {
        let now = self.clock.now();
        let actions = self.core.handle(input, now);
        for action in actions {
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { instance, spec } => {
                // Answered before anything else: the pid is in the registry before
                // `waitpid` can return it.
                let spawned = self
                    .workers
                    .spawn(instance, &spec, &self.cgroups, &mut self.poller);
                let input = match spawned {
                    Ok(pid) => Input::Spawned { instance, pid },
                    Err(error) => Input::SpawnFailed { instance, error },
                };
                self.feed(input);
            }
            Action::Signal { pid, signal, group } => {
                if let Err(e) = process::send_signal(pid, signal, group) {
                    let target = if group { "process group" } else { "pid" };
                    log::warn!("cannot send {signal} to {target} {pid}: {e}");
                }
            }
            Action::Cast {
                instance,
                message,
                reply_to,
            } => {
                let reply = self
                    .workers
                    .cast(instance, &message, self.poller.registry());
                self.deliver(reply_to, reply);
            }
            Action::Reaped { instance } => self.reaped(instance),
            Action::Reply { to, reply } => self.deliver(to, *reply),
            Action::Event(event) => {
                if event == Event::Shutdown {
                    self.systemd.stopping();
                }
                self.systemd.changed();
                self.clients.broadcast(&event);
            }
            Action::SaveState => self.files.save_state(&self.core),
            Action::Exit { code } => self.begin_exit(code),
        }
    }

    /// The instance's process is gone: empty its cgroup (before any restart, which
    /// follows this action), close its stdin, log what it wrote.
    fn reaped(&mut self, instance: InstanceId) {
        let Some(pipes) = self.workers.forget(instance) else {
            return;
        };
        let registered = self.core.is_registered(&pipes.name);
        self.cgroups.after_reap(&pipes.name, registered);
        self.workers.after_reap(pipes, &mut self.poller);
    }

    /// A reply to a connection goes out on it, in request order; a restored worker's
    /// failure is logged here (the core logs boot and reload failures itself).
    pub(super) fn deliver(&mut self, to: ReplyTo, reply: Reply) {
        match to {
            ReplyTo::Conn { conn, seq } => self.clients.deliver(Token(conn as usize), seq, &reply),
            ReplyTo::Restore { index } => self.files.report_restore_failure(index, &reply),
            ReplyTo::Boot { .. } | ReplyTo::Reload => {}
        }
    }

    /// Every worker is gone: stop accepting, and let `run` give the clients a moment
    /// to read their last replies.
    fn begin_exit(&mut self, code: i32) {
        if self.exiting.is_none() {
            self.exiting = Some(Exiting {
                code,
                since: Instant::now(),
            });
            self.clients.stop_listening(self.poller.registry());
        }
    }
}
