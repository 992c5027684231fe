//! dynsup-bench: the floor, dynsup and its peers side by side, in one run.
//!
//! Run it through `bench/run` (which builds everything and installs the peers); see
//! docs/BENCHMARKS.md. Never part of `cargo test`.

mod dynsup;
mod failover;
mod flood;
mod flood_report;
mod floor;
mod harness;
mod peers;
mod report;
mod stamps;
mod util;

use harness::Ctx;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use util::{Mem, Samples};

#[derive(Clone, Copy, Debug, Default)]
pub struct Idle {
    pub secs: u64,
    pub ticks: i64,
    pub vol: i64,
    pub invol: i64,
    pub procs: usize,
    pub stable: bool,
}

#[derive(Default)]
pub struct PeerResults {
    pub version: String,
    pub skipped: Option<String>,
    pub config: String,
    pub restart: Option<Samples>,
    pub restart_note: String,
    pub cold1000: Vec<f64>,
    pub mem1000: Option<Mem>,
    pub idle: Option<Idle>,
    pub errors: Vec<String>,
}

#[derive(Default)]
pub struct Results {
    pub floor_restart: Option<Samples>,
    /// The floor with vfork, dynsup's own spawn primitive.
    pub floor_vfork_restart: Option<Samples>,
    /// N → launch → all stamped, ms, one value per repetition.
    pub floor_cold: BTreeMap<usize, Vec<f64>>,
    pub floor_mem: BTreeMap<usize, Mem>,
    pub floor_idle: Option<Idle>,
    /// N → kill → first instruction.
    pub dyn_restart: BTreeMap<usize, Samples>,
    /// N → kill → lookup answers the new pid.
    pub dyn_lookup_restart: BTreeMap<usize, Samples>,
    pub dyn_cold_children: BTreeMap<usize, Vec<f64>>,
    /// N → (→ all stamped, → all replies) per repetition.
    pub dyn_cold_socket: BTreeMap<usize, Vec<(f64, f64)>>,
    pub dyn_lookup_rps: Option<Samples>,
    pub dyn_concurrent: Option<Samples>,
    pub dyn_list: Option<(usize, Samples)>,
    pub dyn_mem: BTreeMap<usize, Mem>,
    pub dyn_fds: BTreeMap<usize, usize>,
    pub dyn_idle: Option<Idle>,
    pub crash: Option<dynsup::Crash>,
    pub backoff: Option<dynsup::Backoff>,
    pub flood: Option<flood::Flood>,
    /// (mode, heap MiB, extra fds) → spawn → first instruction, µs.
    pub spawn: Vec<(String, u64, u64, Samples)>,
    /// 1000 pipelined starts: (volatile ms, durable ms, volatile bytes, durable bytes) per
    /// repetition.
    pub durable: Vec<(f64, f64, u64, u64)>,
    /// `lookup` latency (µs), 16 clients, while 1000 workers crash-loop under backoff.
    pub churn_lookup: Option<Samples>,
    /// Cluster mode: N → node kill → all its N names running on the survivors, ms.
    pub failover: Vec<(usize, f64)>,
    /// Boot graph shape → launch → all 1000 boot children stamped, ms, per repetition.
    pub order: Vec<(&'static str, Vec<f64>)>,
    pub peers: BTreeMap<&'static str, PeerResults>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    pub dynsup_config_example: String,
    pub ns: Vec<usize>,
}

struct Args {
    quick: bool,
    peers: bool,
    peer_list: Option<Vec<String>>,
    only: Option<Vec<String>>,
    out: Option<PathBuf>,
    trials: Option<usize>,
    idle: Option<u64>,
    sweep: Option<String>,
    dynsup: Option<PathBuf>,
    command_line: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        peers: true,
        peer_list: None,
        only: None,
        out: None,
        trials: None,
        idle: None,
        sweep: None,
        dynsup: None,
        command_line: std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench/run".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--no-peers" => a.peers = false,
            "--peers" => a.peer_list = it.next().map(|s| s.split(',').map(String::from).collect()),
            "--only" => a.only = it.next().map(|s| s.split(',').map(String::from).collect()),
            "--out" => a.out = it.next().map(PathBuf::from),
            "--trials" => a.trials = it.next().and_then(|s| s.parse().ok()),
            "--idle-secs" => a.idle = it.next().and_then(|s| s.parse().ok()),
            "--sweep" => a.sweep = it.next(),
            "--dynsup" => a.dynsup = it.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "usage: dynsup-bench [--quick] [--no-peers | --peers LIST] [--only PHASES] [--trials N] [--idle-secs S] [--dynsup BIN] [--out FILE]\n\
                     \x20      dynsup-bench --sweep RUN_ID   (kill every process a run left behind)\n\
                     phases for --only (default: all): restart (every N, and the peers), control, cold, order, durable, churn, failover, spawn, idle, crash, flood\n\
                     peers for --peers (default: all): runit, s6, supervisord\n\
                     --dynsup BIN: measure another dynsup binary (default: target/release/dynsup)"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("dynsup-bench: unknown argument {other} (try --help)");
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let args = parse_args();
    if let Some(run) = &args.sweep {
        let n = util::sweep_prefix(&format!("{run}-"));
        eprintln!("dynsup-bench: swept {n} process(es) of run {run}");
        return;
    }
    util::set_subreaper();
    let nofile = util::raise_nofile(200_000);

    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = bench_dir.parent().unwrap().to_path_buf();
    let run_id =
        std::env::var("BENCH_RUN_ID").unwrap_or_else(|_| format!("r{}", std::process::id()));
    let tmp = std::env::temp_dir().join(format!("dynsup-bench-{run_id}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create the temp dir");

    let cbin = bench_dir.join("target/c");
    std::fs::create_dir_all(&cbin).expect("create bench/target/c");
    let stamp_bin = cbin.join("stamp");
    let floor_bin = cbin.join("floor");
    build_c(&bench_dir.join("c/stamp.c"), &stamp_bin, true);
    build_c(&bench_dir.join("c/floor.c"), &floor_bin, false);
    build_c(
        &bench_dir.join("c/spawnprobe.c"),
        &cbin.join("spawnprobe"),
        false,
    );
    build_c(&bench_dir.join("c/flood.c"), &cbin.join("flood"), false);
    // /proc/PID/exe shows the canonical path: it tells workers from supervisors.
    let stamp_bin = stamp_bin.canonicalize().expect("the stamp binary");
    let dynsup_bin = args
        .dynsup
        .clone()
        .unwrap_or_else(|| repo.join("target/release/dynsup"));
    if !dynsup_bin.exists() {
        eprintln!(
            "dynsup-bench: {} is missing: run `cargo build --release` (bench/run does)",
            dynsup_bin.display()
        );
        std::process::exit(1);
    }

    let dynsup_desc = if args.dynsup.is_some() {
        format!("`{}` (given with --dynsup)", dynsup_bin.display())
    } else {
        let git = |a: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(a)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let head =
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
        let dirty = git(&[
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .is_some_and(|s| !s.is_empty());
        format!(
            "`target/release/dynsup` built from {head}{}",
            if dirty {
                " plus uncommitted changes under src/ or Cargo.*"
            } else {
                ""
            }
        )
    };
    let quick = args.quick;
    let ctx = Ctx {
        dynsup_desc,
        tmp: tmp.clone(),
        run_id: run_id.clone(),
        seq: Default::default(),
        stamp_bin,
        floor_bin,
        dynsup_bin,
        quick,
        trials: args.trials.unwrap_or(if quick { 15 } else { 50 }),
        idle_secs: args.idle.unwrap_or(if quick { 5 } else { 30 }),
        only: args.only.clone(),
    };
    let mut r = Results::default();
    let started = std::time::Instant::now();

    // Guard: whatever happens below, sweep the whole run at the end.
    struct RunGuard(String);
    impl Drop for RunGuard {
        fn drop(&mut self) {
            util::sweep_prefix(&format!("{}-", self.0));
        }
    }
    let _guard = RunGuard(run_id.clone());

    let pid_max = util::read_u64("/proc/sys/kernel/pid_max").unwrap_or(0);
    let threads_max = util::read_u64("/proc/sys/kernel/threads-max").unwrap_or(0);
    let mut ns: Vec<usize> = vec![10, 100, 1000];
    if !quick {
        // The big N: 10,000 workers if the machine allows. Each worker costs dynsup 3
        // fds (its stdin pipe, one pipe for stdout and stderr, and its pidfd), and
        // every worker is a pid.
        let busy = util::all_pids().len() as u64;
        let fd_fit = nofile.saturating_sub(200) / 3;
        let pid_fit = pid_max
            .saturating_sub(busy + 2000)
            .min(threads_max.saturating_sub(busy + 2000));
        let fit = fd_fit.min(pid_fit);
        if fit >= 10_000 {
            ns.push(10_000);
        } else {
            let big = (fit / 1000 * 1000) as usize;
            let why = if fd_fit < 10_000 {
                format!(
                    "RLIMIT_NOFILE is {nofile} and cannot be raised (hard limit; raising it needs CAP_SYS_RESOURCE), \
                     while dynsup holds 3 fds per worker plus a few of its own: 10,000 workers need about 30,020"
                )
            } else {
                format!("pid_max {pid_max} / threads-max {threads_max} with {busy} pids in use leave room for {pid_fit} workers")
            };
            if big > 1000 {
                r.notes.push(format!(
                    "N=10000 cannot run on this machine: {why}. The largest N that fits, N={big}, stands in for it \
                     (targets for N=10000 are judged on a linear extrapolation where marked)"
                ));
                ns.push(big);
            } else {
                r.notes
                    .push(format!("N=10000 cannot run on this machine: {why}"));
            }
        }
    } else {
        r.notes
            .push("quick mode: fewer trials, no N=10000, no peers, short idle window".into());
    }
    ctx.log(&format!(
        "run {run_id}: trials {}, idle {} s, N = {:?}, RLIMIT_NOFILE {nofile}, pid_max {pid_max}",
        ctx.trials, ctx.idle_secs, ns
    ));

    r.ns = ns.clone();
    let peer_list: Vec<&'static str> = if args.peers && !quick {
        ["runit", "s6", "supervisord"]
            .into_iter()
            .filter(|p| {
                args.peer_list
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|x| x == p))
            })
            .collect()
    } else {
        Vec::new()
    };
    for &p in &peer_list {
        let pr = peers::record(&ctx, p);
        if let Some(why) = &pr.skipped {
            ctx.log(&format!("peer {p} skipped: {why}"));
        }
        r.peers.insert(p, pr);
    }
    let live_peers: Vec<&'static str> = peer_list
        .iter()
        .copied()
        .filter(|p| r.peers[p].skipped.is_none())
        .collect();

