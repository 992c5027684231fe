//! `dynsup cluster-agent`: the node's member of the fleet (docs/CLUSTER.md, "The
//! agent's life"). Started by the daemon as the boot child `dynsup-cluster-agent` when
//! the config has `[cluster]`; talks to its daemon over the socket (`DYNSUP_SOCKET`) and
//! to etcd.
//!
//! Threads: `lease` (keepalive and fence, `lease.rs`), `daemon-events` (the daemon's
//! `watch`), `etcd-watch` (one per join), `signals`; the main thread owns the caches of
//! etcd's keys and acts on every message they send it ([`Msg`]).

mod daemon_link;
mod lease;

use super::etcd::{Change, Compare, Etcd, EtcdError, Kv, Op, WatchBatch};
use super::placement::{rank, Candidate};
use super::{
    decode, encode, now_ms, ClusterSettings, KeyKind, Keys, NodeValue, OwnerState, OwnerValue,
    SpecValue, AGENT_NAME,
};
use crate::core::RestartType;
use crate::exit_status::ExitStatus;
use crate::protocol::Event;
use daemon_link::DaemonLink;
use lease::Timing;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the other threads tell the main thread.
pub enum Msg {
    /// A batch of etcd's watch of the namespace, from the watch of join number `gen`.
    Watch {
        gen: u64,
        batch: WatchBatch,
    },
    /// That watch ended; the caches must be read again.
    WatchLost {
        gen: u64,
        why: String,
    },
    /// That watch is open on the endpoint of this index.
    WatchOpened {
        gen: u64,
        endpoint: usize,
    },
    /// The lease thread's calls now go to another endpoint (the one they went to
    /// stopped answering): the watch follows.
    EndpointMoved,
    Daemon(Event),
    /// The daemon closed its event stream: it is gone or going.
    DaemonGone,
    /// The lease thread fenced `lease`: its workers are stopped; join again.
    Fenced {
        lease: i64,
    },
    /// SIGTERM or SIGINT: leave the fleet.
    Term,
}

/// What the main thread and the lease thread share.
pub struct Shared {
    /// The lease this node runs under; 0 while it has none.
    pub lease: i64,
    /// When the last keepalive (or grant) that etcd answered was sent.
    pub good_since: Instant,
    /// The lease was given up: no start may use it.
    pub fenced: bool,
    /// The cluster workers this node runs, and the claim each was started for.
    pub local: BTreeMap<String, String>,
    pub quit: bool,
}

pub type SharedRef = Arc<(Mutex<Shared>, Condvar)>;

fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn say(priority: u8, message: &str) {
    eprintln!("<{priority}>{message}");
}
fn info(message: &str) {
    say(6, message);
}
fn warn(message: &str) {
    say(4, message);
}
fn error(message: &str) {
    say(3, message);
}

/// `dynsup --config FILE cluster-agent`.
pub fn run(config_path: Option<&Path>, socket: Option<PathBuf>) -> ExitStatus {
    let Some(config_path) = config_path else {
        error("cluster-agent needs --config FILE (a config with [cluster])");
        return ExitStatus::Usage;
    };
    let config = match crate::config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            error(&format!("invalid configuration: {e}"));
            return ExitStatus::Usage;
        }
    };
    let Some(settings) = config.cluster.clone() else {
        error(&format!(
            "{} has no [cluster] section: nothing to join",
            config_path.display()
        ));
        return ExitStatus::Usage;
    };
    let socket = socket
        .or_else(|| std::env::var_os("DYNSUP_SOCKET").map(PathBuf::from))
        .or(config.socket.clone())
        .unwrap_or_else(crate::paths::daemon_default_socket);
    let templates: BTreeMap<String, RestartType> = config
        .templates
        .iter()
        .filter(|(name, _)| name.as_str() != AGENT_NAME)
        .map(|(name, t)| (name.clone(), t.restart))
        .collect();
    let notify_templates = config
        .templates
        .iter()
        .filter(|(_, t)| t.ready == crate::core::Readiness::Notify)
        .map(|(name, _)| name.clone())
        .collect();
    let (tx, rx) = channel();
    let daemon = DaemonLink { socket };
    if let Err(e) = daemon.watch(tx.clone()) {
        error(&e);
        return ExitStatus::Unreachable;
    }
    if let Err(e) = forward_signals(tx.clone()) {
        error(&format!("cannot handle signals: {e}"));
        return ExitStatus::Error;
    }
    let ttl = Duration::from_millis(settings.lease_ttl_ms);
    let timing = Timing::of(ttl);
    // The main thread's calls may wait up to T/2: on a loaded machine etcd can take
    // far longer than T/6 to commit a transaction, and a timed-out call leaves its
    // outcome unknown. The fence does not wait for these (it has a thread and a
    // deadline of its own).
    let tls = match settings
        .tls
        .as_ref()
        .map(crate::cluster::tls::client_config)
    {
        Some(Err(e)) => {
            error(&e);
            return ExitStatus::Usage;
        }
        Some(Ok(tls)) => Some(tls),
        None => None,
    };
    let etcd = Etcd::new(
        &settings.endpoints,
        timing.fence_after.max(Duration::from_millis(200)),
    )
    .with_tls(tls);
    let shared: SharedRef = Arc::new((
        Mutex::new(Shared {
            lease: 0,
            good_since: Instant::now(),
            fenced: false,
            local: BTreeMap::new(),
            quit: false,
        }),
        Condvar::new(),
    ));
    if let Err(e) = lease::spawn(
        shared.clone(),
        etcd.clone(),
        daemon.clone(),
        timing,
        tx.clone(),
    ) {
        error(&format!("cannot start the lease thread: {e}"));
        return ExitStatus::Error;
    }
    let mut agent = Agent {
        keys: settings.keys(),
        settings,
        etcd,
        daemon,
        shared,
        tx,
        timing,
        ttl,
        templates,
        notify_templates,
        lease: 0,
        revoke_first: None,
        adopted_once: false,
        unconfirmed: None,
        watch_gen: 0,
        live_watch: Arc::new(AtomicU64::new(0)),
        watch_endpoint: None,
        needs_resync: false,
        nodes: BTreeMap::new(),
        specs: BTreeMap::new(),
        owners: BTreeMap::new(),
        deferred: BTreeMap::new(),
        stopping: BTreeSet::new(),
        draining: false,
        moving: None,
        unmovable: BTreeSet::new(),
        to_claim: Vec::new(),
        to_start: Vec::new(),
    };
    agent.run(&rx)
}

fn forward_signals(tx: Sender<Msg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(Msg::Term);
            }
        })
        .map(|_| ())
}

