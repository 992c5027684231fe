//! The protocol under a small deterministic fuzzer: a few thousand requests, random and
//! mutated (wrong types, huge numbers, deep nesting, invalid UTF-8, NUL bytes, lines at
//! and above 64 KiB), pipelined in bursts over concurrent connections that read
//! everything, half-close, never read, or end with an oversized line. The daemon
//! never crashes, answers every request of a connection that reads, in order, with a
//! `bad_request` exactly when the line does not decode (the same message as
//! `protocol::decode_request`), closes what it must, stays small, and answers another
//! client's `lookup` throughout.
//!
//! Deterministic: one seed, a splitmix64 generator, no dependency. Only the
//! interleaving of the connections varies from run to run.

mod common;
use common::*;
use dynsup::protocol::{decode_request, MAX_REQUEST_LINE, MAX_TIMEOUT_MS};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const SEED: u64 = 0x5eed_0fd1_5ab1_e500;
const CONNECTIONS: usize = 40;
const THREADS: usize = 4;

/// splitmix64: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn ascii(&mut self, max: usize) -> String {
        (0..self.below(max + 1))
            .map(|_| (b' ' + self.below(95) as u8) as char)
            .collect()
    }
}

/// A worker name: the fuzz's own workers, names that are not registered, and names
/// the daemon must refuse. Never `probe`, the worker another client looks up.
fn name(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0..=3 => json!(rng.pick(&["f1", "f2", "f3"])),
        4 => json!(rng.pick(&["nope", "", "..", ".hidden", "a:b@c.d-e_f", "ünï", "w\u{0}x"])),
        5 => json!("n".repeat(129)),
        6 => json!(rng.ascii(24)),
        _ => json!(format!("z{}", rng.below(1000))),
    }
}

fn timeout(rng: &mut Rng) -> Option<u64> {
    rng.pick(&[
        None,
        Some(0),
        Some(100),
        Some(MAX_TIMEOUT_MS),
        Some(u64::MAX),
    ])
}

/// A well-formed request of any command but `watch` and `shutdown`.
fn valid(rng: &mut Rng) -> Value {
    let mut req = match rng.below(13) {
        0 => json!({"cmd": "lookup", "name": name(rng)}),
        1 => json!({"cmd": "count"}),
        2 => json!({"cmd": "list"}),
        3 => json!({"cmd": "whois", "pid": rng.pick(&[1, 0, -1, i32::MAX, i32::MIN, 4242])}),
        4 if rng.chance(50) => json!({"cmd": "ps"}),
        4 => json!({"cmd": "ps", "name": name(rng)}),
        5 => json!({"cmd": "wait_ready", "name": name(rng)}),
        6 => {
            let message = match rng.below(3) {
                0 => "line\nbreak".to_string(),
                _ => rng.ascii(40),
            };
            json!({"cmd": "cast", "name": name(rng), "message": message})
        }
        7 => {
            let signals = [
                "SIGKILL", "KILL", "kill", "9", "TERM", "SIGUSR1", "0", "99", "-1", "SIGFOO", "",
            ];
            json!({"cmd": "kill", "name": name(rng), "signal": rng.pick(&signals)})
        }
        8 | 9 => {
            let cmd = if rng.chance(50) { "stop" } else { "restart" };
            let mut req = json!({"cmd": cmd, "name": name(rng)});
            if let Some(ms) = timeout(rng) {
                req["timeout_ms"] = json!(ms);
            }
            req
        }
        10 => {
            let mut req = json!({"cmd": "start", "name": name(rng)});
            if rng.chance(80) {
                req["template"] = json!(rng.pick(&["sleeper", "nope"]));
            }
            if rng.chance(30) {
                req["args"] = json!([rng.ascii(8), "--x"]);
            }
            if rng.chance(20) {
                req["command"] = json!(rng.pick(&[vec!["/no/such/program"], vec![]]));
            }
            req
        }
        11 => json!({"cmd": "reload"}),
        _ => json!({"cmd": rng.ascii(12)}),
    };
    if rng.chance(5) {
        req["unknown_field"] = json!(1);
    }
    req
}

