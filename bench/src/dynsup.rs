//! dynsup: the real daemon (target/release/dynsup), driven over its Unix socket.

use crate::harness::{live_from, Ctx, Live, Tree};
use crate::stamps::Stamps;
use crate::util::{self, ms, now_ns, Samples};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub tree: Tree,
    pub stamps: Stamps,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub live: Live,
    pub n: usize,
    /// Launch → all boot children stamped, ms.
    pub cold_ms: f64,
}

pub struct Limits {
    pub max_restarts: u64,
    pub max_seconds: u64,
}

/// Latency scenarios use an intensity that never trips.
pub const NEVER_TRIP: Limits = Limits {
    max_restarts: 1_000_000,
    max_seconds: 1,
};

pub fn config_text(ctx: &Ctx, n: usize, limits: &Limits, env: &[(&str, &str)]) -> String {
    config_text_with(ctx, n, limits, env, "")
}

/// `template_extra`: more keys for the template (such as a backoff table).
pub fn config_text_with(
    ctx: &Ctx,
    n: usize,
    limits: &Limits,
    env: &[(&str, &str)],
    template_extra: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[supervisor]\nmax_restarts = {}\nmax_seconds = {}\n",
        limits.max_restarts, limits.max_seconds
    );
    let _ = writeln!(
        s,
        "[templates.w]\ncommand = [\"{}\"]\nrestart = \"permanent\"\nshutdown_ms = 1000",
        ctx.stamp_bin.display()
    );
    if !env.is_empty() {
        let kv: Vec<String> = env.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
        let _ = writeln!(s, "env = {{ {} }}", kv.join(", "));
    }
    if !template_extra.is_empty() {
        let _ = writeln!(s, "{template_extra}");
    }
    for i in 0..n {
        let _ = write!(s, "\n[[children]]\nname = \"w{i}\"\n");
    }
    s
}

/// `n` boot children whose `after` lists come from `after(i)` (indices of earlier
/// children).
pub fn config_text_ordered(ctx: &Ctx, n: usize, after: fn(usize) -> Vec<usize>) -> String {
    let mut s = config_text(ctx, 0, &NEVER_TRIP, &[]);
    for i in 0..n {
        let _ = write!(s, "\n[[children]]\nname = \"w{i}\"\n");
        let deps = after(i);
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|d| format!("\"w{d}\"")).collect();
            let _ = writeln!(s, "after = [{}]", names.join(", "));
        }
    }
    s
}

/// Start a daemon booting `n` children from `[[children]]`, and wait until all have
/// stamped (`n` may be 0).
pub fn start(
    ctx: &Ctx,
    label: &str,
    n: usize,
    limits: &Limits,
    env: &[(&str, &str)],
) -> Result<Daemon, String> {
    start_with(
        ctx,
        label,
        n,
        &config_text(ctx, n, limits, env),
        Stderr::File,
    )
}

/// A boot that brings no new stamp for this long has stalled.
const STALL: Duration = Duration::from_secs(10);

/// Where the daemon's stderr goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stderr {
    /// `stderr.log` in the instance's directory (every scenario but the flood's variant).
    File,
    DevNull,
}

