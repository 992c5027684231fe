//! The CLI side of the socket: send one request, read one reply, print it (or, for
//! `watch`, print the event stream until the daemon closes it).
//!
//! Exit statuses: [`ExitStatus::Ok`], [`ExitStatus::Error`] when the daemon answered
//! with an error, [`ExitStatus::Unreachable`] when it could not be reached (the message
//! names the socket path and the reason). Usage errors are clap's.

use crate::cli::Command;
use crate::exit_status::ExitStatus;
use crate::protocol::{
    Counts, Event, ExitReport, HealthInfo, HealthReport, LogEvent, LogLine, LogStream, Processes,
    Reply, Request, RolloutReport, StopReport, WorkerInfo, WorkerStateName, MAX_REQUEST_LINE,
    PROTOCOL_VERSION,
};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn run(socket: &Path, command: Command, json: bool) -> ExitStatus {
    let count_all = matches!(command, Command::Count { all: true, .. });
    let tree = matches!(command, Command::List { tree: true, .. });
    let timestamps = matches!(
        command,
        Command::Logs {
            timestamps: true,
            ..
        }
    );
    let wait_ready = match &command {
        Command::Start {
            name,
            wait_ready: true,
            ..
        } => Some(name.clone()),
        _ => None,
    };
    let request = match to_request(command) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("dynsup: {message}");
            return ExitStatus::Usage;
        }
    };
    let line_len = serde_json::to_vec(&request).map_or(0, |line| line.len());
    if line_len > MAX_REQUEST_LINE {
        eprintln!(
            "dynsup: the request would be {line_len} bytes, more than the daemon takes ({MAX_REQUEST_LINE}); name fewer workers, or use --template or --all"
        );
        return ExitStatus::Usage;
    }
    // Several requests on one connection: the replies come back in order.
    let mut requests = vec![request.clone()];
    if let Some(name) = wait_ready {
        requests.push(Request::WaitReady { name });
    }
    if tree {
        requests.push(Request::Ps { name: None });
    }
    if requests.len() > 1 {
        return run_sequence(socket, &requests, json);
    }
    if let Request::Watch { .. } = request {
        return watch(socket, &request, json);
    }
    if let Request::Logs { follow, .. } = request {
        return logs(socket, &request, follow, LogFormat { json, timestamps });
    }
    let reply = match exchange(socket, &request) {
        Ok(reply) => reply,
        Err(message) => {
            eprintln!("dynsup: {message}");
            return ExitStatus::Unreachable;
        }
    };
    if json {
        crate::out!("{}", String::from_utf8_lossy(&reply.encode()));
        return match request {
            // A probe's exit status says healthy or not, with --json too.
            Request::Health if reply.ok => health_status(reply.health.as_ref()),
            _ => ExitStatus::of_reply(reply.ok),
        };
    }
    match request {
        Request::Health => return print_health(&reply),
        Request::Restart { rolling: true, .. } => return print_rollout(&reply),
        _ if reply.results.is_some() => return print_results(&request, &reply),
        Request::Lookup { name } if reply.ok && reply.pid.is_none() => {
            // Nothing on stdout: `kill $(dynsup lookup NAME)` must not get a word.
            let state = reply.state.map_or("unknown", |s| s.as_str());
            eprintln!("dynsup: {name}: no pid (state {state})");
            return ExitStatus::Error;
        }
        _ => {}
    }
    if let Some(err) = reply.error.as_ref().filter(|_| !reply.ok) {
        eprintln!("dynsup: {}", err.message);
        return ExitStatus::Error;
    }
    match (count_all, reply.counts) {
        (true, Some(c)) => crate::outln!("{}", describe_counts(&c)),
        _ => print_human(&request, &reply),
    }
    ExitStatus::Ok
}

/// `count --all`'s line; `waiting` only when some worker waits (a config without
/// `after` never has one).
fn describe_counts(c: &Counts) -> String {
    let mut line = format!(
        "total {}  active {}  backoff {}  failed {}  stopping {}",
        c.total, c.active, c.backoff, c.failed, c.stopping
    );
    if c.waiting > 0 {
        let _ = write!(line, "  waiting {}", c.waiting);
    }
    line
}

