//! A worker's own output, kept and followed: `logs NAME -n N` is exact; `-f` sees new
//! lines and follows across restarts until the daemon exits; the last words of a
//! crashed or stopped worker stay; what a worker writes cannot drive the reader's
//! terminal; rate-limited drops are counted in `list` and noted in the log; a flood
//! neither stops other clients nor grows the daemon past its bounds.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

/// Template `chatty`: `sh -c SCRIPT` (the script is the start's one argument) run as
/// a temporary worker.
const CHATTY: &str = r#"
[templates.chatty]
command = ["sh", "-c"]
restart = "temporary"
"#;

/// Template `flood`: `yes` as fast as it can, permanent.
const FLOOD: &str = r#"
[templates.flood]
command = ["yes", "flood"]
restart = "permanent"
"#;

fn config(parts: &[&str]) -> String {
    let mut text = LENIENT_SUPERVISOR.to_string();
    for part in parts {
        text.push_str(part);
    }
    text
}

#[test]
fn logs_n_5_gives_exactly_the_last_five_of_1000_lines() {
    let d = TestDaemon::start(&config(&[CHATTY]));
    let script =
        "i=1; while [ $i -le 1000 ]; do echo \"line $i\"; i=$((i+1)); done; exec sleep 100000";
    d.start_worker("w", Some("chatty"), &[script]);
    d.wait_kept_line("w", 1, "line 1000");
    let want: Vec<String> = (996..=1000).map(|i| format!("line {i}")).collect();
    assert_eq!(d.log_texts("w", 5), want);
    // Default: 50 lines, oldest first.
    let fifty = d.log_texts("w", 50);
    assert_eq!(fifty.len(), 50);
    assert_eq!(fifty[0], "line 951");
    // The CLI prints the same lines.
    let out = d.cli(&["logs", "w", "-n", "5"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out), want.join("\n") + "\n");
}

#[test]
fn follow_sees_new_lines_across_a_restart_and_ends_when_the_daemon_exits() {
    let mut d = TestDaemon::start(&config(&[SAMPLE_WORKER]));
    let first = d.start_worker("w1", Some("worker"), &[]);
    d.wait_started("w1", 1);
    let mut follower = d.cli_process(&["logs", "w1", "-f", "-n", "1", "--json"]);
    let parse = |line: &str| -> LogLine {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a log line {line:?}: {e}"))
    };
    // The history: the last line written so far.
    let start = parse(&follower.wait_line("the start line", |l| l.contains("Starting")));
    assert_eq!(start.pid, first);
    assert_eq!(start.stream, LogStream::Output);
    // A line written after the follower started.
    d.request_ok(&cast_req("w1", "work"));
    let hola = parse(&follower.wait_line("hola", |l| l.contains("hola")));
    assert_eq!(hola.pid, first);
    // Killed and restarted: the follower goes on with the new process.
    d.request_ok(&kill_req("w1", None));
    let second = d.wait_restarted("w1", first);
    let again = parse(&follower.wait_line("the second start", |l| l.contains("Starting")));
    assert_eq!(again.pid, second);
    d.request_ok(&cast_req("w1", "work"));
    let hola = parse(&follower.wait_line("hola from the new process", |l| l.contains("hola")));
    assert_eq!(hola.pid, second);
    // The daemon exits: the worker's last line comes, then the stream ends, exit 0.
    d.request_ok(&Request::Shutdown);
    follower.wait_line("the worker's last line", |l| l.contains("Exiting worker"));
    let (status, stderr) = follower.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    d.wait_exit(DEADLINE);
}

