//! A fleet on one machine: a [`TestEtcd`] and daemons that stand in for hosts, each
//! with its own socket, directory and `[cluster] node`; the CLI run from any of them;
//! the fleet's state read straight from etcd; cluster workers counted in `/proc` by
//! their `DYNSUP_NAME=`.

use super::cli::cli_command;
use super::configs::LENIENT_SUPERVISOR;
use super::daemon::TestDaemon;
use super::dirs::unique_name;
use super::etcd::{cluster_section, TestEtcd};
use super::launch::Launch;
use super::wait::{wait_until, DEADLINE};
use dynsup::cluster::{decode, Keys, NodeValue, OwnerValue};
use std::collections::BTreeMap;
use std::process::Output;

/// Templates every test node has: `perm`, `trans` and `temp` (`sleep`, of each restart
/// type) and `local` for workers that are not the cluster's.
pub const CLUSTER_TEMPLATES: &str = r#"
[templates.perm]
command = ["sleep", "100000"]
restart = "permanent"
shutdown_ms = 2000

[templates.trans]
command = ["sleep", "100000"]
restart = "transient"
shutdown_ms = 2000

[templates.temp]
command = ["sleep", "100000"]
restart = "temporary"
shutdown_ms = 2000

[templates.local]
command = ["sleep", "100000"]
restart = "permanent"
"#;

pub struct TestFleet {
    /// Dropped last (fields drop in order): the daemons' agents leave first.
    pub nodes: Vec<TestDaemon>,
    pub node_names: Vec<String>,
    pub namespace: String,
    pub lease_ttl_ms: u64,
    pub etcd: TestEtcd,
}

impl TestFleet {
    /// etcd and `n` daemons named `a`, `b`, `c`, ..., each with `extra` config; waits
    /// until every node has joined.
    #[track_caller]
    pub fn start(n: usize, lease_ttl_ms: u64, extra: &str) -> TestFleet {
        TestFleet::start_with(n, lease_ttl_ms, |etcd, node, namespace| {
            [extra, &cluster_section(etcd, node, namespace, lease_ttl_ms)].concat()
        })
    }

    /// Like [`TestFleet::start`], with each node's config (after [`LENIENT_SUPERVISOR`],
    /// so it may start with more `[supervisor]` keys) made by `config_of(etcd, node,
    /// namespace)`, which must include the `[cluster]` section.
    #[track_caller]
    pub fn start_with(
        n: usize,
        lease_ttl_ms: u64,
        config_of: impl Fn(&TestEtcd, &str, &str) -> String,
    ) -> TestFleet {
        TestFleet::start_on(TestEtcd::start(), n, lease_ttl_ms, config_of)
    }

    /// Like [`TestFleet::start_with`], on this etcd (a multi-member one, say).
    #[track_caller]
    pub fn start_on(
        etcd: TestEtcd,
        n: usize,
        lease_ttl_ms: u64,
        config_of: impl Fn(&TestEtcd, &str, &str) -> String,
    ) -> TestFleet {
        let namespace = format!("/dynsup-test/{}", unique_name("fleet"));
        let node_names: Vec<String> = (0..n)
            .map(|i| char::from(b'a' + i as u8).to_string())
            .collect();
        let nodes = node_names
            .iter()
            .map(|node| {
                let config = [LENIENT_SUPERVISOR, &config_of(&etcd, node, &namespace)].concat();
                Launch::new(&config).start()
            })
            .collect();
        let fleet = TestFleet {
            nodes,
            node_names,
            namespace,
            lease_ttl_ms,
            etcd,
        };
        let want = fleet.node_names.clone();
        wait_until(DEADLINE, "every node to join", || {
            (fleet.live_nodes().keys().cloned().collect::<Vec<_>>() == want).then_some(())
        });
        fleet
    }

    pub fn keys(&self) -> Keys {
        Keys::new(&self.namespace)
    }