/// The exit status of `dynsup health`: 0 healthy, 1 not (or no report at all).
fn health_status(report: Option<&HealthReport>) -> ExitStatus {
    match report {
        Some(report) if report.healthy => ExitStatus::Ok,
        _ => ExitStatus::Error,
    }
}

/// `dynsup health`: `healthy (N checked)`, or exactly one line saying what is wrong
/// (for a container runtime's or an orchestrator's probe log).
fn print_health(reply: &Reply) -> ExitStatus {
    if !reply.ok {
        let message = reply.error.as_ref().map_or("", |e| e.message.as_str());
        eprintln!("dynsup: {message}");
        return ExitStatus::Error;
    }
    match &reply.health {
        Some(report) if report.healthy => crate::outln!("healthy ({} checked)", report.checked),
        Some(report) => crate::outln!("{}", health_problem_line(report)),
        None => eprintln!("dynsup: the daemon's reply has no health report"),
    }
    health_status(reply.health.as_ref())
}

/// The first problem, and how many more there are, on one line.
fn health_problem_line(report: &HealthReport) -> String {
    let Some(first) = report.problems.first() else {
        return "unhealthy".to_string();
    };
    // A problem may quote a health check's output: it must not break the one line.
    let mut line = escape_controls(first).into_owned();
    let more = report.problems.len() - 1;
    if more > 0 {
        let _ = write!(line, " (and {more} more)");
    }
    line
}

/// `dynsup restart ... --rolling`: a line per restarted worker and a summary; on
/// failure the lines of those restarted, then the daemon's message (exit 1).
fn print_rollout(reply: &Reply) -> ExitStatus {
    let empty = RolloutReport::default();
    let rollout = reply.rollout.as_ref().unwrap_or(&empty);
    for name in &rollout.restarted {
        crate::outln!("{name} restarted");
    }
    if reply.ok {
        let mut summary = format!("{} restarted", rollout.restarted.len());
        if !rollout.not_restarted.is_empty() {
            let _ = write!(
                summary,
                "; skipped (no longer running): {}",
                rollout.not_restarted.join(", ")
            );
        }
        crate::outln!("{summary}");
        return ExitStatus::Ok;
    }
    // The daemon's message names the worker that failed, why, and what was and was
    // not restarted (`rollout` has the same lists, for --json).
    let message = reply.error.as_ref().map_or("", |e| e.message.as_str());
    eprintln!("dynsup: {message}");
    ExitStatus::Error
}

/// A `stop`, `kill` or `restart` of several workers: a line per worker, in the
/// daemon's order — what it did on stdout, why it failed on stderr — and exit 1 if any
/// failed. The daemon's refusal of the whole request (an unknown template, no access)
/// has no results and is printed by the caller.
fn print_results(request: &Request, reply: &Reply) -> ExitStatus {
    let results = reply.results.as_deref().unwrap_or_default();
    if results.is_empty() {
        eprintln!("dynsup: no worker matched; nothing was done");
        return ExitStatus::Ok;
    }
    for result in results {
        let name = result.name.as_deref().unwrap_or("?");
        match result.error.as_ref().filter(|_| !result.ok) {
            // Most messages name the worker; the others get its name in front.
            Some(err) if err.message.contains(name) => eprintln!("dynsup: {}", err.message),
            Some(err) => eprintln!("dynsup: {name}: {}", err.message),
            None => crate::outln!("{}", describe_result(request, name, result)),
        }
    }
    ExitStatus::of_reply(results.iter().all(|r| r.ok))
}

/// One worker's line in the answer to a request about several.
fn describe_result(request: &Request, name: &str, result: &Reply) -> String {
    let pid = result.pid.unwrap_or_default();
    match request {
        Request::Kill { .. } => format!(
            "sent {} to {name} (pid {pid})",
            result.signal.as_deref().unwrap_or("?")
        ),
        Request::Restart { .. } => format!("{name} restarted (pid {pid})"),
        _ => match &result.stopped {
            Some(report) => describe_stop(report),
            None => format!("{name}: done"),
        },
    }
}