/// Replace one field's value with something of another type (or a number no integer
/// type holds, spliced in as raw text).
fn wrong_type(rng: &mut Rng, mut req: Value) -> Vec<u8> {
    const RAW: &str = "@@raw@@";
    let keys: Vec<String> = req
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let key = rng.pick(&keys);
    let raw = rng.pick(&[
        "1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "-0",
        "0.5",
    ]);
    req[key.as_str()] = rng.pick(&[
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!("text"),
        json!([1, [2]]),
        json!({"a": {}}),
        json!(RAW),
    ]);
    req.to_string()
        .replace(&format!("\"{RAW}\""), raw)
        .into_bytes()
}

/// Nested arrays or objects, deep enough to pass serde's recursion limit many times
/// over but inside the 64 KiB line.
fn deeply_nested(rng: &mut Rng) -> Vec<u8> {
    let depth = 100 + rng.below(30_000);
    let (open, close) = if rng.chance(50) {
        ("[", "]")
    } else {
        ("{\"a\":", "}")
    };
    let mut inner = open.repeat(depth);
    inner.push('1');
    inner.push_str(&close.repeat(depth));
    let mut line = format!(r#"{{"cmd":"lookup","name":{inner}}}"#).into_bytes();
    line.truncate(MAX_REQUEST_LINE);
    line
}

/// Byte-level damage: flips, bad UTF-8, NULs, cuts, repeats.
fn mutate(rng: &mut Rng, line: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(line.len() + 1);
        match rng.below(8) {
            0 if at < line.len() => line[at] ^= 1 << rng.below(8),
            1 if at < line.len() => {
                line[at] = rng.pick(&[0u8, 0xff, 0xc3, b'"', b'{', b'}', b'\\', b'\r'])
            }
            2 => line.truncate(at),
            3 => {
                let junk: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                line.splice(at..at, junk);
            }
            4 => {
                let end = (at + rng.below(16)).min(line.len());
                line.drain(at..end);
            }
            5 => {
                let end = (at + rng.below(32)).min(line.len());
                let piece = line[at..end].to_vec();
                line.splice(at..at, piece);
            }
            6 => {
                let bad: &[u8] = rng.pick(&[
                    &[0xf0u8, 0x28, 0x8c, 0x28][..],
                    b"\\ud800",
                    &[0xed, 0xa0, 0x80],
                ]);
                line.splice(at..at, bad.iter().copied());
            }
            _ => line.insert(at, 0),
        }
    }
}

/// One request line (no newline in it).
fn line(rng: &mut Rng) -> Vec<u8> {
    let mut line = match rng.below(100) {
        0..=29 => valid(rng).to_string().into_bytes(),
        30..=49 => {
            let req = valid(rng);
            wrong_type(rng, req)
        }
        50..=84 => {
            let mut line = valid(rng).to_string().into_bytes();
            mutate(rng, &mut line);
            line
        }
        85..=87 => deeply_nested(rng),
        88..=90 => {
            // At the limit exactly: still a request (JSON allows trailing spaces).
            let mut line = br#"{"cmd":"count"}"#.to_vec();
            line.resize(MAX_REQUEST_LINE, b' ');
            line
        }
        91..=93 => rng
            .pick(&[&b""[..], b" ", b"\r", b"null", b"[]", b"{}", b"\"x\""])
            .to_vec(),
        _ => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
    };
    for b in &mut line {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    safe(line)
}

/// The fuzz must not end the test's own setup: a line that decodes to `watch`
/// (the connection would stop answering), `shutdown`, or a command that changes the
/// probe worker becomes a `count`.
fn safe(line: Vec<u8>) -> Vec<u8> {
    let harmful = match decode_request(trim_cr(&line)) {
        // A restart may name a template, or all.
        Ok(Request::Watch { .. } | Request::Shutdown | Request::Restart { .. }) => true,
        // A stop or kill may name several workers, a template, or all.
        Ok(
            Request::Stop {
                name,
                names,
                template,
                all,
                ..
            }
            | Request::Kill {
                name,
                names,
                template,
                all,
                ..
            },
        ) => name.as_deref() == Some("probe") || !names.is_empty() || template.is_some() || all,
        Ok(Request::Cast { name, .. }) => name == "probe",
        _ => false,
    };
    if harmful {
        return br#"{"cmd":"count"}"#.to_vec();
    }
    line
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// How a connection ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Reads every reply, then closes.
    ReadAll,
    /// Shuts down its writing side (the last line perhaps without its newline), then
    /// reads every reply and the end of the stream.
    HalfClose { last_newline: bool },
    /// Sends everything and closes without reading a byte.
    NeverRead,
    /// Ends with a line over the limit: every earlier reply, the error, the end.
    Oversize,
}

struct Plan {
    lines: Vec<Vec<u8>>,
    ending: Ending,
    /// Sizes of the writes the requests are cut into.
    chunk: usize,
}

fn plan(rng: &mut Rng) -> Plan {
    let lines: Vec<Vec<u8>> = (0..50 + rng.below(100)).map(|_| line(rng)).collect();
    let ending = match rng.below(10) {
        0..=4 => Ending::ReadAll,
        5..=6 => Ending::HalfClose {
            last_newline: rng.chance(50),
        },
        7..=8 => Ending::NeverRead,
        _ => Ending::Oversize,
    };
    // Requests trickle in a few bytes at a time, or come in bursts; a trickle only for
    // short plans (each write wakes the daemon).
    let bytes: usize = lines.iter().map(|l: &Vec<u8>| l.len() + 1).sum();
    let chunk = match bytes < 16 * 1024 {
        true => rng.pick(&[1usize, 7, 512, 4096, 1 << 20]),
        false => rng.pick(&[512, 4096, 1 << 20]),
    };
    Plan {
        lines,
        ending,
        chunk,
    }
}

/// The bytes a plan sends.
fn wire_bytes(plan: &Plan) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in &plan.lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    match plan.ending {
        Ending::HalfClose {
            last_newline: false,
        } if plan.lines.last().is_some_and(|l| !l.is_empty()) => {
            bytes.pop();
        }
        Ending::Oversize => {
            bytes.extend(std::iter::repeat_n(b'x', MAX_REQUEST_LINE + 1));
            bytes.push(b'\n');
        }
        _ => {}
    }
    bytes
}

