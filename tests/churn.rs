//! What held under an adversarial run, kept as tests at a scale that runs in seconds:
//! thousands of start/stop cycles and of kill → restart cycles leave the daemon's fd
//! count exactly where it was, its RSS flat (a generous bound: unbounded growth, not
//! speed, is what is checked) and no zombie; and rounds of `kill -9` of a daemon with
//! many durable workers bring every one of them back each time.

mod common;
use common::*;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

/// Names worked in parallel; each round pipelines one request per name.
const NAMES: usize = 20;
/// Rounds of start/stop, and of kill → restart: NAMES × ROUNDS cycles each.
const ROUNDS: usize = 100;
/// Rounds measured before the baseline, so that buffers and maps reach their size.
const WARM_UP: usize = 10;
/// How much the RSS may grow between the baseline and the end. A leak of a few hundred
/// bytes per cycle would exceed it; allocator noise does not.
const RSS_SLACK_KIB: u64 = 1024;

fn name(i: usize) -> String {
    format!("c{i:02}")
}

/// A restart intensity no amount of churn trips.
fn config() -> String {
    [
        "\n[supervisor]\nmax_restarts = 1000000\nmax_seconds = 1\n",
        SLEEPER,
    ]
    .concat()
}

/// Sends one request per name (built by `req`) in one pipeline; every reply must be ok.
#[track_caller]
fn pipeline_ok(d: &TestDaemon, client: &mut Client, req: impl Fn(&str) -> Request) -> Vec<Reply> {
    let lines: Vec<String> = (0..NAMES).map(|i| req(&name(i)).to_line()).collect();
    let replies = client.pipeline(&lines);
    for (i, r) in replies.iter().enumerate() {
        assert!(r.ok, "{}: {r:?}{}", lines[i], d.log_tail());
    }
    replies
}

/// The daemon's fd count and RSS, once its children are settled: no zombie left.
#[track_caller]
fn footprint(d: &TestDaemon) -> (usize, u64) {
    d.wait_until(DEADLINE, "no zombie children of the daemon", || {
        zombie_children_of(d.pid()).is_empty().then_some(())
    });
    (fd_count(d.pid()), rss_kib(d.pid()))
}

#[track_caller]
fn assert_flat(d: &TestDaemon, what: &str, before: (usize, u64), mut after: (usize, u64)) {
    // A worker's output pipe closes at its EOF, which may come a moment after its reap:
    // the count must come back to where it was, not be there at one instant.
    if after.0 != before.0 {
        after.0 = try_wait_until(DEADLINE, || {
            let now = fd_count(d.pid());
            (now == before.0).then_some(now)
        })
        .unwrap_or_else(|| fd_count(d.pid()));
    }
    assert_eq!(
        after.0,
        before.0,
        "{what}: the daemon's fd count went from {} to {}{}",
        before.0,
        after.0,
        d.log_tail()
    );
    assert!(
        after.1 <= before.1 + RSS_SLACK_KIB,
        "{what}: the daemon's RSS went from {} KiB to {} KiB",
        before.1,
        after.1
    );
}

/// NAMES × ROUNDS start/stop cycles: each start answers a live pid, each stop reaps it;
/// fds and RSS flat, no zombie, nothing left registered.
#[test]
fn start_stop_cycles_leave_no_trace() {
    let d = TestDaemon::start(&config());
    let mut client = d.client();
    let mut baseline = None;
    let mut seen = HashSet::new();
    for round in 0..ROUNDS {
        if round == WARM_UP {
            baseline = Some(footprint(&d));
        }
        let started = pipeline_ok(&d, &mut client, |n| start_req(n, Some("sleeper"), &[]));
        for r in &started {
            let pid = r.pid.expect("a pid");
            assert!(seen.insert(pid) || !is_alive(pid), "pid {pid} twice");
        }
        let stopped = pipeline_ok(&d, &mut client, |n| stop_req(n, None));
        for r in &stopped {
            let report = r.stopped.as_ref().expect("a stop report");
            assert!(!report.killed, "{report:?}");
        }
    }
    assert_eq!(d.count(), 0);
    assert!(
        children_of(d.pid()).is_empty(),
        "{:?}",
        children_of(d.pid())
    );
    let end = footprint(&d);
    assert_flat(&d, "start/stop", baseline.expect("measured"), end);
}

/// NAMES × ROUNDS kill → restart cycles (SIGKILL by `kill`): every worker back with a
/// new pid each round (seen in `started` events, then checked through `lookup` and
/// /proc), every old one reaped; fds and RSS flat, no zombie.
#[test]
fn kill_restart_cycles_leave_no_trace() {
    let d = TestDaemon::start(&config());
    let mut client = d.client();
    let mut pids: Vec<i32> = pipeline_ok(&d, &mut client, |n| start_req(n, Some("sleeper"), &[]))
        .iter()
        .map(|r| r.pid.expect("a pid"))
        .collect();
    // Subscribed after the first starts: every `started` it sees is a restart.
    let mut watcher = Watcher::subscribe(&d, &[]);
    let mut baseline = None;
    for round in 0..ROUNDS {
        if round == WARM_UP {
            baseline = Some(footprint(&d));
        }
        pipeline_ok(&d, &mut client, |n| kill_req(n, None));
        let mut restarted: HashMap<String, i32> = HashMap::new();
        while restarted.len() < NAMES {
            let (t, _) =
                watcher.wait_for("a started event", |e| matches!(e, Event::Started { .. }));
            if let Event::Started { name, pid } = t.event {
                assert!(
                    restarted.insert(name, pid).is_none(),
                    "round {round}: twice"
                );
            }
        }
        let now: Vec<i32> = pipeline_ok(&d, &mut client, lookup_req)
            .iter()
            .map(|r| r.pid.expect("a pid"))
            .collect();
        let zombies = zombie_children_of(d.pid());
        for (i, (new, old)) in now.iter().zip(&pids).enumerate() {
            assert_eq!(Some(new), restarted.get(&name(i)), "round {round}");
            assert!(is_alive(*new), "round {round}: {} has a dead pid", name(i));
            assert!(
                !is_alive(*old) && !zombies.contains(old),
                "round {round}: {old} not reaped"
            );
        }
        pids = now;
    }
    assert_eq!(d.count(), NAMES);
    assert_eq!(children_of(d.pid()).len(), NAMES);
    for w in d.list() {
        assert_eq!(w.restarts as usize, ROUNDS, "{w:?}");
    }
    let end = footprint(&d);
    assert_flat(&d, "kill/restart", baseline.expect("measured"), end);
}

