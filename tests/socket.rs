//! The control socket: malformed requests get `bad_request` and the
//! daemon goes on; an oversize line closes its connection; silent, half-written and
//! never-reading clients do not delay anyone else; replies come in request order.

mod common;
use common::*;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[templates.worker]
command = ["sleep", "100000"]
restart = "transient"

[[children]]
name = "worker_1"
"#;

/// How long "at once" may take on a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(5);

#[track_caller]
fn assert_bad_request(reply: &Reply, mentions: &str) {
    assert_error(reply, ErrorKind::BadRequest);
    let message = &reply.error.as_ref().unwrap().message;
    assert!(
        message.contains(mentions),
        "the bad_request message {message:?} does not mention {mentions:?}"
    );
}

/// A lookup of worker_1 on a fresh connection that must be answered within PROMPT.
#[track_caller]
fn prompt_lookup(d: &TestDaemon) -> i32 {
    let begin = Instant::now();
    let mut client = d.client();
    client.stream().set_read_timeout(Some(PROMPT)).unwrap();
    let reply = client.request(&lookup_req("worker_1"));
    assert!(reply.ok, "{reply:?}");
    assert!(
        begin.elapsed() < PROMPT,
        "lookup took {:?}",
        begin.elapsed()
    );
    reply.pid.unwrap()
}

