//! Clocks, statistics, /proc readers and the process sweeper.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// CLOCK_MONOTONIC in nanoseconds: the clock the timing worker stamps with.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A set of measurements (in one unit, chosen by the caller).
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub values: Vec<f64>,
}

impl Samples {
    pub fn new(values: Vec<f64>) -> Samples {
        Samples { values }
    }
    pub fn n(&self) -> usize {
        self.values.len()
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }
    /// Nearest-rank percentile (p in 0..=100).
    pub fn pct(&self, p: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        }
    }
    pub fn p90(&self) -> f64 {
        self.pct(90.0)
    }
    pub fn max(&self) -> f64 {
        self.values.iter().cloned().fold(f64::NAN, f64::max)
    }
    pub fn min(&self) -> f64 {
        self.values.iter().cloned().fold(f64::NAN, f64::min)
    }
}

// ----- /proc -------------------------------------------------------------------

pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    Some(
        s[close + 2..]
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// utime + stime, in clock ticks.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let f = stat_fields(pid)?;
    // After "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn status_field(pid: i32, key: &str) -> Option<u64> {
    keyed_number(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// The number after `key:` in a `/proc` file of `key: value` lines.
fn keyed_number(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn rss_kb(pid: i32) -> Option<u64> {
    status_field(pid, "VmRSS")
}

pub fn pss_kb(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// (voluntary, involuntary) context switches.
pub fn ctx_switches(pid: i32) -> Option<(u64, u64)> {
    Some((
        status_field(pid, "voluntary_ctxt_switches")?,
        status_field(pid, "nonvoluntary_ctxt_switches")?,
    ))
}

pub fn fd_count(pid: i32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

pub fn exe(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Every live descendant of `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(pp) = ppid(pid) {
            children.entry(pp).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(k);
                stack.push(k);
            }
        }
    }
    out
}

/// A supervisor's own processes: `root` and its descendants that are not running the
/// timing worker (`worker_exe`).
pub fn supervisor_procs(root: i32, worker_exe: &Path) -> Vec<i32> {
    let mut procs = vec![root];
    for pid in descendants(root) {
        if exe(pid).as_deref() != Some(worker_exe) {
            procs.push(pid);
        }
    }
    procs
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub procs: usize,
}

pub fn mem_of(pids: &[i32]) -> Mem {
    let mut m = Mem::default();
    for &p in pids {
        if let (Some(r), Some(s)) = (rss_kb(p), pss_kb(p)) {
            m.rss_kb += r;
            m.pss_kb += s;
            m.procs += 1;
        }
    }
    m
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub ticks: u64,
    pub vol: u64,
    pub invol: u64,
}

pub fn usage_of(pids: &[i32]) -> Usage {
    let mut u = Usage::default();
    for &p in pids {
        if let (Some(t), Some((v, i))) = (cpu_ticks(p), ctx_switches(p)) {
            u.ticks += t;
            u.vol += v;
            u.invol += i;
        }
    }
    u
}

fn environ_has(pid: i32, needle: &[u8], exact: bool) -> bool {
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(env) => env.split(|&b| b == 0).any(|kv| {
            if exact {
                kv == needle
            } else {
                kv.starts_with(needle)
            }
        }),
        Err(_) => false,
    }
}

/// SIGKILL every process whose environment holds `BENCH_TAG=<tag>` exactly (one
/// subject instance), again and again until none is left, and reap those that are (or
/// became, as orphans of this subreaper) our children.
pub fn sweep(tag: &str) -> usize {
    sweep_matching(tag, true)
}

/// The same for every tag starting with `prefix` (a whole run: "<run id>-").
pub fn sweep_prefix(prefix: &str) -> usize {
    sweep_matching(prefix, false)
}

fn sweep_matching(tag: &str, exact: bool) -> usize {
    let needle = format!("BENCH_TAG={tag}").into_bytes();
    let me = std::process::id() as i32;
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<i32> = all_pids()
            .into_iter()
            .filter(|&p| p != me && environ_has(p, &needle, exact))
            .collect();
        for &p in &found {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(p, libc::SIGKILL) };
            seen.insert(p);
        }
        reap(&seen);
        if found.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Zombies reparented to us may need another moment.
    for _ in 0..20 {
        if !reap(&seen) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seen.len()
}

/// Reap the children in `pids`; true while one of them is still our unreaped child.
fn reap(pids: &BTreeSet<i32>) -> bool {
    let mut pending = false;
    for &p in pids {
        let mut st = 0;
        // SAFETY: plain waitpid(2).
        let r = unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) };
        if r == 0 {
            pending = true;
        }
    }
    pending
}

pub fn set_subreaper() {
    // SAFETY: plain prctl(2).
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Raise RLIMIT_NOFILE to `want` (the hard limit too, which root may do). Returns the
/// soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want,
                rlim_max: r.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                let soft = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

pub fn read_u64(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, sig) == 0 }
}

/// (wchar, syscw) from /proc/PID/io: bytes the process (all its threads) passed to
/// write-like calls that succeeded, and the number of write-like calls.
pub fn io_of(pid: i32) -> Option<(u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    Some((keyed_number(&s, "wchar")?, keyed_number(&s, "syscw")?))
}

/// Peak resident set (VmHWM), KiB.
pub fn hwm_kb(pid: i32) -> Option<u64> {
    status_field(pid, "VmHWM")
}

/// The clock tick (USER_HZ) /proc/PID/stat counts in.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: plain sysconf(3).
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
