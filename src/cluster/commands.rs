//! The CLI's cluster commands: `start/lookup/list/count/stop --cluster`, `cluster
//! nodes`. They read `[cluster]` from `--config FILE` and talk to etcd directly; a node
//! is reached through its agent, which watches etcd (docs/CLUSTER.md).
//!
//! Output: a line for a person, or with `--json` one JSON object in the shape of the
//! daemon's replies (`ok`, `error.kind`/`error.message`, and `name`, `node`, `pid`, ...).

use super::etcd::{Change, Compare, Etcd, Kv, Op};
use super::placement::{least_loaded, loads, Candidate};
use super::{
    decode, encode, new_claim, ClusterSettings, KeyKind, Keys, NodeValue, OwnerState, OwnerValue,
    SpecValue,
};
use crate::cli::{ClusterCommand, Command};
use crate::exit_status::ExitStatus;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long `start --cluster` waits for the chosen node to start the name.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long `stop --cluster` waits for the owner to stop it.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Whether a parsed command line is one of the cluster's (`--cluster`, `cluster ...`).
pub fn is_cluster(command: &Command) -> bool {
    matches!(
        command,
        Command::Start { cluster: true, .. }
            | Command::Stop { cluster: true, .. }
            | Command::Lookup { cluster: true, .. }
            | Command::List { cluster: true, .. }
            | Command::Count { cluster: true, .. }
            | Command::Cluster { .. }
    )
}

/// Carry out a cluster command (one [`is_cluster`] accepted).
pub fn run(settings: &ClusterSettings, command: Command, json_out: bool) -> ExitStatus {
    match command {
        Command::Start {
            name,
            template,
            args,
            node,
            ..
        } => start(settings, &name, template, args, node, json_out),
        Command::Stop { names, .. } => stop(settings, &names, json_out),
        Command::Lookup { name, .. } => lookup(settings, &name, json_out),
        Command::List { .. } => list(settings, json_out),
        Command::Count { .. } => count(settings, json_out),
        Command::Cluster {
            command: ClusterCommand::Nodes,
        } => nodes(settings, json_out),
        Command::Cluster {
            command: ClusterCommand::Drain { node },
        } => drain(settings, &node, json_out),
        Command::Cluster {
            command: ClusterCommand::Undrain { node },
        } => undrain(settings, &node, json_out),
        _ => {
            eprintln!("dynsup: not a cluster command");
            ExitStatus::Usage
        }
    }
}

/// `[cluster]` of the `--config` file.
pub fn settings(config: Option<&Path>) -> Result<ClusterSettings, ExitStatus> {
    let Some(path) = config else {
        eprintln!("dynsup: --cluster needs --config FILE, a config with a [cluster] section");
        return Err(ExitStatus::Usage);
    };
    match crate::config::load(path) {
        Ok(config) => config.cluster.ok_or_else(|| {
            eprintln!("dynsup: {} has no [cluster] section", path.display());
            ExitStatus::Usage
        }),
        Err(e) => {
            eprintln!("dynsup: invalid configuration: {e}");
            Err(ExitStatus::Usage)
        }
    }
}

/// The fleet as one range of the namespace shows it.
#[derive(Debug, Default)]
pub struct Fleet {
    pub revision: i64,
    pub nodes: BTreeMap<String, (NodeValue, Kv)>,
    pub specs: BTreeMap<String, (SpecValue, i64)>,
    pub owners: BTreeMap<String, (OwnerValue, i64)>,
}

impl Fleet {
    pub fn read(etcd: &Etcd, keys: &Keys) -> Result<Fleet, String> {
        let range = etcd.range_prefix(&keys.all()).map_err(|e| e.to_string())?;
        Ok(Fleet::of(keys, range.revision, range.kvs))
    }

    /// What placement needs: the node keys, and with `owners` the owner keys (not the
    /// specs), so that a claim on a given node costs O(nodes), not O(names).
    pub fn read_placement(etcd: &Etcd, keys: &Keys, owners: bool) -> Result<Fleet, String> {
        let nodes = etcd
            .range_prefix(&keys.nodes())
            .map_err(|e| e.to_string())?;
        let mut kvs = nodes.kvs;
        if owners {
            let owners = etcd
                .range_prefix(&keys.owners())
                .map_err(|e| e.to_string())?;
            kvs.extend(owners.kvs);
        }
        Ok(Fleet::of(keys, nodes.revision, kvs))
    }

