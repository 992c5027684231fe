//! The CLI side of the socket: send one request, read one reply, print it.
//!
//! Exit statuses: 0 success, 1 the daemon answered with an error, 3 the daemon could
//! not be reached (the message names the socket path and the reason). Usage errors (2)
//! are clap's.

use crate::cli::Command;
use crate::protocol::{ExitReport, Reply, Request, StopReport, WorkerInfo};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_UNREACHABLE: i32 = 3;

pub fn run(socket: &Path, command: Command, json: bool) -> i32 {
    let Some(request) = to_request(command) else {
        return EXIT_ERROR;
    };
    let reply = match exchange(socket, &request) {
        Ok(reply) => reply,
        Err(message) => {
            eprintln!("dynsup: {message}");
            return EXIT_UNREACHABLE;
        }
    };
    if json {
        print!("{}", String::from_utf8_lossy(&reply.encode()));
        return if reply.ok { EXIT_OK } else { EXIT_ERROR };
    }
    if let Some(err) = reply.error.as_ref().filter(|_| !reply.ok) {
        eprintln!("dynsup: {}", err.message);
        return EXIT_ERROR;
    }
    print_human(&request, &reply);
    EXIT_OK
}

fn to_request(command: Command) -> Option<Request> {
    Some(match command {
        Command::Daemon { .. } => return None,
        Command::Start {
            name,
            template,
            args,
            command,
        } => Request::Start {
            name,
            template,
            args,
            command: (!command.is_empty()).then_some(command),
        },
        Command::Stop { name, timeout } => Request::Stop {
            name,
            timeout_ms: timeout,
        },
        Command::Kill { name, signal } => Request::Kill {
            name,
            signal: Some(signal),
        },
        Command::Cast { name, message } => Request::Cast { name, message },
        Command::Lookup { name } => Request::Lookup { name },
        Command::Count => Request::Count,
        Command::List => Request::List,
        Command::Shutdown => Request::Shutdown,
    })
}

/// One request, one reply, over a fresh connection.
pub fn exchange(socket: &Path, request: &Request) -> Result<Reply, String> {
    let shown = socket.display();
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to the daemon at {shown}: {e}"))?;
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send to the daemon at {shown}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| format!("cannot read the reply from {shown}: {e}"))?;
    if reply.is_empty() {
        return Err(format!(
            "the daemon at {shown} closed the connection without replying"
        ));
    }
    serde_json::from_str(&reply).map_err(|e| format!("unreadable reply from {shown}: {e}"))
}

fn print_human(request: &Request, reply: &Reply) {
    match request {
        Request::Start { .. } => println!("{}", reply.pid.unwrap_or_default()),
        Request::Lookup { .. } => match (reply.pid, reply.state) {
            (Some(pid), _) => println!("{pid}"),
            (None, Some(state)) => println!("{}", state.as_str()),
            (None, None) => {}
        },
        Request::Count => println!("{}", reply.count.unwrap_or_default()),
        Request::Stop { .. } => {
            if let Some(report) = &reply.stopped {
                println!("{}", describe_stop(report));
            }
        }
        Request::Kill { name, .. } => println!(
            "sent {} to {name} (pid {})",
            reply.signal.as_deref().unwrap_or("?"),
            reply.pid.unwrap_or_default()
        ),
        Request::Cast { .. } => {}
        Request::List => print_table(reply.workers.as_deref().unwrap_or_default()),
        Request::Shutdown => {
            let reports = reply.shutdown.as_deref().unwrap_or_default();
            for report in reports {
                println!("{}", describe_stop(report));
            }
            println!("daemon stopped ({} worker(s) stopped)", reports.len());
        }
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

fn print_table(workers: &[WorkerInfo]) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let rows: Vec<[String; 7]> = workers
        .iter()
        .map(|w| {
            [
                w.name.clone(),
                w.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                w.state.as_str().to_string(),
                w.restarts.to_string(),
                if w.pid.is_some() {
                    uptime(now_ms.saturating_sub(w.started_at_ms))
                } else {
                    "-".to_string()
                },
                w.template.clone(),
                w.restart.clone(),
            ]
        })
        .collect();
    let header = [
        "NAME", "PID", "STATE", "RESTARTS", "UPTIME", "TEMPLATE", "RESTART",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let print_row = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print_row(&header);
    for row in &rows {
        print_row(&row.each_ref().map(String::as_str));
    }
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
