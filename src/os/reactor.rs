//! The event loop: one thread, one `mio::Poll`, no timers but real deadlines.
//!
//! Sources: the signal pipe (SIGCHLD, SIGTERM, SIGINT, SIGHUP via signal-hook-mio), the
//! listening socket, client connections, and each worker's stdout, stderr and (while
//! bytes wait) stdin. The poll timeout is the core's next deadline, or none: an idle
//! daemon sleeps in `epoll_wait` until something happens.
//!
//! Each readiness becomes an [`Input`] for the core; the core's [`Action`]s are carried
//! out here. A spawn is carried out synchronously and its result fed back before
//! anything else, and each reaped pid is fed to the core as soon as `waitpid` returns
//! it: so the core's table is never behind the kernel's.
//!
//! Fairness: every source is read with a budget; one that still has data goes on a
//! retry list and the next poll does not sleep, so a chatty worker or a client with a
//! deep pipeline cannot starve the others.

use super::cgroup::Cgroups;
use super::conn::{Conn, ConnStatus};
use super::notify::Systemd;
use super::pipes::{CastError, Drained, Mailbox, OutputPipe};
use super::process;
use super::ready::NotifySocket;
use super::spawn::{self, ExecPlan, SpawnContext, Spawner};
use super::state_file;
use crate::access::{is_read_only_command, Access, AccessPolicy};
use crate::config::{self, BootChild, Config, FixedSettings};
use crate::core::{
    Action, ChildSpec, Command, Input, InstanceId, Limits, ReloadConfig, ReplyTo, Supervisor, Time,
};
use crate::protocol::{ErrorKind, Event, Reply, Request};
use crate::signal::Signal;
use mio::net::UnixListener;
use mio::unix::pipe::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);
const NOTIFY: Token = Token(2);
const FIRST_DYNAMIC: usize = 3;

/// How long a worker's leftover processes (killed through its cgroup) may take to
/// exit before its restart goes ahead anyway.
const CGROUP_DRAIN: Duration = Duration::from_millis(500);

/// How long the daemon waits for clients to read their last replies before exiting.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Connections are boxed: a map entry is as large as its largest variant, and there are
/// two pipe entries per worker for every connection.
enum Source {
    Conn(Box<Conn>),
    Output(OutputPipe),
    Mailbox(Mailbox),
}

pub struct Reactor {
    poll: Poll,
    signals: Signals,
    listener: Option<UnixListener>,
    sources: HashMap<Token, Source>,
    /// Each live instance: its name and pipe tokens (stdin mailbox, output).
    instances: HashMap<InstanceId, (Rc<str>, [Option<Token>; 2])>,
    next_token: usize,
    core: Supervisor,
    ctx: SpawnContext,
    epoch: Instant,
    /// Sources that still had data when their budget ran out.
    retry: Vec<Token>,
    /// Connections that got replies since they were last flushed.
    dirty: Vec<Token>,
    exit: Option<(i32, Instant)>,
    /// Connections that turned into event streams.
    watchers: Vec<Token>,
    /// The config file, read again on SIGHUP / `reload` (none: built-in defaults).
    config_path: Option<PathBuf>,
    state_file: Option<PathBuf>,
    fixed: FixedSettings,
    /// While restoring the state file at boot, saves are deferred to the end; these
    /// are the names being restored (for error messages).
    restoring: bool,
    restore_names: Vec<String>,
    systemd: Systemd,
    access: AccessPolicy,
    max_connections: usize,
    /// Client connections open now.
    connections: usize,
    cgroups: Option<Cgroups>,
    spawner: Spawner,
    /// Where workers with `ready = "notify"` send `READY=1`.
    notify: Option<NotifySocket>,
    /// Groups of unregistered workers that were still emptying; retried on SIGCHLD
    /// (their killed processes come back to us as a subreaper when they die).
    emptying_cgroups: Vec<Rc<str>>,
}

/// What the reactor needs from the config and the command line.
pub struct Settings {
    /// The config file, read again on reload (none: built-in defaults).
    pub config: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub access: AccessPolicy,
    pub max_connections: usize,
    pub cgroups: Option<Cgroups>,
    /// Created early (it reserves low fd numbers).
    pub spawner: Spawner,
    /// What a reload cannot change, to warn when it tries.
    pub fixed: FixedSettings,
}