    fn of(keys: &Keys, revision: i64, kvs: Vec<Kv>) -> Fleet {
        let mut fleet = Fleet {
            revision,
            ..Fleet::default()
        };
        for kv in kvs {
            match keys.kind(&kv.key) {
                KeyKind::Node(node) => {
                    if let Some(v) = decode::<NodeValue>(&kv.value) {
                        fleet.nodes.insert(node.to_string(), (v, kv.clone()));
                    }
                }
                KeyKind::Spec(name) => {
                    if let Some(v) = decode::<SpecValue>(&kv.value) {
                        fleet.specs.insert(name.to_string(), (v, kv.mod_revision));
                    }
                }
                KeyKind::Owner(name) => {
                    if let Some(v) = decode::<OwnerValue>(&kv.value) {
                        fleet.owners.insert(name.to_string(), (v, kv.mod_revision));
                    }
                }
                KeyKind::Other => {}
            }
        }
        fleet
    }

    pub fn loads(&self) -> BTreeMap<&str, usize> {
        loads(self.owners.values().map(|(o, _)| o.node.as_str()))
    }
}

/// The etcd client of `settings`; `Err` (printed) when its TLS files cannot be used.
fn client(settings: &ClusterSettings) -> Result<Etcd, ExitStatus> {
    let tls = match settings
        .tls
        .as_ref()
        .map(crate::cluster::tls::client_config)
    {
        Some(Err(e)) => {
            eprintln!("dynsup: invalid configuration: {e}");
            return Err(ExitStatus::Usage);
        }
        Some(Ok(tls)) => Some(tls),
        None => None,
    };
    Ok(Etcd::new_within(&settings.endpoints, Duration::from_secs(5)).with_tls(tls))
}

/// An error, printed (or as JSON) with its kind; exit 1 (3 when etcd is unreachable).
fn fail(json_out: bool, kind: &str, message: &str, extra: Value) -> ExitStatus {
    if json_out {
        let mut error = json!({"kind": kind, "message": message});
        if let (Some(error), Some(extra)) = (error.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                error.insert(k.clone(), v.clone());
            }
        }
        crate::outln!("{}", json!({"ok": false, "error": error}));
    } else {
        eprintln!("dynsup: {message}");
    }
    if kind == "unreachable" {
        ExitStatus::Unreachable
    } else {
        ExitStatus::Error
    }
}

fn unreachable(json_out: bool, why: &str) -> ExitStatus {
    fail(json_out, "unreachable", why, Value::Null)
}

#[derive(Serialize)]
struct Placed<'a> {
    ok: bool,
    name: &'a str,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