    /// The node keys in etcd: node → its value.
    pub fn live_nodes(&self) -> BTreeMap<String, NodeValue> {
        let range = self
            .etcd
            .client()
            .range_prefix(&self.keys().nodes())
            .expect("range the node keys");
        range
            .kvs
            .iter()
            .filter_map(|kv| decode::<NodeValue>(&kv.value))
            .map(|v| (v.node.clone(), v))
            .collect()
    }

    /// The owner key of `name`, if any.
    pub fn owner(&self, name: &str) -> Option<OwnerValue> {
        self.etcd
            .client()
            .get(&self.keys().owner(name))
            .expect("get an owner key")
            .and_then(|kv| decode(&kv.value))
    }

    /// Whether `name` has a spec.
    pub fn has_spec(&self, name: &str) -> bool {
        self.etcd
            .client()
            .get(&self.keys().spec(name))
            .expect("get a spec key")
            .is_some()
    }

    /// The node index of a node name.
    pub fn index_of(&self, node: &str) -> usize {
        self.node_names
            .iter()
            .position(|n| n == node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// Node `i`'s daemon again, after it was killed: the same config (its file's text),
    /// directory and socket path, so the same `state_file`; once it listens.
    #[track_caller]
    pub fn restart_node(&mut self, i: usize) {
        let config =
            std::fs::read_to_string(self.nodes[i].config_path()).expect("read the node's config");
        self.nodes[i] = self.nodes[i].start_another(&config);
    }

    /// `dynsup --socket S --config C ARGS...` as node `i`'s operator would run it.
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        let node = &self.nodes[i];
        super::cli::run(
            cli_command(node.socket())
                .arg("--config")
                .arg(node.config_path())
                .args(args),
            std::time::Duration::from_secs(90),
        )
    }
}

/// The pids of the processes whose environment carries `DYNSUP_NAME=name` (every
/// copy of a cluster worker, on whichever test node).
pub fn processes_named(name: &str) -> Vec<i32> {
    let want = format!("DYNSUP_NAME={name}");
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|var| var == want.as_bytes()) {
            // A zombie keeps its environ readable only while it is alive; skip the dead.
            if super::proc::is_alive(pid) && !super::proc::is_zombie(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Each of `names` once: one live process in /proc, and an owner key on `node` naming
/// that pid; their pids, in order. `None` while any is not so yet.
pub fn each_once_on(fleet: &TestFleet, names: &[String], node: &str) -> Option<Vec<i32>> {
    let mut pids = Vec::new();
    for name in names {
        let running = processes_named(name);
        let owner = fleet.owner(name)?;
        if running.len() != 1 || owner.node != node || owner.pid != Some(running[0]) {
            return None;
        }
        pids.push(running[0]);
    }
    Some(pids)
}

/// The text of an output's stdout and stderr.
pub fn out_text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `start NAME --cluster ARGS...` from node `from`: the node and pid it printed.
#[track_caller]
pub fn start_cluster(fleet: &TestFleet, from: usize, name: &str, args: &[&str]) -> (String, i32) {
    let mut all = vec!["start", name, "--cluster"];
    all.extend_from_slice(args);
    let output = fleet.cli(from, &all);
    let (out, err) = out_text(&output);
    assert!(
        output.status.success(),
        "start --cluster {name}: {out}{err}"
    );
    // `NAME started on NODE (pid P)`
    let rest = out
        .trim()
        .strip_prefix(&format!("{name} started on "))
        .unwrap_or_else(|| panic!("unexpected output {out:?}"));
    let (node, pid) = rest.split_once(" (pid ").expect("node and pid");
    let pid: i32 = pid.trim_end_matches(')').parse().expect("a pid");
    (node.to_string(), pid)
}

/// `lookup NAME --cluster` from node `from`: `NODE PID`.
pub fn lookup_cluster(fleet: &TestFleet, from: usize, name: &str) -> Option<(String, i32)> {
    let output = fleet.cli(from, &["lookup", name, "--cluster"]);
    if !output.status.success() {
        return None;
    }
    let (out, _) = out_text(&output);
    let (node, pid) = out.trim().split_once(' ')?;
    Some((node.to_string(), pid.parse().ok()?))
}