/// `dynsup --version`: the CLI's version, then the daemon's when it answers (a daemon
/// that is not running is a line on stderr, not a failure).
pub fn version(socket: &Path, json: bool) -> ExitStatus {
    let cli = env!("CARGO_PKG_VERSION");
    let reply = exchange(socket, &Request::Version);
    if json {
        let daemon = reply.as_ref().ok().and_then(|r| r.version.clone());
        let both = serde_json::json!({
            "cli": cli,
            "protocol": PROTOCOL_VERSION,
            "daemon": daemon,
        });
        crate::outln!("{both}");
        return ExitStatus::Ok;
    }
    crate::outln!("dynsup {cli} (protocol {PROTOCOL_VERSION})");
    match reply {
        Ok(Reply {
            version: Some(v), ..
        }) => crate::outln!(
            "daemon {} (protocol {}), pid {}, up {}, at {}",
            v.daemon,
            v.protocol,
            v.pid,
            uptime(v.uptime_ms),
            socket.display()
        ),
        // A daemon from before `version` answers `bad_request`.
        Ok(reply) => eprintln!(
            "dynsup: the daemon at {} did not say its version ({})",
            socket.display(),
            reply.error.map(|e| e.message).unwrap_or_default()
        ),
        Err(message) => eprintln!("dynsup: no daemon: {message}"),
    }
    ExitStatus::Ok
}

/// The socket a client command uses: `--socket`; else the `socket` of the `--config`
/// file (read by the daemon's own loader: a bad file is a usage error with its
/// file:line:column) or, when it sets none, the daemon's default; else the default.
pub fn socket_path(socket: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, ExitStatus> {
    if let Some(socket) = socket {
        return Ok(socket);
    }
    let Some(path) = config else {
        return Ok(crate::paths::default_socket());
    };
    match crate::config::load(path) {
        Ok(config) => Ok(config
            .socket
            .unwrap_or_else(crate::paths::daemon_default_socket)),
        Err(err) => {
            eprintln!("dynsup: invalid configuration: {err}");
            Err(ExitStatus::Usage)
        }
    }
}

/// `start --wait-ready` and `list --tree`: pipelined requests, printed together.
fn run_sequence(socket: &Path, requests: &[Request], json: bool) -> ExitStatus {
    let replies = match exchange_all(socket, requests) {
        Ok(replies) => replies,
        Err(message) => {
            eprintln!("dynsup: {message}");
            return ExitStatus::Unreachable;
        }
    };
    if json {
        for reply in &replies {
            crate::out!("{}", String::from_utf8_lossy(&reply.encode()));
        }
        return ExitStatus::of_reply(replies.iter().all(|r| r.ok));
    }
    if let Some(err) = replies
        .iter()
        .find(|r| !r.ok)
        .and_then(|r| r.error.as_ref())
    {
        eprintln!("dynsup: {}", err.message);
        return ExitStatus::Error;
    }
    match (&requests[0], replies.as_slice()) {
        (Request::List { .. }, [list, ps]) => print_table(
            list.workers.as_deref().unwrap_or_default(),
            ps.processes.as_deref(),
        ),
        (first, [reply, ..]) => print_human(first, reply),
        _ => {}
    }
    ExitStatus::Ok
}

/// The names of a command line as the request's fields: one name is the `name` form
/// (which every daemon understands, answered as one worker), several are `names`.
fn one_or_many(mut names: Vec<String>) -> (Option<String>, Vec<String>) {
    match names.len() {
        1 => (names.pop(), Vec::new()),
        _ => (None, names),
    }
}

/// The request of a command line, or why there is none (a usage error).
fn to_request(command: Command) -> Result<Request, String> {
    Ok(match command {
        Command::Daemon { .. }
        | Command::Completions { .. }
        | Command::Manpage { .. }
        | Command::CheckConfig { .. }
        | Command::Cluster { .. }
        | Command::ClusterAgent => {
            return Err(
                "`daemon`, `completions`, `manpage`, `check-config` and `cluster` are not requests"
                    .to_string(),
            )
        }
        Command::Start {
            name,
            template,
            args,
            command,
            env,
            ..
        } => Request::Start {
            name,
            template,
            args,
            command: (!command.is_empty()).then_some(command),
            env: env.into_iter().collect(),
            fenced: false,
        },
        Command::Stop {
            names,
            template,
            all,
            timeout,
            ..
        } => {
            let (name, names) = one_or_many(names);
            Request::Stop {
                name,
                names,
                template,
                all,
                timeout_ms: timeout,
            }
        }
        Command::Kill {
            names,
            template,
            all,
            signal,
        } => {
            let (name, names) = one_or_many(names);
            Request::Kill {
                name,
                names,
                template,
                all,
                signal: Some(signal),
            }
        }
        Command::Cast { name, message } => Request::Cast { name, message },
        Command::Lookup { name, .. } => Request::Lookup { name },
        Command::Count { .. } => Request::Count,
        Command::List {
            names, template, ..
        } => Request::List { names, template },
        Command::Shutdown => Request::Shutdown,
        Command::Restart {
            names,
            template,
            all,
            rolling,
            timeout,
        } => {
            if rolling && names.len() > 1 {
                return Err("restart --rolling takes one NAME, --template or --all".to_string());
            }
            let (name, names) = one_or_many(names);
            Request::Restart {
                name,
                names,
                template,
                all,
                rolling,
                timeout_ms: timeout,
            }
        }
        Command::Health => Request::Health,
        Command::Whois { pid } => Request::Whois { pid },
        Command::Watch { names } => Request::Watch { names },
        Command::Reload => Request::Reload,
        Command::Logs {
            name,
            lines,
            follow,
            ..
        } => Request::Logs {
            name,
            lines,
            follow,
        },
        Command::ReopenLogs => Request::ReopenLogs,
        Command::Metrics => Request::Metrics,
    })
}

fn connect_and_send(socket: &Path, request: &Request) -> Result<UnixStream, String> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to the daemon at {shown}: {e}"))?;
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send to the daemon at {shown}: {e}"))?;
    Ok(stream)
}

