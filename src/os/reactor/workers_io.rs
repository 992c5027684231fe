//! Each worker instance's I/O, from the spawn that creates it to the reap that ends it:
//! its output pipe (stdout and stderr share one), whose lines go to the output store
//! (`logs.rs`), drained to EOF even after the reap, and its stdin mailbox, watched for
//! writability only while bytes wait.

use super::logs::Logs;
use super::worker_cgroups::WorkerCgroups;
use super::Poller;
use crate::core::{ChildSpec, InstanceId};
use crate::os::pipes::{CastError, Drained, Mailbox, OutputPipe, MAILBOX_CAPACITY};
use crate::os::spawn::{self, ExecPlan, SpawnContext, SpawnError, Spawner};
use crate::os::worker_logs::WorkerLogs;
use crate::protocol::{ErrorKind, Reply};
use mio::unix::pipe::{Receiver, Sender};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::rc::Rc;

pub(super) struct WorkerIo {
    /// Each live instance's pipes.
    instances: HashMap<InstanceId, InstancePipes>,
    /// Output pipes by token; kept after the reap until EOF (descendants may hold them).
    outputs: HashMap<Token, OutputPipe>,
    /// Stdin mailboxes by token, closed at the reap.
    mailboxes: HashMap<Token, Mailbox>,
    /// The child stack and the reserved fd slots, kept from one spawn to the next.
    spawner: Spawner,
    /// What every spawn needs from the daemon (environment, socket paths, pid).
    ctx: SpawnContext,
}

/// How many times an output pipe is read at exit at most (a descendant that keeps
/// writing must not keep the daemon from exiting).
const EXIT_READS: usize = 16;

/// A live instance: its worker's name and template, and its pipes' tokens.
pub(super) struct InstancePipes {
    pub(super) name: Rc<str>,
    template: String,
    mailbox: Token,
    /// None when the output pipe could not be watched (its output is lost).
    output: Option<Token>,
}

impl WorkerIo {
    pub(super) fn new(spawner: Spawner, ctx: SpawnContext) -> WorkerIo {
        WorkerIo {
            instances: HashMap::new(),
            outputs: HashMap::new(),
            mailboxes: HashMap::new(),
            spawner,
            ctx,
        }
    }

    /// Start `spec` as `instance` (in its cgroup, if any) and watch its pipes. Returns
    /// the pid once it has exec'd, or why nothing runs.
    pub(super) fn spawn(
        &mut self,
        instance: InstanceId,
        spec: &ChildSpec,
        cgroups: &WorkerCgroups,
        poller: &mut Poller,
        logs: &mut Logs,
    ) -> Result<i32, SpawnError> {
        let plan = ExecPlan::new(spec, &self.ctx)?;
        let cgroup_procs = cgroups.prepare(&spec.name)?;
        let child = spawn::spawn(
            &mut self.spawner,
            &plan,
            self.ctx.daemon_pid,
            cgroup_procs.as_ref(),
        )?;
        poller.watch_exit(child.pid, child.pidfd);
        let name: Rc<str> = spec.name.clone();
        let mut pipe = Receiver::from(child.output);
        let token = poller.new_token();
        let output = match poller
            .registry()
            .register(&mut pipe, token, Interest::READABLE)
        {
            Ok(()) => {
                let id = logs.open_pipe(&name, &spec.template.name);
                self.outputs
                    .insert(token, OutputPipe::new(pipe, name.clone(), id, child.pid));
                Some(token)
            }
            // The worker runs on; only its output is lost (dropping the pipe closes
            // it, so the worker gets EPIPE rather than blocking).
            Err(e) => {
                log::error!("{name}: cannot watch its output pipe: {e}");
                None
            }
        };
        let mailbox = poller.new_token();
        self.mailboxes
            .insert(mailbox, Mailbox::new(Sender::from(child.stdin)));
        self.instances.insert(
            instance,
            InstancePipes {
                name,
                template: spec.template.name.clone(),
                mailbox,
                output,
            },
        );
        Ok(child.pid)
    }

    /// The spawner and the daemon's spawn context, for the health checks (`probes.rs`),
    /// which are spawned the way workers are.
    pub(super) fn spawner(&mut self) -> (&mut Spawner, &SpawnContext) {
        (&mut self.spawner, &self.ctx)
    }

