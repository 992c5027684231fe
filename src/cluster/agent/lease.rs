//! The node's lease, kept alive, and the fence: a thread of its own, so that nothing
//! the main thread waits for (an etcd call, a long local `stop`) can delay it.
//!
//! Timing with `T` = `lease_ttl_ms` (docs/CLUSTER.md, "Fencing"): a keepalive every
//! `T/6`, each waited for until the fence deadline at most; a good answer moves
//! `good_since` to the moment that keepalive was *sent*; at `good_since + T/2` without
//! one, every local cluster worker is stopped with a stop timeout of `T/6`. etcd cannot
//! expire the lease before `good_since + T`: the margin is `T/3`.
//!
//! The backstop for an agent that cannot fence (frozen, dead, restarting): after each
//! good keepalive the daemon's dead man's switch (`fence`) is armed for
//! `good_since + 2T/3`; the cluster workers were started `fenced`, so unless the agent
//! renews it in time the daemon itself stops them, SIGKILL after `T/6`: all dead by
//! `good_since + 5T/6`, before etcd can expire the lease.

use super::{daemon_link::DaemonLink, lock, Msg, SharedRef};
use crate::cluster::etcd::Etcd;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// The lease timing derived from `lease_ttl_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub keepalive_every: Duration,
    pub fence_after: Duration,
    pub fence_kill_after: Duration,
    /// When the daemon's dead man's switch fires after the last good keepalive.
    pub switch_after: Duration,
}

impl Timing {
    pub fn of(ttl: Duration) -> Timing {
        Timing {
            keepalive_every: ttl / 6,
            fence_after: ttl / 2,
            fence_kill_after: ttl / 6,
            switch_after: ttl * 2 / 3,
        }
    }
}

pub fn spawn(
    shared: SharedRef,
    etcd: Etcd,
    daemon: DaemonLink,
    timing: Timing,
    tx: Sender<Msg>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("lease".to_string())
        .spawn(move || run(&shared, &etcd, &daemon, timing, &tx))
        .map(|_| ())
}

fn run(shared: &SharedRef, etcd: &Etcd, daemon: &DaemonLink, timing: Timing, tx: &Sender<Msg>) {
    let (_, wake) = &**shared;
    let mut next_keepalive = Instant::now();
    let mut failing_since: Option<Instant> = None;
    loop {
        let (lease, fence_at) = {
            let guard = lock(shared);
            if guard.quit {
                return;
            }
            if guard.lease == 0 || guard.fenced {
                // Not joined: wait for the main thread to join (it notifies).
                let _ = wake.wait_timeout(guard, timing.keepalive_every);
                next_keepalive = Instant::now();
                continue;
            }
            (guard.lease, guard.good_since + timing.fence_after)
        };
        let now = Instant::now();
        if now >= fence_at {
            let why = format!(
                "no keepalive of lease {lease:x} was answered for {} ms",
                timing.fence_after.as_millis()
            );
            if fence(shared, daemon, timing, lease, &why) {
                let _ = tx.send(Msg::Fenced { lease });
            }
            continue;
        }
        if now < next_keepalive {
            let guard = lock(shared);
            let _ = wake.wait_timeout(guard, next_keepalive.min(fence_at) - now);
            continue;
        }
        let sent = Instant::now();
        // A slow answer is still a good one as long as it comes before the fence is
        // due: wait for it until then (a busy etcd must not fence a healthy node). With
        // several endpoints, each gets its share of that time (a member that hangs
        // must not fence a node that another member would have answered).
        let deadline = fence_at.max(sent + Duration::from_millis(10));
        let endpoint_before = etcd.current_endpoint();
        match etcd.keepalive(lease, deadline) {
            Ok(ttl) if ttl > 0 => {
                if etcd.current_endpoint() != endpoint_before {
                    // The main thread moves its watch to the member that answers.
                    let _ = tx.send(Msg::EndpointMoved);
                }
                let renewed = {
                    let mut guard = lock(shared);
                    let current = guard.lease == lease && !guard.fenced;
                    if current {
                        guard.good_since = sent;
                    }
                    current
                };
                if renewed {
                    arm_switch(daemon, timing, sent);
                }
                if let Some(since) = failing_since.take() {
                    super::info(&format!(
                        "lease {lease:x} renewed again after {} ms of failures",
                        since.elapsed().as_millis()
                    ));
                }
            }
            Ok(_) => {
                if fence(shared, daemon, timing, lease, "etcd says the lease is gone") {
                    let _ = tx.send(Msg::Fenced { lease });
                }
            }
            Err(e) => {
                if failing_since.is_none() {
                    failing_since = Some(sent);
                    super::warn(&format!("cannot renew lease {lease:x}: {e}"));
                }
            }
        }
        next_keepalive = sent + timing.keepalive_every;
    }
}

/// Stop every local cluster worker of `lease` and take no more work under it. False
/// when that lease is not the current one any more (someone fenced it already).
pub fn fence(
    shared: &SharedRef,
    daemon: &DaemonLink,
    timing: Timing,
    lease: i64,
    why: &str,
) -> bool {
    let names: Vec<String> = {
        let mut guard = lock(shared);
        if guard.lease != lease || guard.fenced {
            return false;
        }
        guard.fenced = true;
        std::mem::take(&mut guard.local).into_keys().collect()
    };
    super::warn(&format!(
        "fencing: {why}; stopping this node's {} cluster worker(s) before the lease can expire",
        names.len()
    ));
    if !names.is_empty() {
        let timeout = timing.fence_kill_after.as_millis() as u64;
        if let Err(e) = daemon.stop(names, Some(timeout.max(1))) {
            super::error(&format!("fencing: cannot stop the cluster workers: {e}"));
        }
    }
    // Nothing fenced runs now; the next join arms the switch again.
    disarm_switch(daemon, timing);
    true
}

/// Arm (renew) the daemon's dead man's switch for `good_since + 2T/3`: the daemon
/// stops this node's cluster workers then unless it is renewed first.
pub fn arm_switch(daemon: &DaemonLink, timing: Timing, good_since: Instant) {
    let within = (good_since + timing.switch_after).saturating_duration_since(Instant::now());
    if let Err(e) = daemon.fence(
        Some(within),
        timing.fence_kill_after,
        timing.keepalive_every,
    ) {
        super::warn(&format!("cannot renew the daemon's fence: {e}"));
    }
}

pub fn disarm_switch(daemon: &DaemonLink, timing: Timing) {
    if let Err(e) = daemon.fence(None, timing.fence_kill_after, timing.keepalive_every) {
        super::warn(&format!("cannot disarm the daemon's fence: {e}"));
    }
}