#[test]
fn malformed_requests_get_bad_request_and_the_connection_goes_on() {
    let d = TestDaemon::start(CONFIG);
    let mut c = d.client();
    assert_bad_request(&c.request("{nope"), "JSON");
    assert_bad_request(&c.request(r#"{"cmd":"dance"}"#), "dance");
    assert_bad_request(&c.request(r#"{"cmd":"lookup"}"#), "name");
    assert_bad_request(&c.request(r#"{"name":"worker_1"}"#), "cmd");
    assert_bad_request(&c.request(r#"[1, 2]"#), "");
    assert_bad_request(&c.request(r#"{"cmd":"lookup","name":7}"#), "");
    // The same connection is still served.
    let reply = c.request(&Request::Count);
    assert_eq!(reply.count, Some(1), "{reply:?}");
    let pid = c.request(&lookup_req("worker_1")).pid.expect("lookup pid");
    assert_eq!(prompt_lookup(&d), pid);
}

#[test]
fn unknown_fields_are_bad_requests() {
    let d = TestDaemon::start(CONFIG);
    let mut c = d.client();
    assert_bad_request(
        &c.request(r#"{"cmd":"lookup","name":"worker_1","bogus":1}"#),
        "bogus",
    );
    // Commands without fields too (the protocol's `deny_unknown_fields`).
    assert_bad_request(&c.request(r#"{"cmd":"count","bogus":true}"#), "bogus");
    assert_eq!(c.request(&Request::Count).count, Some(1));
}

#[test]
fn non_utf8_request_is_a_bad_request() {
    let d = TestDaemon::start(CONFIG);
    let mut c = d.client();
    let mut stream = c.stream().try_clone().unwrap();
    stream
        .write_all(b"{\"cmd\":\"lookup\",\"name\":\"\xff\xfe\"}\n")
        .unwrap();
    assert_error(&c.recv(), ErrorKind::BadRequest);
    assert_eq!(c.request(&Request::Count).count, Some(1));
}

#[test]
fn one_mebibyte_line_gets_bad_request_and_the_connection_is_closed() {
    let d = TestDaemon::start(CONFIG);
    let mut c = d.client();
    let mut line = String::from(r#"{"cmd":"lookup","name":""#);
    line.push_str(&"x".repeat(1 << 20));
    line.push_str("\"}\n");
    // The daemon may close the connection before the whole line is written: a failed
    // write is expected then.
    let mut stream = c.stream().try_clone().unwrap();
    match stream.write_all(line.as_bytes()) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                IoErrorKind::BrokenPipe | IoErrorKind::ConnectionReset
            ) => {}
        Err(e) => panic!("writing the long line: {e}{}", d.log_tail()),
    }
    let reply = c.recv();
    assert_error(&reply, ErrorKind::BadRequest);
    assert!(
        c.is_closed_by_peer(),
        "the daemon kept the connection open after an oversize line{}",
        d.log_tail()
    );
    // The daemon goes on.
    prompt_lookup(&d);
}

#[test]
fn a_long_line_under_the_limit_is_accepted() {
    let d = TestDaemon::start(CONFIG);
    let padding = " ".repeat(MAX_LINE_UNDER);
    let reply = d.request(&format!("{{\"cmd\":\"count\"{padding}}}"));
    assert_eq!(reply.count, Some(1), "{reply:?}");
}

/// A request line comfortably under the 64 KiB limit.
const MAX_LINE_UNDER: usize = dynsup::protocol::MAX_REQUEST_LINE - 1024;

#[test]
fn silent_and_half_written_clients_do_not_delay_others() {
    let d = TestDaemon::start(CONFIG);
    let silent = UnixStream::connect(d.socket()).unwrap();
    let mut half = d.client();
    half.stream().write_all(br#"{"cmd":"cou"#).unwrap();

    let pid = prompt_lookup(&d);

    // The silent client is simply held open: no reply, no close.
    silent.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match (&silent).read(&mut byte) {
        Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
        other => panic!("the silent client got {other:?} instead of nothing"),
    }
    // The half-written request completes and is answered.
    half.stream().write_all(b"nt\"}\n").unwrap();
    assert_eq!(half.recv().count, Some(1));
    assert_eq!(prompt_lookup(&d), pid);
}

#[test]
fn a_client_that_never_reads_its_replies_does_not_delay_others() {
    let d = TestDaemon::start(CONFIG);
    let greedy = UnixStream::connect(d.socket()).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = greedy.try_clone().unwrap();
    // Up to 8 MiB of requests whose replies are never read: the daemon must stop
    // reading them (or buffer within bounds) without blocking its loop.
    let flood = thread_flood(&mut writer);
    for _ in 0..3 {
        prompt_lookup(&d);
    }
    greedy.shutdown(std::net::Shutdown::Both).unwrap();
    flood.join().unwrap();
    prompt_lookup(&d);
    // The daemon is still healthy and its memory use bounded enough to carry on.
    assert_eq!(d.count(), 1);
}

fn thread_flood(writer: &mut UnixStream) -> std::thread::JoinHandle<()> {
    let mut writer = writer.try_clone().unwrap();
    std::thread::spawn(move || {
        let chunk = "{\"cmd\":\"count\"}\n".repeat(4096);
        for _ in 0..128 {
            if writer.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = TestDaemon::start(CONFIG);
    let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let pids: Vec<i32> = names.iter().map(|n| d.start_worker(n, None, &[])).collect();
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for i in 0..600 {
        match i % 4 {
            0 | 1 => {
                lines.push(lookup_req(&names[i % 10]).to_line());
                expected.push(format!("pid {}", pids[i % 10]));
            }
            2 => {
                lines.push(Request::Count.to_line());
                expected.push("count 11".to_string());
            }
            _ => {
                lines.push(lookup_req(&format!("missing{i}")).to_line());
                expected.push("not_found".to_string());
            }
        }
    }
    let mut c = d.client();
    let replies = c.pipeline(&lines);
    for (i, (reply, want)) in replies.iter().zip(&expected).enumerate() {
        let got = match (reply.pid, reply.count, error_kind(reply)) {
            (Some(pid), _, None) => format!("pid {pid}"),
            (_, Some(count), None) => format!("count {count}"),
            (_, _, Some(ErrorKind::NotFound)) => "not_found".to_string(),
            _ => format!("{reply:?}"),
        };
        assert_eq!(&got, want, "reply {i} to {}", lines[i]);
    }
    // Requests in one write, replies read after: still in order.
    let mut c = d.client();
    let mut stream = c.stream().try_clone().unwrap();
    stream
        .write_all(
            format!(
                "{}\n{}\n{{bad\n{}\n",
                lookup_req("p3").to_line(),
                Request::Count.to_line(),
                lookup_req("p7").to_line()
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(c.recv().pid, Some(pids[3]));
    assert_eq!(c.recv().count, Some(11));
    assert_error(&c.recv(), ErrorKind::BadRequest);
    assert_eq!(c.recv().pid, Some(pids[7]));
}

#[test]
fn many_connections_at_once() {
    let d = TestDaemon::start(CONFIG);
    let mut clients: Vec<Client> = (0..64).map(|_| d.client()).collect();
    for c in &mut clients {
        c.send(&lookup_req("worker_1"));
    }
    let pid = d.lookup("worker_1").unwrap();
    for c in &mut clients {
        assert_eq!(c.recv().pid, Some(pid));
    }
    // Closing them all leaves the daemon serving.
    drop(clients);
    assert_eq!(prompt_lookup(&d), pid);
}

#[test]
fn the_socket_is_private_to_its_owner() {
    let d = TestDaemon::start(CONFIG);
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "socket mode {:o}",
        meta.permissions().mode()
    );
}

#[test]
fn replies_stay_in_order_behind_a_slow_stop() {
    let d = TestDaemon::start(CONFIG);
    let worker = worker_bin();
    let pid = d.start_command("s", None, &[worker.to_str().unwrap(), "--ignore-sigterm"]);
    d.wait_started("s", 1);
    let mut c = d.client();
    let replies = c.pipeline(&[
        stop_req("s", Some(300)).to_line(),
        Request::Count.to_line(),
        lookup_req("worker_1").to_line(),
    ]);
    let stopped = replies[0]
        .stopped
        .as_ref()
        .unwrap_or_else(|| panic!("first reply is not the stop's: {replies:?}"));
    assert!(stopped.killed, "{stopped:?}");
    assert!(replies[1].count.is_some(), "second reply: {:?}", replies[1]);
    assert!(replies[2].pid.is_some(), "third reply: {:?}", replies[2]);
    d.assert_reaped(pid);
}
