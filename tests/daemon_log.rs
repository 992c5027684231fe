//! The daemon's own log (its stderr) and where worker lines go, with real pipes and a
//! real datagram socket standing in for journald.
//!
//! - stderr a pipe nobody reads (a paused `| less`) while a worker floods: requests
//!   keep answering and SIGTERM exits;
//! - the same pipe read late: whole lines, and one `dropped N lines` record where the
//!   gap is, N counting exactly what is missing;
//! - `<N>` sd-daemon prefixes set a worker line's level (prefix removed);
//! - under journald, worker lines are native journal entries carrying the worker's
//!   name (`DYNSUP_WORKER`, `SYSLOG_IDENTIFIER`) and priority; entries journald has no
//!   room for are counted; without the socket, the lines go to the journal stream.

mod common;
use common::*;
use std::rc::Rc;

/// Template `flood`: `yes`, as fast as it can.
const FLOOD: &str = r#"
[templates.flood]
command = ["yes", "flood-line"]
restart = "transient"
log_rate_limit = "off"
"#;

/// Template `burst`: 400 000 lines as fast as it can, then it exits; no rate limit, so
/// every line reaches the daemon's stderr queue.
const BURST: &str = r#"
[templates.burst]
command = ["sh", "-c", "yes burst-line | head -n 400000"]
restart = "transient"
log_rate_limit = "off"
"#;
const BURST_LINES: usize = 400_000;

/// Template `talker`: one line per priority prefix and a few without, then it sleeps.
const TALKER: &str = r#"
[templates.talker]
command = ["sh", "-c", "printf '%s\\n' \"<3>$DYNSUP_NAME is on fire\" '<4>low on space' '<5>noticed' '<7>details' '<8>not a prefix' \"hello from $DYNSUP_NAME\"; exec sleep 100000"]
restart = "transient"
"#;

/// Template `chatty`: 3000 lines at once, then it exits.
const CHATTY: &str = r#"
[templates.chatty]
command = ["seq", "1", "3000"]
restart = "transient"
"#;

/// Bytes of worker output after which a daemon whose stderr is never read has surely
/// filled its stderr queue (2 MiB) and a one-page pipe, many times over once formatted.
const STALL_BYTES: u64 = 8 * 1024 * 1024;

/// A log line in the terminal format: `2026-11-24T16:54:00.123Z LEVEL message`, the
/// level padded to five. Returns `(level, message)`.
fn parse_log_line(line: &str) -> Option<(&str, &str)> {
    let (stamp, rest) = line.split_at_checked(24)?;
    let b = stamp.as_bytes();
    let stamp_ok = b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit());
    let rest = rest.strip_prefix(' ')?;
    let (level, message) = rest.split_at_checked(5)?;
    let known = ["ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"].contains(&level);
    (stamp_ok && known).then(|| (level.trim_end(), message.strip_prefix(' ').unwrap_or("\0")))
}

/// A daemon whose stderr is a one-page pipe the test reads only when it says so.
fn daemon_on_a_pipe(config: &str) -> (TestDaemon, StderrPipe) {
    let dir = Rc::new(TestDir::new());
    let (pipe, write_end) = StderrPipe::new(&dir);
    let d = Launch::new(config)
        .in_dir(dir)
        .stderr(write_end, pipe.copy_path())
        .wait(WaitFor::Socket)
        .start();
    (d, pipe)
}

#[test]
fn a_stalled_stderr_while_a_worker_floods_blocks_neither_requests_nor_sigterm() {
    let (mut d, _pipe) = daemon_on_a_pipe(&[LENIENT_SUPERVISOR, FLOOD, SLEEPER].concat());
    let before = bytes_read(d.pid());
    d.start_worker("flood", Some("flood"), &[]);
    d.wait_until(DEADLINE, "the daemon to read 8 MiB of the flood", || {
        (bytes_read(d.pid()) - before >= STALL_BYTES).then_some(())
    });

    // Its stderr takes nothing more, the flood goes on: requests are answered.
    assert_eq!(d.count(), 1);
    let quiet = d.start_worker("quiet", Some("sleeper"), &[]);
    let mut names: Vec<String> = d.list().into_iter().map(|w| w.name).collect();
    names.sort();
    assert_eq!(names, ["flood", "quiet"]);
    assert_eq!(d.lookup("quiet"), Some(quiet));

    // SIGTERM stops the workers, and the daemon exits after a bounded grace for its
    // log, though nobody ever reads it.
    let flood = d.lookup("flood").expect("flood is registered");
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        !is_alive(quiet) && !is_alive(flood),
        "a worker outlived the daemon"
    );
}

