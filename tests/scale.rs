//! Many workers, many simultaneous deaths: every name comes back with a
//! live pid, no zombie is left, and the daemon's open fd count returns to its steady
//! value.

mod common;
use common::*;
use std::collections::HashMap;

const WORKERS: usize = 200;
const KILLED: usize = 50;

/// The sample worker, with room for a restart of every fourth of 200 workers at once.
fn config() -> String {
    [
        "\n[supervisor]\nmax_restarts = 1000\nmax_seconds = 5\n",
        SAMPLE_WORKER,
    ]
    .concat()
}

fn name(i: usize) -> String {
    format!("w{i:03}")
}

/// Looks up every name on one connection; `None` entries are unregistered names.
fn lookup_all(client: &mut Client) -> Vec<Option<i32>> {
    let lines: Vec<String> = (0..WORKERS)
        .map(|i| lookup_req(&name(i)).to_line())
        .collect();
    client
        .pipeline(&lines)
        .into_iter()
        .map(|r| if r.ok { r.pid } else { None })
        .collect()
}

#[test]
fn two_hundred_workers_fifty_killed_at_once() {
    let d = TestDaemon::start(&config());
    let mut client = d.client();

    // Start them all, pipelined on one connection.
    let lines: Vec<String> = (0..WORKERS)
        .map(|i| start_req(&name(i), None, &[]).to_line())
        .collect();
    let replies = client.pipeline(&lines);
    let pids: Vec<i32> = replies
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert!(r.ok, "start {}: {r:?}{}", name(i), d.log_tail());
            r.pid.unwrap()
        })
        .collect();
    assert_eq!(d.count(), WORKERS);
    let children = children_of(d.pid());
    assert_eq!(
        children.len(),
        WORKERS,
        "the daemon has {} children",
        children.len()
    );
    assert!(children.iter().all(|c| c.state != 'Z'));

    // The steady state, measured on this same connection after a round trip.
    assert_eq!(
        lookup_all(&mut client).into_iter().flatten().count(),
        WORKERS
    );
    let fds_before = fd_count(d.pid());

    // Kill every fourth worker at once, from outside.
    let victims: Vec<usize> = (0..WORKERS).step_by(WORKERS / KILLED).collect();
    assert_eq!(victims.len(), KILLED);
    for &i in &victims {
        send_signal(pids[i], Signal::SIGKILL);
    }

    let now = d.wait_until(DEADLINE, "every killed worker to be restarted", || {
        let now = lookup_all(&mut client);
        victims
            .iter()
            .all(|&i| matches!(now[i], Some(p) if p != pids[i] && is_alive(p)))
            .then_some(now)
    });
    let mut seen = HashMap::new();
    for (i, pid) in now.iter().enumerate() {
        let pid = pid.unwrap_or_else(|| panic!("{} is not registered{}", name(i), d.log_tail()));
        if !victims.contains(&i) {
            assert_eq!(pid, pids[i], "{} was restarted but not killed", name(i));
        }
        assert!(is_alive(pid), "{} has a dead pid {pid}", name(i));
        assert_eq!(stat(pid).unwrap().ppid, d.pid());
        if let Some(other) = seen.insert(pid, i) {
            panic!("{} and {} share pid {pid}", name(other), name(i));
        }
    }
    for &i in &victims {
        d.assert_reaped(pids[i]);
    }
    assert_eq!(d.count(), WORKERS);

    d.wait_until(DEADLINE, "no zombie children of the daemon", || {
        zombie_children_of(d.pid()).is_empty().then_some(())
    });
    let live = children_of(d.pid()).len();
    assert_eq!(live, WORKERS, "the daemon has {live} children");
    let mut fds_now = 0;
    let fds_ok = try_wait_until(DEADLINE, || {
        fds_now = fd_count(d.pid());
        (fds_now <= fds_before).then_some(())
    });
    assert!(
        fds_ok.is_some(),
        "the daemon has {fds_now} fds open; {fds_before} before the kill{}",
        d.log_tail()
    );
    // Nothing leaked into the restarted workers either: they have the same number of
    // fds as the ones that were never killed (compared once both have started up).
    d.wait_started(&name(1), 1);
    d.wait_started(&name(victims[0]), 2);
    let survivor_fds = fd_count(now[1].unwrap());
    let restarted_fds = fd_count(now[victims[0]].unwrap());
    assert_eq!(
        survivor_fds, restarted_fds,
        "fds of a survivor vs a restarted worker"
    );
}