/// `dynsup start NAME --cluster [--template T] [--node N] [--arg A]...`
pub fn start(
    settings: &ClusterSettings,
    name: &str,
    template: Option<String>,
    args: Vec<String>,
    node: Option<String>,
    json_out: bool,
) -> ExitStatus {
    if let Err(message) = crate::core::validate_name(name) {
        return fail(json_out, "invalid_name", &message, Value::Null);
    }
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let keys = settings.keys();
    let spec = SpecValue {
        name: name.to_string(),
        template,
        args,
        claim: new_claim(),
    };
    // A claim can miss a node that just renewed its key; read again, a few times.
    let mut attempt = 0;
    let (target, revision) = loop {
        attempt += 1;
        // The node keys, and the owners only when the load decides.
        let fleet = match Fleet::read_placement(&etcd, &keys, node.is_none()) {
            Ok(fleet) => fleet,
            Err(e) => return unreachable(json_out, &e),
        };
        let live: Vec<&str> = fleet.nodes.keys().map(String::as_str).collect();
        let target =
            match &node {
                Some(n) if fleet.nodes.contains_key(n) => n.clone(),
                Some(n) => {
                    return fail(
                        json_out,
                        "node_not_alive",
                        &format!("node {n} is not alive (live: {})", list_or_none(&live)),
                        Value::Null,
                    )
                }
                None => {
                    let node_loads = fleet.loads();
                    let candidates: Vec<Candidate<'_>> = fleet
                        .nodes
                        .values()
                        .map(|(v, _)| Candidate {
                            node: &v.node,
                            load: node_loads.get(v.node.as_str()).copied().unwrap_or(0),
                            draining: v.draining,
                        })
                        .collect();
                    match least_loaded(&candidates) {
                        Some(n) => n.to_string(),
                        None => return fail(
                            json_out,
                            "no_live_node",
                            "no live node to start it on (is any daemon with [cluster] running?)",
                            Value::Null,
                        ),
                    }
                }
            };
        let Some((_, node_kv)) = fleet.nodes.get(&target) else {
            continue;
        };
        let owner = OwnerValue {
            node: target.clone(),
            claim: spec.claim.clone(),
            state: OwnerState::Assigned,
            pid: None,
            restart: None,
            from: None,
            kind: None,
            error: None,
        };
        let spec_key = keys.spec(name);
        let owner_key = keys.owner(name);
        let txn = etcd.txn(
            &[
                Compare::CreateRevision(spec_key.clone(), 0),
                Compare::ModRevision(node_kv.key.clone(), node_kv.mod_revision),
            ],
            &[
                Op::Put {
                    key: spec_key.clone(),
                    value: encode(&spec),
                    lease: 0,
                },
                Op::Put {
                    key: owner_key.clone(),
                    value: encode(&owner),
                    lease: node_kv.lease,
                },
            ],
            &[Op::Get(spec_key), Op::Get(owner_key)],
        );
        let txn = match txn {
            Ok(txn) => txn,
            // The node's lease ended between the read and the claim.
            Err(_) if attempt < 3 => continue,
            Err(e) => return unreachable(json_out, &e.to_string()),
        };
        if txn.succeeded {
            break (target, txn.revision);
        }
        let spec_now = txn.gets.first().and_then(|kvs| kvs.first());
        let owner_now = txn
            .gets
            .get(1)
            .and_then(|kvs| kvs.first())
            .and_then(|kv| decode::<OwnerValue>(&kv.value));
        if spec_now.is_some() {
            return already_started(name, owner_now.as_ref(), json_out);
        }
        if attempt >= 3 {
            return fail(
                json_out,
                "node_not_alive",
                &format!("node {target} changed while {name} was being claimed; try again"),
                Value::Null,
            );
        }
    };
    wait_started(&etcd, &keys, name, &target, revision, json_out)
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn already_started(name: &str, owner: Option<&OwnerValue>, json_out: bool) -> ExitStatus {
    match owner {
        Some(owner) => {
            let pid = owner.pid.map_or(String::new(), |p| format!(", pid {p}"));
            fail(
                json_out,
                "already_started",
                &format!(
                    "{name} is already started on node {}{pid} ({})",
                    owner.node,
                    owner.state.as_str()
                ),
                json!({"node": owner.node, "pid": owner.pid}),
            )
        }
        None => fail(
            json_out,
            "already_started",
            &format!("{name} is already started in the cluster; its node was lost and a survivor is taking it over"),
            Value::Null,
        ),
    }
}

/// Follow the owner key from the claim on, until the node started the name or refused.
fn wait_started(
    etcd: &Etcd,
    keys: &Keys,
    name: &str,
    node: &str,
    revision: i64,
    json_out: bool,
) -> ExitStatus {
    let owner_key = keys.owner(name);
    let outcome = follow(
        etcd,
        &owner_key,
        revision + 1,
        START_WAIT,
        |change| match change {
            Change::Put(kv) => {
                let owner = decode::<OwnerValue>(&kv.value)?;
                match owner.state {
                    OwnerState::Running | OwnerState::Restarting | OwnerState::Failed => {
                        Some(Ok(owner))
                    }
                    OwnerState::Refused => Some(Err(owner)),
                    OwnerState::Assigned => None,
                }
            }
            Change::Delete { .. } => Some(Err(OwnerValue {
                node: node.to_string(),
                claim: String::new(),
                state: OwnerState::Refused,
                pid: None,
                restart: None,
                from: None,
                kind: Some("node_lost".to_string()),
                error: Some(format!(
                    "node {node} was lost before it started {name}; a survivor takes it over"
                )),
            })),
        },
    );
    match outcome {
        Ok(Some(Ok(owner))) => {
            if json_out {
                let placed = Placed {
                    ok: true,
                    name,
                    node: &owner.node,
                    pid: owner.pid,
                    state: Some(owner.state.as_str()),
                };
                crate::outln!("{}", serde_json::to_string(&placed).unwrap_or_default());
            } else {
                let pid = owner.pid.map_or("no pid".to_string(), |p| format!("pid {p}"));
                crate::outln!("{name} started on {} ({pid})", owner.node);
            }
            ExitStatus::Ok
        }
        Ok(Some(Err(owner))) => fail(
            json_out,
            owner.kind.as_deref().unwrap_or("spawn_failed"),
            &format!(
                "node {}: {}",
                owner.node,
                owner.error.as_deref().unwrap_or("refused")
            ),
            json!({"node": owner.node}),
        ),
        Ok(None) => fail(
            json_out,
            "timeout",
            &format!(
                "node {node} did not start {name} within {} s; the claim stays and is acted on when the node is able",
                START_WAIT.as_secs()
            ),
            json!({"node": node}),
        ),
        Err(e) => unreachable(json_out, &e),
    }
}

/// Watch one key from `revision` until `decide` returns something, or `wait` passes
/// (`Ok(None)`).
fn follow<T>(
    etcd: &Etcd,
    key: &str,
    revision: i64,
    wait: Duration,
    mut decide: impl FnMut(&Change) -> Option<T>,
) -> Result<Option<T>, String> {
    let stream = etcd.watch_key(key, revision).map_err(|e| e.to_string())?;
    follow_stream(stream, wait, |change| {
        let changed = match change {
            Change::Put(kv) => kv.key.as_str(),
            Change::Delete { key, .. } => key.as_str(),
        };
        if changed == key {
            decide(change)
        } else {
            None
        }
    })
}

/// [`follow`] for every key with a prefix.
fn follow_prefix<T>(
    etcd: &Etcd,
    prefix: &str,
    revision: i64,
    wait: Duration,
    decide: impl FnMut(&Change) -> Option<T>,
) -> Result<Option<T>, String> {
    let stream = etcd
        .watch_prefix(prefix, revision)
        .map_err(|e| e.to_string())?;
    follow_stream(stream, wait, decide)
}

fn follow_stream<T>(
    mut stream: super::etcd::WatchStream,
    wait: Duration,
    mut decide: impl FnMut(&Change) -> Option<T>,
) -> Result<Option<T>, String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || loop {
        match stream.next_batch() {
            Ok(Some(batch)) => {
                if tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    });
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(batch)) => {
                for change in &batch.changes {
                    if let Some(found) = decide(change) {
                        return Ok(Some(found));
                    }
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => return Err("etcd closed the watch".to_string()),
        }
    }
}