/// One request, one reply, over a fresh connection.
pub fn exchange(socket: &Path, request: &Request) -> Result<Reply, String> {
    let mut replies = exchange_all(socket, std::slice::from_ref(request))?;
    replies.pop().ok_or_else(|| "no reply".to_string())
}

/// Requests pipelined on one connection; their replies, in order.
pub fn exchange_all(socket: &Path, requests: &[Request]) -> Result<Vec<Reply>, String> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to the daemon at {shown}: {e}"))?;
    let mut lines = Vec::new();
    for request in requests {
        serde_json::to_writer(&mut lines, request).map_err(|e| e.to_string())?;
        lines.push(b'\n');
    }
    if let Err(e) = stream.write_all(&lines) {
        // The daemon may have answered and closed at once (a refused connection):
        // its one line is still there to read.
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_ok() {
            if let Ok(reply) = serde_json::from_str::<Reply>(&line) {
                return Ok(vec![reply]);
            }
        }
        return Err(format!("cannot send to the daemon at {shown}: {e}"));
    }
    let mut reader = BufReader::new(&stream);
    let mut replies = Vec::with_capacity(requests.len());
    for _ in requests {
        let mut reply = String::new();
        reader
            .read_line(&mut reply)
            .map_err(|e| format!("cannot read the reply from {shown}: {e}"))?;
        if reply.is_empty() {
            return Err(format!(
                "the daemon at {shown} closed the connection without replying"
            ));
        }
        replies.push(
            serde_json::from_str(&reply)
                .map_err(|e| format!("unreadable reply from {shown}: {e}"))?,
        );
    }
    Ok(replies)
}

/// Send a request that turns the connection into a stream (`watch`, `logs -f`) and
/// read its first reply: the reader for what follows and that reply, or (after the
/// message is printed) the exit status — an error reply is `Error`, no daemon or no
/// reply `Unreachable`.
fn open_stream(
    socket: &Path,
    request: &Request,
) -> Result<(BufReader<UnixStream>, Reply), ExitStatus> {
    let shown = socket.display();
    let stream = connect_and_send(socket, request).map_err(|message| {
        eprintln!("dynsup: {message}");
        ExitStatus::Unreachable
    })?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    match reader.read_line(&mut first) {
        Ok(n) if n > 0 => match serde_json::from_str::<Reply>(&first) {
            Ok(reply) if reply.ok => Ok((reader, reply)),
            Ok(reply) => {
                let message = reply.error.map(|e| e.message).unwrap_or_default();
                eprintln!("dynsup: {message}");
                Err(ExitStatus::Error)
            }
            Err(e) => {
                eprintln!("dynsup: unreadable reply from {shown}: {e}");
                Err(ExitStatus::Unreachable)
            }
        },
        _ => {
            eprintln!("dynsup: the daemon at {shown} closed the connection without replying");
            Err(ExitStatus::Unreachable)
        }
    }
}