/// Durable workers in the daemon's state file.
const DURABLE: usize = 200;
/// Rounds of `kill -9` of the daemon and a new daemon on the same state file.
const KILL_ROUNDS: usize = 5;

fn durable_config(state: &Path) -> String {
    format!(
        "\n[supervisor]\nmax_restarts = 1000\nmax_seconds = 5\nstate_file = {}\n",
        toml_str(state.to_str().unwrap())
    ) + SLEEPER
}

/// DURABLE dynamic workers, then KILL_ROUNDS rounds of `kill -9` of the daemon: the old
/// workers die with it, and a new daemon on the same state file brings every one of
/// them back, as its own children, each round.
#[test]
fn every_durable_worker_comes_back_after_each_kill_9() {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let config = durable_config(&state);
    let mut d = Launch::new(&config).in_dir(dir.clone()).start();
    let names: Vec<String> = (0..DURABLE).map(|i| format!("d{i:03}")).collect();
    let starts: Vec<String> = names
        .iter()
        .map(|n| start_req(n, Some("sleeper"), &[]).to_line())
        .collect();
    for (n, r) in names.iter().zip(d.client().pipeline(&starts)) {
        assert!(r.ok, "start {n}: {r:?}{}", d.log_tail());
    }
    let lookups: Vec<String> = names.iter().map(|n| lookup_req(n).to_line()).collect();

    for round in 0..KILL_ROUNDS {
        let old: Vec<Stat> = children_of(d.pid());
        assert_eq!(old.len(), DURABLE, "round {round}");
        d.kill_hard();
        wait_until(DEADLINE, "the old workers to die with the daemon", || {
            old.iter().all(is_gone).then_some(())
        });

        d = d.start_another(&config);
        // The socket is served while the file is restored (a batch per loop turn):
        // wait until every name is back.
        d.wait_until(DEADLINE, "every durable worker to be restored", || {
            (d.count() == DURABLE).then_some(())
        });
        let replies = d.client().pipeline(&lookups);
        let mut back = HashSet::new();
        for (n, r) in names.iter().zip(&replies) {
            let pid = r.pid.unwrap_or_else(|| {
                panic!(
                    "round {round}: {n} did not come back: {r:?}{}",
                    d.log_tail()
                )
            });
            let s = stat(pid).unwrap_or_else(|| panic!("round {round}: {n}: no pid {pid}"));
            assert_eq!(s.ppid, d.pid(), "round {round}: {n}");
            assert!(back.insert(pid), "round {round}: pid {pid} twice");
        }
        assert_eq!(back.len(), DURABLE, "round {round}");
        assert_eq!(d.count(), DURABLE, "round {round}");
    }
}

/// Bursts of pipelined durable `start`s, each cut short by `kill -9` of the daemon after
/// a different number of replies: every start that was answered comes back with the
/// next daemon, and the file — snapshot and journal, torn wherever the kill fell — is
/// never one it refuses or sets aside.
#[test]
fn a_kill_9_in_a_burst_of_durable_starts_loses_no_answered_start() {
    const BURST: usize = 120;
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let config = durable_config(&state);
    let mut d = Launch::new(&config).in_dir(dir.clone()).start();
    let mut answered: Vec<String> = Vec::new();
    for round in 0..6 {
        let names: Vec<String> = (0..BURST).map(|i| format!("r{round}_{i:03}")).collect();
        let requests: Vec<Request> = names
            .iter()
            .map(|n| start_req(n, Some("sleeper"), &[]))
            .collect();
        let mut c = d.client();
        c.send_batch(&requests);
        // Kill after a different number of answers each round (the last round: at once).
        let kill_after = [5, 37, 1, 90, 64, 0][round];
        for name in names.iter().take(kill_after) {
            let reply = c.recv();
            assert!(reply.ok, "round {round}: start {name}: {reply:?}");
            answered.push(name.clone());
        }
        let old = children_of(d.pid());
        d.kill_hard();
        wait_until(DEADLINE, "the old workers to die with the daemon", || {
            old.iter().all(is_gone).then_some(())
        });

        d = d.start_another(&config);
        d.wait_until(DEADLINE, "every answered start to be restored", || {
            answered
                .iter()
                .all(|name| d.lookup(name).is_some())
                .then_some(())
        });
        let log = d.log();
        for refused in ["corrupt", "damaged", "moved it to", "could not restore"] {
            assert!(
                lines_with(&log, refused).is_empty(),
                "round {round}: the new daemon says {refused:?}:\n{}",
                d.log_tail()
            );
        }
    }
}
