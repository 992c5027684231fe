//! `dynsup-worker`: the sample worker supervised by `dynsup`.
//!
//! It is the OS-process twin of the seed's Elixir `GenServer` worker:
//! stdin is its mailbox (one message per line), and it logs events to
//! stderr as `info: ...` / `warn: ...` / `error: ...` lines, which the
//! daemon forwards as `[NAME] line`.
//!
//! Messages: `work` logs `hola`; `raise` panics with
//! `Error, Server <name> has crashed` (exit status 101, an abnormal exit
//! that a `transient` restart policy restarts); anything else is logged
//! as a warning and ignored; empty lines are ignored. SIGTERM logs
//! `Exiting worker: <name> with reason: shutdown` and exits 0 (the
//! `terminate/2` callback); stdin EOF logs `stdin closed, exiting` and
//! exits 0.
//!
//! Name: env `DYNSUP_NAME`, else the first positional argument, else
//! `worker`.
//!
//! Hidden test flags (no `--help`; argv is parsed by hand):
//! - `--ignore-sigterm`: on SIGTERM log `ignoring SIGTERM` and keep running,
//!   so the supervisor has to SIGKILL it after its shutdown timeout.
//! - `--exit-code N`: after logging `Starting "<name>"`, exit with status N.
//! - `--print-pid`: after `Starting`, print `pid=<pid>` to stdout.
//! - `--never-ready`: do not send `READY=1` (to test readiness timeouts).
//! - `--ready-after-ms N`: wait N ms after `Starting` before sending `READY=1`.
//! - `--watchdog-ping-ms N`: send `WATCHDOG=1` every N ms (instead of every half
//!   `WATCHDOG_USEC`), even without `WATCHDOG_USEC`.
//! - `--stop-watchdog-after N`: stop sending `WATCHDOG=1` after N of them, and log
//!   `watchdog: stopped after N pings` (0: never send one).
//! - `--watchdog-trigger-after N`: after N keep-alives, send `WATCHDOG=trigger` once
//!   (logging `watchdog: sending WATCHDOG=trigger` first) and none after it.
//!
//! Readiness: when `NOTIFY_SOCKET` is set (the supervisor serves one to templates with
//! `ready = "notify"` or a `watchdog_ms`), the worker sends sd_notify's `READY=1` and a
//! `STATUS=` line once it has started, as any sd_notify daemon would.
//!
//! Watchdog: when `WATCHDOG_USEC` is set (the supervisor sets it for templates with
//! `watchdog_ms`), the worker sends `WATCHDOG=1` every half of that interval once it
//! is ready, as systemd recommends; it logs `watchdog: sending WATCHDOG=1 every N ms`
//! when it begins.

use std::io::{self, BufRead, Write};
use std::process;

use signal_hook::consts::SIGTERM;
use signal_hook::iterator::Signals;

/// Writes one unbuffered log line to stderr; a failed write is ignored.
fn log(level: &str, msg: &str) {
    let _ = writeln!(io::stderr(), "{level}: {msg}");
}

#[derive(Default)]
struct Opts {
    name: Option<String>,
    ignore_sigterm: bool,
    exit_code: Option<i32>,
    print_pid: bool,
    never_ready: bool,
    ready_after_ms: Option<u64>,
    watchdog_ping_ms: Option<u64>,
    stop_watchdog_after: Option<u64>,
    watchdog_trigger_after: Option<u64>,
}

/// The value of a flag that takes a number.
fn number<T: std::str::FromStr>(
    flag: &str,
    args: &mut impl Iterator<Item = String>,
) -> Result<T, String> {
    let value = args.next().ok_or(format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("invalid {flag} value {value:?}"))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ignore-sigterm" => opts.ignore_sigterm = true,
            "--print-pid" => opts.print_pid = true,
            "--never-ready" => opts.never_ready = true,
            "--exit-code" => opts.exit_code = Some(number("--exit-code", &mut args)?),
            "--ready-after-ms" => opts.ready_after_ms = Some(number(&arg, &mut args)?),
            "--watchdog-ping-ms" => opts.watchdog_ping_ms = Some(number(&arg, &mut args)?),
            "--stop-watchdog-after" => opts.stop_watchdog_after = Some(number(&arg, &mut args)?),
            "--watchdog-trigger-after" => {
                opts.watchdog_trigger_after = Some(number(&arg, &mut args)?)
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag:?}")),
            _ if opts.name.is_none() => opts.name = Some(arg),
            _ => {} // extra positional arguments are ignored
        }
    }
    Ok(opts)
}

