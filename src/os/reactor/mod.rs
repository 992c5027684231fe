//! The event loop: one thread, one `mio::Poll`, no timers but real deadlines.
//!
//! Sources: the signal pipe (SIGCHLD, SIGTERM, SIGINT, SIGHUP, and SIGQUIT as PID 1,
//! via signal-hook-mio), the listening socket, the workers' notify socket, client
//! connections, each worker's output pipe (its stdout and stderr share one) and,
//! while bytes wait, its stdin, and each running health check's output pipe. The poll
//! timeout is the earliest of the core's next deadline, a due message to systemd, a due
//! note of dropped output lines, a health check's timeout and the exit grace, or none:
//! an idle daemon sleeps in `epoll_wait` until something happens.
//!
//! Each readiness becomes an [`Input`] for the core; the core's `Action`s are carried
//! out in order. A spawn is carried out synchronously and its result fed back before
//! anything else, and each reaped pid is fed to the core as soon as `waitpid` returns
//! it: so the core's table is never behind the kernel's. A reaped pid that is a health
//! check's goes to the `probes` room instead, never to the core as an exit.
//!
//! One wait happens inside the loop, bounded: when a worker that runs in its own cgroup
//! is reaped, whatever it left in the group is killed, and the loop waits (at most
//! 500 ms, and only when something was left) until the group is empty, so that its
//! restart finds the leftovers' ports free.
//!
//! Fairness: every source is read with a budget; one that still has data goes on a
//! retry list and the next poll does not sleep, so a chatty worker or a client with a
//! deep pipeline cannot starve the others.
//!
//! The rooms, one job each:
//! - here: the [`Reactor`] and its parts, the loop, the poll timeout, the signals and
//!   the workers' notify socket;
//! - `actions`: carrying out the core's actions (`feed` is the one way into the core);
//! - `router`: a connection's requests, each handled by the OS or passed to the core;
//! - `clients`: accepting and admitting connections, replies, flushing, watchers;
//! - `workers_io`: spawning a worker instance, and its output pipe and stdin mailbox;
//! - `logs`: the workers' output after their pipes (kept lines, rate limits, files),
//!   the `logs` and `reopen_logs` requests, and each turn's end for output;
//! - `worker_cgroups`: the workers' cgroups, from before the spawn to removal;
//! - `probes`: the health checks in flight (start, output, timeout, reap, answer);
//! - `boot`: the boot children, the state file (restore, save), and reload;
//! - `metrics`: the `metrics` request's counters and snapshot.

mod actions;
mod batches;
mod boot;
mod clients;
mod exits;
mod leftovers;
mod logs;
mod metrics;
mod metrics_http;
mod probes;
mod router;
mod worker_cgroups;
mod workers_io;

use self::boot::Files;
use self::clients::Clients;
use self::exits::Exits;
use self::leftovers::Leftovers;
use self::logs::Logs;
use self::metrics::MetricsState;
pub use self::metrics_http::{bind as bind_metrics, MetricsListener};
use self::probes::Probes;
use self::worker_cgroups::WorkerCgroups;
use self::workers_io::WorkerIo;
use super::cgroup::Cgroups;
use super::notify::Systemd;
use super::process;
use super::ready::NotifySocket;
use super::spawn::{SpawnContext, Spawner};
use crate::access::AccessPolicy;
use crate::config::{FixedSettings, LogConfig};
use crate::core::{Input, ReplyTo, Supervisor, Time};
use crate::signal::Signal;
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Registry, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);
const NOTIFY: Token = Token(2);
/// Connections and pipes get tokens from here on, never reused.
const FIRST_DYNAMIC: usize = 3;

/// How many exits are reaped (and restarted) per loop turn at most.
const REAP_BUDGET: usize = 32;

/// How long the daemon waits for clients to read their last replies before exiting.
const EXIT_GRACE: Duration = Duration::from_secs(2);