/// `dynsup lookup NAME --cluster`: `NODE PID`.
pub fn lookup(settings: &ClusterSettings, name: &str, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let keys = settings.keys();
    let (owner, spec) = match (etcd.get(&keys.owner(name)), etcd.get(&keys.spec(name))) {
        (Ok(owner), Ok(spec)) => (owner, spec),
        (Err(e), _) | (_, Err(e)) => return unreachable(json_out, &e.to_string()),
    };
    let Some(owner) = owner.and_then(|kv| decode::<OwnerValue>(&kv.value)) else {
        return match spec {
            Some(_) => fail(
                json_out,
                "not_running",
                &format!("{name} has no node right now (its node was lost; a survivor is taking it over)"),
                Value::Null,
            ),
            None => fail(
                json_out,
                "not_found",
                &format!("{name} is not registered in the cluster"),
                Value::Null,
            ),
        };
    };
    if json_out {
        let placed = Placed {
            ok: true,
            name,
            node: &owner.node,
            pid: owner.pid,
            state: Some(owner.state.as_str()),
        };
        crate::outln!("{}", serde_json::to_string(&placed).unwrap_or_default());
        return ExitStatus::Ok;
    }
    match owner.pid {
        Some(pid) => {
            crate::outln!("{} {pid}", owner.node);
            ExitStatus::Ok
        }
        None => {
            eprintln!(
                "dynsup: {name}: no pid (node {}, state {})",
                owner.node,
                owner.state.as_str()
            );
            ExitStatus::Error
        }
    }
}

