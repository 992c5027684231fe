//! Cluster mode at its edges (docs/CLUSTER.md, "Status"): several etcd endpoints of
//! which the first is dead; a drain whose target refuses a name; a drain whose target
//! is lost while the move is in progress, or whose new copy never gets ready; a node
//! whose `state_file` restores its cluster workers when its daemon comes back, before
//! and after its lease expired (also a lone node, whose names nobody took); a drained
//! node undrained, taking the names nobody could hold meanwhile.
//! A real etcd on loopback, three real daemons `a`, `b`, `c`; every cluster worker is
//! counted in /proc by its `DYNSUP_NAME=`, so "exactly once" means one live process per
//! name on the whole machine.

mod common;
use common::*;

use dynsup::cluster::{OwnerState, AGENT_NAME};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TTL_MS: u64 = 2000;

/// `start NAME --cluster --template T --node ON` from node `from`: the pid.
#[track_caller]
fn claim(fleet: &TestFleet, from: usize, on: &str, name: &str, template: &str) -> i32 {
    let (node, pid) = start_cluster(fleet, from, name, &["--template", template, "--node", on]);
    assert_eq!(node, on);
    pid
}

/// `list --cluster --json` from node `from`: name → (node, pid).
fn list_cluster(fleet: &TestFleet, from: usize) -> BTreeMap<String, (String, Option<i32>)> {
    let output = fleet.cli(from, &["--json", "list", "--cluster"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "list --cluster: {out}{err}");
    let reply: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    reply["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().expect("name").to_string(),
                (
                    w["node"].as_str().unwrap_or("-").to_string(),
                    w["pid"].as_i64().map(|p| p as i32),
                ),
            )
        })
        .collect()
}

/// The live copies of cluster worker `name`: its processes but those in `local` (local
/// workers of the same name, which carry the same `DYNSUP_NAME=`).
fn cluster_copies(name: &str, local: &[i32]) -> Vec<i32> {
    processes_named(name)
        .into_iter()
        .filter(|pid| !local.contains(pid))
        .collect()
}

/// Where `name` runs, if it runs exactly once (local workers of the same name aside),
/// that copy is the one its owner key names, the owner is `running`, and the owner's
/// node's daemon has it under that pid.
fn placed_once(fleet: &TestFleet, name: &str, local: &[i32]) -> Option<(String, i32)> {
    let copies = cluster_copies(name, local);
    let owner = fleet.owner(name)?;
    if copies.len() != 1 || owner.pid != Some(copies[0]) || owner.state != OwnerState::Running {
        return None;
    }
    let index = fleet.node_names.iter().position(|n| *n == owner.node)?;
    let daemon = &fleet.nodes[index];
    (is_alive(daemon.pid()) && daemon.lookup(name) == Some(copies[0]))
        .then(|| (owner.node, copies[0]))
}

/// What the fleet says about `name`, for a failure's message.
fn describe(fleet: &TestFleet, name: &str) -> String {
    format!(
        "{name}: processes {:?}, owner {:?}, spec {}, on daemons {:?}",
        processes_named(name),
        fleet.owner(name),
        fleet.has_spec(name),
        nodes_running(fleet, name)
    )
}

/// Waits until `name` runs exactly once (see [`placed_once`]) and `check` accepts
/// where; panics with what the fleet says about it after [`DEADLINE`].
#[track_caller]
fn wait_once_where(
    fleet: &TestFleet,
    name: &str,
    local: &[i32],
    what: &str,
    mut check: impl FnMut(&(String, i32)) -> bool,
) -> (String, i32) {
    try_wait_until(DEADLINE, || {
        placed_once(fleet, name, local).filter(|placed| check(placed))
    })
    .unwrap_or_else(|| panic!("timed out waiting for {what}: {}", describe(fleet, name)))
}

/// Waits until every name runs exactly once (see [`placed_once`]); name → (node, pid).
#[track_caller]
fn wait_each_once(fleet: &TestFleet, names: &[String]) -> BTreeMap<String, (String, i32)> {
    names
        .iter()
        .map(|name| {
            let placed = wait_once_where(fleet, name, &[], "it to run exactly once", |_| true);
            (name.clone(), placed)
        })
        .collect()
}

