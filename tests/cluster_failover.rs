//! Cluster mode when things break (docs/CLUSTER.md, "Node loss" and "Fencing"): a
//! node's daemon killed with SIGKILL, and etcd frozen with SIGSTOP for longer than the
//! lease. Every cluster worker is counted in /proc by its `DYNSUP_NAME=`, so "exactly
//! once" means one live process per name across the whole machine.

mod common;
use common::*;

use std::time::{Duration, Instant};

const TTL_MS: u64 = 2000;

/// Claims `name` on node `on`, from node `from`, with `template`; its pid.
#[track_caller]
fn claim(fleet: &TestFleet, from: usize, on: &str, name: &str, template: &str) -> i32 {
    let output = fleet.cli(
        from,
        &[
            "start",
            name,
            "--cluster",
            "--template",
            template,
            "--node",
            on,
        ],
    );
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "start {name}: {out}{err}");
    fleet.nodes[fleet.index_of(on)]
        .lookup(name)
        .expect("the node runs it")
}

/// Waits until every name runs exactly once, as the owner key says, and returns
/// name → (node, pid).
#[track_caller]
fn wait_each_once(fleet: &TestFleet, names: &[String]) -> Vec<(String, i32)> {
    wait_until(DEADLINE, "every name to run exactly once", || {
        let mut placed = Vec::new();
        for name in names {
            let pids = processes_named(name);
            let owner = fleet.owner(name)?;
            if pids.len() != 1 || owner.pid != Some(pids[0]) {
                return None;
            }
            placed.push((owner.node, pids[0]));
        }
        Some(placed)
    })
}

#[test]
fn a_killed_nodes_names_run_again_once_on_the_survivors_and_temporary_ones_do_not() {
    let mut fleet = TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("lost");
    let mut moving = Vec::new();
    let mut temporary = Vec::new();
    for i in 0..8 {
        let name = format!("{prefix}_p{i}");
        claim(&fleet, i % 3, "b", &name, "perm");
        moving.push(name);
        let name = format!("{prefix}_t{i}");
        claim(&fleet, i % 3, "b", &name, "trans");
        moving.push(name);
    }
    for i in 0..3 {
        let name = format!("{prefix}_x{i}");
        claim(&fleet, i % 3, "b", &name, "temp");
        temporary.push(name);
    }
    // A local worker of a survivor, to be left alone.
    let local = fleet.nodes[0].start_worker(&format!("{prefix}_local"), Some("local"), &[]);

    let killed_at = Instant::now();
    fleet.nodes[1].kill_hard();
    let placed = wait_each_once(&fleet, &moving);
    eprintln!(
        "failover of {} names: {:?} after the kill (lease {TTL_MS} ms)",
        moving.len(),
        killed_at.elapsed()
    );
    for (name, (node, pid)) in moving.iter().zip(&placed) {
        assert_ne!(node, "b", "{name}");
        assert_eq!(fleet.nodes[fleet.index_of(node)].lookup(name), Some(*pid));
    }
    // Placement spread them over both survivors.
    let on_a = placed.iter().filter(|(node, _)| node == "a").count();
    assert!(
        on_a > 0 && on_a < moving.len(),
        "all on one node: {placed:?}"
    );
    // Temporary ones are forgotten, never restarted.
    wait_until(DEADLINE, "the temporary specs to be forgotten", || {
        temporary.iter().all(|n| !fleet.has_spec(n)).then_some(())
    });
    for name in &temporary {
        assert!(processes_named(name).is_empty(), "{name} runs again");
    }
    assert_eq!(
        fleet.nodes[0].lookup(&format!("{prefix}_local")),
        Some(local)
    );
    // Still once each, a moment later (nobody else took them meanwhile).
    assert_eq!(wait_each_once(&fleet, &moving), placed);
}