/// `dynsup list --cluster`: every cluster worker with its node, pid and state.
pub fn list(settings: &ClusterSettings, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let fleet = match Fleet::read(&etcd, &settings.keys()) {
        Ok(fleet) => fleet,
        Err(e) => return unreachable(json_out, &e),
    };
    let rows: Vec<Value> = fleet
        .specs
        .iter()
        .map(|(name, (spec, _))| {
            let owner = fleet.owners.get(name).map(|(o, _)| o);
            json!({
                "name": name,
                "node": owner.map(|o| o.node.clone()),
                "pid": owner.and_then(|o| o.pid),
                "state": owner.map_or("orphaned", |o| o.state.as_str()),
                "template": spec.template,
            })
        })
        .collect();
    if json_out {
        crate::outln!("{}", json!({"ok": true, "workers": rows}));
        return ExitStatus::Ok;
    }
    let mut table = vec![[
        "NAME".to_string(),
        "NODE".to_string(),
        "PID".to_string(),
        "STATE".to_string(),
        "TEMPLATE".to_string(),
    ]];
    for row in &rows {
        let text = |field: &str| match &row[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => "-".to_string(),
        };
        table.push([
            text("name"),
            text("node"),
            text("pid"),
            text("state"),
            text("template"),
        ]);
    }
    print_table(&table);
    ExitStatus::Ok
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        crate::outln!("{}", line.trim_end());
    }
}

/// `dynsup count --cluster`: how many cluster workers there are.
pub fn count(settings: &ClusterSettings, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let fleet = match Fleet::read(&etcd, &settings.keys()) {
        Ok(fleet) => fleet,
        Err(e) => return unreachable(json_out, &e),
    };
    if json_out {
        crate::outln!("{}", json!({"ok": true, "count": fleet.specs.len()}));
    } else {
        crate::outln!("{}", fleet.specs.len());
    }
    ExitStatus::Ok
}

/// `dynsup stop NAME... --cluster`: delete each spec; its owner stops it and deletes
/// the owner key, which this waits for.
pub fn stop(settings: &ClusterSettings, names: &[String], json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let keys = settings.keys();
    let mut status = ExitStatus::Ok;
    let mut results = Vec::new();
    for name in names {
        let result = stop_one(&etcd, &keys, name);
        match &result {
            Ok(node) if !json_out => match node {
                Some(node) => crate::outln!("{name} stopped (on {node})"),
                None => crate::outln!("{name} stopped (it had no node)"),
            },
            Err((_, message)) if !json_out => eprintln!("dynsup: {message}"),
            _ => {}
        }
        if result.is_err() {
            status = ExitStatus::Error;
        }
        results.push(match result {
            Ok(node) => json!({"ok": true, "name": name, "node": node}),
            Err((kind, message)) => {
                json!({"ok": false, "name": name, "error": {"kind": kind, "message": message}})
            }
        });
    }
    if json_out {
        crate::outln!(
            "{}",
            json!({"ok": status == ExitStatus::Ok, "results": results})
        );
    }
    status
}

fn stop_one(etcd: &Etcd, keys: &Keys, name: &str) -> Result<Option<String>, (String, String)> {
    let err = |kind: &str, message: String| (kind.to_string(), message);
    let spec_key = keys.spec(name);
    let owner_key = keys.owner(name);
    let spec = etcd
        .get(&spec_key)
        .map_err(|e| err("unreachable", e.to_string()))?
        .ok_or_else(|| {
            err(
                "not_found",
                format!("{name} is not registered in the cluster"),
            )
        })?;
    let txn = etcd
        .txn(
            &[Compare::ModRevision(spec_key.clone(), spec.mod_revision)],
            &[Op::Delete(spec_key), Op::Get(owner_key.clone())],
            &[],
        )
        .map_err(|e| err("unreachable", e.to_string()))?;
    if !txn.succeeded {
        return Err(err(
            "not_found",
            format!("{name} changed while it was being stopped; try again"),
        ));
    }
    let Some(owner) = txn
        .gets
        .first()
        .and_then(|kvs| kvs.first())
        .and_then(|kv| decode::<OwnerValue>(&kv.value))
    else {
        return Ok(None);
    };
    let gone = follow(etcd, &owner_key, txn.revision + 1, STOP_WAIT, |change| {
        matches!(change, Change::Delete { .. }).then_some(())
    })
    .map_err(|e| err("unreachable", e))?;
    match gone {
        Some(()) => Ok(Some(owner.node)),
        None => Err(err(
            "timeout",
            format!(
                "node {} did not stop {name} within {} s",
                owner.node,
                STOP_WAIT.as_secs()
            ),
        )),
    }
}