#[test]
fn a_stderr_read_late_gets_whole_lines_and_one_dropped_record_where_the_gap_is() {
    let (d, mut pipe) = daemon_on_a_pipe(&[LENIENT_SUPERVISOR, BURST, SLEEPER].concat());
    d.start_worker("burst", Some("burst"), &[]);
    // Gone from the registry: every line it wrote has been logged, or dropped.
    d.wait_unregistered("burst");

    // Now the pipe is read: what was queued comes out, then the record of the gap.
    d.wait_until(DEADLINE, "a `dropped N lines` record", || {
        pipe.drain();
        pipe.text()
            .contains(" lines: stderr did not keep up\n")
            .then_some(())
    });
    // New lines are taken again.
    d.start_worker("quiet", Some("sleeper"), &[]);
    d.wait_until(DEADLINE, "`quiet: started` on stderr", || {
        pipe.drain();
        pipe.text().contains("quiet: started").then_some(())
    });

    let text = pipe.text();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|l| parse_log_line(l).unwrap_or_else(|| panic!("a torn log line: {l:?}")))
        .collect();
    let gaps: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, (level, message))| {
            let n = message
                .strip_prefix("dropped ")?
                .strip_suffix(" lines: stderr did not keep up")?;
            assert_eq!(*level, "WARN");
            Some((i, n.parse().expect("a count")))
        })
        .collect();
    assert_eq!(gaps.len(), 1, "not one dropped record: {gaps:?}");
    let (at, dropped) = gaps[0];
    let burst: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i] == ("INFO", "[burst] burst-line"))
        .collect();
    assert!(
        burst.iter().all(|&i| i < at),
        "burst lines after the gap's record"
    );
    // What is missing is what was counted: the burst's lines, and the few records of
    // the daemon made while it dropped (the burst's exit).
    assert!(
        burst.len() + dropped >= BURST_LINES && burst.len() + dropped <= BURST_LINES + 10,
        "{} burst lines written and {dropped} dropped, of {BURST_LINES}",
        burst.len()
    );
    let started = lines
        .iter()
        .position(|(_, m)| m.starts_with("quiet: started"))
        .expect("quiet: started");
    assert!(started > at, "a line taken during the gap");
}

#[test]
fn priority_prefixes_set_a_worker_lines_level() {
    let config = [LENIENT_SUPERVISOR, "log_level = \"debug\"\n", TALKER].concat();
    let d = TestDaemon::start(&config);
    d.start_worker("w", Some("talker"), &[]);
    d.wait_worker_line("w", "hello from w", 1);
    let log = d.log();
    let worker_lines: Vec<(&str, &str)> = log
        .lines()
        .filter_map(parse_log_line)
        .filter(|(_, m)| m.starts_with("[w] "))
        .collect();
    assert_eq!(
        worker_lines,
        [
            ("ERROR", "[w] w is on fire"),
            ("WARN", "[w] low on space"),
            ("INFO", "[w] noticed"),
            ("DEBUG", "[w] details"),
            ("INFO", "[w] <8>not a prefix"),
            ("INFO", "[w] hello from w"),
        ],
        "{}",
        d.log_tail()
    );
}