fn main() {
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let opts = match parse_args(args) {
        Ok(opts) => opts,
        Err(err) => {
            log("error", &err);
            process::exit(2);
        }
    };
    let name = std::env::var_os("DYNSUP_NAME")
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .or(opts.name.clone())
        .unwrap_or_else(|| "worker".to_string());

    // The handler must be registered before `Starting` is logged: callers
    // synchronise on that line and may send SIGTERM right after it.
    let mut signals = match Signals::new([SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            log("error", &format!("cannot install SIGTERM handler: {err}"));
            process::exit(1);
        }
    };
    let ignore_sigterm = opts.ignore_sigterm;
    let signal_name = name.clone();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if ignore_sigterm {
                log("info", "ignoring SIGTERM");
            } else {
                log(
                    "info",
                    &format!("Exiting worker: {signal_name} with reason: shutdown"),
                );
                process::exit(0);
            }
        }
    });

    log("info", &format!("Starting {name:?}"));
    if opts.print_pid {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "pid={}", process::id());
        let _ = stdout.flush();
    }
    if let Some(code) = opts.exit_code {
        process::exit(code);
    }
    if let Some(ms) = opts.ready_after_ms {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if !opts.never_ready {
        notify_ready(&name);
    }
    start_watchdog(&opts);

    let mut stdin = io::stdin().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => {
                log("info", "stdin closed, exiting");
                process::exit(0);
            }
            Ok(_) => {}
            Err(err) => {
                log("error", &format!("cannot read stdin: {err}"));
                process::exit(1);
            }
        }
        let line = String::from_utf8_lossy(&buf);
        match line.trim_end_matches(['\r', '\n']) {
            "" => {}
            "work" => log("info", "hola"),
            "raise" => panic!("Error, Server {name} has crashed"),
            other => log("warn", &format!("unknown message {other:?} ignored")),
        }
    }
}

/// sd_notify: `READY=1` to `$NOTIFY_SOCKET`. Best effort: a worker without a
/// supervisor listening just carries on.
fn notify_ready(name: &str) {
    let Some(target) = notify_target() else {
        return;
    };
    match sd_notify(&target, &format!("READY=1\nSTATUS=serving as {name}")) {
        Ok(()) => log("info", "sent READY=1"),
        Err(e) => log("warn", &format!("cannot notify readiness to {target}: {e}")),
    }
}

/// The keep-alives, on a thread of their own: every `--watchdog-ping-ms`, else every
/// half `WATCHDOG_USEC`; none when neither is set or there is no `NOTIFY_SOCKET`.
fn start_watchdog(opts: &Opts) {
    let period_ms = opts.watchdog_ping_ms.or_else(|| {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (usec > 0).then_some((usec / 2 / 1000).max(1))
    });
    let (Some(period_ms), Some(target)) = (period_ms, notify_target()) else {
        return;
    };
    let stop_after = opts.stop_watchdog_after;
    let trigger_after = opts.watchdog_trigger_after;
    log(
        "info",
        &format!("watchdog: sending WATCHDOG=1 every {period_ms} ms"),
    );
    std::thread::spawn(move || {
        let mut sent: u64 = 0;
        loop {
            if stop_after == Some(sent) {
                log("info", &format!("watchdog: stopped after {sent} pings"));
                return;
            }
            if trigger_after == Some(sent) {
                // Logged first: the supervisor may kill it as soon as it is sent.
                log("info", "watchdog: sending WATCHDOG=trigger");
                let _ = sd_notify(&target, "WATCHDOG=trigger");
                return;
            }
            if let Err(e) = sd_notify(&target, "WATCHDOG=1") {
                log("warn", &format!("cannot send WATCHDOG=1 to {target}: {e}"));
            }
            sent += 1;
            std::thread::sleep(std::time::Duration::from_millis(period_ms));
        }
    });
}

/// `$NOTIFY_SOCKET`, if set.
fn notify_target() -> Option<String> {
    std::env::var_os("NOTIFY_SOCKET").map(|t| t.to_string_lossy().into_owned())
}

/// One sd_notify datagram to `target` (a path, or `@name` for an abstract socket).
fn sd_notify(target: &str, message: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match target.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(target),
    }?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}