/// Subscribe and print events until the daemon closes the stream.
fn watch(socket: &Path, request: &Request, json: bool) -> ExitStatus {
    let (reader, _reply) = match open_stream(socket, request) {
        Ok(opened) => opened,
        Err(status) => return status,
    };
    let lines = reader.lines();
    let stdout = std::io::stdout();
    for line in lines {
        let Ok(line) = line else { break };
        let text = if json {
            line
        } else {
            match serde_json::from_str::<Event>(&line) {
                Ok(event) => format!(
                    "{} {}",
                    crate::logger::timestamp(SystemTime::now()),
                    describe_event(&event)
                ),
                Err(_) => line,
            }
        };
        // Flush per event: a watcher is usually piped into something that reacts.
        let mut out = stdout.lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    ExitStatus::Ok
}

/// How `dynsup logs` prints a line.
#[derive(Clone, Copy)]
struct LogFormat {
    /// One JSON object per line (`at_ms`, `pid`, `stream`, `line`).
    json: bool,
    /// Start each line with its time.
    timestamps: bool,
}

/// `dynsup logs`: print the reply's lines; with `follow`, then each line of the stream
/// until the daemon says it is exiting (exit 0), the stream breaks (exit 1), or the
/// user interrupts. A closed stdout (`| head`) ends it quietly.
fn logs(socket: &Path, request: &Request, follow: bool, format: LogFormat) -> ExitStatus {
    let shown = socket.display();
    let (mut reader, reply) = match open_stream(socket, request) {
        Ok(opened) => opened,
        Err(status) => return status,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in reply.log.as_deref().unwrap_or_default() {
        if print_log_line(&mut out, line, format).is_err() {
            return ExitStatus::Ok;
        }
    }
    if out.flush().is_err() || !follow {
        return ExitStatus::Ok;
    }
    let mut text = String::new();
    loop {
        text.clear();
        match reader.read_line(&mut text) {
            Ok(0) | Err(_) => {
                eprintln!("dynsup: the daemon at {shown} closed the stream");
                return ExitStatus::Error;
            }
            Ok(_) => {}
        }
        let printed = match serde_json::from_str::<LogEvent>(&text) {
            Ok(LogEvent::Line(line)) => print_log_line(&mut out, &line, format),
            Ok(LogEvent::Lagged { dropped }) => {
                eprintln!("dynsup: (fell behind: {dropped} line(s) were dropped)");
                Ok(())
            }
            Ok(LogEvent::Shutdown) => return ExitStatus::Ok,
            Err(_) => Ok(()),
        };
        // Flush per line: a follower is usually watched, or piped into something.
        if printed.and_then(|()| out.flush()).is_err() {
            return ExitStatus::Ok;
        }
    }
}

fn print_log_line(out: &mut impl Write, line: &LogLine, format: LogFormat) -> std::io::Result<()> {
    if format.json {
        let json = serde_json::to_string(line).map_err(std::io::Error::other)?;
        return writeln!(out, "{json}");
    }
    let mut text = String::new();
    if format.timestamps {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(line.at_ms);
        let _ = write!(text, "{} ", crate::logger::timestamp(at));
    }
    if line.stream == LogStream::Dynsup {
        text.push_str("(dynsup) ");
    }
    text.push_str(&escape_controls(&line.line));
    writeln!(out, "{text}")
}

/// `line` with every control character but tab written as an escape (`\x1b`,
/// `\u{9b}`), so that nothing a worker writes can drive the reader's terminal.
pub fn escape_controls(line: &str) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t';
    if !line.chars().any(escaped) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            c if escaped(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if escaped(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn describe_event(event: &Event) -> String {
    match event {
        Event::Started { name, pid } => format!("{name} started (pid {pid})"),
        Event::Ready { name, pid } => format!("{name} is ready (pid {pid})"),
        Event::Exited {
            name,
            pid,
            reason,
            exit,
        } => match reason.as_str() {
            "watchdog" => format!("{name} missed its watchdog and was killed: {exit} (pid {pid})"),
            "health" => {
                format!("{name} failed its health checks and was killed: {exit} (pid {pid})")
            }
            _ => format!("{name} exited: {reason} (pid {pid})"),
        },
        Event::Restarting { name, delay_ms: 0 } => format!("{name} restarting now"),
        Event::Restarting { name, delay_ms } => format!("{name} restarting in {delay_ms} ms"),
        Event::Stopped { name, reason } => format!("{name} stopped: {reason}"),
        Event::Failed { name, reason } => {
            format!("{name} failed: gave up after its restart limit (last exit: {reason})")
        }
        Event::IntensityTripped { name } => {
            format!("{name} reached the restart intensity: the daemon is shutting down")
        }
        Event::Waiting { name, on } => format!("{name} is waiting for {}", on.join(", ")),
        Event::Unhealthy {
            name,
            failures,
            message,
        } => format!("{name} failed its health check ({failures} in a row): {message}"),
        Event::Healthy { name } => format!("{name} passes its health check again"),
        Event::Shutdown => "the daemon is shutting down".to_string(),
        Event::Lagged { dropped } => {
            format!("(this watcher fell behind: {dropped} event(s) were dropped)")
        }
    }
}

fn print_human(request: &Request, reply: &Reply) {
    match request {
        Request::Start { .. } => crate::outln!("{}", reply.pid.unwrap_or_default()),
        Request::Lookup { .. } => match (reply.pid, reply.state) {
            (Some(pid), _) => crate::outln!("{pid}"),
            (None, Some(state)) => crate::outln!("{}", state.as_str()),
            (None, None) => {}
        },
        Request::Count => crate::outln!("{}", reply.count.unwrap_or_default()),
        Request::Stop { .. } => {
            if let Some(report) = &reply.stopped {
                crate::outln!("{}", describe_stop(report));
            }
        }
        Request::Kill { name, .. } => crate::outln!(
            "sent {} to {} (pid {})",
            reply.signal.as_deref().unwrap_or("?"),
            name.as_deref().unwrap_or_default(),
            reply.pid.unwrap_or_default()
        ),
        Request::Cast { .. }
        | Request::Watch { .. }
        | Request::Logs { .. }
        | Request::ReopenLogs => {}
        Request::List { .. } => print_table(reply.workers.as_deref().unwrap_or_default(), None),
        Request::WaitReady { name } => {
            crate::outln!("{name} is ready (pid {})", reply.pid.unwrap_or_default())
        }
        Request::Ps { .. } => {
            for p in reply.processes.as_deref().unwrap_or_default() {
                let pids: Vec<String> = p.pids.iter().map(i32::to_string).collect();
                crate::outln!("{}: {}", p.name, pids.join(" "));
            }
        }
        Request::Restart {
            name: Some(name), ..
        } => {
            crate::outln!("{name} restarted (pid {})", reply.pid.unwrap_or_default())
        }
        Request::Restart { .. } | Request::Health | Request::Version | Request::Fence { .. } => {}
        Request::Whois { .. } => crate::outln!("{}", reply.name.as_deref().unwrap_or_default()),
        Request::Reload => {
            let Some(r) = &reply.reload else { return };
            for (what, names) in [
                ("started", &r.started),
                ("stopped", &r.stopped),
                ("restarted", &r.restarted),
                ("unchanged", &r.unchanged),
                ("skipped", &r.skipped),
            ] {
                if !names.is_empty() {
                    crate::outln!("{what}: {}", names.join(", "));
                }
            }
            if r.started.is_empty() && r.stopped.is_empty() && r.restarted.is_empty() {
                crate::outln!("config reloaded: no child changed");
            }
            if !r.needs_daemon_restart.is_empty() {
                crate::outln!(
                    "not applied until the daemon restarts: [supervisor] {}",
                    r.needs_daemon_restart.join(", ")
                );
            }
        }
        Request::Shutdown => {
            let reports = reply.shutdown.as_deref().unwrap_or_default();
            for report in reports {
                crate::outln!("{}", describe_stop(report));
            }
            crate::outln!("daemon stopped ({} worker(s) stopped)", reports.len());
        }
        // The exposition ends with its own newline.
        Request::Metrics => crate::out!("{}", reply.metrics.as_deref().unwrap_or_default()),
    }
}

fn describe_stop(report: &StopReport) -> String {
    match (&report.exit, report.pid) {
        (Some(exit), Some(pid)) if report.killed => format!(
            "{} (pid {pid}) did not stop in time and was killed: {}",
            report.name,
            describe_exit(exit)
        ),
        (Some(exit), Some(pid)) => format!(
            "{} (pid {pid}) stopped: {}",
            report.name,
            describe_exit(exit)
        ),
        _ => format!("{} stopped (it had no running process)", report.name),
    }
}

fn describe_exit(exit: &ExitReport) -> String {
    match exit {
        ExitReport::Exited { code } => format!("exited with status {code}"),
        ExitReport::Signaled {
            signal,
            core_dumped,
        } => format!(
            "killed by {signal}{}",
            if *core_dumped { " (core dumped)" } else { "" }
        ),
    }
}

fn print_table(workers: &[WorkerInfo], tree: Option<&[Processes]>) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let with_status = workers.iter().any(|w| w.status.is_some());
    let with_health = workers.iter().any(|w| w.health.is_some());
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let mut row = vec![
                w.name.clone(),
                w.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                w.state.as_str().to_string(),
                format!("{} ({} recent)", w.restarts, w.restarts_in_window),
                if w.pid.is_some() {
                    uptime(now_ms.saturating_sub(w.started_at_ms))
                } else {
                    "-".to_string()
                },
                w.template.clone(),
                if w.critical {
                    format!("{} (critical)", w.restart)
                } else {
                    w.restart.clone()
                },
                w.last_exit.as_ref().map_or_else(
                    || "-".to_string(),
                    |e| {
                        format!(
                            "{} ({} ago)",
                            e.reason,
                            uptime(now_ms.saturating_sub(e.at_ms))
                        )
                    },
                ),
                next_try(w, now_ms),
            ];
            if with_health {
                row.push(
                    w.health
                        .as_ref()
                        .map_or_else(|| "-".to_string(), describe_health),
                );
            }
            if with_status {
                row.push(w.status.clone().unwrap_or_else(|| "-".to_string()));
            }
            row
        })
        .collect();
    let mut header = vec![
        "NAME",
        "PID",
        "STATE",
        "RESTARTS",
        "UPTIME",
        "TEMPLATE",
        "RESTART",
        "LAST EXIT",
        "NEXT TRY",
    ];
    if with_health {
        header.push("HEALTH");
    }
    if with_status {
        header.push("STATUS");
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let colour = colour_wanted();
    // The STATE cell is coloured after padding, so the columns stay aligned.
    let print_row = |cells: &[&str], state: Option<WorkerStateName>| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (c, &w))| match state.and_then(state_colour) {
                Some(sgr) if colour && column == STATE_COLUMN => {
                    format!("\x1b[{sgr}m{c:<w$}\x1b[0m")
                }
                _ => format!("{c:<w$}"),
            })
            .collect();
        crate::outln!("{}", line.join("  ").trim_end());
    };
    print_row(&header, None);
    for (row, worker) in rows.iter().zip(workers) {
        print_row(
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
            Some(worker.state),
        );
        let Some(tree) = tree else { continue };
        let pids = tree
            .iter()
            .find(|p| p.name == worker.name)
            .map(|p| p.pids.as_slice())
            .unwrap_or_default();
        for (i, pid) in pids.iter().enumerate() {
            let branch = if i + 1 == pids.len() {
                "└─"
            } else {
                "├─"
            };
            crate::outln!("  {branch} {pid} {}", command_of(*pid));
        }
    }
}