    // ---- A: restart latency, every subject side by side, trials interleaved ----------
    if ctx.wants("restart") || ctx.wants("control") {
        latency_phase(&ctx, &ns, &live_peers, &mut r);
    }
    if live_peers.contains(&"supervisord") && ctx.wants("restart") {
        let trials = ctx.trials.min(20);
        ctx.log(&format!("supervisord: restart latency, {trials} trials"));
        let pr = r.peers.get_mut("supervisord").unwrap();
        pr.restart_note = format!("{trials} trials (measured on its own: ~1 s each)");
        match peers::slow_restart(&ctx, "supervisord", trials) {
            Ok(s) => pr.restart = Some(s),
            Err(e) => pr.errors.push(format!("restart: {e}")),
        }
    }

    // ---- B: cold starts, repeated, interleaved ------------------------------------
    if ctx.wants("cold") {
        cold_phase(&ctx, &ns, &live_peers, &mut r);
    }

    // ---- C: idle, every subject at N=100 in the same window --------------------------
    if ctx.wants("idle") {
        ctx.log(&format!(
            "idle: N=100, {} s window (floor, dynsup and the peers side by side)",
            ctx.idle_secs
        ));
        idle_all(&ctx, &live_peers, &mut r);
    }

    // ---- spawn primitives, for reference -----------------------------------------------
    if ctx.wants("spawn") {
        let big = *ns.last().unwrap_or(&1000) as u64;
        ctx.log(
            "spawn primitives: fork, vfork, posix_spawn, clone(CLONE_VM|CLONE_VFORK|CLONE_FILES)",
        );
        spawn_phase(&ctx, 3 * big.max(1000), &mut r);
    }

