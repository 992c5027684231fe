//! The peers: runit (runsvdir + runsv), s6 (s6-svscan + s6-supervise) and supervisord,
//! each under a temp dir of its own (never as the system's init), running the same
//! timing worker, configured as favourably as their options allow.

use crate::harness::{live_from, restart_trials, Ctx, Live, ProcLister, Tree, TrialOpts};
use crate::stamps::Stamps;
use crate::util::{self, ms, Mem};
use crate::PeerResults;
use std::any::Any;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Peer {
    pub tree: Tree,
    pub stamps: Stamps,
    pub live: Live,
    pub cold_ms: f64,
}

fn binary(name: &str) -> Option<&'static str> {
    match name {
        "runit" => Some("runsvdir"),
        "s6" => Some("s6-svscan"),
        "supervisord" => Some("supervisord"),
        _ => None,
    }
}

fn find_in_path(prog: &str) -> Option<PathBuf> {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(prog);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn version(name: &str) -> String {
    let pkg = match name {
        "supervisord" => "supervisor",
        other => other,
    };
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", pkg])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("{pkg} {}", String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| format!("{pkg} (version unknown)"))
}

/// The config text shown with the results (what `start` writes, for N services).
pub fn describe(ctx: &Ctx, name: &str) -> String {
    let stamp = ctx.stamp_bin.display();
    match name {
        "runit" => format!(
            "runsvdir SVDIR            # no -P, no log argument; runsvdir rescans SVDIR every 5 s\n\
             SVDIR/wI/run -> {stamp}   # a symlink: runsv execs the worker itself, no shell\n\
             # no ./finish, no ./log, no ./down; runsv waits 1 s before respawning a service\n\
             # that ran < 1 s, so each victim has been up > 1.1 s when it is killed"
        ),
        "s6" => format!(
            "s6-svscan -c MAX -t 0 SCANDIR   # MAX = 2N (at least 1000); -t 0: no periodic rescan\n\
             SCANDIR/wI/run -> {stamp}       # a symlink: s6-supervise execs the worker itself\n\
             SCANDIR/wI/notification-fd: 3   # with BENCH_NOTIFY_FD=3 the worker writes \"\\n\" on fd 3 right after its stamp\n\
             # no ./finish, no ./log. s6-supervise 2.11 waits 1 s before every respawn unless the\n\
             # service reported readiness at least 1 s earlier: hence notification-fd, and each\n\
             # victim has been up > 1.1 s when it is killed (stock, without readiness: ~1000 ms)"
        ),
        "supervisord" => supervisord_conf(ctx, Path::new("DIR"), 10)
            .replace(&format!("numprocs = {}", 10), "numprocs = N"),
        _ => String::new(),
    }
}

fn supervisord_conf(ctx: &Ctx, dir: &Path, n: usize) -> String {
    format!(
        "[supervisord]\n\
         nodaemon = true\n\
         logfile = {d}/supervisord.log\n\
         loglevel = critical\n\
         pidfile = {d}/supervisord.pid\n\
         childlogdir = {d}\n\
         minfds = 1024\n\
         minprocs = 200\n\
         \n\
         [program:w]\n\
         command = {stamp}\n\
         process_name = w%(process_num)d\n\
         numprocs = {n}\n\
         autostart = true\n\
         autorestart = true\n\
         startsecs = 0\n\
         startretries = 0\n\
         stopsignal = KILL\n\
         stopwaitsecs = 1\n\
         stdout_logfile = NONE\n\
         stderr_logfile = NONE\n",
        d = dir.display(),
        stamp = ctx.stamp_bin.display(),
    )
}

pub fn start(ctx: &Ctx, name: &str, n: usize) -> Result<Peer, String> {
    let (dir, tag) = ctx.instance(&format!("{name}-{n}"));
    let stamps = Stamps::new(&dir.join("stamps.fifo"))?;
    let prog = find_in_path(binary(name).ok_or("unknown peer")?)
        .ok_or(format!("{name} is not installed"))?;
    let mut cmd = ctx.command(&prog, &dir, &tag, &stamps.path);
    match name {
        "runit" | "s6" => {
            let svdir = dir.join("sv");
            std::fs::create_dir_all(&svdir).map_err(|e| e.to_string())?;
            for i in 0..n {
                let s = svdir.join(format!("w{i}"));
                std::fs::create_dir_all(&s).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(&ctx.stamp_bin, s.join("run"))
                    .map_err(|e| e.to_string())?;
                if name == "s6" {
                    std::fs::write(s.join("notification-fd"), "3\n").map_err(|e| e.to_string())?;
                }
            }
            if name == "s6" {
                cmd.env("BENCH_NOTIFY_FD", "3");
                cmd.arg("-c")
                    .arg((2 * n).max(1000).to_string())
                    .arg("-t")
                    .arg("0");
            }
            cmd.arg(&svdir);
        }
        "supervisord" => {
            let conf = dir.join("supervisord.conf");
            std::fs::write(&conf, supervisord_conf(ctx, &dir, n)).map_err(|e| e.to_string())?;
            cmd.arg("-n").arg("-c").arg(&conf);
        }
        _ => return Err("unknown peer".into()),
    }
    let tree = Tree::spawn(cmd, &tag)?;
    let got = stamps.collect(n, Duration::from_secs(60 + n as u64 / 20));
    if got.len() < n {
        return Err(format!(
            "{name}: only {} of {n} workers stamped (see {})",
            got.len(),
            dir.display()
        ));
    }
    let last = got.iter().map(|s| s.t).max().unwrap();
    Ok(Peer {
        cold_ms: ms(last - tree.t0),
        live: live_from(&got),
        tree,
        stamps,
    })
}

/// Is the peer installed? Its version, or why it is skipped.
pub fn available(name: &str) -> Result<String, String> {
    let bin = binary(name).ok_or("unknown peer")?;
    if find_in_path(bin).is_none() {
        return Err(format!(
            "{bin} not found: `apt-get install -y {}` failed or was not run (bench/run runs it)",
            if name == "supervisord" {
                "supervisor"
            } else {
                name
            }
        ));
    }
    Ok(version(name))
}

/// A fresh result record for a peer, with its config text.
pub fn record(ctx: &Ctx, name: &str) -> PeerResults {
    let mut pr = PeerResults {
        config: describe(ctx, name),
        ..Default::default()
    };
    match available(name) {
        Ok(v) => pr.version = v,
        Err(why) => pr.skipped = Some(why),
    }
    pr
}

/// Cold start of `n` services (launch → all stamped, ms) and, if asked, the footprint
/// of the supervisor's own processes once they are all up.
pub fn cold(
    ctx: &Ctx,
    name: &str,
    n: usize,
    footprint: bool,
) -> Result<(f64, Option<Mem>), String> {
    let p = start(ctx, name, n)?;
    let mem = if footprint {
        // Let the supervisors finish writing their status files.
        std::thread::sleep(Duration::from_millis(500));
        Some(util::mem_of(&util::supervisor_procs(
            p.tree.pid(),
            &ctx.stamp_bin,
        )))
    } else {
        None
    };
    Ok((p.cold_ms, mem))
}

/// supervisord restarts in about a second: measured on its own, with fewer trials.
pub fn slow_restart(ctx: &Ctx, name: &str, trials: usize) -> Result<crate::util::Samples, String> {
    let mut p = start(ctx, name, 10)?;
    restart_trials(
        &p.stamps,
        &mut p.live,
        &TrialOpts {
            trials,
            min_age: Duration::ZERO,
            settle: Duration::from_millis(20),
            timeout: Duration::from_secs(10),
        },
    )
}

/// A peer with `n` workers for the idle window: a function listing its own processes
/// (not the workers), and the instance to keep alive meanwhile.
pub fn start_idle(ctx: &Ctx, name: &str, n: usize) -> Result<(ProcLister, Box<dyn Any>), String> {
    let p = start(ctx, name, n)?;
    let root = p.tree.pid();
    let stamp = ctx.stamp_bin.clone();
    Ok((
        Box::new(move || util::supervisor_procs(root, &stamp)),
        Box::new(p),
    ))
}