#[test]
fn under_journald_worker_lines_are_native_entries_with_the_worker_name() {
    let dir = Rc::new(TestDir::new());
    let mut journal = JournalListener::bind(&dir.join("journal.sock"));
    let d = Launch::new(&[LENIENT_SUPERVISOR, TALKER].concat())
        .in_dir(dir.clone())
        .journal_stream()
        .env("DYNSUP_JOURNAL_SOCKET", &journal.path.display().to_string())
        .start();

    for name in ["api_1", "db"] {
        d.start_worker(name, Some("talker"), &[]);
        journal.wait_for(DEADLINE, &format!("from {name}'s last line"), |e| {
            e.field("MESSAGE") == Some(format!("hello from {name}"))
        });
        let entries: Vec<(String, String, String)> = journal
            .of_worker(name)
            .iter()
            .map(|e| {
                assert_eq!(e.field("SYSLOG_IDENTIFIER").as_deref(), Some(name), "{e:?}");
                (
                    e.field("PRIORITY").unwrap_or_default(),
                    e.field("MESSAGE").unwrap_or_default(),
                    e.fields
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = [
            ("3", format!("{name} is on fire")),
            ("4", "low on space".to_string()),
            ("6", "noticed".to_string()),
            // `<7>` is debug: below the daemon's level (info), not logged.
            ("6", "<8>not a prefix".to_string()),
            ("6", format!("hello from {name}")),
        ]
        .into_iter()
        .map(|(p, m)| {
            (
                p.to_string(),
                m,
                "MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,DYNSUP_WORKER".to_string(),
            )
        })
        .collect();
        assert_eq!(entries, expected);
    }
    assert_eq!(journal.entries.len(), 10, "{:?}", journal.entries);

    // The daemon's own records stay on the journal stream; the workers' lines are
    // not there a second time.
    d.wait_until(DEADLINE, "`<6>db: started` on the journal stream", || {
        d.log()
            .lines()
            .any(|l| l.starts_with("<6>db: started, pid"))
            .then_some(())
    });
    let log = d.log();
    assert!(
        log.lines().any(|l| l.starts_with("<6>api_1: started, pid")),
        "{log}"
    );
    assert!(
        !log.contains("hello from"),
        "worker lines on stderr too: {log}"
    );
}

#[test]
fn under_journald_without_its_socket_worker_lines_go_to_the_journal_stream() {
    let dir = Rc::new(TestDir::new());
    let missing = dir.join("no-journal.sock");
    let d = Launch::new(&[LENIENT_SUPERVISOR, TALKER].concat())
        .in_dir(dir.clone())
        .journal_stream()
        .env("DYNSUP_JOURNAL_SOCKET", &missing.display().to_string())
        .start();
    d.start_worker("w", Some("talker"), &[]);
    d.wait_worker_line("w", "hello from w", 1);
    let log = d.log();
    let worker_lines: Vec<&str> = log.lines().filter(|l| l.contains("[w] ")).collect();
    assert_eq!(
        worker_lines,
        [
            "<3>[w] w is on fire",
            "<4>[w] low on space",
            "<6>[w] noticed",
            "<6>[w] <8>not a prefix",
            "<6>[w] hello from w",
        ],
        "{log}"
    );
    let warnings = lines_with(&log, "cannot send to the journal socket");
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].starts_with("<4>") && warnings[0].contains(&missing.display().to_string()),
        "{warnings:?}"
    );
}

#[test]
fn entries_the_journal_has_no_room_for_are_dropped_and_counted() {
    let dir = Rc::new(TestDir::new());
    let mut journal = JournalListener::bind(&dir.join("journal.sock"));
    let d = Launch::new(&[LENIENT_SUPERVISOR, CHATTY, TALKER].concat())
        .in_dir(dir.clone())
        .journal_stream()
        .env("DYNSUP_JOURNAL_SOCKET", &journal.path.display().to_string())
        .start();
    // 3000 datagrams, none read while they come: more than any socket queues.
    d.start_worker("chatty", Some("chatty"), &[]);
    d.wait_unregistered("chatty");
    journal.drain_now();
    let received = journal.of_worker("chatty").len();
    assert!(received < 3000, "every entry fit: the test proves nothing");

    // The next entry that fits brings the count, on the journal stream.
    d.start_worker("after", Some("talker"), &[]);
    journal.wait_for(DEADLINE, "from `after`", |e| {
        e.field("DYNSUP_WORKER").as_deref() == Some("after")
    });
    let suffix = " lines: the journal socket was full";
    d.wait_log(suffix);
    let log = d.log();
    let records = lines_with(&log, suffix);
    assert_eq!(records.len(), 1, "{log}");
    let dropped: usize = records[0]
        .strip_prefix("<4>dropped ")
        .and_then(|r| r.strip_suffix(suffix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a dropped record: {:?}", records[0]));
    assert_eq!(
        received + dropped,
        3000,
        "{received} received, {dropped} dropped"
    );
}