/// `dynsup cluster nodes`: the live nodes, their load and lease.
pub fn nodes(settings: &ClusterSettings, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let fleet = match Fleet::read(&etcd, &settings.keys()) {
        Ok(fleet) => fleet,
        Err(e) => return unreachable(json_out, &e),
    };
    let node_loads = fleet.loads();
    let rows: Vec<Value> = fleet
        .nodes
        .values()
        .map(|(v, kv)| {
            let ttl = etcd.time_to_live(kv.lease).ok().flatten();
            json!({
                "node": v.node,
                "load": node_loads.get(v.node.as_str()).copied().unwrap_or(0),
                "lease": format!("{:x}", kv.lease),
                "ttl_s": ttl,
                "draining": v.draining,
            })
        })
        .collect();
    if json_out {
        crate::outln!("{}", json!({"ok": true, "nodes": rows}));
        return ExitStatus::Ok;
    }
    let mut table = vec![[
        "NODE".to_string(),
        "LOAD".to_string(),
        "LEASE".to_string(),
        "TTL".to_string(),
        "DRAINING".to_string(),
    ]];
    for row in &rows {
        table.push([
            row["node"].as_str().unwrap_or("-").to_string(),
            row["load"].to_string(),
            row["lease"].as_str().unwrap_or("-").to_string(),
            row["ttl_s"]
                .as_i64()
                .map_or("-".to_string(), |t| format!("{t}s")),
            if row["draining"].as_bool().unwrap_or(false) {
                "yes".to_string()
            } else {
                "no".to_string()
            },
        ]);
    }
    print_table(&table);
    ExitStatus::Ok
}

/// How long `cluster drain` waits: this, plus [`DRAIN_WAIT_PER_NAME`] per name held.
const DRAIN_WAIT: Duration = Duration::from_secs(30);
const DRAIN_WAIT_PER_NAME: Duration = Duration::from_secs(5);