/// Start a daemon on `config_text`, which boots `n` stamping children, and wait until
/// all have stamped and the socket answers. A daemon that exits first (a config it
/// rejects) is an error quoting its stderr.
pub fn start_with(
    ctx: &Ctx,
    label: &str,
    n: usize,
    config_text: &str,
    stderr: Stderr,
) -> Result<Daemon, String> {
    let (dir, tag) = ctx.instance(label);
    let stamps = Stamps::new(&dir.join("stamps.fifo"))?;
    let config = dir.join("dynsup.toml");
    std::fs::write(&config, config_text).map_err(|e| e.to_string())?;
    let socket = dir.join("s.sock");
    let mut cmd = ctx.command(&ctx.dynsup_bin, &dir, &tag, &stamps.path);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket);
    if stderr == Stderr::DevNull {
        cmd.stderr(std::process::Stdio::null());
    }
    let mut tree = Tree::spawn(cmd, &tag)?;
    // Until all have stamped, the deadline passes, no stamp has come for 10 s, or the
    // daemon exits (a config it rejects).
    let mut got = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(30 + n as u64 / 100);
    let mut progress = Instant::now();
    while got.len() < n && Instant::now() < deadline && progress.elapsed() < STALL {
        if let Some(st) = tree.exited() {
            let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            return Err(format!("dynsup exited at start ({st}): {}", err.trim()));
        }
        let more = stamps.collect(n - got.len(), Duration::from_millis(50));
        if !more.is_empty() {
            progress = Instant::now();
        }
        got.extend(more);
    }
    if got.len() < n {
        return Err(format!(
            "dynsup: only {} of {n} boot children stamped (see {}/stderr.log)",
            got.len(),
            dir.display()
        ));
    }
    let cold_ms = got
        .iter()
        .map(|s| s.t)
        .max()
        .map_or(0.0, |t| ms(t - tree.t0));
    let mut d = Daemon {
        tree,
        stamps,
        socket,
        config,
        live: live_from(&got),
        n,
        cold_ms,
    };
    // The socket answers once the boot is over (n = 0: once it is bound).
    let exited = |d: &mut Daemon| {
        d.tree.exited().map(|st| {
            let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            format!("dynsup exited at start ({st}): {}", err.trim())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Some(e) = exited(&mut d) {
            return Err(e);
        }
        match Client::connect(&d.socket, Duration::ZERO) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let answer = c.call(r#"{"cmd":"count"}"#).map(|_| ());
    if let Some(e) = exited(&mut d) {
        return Err(e);
    }
    answer?;
    Ok(d)
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.tree.pid()
    }

    pub fn client(&self) -> Result<Client, String> {
        Client::connect(&self.socket, Duration::from_secs(20))
    }
}

pub struct Client {
    w: UnixStream,
    r: BufReader<UnixStream>,
    line: String,
}

impl Client {
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match UnixStream::connect(path) {
                Ok(s) => {
                    let r = BufReader::with_capacity(
                        1 << 20,
                        s.try_clone().map_err(|e| e.to_string())?,
                    );
                    return Ok(Client {
                        w: s,
                        r,
                        line: String::new(),
                    });
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("cannot connect to {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// One request, one reply line (without its newline).
    pub fn call(&mut self, request: &str) -> Result<&str, String> {
        let mut buf = Vec::with_capacity(request.len() + 1);
        buf.extend_from_slice(request.as_bytes());
        buf.push(b'\n');
        self.w.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        self.line.clear();
        let n = self
            .r
            .read_line(&mut self.line)
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the daemon closed the connection".into());
        }
        Ok(self.line.trim_end())
    }

    /// The pid `lookup` answers for `name` (None while restarting or not found).
    pub fn lookup(&mut self, name: &str) -> Result<Option<i32>, String> {
        let req = format!(r#"{{"cmd":"lookup","name":"{name}"}}"#);
        let reply = self.call(&req)?;
        Ok(json_int(reply, "\"pid\":").map(|p| p as i32))
    }

    pub fn split(self) -> (UnixStream, BufReader<UnixStream>) {
        (self.w, self.r)
    }
}

/// The integer after `key` in a flat JSON reply (no full parse in the hot loops).
pub fn json_int(s: &str, key: &str) -> Option<i64> {
    let at = s.find(key)? + key.len();
    let digits: String = s[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// One trial: kill `w{i % n}` → the new pid answered by `lookup`, polled in a tight
/// loop on the connection `c`. Returns milliseconds.
pub fn lookup_restart_once(d: &mut Daemon, c: &mut Client, i: usize) -> Result<f64, String> {
    let name = format!("w{}", i % d.n);
    let old = c
        .lookup(&name)?
        .ok_or_else(|| format!("{name} has no pid"))?;
    let _ = d.stamps.drain();
    let t0 = now_ns();
    util::kill(old, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    let t1 = loop {
        if let Some(p) = c.lookup(&name)? {
            if p != old {
                break now_ns();
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "lookup {name} still answers the old pid after 10 s"
            ));
        }
    };
    let mut known: HashSet<i32> = d.live.iter().map(|&(p, _)| p).collect();
    known.insert(old);
    let s = d
        .stamps
        .wait_new(&known, Duration::from_secs(10))
        .ok_or("the replacement never stamped")?;
    d.live.retain(|&(p, _)| p != old);
    d.live.push((s.pid, s.t));
    Ok(ms(t1 - t0))
}

/// `lookup` requests per second on one connection, pipelined: a writer thread sends
/// `total` requests while this thread reads the replies.
pub fn lookup_throughput(d: &Daemon, total: usize) -> Result<f64, String> {
    let (mut w, mut r) = d.client()?.split();
    let mut buf = Vec::with_capacity(total * 32);
    for i in 0..total {
        let _ = writeln!(
            &mut buf,
            r#"{{"cmd":"lookup","name":"w{}"}}"#,
            i % d.n.max(1)
        );
    }
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&buf).map(|_| w));
    let mut seen = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let mut oks = 0usize;
    let mut tail: Vec<u8> = Vec::new();
    while seen < total {
        let n = r.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {seen} replies"));
        }
        seen += chunk[..n].iter().filter(|&&b| b == b'\n').count();
        // Count the replies that are ok (cheaply, on whole lines).
        tail.extend_from_slice(&chunk[..n]);
        if let Some(last) = tail.iter().rposition(|&b| b == b'\n') {
            oks += tail[..=last]
                .windows(9)
                .filter(|w| w == b"\"ok\":true")
                .count();
            tail.drain(..=last);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| "writer panicked")?
        .map_err(|e| format!("write: {e}"))?;
    if oks != total {
        return Err(format!("{} of {total} lookups failed", total - oks));
    }
    Ok(total as f64 / secs)
}

/// `clients` connections, each doing `per` request/reply lookups back to back; the
/// latency of every request, µs.
pub fn lookup_concurrent(d: &Daemon, clients: usize, per: usize) -> Result<Samples, String> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients));
    let mut handles = Vec::new();
    for k in 0..clients {
        let mut c = d.client()?;
        let barrier = barrier.clone();
        let n = d.n.max(1);
        handles.push(std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let mut lat = Vec::with_capacity(per);
            barrier.wait();
            for i in 0..per {
                let name = format!("w{}", (k * per + i) % n);
                let t = Instant::now();
                let p = c.lookup(&name)?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                if p.is_none() {
                    return Err(format!("lookup {name} failed"));
                }
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "client panicked")??);
    }
    Ok(Samples::new(all))
}

/// Round trip of `list` (the whole reply read), ms; checks the count once.
pub fn list_time(d: &Daemon, trials: usize) -> Result<Samples, String> {
    let mut c = d.client()?;
    let mut out = Vec::new();
    for i in 0..trials {
        let t = Instant::now();
        let reply = c.call(r#"{"cmd":"list"}"#)?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
        if i == 0 {
            let v: serde_json::Value = serde_json::from_str(reply).map_err(|e| e.to_string())?;
            let n = v["workers"].as_array().map_or(0, |a| a.len());
            if n != d.n {
                return Err(format!("list returned {n} workers, expected {}", d.n));
            }
        }
    }
    Ok(Samples::new(out))
}

/// Cold start over the socket: a daemon with no children, then `n` `start` requests
/// pipelined on one connection. Returns (launch-of-requests → all stamped,
/// → all replies), ms.
pub fn socket_cold(ctx: &Ctx, n: usize) -> Result<(f64, f64), String> {
    let d = start(ctx, &format!("dynsup-socket-{n}"), 0, &NEVER_TRIP, &[])?;
    let (mut w, mut r) = d.client()?.split();
    let mut buf = Vec::with_capacity(n * 48);
    for i in 0..n {
        let _ = writeln!(
            &mut buf,
            r#"{{"cmd":"start","name":"w{i}","template":"w"}}"#
        );
    }
    let t0 = now_ns();
    let writer = std::thread::spawn(move || w.write_all(&buf).map(|_| w));
    let mut line = String::new();
    let mut oks = 0;
    for _ in 0..n {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if line.contains("\"ok\":true") {
            oks += 1;
        }
    }
    let t_replies = now_ns();
    let _w = writer.join().map_err(|_| "writer panicked")?;
    if oks != n {
        return Err(format!(
            "{} of {n} start requests failed: {}",
            n - oks,
            line.trim()
        ));
    }
    let got = d.stamps.collect(n, Duration::from_secs(30));
    if got.len() < n {
        return Err(format!("only {} of {n} workers stamped", got.len()));
    }
    let last = got.iter().map(|s| s.t).max().unwrap();
    Ok((ms(last.saturating_sub(t0)), ms(t_replies - t0)))
}

pub struct Crash {
    pub crashes: usize,
    pub exit: Option<i32>,
    pub expected: u64,
    pub elapsed_ms: f64,
}

/// Intensity 3 in 5 s, one permanent worker that exits 1 right after stamping: count
/// the crashes (stamps) until the daemon exits.
pub fn crash_loop(ctx: &Ctx) -> Result<Crash, String> {
    let limits = Limits {
        max_restarts: 3,
        max_seconds: 5,
    };
    let (dir, tag) = ctx.instance("dynsup-crash");
    let stamps = Stamps::new(&dir.join("stamps.fifo"))?;
    let config = dir.join("dynsup.toml");
    std::fs::write(
        &config,
        config_text(ctx, 1, &limits, &[("BENCH_EXIT", "1")]),
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = ctx.command(&ctx.dynsup_bin, &dir, &tag, &stamps.path);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.join("s.sock"));
    let mut tree = Tree::spawn(cmd, &tag)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = tree.exited() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed_ms = ms(now_ns() - tree.t0);
    std::thread::sleep(Duration::from_millis(100));
    let crashes = stamps.drain().len();
    Ok(Crash {
        crashes,
        exit: status.and_then(|s| s.code()),
        expected: limits.max_restarts + 1,
        elapsed_ms,
    })
}

pub struct Backoff {
    pub config: String,
    pub gaps_ms: Vec<f64>,
    pub expected_ms: Vec<f64>,
}

/// Backoff: one permanent worker that exits 1 right after stamping, with
/// `backoff = { initial_ms = 50, multiplier = 2, max_ms = 400 }`; the gaps between
/// consecutive stamps against the curve 50, 100, 200, 400, 400, ... ms.
pub fn backoff_curve(ctx: &Ctx) -> Result<Backoff, String> {
    const INITIAL: f64 = 50.0;
    const MULT: f64 = 2.0;
    const MAX: f64 = 400.0;
    const STARTS: usize = 8;
    let extra = "backoff = { initial_ms = 50, multiplier = 2, max_ms = 400 }";
    let (dir, tag) = ctx.instance("dynsup-backoff");
    let stamps = Stamps::new(&dir.join("stamps.fifo"))?;
    let config = dir.join("dynsup.toml");
    std::fs::write(
        &config,
        config_text_with(ctx, 1, &NEVER_TRIP, &[("BENCH_EXIT", "1")], extra),
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = ctx.command(&ctx.dynsup_bin, &dir, &tag, &stamps.path);
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.join("s.sock"));
    let mut tree = Tree::spawn(cmd, &tag)?;
    let got = stamps.collect(STARTS, Duration::from_secs(15));
    if got.len() < STARTS {
        let why = match tree.exited() {
            Some(st) => format!("the daemon exited ({st}; see {}/stderr.log)", dir.display()),
            None => "timeout".into(),
        };
        return Err(format!(
            "only {} of {STARTS} starts stamped: {why}",
            got.len()
        ));
    }
    let mut t: Vec<u64> = got.iter().map(|s| s.t).collect();
    t.sort_unstable();
    let gaps_ms: Vec<f64> = t.windows(2).map(|w| ms(w[1] - w[0])).collect();
    let expected_ms = (0..gaps_ms.len())
        .map(|i| (INITIAL * MULT.powi(i as i32)).min(MAX))
        .collect();
    Ok(Backoff {
        config: extra.to_string(),
        gaps_ms,
        expected_ms,
    })
}

/// `n` pipelined `start`s on one connection (all written at once, replies read as they
/// come), with or without a state file: send → last reply, ms, and the bytes the daemon
/// wrote meanwhile (`wchar` of /proc/PID/io: the state file, and its log lines, which
/// are the same in both runs).
pub fn pipelined_starts(ctx: &Ctx, n: usize, durable: bool) -> Result<(f64, u64), String> {
    let label = if durable {
        "dynsup-durable"
    } else {
        "dynsup-volatile"
    };
    let (probe_dir, _) = ctx.instance(&format!("{label}-state"));
    let mut text = config_text(ctx, 0, &NEVER_TRIP, &[]);
    if durable {
        let state = probe_dir.join("state.json");
        text = text.replacen(
            "[supervisor]\n",
            &format!("[supervisor]\nstate_file = \"{}\"\n", state.display()),
            1,
        );
    }
    let d = start_with(ctx, label, 0, &text, Stderr::File)?;
    let (mut w, mut r) = d.client()?.split();
    let mut buf = Vec::with_capacity(n * 48);
    for i in 0..n {
        let _ = writeln!(
            &mut buf,
            r#"{{"cmd":"start","name":"w{i}","template":"w"}}"#
        );
    }
    let pid = d.tree.pid();
    let before = util::io_of(pid).map_or(0, |(w, _)| w);
    let t0 = now_ns();
    let writer = std::thread::spawn(move || w.write_all(&buf).map(|_| w));
    let mut line = String::new();
    for _ in 0..n {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if !line.contains("\"ok\":true") {
            return Err(format!("a start failed: {}", line.trim()));
        }
    }
    let elapsed = ms(now_ns() - t0);
    let after = util::io_of(pid).map_or(0, |(w, _)| w);
    let _w = writer.join().map_err(|_| "writer panicked")?;
    Ok((elapsed, after.saturating_sub(before)))
}

/// `lookup` latency, 16 clients, while `crashers` workers crash-loop under backoff
/// (`/bin/false`; backoff from 100 ms, doubling, to the default 30 s cap, jitter 0.5:
/// they crash together, and the jitter spreads their restarts) beside 1000 stable
/// workers, measured from 5 s after the crashers started.
pub fn lookup_under_churn(ctx: &Ctx, crashers: usize, per: usize) -> Result<Samples, String> {
    let extra = "\n[templates.crash]\ncommand = [\"/bin/false\"]\nrestart = \"permanent\"\nbackoff = { initial_ms = 100, jitter = 0.5 }\n";
    let mut text = config_text(ctx, 0, &NEVER_TRIP, &[]) + extra;
    for i in 0..1000 {
        let _ = write!(text, "\n[[children]]\nname = \"w{i}\"\ntemplate = \"w\"\n");
    }
    let d = start_with(ctx, "dynsup-churn", 1000, &text, Stderr::File)?;
    let mut c = d.client()?;
    for i in 0..crashers {
        c.call(&format!(
            r#"{{"cmd":"start","name":"crash{i}","template":"crash"}}"#
        ))?;
    }
    // Let the loops settle into their backoff cycle.
    std::thread::sleep(Duration::from_secs(5));
    lookup_concurrent(&d, 16, per)
}
