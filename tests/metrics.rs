//! Metrics: `dynsup metrics` and `GET /metrics` (`metrics_listen`) print the Prometheus
//! text format, checked by `promtool check metrics` (a parser we did not write); a
//! counter rises after a worker is killed with kill(2); the HTTP endpoint serves only
//! `GET /metrics`, bounds slow and abusive clients, and never holds up the control
//! socket; a non-loopback address needs `metrics_listen_public`.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `[supervisor]` serving metrics on a port the kernel picks.
fn config_with(listen: &str) -> String {
    [
        LENIENT_SUPERVISOR,
        &format!("metrics_listen = {}\n", toml_str(listen)),
        SLEEPER,
    ]
    .concat()
}

/// Runs `promtool check metrics` on `text`; fails the test if promtool finds anything,
/// or is not installed (scripts/test installs it: it is not a check to skip).
#[track_caller]
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}): run scripts/test, which installs the Debian package `prometheus` that provides it"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n--- the text ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dynsup metrics`'s output.
#[track_caller]
fn cli_metrics(d: &TestDaemon) -> String {
    let out = d.cli(&["metrics"]);
    assert_exit(&out, 0);
    stdout_of(&out)
}

/// The value of the sample `series` (name and labels, exactly as rendered).
#[track_caller]
fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// The address the daemon logged for its endpoint (`serving metrics on http://ADDR/metrics`).
fn http_addr(d: &TestDaemon) -> String {
    d.wait_log("serving metrics on http://");
    let log = d.log();
    let at = log.find("serving metrics on http://").expect("logged")
        + "serving metrics on http://".len();
    log[at..].split('/').next().expect("address").to_string()
}

/// Sends `request` raw and reads the whole response (the server closes).
fn http_raw(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The status code of a raw response.
fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// `GET /metrics`: the status and the body.
fn http_get(addr: &str) -> (u16, String) {
    let response = http_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status_of(&response), body)
}