pub struct Reactor {
    /// The rules. Every input goes through `feed` (in `actions`).
    core: Supervisor,
    clock: Clock,
    poller: Poller,
    clients: Clients,
    workers: WorkerIo,
    /// The workers' output once read: kept lines, rate limits, files, followers.
    logs: Logs,
    cgroups: WorkerCgroups,
    /// What is left of ended workers' process groups, until it is gone.
    leftovers: Leftovers,
    /// The health checks in flight.
    probes: Probes,
    files: Files,
    /// The daemon's own messages to systemd (READY, STATUS, STOPPING, WATCHDOG).
    systemd: Systemd,
    /// Set once the core said every worker is gone.
    exiting: Option<Exiting>,
    /// The last turn's reaps used their whole budget: there may be more.
    reap_more: bool,
    /// Children reaped through their pidfds this turn (at most `REAP_BUDGET`; the rest
    /// wait on the retry list).
    pidfd_reaps: usize,
    /// Requests about several workers, waiting for the last worker's answer.
    batches: batches::Batches,
    /// A client's `reload` in progress, and the settings it changed that apply only
    /// after a daemon restart: they go into its reply.
    reload_notes: Option<(ReplyTo, Vec<String>)>,
    /// The counters `metrics` renders.
    metrics: MetricsState,
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
    /// `--no-restore`: the state file's workers are registered as failed, not started.
    pub no_restore: bool,
    /// What happens to the workers' output (a reload replaces it).
    pub logs: LogConfig,
    /// Where `GET /metrics` is served (`metrics_listen`), bound before the loop.
    pub metrics_listener: Option<MetricsListener>,
}

/// epoll, and what every room needs from it: registration, fresh tokens and the retry
/// list. Also the two sources the loop reads itself.
struct Poller {
    poll: Poll,
    signals: Signals,
    /// Where workers with `ready = "notify"` send `READY=1` (none if it could not be
    /// created).
    worker_notify: Option<NotifySocket>,
    next_token: usize,
    /// The spawned children's pidfds, and when the next `waitpid(-1)` sweep is due.
    exits: Exits,
    /// Sources that still had data when their budget ran out: read again on the next
    /// turn, and the poll before it does not sleep.
    retry: Vec<Token>,
}

impl Poller {
    fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// A token for a new connection or pipe.
    fn new_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    fn retry(&mut self, token: Token) {
        self.retry.push(token);
    }
}

/// The time stamped on every input: monotonic since the reactor started (deadlines)
/// and wall-clock (what `list` shows).
struct Clock {
    epoch: Instant,
}

impl Clock {
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
}

/// The core said every worker is gone: exit with `code` once the clients have read
/// their last replies, or `EXIT_GRACE` after `since`.
#[derive(Clone, Copy)]
struct Exiting {
    code: i32,
    since: Instant,
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
        let metrics_listener = settings.metrics_listener.take();
        let worker_notify = match NotifySocket::bind() {
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
        let mut reactor = Reactor {
            core,
            clock: Clock {
                epoch: Instant::now(),
            },
            poller: Poller {
                poll,
                signals,
                worker_notify,
                next_token: FIRST_DYNAMIC,
                exits: Exits::default(),
                retry: Vec::new(),
            },
            clients: Clients::new(listener, settings.access, settings.max_connections),
            workers: WorkerIo::new(settings.spawner, ctx),
            logs: Logs::new(settings.logs),
            cgroups: WorkerCgroups::new(settings.cgroups),
            leftovers: Leftovers::default(),
            probes: Probes::default(),
            reap_more: false,
            pidfd_reaps: 0,
            batches: batches::Batches::default(),
            reload_notes: None,
            files: Files::new(
                settings.config,
                settings.fixed,
                settings.state_file,
                settings.no_restore,
            ),
            systemd: Systemd::from_env(),
            exiting: None,
            metrics: MetricsState::new(),
        };
        if let Some(listener) = metrics_listener {
            let http = metrics_http::MetricsHttp::new(listener, &mut reactor.poller)?;
            reactor.metrics.http = Some(http);
        }
        Ok(reactor)
    }

    /// True once a shutdown began (a boot child failed, say).
    pub fn is_shutting_down(&self) -> bool {
        self.core.is_shutting_down()
    }

