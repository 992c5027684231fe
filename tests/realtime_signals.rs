//! Real-time signals (SIGRTMIN+n) are sent for real, or refused where they are given;
//! never reported sent when they were not. A worker killed by one (from dynsup or from
//! outside) is reaped and follows the restart rule like any other exit; `stop_signal`
//! and `clean_signals` may name them.

mod common;
use common::*;
use std::time::Duration;

fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// Template `catcher`: a python program that prints `got N` for every real-time signal
/// it receives and goes on; `ready` once its handlers are installed. Template `sleeper`
/// (permanent), `rt_stop` (stop signal SIGRTMIN+4, a long shutdown_ms so that a stop
/// that falls back to SIGKILL is seen) and `rt_clean` (transient, SIGRTMIN+5 counts as
/// a clean exit).
fn config() -> String {
    let catcher = r#"
import signal, sys
def got(n, frame):
    print(f"got {n}", flush=True)
for n in range(signal.SIGRTMIN, signal.SIGRTMAX + 1):
    signal.signal(n, got)
print("ready", flush=True)
while True:
    signal.pause()
"#;
    format!(
        r#"
[supervisor]
max_restarts = 100
max_seconds = 5

[templates.catcher]
command = [{python}, "-c", {catcher}]
restart = "permanent"

[templates.rt_stop]
command = ["sleep", "100000"]
stop_signal = "SIGRTMIN+4"
shutdown_ms = 60000

[templates.rt_clean]
command = ["sleep", "100000"]
restart = "transient"
clean_signals = ["SIGTERM", "SIGRTMIN+5"]
"#,
        python = toml_str(python3().to_str().unwrap()),
        catcher = toml_str(catcher),
    ) + SLEEPER
}

/// `kill` with a real-time signal, by name and by number: the worker's handler sees
/// that very signal, the reply names it as sent, and the worker keeps its pid.
#[test]
fn kill_with_a_real_time_signal_reaches_the_worker() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("c", Some("catcher"), &[]);
    d.wait_worker_line("c", "ready", 1);

    let reply = d.request_ok(&kill_req("c", Some("SIGRTMIN+2")));
    assert_eq!(reply.signal.as_deref(), Some("SIGRTMIN+2"), "{reply:?}");
    assert_eq!(reply.pid, Some(pid));
    d.wait_worker_line("c", &format!("got {}", rtmin() + 2), 1);

    let number = (rtmin() + 6).to_string();
    let reply = d.request_ok(&kill_req("c", Some(&number)));
    assert_eq!(reply.signal.as_deref(), Some("SIGRTMIN+6"), "{reply:?}");
    d.wait_worker_line("c", &format!("got {number}"), 1);

    let reply = d.request_ok(&kill_req("c", Some("rtmax")));
    assert_eq!(reply.signal.as_deref(), Some("SIGRTMAX"), "{reply:?}");
    d.wait_worker_line("c", &format!("got {}", libc::SIGRTMAX()), 1);

    assert_eq!(d.lookup("c"), Some(pid));
    assert!(is_alive(pid));
    assert!(
        !d.log().contains("cannot send"),
        "a signal was refused{}",
        d.log_tail()
    );
}

/// A worker that dies of a real-time signal — sent from outside, or by `kill` — is
/// reaped and restarted, and its last exit names the signal. (nix's waitpid used to
/// reap such a child and then fail, so the worker stayed "running" with a dead pid.)
#[test]
fn a_worker_killed_by_a_real_time_signal_is_reaped_and_restarted() {
    let d = TestDaemon::start(&config());
    let first = d.start_worker("s", Some("sleeper"), &[]);

    send_signal_number(first, rtmin() + 1);
    let second = d.wait_restarted("s", first);
    d.assert_reaped(first);
    let row = d.list_one("s").expect("s listed");
    assert_eq!(
        row.last_exit.as_ref().map(|e| e.reason.as_str()),
        Some("signal SIGRTMIN+1"),
        "{row:?}"
    );
    assert_eq!(row.restarts, 1, "{row:?}");

    d.request_ok(&kill_req("s", Some("SIGRTMAX-1")));
    let third = d.wait_restarted("s", second);
    d.assert_reaped(second);
    let row = d.list_one("s").expect("s listed");
    assert_eq!(
        row.last_exit.as_ref().map(|e| e.reason.clone()),
        Some(format!(
            "signal SIGRTMIN+{}",
            libc::SIGRTMAX() - 1 - rtmin()
        )),
        "{row:?}"
    );
    assert!(is_alive(third));
    assert!(zombie_children_of(d.pid()).is_empty());
}

/// `stop_signal = "SIGRTMIN+4"` is what `stop` sends: the worker dies of it at once
/// (no SIGKILL after the minute-long `shutdown_ms`), and `clean_signals` with a
/// real-time signal makes a death by it a clean exit of a transient worker.
#[test]
fn real_time_stop_and_clean_signals_are_used() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("r", Some("rt_stop"), &[]);
    let reply = d.request_ok(&stop_req("r", None));
    let stopped = reply.stopped.expect("a stop report");
    assert!(
        !stopped.killed,
        "the stop fell back to SIGKILL: {stopped:?}"
    );
    assert_eq!(
        stopped.exit,
        Some(ExitReport::Signaled {
            signal: "SIGRTMIN+4".to_string(),
            core_dumped: false
        }),
        "{stopped:?}"
    );
    d.assert_reaped(pid);

    let pid = d.start_worker("k", Some("rt_clean"), &[]);
    send_signal_number(pid, rtmin() + 5);
    d.wait_unregistered("k");
    d.assert_reaped(pid);
    // A transient worker is unregistered only after a clean exit.
    d.wait_log("k: exited (signal SIGRTMIN+5); not restarted");
}

/// Signals that cannot be sent are refused where they are given: `kill` answers
/// `invalid_signal` (and the worker is untouched); the config is refused at its line and
/// column.
#[test]
fn signals_that_cannot_be_sent_are_refused_where_they_are_given() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("s", Some("sleeper"), &[]);
    for bad in [
        "32",
        "33",
        "0",
        "65",
        "SIGRTMIN+31",
        "SIGRTMAX+1",
        "RTMIN-1",
        "SIGRT",
    ] {
        let reply = d.request(&kill_req("s", Some(bad)));
        assert_error(&reply, ErrorKind::InvalidSignal);
        assert!(
            reply.signal.is_none(),
            "a refused signal was reported: {reply:?}"
        );
    }
    assert_eq!(d.lookup("s"), Some(pid));
    assert!(is_alive(pid));

    for (value, mentions) in [
        ("\"33\"", "reserved by the C library"),
        ("\"SIGRTMIN+40\"", "real-time signals are SIGRTMIN to"),
        ("\"SIGSTOP\"", "never ends it"),
    ] {
        let text = format!("[templates.w]\ncommand = [\"sleep\", \"1\"]\nstop_signal = {value}\n");
        let mut bad = Launch::new(&text).wait(WaitFor::Nothing).start();
        let status = bad.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{value}: {}", bad.log());
        let log = bad.log();
        assert!(
            log.contains(":3:15: template \"w\": stop_signal: ") && log.contains(mentions),
            "{value}: {log}"
        );
    }
}