/// The nodes whose daemon runs `name` (as a dynamic worker, cluster or not); a killed
/// daemon runs nothing.
fn nodes_running(fleet: &TestFleet, name: &str) -> Vec<String> {
    fleet
        .nodes
        .iter()
        .zip(&fleet.node_names)
        .filter(|(daemon, _)| is_alive(daemon.pid()) && daemon.lookup(name).is_some())
        .map(|(_, node)| node.clone())
        .collect()
}

#[test]
fn a_dead_first_endpoint_is_skipped_by_the_agents_and_the_cli() {
    let dead = DeadEndpoint::new();
    // a and b list the dead endpoint first; c lists it last.
    let fleet = TestFleet::start_with(3, TTL_MS, |etcd, node, namespace| {
        let endpoints = if node == "c" {
            [etcd.url.clone(), dead.url.clone()]
        } else {
            [dead.url.clone(), etcd.url.clone()]
        };
        [
            CLUSTER_TEMPLATES,
            &cluster_section_at(&endpoints, node, namespace, TTL_MS),
        ]
        .concat()
    });
    let config = std::fs::read_to_string(fleet.nodes[0].config_path()).expect("a's config");
    assert!(
        config.contains(&format!("endpoints = [\"{}\", ", dead.url)),
        "{config}"
    );
    let prefix = unique_name("ep");
    // Claimed from every node (so through every CLI), placed on every node (so started
    // by every agent after its watch saw the claim).
    let mut placed = BTreeMap::new();
    for (i, on) in ["a", "b", "c"].into_iter().enumerate() {
        for from in 0..3 {
            let name = format!("{prefix}_{on}{from}");
            let pid = claim(&fleet, from, on, &name, "perm");
            assert_eq!(fleet.nodes[i].lookup(&name), Some(pid));
            placed.insert(name, (on.to_string(), pid));
        }
    }
    // And without --node: the least-loaded node, from a (dead endpoint first).
    let free = format!("{prefix}_free");
    let (node, pid) = start_cluster(&fleet, 0, &free, &["--template", "trans"]);
    placed.insert(free, (node, pid));
    let names: Vec<String> = placed.keys().cloned().collect();
    let once = wait_each_once(&fleet, &names);
    assert_eq!(once, placed);
    for from in 0..3 {
        for (name, where_) in &placed {
            assert_eq!(
                lookup_cluster(&fleet, from, name).as_ref(),
                Some(where_),
                "lookup --cluster {name} from node {from}"
            );
        }
        let listed = list_cluster(&fleet, from);
        let expected: BTreeMap<String, (String, Option<i32>)> = placed
            .iter()
            .map(|(name, (node, pid))| (name.clone(), (node.clone(), Some(*pid))))
            .collect();
        assert_eq!(listed, expected, "list --cluster from node {from}");
        let output = fleet.cli(from, &["count", "--cluster"]);
        assert_eq!(out_text(&output).0.trim(), placed.len().to_string());
    }
    // The agents keep their leases alive through the live endpoint: a restart on a node
    // still reaches lookup --cluster, and stop --cluster from a dead-first node works.
    let (name, (_, pid)) = placed.iter().next().expect("a name");
    send_signal(*pid, Signal::SIGKILL);
    let new_pid = fleet.nodes[0].wait_restarted(name, *pid);
    wait_until(DEADLINE, "lookup --cluster to show the new pid", || {
        (lookup_cluster(&fleet, 1, name) == Some(("a".to_string(), new_pid))).then_some(())
    });
    let output = fleet.cli(1, &["stop", name, "--cluster"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    wait_until(DEADLINE, "the stopped name to be gone", || {
        processes_named(name).is_empty().then_some(())
    });
    assert_eq!(fleet.live_nodes().len(), 3);
}

#[test]
fn a_drain_keeps_what_no_other_node_can_take_and_moves_the_rest() {
    let fleet = TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("refuse");
    let names: Vec<String> = (0..4).map(|i| format!("{prefix}_{i}")).collect();
    let old: Vec<i32> = names
        .iter()
        .enumerate()
        .map(|(i, name)| claim(&fleet, i % 3, "b", name, "perm"))
        .collect();
    // a and c each run a local worker named like the first one: whichever of them the
    // drain picks refuses it (`already_started` from its daemon).
    let kept = &names[0];
    let locals = [
        fleet.nodes[0].start_worker(kept, Some("local"), &[]),
        fleet.nodes[2].start_worker(kept, Some("local"), &[]),
    ];

    let output = fleet.cli(0, &["cluster", "drain", "b"]);
    let (out, err) = out_text(&output);
    // Not drained: b still holds the name nobody could take, and the CLI says so at
    // once (not after its deadline).
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("node b still holds 1 name(s)") && err.contains(kept.as_str()),
        "{out}{err}"
    );
    assert!(err.contains("already"), "the refusal's reason: {err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" moved to ")).count(),
        3,
        "{out}"
    );

    // The kept name runs once, on b, still its first copy; the others moved, once each.
    wait_once_where(&fleet, kept, &locals, "the kept name on b", |placed| {
        *placed == ("b".to_string(), old[0])
    });
    assert_eq!(cluster_copies(kept, &locals), vec![old[0]]);
    let moved = wait_each_once(&fleet, &names[1..]);
    for ((name, (node, pid)), old_pid) in moved.iter().zip(&old[1..]) {
        assert_ne!(node, "b", "{name}");
        assert_ne!(pid, old_pid, "{name}");
        assert_eq!(fleet.nodes[1].lookup(name), None, "{name} still on b");
    }
    // lookup --cluster agrees with /proc, for the kept name too.
    for from in 0..3 {
        assert_eq!(
            lookup_cluster(&fleet, from, kept),
            Some(("b".to_string(), old[0]))
        );
        for (name, placed) in &moved {
            assert_eq!(lookup_cluster(&fleet, from, name).as_ref(), Some(placed));
        }
    }
    // The local workers of the same name are untouched.
    assert_eq!(fleet.nodes[0].lookup(kept), Some(locals[0]));
    assert_eq!(fleet.nodes[2].lookup(kept), Some(locals[1]));
    // Still so a moment later: nothing moves it again, nothing stops it.
    assert_eq!(
        placed_once(&fleet, kept, &locals),
        Some(("b".to_string(), old[0]))
    );
    assert_eq!(wait_each_once(&fleet, &names[1..]), moved);
}

#[test]
fn a_drain_target_without_the_template_hands_the_name_back() {
    // Template `ab_only` exists on a and b, not on c.
    let fleet = TestFleet::start_with(3, TTL_MS, |etcd, node, namespace| {
        let ab_only = if node == "c" {
            ""
        } else {
            "\n[templates.ab_only]\ncommand = [\"sleep\", \"100000\"]\nrestart = \"permanent\"\n"
        };
        [
            CLUSTER_TEMPLATES,
            ab_only,
            &cluster_section(etcd, node, namespace, TTL_MS),
        ]
        .concat()
    });
    let prefix = unique_name("notpl");
    // a holds one name, so c is the least-loaded target of b's drain.
    let on_a = format!("{prefix}_a");
    claim(&fleet, 0, "a", &on_a, "perm");
    let special = format!("{prefix}_0");
    let plain = format!("{prefix}_1");
    let special_pid = claim(&fleet, 1, "b", &special, "ab_only");
    let plain_pid = claim(&fleet, 1, "b", &plain, "perm");

    let output = fleet.cli(2, &["cluster", "drain", "b"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(out.contains(&format!("{special} stays on b")), "{out}{err}");
    assert!(err.contains("ab_only"), "the refusal's reason: {err}");
    assert!(out.contains(&format!("{plain} moved to c")), "{out}{err}");

    let kept = wait_once_where(&fleet, &special, &[], "the refused name on b", |p| {
        p.0 == "b"
    });
    assert_eq!(kept.1, special_pid, "b keeps its first copy");
    let moved = wait_once_where(&fleet, &plain, &[], "the other name on c", |p| p.0 == "c");
    assert_ne!(moved.1, plain_pid);
    for from in 0..3 {
        assert_eq!(lookup_cluster(&fleet, from, &special), Some(kept.clone()));
        assert_eq!(lookup_cluster(&fleet, from, &plain), Some(moved.clone()));
    }
    assert_eq!(nodes_running(&fleet, &special), vec!["b".to_string()]);
    // Running again on b, its owner key no longer carries the refusal's reason.
    wait_until(DEADLINE, "the refusal's reason to be cleared", || {
        fleet
            .owner(&special)
            .filter(|o| o.state == OwnerState::Running && o.pid == Some(special_pid))
            .filter(|o| o.kind.is_none() && o.error.is_none())
            .map(|_| ())
    });
}

#[test]
fn a_drain_target_lost_mid_move_leaves_the_name_running_once() {
    // Recording workers that get ready only once their gate is open: the drain's new
    // copy is started and waits, so the move is in progress for as long as the test
    // wants.
    let recorded = Recorded::new();
    let gated = recorded.template("gated", "extra_args = [\"0\", \"gate\"]\n");
    let mut fleet = TestFleet::start(3, TTL_MS, &[CLUSTER_TEMPLATES, &gated].concat());
    let name = unique_name("midmove");
    recorded.open_gate(&name);
    let old = claim(&fleet, 0, "b", &name, "gated");
    wait_until(DEADLINE, "the first copy to be ready", || {
        (recorded.read().count(&name, "ready") == 1).then_some(())
    });
    recorded.close_gate(&name);

    let drain = {
        let a = &fleet.nodes[0];
        Captured::spawn(
            cli_command(a.socket())
                .arg("--config")
                .arg(a.config_path())
                .args(["cluster", "drain", "b"]),
        )
    };
    // The move is under way: the owner key names the target, and the target's copy was
    // started and waits at its gate.
    let target = wait_until(DEADLINE, "the move to start", || {
        let owner = fleet.owner(&name)?;
        (owner.node != "b" && owner.from.as_deref() == Some("b")).then_some(owner.node)
    });
    let t = fleet.index_of(&target);
    let new_copy = wait_until(DEADLINE, "the target's copy to start", || {
        fleet.nodes[t].lookup(&name)
    });
    assert_eq!(recorded.read().count(&name, "ready"), 1, "not ready yet");
    assert_eq!(processes_named(&name).len(), 2);

    // The target is lost: its agent frozen first, so that it cannot report anything
    // about the move on its way out; then its daemon killed, which takes the agent
    // (PR_SET_PDEATHSIG's SIGKILL reaches a stopped process) and the new copy along.
    let agent = fleet.nodes[t]
        .lookup(AGENT_NAME)
        .expect("the target's agent");
    send_signal(agent, Signal::SIGSTOP);
    fleet.nodes[t].kill_hard();
    wait_until(DEADLINE, "the target's agent and copy to die", || {
        [agent, new_copy]
            .iter()
            .all(|pid| !is_alive(*pid) || is_zombie(*pid))
            .then_some(())
    });
    // From here on there is never more than one copy, and after the target's lease
    // expired there is exactly one, running where its owner key says.
    let settled = wait_until(DEADLINE, "the name to run exactly once again", || {
        let copies = processes_named(&name);
        assert!(copies.len() <= 1, "two copies: {}", describe(&fleet, &name));
        if fleet.live_nodes().contains_key(&target) {
            return None;
        }
        placed_once(&fleet, &name, &[])
    });
    assert_ne!(settled.0, target);
    if settled.0 == "b" {
        assert_eq!(settled.1, old, "b keeps its first copy");
    }
    assert!(fleet.has_spec(&name), "the name is not forgotten");
    // The drain ends and says where the name is.
    let output = drain.finish(DEADLINE);
    let (out, err) = out_text(&output);
    if settled.0 == "b" {
        assert_eq!(output.status.code(), Some(1), "{out}{err}");
        assert!(out.contains(&format!("{name} stays on b")), "{out}{err}");
        assert!(err.contains("still holds 1 name(s)"), "{out}{err}");
    } else {
        assert!(output.status.success(), "{out}{err}");
        assert!(
            out.contains(&format!("{name} moved to {}", settled.0)),
            "{out}"
        );
    }
    // Still once, a moment later.
    for _ in 0..3 {
        assert_eq!(placed_once(&fleet, &name, &[]), Some(settled.clone()));
        assert_eq!(
            lookup_cluster(&fleet, 0, &name),
            Some(settled.clone()),
            "lookup --cluster"
        );
    }
}

#[test]
fn a_drain_keeps_the_old_copy_when_the_new_one_never_gets_ready() {
    // Gated recording workers that must be ready within 1.5 s: the drain's new copy,
    // whose gate stays closed, misses it (the target's daemon kills it).
    let recorded = Recorded::new();
    let gated = recorded.template(
        "gated",
        "extra_args = [\"0\", \"gate\"]\nready_timeout_ms = 1500\n",
    );
    let fleet = TestFleet::start(3, TTL_MS, &[CLUSTER_TEMPLATES, &gated].concat());
    let name = unique_name("neverready");
    recorded.open_gate(&name);
    let old = claim(&fleet, 0, "b", &name, "gated");
    wait_until(DEADLINE, "the first copy to be ready", || {
        (recorded.read().count(&name, "ready") == 1).then_some(())
    });
    recorded.close_gate(&name);

    let output = fleet.cli(0, &["cluster", "drain", "b"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(out.contains(&format!("{name} stays on b")), "{out}{err}");
    // The old copy (same pid) runs once, as the owner key says.
    let kept = wait_once_where(&fleet, &name, &[], "the name on b", |p| p.0 == "b");
    assert_eq!(kept.1, old);
    assert_eq!(nodes_running(&fleet, &name), vec!["b".to_string()]);
    assert_eq!(lookup_cluster(&fleet, 2, &name), Some(kept));
}

/// A fleet whose nodes each have a `state_file` of their own (in `state_dir`).
fn durable_fleet(state_dir: &TestDir) -> TestFleet {
    durable_fleet_of(3, state_dir)
}

fn durable_fleet_of(n: usize, state_dir: &TestDir) -> TestFleet {
    TestFleet::start_with(n, TTL_MS, |etcd, node, namespace| {
        let state = state_dir.join(&format!("state-{node}.json"));
        [
            &format!("state_file = {}\n", toml_str(&state.to_string_lossy())),
            CLUSTER_TEMPLATES,
            &cluster_section(etcd, node, namespace, TTL_MS),
        ]
        .concat()
    })
}

/// Claims `n` names on b (permanent and transient in turn); their names and pids.
fn names_on_b(fleet: &TestFleet, prefix: &str, n: usize) -> Vec<(String, i32)> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}_{i}");
            let template = if i % 2 == 0 { "perm" } else { "trans" };
            let pid = claim(fleet, i % 3, "b", &name, template);
            (name, pid)
        })
        .collect()
}

#[test]
fn a_node_restored_from_its_state_file_before_its_lease_expired_runs_each_name_once() {
    let state_dir = TestDir::new();
    let mut fleet = durable_fleet(&state_dir);
    let prefix = unique_name("quick");
    let held = names_on_b(&fleet, &prefix, 6);
    let names: Vec<String> = held.iter().map(|(n, _)| n.clone()).collect();
    let local = fleet.nodes[1].start_worker(&format!("{prefix}_local"), Some("local"), &[]);
    let old_lease = fleet.live_nodes()["b"].lease;

    // b's daemon dies and comes back at once, with the same config and state file.
    fleet.nodes[1].kill_hard();
    fleet.restart_node(1);
    let b = &fleet.nodes[1];
    // Its state file brings back its local worker, not the cluster ones (started
    // `fenced`): they may run only under a lease, and the old one may be about to
    // expire; the agent starts them again once it has joined, if b still owns them.
    b.wait_log("cluster worker(s) in");
    let restored_local = b
        .lookup(&format!("{prefix}_local"))
        .expect("the local worker is restored");
    assert_ne!(restored_local, local);
    for (name, old) in &held {
        assert!(!is_alive(*old) || is_zombie(*old), "{name}'s old copy");
    }

    // Once the old lease expired, b joins again with a new one, and every name runs
    // exactly once in the fleet, wherever the owner key says.
    wait_until(DEADLINE, "b to rejoin with a new lease", || {
        fleet
            .live_nodes()
            .get("b")
            .is_some_and(|v| v.lease != old_lease)
            .then_some(())
    });
    let placed = wait_each_once(&fleet, &names);
    for (name, (node, pid)) in &placed {
        assert_eq!(nodes_running(&fleet, name), vec![node.clone()], "{name}");
        for from in 0..3 {
            assert_eq!(
                lookup_cluster(&fleet, from, name),
                Some((node.clone(), *pid)),
                "lookup --cluster {name} from node {from}"
            );
        }
    }
    // The local worker is b's alone, and left alone.
    assert_eq!(
        fleet.nodes[1].lookup(&format!("{prefix}_local")),
        Some(restored_local)
    );
    assert_eq!(wait_each_once(&fleet, &names), placed);
}

#[test]
fn a_node_restored_from_its_state_file_after_its_names_moved_leaves_them_to_the_survivors() {
    let state_dir = TestDir::new();
    let mut fleet = durable_fleet(&state_dir);
    let prefix = unique_name("late");
    let held = names_on_b(&fleet, &prefix, 6);
    let names: Vec<String> = held.iter().map(|(n, _)| n.clone()).collect();
    let local = fleet.nodes[1].start_worker(&format!("{prefix}_local"), Some("local"), &[]);

    // b's daemon dies; its lease expires and the survivors take its names over.
    let killed_at = Instant::now();
    fleet.nodes[1].kill_hard();
    let moved = wait_each_once(&fleet, &names);
    eprintln!(
        "{} names moved {:?} after the kill",
        names.len(),
        killed_at.elapsed()
    );
    for (name, (node, _)) in &moved {
        assert_ne!(node, "b", "{name}");
    }

    // b comes back with the same state file: it restores its local worker but not its
    // copies of the cluster names (started `fenced`), which are no longer b's; the
    // survivors' copies stay.
    fleet.restart_node(1);
    let b = &fleet.nodes[1];
    b.wait_log("cluster worker(s) in");
    let restored_local = b
        .lookup(&format!("{prefix}_local"))
        .expect("the local worker is restored");
    assert_ne!(restored_local, local);
    for name in &names {
        assert_eq!(b.lookup(name), None, "{name} restored on b");
    }
    wait_until(DEADLINE, "b to rejoin", || {
        fleet.live_nodes().contains_key("b").then_some(())
    });
    assert_eq!(wait_each_once(&fleet, &names), moved, "nothing moved again");
    for (name, (node, pid)) in &moved {
        assert_eq!(nodes_running(&fleet, name), vec![node.clone()], "{name}");
        assert_eq!(lookup_cluster(&fleet, 1, name), Some((node.clone(), *pid)));
    }
    assert_eq!(
        fleet.nodes[1].lookup(&format!("{prefix}_local")),
        Some(restored_local),
        "the local worker keeps running"
    );
}

#[test]
fn a_lone_node_restored_from_its_state_file_after_its_lease_expired_keeps_every_name() {
    // One node: nobody takes its names over while it is down, so when it comes back
    // its agent finds them unowned and claims them again (its state file does not
    // restore them: they were started `fenced`), and nothing forgets them.
    let state_dir = TestDir::new();
    let mut fleet = durable_fleet_of(1, &state_dir);
    let prefix = unique_name("lone");
    let names: Vec<String> = (0..6).map(|i| format!("{prefix}_{i}")).collect();
    for name in &names {
        claim(&fleet, 0, "a", name, "perm");
    }
    fleet.nodes[0].kill_hard();
    wait_until(DEADLINE, "the lease to expire", || {
        (fleet.live_nodes().is_empty() && names.iter().all(|n| fleet.owner(n).is_none()))
            .then_some(())
    });
    fleet.restart_node(0);
    let placed = wait_each_once(&fleet, &names);
    for (name, (node, _)) in &placed {
        assert_eq!(node, "a", "{name}");
        assert!(fleet.has_spec(name), "{name} was forgotten");
    }
    assert_eq!(wait_each_once(&fleet, &names), placed);
}

#[test]
fn a_join_that_etcd_committed_but_answered_too_late_is_taken_up() {
    // etcd commits the agent's node-key transaction but its answer comes after the
    // agent gave up waiting: the agent must not sit out its own lease (unable to join
    // while a CLI already assigns names to that lease), but take it up.
    let proxy = std::cell::OnceCell::new();
    let fleet = TestFleet::start_with(1, TTL_MS, |etcd, node, namespace| {
        let proxy = proxy.get_or_init(|| {
            SlowProxy::start(&etcd.url, b"/v3/kv/txn", Duration::from_millis(2500))
        });
        [
            CLUSTER_TEMPLATES,
            &cluster_section_at(std::slice::from_ref(&proxy.url), node, namespace, TTL_MS),
        ]
        .concat()
    });
    // The node key is there (the join went in); its lease is the first one granted.
    let first_lease = fleet.live_nodes()["a"].lease;
    let name = unique_name("late-answer");
    let (node, pid) = start_cluster(&fleet, 0, &name, &["--template", "perm"]);
    assert_eq!(node, "a");
    assert_eq!(processes_named(&name), vec![pid]);
    assert_eq!(
        fleet.live_nodes()["a"].lease,
        first_lease,
        "the agent joined with the lease whose answer came late"
    );
    assert_eq!(
        lookup_cluster(&fleet, 0, &name),
        Some(("a".to_string(), pid))
    );
}

#[test]
fn an_undrained_node_takes_work_again_and_the_names_nobody_could_hold() {
    let mut fleet = TestFleet::start(2, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("undrain");
    let names: Vec<String> = (0..4).map(|i| format!("{prefix}_{i}")).collect();
    for name in &names {
        claim(&fleet, 0, "a", name, "perm");
    }
    let output = fleet.cli(0, &["cluster", "drain", "a"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    wait_each_once(&fleet, &names);

    // b is lost while a, the only other node, is draining: nobody may take b's names.
    fleet.nodes[1].kill_hard();
    wait_until(DEADLINE, "b's names to be orphaned", || {
        names
            .iter()
            .all(|n| fleet.has_spec(n) && fleet.owner(n).is_none() && processes_named(n).is_empty())
            .then_some(())
    });
    assert!(fleet.live_nodes()["a"].draining);

    // Undrained, a takes them (and new names) again.
    let output = fleet.cli(0, &["cluster", "undrain", "a"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert_eq!(out.trim(), "a takes work again");
    assert!(!fleet.live_nodes()["a"].draining);
    let placed = wait_each_once(&fleet, &names);
    assert!(placed.values().all(|(node, _)| node == "a"), "{placed:?}");
    let fresh = format!("{prefix}_new");
    let (node, _) = start_cluster(&fleet, 0, &fresh, &["--template", "perm"]);
    assert_eq!(node, "a");

    // Again: nothing to do, said so. An unknown node: exit 1, named.
    let output = fleet.cli(0, &["cluster", "undrain", "a"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert_eq!(out.trim(), "a was not draining");
    let output = fleet.cli(0, &["cluster", "undrain", "zz"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("node zz is not alive"), "{err}");
}

/// A reload that changes `[cluster]` (here the node's name) restarts the agent on the
/// new settings instead of leaving it on the old ones: the old agent stops the node's
/// cluster workers and leaves, the new one joins under the new name and, being the only
/// node, takes the names again; a reload that changes nothing leaves the agent alone.
#[test]
fn a_reload_that_changes_the_cluster_section_restarts_the_agent_on_it() {
    let fleet = TestFleet::start(1, TTL_MS, CLUSTER_TEMPLATES);
    let prefix = unique_name("renamed");
    let names: Vec<String> = (0..3).map(|i| format!("{prefix}_{i}")).collect();
    for name in &names {
        claim(&fleet, 0, "a", name, "perm");
    }
    let node = &fleet.nodes[0];
    let agent = node.lookup(AGENT_NAME).expect("the agent runs");
    let reply = node.request_ok(&Request::Reload);
    let report = reply.reload.expect("a reload report");
    assert_eq!(report.unchanged, vec![AGENT_NAME.to_string()], "{report:?}");
    assert_eq!(node.lookup(AGENT_NAME), Some(agent));

    let config = std::fs::read_to_string(node.config_path()).expect("read the config");
    let renamed = config.replace("node = \"a\"", "node = \"z\"");
    assert_ne!(renamed, config, "the test config names node a");
    std::fs::write(node.config_path(), renamed).expect("write the config");
    let reply = node.request_ok(&Request::Reload);
    let report = reply.reload.expect("a reload report");
    assert_eq!(report.restarted, vec![AGENT_NAME.to_string()], "{report:?}");
    wait_until(DEADLINE, "node z alone in the fleet", || {
        (fleet.live_nodes().keys().collect::<Vec<_>>() == ["z"]).then_some(())
    });
    // Once each, owned by z, run by the daemon that was a (the test's node names do
    // not know z).
    let pids = wait_until(DEADLINE, "every name once on z", || {
        each_once_on(&fleet, &names, "z")
    });
    for (name, pid) in names.iter().zip(pids) {
        assert_eq!(node.lookup(name), Some(pid), "{name}");
    }
}