/// Where `list`'s table has its STATE.
const STATE_COLUMN: usize = 2;

/// Colour is for a person at a terminal: stdout is one, `NO_COLOR` is unset or empty
/// (no-color.org), and `TERM` is not `dumb`. Never in a pipe or a file (nor `--json`,
/// which prints no table).
fn colour_wanted() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// The SGR code for a STATE cell: green running, red failed, yellow on the way
/// (starting, waiting, backoff, restarting, stopping, draining).
fn state_colour(state: WorkerStateName) -> Option<&'static str> {
    match state {
        WorkerStateName::Running => Some("32"),
        WorkerStateName::Failed => Some("1;31"),
        WorkerStateName::Starting
        | WorkerStateName::Waiting
        | WorkerStateName::Backoff
        | WorkerStateName::Restarting
        | WorkerStateName::Stopping
        | WorkerStateName::Draining => Some("33"),
    }
}

/// The NEXT TRY cell: when a restart is due, or (`waiting`) what it waits for.
fn next_try(w: &WorkerInfo, now_ms: u64) -> String {
    if !w.waiting_for.is_empty() {
        return format!("after {}", w.waiting_for.join(", "));
    }
    w.next_try_ms.map_or_else(
        || "-".to_string(),
        |at| format!("in {}", uptime(at.saturating_sub(now_ms))),
    )
}