/// A few workers, one killed: the output passes promtool both ways, the workers are
/// counted by template and state, and the killed worker's counters rise.
#[test]
fn metrics_pass_promtool_and_count_a_kill() {
    let d = Launch::new(&config_with("127.0.0.1:0")).start();
    let pids: Vec<i32> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| d.start_worker(name, Some("sleeper"), &[]))
        .collect();
    let before = cli_metrics(&d);
    promtool_check(&before);
    assert_eq!(
        sample(
            &before,
            r#"dynsup_workers{template="sleeper",state="running"}"#
        ),
        3.0
    );
    let restarts = r#"dynsup_worker_restarts_total{worker="s1",template="sleeper"}"#;
    let killed = r#"dynsup_worker_exits_total{worker="s1",template="sleeper",reason="signal"}"#;
    assert_eq!(sample(&before, restarts), 0.0);
    assert_eq!(sample(&before, killed), 0.0);
    assert_eq!(
        sample(
            &before,
            r#"dynsup_template_spawns_total{template="sleeper"}"#
        ),
        3.0
    );
    assert_eq!(sample(&before, "dynsup_spawn_duration_seconds_count"), 3.0);
    assert!(sample(&before, "dynsup_resident_memory_bytes") > 0.0);
    assert!(sample(&before, "dynsup_connections_accepted_total") >= 4.0);

    send_signal(pids[0], Signal::SIGKILL);
    let new = d.wait_restarted("s1", pids[0]);
    assert!(is_alive(new));
    let after = cli_metrics(&d);
    promtool_check(&after);
    assert_eq!(sample(&after, restarts), 1.0);
    assert_eq!(sample(&after, killed), 1.0);
    assert_eq!(
        sample(
            &after,
            r#"dynsup_template_restarts_total{template="sleeper"}"#
        ),
        1.0
    );
    assert_eq!(sample(&after, "dynsup_intensity_restarts"), 1.0);
    assert_eq!(sample(&after, "dynsup_intensity_max_restarts"), 100.0);
    assert_eq!(
        sample(
            &after,
            r#"dynsup_workers{template="sleeper",state="running"}"#
        ),
        3.0
    );

    // The same text over HTTP.
    let (status, body) = http_get(&http_addr(&d));
    assert_eq!(status, 200, "{body}");
    promtool_check(&body);
    assert_eq!(sample(&body, restarts), 1.0);
    assert_eq!(
        sample(&body, r#"dynsup_http_requests_total{outcome="ok"}"#),
        1.0
    );

    // A stopped worker's own series go; its template keeps the count.
    d.request_ok(&stop_req("s1", None));
    let stopped = cli_metrics(&d);
    assert!(!stopped.contains(r#"worker="s1""#), "{stopped}");
    assert_eq!(
        sample(
            &stopped,
            r#"dynsup_template_exits_total{template="sleeper",reason="signal"}"#
        ),
        1.0
    );

    // A `start` whose exec fails leaves no series of its name; its template counts it.
    let reply = d.request(&start_cmd_req(
        "bad",
        Some("sleeper"),
        &["/nonexistent/program"],
    ));
    assert!(!reply.ok, "{reply:?}");
    let failed = cli_metrics(&d);
    assert!(!failed.contains(r#"worker="bad""#), "{failed}");
    assert_eq!(
        sample(
            &failed,
            r#"dynsup_template_spawn_failures_total{template="sleeper"}"#
        ),
        1.0
    );

    // The request itself: the text in the reply's `metrics` (a read-only peer may ask:
    // tests/socket_security.rs).
    let reply = d.request_ok(&Request::Metrics);
    assert!(reply
        .metrics
        .is_some_and(|m| m.contains("# TYPE dynsup_workers gauge")));
}

/// Other paths, methods and garbage are refused with their status; an oversized head is
/// 431; slow clients fill the connection cap (503 beyond it) and are closed at their
/// deadline with 408; the control socket answers all along, and so does the endpoint
/// once they are gone.
#[test]
fn the_http_endpoint_refuses_what_it_does_not_serve_and_bounds_slow_clients() {
    let d = Launch::new(&config_with("127.0.0.1:0")).start();
    let addr = http_addr(&d);
    assert_eq!(status_of(&http_raw(&addr, b"GET / HTTP/1.1\r\n\r\n")), 404);
    assert_eq!(
        status_of(&http_raw(&addr, b"GET /metrics/x HTTP/1.1\r\n\r\n")),
        404
    );
    let post = http_raw(
        &addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&post), 405);
    assert!(post.contains("Allow: GET\r\n"), "{post}");
    assert_eq!(
        status_of(&http_raw(&addr, b"\x16\x03\x01\x00\xff garbage")),
        400
    );
    assert_eq!(status_of(&http_raw(&addr, b"hello there\r\n\r\n")), 400);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.resize(64 * 1024, b'a');
    assert_eq!(status_of(&http_raw(&addr, &huge)), 431);
    let body = http_raw(
        &addr,
        b"PUT /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(status_of(&body), 413);

    // Slowloris: connections that send half a request line and stop, up to the cap.
    let slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /metr").expect("send");
            s
        })
        .collect();
    // One more (the 17th in the accept queue) is answered 503 at once, before it sends
    // anything.
    let full = http_raw(&addr, b"");
    assert_eq!(status_of(&full), 503, "{full}");
    // The control socket is not held up meanwhile.
    let pid = d.start_worker("busy", Some("sleeper"), &[]);
    assert_eq!(d.lookup("busy"), Some(pid));
    // Each slow client is answered 408 and closed at its deadline (5 s).
    for mut s in slow {
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert_eq!(status_of(&response), 408, "{response}");
    }
    let (status, text) = http_get(&addr);
    assert_eq!(status, 200);
    promtool_check(&text);
    assert_eq!(
        sample(&text, r#"dynsup_http_requests_total{outcome="timed_out"}"#),
        16.0
    );
    assert_eq!(
        sample(&text, r#"dynsup_http_requests_total{outcome="refused"}"#),
        1.0
    );
    assert_eq!(d.lookup("busy"), Some(pid));
}

/// A Unix socket path serves the same, and is removed at exit.
#[test]
fn the_endpoint_may_be_a_unix_socket() {
    let dir = std::rc::Rc::new(TestDir::new());
    let path = dir.join("metrics.sock");
    let mut d = Launch::new(&config_with(&path.display().to_string()))
        .in_dir(dir.clone())
        .start();
    d.wait_log("serving metrics on ");
    let mut stream = UnixStream::connect(&path).expect("connect to the metrics socket");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert_eq!(status_of(&response), 200, "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    promtool_check(body);
    d.request_ok(&Request::Shutdown);
    d.wait_exit(DEADLINE);
    assert!(
        !Path::new(&path).exists(),
        "the metrics socket is left behind"
    );
}

/// Anything but loopback (or a Unix path) is a config error at its line and column,
/// unless `metrics_listen_public = true`.
#[test]
fn a_public_address_needs_the_explicit_opt_in() {
    let mut d = Launch::new(&config_with("0.0.0.0:0"))
        .wait(WaitFor::Nothing)
        .start();
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", d.log());
    let log = d.log();
    assert!(log.contains("metrics_listen_public = true"), "{log}");
    // Line 5 of the config: after the blank first line and [supervisor]'s three.
    let config = d.config_path().display().to_string();
    assert!(log.contains(&format!("{config}:5:")), "{log}");

    let d = Launch::new(&[&config_with("0.0.0.0:0"), "\n"].concat().replace(
        "metrics_listen =",
        "metrics_listen_public = true\nmetrics_listen =",
    ))
    .start();
    d.wait_log("serving metrics on http://0.0.0.0:");
}

/// `dynsup metrics --json` prints the reply; without a daemon it exits 3 like every
/// command, naming the socket.
#[test]
fn the_cli_prints_the_reply_with_json_and_exits_3_without_a_daemon() {
    let d = Launch::new(&config_with("127.0.0.1:0")).start();
    let out = d.cli(&["metrics", "--json"]);
    assert_exit(&out, 0);
    let reply: Reply = serde_json::from_str(stdout_of(&out).trim()).expect("one JSON reply");
    assert!(reply.ok);
    assert!(reply
        .metrics
        .is_some_and(|m| m.contains("# TYPE dynsup_uptime_seconds gauge")));

    let dir = TestDir::new();
    let socket = dir.join("nobody-listens.sock");
    let out = run(cli_command(&socket).arg("metrics"), DEADLINE);
    assert_exit(&out, 3);
    assert!(
        stderr_of(&out).contains(socket.to_str().unwrap()),
        "{}",
        stderr_of(&out)
    );
    assert!(stdout_of(&out).is_empty());
}

/// Template names are any TOML key: quotes, backslashes, newlines and non-ASCII come
/// out escaped, and promtool still parses every line.
#[test]
fn odd_template_names_are_escaped() {
    let config = [
        LENIENT_SUPERVISOR,
        "\n[templates.\"we\\\"ird\\\\ line\\nbreak \u{e4}\"]\ncommand = [\"sleep\", \"100000\"]\n",
    ]
    .concat();
    let d = Launch::new(&config).start();
    let template = "we\"ird\\ line\nbreak \u{e4}";
    d.start_worker("w", Some(template), &[]);
    let text = cli_metrics(&d);
    promtool_check(&text);
    assert_eq!(
        sample(
            &text,
            r#"dynsup_workers{template="we\"ird\\ line\nbreak ä",state="running"}"#
        ),
        1.0
    );
}
