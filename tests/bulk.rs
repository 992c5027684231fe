//! Requests about several workers: `stop`, `kill` and `restart` of several names, a
//! `--template` or `--all`, and `list` filters. One request on the wire, a result per
//! worker, exit 1 if any failed; the stops of a bulk `stop` go out together.

mod common;
use common::*;
use dynsup::protocol::{decode_request, ExitReport, WorkerStateName};

/// Templates `sleeper` and `worker` (transient), and `deaf`: the sample worker ignoring
/// SIGTERM with a minute before its SIGKILL, so a stop of it stays in progress until
/// the test ends its process.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SLEEPER,
        SAMPLE_WORKER,
        r#"
[templates.deaf]
command = ["dynsup-worker", "--ignore-sigterm"]
restart = "permanent"
shutdown_ms = 60000
"#,
    ]
    .concat()
}

fn request_of(line: &str) -> Request {
    decode_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The names of a reply's results, in order.
fn result_names(reply: &Reply) -> Vec<String> {
    reply
        .results
        .as_deref()
        .unwrap_or_else(|| panic!("no results in {reply:?}"))
        .iter()
        .map(|r| r.name.clone().unwrap_or_default())
        .collect()
}

/// The stops of one bulk request go out together: every worker of the template gets
/// its stop signal while none has ended yet (each ignores it, with a minute to go
/// before its SIGKILL, so stops one after another would leave all but the first
/// untouched); the one reply comes once the last is gone.
#[test]
fn a_bulk_stop_signals_every_worker_at_once_and_answers_when_all_are_gone() {
    let d = TestDaemon::start(&config());
    let names: Vec<String> = (1..=6).map(|i| format!("deaf_{i}")).collect();
    let mut pids = Vec::new();
    for name in &names {
        pids.push(d.start_worker(name, Some("deaf"), &[]));
        d.wait_started(name, 1);
    }
    let bystander = d.start_worker("other", Some("sleeper"), &[]);

    let mut client = d.client();
    client.send(&request_of(r#"{"cmd":"stop","template":"deaf"}"#));
    for name in &names {
        d.wait_worker_line(name, "ignoring SIGTERM", 1);
    }
    // Every one was told, and every one still runs: the request is not answered.
    for (name, pid) in names.iter().zip(&pids) {
        assert!(is_alive(*pid), "{name} ended before the test ended it");
        let row = d.list_one(name).expect(name);
        assert_eq!(row.state, WorkerStateName::Stopping, "{name}: {row:?}");
    }
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let reply = client.recv();
    assert!(reply.ok, "{reply:?}");
    assert_eq!(result_names(&reply), names, "in name order");
    for (result, pid) in reply
        .results
        .as_deref()
        .unwrap_or_default()
        .iter()
        .zip(&pids)
    {
        let stopped = result.stopped.as_ref().expect("a stop report");
        assert_eq!(stopped.pid, Some(*pid));
        assert_eq!(
            stopped.exit,
            Some(ExitReport::Signaled {
                signal: "SIGKILL".into(),
                core_dumped: false
            })
        );
    }
    for pid in pids {
        d.assert_reaped(pid);
    }
    for name in &names {
        assert_eq!(d.lookup(name), None, "{name} is still registered");
    }
    assert_eq!(
        d.lookup("other"),
        Some(bystander),
        "another template's worker"
    );
}

/// 200 workers stopped by one CLI call: a line each, exit 0, every process reaped.
#[test]
fn two_hundred_workers_stop_in_one_call() {
    let d = TestDaemon::start(&config());
    let mut client = d.client();
    for i in 0..200 {
        client.send(&start_req(&format!("s{i:03}"), Some("sleeper"), &[]));
    }
    let pids: Vec<i32> = (0..200)
        .map(|_| {
            let reply = client.recv();
            reply.pid.unwrap_or_else(|| panic!("{reply:?}"))
        })
        .collect();
    let out = d.cli(&["stop", "--template", "sleeper"]);
    assert_exit(&out, 0);
    let lines: Vec<String> = stdout_of(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 200, "{lines:?}");
    assert!(
        lines[0].starts_with("s000 (pid ") && lines[0].contains("stopped: killed by SIGTERM"),
        "{}",
        lines[0]
    );
    for pid in pids {
        d.assert_reaped(pid);
    }
    assert_eq!(d.count(), 0);
    // Nothing of that template now: an empty selection is no error.
    let out = d.cli(&["stop", "--template", "sleeper"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out), "");
    assert!(stderr_of(&out).contains("no worker matched"), "{out:?}");
    let reply = d.request(&request_of(r#"{"cmd":"stop","all":true}"#));
    assert!(reply.ok && reply.results == Some(Vec::new()), "{reply:?}");
}

/// Names that fail are reported each, in order, and the exit status is 1; the others
/// are carried out. A name given twice is taken once.
#[test]
fn a_failed_name_fails_the_call_but_not_the_others() {
    let d = TestDaemon::start(&config());
    let a = d.start_worker("a", Some("sleeper"), &[]);
    let b = d.start_worker("b", Some("sleeper"), &[]);
    let out = d.cli(&["stop", "a", "ghost", "b", "a"]);
    assert_exit(&out, 1);
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("a (pid {a}) stopped")),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("b (pid {b}) stopped")),
        "{stdout}"
    );
    assert_eq!(stderr_of(&out).trim(), "dynsup: ghost is not registered");
    d.assert_reaped(a);
    d.assert_reaped(b);

    // The wire: ok false, the first failure's kind, every result in order.
    let c = d.start_worker("c", Some("sleeper"), &[]);
    let reply = d.request(&request_of(
        r#"{"cmd":"kill","names":["nope","c"],"signal":10}"#,
    ));
    assert_error(&reply, ErrorKind::NotFound);
    assert_eq!(result_names(&reply), ["nope", "c"]);
    let results = reply.results.as_deref().unwrap_or_default();
    assert_eq!(
        results[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );
    assert!(results[1].ok, "{reply:?}");
    assert_eq!(results[1].pid, Some(c));
    assert_eq!(results[1].signal.as_deref(), Some("SIGUSR1"));
    let message = &reply.error.as_ref().unwrap().message;
    assert!(message.starts_with("1 of 2 worker(s) failed"), "{message}");
}

/// `kill --template` signals the workers with a process; `restart --template` (not
/// rolling) restarts every one at once, and they get new pids.
#[test]
fn kill_and_restart_by_template() {
    let d = TestDaemon::start(&config());
    let w1 = d.start_worker("w1", Some("worker"), &[]);
    let w2 = d.start_worker("w2", Some("worker"), &[]);
    let s1 = d.start_worker("s1", Some("sleeper"), &[]);
    d.wait_started("w1", 1);
    d.wait_started("w2", 1);

    let out = d.cli(&["restart", "--template", "worker"]);
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    assert!(stdout.contains("w1 restarted (pid "), "{stdout}");
    assert!(stdout.contains("w2 restarted (pid "), "{stdout}");
    d.assert_reaped(w1);
    d.assert_reaped(w2);
    let n1 = d.lookup("w1").expect("w1 runs again");
    let n2 = d.lookup("w2").expect("w2 runs again");
    assert!(n1 != w1 && n2 != w2);
    assert_eq!(stat(n1).map(|s| s.ppid), Some(d.pid()));
    assert_eq!(d.lookup("s1"), Some(s1), "the other template is untouched");
    assert_eq!(d.list_one("w1").map(|w| w.restarts), Some(0), "not a crash");

    let out = d.cli(&["kill", "--all", "--signal", "SIGKILL"]);
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.contains(&format!("sent SIGKILL to s1 (pid {s1})")),
        "{stdout}"
    );
    d.wait_reaped(s1);
    // The sleeper is permanent: the restart rule brings it back.
    d.wait_restarted("s1", s1);
}

/// Requests the decoder refuses, and an unknown template.
#[test]
fn bad_bulk_requests_are_refused_whole() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("a", Some("sleeper"), &[]);
    for (line, needle) in [
        (r#"{"cmd":"stop"}"#, "needs one of `name`, `names`"),
        (r#"{"cmd":"stop","names":[]}"#, "needs one of"),
        (r#"{"cmd":"stop","name":"a","all":true}"#, "only one of"),
        (
            r#"{"cmd":"restart","names":["a"],"rolling":true}"#,
            "not `names`",
        ),
    ] {
        let reply = d.request(line);
        assert_error(&reply, ErrorKind::BadRequest);
        let message = &reply.error.as_ref().unwrap().message;
        assert!(message.contains(needle), "{line}: {message}");
    }
    let out = d.cli(&["stop", "--template", "nope"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("no template named \"nope\""),
        "{out:?}"
    );
    let out = d.cli(&["stop"]);
    assert_exit(&out, 2);
    let out = d.cli(&["restart", "--rolling", "a", "b"]);
    assert_exit(&out, 2);
    assert_eq!(d.lookup("a"), Some(pid), "nothing was touched");
}

/// `list NAMES` and `list --template T`: only those rows; a name that is not
/// registered is an error.
#[test]
fn list_filters_by_name_and_template() {
    let d = TestDaemon::start(&config());
    d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("sleeper"), &[]);
    d.start_worker("w", Some("worker"), &[]);
    let rows = |out: &std::process::Output| -> Vec<String> {
        assert_exit(out, 0);
        stdout_of(out)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(rows(&d.cli(&["list", "--template", "sleeper"])), ["a", "b"]);
    assert_eq!(rows(&d.cli(&["list", "w", "a"])), ["a", "w"]);
    assert_eq!(
        rows(&d.cli(&["list", "a", "w", "--template", "worker"])),
        ["w"]
    );
    assert_eq!(
        rows(&d.cli(&["list", "--tree", "a"])).len(),
        2,
        "a and its pid"
    );
    let out = d.cli(&["list", "a", "ghost"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("ghost is not registered"),
        "{out:?}"
    );
    let reply = d.request(&request_of(r#"{"cmd":"list","template":"nope"}"#));
    assert_error(&reply, ErrorKind::UnknownTemplate);
}