/// What the replies a connection read were: successes, refusals of a request that
/// decoded (not found, invalid name, ...), and `bad_request`s of lines that did not.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: usize,
    refused: usize,
    undecodable: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.undecodable += other.undecodable;
    }
}

/// Checks one reply against the line it answers, and counts it.
fn check_reply(index: usize, line: &[u8], text: &str, tally: &mut Tally) {
    let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
    let reply: Reply = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("request {index} {shown:?}: undecodable reply {text:?}: {e}"));
    match decode_request(trim_cr(line)) {
        Err(expected) => {
            let error = reply.error.as_ref().unwrap_or_else(|| {
                panic!("request {index} {shown:?} does not decode ({expected}) but got {text}")
            });
            assert_eq!(
                error.kind,
                ErrorKind::BadRequest,
                "request {index} {shown:?}: {text}"
            );
            assert_eq!(error.message, expected, "request {index} {shown:?}");
            tally.undecodable += 1;
        }
        Ok(_) if !reply.ok => {
            assert!(
                reply.error.as_ref().is_some_and(|e| !e.message.is_empty()),
                "request {index} {shown:?}: a failure without an error: {text}"
            );
            tally.refused += 1;
        }
        Ok(_) => tally.ok += 1,
    }
}

/// Runs one connection's plan and checks what came back.
fn run_plan(socket: &std::path::Path, plan: &Plan) -> Tally {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("timeout");
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("timeout");
    let bytes = wire_bytes(plan);
    let mut writer = stream.try_clone().expect("clone");
    let chunk = plan.chunk;
    let half_close = matches!(plan.ending, Ending::HalfClose { .. });
    let write = thread::spawn(move || {
        for piece in bytes.chunks(chunk) {
            if writer.write_all(piece).is_err() {
                // The daemon closed an oversize connection, or stopped reading one
                // that never reads: what was not sent is not answered.
                return;
            }
        }
        if half_close {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    if let Ending::NeverRead = plan.ending {
        let _ = write.join();
        return Tally::default();
    }
    // A blank line (only spaces, tabs and CRs) is skipped by the daemon: no reply.
    let answered: Vec<&Vec<u8>> = plan
        .lines
        .iter()
        .filter(|l| !l.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
        .collect();
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    loop {
        let mut text = String::new();
        match reader.read_line(&mut text) {
            Ok(0) => break,
            Ok(_) => replies.push(text),
            Err(e) => panic!(
                "{:?} connection: no reply after {} of {} (to {:?}): {e}",
                plan.ending,
                replies.len(),
                answered.len(),
                answered
                    .get(replies.len())
                    .map(|l| String::from_utf8_lossy(&l[..l.len().min(200)]).into_owned())
            ),
        }
        if matches!(plan.ending, Ending::ReadAll) && replies.len() == answered.len() {
            break;
        }
    }
    let _ = write.join();
    let expected = answered.len() + usize::from(matches!(plan.ending, Ending::Oversize));
    assert_eq!(
        replies.len(),
        expected,
        "{:?} connection: {} replies to {} lines ({} blank)",
        plan.ending,
        replies.len(),
        plan.lines.len(),
        plan.lines.len() - answered.len()
    );
    let mut tally = Tally::default();
    for (i, (line, text)) in answered.iter().zip(&replies).enumerate() {
        check_reply(i, line, text, &mut tally);
    }
    if let Ending::Oversize = plan.ending {
        let last: Reply = serde_json::from_str(&replies[answered.len()]).expect("reply");
        assert_error(&last, ErrorKind::BadRequest);
        assert!(
            last.error.as_ref().unwrap().message.contains("longer than"),
            "{last:?}"
        );
    }
    tally
}

/// How many sockets the process has open (its connections, among others; the
/// workers the fuzz started hold pipes, not sockets).
fn socket_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the daemon's fds")
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

#[test]
fn fuzzed_requests_never_crash_grow_or_starve_the_daemon() {
    // The fuzz starts, kills and stops `sleeper` workers (temporary: a killed one, or
    // one started with arguments `sleep` refuses, is not restarted); `probe` is the
    // worker another client looks up throughout, which no fuzzed request names.
    let config = r#"
[supervisor]
max_children = 16

[templates.sleeper]
command = ["sleep", "100000"]
restart = "temporary"
shutdown_ms = 200

[templates.probe]
command = ["sleep", "100000"]
"#;
    let d = TestDaemon::start(config);
    let probe = d.start_worker("probe", Some("probe"), &[]);
    let sockets_before = socket_count(d.pid());
    let rss_before = rss_kib(d.pid());

    let mut rng = Rng(SEED);
    let plans: Vec<Plan> = (0..CONNECTIONS).map(|_| plan(&mut rng)).collect();
    let requests: usize = plans.iter().map(|p| p.lines.len()).sum();
    assert!(requests > 3000, "only {requests} requests");

    // Another client looks `probe` up again and again while the fuzz runs.
    let done = Arc::new(AtomicBool::new(false));
    let answered_during = Arc::new(AtomicUsize::new(0));
    let prober = {
        let socket = d.socket().to_path_buf();
        let done = done.clone();
        let answered = answered_during.clone();
        thread::spawn(move || {
            let mut client = Client::connect(&socket).expect("probe connect");
            while !done.load(Ordering::Relaxed) {
                let reply = client.request(&lookup_req("probe"));
                assert_eq!(reply.pid, Some(probe), "{reply:?}");
                if !done.load(Ordering::Relaxed) {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let plans = Arc::new(plans);
    let runners: Vec<_> = (0..THREADS)
        .map(|t| {
            let plans = plans.clone();
            let socket = d.socket().to_path_buf();
            thread::spawn(move || {
                let mut tally = Tally::default();
                for plan in plans.iter().skip(t).step_by(THREADS) {
                    tally.add(run_plan(&socket, plan));
                }
                tally
            })
        })
        .collect();
    let mut failure = None;
    let mut tally = Tally::default();
    for runner in runners {
        match runner.join() {
            Ok(t) => tally.add(t),
            Err(panic) => {
                failure.get_or_insert(panic);
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Err(panic) = prober.join() {
        failure.get_or_insert(panic);
    }
    if let Some(panic) = failure {
        eprintln!("{}", d.log_tail());
        std::panic::resume_unwind(panic);
    }

    // The fuzz reached every part of the daemon: requests carried out, requests
    // refused by the rules, lines refused by the decoder.
    assert!(
        tally.ok > 200 && tally.refused > 200 && tally.undecodable > 200,
        "{tally:?}"
    );
    assert!(
        answered_during.load(Ordering::Relaxed) > 0,
        "no lookup was answered while the fuzz ran"
    );
    assert_eq!(d.lookup("probe"), Some(probe));
    assert!(is_alive(probe));
    d.wait_until(DEADLINE, "every fuzz connection to be closed", || {
        (socket_count(d.pid()) <= sockets_before).then_some(())
    });
    let rss_after = rss_kib(d.pid());
    assert!(
        rss_after < rss_before + 48 * 1024,
        "the daemon grew from {rss_before} KiB to {rss_after} KiB{}",
        d.log_tail()
    );
    assert!(!d.log().contains("panicked"), "{}", d.log_tail());
}