struct Agent {
    settings: ClusterSettings,
    keys: Keys,
    etcd: Etcd,
    daemon: DaemonLink,
    shared: SharedRef,
    tx: Sender<Msg>,
    timing: Timing,
    ttl: Duration,
    /// This node's templates (the agent's own left out) and their restart types.
    templates: BTreeMap<String, RestartType>,
    /// The templates with `ready = "notify"`: a drain waits until their new copy is
    /// ready before it stops the old one.
    notify_templates: BTreeSet<String>,
    /// The lease the main thread joined with; 0 while not joined.
    lease: i64,
    /// A lease given up by a fence, to revoke before joining again.
    revoke_first: Option<i64>,
    /// Whether this process already joined once (only its first join may adopt).
    adopted_once: bool,
    /// The lease of a join whose node-key transaction got no answer (see `join`).
    unconfirmed: Option<i64>,
    /// The number of the current watch; a message of an older one is ignored.
    watch_gen: u64,
    /// The same, read by the watch threads: one whose number is not current leaves.
    live_watch: Arc<AtomicU64>,
    /// The endpoint the current watch is open on, once it is.
    watch_endpoint: Option<usize>,
    needs_resync: bool,
    /// The caches of etcd's keys: value and mod revision.
    nodes: BTreeMap<String, NodeValue>,
    specs: BTreeMap<String, (SpecValue, i64)>,
    owners: BTreeMap<String, (OwnerValue, i64)>,
    /// Failover claims this node makes later, if the name is still unowned then.
    deferred: BTreeMap<String, Instant>,
    /// Names this node is stopping on purpose (`stop --cluster`): their `stopped`
    /// event is not an end of the worker.
    stopping: BTreeSet<String>,
    /// `cluster drain` set this node's key `draining`: its names move elsewhere.
    draining: bool,
    /// The name being moved by the drain, and where to.
    moving: Option<(String, String)>,
    /// Names no other node could take during this drain.
    unmovable: BTreeSet<String>,
    /// Failover claims this node makes at the end of the current message.
    to_claim: Vec<String>,
    /// Names assigned to this node, started at the end of the current message.
    to_start: Vec<String>,
}

const RETRY: Duration = Duration::from_millis(500);
/// Names claimed in one transaction: two comparisons each, within etcd's default
/// `--max-txn-ops` of 128 (which bounds the comparisons and the operations alike).
const CLAIM_BATCH: usize = 64;
/// Owner keys updated in one transaction: one comparison and one put each.
const OWNER_BATCH: usize = 128;
/// Messages handled together before the claims and starts they ask for are made.
const COALESCE: usize = 256;
/// `start`s pipelined on one connection.
const START_BATCH: usize = 256;

impl Agent {
    fn me(&self) -> &str {
        &self.settings.node
    }

