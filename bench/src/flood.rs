//! The flood scenario (issue 10): one worker writing as fast as it can.
//!
//! 1. **Lookup under flood.** A daemon with `QUIET` stamping workers and a `flood`
//!    template running `yes`. Paced `lookup` clients run all along; the driver
//!    alternates a quiet window and a flood window (`start floodK` … `stop floodK`), so
//!    the machine's noise falls on both alike, and takes other clients' latency in each,
//!    with the daemon's CPU time (utime+stime), the bytes the worker wrote and the daemon
//!    wrote (`/proc/PID/io`) and the lines the daemon says it dropped (`log_dropped`),
//!    over each flood window. Variants: the daemon's stderr to a file, to /dev/null, and
//!    with `[supervisor] log_dir` (per-worker files), the latter with the default rate
//!    limit and with `log_rate_limit = "off"`.
//! 2. **Capture throughput.** A fixed stream (`bench/c/flood.c`: LINES lines of WIDTH
//!    bytes) into files: the floor (`flood | cat > file`), dynsup (the worker's lines via
//!    the daemon's stderr to a file, and via `log_dir`), runit's `svlogd` and s6's
//!    `s6-log` reading the same stream on a pipe; trials interleaved. What arrived is
//!    counted in the files (whole lines: each ends in "xxxx\n"), against what was sent.

use crate::dynsup::{self, Client, Daemon, Stderr};
use crate::harness::Ctx;
use crate::util::{self, Samples};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Quiet workers next to the flooding one (the names the clients look up).
pub const QUIET: usize = 10;
/// Paced `lookup` clients, each sending one request every `PERIOD` (request/reply).
pub const CLIENTS: usize = 2;
pub const PERIOD: Duration = Duration::from_millis(1);
/// The capture stream's line width, newline included.
pub const WIDTH: u64 = 100;
/// Rotation for every subject that rotates (dynsup `log_dir`, svlogd, s6-log): files
/// of 16 MiB, 20 kept, so that nothing of the stream is deleted.
pub const ROTATE_BYTES: u64 = 16 * 1024 * 1024;
pub const ROTATE_KEEP: u64 = 20;
/// A capture is over once its files have not grown for this long (dynsup: the worker
/// stays up, so there is no exit to wait for); its end is the last growth seen.
const SETTLED: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Flood {
    pub rounds: usize,
    pub window: Duration,
    pub latency: Vec<LatencyVariant>,
    pub capture_lines: u64,
    pub capture_reps: usize,
    pub capture: Vec<CaptureSubject>,
    /// The file system the files are written to (`df -T`'s type of the temp dir).
    pub fs_type: String,
    /// The lookup daemon's config (first variant; `[[children]]` cut short).
    pub config: String,
    pub notes: Vec<String>,
}

#[derive(Default)]
pub struct LatencyVariant {
    pub label: String,
    /// Why it did not run ("n/a: this binary has no log_dir").
    pub skipped: Option<String>,
    pub error: Option<String>,
    /// Request → reply, µs, of the requests sent in the quiet / flood windows.
    pub quiet: Samples,
    pub flood: Samples,
    pub windows: Vec<FloodWindow>,
    /// The config's keys that differ from the other variants (shown in the report).
    pub keys: String,
}

#[derive(Clone, Debug, Default)]
pub struct FloodWindow {
    pub secs: f64,
    /// The daemon's utime+stime over the window, seconds.
    pub cpu_s: f64,
    /// Bytes the flooding worker wrote (its /proc/PID/io wchar).
    pub offered: u64,
    /// Bytes the daemon wrote (wchar), less the replies the lookup clients read.
    pub written: u64,
    /// The daemon's write calls (syscw).
    pub writes: u64,
    /// `log_dropped` of the flooding worker at the window's end (`list`).
    pub dropped: u64,
    /// `lookup`s sent in the window, and their p99, µs.
    pub lookups: usize,
    pub p99_us: f64,
    /// `stop` of the flooding worker: request → reply, ms.
    pub stop_ms: f64,
}

