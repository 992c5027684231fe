//! Carrying out the core's actions, in the order the core returned them: spawn (and
//! feed the result back at once), signal, cast to a mailbox, clean up after a reap
//! (taking what the worker wrote), deliver a reply, broadcast an event, save the state
//! file, start a health check (`probes.rs` answers it), tell systemd the boot is done,
//! begin the exit.

use super::leftovers::Leftovers;
use super::{Exiting, Reactor};
use crate::core::{Action, Input, InstanceId, ReplyTo};
use crate::os::process;
use crate::protocol::{ErrorKind, Event, Reply};
use mio::Token;
use std::rc::Rc;
use std::time::Instant;

impl Reactor {
    /// Hand the core one input, stamped with the time, and carry out its actions. A
    /// successful reply that follows a `SaveState` reports a change the state file must
    /// hold: it waits for the turn's write (see `answer_after_write`).
    pub(super) fn feed(&mut self, input: Input) {
        let now = self.clock.now();
        let actions = self.core.handle(input, now);
        let mut after_save = false;
        for action in actions {
            match action {
                Action::SaveState => {
                    after_save = true;
                    self.files.mark_dirty();
                }
                Action::Reply { to, reply } if after_save && reply.ok => {
                    self.files.hold_reply(to, *reply)
                }
                action => self.execute(action),
            }
        }
    }