/// The names the owner keys give `node`, or are moving from it to a node that has not
/// started them yet.
fn held_by(fleet: &Fleet, node: &str) -> Vec<String> {
    fleet
        .owners
        .iter()
        .filter(|(_, (o, _))| {
            o.node == node || (o.from.as_deref() == Some(node) && o.state == OwnerState::Assigned)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Put NODE's node key with `draining` as asked (compared on the key's revision, with
/// NODE's own lease, so a node that left or rejoined meanwhile is not touched): the
/// revision of the write and whether NODE was draining before.
fn mark_draining(
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
    draining: bool,
    json_out: bool,
) -> Result<(i64, bool), ExitStatus> {
    let node_key = keys.node(node);
    let kv = match etcd.get(&node_key) {
        Ok(Some(kv)) => kv,
        Ok(None) => {
            return Err(fail(
                json_out,
                "node_not_alive",
                &format!("node {node} is not alive"),
                Value::Null,
            ))
        }
        Err(e) => return Err(unreachable(json_out, &e.to_string())),
    };
    let Some(mut value) = decode::<NodeValue>(&kv.value) else {
        return Err(fail(
            json_out,
            "bad_value",
            &format!("{node_key} does not hold a node"),
            Value::Null,
        ));
    };
    let was = value.draining;
    value.draining = draining;
    let txn = etcd
        .txn(
            &[Compare::ModRevision(node_key.clone(), kv.mod_revision)],
            &[Op::Put {
                key: node_key,
                value: encode(&value),
                lease: kv.lease,
            }],
            &[],
        )
        .map_err(|e| unreachable(json_out, &e.to_string()))?;
    if !txn.succeeded {
        return Err(fail(
            json_out,
            "node_not_alive",
            &format!("node {node} changed while it was being marked; try again"),
            Value::Null,
        ));
    }
    Ok((txn.revision, was))
}

/// `dynsup cluster undrain NODE`: NODE takes new names and failovers again (its agent
/// stops moving names away after the move under way, if any).
pub fn undrain(settings: &ClusterSettings, node: &str, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let (_, was) = match mark_draining(&etcd, &settings.keys(), node, false, json_out) {
        Ok(marked) => marked,
        Err(status) => return status,
    };
    if json_out {
        crate::outln!("{}", json!({"ok": true, "node": node, "was_draining": was}));
    } else if was {
        crate::outln!("{node} takes work again");
    } else {
        crate::outln!("{node} was not draining");
    }
    ExitStatus::Ok
}

/// `dynsup cluster drain NODE`: mark NODE draining (its agent then moves its names one
/// at a time), and wait until it holds none; a line per name moved.
pub fn drain(settings: &ClusterSettings, node: &str, json_out: bool) -> ExitStatus {
    let etcd = match client(settings) {
        Ok(etcd) => etcd,
        Err(status) => return status,
    };
    let keys = settings.keys();
    let revision = match mark_draining(&etcd, &keys, node, true, json_out) {
        Ok((revision, _)) => revision,
        Err(status) => return status,
    };
    let mut pending: std::collections::BTreeSet<String> = match Fleet::read(&etcd, &keys) {
        Ok(fleet) => held_by(&fleet, node).into_iter().collect(),
        Err(e) => return unreachable(json_out, &e),
    };
    let wait = DRAIN_WAIT + DRAIN_WAIT_PER_NAME * pending.len() as u32;
    let mut moved: Vec<Value> = Vec::new();
    // Names whose move began (re-assigned away, or their owner key deleted while the
    // spec stays): an owner key naming NODE again means the move was given up.
    let mut moving: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Names that came back to NODE (the target refused them, or was lost mid-move),
    // with why: NODE keeps running them, and the drain is not complete.
    let mut kept: Vec<(String, String)> = Vec::new();
    // Each name is done when its new copy runs elsewhere, when it came back to NODE,
    // or when it is gone; the events say so in order, so every move is printed once.
    let outcome = if pending.is_empty() {
        Ok(Some(()))
    } else {
        follow_prefix(&etcd, &keys.owners(), revision + 1, wait, |change| {
            match change {
                Change::Put(kv) => {
                    let owner = decode::<OwnerValue>(&kv.value);
                    if let (Some(owner), KeyKind::Owner(name)) = (owner, keys.kind(&kv.key)) {
                        if !pending.contains(name) {
                        } else if owner.state == OwnerState::Assigned {
                            if owner.from.as_deref() == Some(node) {
                                moving.insert(name.to_string());
                            }
                        } else if owner.node != node && owner.state == OwnerState::Running {
                            if !json_out {
                                let pid = owner.pid.map_or("-".to_string(), |p| p.to_string());
                                crate::outln!("{name} moved to {} (pid {pid})", owner.node);
                            }
                            moved.push(json!({"name": name, "node": owner.node, "pid": owner.pid}));
                            pending.remove(name);
                        } else if owner.node == node && moving.contains(name) {
                            let why = owner
                                .error
                                .clone()
                                .unwrap_or_else(|| "its move did not complete".to_string());
                            if !json_out {
                                crate::outln!("{name} stays on {node}: {why}");
                            }
                            kept.push((name.to_string(), why));
                            pending.remove(name);
                        }
                    }
                }
                Change::Delete { key, .. } => {
                    if let KeyKind::Owner(name) = keys.kind(key) {
                        // Stopped or ended for good: gone. Otherwise (a target lost
                        // mid-move, or NODE lost) someone claims it again: wait for it.
                        match etcd.get(&keys.spec(name)) {
                            Ok(Some(_)) if pending.contains(name) => {
                                moving.insert(name.to_string());
                            }
                            _ => {
                                pending.remove(name);
                            }
                        }
                    }
                }
            }
            pending.is_empty().then_some(())
        })
    };
    match outcome {
        Ok(Some(())) if !kept.is_empty() => {
            let list: Vec<String> = kept
                .iter()
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            let names: Vec<&str> = kept.iter().map(|(name, _)| name.as_str()).collect();
            fail(
                json_out,
                "not_drained",
                &format!(
                    "node {node} still holds {} name(s) no other node took: {}",
                    kept.len(),
                    list.join(", ")
                ),
                json!({"node": node, "moved": moved, "kept": names}),
            )
        }
        Ok(Some(())) => {
            if json_out {
                crate::outln!("{}", json!({"ok": true, "node": node, "moved": moved}));
            } else {
                crate::outln!("{node} drained: {} moved", moved.len());
            }
            ExitStatus::Ok
        }
        Err(e) => unreachable(json_out, &e),
        Ok(None) => {
            let left = Fleet::read(&etcd, &keys)
                .map(|f| held_by(&f, node))
                .unwrap_or_default();
            fail(
                json_out,
                "timeout",
                &format!(
                    "node {node} still holds {} name(s) after {} s: {}",
                    left.len(),
                    wait.as_secs(),
                    left.join(", ")
                ),
                Value::Null,
            )
        }
    }
}
