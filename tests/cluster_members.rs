//! Cluster mode on an etcd of three members, one of which hangs (SIGSTOP: a host that
//! froze, or a network that drops its packets). The fleet must not notice beyond a
//! warning: no node fences (its keepalives go to another member in time), and a node
//! lost meanwhile is still noticed (its watch moves off the frozen member) and its
//! names run again, once each, on a survivor.

mod common;
use common::*;

use std::time::Instant;

const TTL_MS: u64 = 3000;

#[test]
fn a_frozen_etcd_member_fences_nobody_and_hides_no_lost_node() {
    let etcd = TestEtcd::start_members(3);
    // The nodes talk to a follower first; that follower will hang. (A leader that
    // hangs is another failure: the cluster has no leader until it elects one, and a
    // node may fence meanwhile; docs/CLUSTER.md.)
    let leader = etcd.leader().expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let urls = etcd.urls();
    let mut order = vec![urls[follower].clone()];
    order.extend((0..3).filter(|&i| i != follower).map(|i| urls[i].clone()));
    let mut fleet = TestFleet::start_on(etcd, 2, TTL_MS, |_, node, namespace| {
        [
            CLUSTER_TEMPLATES,
            &cluster_section_at(&order, node, namespace, TTL_MS),
        ]
        .concat()
    });
    let prefix = unique_name("member");
    let mut kept = Vec::new();
    let mut moving = Vec::new();
    for i in 0..6 {
        let name = format!("{prefix}_a{i}");
        let (node, pid) = start_cluster_on(&fleet, &name, "a");
        assert_eq!(node, "a");
        kept.push((name, pid));
        let name = format!("{prefix}_b{i}");
        start_cluster_on(&fleet, &name, "b");
        moving.push(name);
    }

    fleet.etcd.freeze(follower);
    let killed_at = Instant::now();
    fleet.nodes[1].kill_hard();
    // b's names come back on a, once each, as their owner keys say.
    let placed = wait_until(DEADLINE, "b's names to run once each on a", || {
        each_once_on(&fleet, &moving, "a")
    });
    eprintln!(
        "failover with a frozen member: {:?} after the kill",
        killed_at.elapsed()
    );
    for (name, pid) in moving.iter().zip(&placed) {
        assert_eq!(fleet.nodes[0].lookup(name), Some(*pid), "{name}");
    }
    // a never fenced: its own names kept their processes all along.
    for (name, pid) in &kept {
        assert_eq!(processes_named(name), vec![*pid], "{name} was stopped");
        assert_eq!(fleet.nodes[0].lookup(name), Some(*pid), "{name}");
    }
    // The member comes back: nothing changes, nothing runs twice.
    fleet.etcd.thaw(follower);
    fleet.restart_node(1);
    wait_until(DEADLINE, "b to join again", || {
        fleet.live_nodes().contains_key("b").then_some(())
    });
    for (name, pid) in kept.iter().chain(
        moving
            .iter()
            .zip(placed.iter().copied())
            .map(|(n, p)| (n.clone(), p))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert_eq!(processes_named(name), vec![*pid], "{name}");
    }
}

#[test]
fn a_frozen_etcd_leader_never_makes_a_name_run_twice() {
    let etcd = TestEtcd::start_members(3);
    let urls = etcd.urls();
    let fleet = TestFleet::start_on(etcd, 3, TTL_MS, |_, node, namespace| {
        [
            CLUSTER_TEMPLATES,
            &cluster_section_at(&urls, node, namespace, TTL_MS),
        ]
        .concat()
    });
    let prefix = unique_name("leader");
    let names: Vec<String> = (0..12).map(|i| format!("{prefix}_{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        start_cluster_on(&fleet, name, ["a", "b", "c"][i % 3]);
    }
    let leader = fleet.etcd.leader().expect("a leader");

    // The leader hangs for good. Until the others have elected a new one nothing can
    // be renewed or claimed; a node may fence meanwhile (its keepalives go
    // unanswered for T/2) and its names then run again elsewhere. At every look, no
    // name has two processes.
    fleet.etcd.freeze(leader);
    let each_once = || {
        let mut placed = Vec::new();
        for name in &names {
            let pids = processes_named(name);
            assert!(pids.len() <= 1, "{name} runs twice: {pids:?}");
            let owner = fleet.owner(name)?;
            if pids.len() != 1 || owner.pid != Some(pids[0]) {
                return None;
            }
            placed.push(pids[0]);
        }
        Some(placed)
    };
    wait_until(DEADLINE, "a new leader, 3 nodes, every name once", || {
        fleet.etcd.leader().filter(|&l| l != leader)?;
        (fleet.live_nodes().len() == 3).then_some(())?;
        each_once()
    });
    // Every node's agent works again: each takes a new name where it is asked to.
    for node in ["a", "b", "c"] {
        let name = format!("{prefix}_after_{node}");
        start_cluster_on(&fleet, &name, node);
        assert!(processes_named(&name).len() == 1, "{name}");
    }
    wait_until(DEADLINE, "every name once", each_once);
}

/// `start NAME --cluster --template perm --node NODE` from node a; (node, pid).
#[track_caller]
fn start_cluster_on(fleet: &TestFleet, name: &str, node: &str) -> (String, i32) {
    let output = fleet.cli(
        0,
        &[
            "start",
            name,
            "--cluster",
            "--template",
            "perm",
            "--node",
            node,
        ],
    );
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "start {name}: {out}{err}");
    let pid = fleet.nodes[fleet.index_of(node)]
        .lookup(name)
        .expect("the node runs it");
    (node.to_string(), pid)
}