    /// The turn's state file write is done: the replies that waited for it go out, as
    /// they were if it succeeded, or as `not_recorded` errors saying what was done and
    /// what is not on disk.
    pub(super) fn answer_after_write(&mut self, written: Result<(), String>) {
        for (to, reply) in self.files.take_held_replies() {
            let reply = match &written {
                Ok(()) => reply,
                Err(why) => not_recorded(&reply, why),
            };
            self.deliver(to, reply);
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { instance, spec } => {
                // Answered before anything else: the pid is in the registry before
                // `waitpid` can return it.
                let began = Instant::now();
                let spawned = self.workers.spawn(
                    instance,
                    &spec,
                    &self.cgroups,
                    &mut self.poller,
                    &mut self.logs,
                );
                self.metrics.data.spawned(
                    &spec.name,
                    &spec.template.name,
                    began.elapsed().as_secs_f64(),
                    spawned.is_ok(),
                );
                let failed = spawned.is_err();
                let input = match spawned {
                    Ok(pid) => Input::Spawned { instance, pid },
                    Err(error) => Input::SpawnFailed {
                        instance,
                        error: error.message,
                        shortage: error.shortage,
                        bad_env_file: error.bad_env_file,
                    },
                };
                self.feed(input);
                if failed && !self.core.is_registered(&spec.name) {
                    // A `start` that could not exec: the name is not kept.
                    self.metrics.data.forget(&spec.name);
                }
            }
            Action::Kill {
                pid,
                signal,
                reply_to,
                sent,
            } => {
                let reply = match process::send_signal(pid, signal, false) {
                    Ok(()) => *sent,
                    Err(e) => {
                        log::warn!("cannot send {signal} to pid {pid}: {e}");
                        let kind = match e.raw_os_error() {
                            Some(libc::EPERM) => ErrorKind::PermissionDenied,
                            Some(libc::ESRCH) => ErrorKind::NotRunning,
                            _ => ErrorKind::InvalidSignal,
                        };
                        Reply::error(kind, format!("cannot send {signal} to pid {pid}: {e}"))
                    }
                };
                self.deliver(reply_to, reply);
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
            Action::Reaped { instance, pid } => self.reaped(instance, pid),
            Action::SignalLeftovers { instance, signal } => {
                self.leftovers.signal(instance, signal, &self.cgroups)
            }
            Action::Reply { to, reply } => self.deliver(to, *reply),
            Action::Event(event) => {
                self.metrics.data.observe(&event);
                if event == Event::Shutdown {
                    self.systemd.stopping();
                }
                self.systemd.changed();
                self.clients.broadcast(&event);
            }
            Action::SaveState => self.files.mark_dirty(),
            Action::BootReady => {
                let status = super::status_line(&self.core);
                self.systemd.ready(status);
            }
            Action::Probe {
                name,
                instance,
                spec,
            } => {
                // Answered later (at the check's reap), or at once when it cannot run.
                let spawner = self.workers.spawner();
                let answers = self
                    .probes
                    .start(name, instance, &spec, spawner, &mut self.poller);
                for answer in answers {
                    self.feed(answer);
                }
            }
            Action::Exit { code } => self.begin_exit(code),
        }
    }

    /// The instance's main process `pid` is gone: close its stdin, log what it wrote,
    /// and tell the core at once whether anything of its group is left (watching it
    /// if so). The core carries on from there: a restart, or the stop's end, waits
    /// until the group is empty.
    fn reaped(&mut self, instance: InstanceId, pid: i32) {
        let name = self.workers.forget(instance).map(|pipes| {
            let name = pipes.name.clone();
            self.workers
                .after_reap(pipes, &mut self.poller, &mut self.logs.store);
            name
        });
        let left = match &name {
            Some(name) => Leftovers::any_left(name, pid, &self.cgroups),
            None => process::group_alive(pid),
        };
        if let (true, Some(name)) = (left, &name) {
            self.leftovers.watch(instance, name.clone(), pid);
        }
        self.feed(Input::Leftovers { instance, left });
        if let (false, Some(name)) = (left, name) {
            self.after_drain(&name);
        }
    }

    /// Feed the groups that emptied since they were last checked.
    pub(super) fn feed_emptied_leftovers(&mut self) {
        for (instance, name) in self.leftovers.emptied(&self.cgroups) {
            self.feed(Input::LeftoversGone { instance });
            self.after_drain(&name);
        }
    }

    /// A worker whose group is empty and which has left the registry gives its
    /// cgroup back.
    fn after_drain(&mut self, name: &Rc<str>) {
        if !self.core.is_registered(name) {
            self.cgroups.forget(name);
        }
    }

    /// A reply to a connection goes out on it, in request order; a restored worker's
    /// failure is logged here (the core logs boot and reload failures itself).
    pub(super) fn deliver(&mut self, to: ReplyTo, mut reply: Reply) {
        if let (Some(report), Some((_, keys))) = (
            reply.reload.as_mut(),
            self.reload_notes.take_if(|(from, _)| *from == to),
        ) {
            // The settings this reload changed that only a daemon restart applies.
            report.needs_daemon_restart = keys;
        }
        match to {
            ReplyTo::Conn { conn, seq } => self.clients.deliver(Token(conn as usize), seq, &reply),
            ReplyTo::Restore { index } => self.files.report_restore_failure(index, &reply),
            ReplyTo::Boot { .. } | ReplyTo::Reload => {}
            ReplyTo::Part { batch, index } => {
                if let Some((to, reply)) = self.batches.answered(batch, index, reply) {
                    self.deliver(to, reply);
                }
            }
        }
    }

    /// Every worker is gone: stop accepting, end the log followers' streams (after the
    /// workers' last lines), and let `run` give the clients a moment to read their last
    /// replies.
    fn begin_exit(&mut self, code: i32) {
        if self.exiting.is_none() {
            self.exiting = Some(Exiting {
                code,
                since: Instant::now(),
            });
            self.clients.stop_listening(self.poller.registry());
            self.end_log_streams();
        }
    }
}

/// A successful reply whose change could not be written to the state file.
fn not_recorded(reply: &Reply, why: &str) -> Reply {
    let what = match (&reply.name, reply.pid, &reply.stopped) {
        (Some(name), Some(pid), _) => format!("{name} runs (pid {pid})"),
        (_, _, Some(report)) => format!("{} is stopped", report.name),
        (Some(name), None, _) => format!("{name} was changed"),
        _ => "the request was carried out".to_string(),
    };
    Reply::error(
        ErrorKind::NotRecorded,
        format!("{what}, but the state file could not be written ({why}): after a daemon restart this change would be lost"),
    )
}