#[test]
fn the_last_words_of_a_crashed_or_stopped_worker_are_kept() {
    let d = TestDaemon::start(&config(&[CHATTY, SAMPLE_WORKER]));
    d.start_worker("crash", Some("chatty"), &["echo 'last words'; exit 3"]);
    d.wait_unregistered("crash");
    d.wait_kept_line("crash", 5, "last words");
    d.start_worker("w2", Some("worker"), &[]);
    d.wait_started("w2", 1);
    d.request_ok(&stop_req("w2", None));
    assert!(d.lookup("w2").is_none());
    let kept = d.log_texts("w2", 50);
    assert!(
        kept.iter().any(|l| l.contains("Starting \"w2\""))
            && kept.iter().any(|l| l.contains("Exiting worker")),
        "the stopped worker's lines: {kept:?}"
    );
    // A name never seen: not_found, and the CLI exits 1.
    assert_error(
        &d.request(&logs_req("never", 5, false)),
        ErrorKind::NotFound,
    );
    let out = d.cli(&["logs", "never"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("never"), "{}", stderr_of(&out));
}

#[test]
fn control_characters_are_escaped_and_json_and_timestamps_show_where_lines_came_from() {
    let d = TestDaemon::start(&config(&[CHATTY]));
    let pid = d.start_worker(
        "esc",
        Some("chatty"),
        &["printf 'clear\\033[2J bell\\007 tab\\tend\\n'; printf 'done\\n'; exec sleep 100000"],
    );
    d.wait_kept_line("esc", 1, "done");
    let out = d.cli(&["logs", "esc", "-n", "2"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out),
        "clear\\x1b[2J bell\\x07 tab\tend\ndone\n",
        "escaped for the terminal"
    );
    assert!(!stdout_of(&out).contains('\u{1b}'));
    // The wire keeps the line as written.
    assert_eq!(
        d.log_texts("esc", 2)[0],
        "clear\u{1b}[2J bell\u{7} tab\tend"
    );
    let out = d.cli(&["logs", "esc", "-n", "1", "--json"]);
    assert_exit(&out, 0);
    let line: LogLine = serde_json::from_str(stdout_of(&out).trim())
        .unwrap_or_else(|e| panic!("--json output: {e}: {}", stdout_of(&out)));
    assert_eq!(
        (line.pid, line.stream, line.line.as_str()),
        (pid, LogStream::Output, "done")
    );
    let near = now_ms().abs_diff(line.at_ms);
    assert!(
        near < 10 * 60 * 1000,
        "at_ms {} is the time it was read",
        line.at_ms
    );
    let out = d.cli(&["logs", "esc", "-n", "1", "--timestamps"]);
    let text = stdout_of(&out);
    let (stamp, rest) = text
        .trim_end()
        .split_once(' ')
        .expect("a timestamp, a space");
    assert_eq!(rest, "done");
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
}

#[test]
fn a_rate_limited_workers_drops_are_counted_in_list_and_noted_in_the_logs() {
    let limited = r#"
[templates.limited]
command = ["sh", "-c", "yes flood | head -n 5000; exec sleep 100000"]
restart = "permanent"
log_rate_limit = { lines = 100, per_ms = 300 }
"#;
    let d = TestDaemon::start(&config(&[limited]));
    d.start_worker("lim", Some("limited"), &[]);
    // Every line is either kept or counted as dropped, and once each window with
    // drops has passed (with no further line to say so), its note is written.
    let (kept, dropped) = d.wait_until(DEADLINE, "every line kept or counted, and noted", || {
        let dropped = d.list_one("lim")?.log_dropped;
        let kept = d.logs("lim", 10_000);
        let flood = kept.iter().filter(|l| l.line == "flood").count() as u64;
        let noted: u64 = kept
            .iter()
            .filter(|l| l.stream == LogStream::Dynsup)
            .filter_map(|l| {
                l.line
                    .strip_prefix("dropped ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        (dropped > 0 && flood + dropped == 5000 && noted == dropped).then_some((kept, dropped))
    });
    let flood = kept.iter().filter(|l| l.line == "flood").count();
    assert!(
        flood >= 100,
        "at least one window's worth got through: {flood}"
    );
    let note = kept
        .iter()
        .find(|l| l.stream == LogStream::Dynsup)
        .expect("a note");
    assert!(
        note.line
            .ends_with(" line(s): over log_rate_limit (100 lines per 300 ms)"),
        "{note:?}"
    );
    d.wait_log("lim: dropped ");
    // `list --json` shows it too.
    let out = d.cli(&["list", "--json"]);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).expect("list --json");
    let row = reply
        .workers
        .unwrap_or_default()
        .into_iter()
        .find(|w| w.name == "lim");
    assert_eq!(row.map(|w| w.log_dropped), Some(dropped));
}

#[test]
fn a_flooding_worker_does_not_keep_other_clients_from_being_answered() {
    let d = TestDaemon::start(&config(&[FLOOD, SAMPLE_WORKER]));
    d.start_worker("quiet", Some("worker"), &[]);
    let flood_pid = d.start_worker("yes", Some("flood"), &[]);
    d.wait_until(DEADLINE, "the flood to be rate-limited", || {
        d.list_one("yes").filter(|w| w.log_dropped > 0)
    });
    let mut client = d.client();
    let before = d.list_one("yes").map_or(0, |w| w.log_dropped);
    for _ in 0..100 {
        let reply = client.request(&lookup_req("quiet"));
        assert!(reply.ok && reply.pid.is_some(), "{reply:?}");
        let reply = client.request(&Request::Count);
        assert_eq!(reply.count, Some(2), "{reply:?}");
    }
    // The flood went on meanwhile (the daemon kept reading and dropping it).
    d.wait_until(DEADLINE, "more dropped lines", || {
        d.list_one("yes").filter(|w| w.log_dropped > before)
    });
    assert_eq!(d.lookup("yes"), Some(flood_pid));
}

#[test]
fn a_follower_that_does_not_read_is_bounded_and_told_it_lagged() {
    let fast = r#"
[templates.fast]
command = ["yes", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
restart = "permanent"
log_rate_limit = "off"
"#;
    let d = Launch::new(&config(&["log_level = \"warn\"\n", fast]))
        .wait(WaitFor::Socket)
        .start();
    d.start_worker("fast", Some("fast"), &[]);
    let mut stream = UnixStream::connect(d.socket()).expect("connect");
    let mut line = serde_json::to_string(&logs_req("fast", 0, true)).expect("encode");
    line.push('\n');
    stream.write_all(line.as_bytes()).expect("send");
    // Not reading: the daemon drops what does not fit and goes on serving others.
    // Wait (by the daemon's own count) until far more than the socket buffer and the
    // 256 KiB queue has gone by: 20,000 lines of ~100 bytes are about 2 MB.
    let lines_seen = |d: &TestDaemon| -> Option<u64> {
        let text = d.request_ok(&Request::Metrics).metrics?;
        text.lines()
            .find_map(|l| l.strip_prefix("dynsup_log_lines_total "))?
            .trim()
            .parse::<f64>()
            .ok()
            .map(|v| v as u64)
    };
    let before = lines_seen(&d).unwrap_or(0);
    d.wait_until(DEADLINE, "20,000 lines past the stalled follower", || {
        lines_seen(&d).filter(|&n| n >= before + 20_000)
    });
    for _ in 0..20 {
        d.count();
    }
    let rss = rss_kib(d.pid());
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("read timeout");
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).expect("the reply");
    let reply: Reply = serde_json::from_str(&first).expect("a reply");
    assert!(reply.ok && reply.log == Some(Vec::new()), "{first}");
    // What was queued (at most 256 KiB of lines) comes first, then `lagged`.
    let mut lagged = None;
    let mut text = String::new();
    for _ in 0..100_000 {
        text.clear();
        match reader.read_line(&mut text) {
            Ok(n) if n > 0 => {}
            other => panic!("the stream ended or stalled ({other:?}){}", d.log_tail()),
        }
        if let Ok(LogEvent::Lagged { dropped }) = serde_json::from_str(&text) {
            lagged = Some(dropped);
            break;
        }
    }
    let lagged = lagged.expect("a lagged line within the first 100,000 lines");
    assert!(lagged > 0);
    assert!(
        rss < 64 * 1024,
        "a stalled follower must not grow the daemon (RSS {rss} KiB)"
    );
}

#[test]
fn memory_stays_within_the_bounds_with_1000_chatty_workers() {
    let total_kib = 2048;
    let text = format!(
        r#"
[supervisor]
max_restarts = 100
max_seconds = 5
log_level = "warn"
log_buffer_total = {}

[templates.burst]
command = ["cat"]
restart = "temporary"
log_buffer_bytes = 32768
"#,
        total_kib * 1024
    );
    let d = Launch::new(&text).wait(WaitFor::Socket).start();
    // 40 KB of 100-byte lines each: 40 MB through the daemon, 32 MiB if every name kept
    // all it may.
    let line = format!("{:099}\n", 7);
    let body = d.dir().write("burst.txt", &line.repeat(400));
    let body = body.to_str().expect("utf-8 path").to_string();
    // The baseline once the loop runs (the socket file exists before the loop has its
    // epoll, signal and notify fds) and with the test's own connection open.
    let mut client = d.client();
    assert!(client.request(&Request::Count).ok);
    let baseline_fds = fd_count(d.pid());
    let baseline = fd_targets(d.pid());
    let names: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
    let starts: Vec<Request> = names
        .iter()
        .map(|n| start_req(n, Some("burst"), &[&body]))
        .collect();
    client.send_batch(&starts);
    for name in &names {
        let reply = client.recv();
        assert!(reply.ok, "start {name}: {reply:?}");
    }
    // Every pipe read to its end (and closed) once the fd count is back.
    let mut seen = (0, 0);
    // 40 MB through a debug build on a loaded machine: more time than a usual wait.
    let done = try_wait_until(3 * DEADLINE, || {
        seen = (fd_count(d.pid()), d.count());
        (seen.0 <= baseline_fds + 1 && seen.1 == 0).then_some(())
    });
    assert!(
        done.is_some(),
        "every output pipe read to its end: {} fds (from {baseline_fds}: {baseline:?}), {} workers; fds now: {:?}{}",
        seen.0,
        seen.1,
        fd_targets(d.pid()),
        d.log_tail()
    );
    let peak = peak_rss_kib(d.pid());
    // The newest names keep their lines; the oldest were evicted under the total.
    let last = d.log_texts("b999", 1000);
    assert!(
        !last.is_empty() && last.len() < 400,
        "b999 keeps what its buffer holds: {} lines",
        last.len()
    );
    assert_error(&d.request(&logs_req("b0", 1, false)), ErrorKind::NotFound);
    // About 10 MiB of its own (1000 spawns, a debug build), plus the bound with room
    // to spare; every name keeping its 32 KiB would take it past 40 MiB.
    let bound = 16 * 1024 + 4 * total_kib;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB with log_buffer_total = {total_kib} KiB (bound {bound} KiB)"
    );
}
