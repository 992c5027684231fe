//! What every scenario needs: the run context, a supervised process tree that is swept
//! when dropped, and the restart-latency trial loop shared by all subjects.

use crate::stamps::Stamps;
use crate::util::{self, now_ns, Samples};
use std::cell::Cell;
use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Ctx {
    pub tmp: PathBuf,
    pub run_id: String,
    pub seq: Cell<u32>,
    pub stamp_bin: PathBuf,
    pub floor_bin: PathBuf,
    pub dynsup_bin: PathBuf,
    /// What the report says about the binary measured.
    pub dynsup_desc: String,
    pub quick: bool,
    pub trials: usize,
    pub idle_secs: u64,
    pub only: Option<Vec<String>>,
}

impl Ctx {
    /// Is scenario `name` selected (by `--only`)?
    pub fn wants(&self, name: &str) -> bool {
        match &self.only {
            None => true,
            Some(list) => list.iter().any(|s| s == name),
        }
    }

    /// A fresh directory and tag for one subject instance.
    pub fn instance(&self, name: &str) -> (PathBuf, String) {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let dir = self.tmp.join(format!("{n:02}-{name}"));
        std::fs::create_dir_all(&dir).expect("create a scenario directory");
        (dir, format!("{}-{n}", self.run_id))
    }

    /// A command with a small, fixed environment: PATH, the stamp FIFO and the sweep tag.
    pub fn command(&self, program: &Path, dir: &Path, tag: &str, stamps: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("BENCH_STAMP", stamps)
            .env("BENCH_TAG", tag)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log_file(dir, "stdout.log"))
            .stderr(log_file(dir, "stderr.log"))
            .process_group(0);
        cmd
    }

    pub fn log(&self, msg: &str) {
        eprintln!("[bench {:>6.1}s] {msg}", self.elapsed());
    }

    fn elapsed(&self) -> f64 {
        START.with(|s| s.elapsed().as_secs_f64())
    }
}

thread_local! {
    static START: std::time::Instant = std::time::Instant::now();
}

/// Opened for appending: the processes of one scenario share the file, and each line
/// lands whole after the others' (kept with `BENCH_KEEP_TMP=1`).
fn log_file(dir: &Path, name: &str) -> Stdio {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
    {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// A supervisor process and everything it started, all carrying `BENCH_TAG=tag`:
/// SIGKILLed and reaped when dropped, on every path out of a scenario.
pub struct Tree {
    pub child: Child,
    pub tag: String,
    /// CLOCK_MONOTONIC just before the spawn: "launch".
    pub t0: u64,
}

impl Tree {
    pub fn spawn(mut cmd: Command, tag: &str) -> Result<Tree, String> {
        let t0 = now_ns();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        Ok(Tree {
            child,
            tag: tag.to_string(),
            t0,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = self.child.try_wait();
        util::sweep(&self.tag);
        let _ = self.child.try_wait();
    }
}

/// Lists the processes of one subject (re-read at each end of a measuring window).
pub type ProcLister = Box<dyn Fn() -> Vec<i32>>;

/// The workers a subject is running, oldest first: (pid, start stamp).
pub type Live = Vec<(i32, u64)>;

pub fn live_from(stamps: &[crate::stamps::Stamp]) -> Live {
    let mut v: Live = stamps.iter().map(|s| (s.pid, s.t)).collect();
    v.sort_by_key(|&(_, t)| t);
    v
}

pub struct TrialOpts {
    pub trials: usize,
    /// A victim must have been up at least this long (runit and s6 delay a respawn of
    /// a service that ran less than a second).
    pub min_age: Duration,
    /// Pause after each restart so trials do not overlap.
    pub settle: Duration,
    pub timeout: Duration,
}

/// One trial: SIGKILL the oldest worker from outside (after it has been up `min_age`);
/// the latency is the replacement's own stamp minus the clock read just before kill(2).
/// Returns milliseconds.
pub fn restart_once(
    stamps: &Stamps,
    live: &mut Live,
    min_age: Duration,
    timeout: Duration,
) -> Result<f64, String> {
    let Some(&(victim, started)) = live.first() else {
        return Err("no live worker to kill".into());
    };
    let age = now_ns().saturating_sub(started);
    if (age as u128) < min_age.as_nanos() {
        std::thread::sleep(Duration::from_nanos(min_age.as_nanos() as u64 - age));
    }
    let stray = stamps.drain();
    let mut known: HashSet<i32> = live.iter().map(|&(p, _)| p).collect();
    for s in stray {
        known.insert(s.pid);
    }
    let t0 = now_ns();
    if !util::kill(victim, libc::SIGKILL) {
        return Err(format!(
            "kill({victim}) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let Some(s) = stamps.wait_new(&known, timeout) else {
        return Err(format!(
            "no replacement stamped within {timeout:?} after killing pid {victim}"
        ));
    };
    live.remove(0);
    live.push((s.pid, s.t));
    Ok(util::ms(s.t.saturating_sub(t0)))
}

pub fn restart_trials(stamps: &Stamps, live: &mut Live, o: &TrialOpts) -> Result<Samples, String> {
    let mut out = Vec::with_capacity(o.trials);
    for _ in 0..o.trials {
        out.push(restart_once(stamps, live, o.min_age, o.timeout)?);
        std::thread::sleep(o.settle);
    }
    Ok(Samples::new(out))
}

/// For each group of pids (re-listed at each end), the utime+stime and context switches
/// spent over the same window of `secs` seconds in which nothing happens.
pub fn idle_multi(groups: &[&dyn Fn() -> Vec<i32>], secs: u64) -> Vec<crate::Idle> {
    let before: Vec<(usize, util::Usage)> = groups
        .iter()
        .map(|g| {
            let p = g();
            (p.len(), util::usage_of(&p))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    groups
        .iter()
        .zip(before)
        .map(|(g, (n0, u0))| {
            let p = g();
            let u1 = util::usage_of(&p);
            crate::Idle {
                secs,
                ticks: u1.ticks as i64 - u0.ticks as i64,
                vol: u1.vol as i64 - u0.vol as i64,
                invol: u1.invol as i64 - u0.invol as i64,
                procs: p.len(),
                stable: p.len() == n0,
            }
        })
        .collect()
}