/// The core's view of a config.
pub fn reload_config(config: &Config) -> ReloadConfig {
    ReloadConfig {
        limits: limits_of(config),
        templates: config.templates.clone(),
        children: config.children.clone(),
    }
}

pub fn limits_of(config: &Config) -> Limits {
    Limits {
        max_restarts: config.max_restarts,
        max_seconds: config.max_seconds,
        max_children: config.max_children,
    }
}

impl Reactor {
    pub fn new(
        listener: UnixListener,
        core: Supervisor,
        mut ctx: SpawnContext,
        settings: Settings,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP])?;
        if std::process::id() == 1 {
            // PID 1 gets no default action for signals it does not handle: a container
            // runtime's SIGQUIT would otherwise be ignored. It means orderly shutdown.
            signals.add_signal(SIGQUIT)?;
        }
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut settings = settings;
        settings.spawner.record_signal_dispositions();
        let notify = match NotifySocket::bind() {
            Ok(mut notify) => {
                poll.registry()
                    .register(&mut notify.socket, NOTIFY, Interest::READABLE)?;
                ctx.notify_socket = Some(notify.address.clone());
                Some(notify)
            }
            Err(e) => {
                log::warn!("cannot create the workers' notify socket ({e}); ready = \"notify\" workers will time out");
                None
            }
        };
        Ok(Reactor {
            poll,
            signals,
            listener: Some(listener),
            sources: HashMap::new(),
            instances: HashMap::new(),
            next_token: FIRST_DYNAMIC,
            core,
            ctx,
            epoch: Instant::now(),
            retry: Vec::new(),
            dirty: Vec::new(),
            exit: None,
            watchers: Vec::new(),
            config_path: settings.config,
            state_file: settings.state_file,
            fixed: settings.fixed,
            access: settings.access,
            max_connections: settings.max_connections,
            connections: 0,
            cgroups: settings.cgroups,
            spawner: settings.spawner,
            emptying_cgroups: Vec::new(),
            notify,
            restoring: false,
            restore_names: Vec::new(),
            systemd: Systemd::from_env(),
        })
    }

    /// True once a shutdown began (a boot child failed, say).
    pub fn is_shutting_down(&self) -> bool {
        self.core.is_shutting_down()
    }

    /// Boot is complete and the socket accepts requests: tell systemd.
    pub fn ready(&mut self) {
        let status = status_line(&self.core);
        self.systemd.ready(status);
    }

    /// Start the config's `[[children]]`, in order. A failure stops the boot (the
    /// core then shuts down and `run` returns 1).
    pub fn boot(&mut self, children: &[BootChild]) {
        for (index, child) in children.iter().enumerate() {
            if self.core.is_shutting_down() {
                break;
            }
            self.feed(Input::Command {
                from: ReplyTo::Boot { index },
                command: Command::Start {
                    name: child.name.clone(),
                    template: Some(child.template.clone()),
                    args: child.args.clone(),
                    command: None,
                },
            });
        }
        self.restore();
    }

    /// Start the workers recorded in the state file (after the boot children). A
    /// corrupt file is reported, set aside, and the daemon goes on without it.
    fn restore(&mut self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        if self.core.is_shutting_down() {
            return;
        }
        let saved = match state_file::load(&path) {
            Ok(Some(saved)) => saved,
            Ok(None) => return,
            Err(message) => {
                match state_file::set_aside(&path) {
                    Ok(aside) => log::error!(
                        "{message}; moved it to {} and starting without it",
                        aside.display()
                    ),
                    Err(e) => {
                        log::error!("{message}; could not move it aside ({e}); starting without it")
                    }
                }
                return;
            }
        };
        log::info!(
            "restoring {} dynamic worker(s) from {}",
            saved.len(),
            path.display()
        );
        self.restoring = true;
        self.restore_names = saved.iter().map(|w| w.name.clone()).collect();
        for (index, worker) in saved.into_iter().enumerate() {
            self.feed(Input::Command {
                from: ReplyTo::Restore { index },
                command: Command::Start {
                    name: worker.name,
                    template: Some(worker.template),
                    args: worker.args,
                    command: worker.command,
                },
            });
        }
        self.restoring = false;
        self.restore_names.clear();
        self.save_state();
    }

    fn save_state(&mut self) {
        let Some(path) = self.state_file.as_deref() else {
            return;
        };
        if self.restoring {
            return;
        }
        if let Err(e) = state_file::save(path, &self.core.saved_workers()) {
            log::error!("cannot write the state file {}: {e}", path.display());
        }
    }

    /// Run until the core says every worker is gone; returns the exit status.
    pub fn run(&mut self) -> io::Result<i32> {
        let mut events = Events::with_capacity(1024);
        let mut ready: Vec<Token> = Vec::with_capacity(1024);
        let mut hung_up: Vec<Token> = Vec::new();
        loop {
            if let Some((code, since)) = self.exit {
                let flushed = self.sources.values().all(|s| match s {
                    Source::Conn(c) => !c.has_unsent(),
                    _ => true,
                });
                if flushed || since.elapsed() >= EXIT_GRACE {
                    self.drain_outputs();
                    self.remove_cgroups();
                    return Ok(code);
                }
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            ready.clear();
            ready.extend(events.iter().map(|e| e.token()));
            hung_up.clear();
            hung_up.extend(
                events
                    .iter()
                    .filter(|e| e.is_write_closed() && e.token().0 >= FIRST_DYNAMIC)
                    .map(|e| e.token()),
            );
            ready.append(&mut self.retry);
            for &token in &ready {
                match token {
                    SIGNALS => self.on_signals(),
                    LISTENER => self.accept(),
                    NOTIFY => self.on_notify(),
                    token => self.on_source(token),
                }
            }
            if let Some(due) = self.core.next_deadline() {
                if due <= self.mono_us() {
                    self.feed(Input::Tick);
                }
            }
            // A watcher does not read, so a hang-up is the only sign it has gone.
            for &token in &hung_up {
                if matches!(self.sources.get(&token), Some(Source::Conn(c)) if c.is_watching()) {
                    self.close_source(token);
                }
            }
            if self
                .systemd
                .next_wake()
                .is_some_and(|at| at <= Instant::now())
            {
                let core = &self.core;
                self.systemd.on_wake(|| status_line(core));
            }
            self.flush_dirty();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.retry.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadline = self
            .core
            .next_deadline()
            .map(|due| Duration::from_micros(due.saturating_sub(self.mono_us())));
        let grace = self
            .exit
            .map(|(_, since)| EXIT_GRACE.saturating_sub(since.elapsed()));
        let systemd = self
            .systemd
            .next_wake()
            .map(|at| at.saturating_duration_since(Instant::now()));
        [deadline, grace, systemd].into_iter().flatten().min()
    }

    fn mono_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn now(&self) -> Time {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Time {
            mono_us: self.mono_us(),
            wall_ms,
        }
    }

    // ----- the core -------------------------------------------------------------

    fn feed(&mut self, input: Input) {
        let now = self.now();
        let actions = self.core.handle(input, now);
        for action in actions {
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { instance, spec } => {
                let input = match self.spawn(instance, &spec) {
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
                let reply = self.cast(instance, &message);
                self.deliver(reply_to, reply);
            }
            Action::Reaped { instance } => {
                let Some((name, [mailbox, output])) = self.instances.remove(&instance) else {
                    return;
                };
                if let Some(cgroups) = &self.cgroups {
                    // Whatever the worker left behind dies with it, before any restart
                    // (which follows this action): wait, briefly and only when
                    // something was left, until those processes are gone, so the new
                    // worker finds their ports free. The one bounded wait in the loop.
                    cgroups.kill_and_wait(&name, CGROUP_DRAIN);
                    if !self.core.is_registered(&name) && !cgroups.remove(&name) {
                        self.emptying_cgroups.push(name);
                    }
                }
                if let Some(token) = mailbox {
                    self.close_source(token);
                }
                // The process is gone, so what it wrote is already in the pipes: log it
                // now, before anything else (a shutdown may end the loop next).
                // Descendants may still hold the pipes open; those go on being read.
                if let Some(token) = output {
                    self.on_source(token);
                }
            }
            Action::Reply { to, reply } => self.deliver(to, *reply),
            Action::Event(event) => {
                if event == Event::Shutdown {
                    self.systemd.stopping();
                }
                self.systemd.changed();
                self.broadcast(&event);
            }
            Action::SaveState => self.save_state(),
            Action::Exit { code } => {
                if self.exit.is_none() {
                    self.exit = Some((code, Instant::now()));
                    if let Some(mut listener) = self.listener.take() {
                        let _ = self.poll.registry().deregister(&mut listener);
                    }
                }
            }
        }
    }

    fn spawn(&mut self, instance: InstanceId, spec: &ChildSpec) -> Result<i32, String> {
        let plan = ExecPlan::new(spec, &self.ctx)?;
        let cgroup_procs = match &self.cgroups {
            Some(cgroups) => Some(
                cgroups
                    .prepare(&spec.name)
                    .map_err(|e| format!("cannot prepare the worker's cgroup: {e}"))?,
            ),
            None => None,
        };
        let child = spawn::spawn(
            &mut self.spawner,
            &plan,
            self.ctx.daemon_pid,
            cgroup_procs.as_ref(),
        )?;
        let name: Rc<str> = spec.name.clone();
        let mut tokens = [None; 2];
        let mut pipe = Receiver::from(child.output);
        let token = self.new_token();
        match self
            .poll
            .registry()
            .register(&mut pipe, token, Interest::READABLE)
        {
            Ok(()) => {
                self.sources
                    .insert(token, Source::Output(OutputPipe::new(pipe, name.clone())));
                tokens[1] = Some(token);
            }
            // The worker runs on; only its output is lost (dropping the pipe closes
            // it, so the worker gets EPIPE rather than blocking).
            Err(e) => log::error!("{name}: cannot watch its output pipe: {e}"),
        }
        let token = self.new_token();
        self.sources.insert(
            token,
            Source::Mailbox(Mailbox::new(Sender::from(child.stdin))),
        );
        tokens[0] = Some(token);
        self.instances.insert(instance, (name, tokens));
        Ok(child.pid)
    }

    fn cast(&mut self, instance: InstanceId, message: &str) -> Reply {
        let token = self.instances.get(&instance).and_then(|(_, t)| t[0]);
        let Some(Source::Mailbox(mailbox)) = token.and_then(|t| self.sources.get_mut(&t)) else {
            return Reply::error(ErrorKind::NotRunning, "the worker's stdin is closed");
        };
        let result = mailbox.cast(message);
        let waiting = result.is_ok() && mailbox.is_waiting();
        let reply = match result {
            Ok(queued) => Reply {
                queued: Some(queued),
                ..Reply::ok()
            },
            Err(CastError::Full) => Reply::error(
                ErrorKind::MailboxFull,
                format!(
                    "the mailbox is full ({} bytes are waiting for the worker to read them)",
                    super::pipes::MAILBOX_CAPACITY
                ),
            ),
            Err(CastError::Closed) => {
                Reply::error(ErrorKind::NotRunning, "the worker closed its stdin")
            }
        };
        if let (true, Some(token)) = (waiting, token) {
            self.watch_mailbox(token);
        }
        reply
    }

    fn watch_mailbox(&mut self, token: Token) {
        if let Some(Source::Mailbox(mailbox)) = self.sources.get_mut(&token) {
            if !mailbox.registered {
                match self
                    .poll
                    .registry()
                    .register(&mut mailbox.pipe, token, Interest::WRITABLE)
                {
                    Ok(()) => mailbox.registered = true,
                    Err(e) => log::error!("cannot watch a worker's stdin: {e}"),
                }
            }
        }
    }

    fn deliver(&mut self, to: ReplyTo, reply: Reply) {
        if let (ReplyTo::Restore { index }, Some(error)) = (to, &reply.error) {
            let name = self.restore_names.get(index).map_or("?", String::as_str);
            log::error!(
                "could not restore worker {name} from the state file (it is dropped from it): {}",
                error.message
            );
        }
        if let ReplyTo::Conn { conn, seq } = to {
            let token = Token(conn as usize);
            if let Some(Source::Conn(c)) = self.sources.get_mut(&token) {
                c.deliver(seq, reply.encode());
                self.dirty.push(token);
            }
        }
    }

    // ----- sources --------------------------------------------------------------

    fn on_signals(&mut self) {
        let mut child_exited = false;
        let mut shutdown = None;
        let mut reload = false;
        for signal in self.signals.pending() {
            match signal {
                SIGCHLD => child_exited = true,
                SIGTERM | SIGINT | SIGQUIT => shutdown = Some(Signal(signal)),
                SIGHUP => reload = true,
                _ => {}
            }
        }
        if child_exited {
            while let Some((pid, exit)) = process::reap_one() {
                self.feed(Input::Exited { pid, exit });
            }
            if let Some(cgroups) = &self.cgroups {
                let core = &self.core;
                self.emptying_cgroups
                    .retain(|name| !core.is_registered(name) && !cgroups.remove(name));
            }
        }
        if reload {
            log::info!("SIGHUP received: reloading the config");
            self.reload(None);
        }
        if let Some(signal) = shutdown {
            self.feed(Input::ShutdownSignal { signal });
        }
    }

    fn on_notify(&mut self) {
        let Some(notify) = self.notify.as_mut() else {
            return;
        };
        let (notes, more) = notify.receive();
        if more {
            self.retry.push(NOTIFY);
        }
        for note in notes {
            let group = process::process_group(note.pid);
            self.feed(Input::Notify {
                pid: note.pid,
                group,
                ready: note.ready,
                status: note.status,
            });
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream),
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
    fn admit(&mut self, mut stream: mio::net::UnixStream) {
        let refuse = |stream: &mut mio::net::UnixStream, kind: ErrorKind, message: String| {
            // Best effort, never blocking: a fresh socket's buffer takes one line.
            let _ = io::Write::write(stream, &Reply::error(kind, message).encode());
        };
        if self.connections >= self.max_connections {
            log::warn!(
                "refusing a connection: {} clients are connected (max_connections)",
                self.connections
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
        let token = self.new_token();
        match self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            Ok(()) => {
                let conn = Conn::new(stream, access == Access::ReadOnly);
                self.sources.insert(token, Source::Conn(Box::new(conn)));
                self.connections += 1;
            }
            Err(e) => log::error!("cannot watch a new connection: {e}"),
        }
    }

    fn on_source(&mut self, token: Token) {
        match self.sources.get_mut(&token) {
            Some(Source::Conn(_)) => self.on_conn(token),
            Some(Source::Output(pipe)) => match pipe.drain() {
                Drained::WouldBlock => {}
                Drained::More => self.retry.push(token),
                Drained::Eof => self.close_source(token),
            },
            Some(Source::Mailbox(mailbox)) => {
                let waiting = mailbox.flush();
                // Nothing left to write (or the worker is gone): stop watching.
                if !waiting && mailbox.registered {
                    let _ = self.poll.registry().deregister(&mut mailbox.pipe);
                    mailbox.registered = false;
                }
            }
            None => {}
        }
    }

    fn on_conn(&mut self, token: Token) {
        let Some(Source::Conn(conn)) = self.sources.get_mut(&token) else {
            return;
        };
        let batch = conn.read();
        if self.exit.is_some() {
            // Exiting: no new requests are taken.
            return;
        }
        for (seq, request) in batch.requests {
            let from = ReplyTo::Conn {
                conn: token.0 as u64,
                seq,
            };
            match request {
                Ok(req) => self.on_request(token, seq, from, req),
                Err(message) => self.deliver(from, Reply::error(ErrorKind::BadRequest, message)),
            }
            if matches!(self.sources.get(&token), Some(Source::Conn(c)) if c.is_watching()) {
                // The rest of the batch arrived after `watch`: it is ignored.
                break;
            }
        }
        if batch.more {
            self.retry.push(token);
        }
        self.dirty.push(token);
    }

    /// Most requests go to the core as they are; these need the OS first.
    fn on_request(&mut self, token: Token, seq: u64, from: ReplyTo, req: Request) {
        let read_only = matches!(self.sources.get(&token), Some(Source::Conn(c)) if c.read_only);
        if read_only && !is_read_only_command(req.cmd()) {
            let reply = Reply::error(
                ErrorKind::PermissionDenied,
                format!(
                    "`{}` needs full access; this connection is read-only",
                    req.cmd()
                ),
            );
            return self.deliver(from, reply);
        }
        match req {
            Request::Watch { names } => self.watch(token, seq, from, names),
            Request::Whois { pid } => {
                let group = process::process_group(pid);
                let command = Command::Whois { pid, group };
                self.feed(Input::Command { from, command });
            }
            Request::Reload => self.reload(Some(from)),
            Request::Ps { name } => {
                let reply = self.ps(name.as_deref());
                self.deliver(from, reply);
            }
            Request::Start {
                name,
                template,
                args,
                command,
            } => {
                let command = Command::Start {
                    name,
                    template,
                    args,
                    command,
                };
                self.feed(Input::Command { from, command });
            }
            Request::Stop { name, timeout_ms } => {
                let command = Command::Stop { name, timeout_ms };
                self.feed(Input::Command { from, command });
            }
            Request::Restart { name, timeout_ms } => {
                let command = Command::Restart { name, timeout_ms };
                self.feed(Input::Command { from, command });
            }
            Request::Kill { name, signal } => {
                let command = Command::Kill { name, signal };
                self.feed(Input::Command { from, command });
            }
            Request::Cast { name, message } => {
                let command = Command::Cast { name, message };
                self.feed(Input::Command { from, command });
            }
            Request::Lookup { name } => {
                let command = Command::Lookup { name };
                self.feed(Input::Command { from, command });
            }
            Request::Count => self.feed(Input::Command {
                from,
                command: Command::Count,
            }),
            Request::List => self.feed(Input::Command {
                from,
                command: Command::List,
            }),
            Request::Shutdown => self.feed(Input::Command {
                from,
                command: Command::Shutdown,
            }),
            Request::WaitReady { name } => {
                let command = Command::WaitReady { name };
                self.feed(Input::Command { from, command });
            }
        }
    }

    /// The processes of each worker: its cgroup's members, or its process group's.
    fn ps(&self, name: Option<&str>) -> Reply {
        let live = self.core.live_pids(name);
        if let (Some(name), true) = (name, live.is_empty()) {
            return Reply::error(
                ErrorKind::NotFound,
                format!("{name} is not registered or has no running process"),
            );
        }
        let groups = match self.cgroups {
            Some(_) => HashMap::new(),
            None => process::process_groups(),
        };
        let processes = live
            .into_iter()
            .map(|(name, pid)| {
                let pids = match &self.cgroups {
                    Some(cgroups) => cgroups.procs(&name),
                    None => groups.get(&pid).cloned().unwrap_or_else(|| vec![pid]),
                };
                crate::protocol::Processes { name, pids }
            })
            .collect();
        Reply {
            processes: Some(processes),
            ..Reply::ok()
        }
    }

    fn watch(&mut self, token: Token, seq: u64, from: ReplyTo, names: Vec<String>) {
        let Some(Source::Conn(conn)) = self.sources.get_mut(&token) else {
            return;
        };
        if !conn.is_next(seq) {
            let reply = Reply::error(
                ErrorKind::BadRequest,
                "watch must wait until the earlier requests on this connection are answered",
            );
            return self.deliver(from, reply);
        }
        conn.start_watching(names.clone());
        self.watchers.push(token);
        let reply = Reply {
            watching: Some(names),
            ..Reply::ok()
        };
        self.deliver(from, reply);
    }

    fn broadcast(&mut self, event: &Event) {
        if self.watchers.is_empty() {
            return;
        }
        let line = event.encode();
        let sources = &mut self.sources;
        let dirty = &mut self.dirty;
        self.watchers.retain(|token| match sources.get_mut(token) {
            Some(Source::Conn(conn)) => {
                if conn.push_event(event, &line) {
                    dirty.push(*token);
                }
                true
            }
            _ => false,
        });
    }

    /// The daemon-wide settings a reload can apply at once (log level, who may
    /// connect, how many), and a warning for each one it cannot.
    fn apply_settings(&mut self, config: &Config) {
        crate::logger::set_config_level(config.log_level);
        let mut access = config.access.clone();
        access.daemon_uid = self.access.daemon_uid;
        self.access = access;
        self.max_connections = config.max_connections;
        let new = config.fixed_settings();
        let old = &self.fixed;
        for (key, changed) in [
            ("socket", new.socket != old.socket),
            ("socket_mode", new.socket_mode != old.socket_mode),
            ("socket_group", new.socket_group != old.socket_group),
            ("state_file", new.state_file != old.state_file),
            ("cgroup", new.cgroup != old.cgroup),
            ("cgroup_root", new.cgroup_root != old.cgroup_root),
        ] {
            if changed {
                log::warn!(
                    "reload: [supervisor] {key} changed; the new value applies after a restart"
                );
            }
        }
    }

    /// Read the config file again and hand the result to the core.
    fn reload(&mut self, from: Option<ReplyTo>) {
        let config = match &self.config_path {
            None => Err("the daemon runs on its built-in defaults (no --config); there is nothing to reload".to_string()),
            Some(path) => match config::load(path) {
                Ok(config) => {
                    self.apply_settings(&config);
                    Ok(Box::new(reload_config(&config)))
                }
                Err(err) => Err(err.to_string()),
            },
        };
        self.feed(Input::Reload { from, config });
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for token in dirty.drain(..) {
            let Some(Source::Conn(conn)) = self.sources.get_mut(&token) else {
                continue;
            };
            let was_paused = !conn.resumable();
            match conn.flush() {
                ConnStatus::Close => self.close_source(token),
                ConnStatus::Open => {
                    let want_write = conn.has_unsent();
                    if want_write != conn.want_write {
                        let interest = if want_write {
                            Interest::READABLE | Interest::WRITABLE
                        } else {
                            Interest::READABLE
                        };
                        match self
                            .poll
                            .registry()
                            .reregister(&mut conn.stream, token, interest)
                        {
                            Ok(()) => conn.want_write = want_write,
                            Err(_) => {
                                self.close_source(token);
                                continue;
                            }
                        }
                    }
                    // Reading paused for backpressure and may go on: with edge-triggered
                    // readiness no new event would come for bytes already waiting.
                    if was_paused && conn.resumable() {
                        self.retry.push(token);
                    }
                }
            }
        }
        // Keep the allocation for next time.
        self.dirty = dirty;
    }

    /// At exit: leave no cgroup behind. Processes killed by `cgroup.kill` take a moment
    /// to exit (and come back to us as a subreaper to be reaped), so this waits for
    /// them, for at most a second; the daemon is exiting, nothing else is served.
    fn remove_cgroups(&mut self) {
        let Some(cgroups) = &self.cgroups else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        while !cgroups.remove_all() {
            while process::reap_one().is_some() {}
            if Instant::now() >= deadline {
                log::warn!(
                    "some worker cgroups under {} were still emptying at exit",
                    cgroups.base().display()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Log what is left in every output pipe (at exit: every worker is reaped, so
    /// this only reads what is already buffered).
    fn drain_outputs(&mut self) {
        for source in self.sources.values_mut() {
            if let Source::Output(pipe) = source {
                while let Drained::More = pipe.drain() {}
            }
        }
    }

    fn close_source(&mut self, token: Token) {
        let Some(source) = self.sources.remove(&token) else {
            return;
        };
        let registry = self.poll.registry();
        let _ = match source {
            Source::Conn(mut c) => {
                self.connections -= 1;
                registry.deregister(&mut c.stream)
            }
            Source::Output(mut p) => registry.deregister(&mut p.pipe),
            Source::Mailbox(mut m) if m.registered => registry.deregister(&mut m.pipe),
            Source::Mailbox(_) => Ok(()),
        };
    }

    fn new_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }
}

/// A short summary for systemd's `STATUS=` (visits every worker; paced by `Systemd`).
fn status_line(core: &Supervisor) -> String {
    let c = core.counts();
    format!(
        "{} running, {} in backoff, {} failed, {} stopping",
        c.active - c.stopping,
        c.backoff,
        c.failed,
        c.stopping
    )
}