    fn run(&mut self, rx: &Receiver<Msg>) -> ExitStatus {
        info(&format!(
            "node {} joining the fleet at {} (namespace {}, lease {} ms)",
            self.settings.node,
            self.settings.endpoints.join(", "),
            self.settings.namespace,
            self.settings.lease_ttl_ms
        ));
        let mut last_join_error = String::new();
        loop {
            self.follow_endpoint();
            if self.lease == 0 {
                match self.join() {
                    Ok(()) => last_join_error.clear(),
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_join_error {
                            warn(&format!("cannot join: {text}; retrying"));
                            last_join_error = text;
                        }
                    }
                }
            } else if self.needs_resync {
                if let Err(e) = self.resync() {
                    warn(&format!("cannot read the fleet's state: {e}; retrying"));
                }
            }
            self.flush_claims();
            let timeout = if self.lease == 0 || self.needs_resync {
                RETRY
            } else {
                self.deferred
                    .values()
                    .min()
                    .map_or(Duration::from_secs(3600), |due| {
                        due.saturating_duration_since(Instant::now())
                    })
            };
            match rx.recv_timeout(timeout) {
                Ok(msg) => {
                    if let Some(status) = self.handle(msg) {
                        return status;
                    }
                    // What queued up meanwhile (a lost node's claims come back as a
                    // watch message per transaction) is handled before the claims and
                    // starts it asks for are flushed: one pipeline, not one per message.
                    for _ in 0..COALESCE {
                        let Ok(msg) = rx.try_recv() else { break };
                        if let Some(status) = self.handle(msg) {
                            return status;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return ExitStatus::Error,
            }
            // Due claims are made even while messages keep coming.
            if !self.deferred.is_empty() {
                self.run_deferred();
            }
            self.flush_claims();
        }
    }

    /// One message from the threads; `Some` when the agent is done.
    fn handle(&mut self, msg: Msg) -> Option<ExitStatus> {
        match msg {
            Msg::Watch { gen, batch } if gen == self.watch_gen && self.lease != 0 => {
                self.on_batch(batch)
            }
            Msg::Watch { .. } => {}
            Msg::WatchOpened { gen, endpoint } => {
                if gen == self.watch_gen {
                    self.watch_endpoint = Some(endpoint);
                    self.follow_endpoint();
                }
            }
            Msg::EndpointMoved => self.follow_endpoint(),
            Msg::WatchLost { gen, why } => {
                if gen == self.watch_gen && self.lease != 0 {
                    warn(&format!(
                        "etcd's watch ended: {why}; reading the state again"
                    ));
                    self.needs_resync = true;
                }
            }
            Msg::Daemon(event) => self.on_daemon_event(event),
            Msg::DaemonGone => {
                info("the daemon closed its event stream; leaving");
                self.leave();
                return Some(ExitStatus::Ok);
            }
            Msg::Fenced { lease } => {
                if lease == self.lease {
                    self.lost_lease(lease);
                }
            }
            Msg::Term => {
                self.leave();
                return Some(ExitStatus::Ok);
            }
        }
        None
    }

    /// A new watch number: the old watch's messages are ignored from now on, and its
    /// thread leaves at its next message.
    fn next_watch_gen(&mut self) -> u64 {
        self.watch_gen += 1;
        self.live_watch.store(self.watch_gen, Ordering::Relaxed);
        self.watch_endpoint = None;
        self.watch_gen
    }

    /// The watch must be open on the endpoint that calls go to. Calls move off an
    /// endpoint that stops answering in time (a member frozen, or cut off from its
    /// peers); a watch left on it would be silent, and a lost node would never be
    /// noticed. So when the two differ the state is read again and a new watch is
    /// opened where the calls go now.
    fn follow_endpoint(&mut self) {
        let current = self.etcd.current_endpoint();
        let Some(watching) = self.watch_endpoint else {
            return;
        };
        if self.lease == 0 || self.needs_resync || watching == current {
            return;
        }
        warn(&format!(
            "etcd at {} stopped answering in time; watching from {} instead",
            self.etcd.endpoint(watching),
            self.etcd.endpoint(current)
        ));
        self.watch_endpoint = None;
        self.needs_resync = true;
    }

    /// After a fence: forget the lease's caches; join again with a new lease.
    fn lost_lease(&mut self, lease: i64) {
        warn(&format!(
            "lease {lease:x} given up; joining again with a new lease once etcd answers"
        ));
        self.lease = 0;
        self.revoke_first = Some(lease);
        self.next_watch_gen();
        self.nodes.clear();
        self.specs.clear();
        self.owners.clear();
        self.deferred.clear();
        self.draining = false;
        self.moving = None;
        self.unmovable.clear();
    }

    /// Get a lease and the node key (adopting a live one this daemon's previous agent
    /// left), then read the fleet's state.
    fn join(&mut self) -> Result<(), EtcdError> {
        if let Some(old) = self.revoke_first {
            self.etcd.revoke(old)?;
            self.revoke_first = None;
        }
        let key = self.keys.node(self.me());
        let daemon_pid = std::os::unix::process::parent_id();
        let mut joined: Option<(i64, Instant)> = None;
        // A lease granted by the last attempt whose node-key transaction got no answer:
        // etcd may have committed it (a timeout under load), and CLIs may already have
        // assigned names to it. Nothing runs under it, so it is safe to take up.
        let unconfirmed = self.unconfirmed.take();
        let found = if !self.adopted_once || unconfirmed.is_some() {
            match self.etcd.get(&key) {
                Ok(found) => found,
                Err(e) => {
                    self.unconfirmed = unconfirmed;
                    return Err(e);
                }
            }
        } else {
            None
        };
        if let Some(kv) = found {
            let value: Option<NodeValue> = decode(&kv.value);
            if let Some(value) = value.filter(|v| v.lease == kv.lease) {
                let ours = unconfirmed == Some(kv.lease);
                let previous = !self.adopted_once && value.daemon_pid == daemon_pid;
                if ours || previous {
                    let sent = Instant::now();
                    match self
                        .etcd
                        .keepalive(kv.lease, sent + self.timing.keepalive_every)
                    {
                        Ok(ttl) if ttl > 0 => {
                            info(&format!(
                                "adopting lease {:x}: {}",
                                kv.lease,
                                if ours {
                                    "this agent's node key went in after all (etcd answered late)"
                                } else {
                                    "this daemon's previous agent held it"
                                }
                            ));
                            joined = Some((kv.lease, sent));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.unconfirmed = unconfirmed;
                            return Err(e);
                        }
                    }
                }
            }
        }
        if let (None, Some(stale)) = (joined, unconfirmed) {
            // Granted, never used: gone now rather than at its TTL.
            let _ = self.etcd.revoke(stale);
        }
        self.adopted_once = true;
        let (lease, good_since) = match joined {
            Some(adopted) => adopted,
            None => {
                let sent = Instant::now();
                let lease = self.etcd.grant(self.settings.ttl_seconds())?;
                let value = NodeValue {
                    node: self.me().to_string(),
                    lease,
                    since_ms: now_ms(),
                    draining: false,
                    daemon_pid,
                };
                let txn = self.etcd.txn(
                    &[Compare::CreateRevision(key.clone(), 0)],
                    &[Op::Put {
                        key: key.clone(),
                        value: encode(&value),
                        lease,
                    }],
                    &[Op::Get(key.clone())],
                );
                let txn = match txn {
                    Ok(txn) => txn,
                    Err(e) => {
                        self.unconfirmed = Some(lease);
                        return Err(e);
                    }
                };
                if !txn.succeeded {
                    let _ = self.etcd.revoke(lease);
                    let holder = txn
                        .gets
                        .first()
                        .and_then(|kvs| kvs.first())
                        .and_then(|kv| decode::<NodeValue>(&kv.value));
                    return Err(EtcdError::Server {
                        code: 6,
                        message: format!(
                            "node {} is still held (lease {:x}, daemon pid {}): by this node's previous daemon, whose lease expires within lease_ttl_ms, or by another daemon with the same [cluster] node",
                            self.me(),
                            holder.as_ref().map_or(0, |h| h.lease),
                            holder.as_ref().map_or(0, |h| h.daemon_pid)
                        ),
                    });
                }
                (lease, sent)
            }
        };
        {
            let mut guard = lock(&self.shared);
            guard.lease = lease;
            guard.good_since = good_since;
            guard.fenced = false;
        }
        // Before anything starts under the new lease (and, on an adoption, over the
        // switch the previous agent armed).
        lease::arm_switch(&self.daemon, self.timing, good_since);
        self.shared.1.notify_all();
        self.lease = lease;
        info(&format!(
            "joined as node {} with lease {lease:x}",
            self.me()
        ));
        self.needs_resync = true;
        self.resync()
    }

    /// Read the whole namespace, put this node's workers in order with it, and watch
    /// it from there on.
    fn resync(&mut self) -> Result<(), EtcdError> {
        let range = self.etcd.range_prefix(&self.keys.all())?;
        let workers = self
            .daemon
            .list()
            .map_err(|e| EtcdError::Protocol(format!("the daemon's list: {e}")))?;
        self.nodes.clear();
        self.specs.clear();
        self.owners.clear();
        for kv in &range.kvs {
            self.cache(kv);
        }
        let gen = self.next_watch_gen();
        spawn_watch(
            self.etcd.clone(),
            self.keys.all(),
            range.revision + 1,
            (gen, self.live_watch.clone()),
            self.tx.clone(),
        );
        self.needs_resync = false;
        let me = self.me().to_string();
        let running: BTreeMap<&str, &crate::protocol::WorkerInfo> =
            workers.iter().map(|w| (w.name.as_str(), w)).collect();
        let mut stale = Vec::new();
        {
            let mut guard = lock(&self.shared);
            for worker in workers.iter().filter(|w| w.dynamic) {
                let Some((spec, _)) = self.specs.get(&worker.name) else {
                    continue;
                };
                match self.owners.get(&worker.name) {
                    Some((owner, _)) if owner.node == me && owner.claim == spec.claim => {
                        guard.local.insert(worker.name.clone(), spec.claim.clone());
                    }
                    _ => {
                        guard.local.remove(&worker.name);
                        stale.push(worker.name.clone());
                    }
                }
            }
        }
        if !stale.is_empty() {
            warn(&format!(
                "stopping {} local cop(ies) of cluster workers this node does not own: {}",
                stale.len(),
                stale.join(", ")
            ));
            self.stop_in_background(stale, false);
        }
        let mine: Vec<(String, Option<i32>)> = self
            .owners
            .iter()
            .filter(|(_, (owner, _))| owner.node == me && owner.state != OwnerState::Refused)
            .map(|(name, (owner, _))| (name.clone(), owner.pid))
            .collect();
        for (name, pid) in mine {
            match running.get(name.as_str()) {
                None => self.start_assigned(&name),
                Some(worker) if worker.pid != pid => {
                    self.update_owner(&name, state_of(worker), worker.pid)
                }
                Some(_) => {}
            }
        }
        self.consider_orphans();
        Ok(())
    }

    /// [`Agent::consider_orphan`] for every spec without an owner.
    fn consider_orphans(&mut self) {
        let orphans: Vec<String> = self
            .specs
            .keys()
            .filter(|name| {
                !self.owners.contains_key(*name)
                    && !self.deferred.contains_key(*name)
                    && !self.to_claim.contains(*name)
            })
            .cloned()
            .collect();
        for name in orphans {
            self.consider_orphan(&name);
        }
    }

    /// Cache a key's value; `false` when the cache already holds this revision or a
    /// later one: the watch's echo of this node's own write (cached when it was made),
    /// or a change overtaken by one this node made since. Revisions only grow, so an
    /// older one never overwrites a newer value (a lost update's compare would fail).
    fn cache(&mut self, kv: &Kv) -> bool {
        match self.keys.kind(&kv.key) {
            KeyKind::Node(node) => {
                if let Some(value) = decode::<NodeValue>(&kv.value) {
                    self.nodes.insert(node.to_string(), value);
                }
                true
            }
            KeyKind::Spec(name) => cache_newer(&mut self.specs, name, kv),
            KeyKind::Owner(name) => cache_newer(&mut self.owners, name, kv),
            KeyKind::Other => true,
        }
    }

    /// Whether a delete at `revision` is older than what the cache holds for `key`
    /// (the key was written again since, by this node): then it is not news.
    fn overtaken(&self, key: &str, revision: i64) -> bool {
        match self.keys.kind(key) {
            KeyKind::Spec(name) => self.specs.get(name).is_some_and(|(_, rev)| *rev > revision),
            KeyKind::Owner(name) => self
                .owners
                .get(name)
                .is_some_and(|(_, rev)| *rev > revision),
            KeyKind::Node(_) | KeyKind::Other => false,
        }
    }

    fn on_batch(&mut self, batch: WatchBatch) {
        // Node keys first: a lost node's node key and owner keys go in one revision,
        // and the failover's ranking must not count the lost node.
        let (nodes, rest): (Vec<Change>, Vec<Change>) =
            batch.changes.into_iter().partition(|change| {
                let key = match change {
                    Change::Put(kv) => kv.key.as_str(),
                    Change::Delete { key, .. } => key.as_str(),
                };
                matches!(self.keys.kind(key), KeyKind::Node(_))
            });
        for change in nodes.into_iter().chain(rest) {
            if self.lease == 0 {
                return;
            }
            match change {
                Change::Put(kv) => self.on_put(&kv),
                Change::Delete { key, mod_revision } => {
                    if !self.overtaken(&key, mod_revision) {
                        self.on_delete(&key)
                    }
                }
            }
        }
    }

    fn on_put(&mut self, kv: &Kv) {
        let was_draining = match self.keys.kind(&kv.key) {
            KeyKind::Node(node) => self.nodes.get(node).map(|n| n.draining),
            _ => None,
        };
        if !self.cache(kv) {
            return;
        }
        // An owner key assigned to this node (with its spec, whichever came first).
        let name = match self.keys.kind(&kv.key) {
            KeyKind::Owner(name) | KeyKind::Spec(name) => name.to_string(),
            KeyKind::Node(node) => {
                let me = node == self.settings.node;
                let draining = self.nodes.get(node).is_some_and(|n| n.draining);
                if me && draining && !self.draining {
                    info(
                        "draining: moving this node's cluster workers to the others, one at a time",
                    );
                    self.draining = true;
                }
                if was_draining == Some(true) && !draining {
                    if me && self.draining {
                        info("undrained: this node takes new names and failovers again");
                        self.draining = false;
                    }
                    // It may take the names nobody could (a lone survivor draining).
                    self.consider_orphans();
                }
                // A node that joins may take what a drain could not place.
                self.drain_next();
                return;
            }
            KeyKind::Other => return,
        };
        if self
            .moving
            .as_ref()
            .is_some_and(|(moving, _)| *moving == name)
        {
            self.move_progress(&name);
        }
        self.deferred.remove(&name);
        let assigned_to_me = self
            .owners
            .get(&name)
            .is_some_and(|(o, _)| o.node == self.settings.node && o.state == OwnerState::Assigned);
        if assigned_to_me && !self.to_start.contains(&name) {
            // Started at the end of the message, with the others it brings.
            self.to_start.push(name);
        }
    }

    fn on_delete(&mut self, key: &str) {
        match self.keys.kind(key) {
            KeyKind::Node(node) => {
                self.nodes.remove(node);
                if node == self.settings.node {
                    // The lease is gone (expired, revoked): fence at once.
                    let lease = self.lease;
                    if lease::fence(
                        &self.shared,
                        &self.daemon,
                        self.timing,
                        lease,
                        "this node's key was deleted: its lease is gone",
                    ) {
                        self.lost_lease(lease);
                    }
                }
            }
            KeyKind::Spec(name) => {
                let name = name.to_string();
                self.specs.remove(&name);
                self.deferred.remove(&name);
                let was_local = lock(&self.shared).local.remove(&name).is_some();
                if was_local {
                    info(&format!(
                        "{name}: stopped by the cluster (its spec was deleted)"
                    ));
                    self.stop_in_background(vec![name], true);
                }
            }
            KeyKind::Owner(name) => {
                let name = name.to_string();
                let old = self.owners.remove(&name).map(|(owner, _)| owner);
                if self
                    .moving
                    .as_ref()
                    .is_some_and(|(moving, _)| *moving == name)
                {
                    // The target was lost mid-move: the copy here still runs; own it
                    // again.
                    self.moving = None;
                    self.unmovable.insert(name.clone());
                    if lock(&self.shared).local.contains_key(&name) {
                        self.claim_back(&name);
                    }
                    self.drain_next();
                    return;
                }
                if self.specs.contains_key(&name) {
                    // A drain's move whose target was lost before it ran the name: the
                    // draining node still runs its copy and claims it back at once.
                    // The others wait, as a second-ranked node does, and take it only
                    // if that node did not.
                    let draining_from = old
                        .filter(|o| o.state == OwnerState::Assigned)
                        .and_then(|o| o.from)
                        .filter(|from| {
                            *from != self.settings.node && self.nodes.contains_key(from)
                        });
                    if draining_from.is_some() {
                        self.deferred
                            .insert(name.clone(), Instant::now() + self.ttl / 2);
                    } else {
                        self.consider_orphan(&name);
                    }
                }
            }
            KeyKind::Other => {}
        }
    }

    /// Stop local workers on a thread of its own (a stop waits for the worker's
    /// `shutdown_ms`); with `forget_owner`, then delete their owner keys.
    fn stop_in_background(&mut self, names: Vec<String>, forget_owner: bool) {
        self.stopping.extend(names.iter().cloned());
        let daemon = self.daemon.clone();
        let etcd = self.etcd.clone();
        let owners: Vec<(String, i64)> = names
            .iter()
            .filter_map(|n| {
                self.owners
                    .get(n)
                    .filter(|(o, _)| o.node == self.settings.node)
                    .map(|(_, rev)| (self.keys.owner(n), *rev))
            })
            .collect();
        let spawned = std::thread::Builder::new()
            .name("stop".to_string())
            .spawn(move || {
                if let Err(e) = daemon.stop(names, None) {
                    error(&format!("cannot stop: {e}"));
                }
                if forget_owner {
                    for (key, rev) in owners {
                        let _ = etcd.txn(
                            &[Compare::ModRevision(key.clone(), rev)],
                            &[Op::Delete(key)],
                            &[],
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            error(&format!("cannot start a thread: {e}"));
        }
    }

    /// The owner key names this node and says `assigned` (or the daemon lost a worker
    /// this node owns): start it on the local daemon, or refuse and roll the claim back.
    fn start_assigned(&mut self, name: &str) {
        let Some((spec, spec_rev)) = self.specs.get(name).cloned() else {
            return;
        };
        let Some((owner, owner_rev)) = self.owners.get(name).cloned() else {
            return;
        };
        if owner.node != self.settings.node || owner.claim != spec.claim {
            return;
        }
        let template = spec.template.clone().or_else(|| self.only_template());
        let template_used = template.clone();
        let restart = template
            .as_ref()
            .and_then(|t| self.templates.get(t))
            .map(|r| r.as_str().to_string());
        let reply = {
            let mut guard = lock(&self.shared);
            if guard.fenced || guard.lease != self.lease || self.lease == 0 {
                return;
            }
            if guard.local.get(name) == Some(&spec.claim) {
                None
            } else {
                let reply = self.daemon.start(name, template, spec.args.clone());
                if matches!(&reply, Ok(r) if r.ok) {
                    guard.local.insert(name.to_string(), spec.claim.clone());
                    self.stopping.remove(name);
                }
                Some(reply)
            }
        };
        match reply {
            // Already ours and running: only the owner key is behind.
            None => {
                let pid = self
                    .daemon
                    .request(&crate::protocol::Request::Lookup {
                        name: name.to_string(),
                    })
                    .ok()
                    .and_then(|r| r.pid);
                self.put_owner(name, owner_rev, OwnerState::Running, pid, restart, None);
            }
            Some(Ok(reply)) if reply.ok => {
                info(&format!(
                    "{name}: started here for the cluster (pid {})",
                    reply.pid.unwrap_or(0)
                ));
                let notify = template_used
                    .as_ref()
                    .is_some_and(|t| self.notify_templates.contains(t));
                if let (Some(from), true) = (owner.from.as_deref(), notify) {
                    // A drain's new copy: the old one stops once this one is ready.
                    let ready = self.daemon.request(&crate::protocol::Request::WaitReady {
                        name: name.to_string(),
                    });
                    match ready {
                        Ok(r) if r.ok => {}
                        Ok(r) => {
                            // It never got ready: the old copy keeps the name.
                            let why = r.error.map_or_else(
                                || "the moved copy did not get ready".to_string(),
                                |e| e.message,
                            );
                            warn(&format!("{name}: {why}; stopping the moved copy"));
                            lock(&self.shared).local.remove(name);
                            self.stop_in_background(vec![name.to_string()], false);
                            let from = from.to_string();
                            self.hand_back(name, owner_rev, &from, "not_ready", &why);
                            return;
                        }
                        Err(e) => {
                            // The daemon is gone (the agent follows it): say nothing.
                            warn(&format!("{name}: cannot wait for it to be ready: {e}"));
                            return;
                        }
                    }
                }
                self.put_owner(
                    name,
                    owner_rev,
                    OwnerState::Running,
                    reply.pid,
                    restart,
                    None,
                );
            }
            Some(Ok(reply)) => {
                let (kind, message) = reply
                    .error
                    .map_or(("spawn_failed".to_string(), "refused".to_string()), |e| {
                        (e.kind.as_str().to_string(), e.message)
                    });
                self.refuse(name, owner_rev, spec_rev, &kind, &message);
            }
            Some(Err(e)) => {
                self.refuse(name, owner_rev, spec_rev, "spawn_failed", &e);
            }
        }
    }

    fn only_template(&self) -> Option<String> {
        match self.templates.len() {
            1 => self.templates.keys().next().cloned(),
            _ => None,
        }
    }

    /// Put this node's owner key if it is still the one at `rev`.
    fn put_owner(
        &mut self,
        name: &str,
        rev: i64,
        state: OwnerState,
        pid: Option<i32>,
        restart: Option<String>,
        error: Option<(String, String)>,
    ) -> Option<i64> {
        let (mut value, _) = self.owners.get(name)?.clone();
        value.state = state;
        value.pid = pid;
        if restart.is_some() {
            value.restart = restart;
        }
        match error {
            Some((kind, message)) => {
                value.kind = Some(kind);
                value.error = Some(message);
            }
            // A refusal's (or a hand-back's) why does not outlive it: the worker runs.
            None if state != OwnerState::Refused => {
                value.kind = None;
                value.error = None;
            }
            None => {}
        }
        let key = self.keys.owner(name);
        match self.etcd.txn(
            &[Compare::ModRevision(key.clone(), rev)],
            &[Op::Put {
                key,
                value: encode(&value),
                lease: self.lease,
            }],
            &[],
        ) {
            Ok(txn) if txn.succeeded => {
                self.owners.insert(name.to_string(), (value, txn.revision));
                Some(txn.revision)
            }
            Ok(_) => None,
            Err(e) => {
                warn(&format!("{name}: cannot update its owner key: {e}"));
                None
            }
        }
    }

    /// A worker of this node changed (restarted, failed): its owner key follows.
    fn update_owner(&mut self, name: &str, state: OwnerState, pid: Option<i32>) {
        let Some((owner, rev)) = self.owners.get(name).cloned() else {
            return;
        };
        if owner.node != self.settings.node || (owner.state == state && owner.pid == pid) {
            return;
        }
        self.put_owner(name, rev, state, pid, None, None);
    }

    /// This node cannot start the name: say why in the owner key (the CLI waiting for
    /// it reads it), then delete spec and owner so the name is free again.
    fn refuse(&mut self, name: &str, owner_rev: i64, spec_rev: i64, kind: &str, message: &str) {
        let from = self
            .owners
            .get(name)
            .filter(|(o, _)| o.state == OwnerState::Assigned)
            .and_then(|(o, _)| o.from.clone());
        if let Some(from) = from {
            self.hand_back(name, owner_rev, &from, kind, message);
            return;
        }
        warn(&format!(
            "{name}: cannot start it here: {message}; rolling the claim back"
        ));
        let Some(rev) = self.put_owner(
            name,
            owner_rev,
            OwnerState::Refused,
            None,
            None,
            Some((kind.to_string(), message.to_string())),
        ) else {
            return;
        };
        let owner = self.keys.owner(name);
        let spec = self.keys.spec(name);
        if let Err(e) = self.etcd.txn(
            &[
                Compare::ModRevision(owner.clone(), rev),
                Compare::ModRevision(spec.clone(), spec_rev),
            ],
            // The spec first: its watchers then see no orphan in the owner's delete.
            &[Op::Delete(spec), Op::Delete(owner)],
            &[],
        ) {
            warn(&format!("{name}: cannot roll the claim back: {e}"));
        }
    }

    /// A spec without an owner: take it over when this node ranks first for it, or
    /// later if nobody ranked before it has by then.
    fn consider_orphan(&mut self, name: &str) {
        if self.lease == 0 || self.owners.contains_key(name) {
            return;
        }
        let Some((spec, _)) = self.specs.get(name) else {
            return;
        };
        let template = spec.template.clone().or_else(|| self.only_template());
        if !template.is_some_and(|t| self.templates.contains_key(&t)) {
            return;
        }
        let candidates: Vec<Candidate<'_>> = self
            .nodes
            .values()
            .map(|n| Candidate {
                node: &n.node,
                load: 0,
                draining: n.draining,
            })
            .collect();
        let Some(position) = rank(name, &candidates)
            .iter()
            .position(|n| *n == self.settings.node)
        else {
            return;
        };
        if position == 0 {
            self.to_claim.push(name.to_string());
        } else {
            let wait = self.ttl / 2 * position as u32;
            self.deferred
                .insert(name.to_string(), Instant::now() + wait);
        }
    }

    fn run_deferred(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .deferred
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &due {
            self.deferred.remove(name);
        }
        if self.lease == 0 {
            return;
        }
        // Claimed together (a failed batch comes back here as a whole).
        let unowned: Vec<String> = due
            .into_iter()
            .filter(|name| !self.owners.contains_key(name))
            .collect();
        if !unowned.is_empty() {
            self.claim_many(unowned);
        }
    }

    /// Own again a name whose copy runs here (a drain's target was lost).
    fn claim_back(&mut self, name: &str) {
        let Some((spec, spec_rev)) = self.specs.get(name).cloned() else {
            return;
        };
        let pid = self
            .daemon
            .request(&crate::protocol::Request::Lookup {
                name: name.to_string(),
            })
            .ok()
            .and_then(|r| r.pid);
        let owner = OwnerValue {
            node: self.settings.node.clone(),
            claim: spec.claim,
            state: OwnerState::Running,
            pid,
            restart: None,
            from: None,
            kind: None,
            error: None,
        };
        let key = self.keys.owner(name);
        match self.etcd.txn(
            &[
                Compare::CreateRevision(key.clone(), 0),
                Compare::ModRevision(self.keys.spec(name), spec_rev),
            ],
            &[Op::Put {
                key,
                value: encode(&owner),
                lease: self.lease,
            }],
            &[],
        ) {
            Ok(txn) if txn.succeeded => {
                info(&format!(
                    "draining: {name}'s target was lost; it keeps running here"
                ));
            }
            Ok(_) => {
                // Another node claimed it (or it was stopped) first: the copy here is
                // no longer the name's.
                warn(&format!(
                    "draining: {name}'s target was lost and another node took it; stopping the copy here"
                ));
                lock(&self.shared).local.remove(name);
                self.stop_in_background(vec![name.to_string()], false);
            }
            Err(e) => warn(&format!("{name}: cannot claim it back: {e}")),
        }
    }

    /// The failover race for one name: the comparisons and the operation of its claim
    /// with the owner value it puts (for a temporary worker: the operation forgetting
    /// it, and no value), if this node can take it.
    fn claim_plan(&self, name: &str) -> Option<(Vec<Compare>, Op, Option<OwnerValue>)> {
        let (spec, spec_rev) = self.specs.get(name)?;
        let template = spec.template.clone().or_else(|| self.only_template());
        let restart = template
            .as_ref()
            .and_then(|t| self.templates.get(t))
            .copied()?;
        let owner_key = self.keys.owner(name);
        let spec_key = self.keys.spec(name);
        let compare = vec![
            Compare::CreateRevision(owner_key.clone(), 0),
            Compare::ModRevision(spec_key.clone(), *spec_rev),
        ];
        if restart == RestartType::Temporary {
            // A lost node is an abnormal end: a temporary worker is not restarted.
            return Some((compare, Op::Delete(spec_key), None));
        }
        let owner = OwnerValue {
            node: self.settings.node.clone(),
            claim: spec.claim.clone(),
            state: OwnerState::Assigned,
            pid: None,
            restart: Some(restart.as_str().to_string()),
            from: None,
            kind: None,
            error: None,
        };
        let put = Op::Put {
            key: owner_key,
            value: encode(&owner),
            lease: self.lease,
        };
        Some((compare, put, Some(owner)))
    }

    /// Claim the names queued by [`Agent::consider_orphan`], and start those assigned
    /// to this node meanwhile (claims the watch brings back come as a later message).
    fn flush_claims(&mut self) {
        if !self.to_claim.is_empty() && self.lease != 0 {
            let names = std::mem::take(&mut self.to_claim);
            self.claim_many(names);
        }
        self.to_claim.clear();
        let names = std::mem::take(&mut self.to_start);
        if self.lease != 0 {
            self.start_many(names);
        }
    }

    /// Start names assigned to this node: a drain's moves and names already running
    /// here one by one ([`Agent::start_assigned`]); the others with their `start`s
    /// pipelined on one connection and their owner keys updated [`OWNER_BATCH`] to a
    /// transaction, so that a failover of many names costs a few round trips.
    fn start_many(&mut self, names: Vec<String>) {
        let me = self.settings.node.clone();
        let mut plans = Vec::new();
        let mut singles = Vec::new();
        {
            let local = lock(&self.shared);
            for name in names {
                let (Some((spec, _)), Some((owner, owner_rev))) =
                    (self.specs.get(&name), self.owners.get(&name))
                else {
                    continue;
                };
                if owner.node != me
                    || owner.claim != spec.claim
                    || owner.state != OwnerState::Assigned
                {
                    continue;
                }
                if owner.from.is_some() || local.local.contains_key(&name) {
                    // Rare: one at a time.
                    singles.push(name);
                    continue;
                }
                let template = spec.template.clone().or_else(|| self.only_template());
                plans.push((name, spec.clone(), *owner_rev, template));
            }
        }
        // A pipeline of at most START_BATCH requests: the daemon stops reading a client
        // that owes it 1024 replies, and this one reads only once it has written all.
        while !plans.is_empty() {
            let rest = plans.split_off(plans.len().min(START_BATCH));
            self.start_planned(plans);
            plans = rest;
        }
        for name in singles {
            self.start_assigned(&name);
        }
    }

    fn start_planned(&mut self, plans: Vec<(String, SpecValue, i64, Option<String>)>) {
        if plans.is_empty() {
            return;
        }
        let requests: Vec<crate::protocol::Request> = plans
            .iter()
            .map(
                |(name, spec, _, template)| crate::protocol::Request::Start {
                    name: name.clone(),
                    template: template.clone(),
                    args: spec.args.clone(),
                    command: None,
                    env: Default::default(),
                    fenced: true,
                },
            )
            .collect();
        let replies = {
            let mut guard = lock(&self.shared);
            if guard.fenced || guard.lease != self.lease || self.lease == 0 {
                return;
            }
            let replies = crate::client::exchange_all(&self.daemon.socket, &requests);
            if let Ok(replies) = &replies {
                for ((name, spec, ..), reply) in plans.iter().zip(replies) {
                    if reply.ok {
                        guard.local.insert(name.clone(), spec.claim.clone());
                        self.stopping.remove(name);
                    }
                }
            }
            replies
        };
        let replies = match replies {
            Ok(replies) => replies,
            Err(e) => {
                for (name, _, owner_rev, _) in &plans {
                    let spec_rev = self.specs.get(name).map_or(0, |(_, r)| *r);
                    self.refuse(name, *owner_rev, spec_rev, "spawn_failed", &e);
                }
                return;
            }
        };
        let mut started = Vec::new();
        for ((name, _, owner_rev, template), reply) in plans.into_iter().zip(replies) {
            if reply.ok {
                let restart = template
                    .as_ref()
                    .and_then(|t| self.templates.get(t))
                    .map(|r| r.as_str().to_string());
                started.push((name, owner_rev, reply.pid, restart));
            } else {
                let (kind, message) = reply
                    .error
                    .map_or(("spawn_failed".to_string(), "refused".to_string()), |e| {
                        (e.kind.as_str().to_string(), e.message)
                    });
                let spec_rev = self.specs.get(&name).map_or(0, |(_, r)| *r);
                self.refuse(&name, owner_rev, spec_rev, &kind, &message);
            }
        }
        if started.len() > 1 {
            info(&format!("started {} cluster worker(s) here", started.len()));
        } else if let Some((name, _, pid, _)) = started.first() {
            info(&format!(
                "{name}: started here for the cluster (pid {})",
                pid.unwrap_or(0)
            ));
        }
        for chunk in started.chunks(OWNER_BATCH) {
            let mut compare = Vec::new();
            let mut ops = Vec::new();
            let mut values = Vec::new();
            for (name, rev, pid, restart) in chunk {
                let Some((mut value, _)) = self.owners.get(name).cloned() else {
                    continue;
                };
                value.state = OwnerState::Running;
                value.pid = *pid;
                if restart.is_some() {
                    value.restart = restart.clone();
                }
                let key = self.keys.owner(name);
                compare.push(Compare::ModRevision(key.clone(), *rev));
                ops.push(Op::Put {
                    key,
                    value: encode(&value),
                    lease: self.lease,
                });
                values.push((name.clone(), value));
            }
            match self.etcd.txn(&compare, &ops, &[]) {
                Ok(txn) if txn.succeeded => {
                    for (name, value) in values {
                        self.owners.insert(name, (value, txn.revision));
                    }
                }
                // One of them changed meanwhile: each on its own.
                _ => {
                    for (name, rev, pid, restart) in chunk {
                        self.put_owner(
                            name,
                            *rev,
                            OwnerState::Running,
                            *pid,
                            restart.clone(),
                            None,
                        );
                    }
                }
            }
        }
    }

    /// Claim names, [`CLAIM_BATCH`] to a transaction (a lost node's names are claimed
    /// in a few round trips, not one each); a batch that loses a race to another node
    /// is claimed again one name at a time. What this node won is cached at the
    /// transaction's revision and queued to start at once, without waiting for the
    /// watch to bring the claim back.
    fn claim_many(&mut self, names: Vec<String>) {
        let plans: Vec<(String, Vec<Compare>, Op, Option<OwnerValue>)> = names
            .into_iter()
            .filter_map(|name| {
                let (compare, op, owner) = self.claim_plan(&name)?;
                Some((name, compare, op, owner))
            })
            .collect();
        for chunk in plans.chunks(CLAIM_BATCH) {
            if chunk.len() > 1 {
                let compare: Vec<Compare> =
                    chunk.iter().flat_map(|c| c.1.iter().cloned()).collect();
                let ops: Vec<Op> = chunk.iter().map(|c| c.2.clone()).collect();
                match self.etcd.txn(&compare, &ops, &[]) {
                    Ok(txn) if txn.succeeded => {
                        info(&format!(
                            "took over {} name(s) of a lost node ({} ... {})",
                            chunk.len(),
                            chunk[0].0,
                            chunk[chunk.len() - 1].0
                        ));
                        for (name, _, _, owner) in chunk {
                            self.claimed(name, owner.as_ref(), txn.revision);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Tried again shortly (a claim that did go in is seen then).
                        warn(&format!(
                            "cannot claim {} name(s): {e}; trying again",
                            chunk.len()
                        ));
                        let again = Instant::now() + RETRY;
                        for (name, ..) in chunk {
                            self.deferred.insert(name.clone(), again);
                        }
                        continue;
                    }
                }
            }
            for (name, compare, op, owner) in chunk {
                match self.etcd.txn(compare, std::slice::from_ref(op), &[]) {
                    Ok(txn) if txn.succeeded => {
                        if owner.is_some() {
                            info(&format!("{name}: taking it over (its node was lost)"));
                        } else {
                            info(&format!(
                                "{name}: its node was lost; temporary, so it is forgotten"
                            ));
                        }
                        self.claimed(name, owner.as_ref(), txn.revision);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn(&format!("{name}: cannot claim it: {e}; trying again"));
                        self.deferred.insert(name.clone(), Instant::now() + RETRY);
                    }
                }
            }
        }
    }

    /// A claim won at `revision`: the owner key is this node's (start it with the
    /// others of this message), or, for a temporary worker, nothing is left to do.
    fn claimed(&mut self, name: &str, owner: Option<&OwnerValue>, revision: i64) {
        let Some(owner) = owner else {
            return;
        };
        self.deferred.remove(name);
        self.owners
            .insert(name.to_string(), (owner.clone(), revision));
        if !self.to_start.iter().any(|n| n == name) {
            self.to_start.push(name.to_string());
        }
    }

    /// A drain's move this node cannot take: the name goes back to the draining node
    /// (whose copy still runs), or, if that node is gone, is left unowned for the
    /// failover rule.
    fn hand_back(&mut self, name: &str, owner_rev: i64, from: &str, kind: &str, message: &str) {
        warn(&format!(
            "{name}: cannot take it over from {from}: {message}"
        ));
        let owner_key = self.keys.owner(name);
        let Some((mut owner, _)) = self.owners.get(name).cloned() else {
            return;
        };
        let result = match self.nodes.get(from) {
            Some(node) => {
                owner.node = from.to_string();
                owner.state = OwnerState::Running;
                owner.from = None;
                owner.kind = Some(kind.to_string());
                owner.error = Some(format!("node {}: {message}", self.settings.node));
                self.etcd.txn(
                    &[Compare::ModRevision(owner_key.clone(), owner_rev)],
                    &[Op::Put {
                        key: owner_key,
                        value: encode(&owner),
                        lease: node.lease,
                    }],
                    &[],
                )
            }
            None => self.etcd.txn(
                &[Compare::ModRevision(owner_key.clone(), owner_rev)],
                &[Op::Delete(owner_key)],
                &[],
            ),
        };
        if let Err(e) = result {
            warn(&format!("{name}: cannot hand it back: {e}"));
        }
    }

    /// Draining: move the next name, unless one is on its way.
    fn drain_next(&mut self) {
        if !self.draining || self.moving.is_some() || self.lease == 0 {
            return;
        }
        let local = lock(&self.shared).local.clone();
        let me = self.settings.node.clone();
        let next = self.owners.iter().find(|(name, (owner, _))| {
            owner.node == me
                && owner.state == OwnerState::Running
                && local.contains_key(*name)
                && !self.unmovable.contains(*name)
        });
        let Some((name, (owner, rev))) = next.map(|(n, o)| (n.clone(), o.clone())) else {
            if !self.owners.values().any(|(o, _)| o.node == me) {
                info("drained: no cluster worker left on this node");
            }
            return;
        };
        let node_loads =
            super::placement::loads(self.owners.values().map(|(o, _)| o.node.as_str()));
        let candidates: Vec<Candidate<'_>> = self
            .nodes
            .values()
            .filter(|n| n.node != me)
            .map(|n| Candidate {
                node: &n.node,
                load: node_loads.get(n.node.as_str()).copied().unwrap_or(0),
                draining: n.draining,
            })
            .collect();
        let Some(target) = super::placement::least_loaded(&candidates).map(str::to_string) else {
            warn("draining: no other live node to move to; waiting for one");
            return;
        };
        let Some(target_lease) = self.nodes.get(&target).map(|n| n.lease) else {
            return;
        };
        let moved = OwnerValue {
            node: target.clone(),
            state: OwnerState::Assigned,
            pid: None,
            from: Some(me),
            kind: None,
            error: None,
            ..owner
        };
        let key = self.keys.owner(&name);
        match self.etcd.txn(
            &[Compare::ModRevision(key.clone(), rev)],
            &[Op::Put {
                key,
                value: encode(&moved),
                lease: target_lease,
            }],
            &[],
        ) {
            Ok(txn) if txn.succeeded => {
                info(&format!("draining: moving {name} to {target}"));
                self.moving = Some((name, target));
            }
            Ok(_) => {}
            Err(e) => warn(&format!("draining: cannot move {name}: {e}")),
        }
    }

    /// The owner key of the name being moved changed.
    fn move_progress(&mut self, name: &str) {
        let Some((target_node, owner)) = self
            .moving
            .as_ref()
            .map(|(_, t)| t.clone())
            .zip(self.owners.get(name).map(|(o, _)| o.clone()))
        else {
            return;
        };
        if owner.node == target_node && owner.state == OwnerState::Running {
            // The new copy runs (and is ready): the old one stops.
            lock(&self.shared).local.remove(name);
            info(&format!(
                "draining: {name} runs on {target_node} (pid {}); stopping the copy here",
                owner.pid.unwrap_or(0)
            ));
            self.stop_in_background(vec![name.to_string()], false);
            self.moving = None;
            self.drain_next();
        } else if owner.node == self.settings.node {
            // Handed back: the other node could not take it. The copy here still runs:
            // its pid goes back into the owner key (the target could not know it).
            self.unmovable.insert(name.to_string());
            self.moving = None;
            let pid = self
                .daemon
                .request(&crate::protocol::Request::Lookup {
                    name: name.to_string(),
                })
                .ok()
                .and_then(|r| r.pid);
            self.update_owner(name, OwnerState::Running, pid);
            self.drain_next();
        }
    }

    fn on_daemon_event(&mut self, event: Event) {
        let is_local = |name: &str| lock(&self.shared).local.contains_key(name);
        match event {
            Event::Started { name, pid } if is_local(&name) => {
                self.update_owner(&name, OwnerState::Running, Some(pid));
            }
            Event::Restarting { name, .. } if is_local(&name) => {
                self.update_owner(&name, OwnerState::Restarting, None);
            }
            Event::Failed { name, .. } if is_local(&name) => {
                self.update_owner(&name, OwnerState::Failed, None);
            }
            Event::Stopped { name, reason } if reason == crate::protocol::FENCED_REASON => {
                // The daemon's dead man's switch stopped it: this agent did not renew
                // it in time (it was frozen, or busy). Not an end of the worker: if
                // this node still owns it once the lease is checked, resync starts it.
                self.stopping.remove(&name);
                if lock(&self.shared).local.remove(&name).is_some() {
                    warn(&format!(
                        "{name}: stopped by the daemon's fence (this agent was late); checking the lease"
                    ));
                    self.needs_resync = true;
                }
            }
            Event::Stopped { name, reason } => {
                if self.stopping.remove(&name) {
                    return;
                }
                // The `stopped` of a copy this node replaced meanwhile (a stale copy
                // stopped by a resync, then the name claimed and started again) comes
                // after the new copy's start: the daemon running the name now says
                // the event is not about it.
                if lock(&self.shared).local.contains_key(&name) && self.daemon_has(&name) {
                    return;
                }
                let ended = lock(&self.shared).local.remove(&name).is_some();
                if ended {
                    info(&format!(
                        "{name}: ended for good ({reason}); the cluster forgets it"
                    ));
                    self.forget(&name);
                }
            }
            Event::Lagged { .. } => self.needs_resync = true,
            _ => {}
        }
    }

    /// Whether the daemon has a worker of this name right now.
    fn daemon_has(&self, name: &str) -> bool {
        self.daemon
            .request(&crate::protocol::Request::Lookup {
                name: name.to_string(),
            })
            .is_ok_and(|reply| reply.ok)
    }

    /// Delete spec and owner of a name this node owned.
    fn forget(&mut self, name: &str) {
        let Some((owner, rev)) = self.owners.get(name).cloned() else {
            return;
        };
        if owner.node != self.settings.node {
            return;
        }
        let owner_key = self.keys.owner(name);
        if let Err(e) = self.etcd.txn(
            &[Compare::ModRevision(owner_key.clone(), rev)],
            &[Op::Delete(self.keys.spec(name)), Op::Delete(owner_key)],
            &[],
        ) {
            warn(&format!("{name}: cannot forget it: {e}"));
        }
    }

    /// SIGTERM, or the daemon going away: stop this node's cluster workers (so that no
    /// second copy can start while they still run), then revoke the lease so the
    /// survivors take them over at once.
    fn leave(&mut self) {
        let (names, lease) = {
            let mut guard = lock(&self.shared);
            guard.fenced = true;
            guard.quit = true;
            let names: Vec<String> = std::mem::take(&mut guard.local).into_keys().collect();
            (names, guard.lease)
        };
        self.shared.1.notify_all();
        if !names.is_empty() {
            info(&format!(
                "leaving: stopping this node's {} cluster worker(s) first",
                names.len()
            ));
            if let Err(e) = self.daemon.stop(names, None) {
                warn(&format!("leaving: cannot stop the cluster workers: {e}"));
            }
        }
        if lease != 0 {
            match self.etcd.revoke(lease) {
                Ok(()) => info(&format!("left the fleet (lease {lease:x} revoked)")),
                Err(e) => warn(&format!(
                    "cannot revoke lease {lease:x}: {e}; it expires by itself"
                )),
            }
        }
    }
}

/// Cache `kv`'s value under `name` unless the cache holds its revision or a later one
/// (see [`Agent::cache`]); `false` then.
fn cache_newer<V: serde::de::DeserializeOwned>(
    cache: &mut BTreeMap<String, (V, i64)>,
    name: &str,
    kv: &Kv,
) -> bool {
    if cache
        .get(name)
        .is_some_and(|(_, rev)| *rev >= kv.mod_revision)
    {
        return false;
    }
    if let Some(value) = decode::<V>(&kv.value) {
        cache.insert(name.to_string(), (value, kv.mod_revision));
    }
    true
}

fn state_of(worker: &crate::protocol::WorkerInfo) -> OwnerState {
    use crate::protocol::WorkerStateName as S;
    match worker.state {
        S::Failed => OwnerState::Failed,
        _ if worker.pid.is_some() => OwnerState::Running,
        _ => OwnerState::Restarting,
    }
}

fn spawn_watch(
    etcd: Etcd,
    prefix: String,
    from: i64,
    (gen, live): (u64, Arc<AtomicU64>),
    tx: Sender<Msg>,
) {
    let lost = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("etcd-watch".to_string())
        .spawn(move || {
            let mut stream = match etcd.watch_prefix(&prefix, from) {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = tx.send(Msg::WatchLost {
                        gen,
                        why: e.to_string(),
                    });
                    return;
                }
            };
            let endpoint = stream.endpoint;
            if tx.send(Msg::WatchOpened { gen, endpoint }).is_err() {
                return;
            }
            loop {
                let next = stream.next_batch();
                // A newer watch took over: leave (dropping the stream closes it).
                if live.load(Ordering::Relaxed) != gen {
                    return;
                }
                match next {
                    Ok(Some(batch)) if batch.canceled => {
                        let _ = tx.send(Msg::WatchLost {
                            gen,
                            why: "cancelled by etcd".to_string(),
                        });
                        return;
                    }
                    Ok(Some(batch)) => {
                        if tx.send(Msg::Watch { gen, batch }).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Msg::WatchLost {
                            gen,
                            why: "etcd closed the stream".to_string(),
                        });
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::WatchLost {
                            gen,
                            why: e.to_string(),
                        });
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        let _ = lost.send(Msg::WatchLost {
            gen,
            why: format!("cannot start a thread: {e}"),
        });
    }
}