#[derive(Default)]
pub struct CaptureSubject {
    pub label: String,
    pub skipped: Option<String>,
    pub trials: Vec<CaptureTrial>,
    pub errors: Vec<String>,
    /// How the subject was run (shown in the report).
    pub how: String,
    pub is_floor: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CaptureTrial {
    /// Start of the stream → the last byte in the files, s.
    pub secs: f64,
    /// Whole lines of the stream found in the files.
    pub lines: u64,
    /// Bytes of the files that hold them (prefixes included).
    pub file_bytes: u64,
    /// CPU of the capturing process(es), s: the consumer's rusage, or the daemon's
    /// utime+stime over the trial.
    pub cpu_s: f64,
    /// Peak RSS (VmHWM) of the consumer, sampled every 5 ms while it runs, or of the
    /// daemon at the end, KiB.
    pub peak_rss_kb: Option<u64>,
    /// Lines the daemon says it dropped (`log_dropped`); None for the others.
    pub dropped_reported: Option<u64>,
}

impl CaptureSubject {
    pub fn median(&self, f: impl Fn(&CaptureTrial) -> f64) -> f64 {
        Samples::new(self.trials.iter().map(f).collect()).median()
    }
}

/// What the binary under test accepts, learnt by starting it on a config with the key.
struct Support {
    /// `[supervisor] log_dir` (with `log_max_bytes` and `log_keep`): Ok, or the row's
    /// text when it is not there.
    log_dir: Result<(), String>,
    /// The template key `log_rate_limit = "off"`.
    rate_limit_off: bool,
}

/// `peers`: the peers of this run (empty in quick mode or with `--no-peers`): runit
/// brings svlogd, s6 brings s6-log.
pub fn run(ctx: &Ctx, peers: &[&str]) -> Flood {
    let mut f = Flood {
        rounds: if ctx.quick { 1 } else { 3 },
        window: Duration::from_millis(if ctx.quick { 1500 } else { 3000 }),
        capture_lines: if ctx.quick { 200_000 } else { 1_000_000 },
        capture_reps: if ctx.quick { 1 } else { 3 },
        fs_type: fs_type(&ctx.tmp),
        ..Default::default()
    };
    let support = probe_support(ctx);
    if !support.rate_limit_off {
        f.notes.push(
            "this binary has no `log_rate_limit` key: the variants that set it to \"off\" run without it \
             (nothing is rate-limited in this binary)"
                .into(),
        );
    }
    latency_phase(ctx, &support, &mut f);
    capture_phase(ctx, &support, peers, &mut f);
    f
}

fn fs_type(dir: &Path) -> String {
    Command::new("df")
        .arg("--output=fstype")
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn supervisor_head() -> String {
    "[supervisor]\nmax_restarts = 1000000\nmax_seconds = 1\n".into()
}

/// The `[supervisor]` keys that turn on per-worker files in `dir`, rotated as the
/// peers are (16 MiB files, 20 kept).
fn log_dir_keys(dir: &Path) -> String {
    format!(
        "log_dir = \"{}\"\nlog_max_bytes = {ROTATE_BYTES}\nlog_keep = {ROTATE_KEEP}\n",
        dir.display()
    )
}

const RATE_OFF: &str = "log_rate_limit = \"off\"\n";

fn probe_support(ctx: &Ctx) -> Support {
    let (dir, _) = ctx.instance("flood-probe-files");
    let template = |extra: &str| {
        format!(
            "\n[templates.t]\ncommand = [\"{}\"]\n{extra}",
            ctx.stamp_bin.display()
        )
    };
    let rate = dynsup::start_with(
        ctx,
        "flood-probe-rate",
        0,
        &format!("{}{}", supervisor_head(), template(RATE_OFF)),
        Stderr::File,
    );
    let rate_limit_off = rate.is_ok();
    drop(rate);
    let logs = dir.join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let text = format!(
        "{}{}{}",
        supervisor_head(),
        log_dir_keys(&logs),
        template(if rate_limit_off { RATE_OFF } else { "" })
    );
    let log_dir = match dynsup::start_with(ctx, "flood-probe-log-dir", 0, &text, Stderr::File) {
        Ok(_) => Ok(()),
        Err(e) if e.contains("`log_dir`") => Err("n/a: this binary has no log_dir".into()),
        Err(e) => Err(format!("failed: {e}")),
    };
    Support {
        log_dir,
        rate_limit_off,
    }
}

// ------------------------------------------------------------------ lookup under flood

struct VariantSpec {
    label: &'static str,
    stderr: Stderr,
    log_dir: bool,
    rate_off: bool,
}

const VARIANTS: [VariantSpec; 4] = [
    VariantSpec {
        label: "daemon stderr → file",
        stderr: Stderr::File,
        log_dir: false,
        rate_off: false,
    },
    VariantSpec {
        label: "daemon stderr → /dev/null",
        stderr: Stderr::DevNull,
        log_dir: false,
        rate_off: false,
    },
    VariantSpec {
        label: "`log_dir` (stderr → file)",
        stderr: Stderr::File,
        log_dir: true,
        rate_off: false,
    },
    VariantSpec {
        label: "`log_dir`, `log_rate_limit = \"off\"`",
        stderr: Stderr::File,
        log_dir: true,
        rate_off: true,
    },
];

fn latency_phase(ctx: &Ctx, support: &Support, f: &mut Flood) {
    for spec in &VARIANTS {
        let mut v = LatencyVariant {
            label: spec.label.to_string(),
            ..Default::default()
        };
        if spec.log_dir {
            if let Err(why) = &support.log_dir {
                v.skipped = Some(why.clone());
                f.latency.push(v);
                continue;
            }
        }
        ctx.log(&format!(
            "flood: lookup latency, {} round(s) of {:.1} s quiet / {:.1} s flood, {}",
            f.rounds,
            f.window.as_secs_f64(),
            f.window.as_secs_f64(),
            spec.label
        ));
        let (files, _) = ctx.instance("flood-logs");
        let mut sup = supervisor_head();
        let mut keys = String::new();
        if spec.log_dir {
            let _ = std::fs::create_dir_all(files.join("logs"));
            sup.push_str(&log_dir_keys(&files.join("logs")));
            keys.push_str(&log_dir_keys(Path::new("DIR")));
        }
        let mut flood_extra = String::new();
        if spec.rate_off && support.rate_limit_off {
            flood_extra.push_str(RATE_OFF);
            keys.push_str(RATE_OFF);
        }
        let text = format!(
            "{sup}\n[templates.w]\ncommand = [\"{stamp}\"]\nrestart = \"permanent\"\nshutdown_ms = 1000\n\n\
             [templates.flood]\ncommand = [\"/usr/bin/yes\"]\nrestart = \"permanent\"\nshutdown_ms = 1000\n{flood_extra}{children}",
            stamp = ctx.stamp_bin.display(),
            children = (0..QUIET)
                .map(|i| format!("\n[[children]]\nname = \"w{i}\"\ntemplate = \"w\"\n"))
                .collect::<String>()
        );
        if f.config.is_empty() {
            if let Some(i) = text.find("\n[[children]]") {
                f.config = format!(
                    "{}\n[[children]]\nname = \"w0\"\ntemplate = \"w\"\n# … w0 to w{}\n",
                    &text[..i + 1],
                    QUIET - 1
                );
            }
        }
        v.keys = if keys.is_empty() {
            "(none: the defaults)".into()
        } else {
            keys.trim_end().replace('\n', "; ")
        };
        match dynsup::start_with(ctx, "dynsup-flood", QUIET, &text, spec.stderr)
            .and_then(|d| measure_variant(&d, f.rounds, f.window, &mut v))
        {
            Ok(()) => {}
            Err(e) => v.error = Some(e),
        }
        f.latency.push(v);
    }
}

/// One `lookup` sent at `at`, answered after `us` µs with a reply of `bytes` bytes.
struct Probe {
    at: Instant,
    us: f64,
    bytes: usize,
}

/// A lookup client's thread: every probe it took, or why it stopped.
type ClientThread = JoinHandle<Result<Vec<Probe>, String>>;

/// `CLIENTS` threads, each on its own connection, sending one `lookup` per `PERIOD`
/// (request/reply: a slow answer delays the next request) until `stop`.
fn spawn_clients(d: &Daemon, stop: &Arc<AtomicBool>) -> Result<Vec<ClientThread>, String> {
    let mut out = Vec::new();
    for k in 0..CLIENTS {
        let mut c = d.client()?;
        let stop = stop.clone();
        out.push(std::thread::spawn(move || {
            let mut probes = Vec::with_capacity(1 << 16);
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let req = format!(r#"{{"cmd":"lookup","name":"w{}"}}"#, i % QUIET);
                i += 1;
                let at = Instant::now();
                let reply = c.call(&req)?;
                let us = at.elapsed().as_secs_f64() * 1e6;
                if dynsup::json_int(reply, "\"pid\":").is_none() {
                    return Err(format!("lookup failed: {reply}"));
                }
                probes.push(Probe {
                    at,
                    us,
                    bytes: reply.len() + 1,
                });
                let next = at + PERIOD;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            Ok(probes)
        }));
    }
    Ok(out)
}

struct Window {
    flood: bool,
    from: Instant,
    to: Instant,
    stats: FloodWindow,
}

fn measure_variant(
    d: &Daemon,
    rounds: usize,
    window: Duration,
    v: &mut LatencyVariant,
) -> Result<(), String> {
    let pid = d.pid();
    let mut ctl = d.client()?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(d, &stop)?;
    std::thread::sleep(Duration::from_millis(200));
    let mut windows: Vec<Window> = Vec::new();
    let hz = util::ticks_per_sec();
    let result = (|| -> Result<(), String> {
        for round in 0..rounds {
            let from = Instant::now();
            std::thread::sleep(window);
            windows.push(Window {
                flood: false,
                from,
                to: Instant::now(),
                stats: FloodWindow::default(),
            });

            let name = format!("flood{round}");
            let ticks0 = util::cpu_ticks(pid).ok_or("the daemon is gone")?;
            let io0 = util::io_of(pid).ok_or("cannot read the daemon's /proc/PID/io")?;
            let from = Instant::now();
            let reply = ctl
                .call(&format!(
                    r#"{{"cmd":"start","name":"{name}","template":"flood"}}"#
                ))?
                .to_string();
            let fpid = dynsup::json_int(&reply, "\"pid\":")
                .ok_or_else(|| format!("start {name}: {reply}"))? as i32;
            let end = from + window;
            let now = Instant::now();
            if end > now {
                std::thread::sleep(end - now);
            }
            let to = Instant::now();
            let ticks1 = util::cpu_ticks(pid).ok_or("the daemon is gone")?;
            let io1 = util::io_of(pid).ok_or("the daemon is gone")?;
            let offered = util::io_of(fpid).map_or(0, |(w, _)| w);
            let dropped = log_dropped(&mut ctl, &name)?;
            let t = Instant::now();
            let reply = ctl.call(&format!(r#"{{"cmd":"stop","name":"{name}"}}"#))?;
            if !reply.contains("\"ok\":true") {
                return Err(format!("stop {name}: {reply}"));
            }
            let stop_ms = t.elapsed().as_secs_f64() * 1e3;
            windows.push(Window {
                flood: true,
                from,
                to,
                stats: FloodWindow {
                    secs: (to - from).as_secs_f64(),
                    cpu_s: (ticks1 - ticks0) as f64 / hz,
                    offered,
                    written: io1.0 - io0.0,
                    writes: io1.1 - io0.1,
                    dropped,
                    stop_ms,
                    ..Default::default()
                },
            });
            settle(pid);
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let mut probes = Vec::new();
    for h in clients {
        match h.join() {
            Ok(Ok(p)) => probes.extend(p),
            Ok(Err(e)) => return Err(format!("lookup client: {e}")),
            Err(_) => return Err("a lookup client panicked".into()),
        }
    }
    result?;
    let mut quiet = Vec::new();
    let mut flood = Vec::new();
    for w in &mut windows {
        let inside: Vec<&Probe> = probes
            .iter()
            .filter(|p| p.at >= w.from && p.at < w.to)
            .collect();
        let us: Vec<f64> = inside.iter().map(|p| p.us).collect();
        if w.flood {
            let replies: u64 = inside.iter().map(|p| p.bytes as u64).sum();
            w.stats.written = w.stats.written.saturating_sub(replies);
            w.stats.lookups = us.len();
            w.stats.p99_us = Samples::new(us.clone()).pct(99.0);
            flood.extend(us);
            v.windows.push(w.stats.clone());
        } else {
            quiet.extend(us);
        }
    }
    v.quiet = Samples::new(quiet);
    v.flood = Samples::new(flood);
    Ok(())
}

/// `log_dropped` of `name` in `list` (0 when absent).
fn log_dropped(c: &mut Client, name: &str) -> Result<u64, String> {
    let reply = c.call(r#"{"cmd":"list"}"#)?;
    let v: serde_json::Value = serde_json::from_str(reply).map_err(|e| format!("list: {e}"))?;
    Ok(v["workers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == name))
        .and_then(|w| w["log_dropped"].as_u64())
        .unwrap_or(0))
}

/// Wait until the daemon has stopped writing (what the stopped worker left in its pipe,
/// or in the daemon's queues, is out): its wchar unchanged for 200 ms, at most 30 s.
fn settle(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = util::io_of(pid).map(|x| x.0);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = util::io_of(pid).map(|x| x.0);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(200) {
            return;
        }
    }
}

// ------------------------------------------------------------------ capture throughput

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Floor,
    DynsupStderr,
    DynsupLogDir,
    Svlogd,
    S6Log,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Floor => "floor: `flood` piped into `cat > file`",
            Subject::DynsupStderr => "dynsup, worker lines via the daemon's stderr → file",
            Subject::DynsupLogDir => "dynsup, `log_dir` (`DIR/gen.log`)",
            Subject::Svlogd => "runit `svlogd -tt DIR`",
            Subject::S6Log => "s6 `s6-log T DIR`",
        }
    }
}

fn capture_phase(ctx: &Ctx, support: &Support, peers: &[&str], f: &mut Flood) {
    let lines = f.capture_lines;
    let flood_bin = ctx.floor_bin.with_file_name("flood");
    let mut subjects: Vec<(Subject, CaptureSubject)> = Vec::new();
    let mut add = |s: Subject, how: String, skipped: Option<String>| {
        subjects.push((
            s,
            CaptureSubject {
                label: s.label().to_string(),
                skipped,
                how,
                is_floor: s == Subject::Floor,
                ..Default::default()
            },
        ))
    };
    let stream = format!("{} {WIDTH} {lines}", flood_bin.display());
    add(Subject::Floor, format!("`{stream} | cat > FILE`"), None);
    let rate = if support.rate_limit_off {
        RATE_OFF.trim()
    } else {
        ""
    };
    add(
        Subject::DynsupStderr,
        format!(
            "a template `gen` running `flood -d DONE -H {WIDTH} {lines}`{}, started over the socket; \
             the daemon's stderr is a file; its lines are counted in that file",
            if rate.is_empty() { String::new() } else { format!(" with `{rate}`") }
        ),
        None,
    );
    add(
        Subject::DynsupLogDir,
        format!(
            "the same worker, with `[supervisor] log_dir = DIR`, `log_max_bytes = {ROTATE_BYTES}`, \
             `log_keep = {ROTATE_KEEP}` and `{}` on the template; counted in `DIR/gen.log*`",
            RATE_OFF.trim()
        ),
        support.log_dir.clone().err(),
    );
    for (s, peer, prog, how) in [
        (
            Subject::Svlogd,
            "runit",
            "svlogd",
            format!("`{stream} | svlogd -tt DIR`, DIR/config: `s{ROTATE_BYTES}` `n{ROTATE_KEEP}`"),
        ),
        (
            Subject::S6Log,
            "s6",
            "s6-log",
            format!("`{stream} | s6-log n{ROTATE_KEEP} s{ROTATE_BYTES} T DIR` (default, non-blocking mode)"),
        ),
    ] {
        let skipped = if ctx.quick {
            Some("skipped: quick mode".to_string())
        } else if !peers.contains(&peer) {
            Some(format!("skipped: {peer} is not among the peers of this run"))
        } else if find_prog(prog).is_none() {
            Some(format!("skipped: {prog} is not installed"))
        } else {
            None
        };
        add(s, how, skipped);
    }
    let live: Vec<usize> = (0..subjects.len())
        .filter(|&i| subjects[i].1.skipped.is_none())
        .collect();
    ctx.log(&format!(
        "flood: capture of {lines} lines of {WIDTH} B, {} repetition(s) of {} subjects, interleaved",
        f.capture_reps,
        live.len()
    ));
    for rep in 0..f.capture_reps {
        for j in 0..live.len() {
            let (s, rec) = &mut subjects[live[(j + rep) % live.len()]];
            let res = match s {
                Subject::Floor | Subject::Svlogd | Subject::S6Log => {
                    capture_pipe(ctx, *s, &flood_bin, lines)
                }
                Subject::DynsupStderr => capture_dynsup(ctx, false, support, &flood_bin, lines),
                Subject::DynsupLogDir => capture_dynsup(ctx, true, support, &flood_bin, lines),
            };
            match res {
                Ok(t) => rec.trials.push(t),
                Err(e) => rec.errors.push(e),
            }
        }
    }
    f.capture = subjects.into_iter().map(|(_, r)| r).collect();
}

fn find_prog(prog: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.exists())
}

/// Every process of `tag` SIGKILLed and reaped when it goes out of scope.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        util::sweep(&self.0);
    }
}

fn base_command(program: &Path, tag: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("BENCH_TAG", tag)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd
}

/// `flood WIDTH LINES | CONSUMER`: start of the generator → the consumer's exit (it
/// exits at EOF once everything is written).
fn capture_pipe(
    ctx: &Ctx,
    s: Subject,
    flood_bin: &Path,
    lines: u64,
) -> Result<CaptureTrial, String> {
    let name = match s {
        Subject::Floor => "capture-floor",
        Subject::Svlogd => "capture-svlogd",
        _ => "capture-s6-log",
    };
    let (dir, tag) = ctx.instance(name);
    let _sweep = Sweep(tag.clone());
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let mut consumer = match s {
        Subject::Floor => {
            let mut c = base_command(Path::new("/bin/cat"), &tag, &dir);
            c.stdout(File::create(out.join("out.log")).map_err(|e| e.to_string())?);
            c
        }
        Subject::Svlogd => {
            std::fs::write(
                out.join("config"),
                format!("s{ROTATE_BYTES}\nn{ROTATE_KEEP}\n"),
            )
            .map_err(|e| e.to_string())?;
            let mut c = base_command(&find_prog("svlogd").ok_or("no svlogd")?, &tag, &dir);
            c.arg("-tt").arg(&out);
            c
        }
        _ => {
            let mut c = base_command(&find_prog("s6-log").ok_or("no s6-log")?, &tag, &dir);
            c.arg(format!("n{ROTATE_KEEP}"))
                .arg(format!("s{ROTATE_BYTES}"))
                .arg("T")
                .arg(&out);
            c
        }
    };
    let mut gen = base_command(flood_bin, &tag, &dir);
    gen.arg(WIDTH.to_string())
        .arg(lines.to_string())
        .stdout(Stdio::piped());
    let t0 = Instant::now();
    let mut g = gen.spawn().map_err(|e| format!("flood: {e}"))?;
    let pipe = g.stdout.take().ok_or("no pipe")?;
    consumer.stdin(Stdio::from(pipe));
    let c = consumer
        .spawn()
        .map_err(|e| format!("{}: {e}", s.label()))?;
    // Its peak RSS, sampled while it runs (ru_maxrss would also count the bench's own
    // pages the child had before its exec).
    let cpid = c.id() as i32;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = util::hwm_kb(cpid).unwrap_or(0).max(peak);
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let waited = wait4(cpid);
    let secs = t0.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let (status, rusage) = waited?;
    let gst = g.wait().map_err(|e| e.to_string())?;
    if status != 0 || !gst.success() {
        return Err(format!(
            "{}: consumer status {status:#x}, generator {gst}",
            s.label()
        ));
    }
    let (found, file_bytes) = count_lines(&out);
    let cpu_s = tv(rusage.ru_utime) + tv(rusage.ru_stime);
    let _ = std::fs::remove_dir_all(&out);
    Ok(CaptureTrial {
        secs,
        lines: found,
        file_bytes,
        cpu_s,
        peak_rss_kb: Some(peak).filter(|&k| k > 0),
        dropped_reported: None,
    })
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Reap `pid` (blocking), with its resource usage.
fn wait4(pid: i32) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to our locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((status, ru));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4({pid}): {e}"));
        }
    }
}

/// dynsup capturing the stream of one worker (`gen`, started over the socket on a daemon
/// with no other worker): `start` request → the last growth of the files, which must
/// then stay unchanged for `SETTLED` after the worker has written its last line.
fn capture_dynsup(
    ctx: &Ctx,
    log_dir: bool,
    support: &Support,
    flood_bin: &Path,
    lines: u64,
) -> Result<CaptureTrial, String> {
    let (files, _) = ctx.instance("capture-dynsup-files");
    let logs = files.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let done = files.join("done");
    let mut text = supervisor_head();
    if log_dir {
        text.push_str(&log_dir_keys(&logs));
    }
    let _ = write!(
        text,
        "\n[templates.gen]\ncommand = [\"{}\", \"-d\", \"{}\", \"-H\", \"{WIDTH}\", \"{lines}\"]\n\
         restart = \"permanent\"\nshutdown_ms = 1000\n{}",
        flood_bin.display(),
        done.display(),
        if support.rate_limit_off { RATE_OFF } else { "" }
    );
    let label = if log_dir {
        "capture-dynsup-log-dir"
    } else {
        "capture-dynsup-stderr"
    };
    let d = dynsup::start_with(ctx, label, 0, &text, Stderr::File)?;
    let pid = d.pid();
    let stderr_file = d
        .config
        .parent()
        .ok_or("no instance dir")?
        .join("stderr.log");
    let watched: PathBuf = if log_dir { logs.clone() } else { stderr_file };
    let mut c = d.client()?;
    let ticks0 = util::cpu_ticks(pid).ok_or("the daemon is gone")?;
    let t0 = Instant::now();
    let reply = c
        .call(r#"{"cmd":"start","name":"gen","template":"gen"}"#)?
        .to_string();
    if !reply.contains("\"ok\":true") {
        return Err(format!("start gen: {reply}"));
    }
    let deadline = t0 + Duration::from_secs(300);
    let mut size = total_size(&watched);
    let mut grew = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(1));
        let now = total_size(&watched);
        if now != size {
            size = now;
            grew = Instant::now();
        } else if done.exists() && grew.elapsed() >= SETTLED {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: the files still grow after 300 s",
                watched.display()
            ));
        }
        if util::cpu_ticks(pid).is_none() {
            return Err("the daemon exited during the capture".into());
        }
    }
    let secs = (grew - t0).as_secs_f64();
    let ticks1 = util::cpu_ticks(pid).ok_or("the daemon is gone")?;
    let hwm = util::hwm_kb(pid);
    let dropped = log_dropped(&mut c, "gen")?;
    drop(c);
    let (found, file_bytes) = count_lines(&watched);
    drop(d);
    let _ = std::fs::remove_dir_all(&files);
    Ok(CaptureTrial {
        secs,
        lines: found,
        file_bytes,
        cpu_s: (ticks1 - ticks0) as f64 / util::ticks_per_sec(),
        peak_rss_kb: hwm,
        dropped_reported: Some(dropped),
    })
}

/// The size of a file, or of every file in a directory (not recursive).
fn total_size(path: &Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
        Err(_) => std::fs::metadata(path).map_or(0, |m| m.len()),
    }
}

/// Whole stream lines (ending in "xxxx\n") in a file, or in every file of a directory;
/// and the bytes of the files holding any.
fn count_lines(path: &Path) -> (u64, u64) {
    let files: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(_) => vec![path.to_path_buf()],
    };
    let mut lines = 0;
    let mut bytes = 0;
    for p in files {
        let Ok(mut file) = File::open(&p) else {
            continue;
        };
        let mut buf = vec![0u8; 1 << 20];
        // The last 4 bytes of the previous chunk, so a marker split across two reads
        // is still seen.
        let mut carry: Vec<u8> = Vec::new();
        let mut here = 0u64;
        let mut size = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            size += n as u64;
            let mut chunk = std::mem::take(&mut carry);
            chunk.extend_from_slice(&buf[..n]);
            here += chunk.windows(5).filter(|w| *w == b"xxxx\n").count() as u64;
            let keep = chunk.len().min(4);
            carry = chunk[chunk.len() - keep..].to_vec();
        }
        if here > 0 {
            lines += here;
            bytes += size;
        }
    }
    (lines, bytes)
}