#[test]
fn nodes_cut_off_from_etcd_fence_their_cluster_workers_and_run_them_once_when_it_is_back() {
    let fleet = TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("fence");
    let names: Vec<String> = (0..6).map(|i| format!("{prefix}_{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let node = &fleet.node_names[i % 3];
        claim(&fleet, i % 3, node, name, "perm");
    }
    let local_name = format!("{prefix}_local");
    let local = fleet.nodes[2].start_worker(&local_name, Some("local"), &[]);

    send_signal(fleet.etcd.pid(), Signal::SIGSTOP);
    let stopped_at = Instant::now();
    wait_until(DEADLINE, "every node to stop its cluster workers", || {
        names
            .iter()
            .all(|n| processes_named(n).is_empty())
            .then_some(())
    });
    eprintln!(
        "fenced {} names {:?} after etcd stopped (lease {TTL_MS} ms)",
        names.len(),
        stopped_at.elapsed()
    );
    for (i, daemon) in fleet.nodes.iter().enumerate() {
        for name in &names {
            assert_eq!(daemon.lookup(name), None, "node {i} still has {name}");
        }
    }
    assert_eq!(
        fleet.nodes[2].lookup(&local_name),
        Some(local),
        "a local worker is untouched"
    );
    // Frozen for longer than the lease.
    let frozen_until = stopped_at + Duration::from_millis(TTL_MS + 500);
    wait_until(DEADLINE, "the lease time to pass", || {
        (Instant::now() >= frozen_until).then_some(())
    });

    send_signal(fleet.etcd.pid(), Signal::SIGCONT);
    fleet.etcd.wait_answering();
    let placed = wait_each_once(&fleet, &names);
    assert_eq!(placed.len(), names.len());
    assert_eq!(fleet.nodes[2].lookup(&local_name), Some(local));
    // Every node is back in the fleet.
    wait_until(DEADLINE, "every node to rejoin", || {
        (fleet.live_nodes().len() == 3).then_some(())
    });
    assert_eq!(wait_each_once(&fleet, &names), placed);
}

#[test]
fn a_drained_node_hands_its_names_over_one_at_a_time_and_takes_no_new_ones() {
    let fleet = TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("drain");
    let names: Vec<String> = (0..20).map(|i| format!("{prefix}_{i:02}")).collect();
    let mut old = Vec::new();
    for (i, name) in names.iter().enumerate() {
        old.push(claim(&fleet, i % 3, "b", name, "perm"));
    }
    let output = fleet.cli(0, &["cluster", "drain", "b"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(out.trim_end().ends_with("b drained: 20 moved"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" moved to ")).count(),
        20,
        "{out}"
    );
    let placed = wait_each_once(&fleet, &names);
    for ((name, (node, pid)), old_pid) in names.iter().zip(&placed).zip(&old) {
        assert_ne!(node, "b", "{name}");
        assert_ne!(pid, old_pid, "{name}");
        assert!(
            !is_alive(*old_pid) || is_zombie(*old_pid),
            "{name}'s old copy still runs"
        );
        assert_eq!(fleet.nodes[1].lookup(name), None);
    }
    let on_a = placed.iter().filter(|(node, _)| node == "a").count();
    assert_eq!(on_a, 10, "the least-loaded node each time: {placed:?}");
    // A draining node gets no new names.
    let output = fleet.cli(
        1,
        &[
            "start",
            &format!("{prefix}_new"),
            "--cluster",
            "--template",
            "perm",
        ],
    );
    let (out, err) = out_text(&output);
    assert!(
        output.status.success() && !out.contains(" on b "),
        "{out}{err}"
    );
}

#[test]
fn a_drain_stops_each_old_copy_only_once_its_new_copy_is_ready() {
    // Workers that take 300 ms to send READY=1 and write down when they started, got
    // ready and stopped (one record for the whole fleet).
    let recorded = Recorded::new();
    let slow = recorded.template("slow", "extra_args = [\"300\"]\n");
    let fleet = TestFleet::start(3, TTL_MS, &[CLUSTER_TEMPLATES, &slow].concat());
    let prefix = unique_name("ready");
    let names: Vec<String> = (0..3).map(|i| format!("{prefix}_{i}")).collect();
    for name in &names {
        claim(&fleet, 0, "b", name, "slow");
    }
    let output = fleet.cli(0, &["cluster", "drain", "b"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    wait_each_once(&fleet, &names);
    let record = recorded.read();
    for name in &names {
        // The old copy's stop comes after the new copy's READY=1.
        assert!(
            record.nth(name, "ready", 2) < record.nth(name, "stop", 1),
            "{name}:\n{record}"
        );
    }
}

#[test]
fn a_frozen_agents_workers_are_stopped_by_its_daemon_before_anyone_else_starts_them() {
    let fleet = TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("frozen");
    let names: Vec<String> = (0..6).map(|i| format!("{prefix}_{i}")).collect();
    let mut old = Vec::new();
    for (i, name) in names.iter().enumerate() {
        old.push(claim(&fleet, i % 3, "b", name, "perm"));
    }
    let local_name = format!("{prefix}_local");
    let local = fleet.nodes[1].start_worker(&local_name, Some("local"), &[]);
    let agent = fleet.nodes[1]
        .lookup("dynsup-cluster-agent")
        .expect("node b runs its agent");

    // The agent can neither renew the lease nor fence: only the daemon's dead man's
    // switch can stop b's copies before a survivor starts its own. At every look, no
    // name has two processes.
    send_signal(agent, Signal::SIGSTOP);
    let frozen_at = Instant::now();
    let placed = wait_until(DEADLINE, "every name to run once on a survivor", || {
        let mut placed = Vec::new();
        for name in &names {
            let pids = processes_named(name);
            assert!(pids.len() <= 1, "{name} runs twice: {pids:?}");
            let owner = fleet.owner(name)?;
            if pids.len() != 1 || owner.node == "b" || owner.pid != Some(pids[0]) {
                return None;
            }
            placed.push((owner.node, pids[0]));
        }
        Some(placed)
    });
    eprintln!(
        "{} names moved {:?} after node b's agent froze (lease {TTL_MS} ms)",
        names.len(),
        frozen_at.elapsed()
    );
    for (name, old_pid) in names.iter().zip(&old) {
        assert!(!is_alive(*old_pid) || is_zombie(*old_pid), "{name}");
        assert_eq!(fleet.nodes[1].lookup(name), None, "{name} still on b");
    }
    assert_eq!(
        fleet.nodes[1].lookup(&local_name),
        Some(local),
        "a local worker is untouched"
    );
    assert_eq!(
        fleet.nodes[1].lookup("dynsup-cluster-agent"),
        Some(agent),
        "the agent itself is not fenced"
    );

    // Thawed, the agent finds its lease gone, rejoins, and starts nothing twice.
    send_signal(agent, Signal::SIGCONT);
    wait_until(DEADLINE, "node b to rejoin", || {
        (fleet.live_nodes().len() == 3).then_some(())
    });
    assert_eq!(wait_each_once(&fleet, &names), placed);
    assert_eq!(fleet.nodes[1].lookup(&local_name), Some(local));
}