/// The HEALTH cell: the last check's result.
fn describe_health(health: &HealthInfo) -> String {
    if health.ok {
        "ok".to_string()
    } else {
        format!("unhealthy ({} in a row)", health.failures)
    }
}

/// A process's command line from /proc, for `list --tree`.
fn command_of(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn uptime(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_text_and_tabs_are_not() {
        assert_eq!(escape_controls("plain\ttext é"), "plain\ttext é");
        assert_eq!(
            escape_controls("\u{1b}[2J\u{7}bell\r\u{0}"),
            "\\x1b[2J\\x07bell\\x0d\\x00"
        );
        assert_eq!(escape_controls("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(escape_controls("del\u{7f}"), "del\\x7f");
    }

    #[test]
    fn an_unhealthy_report_is_one_line_with_the_first_problem() {
        let report = |problems: &[&str]| HealthReport {
            healthy: false,
            checked: 3,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        };
        assert_eq!(
            health_problem_line(&report(&["db: waiting for cache"])),
            "db: waiting for cache"
        );
        assert_eq!(
            health_problem_line(&report(&["a: backoff (last exit: exit 1)", "b: x", "c: y"])),
            "a: backoff (last exit: exit 1) (and 2 more)"
        );
        assert_eq!(
            health_problem_line(&report(&[
                "api: unhealthy (1 failed checks: exit 1: a\nb\x1b)"
            ])),
            "api: unhealthy (1 failed checks: exit 1: a\\x0ab\\x1b)"
        );
        assert_eq!(health_problem_line(&report(&[])), "unhealthy");
        assert_eq!(health_status(None), ExitStatus::Error);
        assert_eq!(health_status(Some(&report(&["x"]))), ExitStatus::Error);
        let healthy = HealthReport {
            healthy: true,
            checked: 2,
            problems: Vec::new(),
        };
        assert_eq!(health_status(Some(&healthy)), ExitStatus::Ok);
    }

    #[test]
    fn count_all_names_waiting_only_when_some_wait() {
        let mut counts = Counts {
            total: 4,
            active: 2,
            backoff: 1,
            failed: 0,
            stopping: 0,
            waiting: 0,
        };
        assert_eq!(
            describe_counts(&counts),
            "total 4  active 2  backoff 1  failed 0  stopping 0"
        );
        counts.waiting = 1;
        assert_eq!(
            describe_counts(&counts),
            "total 4  active 2  backoff 1  failed 0  stopping 0  waiting 1"
        );
    }

    #[test]
    fn a_waiting_worker_shows_what_it_waits_for() {
        let mut w: WorkerInfo = serde_json::from_str(
            r#"{"name":"web","template":"t","restart":"permanent","state":"waiting",
                "restarts":0,"started_at_ms":0,"waiting_for":["db","cache"]}"#,
        )
        .unwrap();
        assert_eq!(next_try(&w, 0), "after db, cache");
        w.waiting_for.clear();
        w.next_try_ms = Some(2500);
        assert_eq!(next_try(&w, 1000), "in 1s");
        w.next_try_ms = None;
        assert_eq!(next_try(&w, 1000), "-");
    }

    #[test]
    fn watchdog_and_health_kills_read_as_such() {
        let exit = ExitReport::Signaled {
            signal: "SIGABRT".into(),
            core_dumped: false,
        };
        let exited = |reason: &str| Event::Exited {
            name: "api".into(),
            pid: 7,
            reason: reason.into(),
            exit: exit.clone(),
        };
        assert_eq!(
            describe_event(&exited("watchdog")),
            "api missed its watchdog and was killed: signal SIGABRT (pid 7)"
        );
        assert_eq!(
            describe_event(&exited("health")),
            "api failed its health checks and was killed: signal SIGABRT (pid 7)"
        );
        assert_eq!(
            describe_event(&exited("signal SIGABRT")),
            "api exited: signal SIGABRT (pid 7)"
        );
    }
}
