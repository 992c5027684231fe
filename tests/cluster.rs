//! Cluster mode on one machine (docs/CLUSTER.md): a real etcd on loopback, three real
//! daemons standing in for hosts `a`, `b` and `c`, the CLI run from each of them.
//! The agent's life (join, adopt after a crash, leave with its daemon), claims
//! (`start --cluster` with and without `--node`, `already_started`, a rollback, a race
//! of three), `lookup/list/count/stop --cluster` and `cluster nodes`, each checked
//! against the daemons' own registries and /proc.

mod common;
use common::*;

use dynsup::cluster::{OwnerState, AGENT_NAME};

const TTL_MS: u64 = 2000;

fn fleet() -> TestFleet {
    TestFleet::start(3, TTL_MS, CLUSTER_TEMPLATES)
}

#[test]
fn agents_join_with_their_daemons_survive_a_crash_and_leave_with_them() {
    let mut fleet = fleet();
    let nodes = fleet.live_nodes();
    // Each daemon runs its agent as a boot child, which holds the node's lease.
    for (i, daemon) in fleet.nodes.iter().enumerate() {
        let agent = daemon
            .list_one(AGENT_NAME)
            .expect("the agent is a boot child");
        assert!(!agent.dynamic && agent.restart == "permanent", "{agent:?}");
        let node = &nodes[&fleet.node_names[i]];
        assert_eq!(node.daemon_pid as i32, daemon.pid());
    }
    let output = fleet.cli(0, &["cluster", "nodes"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    for node in ["a", "b", "c"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{node} "))),
            "{out}"
        );
    }

    // The agent of b crashes while b runs cluster workers: its daemon restarts it, and
    // the new agent adopts the lease (b never leaves the fleet; its key keeps its
    // lease) and the workers (same pids, still b's).
    let prefix = unique_name("kept");
    let held: Vec<(String, i32)> = (0..3)
        .map(|i| {
            let name = format!("{prefix}_{i}");
            let (node, pid) =
                start_cluster(&fleet, 0, &name, &["--template", "perm", "--node", "b"]);
            assert_eq!(node, "b");
            (name, pid)
        })
        .collect();
    let b = &fleet.nodes[1];
    let old_agent = b.lookup(AGENT_NAME).expect("b's agent");
    let lease = nodes["b"].lease;
    send_signal(old_agent, Signal::SIGKILL);
    b.wait_restarted(AGENT_NAME, old_agent);
    b.wait_log("adopting lease");
    assert_eq!(fleet.live_nodes()["b"].lease, lease);
    for (name, pid) in &held {
        assert_eq!(processes_named(name), vec![*pid], "{name}");
        assert_eq!(
            lookup_cluster(&fleet, 2, name),
            Some(("b".to_string(), *pid))
        );
    }
    // The new agent follows them: a restart on b shows in lookup --cluster.
    let (name, pid) = &held[0];
    send_signal(*pid, Signal::SIGKILL);
    let new_pid = b.wait_restarted(name, *pid);
    wait_until(DEADLINE, "lookup --cluster to show the new pid", || {
        (lookup_cluster(&fleet, 0, name) == Some(("b".to_string(), new_pid))).then_some(())
    });

    // c's daemon shuts down: its agent revokes its lease on the way out, so c leaves
    // at once (the log says so), not when the lease runs out.
    fleet.nodes[2].signal(Signal::SIGTERM);
    fleet.nodes[2].wait_exit(DEADLINE);
    assert!(
        fleet.nodes[2].log().contains("left the fleet"),
        "{}",
        fleet.nodes[2].log_tail()
    );
    wait_until(DEADLINE, "c to leave", || {
        (!fleet.live_nodes().contains_key("c")).then_some(())
    });
}

#[test]
fn a_name_claimed_anywhere_runs_once_where_it_was_placed() {
    let fleet = fleet();
    let name = unique_name("g");
    // Claimed from a, placed on b.
    let (node, pid) = start_cluster(&fleet, 0, &name, &["--template", "perm", "--node", "b"]);
    assert_eq!(node, "b");
    assert_eq!(
        fleet.nodes[1].lookup(&name),
        Some(pid),
        "b's registry has it"
    );
    assert_eq!(
        processes_named(&name),
        vec![pid],
        "one process, the one b runs"
    );
    assert!(environ(pid).contains(&format!("DYNSUP_NAME={name}")));
    for from in 0..3 {
        assert_eq!(
            lookup_cluster(&fleet, from, &name),
            Some(("b".to_string(), pid))
        );
    }
    let owner = fleet.owner(&name).expect("an owner key");
    assert_eq!(
        (owner.state, owner.restart.as_deref()),
        (OwnerState::Running, Some("permanent"))
    );

    // From c, the same name: already_started, with where and which pid.
    let output = fleet.cli(2, &["start", &name, "--cluster", "--template", "perm"]);
    let (_, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        err.contains(&format!("{name} is already started on node b, pid {pid}")),
        "{err}"
    );
    let output = fleet.cli(
        2,
        &["--json", "start", &name, "--cluster", "--template", "perm"],
    );
    let (out, _) = out_text(&output);
    let reply: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(reply["error"]["kind"], "already_started");
    assert_eq!(reply["error"]["node"], "b");
    assert_eq!(reply["error"]["pid"], pid);

    // A restart on b keeps lookup --cluster current.
    send_signal(pid, Signal::SIGKILL);
    let new_pid = fleet.nodes[1].wait_restarted(&name, pid);
    wait_until(DEADLINE, "lookup --cluster to show the new pid", || {
        (lookup_cluster(&fleet, 2, &name) == Some(("b".to_string(), new_pid))).then_some(())
    });

    // stop --cluster from a stops it on b and forgets it.
    let output = fleet.cli(0, &["stop", &name, "--cluster"]);
    let (out, err) = out_text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert_eq!(out.trim(), format!("{name} stopped (on b)"));
    assert_eq!(fleet.nodes[1].lookup(&name), None);
    wait_until(DEADLINE, "the process to be gone", || {
        processes_named(&name).is_empty().then_some(())
    });
    assert!(!fleet.has_spec(&name) && fleet.owner(&name).is_none());
    let output = fleet.cli(1, &["lookup", &name, "--cluster"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(out_text(&output)
        .1
        .contains("is not registered in the cluster"));
}

#[test]
fn a_node_without_the_template_refuses_and_the_claim_is_rolled_back() {
    let fleet = fleet();
    let name = unique_name("nt");
    let output = fleet.cli(
        0,
        &[
            "start",
            &name,
            "--cluster",
            "--template",
            "nope",
            "--node",
            "c",
        ],
    );
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("node c:") && err.contains("nope"), "{err}");
    wait_until(DEADLINE, "the claim to be rolled back", || {
        (!fleet.has_spec(&name) && fleet.owner(&name).is_none()).then_some(())
    });
    // The name is free again: a good template starts it.
    let (node, pid) = start_cluster(&fleet, 0, &name, &["--template", "trans", "--node", "c"]);
    assert_eq!((node.as_str(), processes_named(&name)), ("c", vec![pid]));

    // A node whose own worker holds the name refuses too.
    let taken = unique_name("taken");
    let local = fleet.nodes[0].start_worker(&taken, Some("local"), &[]);
    let output = fleet.cli(
        1,
        &[
            "start",
            &taken,
            "--cluster",
            "--template",
            "perm",
            "--node",
            "a",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        out_text(&output).1.contains("already started"),
        "{:?}",
        out_text(&output)
    );
    wait_until(DEADLINE, "the claim to be rolled back", || {
        (!fleet.has_spec(&taken)).then_some(())
    });
    assert_eq!(
        fleet.nodes[0].lookup(&taken),
        Some(local),
        "the local worker is untouched"
    );
}

#[test]
fn names_spread_over_the_least_loaded_nodes_and_list_and_count_see_them() {
    let fleet = fleet();
    let prefix = unique_name("s");
    let mut placed = Vec::new();
    for i in 0..9 {
        let name = format!("{prefix}_{i}");
        let (node, pid) = start_cluster(&fleet, i % 3, &name, &["--template", "perm"]);
        placed.push((name, node, pid));
    }
    for node in ["a", "b", "c"] {
        let n = placed.iter().filter(|(_, on, _)| on == node).count();
        assert_eq!(n, 3, "node {node} got {n} of 9: {placed:?}");
    }
    for (name, node, pid) in &placed {
        assert_eq!(fleet.nodes[fleet.index_of(node)].lookup(name), Some(*pid));
        assert_eq!(processes_named(name), vec![*pid]);
    }
    let output = fleet.cli(2, &["count", "--cluster"]);
    assert_eq!(out_text(&output).0.trim(), "9");
    let output = fleet.cli(1, &["--json", "list", "--cluster"]);
    let reply: serde_json::Value = serde_json::from_str(out_text(&output).0.trim()).expect("json");
    let workers = reply["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 9);
    for (w, (name, node, pid)) in workers.iter().zip(&placed) {
        assert_eq!(
            (&w["name"], &w["node"], &w["pid"]),
            (
                &serde_json::json!(name),
                &serde_json::json!(node),
                &serde_json::json!(pid)
            )
        );
        assert_eq!(w["state"], "running");
    }
    let output = fleet.cli(0, &["list", "--cluster"]);
    let (out, _) = out_text(&output);
    assert!(out.starts_with("NAME"), "{out}");
    assert_eq!(out.lines().count(), 10, "{out}");
}

#[test]
fn three_nodes_racing_for_one_name_make_one_winner() {
    let fleet = fleet();
    let name = unique_name("race");
    let runs: Vec<Captured> = (0..3)
        .map(|i| {
            let node = &fleet.nodes[i];
            Captured::spawn(
                cli_command(node.socket())
                    .arg("--config")
                    .arg(node.config_path())
                    .args(["start", &name, "--cluster", "--template", "perm"]),
            )
        })
        .collect();
    let outcomes: Vec<_> = runs.into_iter().map(|run| run.finish(DEADLINE)).collect();
    let winners: Vec<_> = outcomes.iter().filter(|o| o.status.success()).collect();
    let losers: Vec<_> = outcomes
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("is already started"))
        .collect();
    assert_eq!((winners.len(), losers.len()), (1, 2), "{outcomes:?}");
    wait_until(DEADLINE, "one process", || {
        (processes_named(&name).len() == 1).then_some(())
    });
}

#[test]
fn three_hundred_names_started_from_every_node_agree_everywhere_with_proc() {
    let fleet = fleet();
    let prefix = unique_name("many");
    let names: Vec<String> = (0..300).map(|i| format!("{prefix}_{i:03}")).collect();
    // Twelve CLIs at a time, from the three nodes in turn.
    for batch in names.chunks(12) {
        let runs: Vec<Captured> = batch
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let node = &fleet.nodes[i % 3];
                Captured::spawn(
                    cli_command(node.socket())
                        .arg("--config")
                        .arg(node.config_path())
                        .args(["start", name, "--cluster", "--template", "trans"]),
                )
            })
            .collect();
        for run in runs {
            let output = run.finish(DEADLINE);
            assert!(output.status.success(), "{:?}", out_text(&output));
        }
    }
    // Each node's daemon runs its share; /proc has exactly one process per name.
    let mut where_: std::collections::BTreeMap<String, (String, i32)> = Default::default();
    for (i, daemon) in fleet.nodes.iter().enumerate() {
        let mine: Vec<_> = daemon
            .list()
            .into_iter()
            .filter(|w| w.name.starts_with(&prefix))
            .collect();
        assert!(mine.len() >= 80, "node {i} runs only {} of 300", mine.len());
        for w in mine {
            let pid = w.pid.expect("a pid");
            where_.insert(w.name.clone(), (fleet.node_names[i].clone(), pid));
        }
    }
    assert_eq!(where_.len(), 300);
    for (name, (_, pid)) in &where_ {
        assert_eq!(processes_named(name), vec![*pid], "{name}");
    }
    // list --cluster from every node says the same.
    for from in 0..3 {
        let output = fleet.cli(from, &["--json", "list", "--cluster"]);
        let reply: serde_json::Value =
            serde_json::from_str(out_text(&output).0.trim()).expect("json");
        let seen: std::collections::BTreeMap<String, (String, i32)> = reply["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| {
                let name = w["name"].as_str().expect("name").to_string();
                let node = w["node"].as_str().expect("node").to_string();
                let pid = w["pid"].as_i64().expect("pid") as i32;
                (name, (node, pid))
            })
            .collect();
        assert_eq!(seen, where_, "list --cluster from node {from}");
    }
    // And lookup --cluster, for a sample, from each node.
    for (k, (name, placed)) in where_.iter().enumerate().step_by(37) {
        assert_eq!(lookup_cluster(&fleet, k % 3, name).as_ref(), Some(placed));
    }
}
