//! Cluster failover (issue 14, docs/CLUSTER.md): an etcd on loopback and three daemons
//! with `[cluster]` (lease 3000 ms); N names claimed on node b with `start --cluster`;
//! then b's daemon is SIGKILLed, and the time is measured from the kill until
//! `list --cluster` shows every name running on a survivor with a pid (polled every
//! 50 ms; the time is taken when the poll that saw it returns, so it errs long).

use crate::harness::{Ctx, Tree};
use crate::util::{ms, now_ns};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const LEASE_TTL_MS: u64 = 3000;

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

struct Node {
    tree: Tree,
    config: PathBuf,
}

fn cli(ctx: &Ctx, config: &Path, args: &[&str]) -> Result<Output, String> {
    Command::new(&ctx.dynsup_bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dynsup: {e}"))
}

/// Polls `f` every `every` until it holds. Each poll of the fleet is a CLI run that reads
/// the whole namespace from etcd: polled back to back on 2 cores, the observer would
/// slow down what it measures; 50 ms apart it costs little and adds at most that much.
fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(every);
    }
    Ok(())
}

/// `list --cluster --json`: (name, node, pid) of every cluster worker.
fn cluster_list(ctx: &Ctx, config: &Path) -> Vec<(String, String, Option<i64>)> {
    let Ok(out) = cli(ctx, config, &["--json", "list", "--cluster"]) else {
        return Vec::new();
    };
    let Ok(reply) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    reply["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    (
                        w["name"].as_str().unwrap_or("").to_string(),
                        w["node"].as_str().unwrap_or("").to_string(),
                        w["pid"].as_i64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One failover of `n` names: kill → all running elsewhere, ms.
pub fn failover(ctx: &Ctx, n: usize) -> Result<f64, String> {
    let (dir, tag) = ctx.instance(&format!("failover-{n}"));
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut etcd_cmd = ctx.command(Path::new("/usr/bin/etcd"), &dir, &tag, &dir.join("none"));
    etcd_cmd
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")]);
    let _etcd = Tree::spawn(etcd_cmd, &tag)?;
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let config = dir.join(format!("{name}.toml"));
        let text = format!(
            "[supervisor]\nmax_restarts = 1000000\nmax_seconds = 1\nsocket = \"{}\"\n\
             [templates.game]\ncommand = [\"sleep\", \"100000\"]\nrestart = \"permanent\"\n\
             [cluster]\nendpoints = [\"{url}\"]\nnode = \"{name}\"\nnamespace = \"/bench\"\nlease_ttl_ms = {LEASE_TTL_MS}\n",
            dir.join(format!("{name}.sock")).display()
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut cmd = ctx.command(&ctx.dynsup_bin, &dir, &tag, &dir.join("none"));
        cmd.arg("daemon").arg("--config").arg(&config);
        nodes.push(Node {
            tree: Tree::spawn(cmd, &tag)?,
            config,
        });
    }
    let a = nodes[0].config.clone();
    wait_for(
        "three nodes in the fleet",
        Duration::from_secs(60),
        Duration::from_millis(5),
        || {
            cli(ctx, &a, &["--json", "cluster", "nodes"])
                .ok()
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .and_then(|v| v["nodes"].as_array().map(|n| n.len() == 3))
                .unwrap_or(false)
        },
    )?;
    // N names on b, claimed 16 at a time from a and c.
    let names: Vec<String> = (0..n).map(|i| format!("game_{i}")).collect();
    for batch in names.chunks(16) {
        let children: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Command::new(&ctx.dynsup_bin)
                    .arg("--config")
                    .arg(&nodes[if i % 2 == 0 { 0 } else { 2 }].config)
                    .args([
                        "start",
                        name,
                        "--cluster",
                        "--template",
                        "game",
                        "--node",
                        "b",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect();
        for child in children {
            let out = child
                .map_err(|e| e.to_string())?
                .wait_with_output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "a start --cluster failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    let on_b = cluster_list(ctx, &a)
        .iter()
        .filter(|(_, node, pid)| node == "b" && pid.is_some())
        .count();
    if on_b != n {
        return Err(format!("{on_b} of {n} names run on b"));
    }
    ctx.log(&format!(
        "SIGKILL to node b's daemon at {:?} (wall clock, for the kept logs)",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    ));
    let t0 = now_ns();
    // SAFETY: plain kill(2) of the daemon we started.
    unsafe { libc::kill(nodes[1].tree.pid(), libc::SIGKILL) };
    wait_for(
        "every name to run on a survivor",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let list = cluster_list(ctx, &a);
            list.len() == n
                && list
                    .iter()
                    .all(|(_, node, pid)| node != "b" && !node.is_empty() && pid.is_some())
        },
    )?;
    let took = ms(now_ns() - t0);
    drop(nodes);
    Ok(took)
}

/// The sizes measured: 100 and 1000 names (`BENCH_FAILOVER_SIZES=1000` picks some).
pub fn sizes() -> Vec<usize> {
    std::env::var("BENCH_FAILOVER_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000])
}
