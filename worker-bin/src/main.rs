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
//!
//! Readiness: when `NOTIFY_SOCKET` is set (the supervisor serves one to templates with
//! `ready = "notify"`), the worker sends sd_notify's `READY=1` and a `STATUS=` line
//! once it has started, as any sd_notify daemon would.

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
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ignore-sigterm" => opts.ignore_sigterm = true,
            "--print-pid" => opts.print_pid = true,
            "--never-ready" => opts.never_ready = true,
            "--exit-code" => {
                let value = args.next().ok_or("--exit-code needs a value")?;
                let code = value
                    .parse()
                    .map_err(|_| format!("invalid --exit-code value {value:?}"))?;
                opts.exit_code = Some(code);
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
        .or(opts.name)
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
    if !opts.never_ready {
        notify_ready(&name);
    }

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

/// sd_notify: `READY=1` to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
/// socket). Best effort: a worker without a supervisor listening just carries on.
fn notify_ready(name: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let addr = match target.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    let message = format!("READY=1\nSTATUS=serving as {name}");
    let sent = addr.and_then(|addr| {
        UnixDatagram::unbound().and_then(|socket| socket.send_to_addr(message.as_bytes(), &addr))
    });
    match sent {
        Ok(_) => log("info", "sent READY=1"),
        Err(e) => log("warn", &format!("cannot notify readiness to {target}: {e}")),
    }
}