    // ---- durable starts: 1000 pipelined starts with and without a state file ------
    if ctx.wants("durable") {
        let reps = if ctx.quick { 2 } else { 5 };
        for rep in 0..reps {
            ctx.log(&format!(
                "durable starts: N=1000 pipelined, with and without a state file, {}/{reps}",
                rep + 1
            ));
            match (
                dynsup::pipelined_starts(&ctx, 1000, false),
                dynsup::pipelined_starts(&ctx, 1000, true),
            ) {
                (Ok((v, vb)), Ok((d, db))) => r.durable.push((v, d, vb, db)),
                (Err(e), _) | (_, Err(e)) => r.errors.push(format!("durable starts: {e}")),
            }
        }
    }

    // ---- control plane under churn ---------------------------------------------------
    if ctx.wants("churn") {
        ctx.log("lookup, 16 clients, while 1000 workers crash-loop under backoff");
        let per = if ctx.quick { 300 } else { 1000 };
        match dynsup::lookup_under_churn(&ctx, 1000, per) {
            Ok(s) => r.churn_lookup = Some(s),
            Err(e) => r.errors.push(format!("lookup under churn: {e}")),
        }
    }

    // ---- cluster failover: a node's daemon killed, its names run elsewhere ----------
    if ctx.wants("failover") {
        for n in failover::sizes() {
            ctx.log(&format!(
                "cluster failover: etcd + 3 daemons, {n} names on the node killed (lease {} ms)",
                failover::LEASE_TTL_MS
            ));
            match failover::failover(&ctx, n) {
                Ok(took) => r.failover.push((n, took)),
                Err(e) => r.errors.push(format!("cluster failover of {n}: {e}")),
            }
        }
    }