    /// Queue `message` on the instance's stdin; the reply says how much was queued.
    pub(super) fn cast(
        &mut self,
        instance: InstanceId,
        message: &str,
        registry: &Registry,
    ) -> Reply {
        let token = self.instances.get(&instance).map(|pipes| pipes.mailbox);
        let Some((token, mailbox)) =
            token.and_then(|token| Some((token, self.mailboxes.get_mut(&token)?)))
        else {
            return Reply::error(ErrorKind::NotRunning, "the worker's stdin is closed");
        };
        let result = mailbox.cast(message);
        if result.is_ok() && mailbox.is_waiting() && !mailbox.registered {
            match registry.register(&mut mailbox.pipe, token, Interest::WRITABLE) {
                Ok(()) => mailbox.registered = true,
                Err(e) => log::error!("cannot watch a worker's stdin: {e}"),
            }
        }
        match result {
            Ok(queued) => Reply {
                queued: Some(queued),
                ..Reply::ok()
            },
            Err(CastError::Full) => Reply::error(
                ErrorKind::MailboxFull,
                format!(
                    "the mailbox is full ({MAILBOX_CAPACITY} bytes are waiting for the worker to read them)"
                ),
            ),
            Err(CastError::Closed) => {
                Reply::error(ErrorKind::NotRunning, "the worker closed its stdin")
            }
        }
    }

    /// A pipe is ready: read an output pipe, or write a mailbox's waiting bytes.
    pub(super) fn on_ready(&mut self, token: Token, poller: &mut Poller, logs: &mut WorkerLogs) {
        if self.outputs.contains_key(&token) {
            self.on_output(token, poller, logs);
        } else if let Some(mailbox) = self.mailboxes.get_mut(&token) {
            let waiting = mailbox.flush();
            // Nothing left to write (or the worker is gone): stop watching.
            if !waiting && mailbox.registered {
                let _ = poller.registry().deregister(&mut mailbox.pipe);
                mailbox.registered = false;
            }
        }
    }

    fn on_output(&mut self, token: Token, poller: &mut Poller, logs: &mut WorkerLogs) {
        let Some(pipe) = self.outputs.get_mut(&token) else {
            return;
        };
        match pipe.drain(logs) {
            Drained::WouldBlock => {}
            Drained::More => poller.retry(token),
            Drained::Eof => {
                if let Some(mut pipe) = self.outputs.remove(&token) {
                    let _ = poller.registry().deregister(&mut pipe.pipe);
                    logs.close_pipe(pipe.id());
                }
            }
        }
    }

    /// Each live instance's worker name and template (a reload applies their new output
    /// settings).
    pub(super) fn live(&self) -> impl Iterator<Item = (&str, &str)> {
        self.instances
            .values()
            .map(|pipes| (&*pipes.name, pipes.template.as_str()))
    }

    /// The instance was reaped: it has no live process any more.
    pub(super) fn forget(&mut self, instance: InstanceId) -> Option<InstancePipes> {
        self.instances.remove(&instance)
    }

    /// Close the reaped instance's stdin, and take what it wrote.
    pub(super) fn after_reap(
        &mut self,
        pipes: InstancePipes,
        poller: &mut Poller,
        logs: &mut WorkerLogs,
    ) {
        if let Some(mut mailbox) = self.mailboxes.remove(&pipes.mailbox) {
            if mailbox.registered {
                let _ = poller.registry().deregister(&mut mailbox.pipe);
            }
        }
        // The process is gone, so what it wrote is already in the pipe: log it now,
        // before anything else (a shutdown may end the loop next). Descendants may
        // still hold the pipe open; it goes on being read.
        if let Some(token) = pipes.output {
            self.on_output(token, poller, logs);
        }
    }

    /// Take what is left in every output pipe (at exit: every worker is reaped, so
    /// this reads what is already buffered, and at most a few budgets of a descendant
    /// that goes on writing).
    pub(super) fn drain_outputs(&mut self, logs: &mut WorkerLogs) {
        for pipe in self.outputs.values_mut() {
            for _ in 0..EXIT_READS {
                if !matches!(pipe.drain(logs), Drained::More) {
                    break;
                }
            }
        }
    }
}