    /// Run until the core says every worker is gone; returns the core's exit code.
    pub fn run(&mut self) -> io::Result<i32> {
        let mut events = Events::with_capacity(1024);
        let mut ready: Vec<Token> = Vec::with_capacity(1024);
        let mut hung_up: Vec<Token> = Vec::new();
        let mut seen: HashSet<Token> = HashSet::with_capacity(1024);
        loop {
            if let Some(exiting) = self.exiting {
                if self.clients.all_sent() || exiting.since.elapsed() >= EXIT_GRACE {
                    self.workers.drain_outputs(&mut self.logs.store);
                    self.logs.finish();
                    // Nothing outlives the daemon: no check in flight either.
                    self.probes.kill_all();
                    self.cgroups.remove_all_at_exit();
                    return Ok(exiting.code);
                }
            }
            // The state file's workers, a batch per turn (the first batch before the
            // first request is read), so clients are served while many are restored.
            if self.files.is_restoring() {
                self.restore_some();
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poller.poll.poll(&mut events, timeout) {
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
            ready.append(&mut self.poller.retry);
            // Once per turn each: a source both ready and on the retry list would
            // otherwise be served twice, and put back twice, growing every turn.
            seen.clear();
            ready.retain(|token| seen.insert(*token));
            self.pidfd_reaps = 0;
            for &token in &ready {
                match token {
                    SIGNALS => self.on_signals(),
                    LISTENER => self.clients.accept(&mut self.poller),
                    NOTIFY => self.on_worker_notify(),
                    token if self.clients.has(token) => self.on_conn(token),
                    token if self.poller.exits.has(token) => self.on_pidfd(token),
                    token if self.metrics.has_http(token) => self.on_metrics_http(token),
                    token if self.probes.has(token) => {
                        self.probes.on_ready(token, &mut self.poller)
                    }
                    token => self
                        .workers
                        .on_ready(token, &mut self.poller, &mut self.logs.store),
                }
            }
            self.clients.flush_answered(&mut self.poller);
            if self.poller.exits.take_due_sweep(Instant::now()) {
                self.sweep();
            }
            if self
                .leftovers
                .next_check()
                .is_some_and(|at| at <= Instant::now())
            {
                self.feed_emptied_leftovers();
            }
            if self
                .probes
                .next_deadline()
                .is_some_and(|at| at <= Instant::now())
            {
                let answers = self.probes.on_deadlines(Instant::now(), &mut self.poller);
                for answer in answers {
                    self.feed(answer);
                }
            }
            if let Some(due) = self.core.next_deadline() {
                if due <= self.clock.mono_us() {
                    self.feed(Input::Tick);
                }
            }
            // A client that hung up is closed, whatever it was owed.
            for &token in &hung_up {
                self.clients.hung_up(token, self.poller.registry());
            }
            if self
                .systemd
                .next_wake()
                .is_some_and(|at| at <= Instant::now())
            {
                let core = &self.core;
                self.systemd.on_wake(|| status_line(core));
            }
            // The turn's output: drop notes due, followers, files, drop counts.
            self.end_log_turn();
            // Before replies go out: an answered start or stop is on disk first (or
            // its reply says it is not).
            let written = self.files.write_if_dirty(&mut self.core);
            self.answer_after_write(written);
            self.end_metrics_http_turn();
            self.clients.end_turn(&mut self.poller);
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.poller.retry.is_empty() || self.files.is_restoring() {
            return Some(Duration::ZERO);
        }
        let deadline = self
            .core
            .next_deadline()
            .map(|due| Duration::from_micros(due.saturating_sub(self.clock.mono_us())));
        let grace = self
            .exiting
            .map(|exiting| EXIT_GRACE.saturating_sub(exiting.since.elapsed()));
        let systemd = self
            .systemd
            .next_wake()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let leftovers = self
            .leftovers
            .next_check()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let clients = self
            .clients
            .next_wake()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let log_notes = self
            .logs
            .next_wake()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let probes = self
            .probes
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let sweep = self
            .poller
            .exits
            .next_sweep()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let metrics_http = self
            .metrics
            .next_wake()
            .map(|at| at.saturating_duration_since(Instant::now()));
        [
            deadline,
            grace,
            systemd,
            leftovers,
            clients,
            log_notes,
            probes,
            metrics_http,
            sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_signals(&mut self) {
        let mut child_exited = false;
        let mut shutdown = None;
        let mut reload = false;
        for signal in self.poller.signals.pending() {
            match signal {
                SIGCHLD => child_exited = true,
                SIGTERM | SIGINT | SIGQUIT => shutdown = Some(Signal(signal)),
                SIGHUP => reload = true,
                _ => {}
            }
        }
        if self.reap_more
            || (child_exited
                && self
                    .poller
                    .exits
                    .on_sigchld(self.leftovers.any(), Instant::now()))
        {
            self.sweep();
        }
        if reload {
            log::info!("SIGHUP received: reloading the config");
            self.reload(None);
        }
        if let Some(signal) = shutdown {
            self.feed(Input::ShutdownSignal { signal });
        }
    }

    /// `waitpid(-1)` until nothing more has exited, within a budget per turn: the exits
    /// that have no pidfd (orphans, or any child when pidfds are off) — and any child's
    /// whose pidfd was not read yet, which is then dropped.
    fn sweep(&mut self) {
        // A budget per turn: workers that die as fast as they are restarted would
        // otherwise keep this loop reaping forever, and no client would be served.
        let mut reaped = 0;
        while reaped < REAP_BUDGET {
            let Some((pid, exit)) = process::reap_one() else {
                break;
            };
            self.poller
                .exits
                .reaped_by_sweep(pid, self.poller.poll.registry());
            self.child_exited(pid, exit);
            reaped += 1;
        }
        self.reap_more = reaped == REAP_BUDGET;
        if self.reap_more {
            // Maybe more: look again next turn (no new SIGCHLD would say so).
            self.poller.retry(SIGNALS);
        }
        self.after_reaps();
    }

    /// A spawned child's pidfd is readable: reap exactly that child.
    fn on_pidfd(&mut self, token: Token) {
        // A budget per turn, as for the sweep: a thousand workers dying at once are
        // restarted over several turns, with clients served between them.
        if self.pidfd_reaps >= REAP_BUDGET {
            self.poller.retry(token);
            return;
        }
        self.pidfd_reaps += 1;
        if let Some((pid, exit)) = self
            .poller
            .exits
            .on_ready(token, self.poller.poll.registry())
        {
            self.child_exited(pid, exit);
            self.after_reaps();
        }
    }

    /// A reaped child: a health check's goes to the probes room, anything else to the
    /// core (which ignores an orphan's pid).
    fn child_exited(&mut self, pid: i32, exit: crate::core::Exit) {
        if self.probes.owns(pid) {
            if let Some(answer) = self.probes.reaped(pid, exit, &mut self.poller) {
                self.feed(answer);
            }
        } else {
            self.feed(Input::Exited { pid, exit });
        }
    }

    /// After reaps: an orphaned leftover reaped may have emptied a group being drained,
    /// and a cgroup being emptied may be removable now.
    fn after_reaps(&mut self) {
        self.feed_emptied_leftovers();
        let core = &self.core;
        self.cgroups.retry_emptying(|name| core.is_registered(name));
    }

    /// Datagrams on the workers' notify socket, each fed with its sender's process
    /// group (read by `ready.rs` while the sender was still there).
    fn on_worker_notify(&mut self) {
        let Some(notify) = self.poller.worker_notify.as_mut() else {
            return;
        };
        let (notes, more) = notify.receive();
        if more {
            self.poller.retry(NOTIFY);
        }
        for datagram in notes {
            self.feed(Input::Notify {
                pid: datagram.pid,
                group: datagram.group,
                note: datagram.note,
            });
        }
    }
}

/// A short summary for systemd's `STATUS=` (visits every worker; paced by `Systemd`).
fn status_line(core: &Supervisor) -> String {
    let c = core.counts();
    format!(
        "{} running, {} waiting, {} in backoff, {} failed, {} stopping",
        c.active - c.stopping,
        c.waiting,
        c.backoff,
        c.failed,
        c.stopping
    )
}