    // ---- start ordering: the same 1000 boot children in four graph shapes -----------
    if ctx.wants("order") {
        order_phase(&ctx, &mut r);
    }

    // ---- D: crash loop ------------------------------------------------------------
    if ctx.wants("crash") {
        ctx.log("dynsup: crash loop with intensity 3/5");
        match dynsup::crash_loop(&ctx) {
            Ok(c) => r.crash = Some(c),
            Err(e) => r.errors.push(format!("crash loop: {e}")),
        }
        ctx.log("dynsup: backoff curve");
        match dynsup::backoff_curve(&ctx) {
            Ok(b) => r.backoff = Some(b),
            Err(e) => r.errors.push(format!("backoff curve: {e}")),
        }
    }

    // ---- E: one worker flooding its output ----------------------------------------
    if ctx.wants("flood") {
        ctx.log("dynsup: a worker writing as fast as it can (lookup latency, capture throughput)");
        r.flood = Some(flood::run(&ctx, &peer_list));
    }

    r.notes.push(format!(
        "wall time of the measurements: {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let text = report::render(&ctx, &r, &args.command_line);
    print!("{text}");
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::write(out, &text) {
            eprintln!("dynsup-bench: cannot write {}: {e}", out.display());
        }
    }
    drop(_guard);
    if std::env::var_os("BENCH_KEEP_TMP").is_some() {
        eprintln!("dynsup-bench: kept {} (BENCH_KEEP_TMP)", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

const TRIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two trials (of any subject).
const BETWEEN_TRIALS: Duration = Duration::from_millis(5);

enum Inst {
    Floor(floor::Floor),
    Dyn(dynsup::Daemon, dynsup::Client),
    Peer(peers::Peer),
}

#[derive(Clone, Copy)]
enum Kind {
    /// kill → the replacement's first instruction; victims up at least this long.
    Stamp(Duration),
    /// kill → `lookup` answers the new pid.
    Lookup,
}

struct Slot {
    inst: usize,
    kind: Kind,
    who: String,
    n: usize,
    samples: Vec<f64>,
    dead: bool,
}

/// Start the floor (N=10), dynsup at every N, runit and s6 (N=10), then run the trials
/// round-robin: one trial of each subject per round, in an order that rotates, so
/// that the machine's noise falls on every subject alike.
fn latency_phase(ctx: &Ctx, ns: &[usize], peers_on: &[&'static str], r: &mut Results) {
    let mut insts: Vec<Inst> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let slot = |inst, kind, who: &str, n| Slot {
        inst,
        kind,
        who: who.to_string(),
        n,
        samples: Vec::new(),
        dead: false,
    };
    ctx.log("latency: floor, N=10");
    match floor::start(ctx, 10) {
        Ok(f) => {
            insts.push(Inst::Floor(f));
            slots.push(slot(
                insts.len() - 1,
                Kind::Stamp(Duration::ZERO),
                "floor",
                10,
            ));
        }
        Err(e) => r.errors.push(format!("floor: {e}")),
    }
    ctx.log("latency: floor with vfork, N=10");
    match floor::start_vfork(ctx, 10) {
        Ok(f) => {
            insts.push(Inst::Floor(f));
            slots.push(slot(
                insts.len() - 1,
                Kind::Stamp(Duration::ZERO),
                "floor-vfork",
                10,
            ));
        }
        Err(e) => r.errors.push(format!("floor with vfork: {e}")),
    }
    for &n in ns {
        ctx.log(&format!("latency: dynsup with {n} boot children"));
        match dynsup::start(ctx, &format!("dynsup-{n}"), n, &dynsup::NEVER_TRIP, &[]).and_then(
            |d| {
                let c = d.client()?;
                Ok((d, c))
            },
        ) {
            Ok((d, c)) => {
                if n == 10 {
                    r.dynsup_config_example =
                        std::fs::read_to_string(&d.config).unwrap_or_default();
                }
                r.dyn_cold_children.entry(n).or_default().push(d.cold_ms);
                insts.push(Inst::Dyn(d, c));
                slots.push(slot(
                    insts.len() - 1,
                    Kind::Stamp(Duration::ZERO),
                    "dynsup",
                    n,
                ));
                slots.push(slot(insts.len() - 1, Kind::Lookup, "dynsup-lookup", n));
            }
            Err(e) => r.errors.push(format!("dynsup N={n}: {e}")),
        }
    }
    for &p in peers_on.iter().filter(|&&p| p != "supervisord") {
        ctx.log(&format!("latency: {p}, 10 services"));
        match peers::start(ctx, p, 10) {
            Ok(pi) => {
                insts.push(Inst::Peer(pi));
                slots.push(slot(
                    insts.len() - 1,
                    Kind::Stamp(Duration::from_millis(1100)),
                    p,
                    10,
                ));
            }
            Err(e) => r
                .peers
                .get_mut(p)
                .unwrap()
                .errors
                .push(format!("restart: {e}")),
        }
    }
    let rounds = if ctx.wants("restart") { ctx.trials } else { 0 };
    ctx.log(&format!(
        "latency: {rounds} rounds of {} interleaved trials",
        slots.len()
    ));
    for round in 0..rounds {
        let k = slots.len();
        for j in 0..k {
            let s = &mut slots[(j + round) % k];
            if s.dead {
                continue;
            }
            let res = match (&mut insts[s.inst], s.kind) {
                (Inst::Floor(f), Kind::Stamp(a)) => {
                    harness::restart_once(&f.stamps, &mut f.live, a, TRIAL_TIMEOUT)
                }
                (Inst::Dyn(d, _), Kind::Stamp(a)) => {
                    harness::restart_once(&d.stamps, &mut d.live, a, TRIAL_TIMEOUT)
                }
                (Inst::Dyn(d, c), Kind::Lookup) => dynsup::lookup_restart_once(d, c, round),
                (Inst::Peer(p), Kind::Stamp(a)) => {
                    harness::restart_once(&p.stamps, &mut p.live, a, TRIAL_TIMEOUT)
                }
                _ => Err("no such trial".into()),
            };
            match res {
                Ok(v) => s.samples.push(v),
                Err(e) => {
                    s.dead = true;
                    r.errors.push(format!("{} N={} restart: {e}", s.who, s.n));
                }
            }
            std::thread::sleep(BETWEEN_TRIALS);
        }
    }
    for s in &slots {
        if s.samples.is_empty() {
            continue;
        }
        let samples = Samples::new(s.samples.clone());
        match s.who.as_str() {
            "floor" => r.floor_restart = Some(samples),
            "floor-vfork" => r.floor_vfork_restart = Some(samples),
            "dynsup" => {
                r.dyn_restart.insert(s.n, samples);
            }
            "dynsup-lookup" => {
                r.dyn_lookup_restart.insert(s.n, samples);
            }
            p => {
                if let Some(pr) = r.peers.get_mut(p) {
                    pr.restart = Some(samples);
                    pr.restart_note = format!("{} trials, victims up > 1.1 s", s.samples.len());
                }
            }
        }
    }

    // Footprint and the control plane, on the daemons still running.
    for inst in &insts {
        let Inst::Dyn(d, _) = inst else { continue };
        let n = d.n;
        if n >= 1000 {
            r.dyn_mem.insert(n, util::mem_of(&[d.pid()]));
            if let Some(c) = util::fd_count(d.pid()) {
                r.dyn_fds.insert(n, c);
            }
        }
        if !ctx.wants_control() {
            continue;
        }
        let res: Result<(), String> = (|| {
            if n == 1000 {
                ctx.log("control plane: lookup throughput and 16 clients, N=1000");
                let total = if ctx.quick { 50_000 } else { 200_000 };
                let mut rps = Vec::new();
                for _ in 0..if ctx.quick { 3 } else { 5 } {
                    rps.push(dynsup::lookup_throughput(d, total)?);
                }
                r.dyn_lookup_rps = Some(Samples::new(rps));
                let per = if ctx.quick { 300 } else { 1000 };
                r.dyn_concurrent = Some(dynsup::lookup_concurrent(d, 16, per)?);
                if ctx.quick {
                    r.dyn_list = Some((n, dynsup::list_time(d, 10)?));
                }
            }
            if n > 1000 {
                ctx.log(&format!("control plane: list of {n}"));
                r.dyn_list = Some((n, dynsup::list_time(d, 20)?));
            }
            Ok(())
        })();
        if let Err(e) = res {
            r.errors.push(format!("control plane N={n}: {e}"));
        }
    }
    for inst in &mut insts {
        if let Inst::Dyn(d, _) = inst {
            if let Some(st) = d.tree.exited() {
                r.errors
                    .push(format!("dynsup N={} exited during the run: {st}", d.n));
            }
        }
    }
    ctx.log("latency: stopping every subject");
    drop(insts);
}

/// A boot graph's name, and the children each child `i` is after.
type Shape = (&'static str, fn(usize) -> Vec<usize>);

/// Boot graphs of 1000 children (`after` edges; readiness = spawned): flat (no edges),
/// star (all after one), layers (10 × 100, each layer after the whole layer before),
/// chain (each after the one before: serial by definition). Interleaved repetitions.
fn order_phase(ctx: &Ctx, r: &mut Results) {
    const N: usize = 1000;
    let reps = if ctx.quick { 2 } else { 3 };
    let shapes: [Shape; 4] = [
        ("flat", |_| Vec::new()),
        ("star", |i| if i == 0 { Vec::new() } else { vec![0] }),
        ("layers", |i| {
            let layer = i / 100;
            if layer == 0 {
                Vec::new()
            } else {
                ((layer - 1) * 100..layer * 100).collect()
            }
        }),
        ("chain", |i| if i == 0 { Vec::new() } else { vec![i - 1] }),
    ];
    for rep in 0..reps {
        for (shape, after) in shapes {
            ctx.log(&format!(
                "boot order: {shape}, N={N}, repetition {}/{reps}",
                rep + 1
            ));
            let text = dynsup::config_text_ordered(ctx, N, after);
            match dynsup::start_with(
                ctx,
                &format!("dynsup-order-{shape}"),
                N,
                &text,
                dynsup::Stderr::File,
            ) {
                Ok(d) => match r.order.iter_mut().find(|(s, _)| *s == shape) {
                    Some((_, v)) => v.push(d.cold_ms),
                    None => r.order.push((shape, vec![d.cold_ms])),
                },
                Err(e) => r.errors.push(format!("boot order {shape}: {e}")),
            }
        }
    }
}

/// Cold starts: floor, dynsup from `[[children]]`, dynsup over the socket and the peers,
/// repeated and interleaved. N=1000 five times (peers three), the big N twice more
/// (the latency phase already started one daemon of each N).
fn cold_phase(ctx: &Ctx, ns: &[usize], peers_on: &[&'static str], r: &mut Results) {
    for &n in ns.iter().filter(|&&n| n >= 1000) {
        let reps = match (n, ctx.quick) {
            (1000, false) => 5,
            (1000, true) => 2,
            _ => 2,
        };
        for rep in 0..reps {
            ctx.log(&format!("cold start N={n}, repetition {}/{reps}", rep + 1));
            match floor::start(ctx, n) {
                Ok(f) => {
                    r.floor_cold.entry(n).or_default().push(f.cold_ms);
                    r.floor_mem
                        .entry(n)
                        .or_insert_with(|| util::mem_of(&[f.tree.pid()]));
                }
                Err(e) => r.errors.push(format!("floor cold start N={n}: {e}")),
            }
            {
                match dynsup::start(
                    ctx,
                    &format!("dynsup-cold-{n}"),
                    n,
                    &dynsup::NEVER_TRIP,
                    &[],
                ) {
                    Ok(d) => r.dyn_cold_children.entry(n).or_default().push(d.cold_ms),
                    Err(e) => r.errors.push(format!("dynsup cold start N={n}: {e}")),
                }
            }
            match dynsup::socket_cold(ctx, n) {
                Ok(v) => r.dyn_cold_socket.entry(n).or_default().push(v),
                Err(e) => r
                    .errors
                    .push(format!("dynsup socket cold start N={n}: {e}")),
            }
            if n == 1000 && rep < 3 {
                for &p in peers_on {
                    match peers::cold(ctx, p, n, rep == 0) {
                        Ok((ms, mem)) => {
                            let pr = r.peers.get_mut(p).unwrap();
                            pr.cold1000.push(ms);
                            if mem.is_some() {
                                pr.mem1000 = mem;
                            }
                        }
                        Err(e) => r
                            .peers
                            .get_mut(p)
                            .unwrap()
                            .errors
                            .push(format!("cold start N=1000: {e}")),
                    }
                }
            }
        }
    }
}

impl Ctx {
    fn wants_control(&self) -> bool {
        self.wants("control")
    }
}

/// Idle: floor, dynsup and every peer with 100 workers each, measured over the same
/// window (the counters are per process, so the subjects cannot disturb each other's
/// figures; this saves 30 s per subject).
fn idle_all(ctx: &Ctx, peer_list: &[&'static str], r: &mut Results) {
    let n = 100;
    let mut groups: Vec<(String, harness::ProcLister)> = Vec::new();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    match floor::start(ctx, n) {
        Ok(f) => {
            let pid = f.tree.pid();
            groups.push(("floor".into(), Box::new(move || vec![pid])));
            keep.push(Box::new(f));
        }
        Err(e) => r.errors.push(format!("floor idle: {e}")),
    }
    match dynsup::start(ctx, "dynsup-idle", n, &dynsup::NEVER_TRIP, &[]) {
        Ok(d) => {
            let pid = d.pid();
            groups.push(("dynsup".into(), Box::new(move || vec![pid])));
            keep.push(Box::new(d));
        }
        Err(e) => r.errors.push(format!("dynsup idle: {e}")),
    }
    for &p in peer_list {
        if r.peers.get(p).is_some_and(|pr| pr.skipped.is_some()) {
            continue;
        }
        match peers::start_idle(ctx, p, n) {
            Ok((procs, inst)) => {
                groups.push((p.to_string(), procs));
                keep.push(inst);
            }
            Err(e) => {
                if let Some(pr) = r.peers.get_mut(p) {
                    pr.errors.push(format!("idle: {e}"));
                }
            }
        }
    }
    // Let every subject finish its start-up work (runit's first rescan comes at 5 s).
    std::thread::sleep(Duration::from_secs(if ctx.quick { 1 } else { 2 }));
    let fns: Vec<&dyn Fn() -> Vec<i32>> = groups.iter().map(|(_, f)| f.as_ref()).collect();
    let idles = harness::idle_multi(&fns, ctx.idle_secs);
    for ((name, _), idle) in groups.iter().zip(idles) {
        match name.as_str() {
            "floor" => r.floor_idle = Some(idle),
            "dynsup" => r.dyn_idle = Some(idle),
            p => {
                if let Some(pr) = r.peers.get_mut(p) {
                    pr.idle = Some(idle);
                }
            }
        }
    }
    drop(keep);
}

/// The spawn primitive alone, from three shapes of parent: small, with 256 MiB of
/// touched heap, and holding `fds` close-on-exec fds (dynsup's 3 per worker at the big N).
fn spawn_phase(ctx: &Ctx, fds: u64, r: &mut Results) {
    let trials = if ctx.quick { 10 } else { 30 };
    let probe = ctx.floor_bin.with_file_name("spawnprobe");
    for (heap, nfds) in [(0u64, 0u64), (256, 0), (0, fds)] {
        for mode in ["fork", "vfork", "posix_spawn", "clone_files"] {
            let out = Command::new(&probe)
                .args([
                    mode,
                    &heap.to_string(),
                    &nfds.to_string(),
                    &trials.to_string(),
                ])
                .arg(&ctx.stamp_bin)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("TMPDIR", &ctx.tmp)
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    let v: Vec<f64> = text
                        .split_whitespace()
                        .skip(3)
                        .filter_map(|x| x.parse::<f64>().ok())
                        .map(|ns| ns / 1e3)
                        .collect();
                    if v.is_empty() {
                        r.errors.push(format!(
                            "spawnprobe {mode} {heap} MiB {nfds} fds: no sample ({})",
                            String::from_utf8_lossy(&o.stderr).trim()
                        ));
                    } else {
                        r.spawn
                            .push((mode.to_string(), heap, nfds, Samples::new(v)));
                    }
                }
                Ok(o) => r.errors.push(format!(
                    "spawnprobe {mode} {heap} MiB {nfds} fds: {} {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => r.errors.push(format!("spawnprobe: {e}")),
            }
        }
    }
}

fn build_c(src: &Path, out: &Path, stamp: bool) {
    let mut cmd = Command::new("cc");
    cmd.arg("-O2").arg("-o").arg(out).arg(src);
    if stamp && cfg!(target_arch = "x86_64") {
        cmd.args([
            "-static",
            "-nostdlib",
            "-fno-stack-protector",
            "-fno-pie",
            "-no-pie",
            "-fno-asynchronous-unwind-tables",
        ]);
    } else if stamp {
        cmd.args(["-static", "-DSTAMP_LIBC"]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("dynsup-bench: cc {} failed: {s}", src.display());
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("dynsup-bench: cannot run cc (is gcc installed?): {e}");
            std::process::exit(1);
        }
    }
}
