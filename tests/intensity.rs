//! Restart intensity (OTP's max_restarts / max_seconds): too many restarts make the
//! daemon stop every worker and exit with status 1.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

/// A boot child that crashes at once; a healthy worker beside it.
#[test]
fn crash_loop_stops_all_workers_and_exits_1() {
    let dir = TestDir::new();
    let pid_file = dir.join("healthy.pid");
    let config = format!(
        r#"
[supervisor]
max_restarts = 3
max_seconds = 5

[templates.crash]
command = ["sh", "-c", "while [ ! -s \"$0\" ]; do sleep 0.01; done; echo started; exit 1", {pid}]
restart = "transient"

[templates.healthy]
command = ["sh", "-c", "echo $$ > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; exec sleep 100000", {pid}]
restart = "permanent"

[[children]]
name = "healthy"
template = "healthy"

[[children]]
name = "crash"
template = "crash"
"#,
        pid = toml_str(pid_file.to_str().unwrap())
    );
    // The crash worker waits (in the shell, not in the test) until the healthy one has
    // written its pid, so that the test knows which pid must be gone at the end.
    // The daemon may trip before a test could even connect: do not wait for it.
    let mut d = TestDaemon::spawn(&config);
    let status = d.wait_exit(DEADLINE);
    let log = d.log();
    assert_eq!(
        status.code(),
        Some(1),
        "daemon exit status {status:?}{}",
        d.log_tail()
    );
    let trip = log
        .lines()
        .find(|l| l.contains("reached max restart intensity"))
        .unwrap_or_else(|| panic!("no intensity message{}", d.log_tail()));
    assert!(
        trip.contains("crash"),
        "the message does not name the worker: {trip:?}"
    );
    // The initial start plus max_restarts restarts; the 4th crash trips the limit
    // and is not restarted.
    let starts = d.worker_output_exact("crash", "started");
    assert_eq!(starts, 4, "`[crash] started` lines{}", d.log_tail());

    let healthy: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| panic!("the healthy worker wrote no pid{}", d.log_tail()));
    // The daemon stopped it before exiting: it is gone (a reparented zombie counts).
    assert!(
        !is_alive(healthy),
        "the healthy worker {healthy} outlived the daemon{}",
        d.log_tail()
    );
    assert!(
        !d.socket().exists(),
        "the socket file was left behind after the intensity exit"
    );
}

#[test]
fn restarts_up_to_max_restarts_are_fine_and_the_next_one_trips() {
    let config = r#"
[supervisor]
max_restarts = 3
max_seconds = 60

[templates.worker]
command = ["sleep", "100000"]
restart = "transient"

[templates.other]
command = ["dynsup-worker"]
restart = "permanent"
"#;
    let mut d = TestDaemon::start(config);
    let other = d.start_worker("other", Some("other"), &[]);
    d.wait_started("other", 1);
    let mut pid = d.start_worker("w", Some("worker"), &[]);
    for _ in 0..3 {
        send_signal(pid, Signal::SIGKILL);
        pid = d.wait_restarted("w", pid);
    }
    assert!(
        !d.has_exited(),
        "the daemon exited after 3 restarts with max_restarts = 3"
    );
    assert_eq!(d.lookup("other"), Some(other));

    // The 4th restart-worthy exit within the window trips the limit.
    send_signal(pid, Signal::SIGKILL);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    assert!(d.log().contains("reached max restart intensity"));
    assert!(
        !is_alive(other),
        "worker `other` survived the intensity exit"
    );
    // Stopped as on shutdown: the sample worker got its SIGTERM.
    assert_eq!(
        d.worker_lines("other", "Exiting worker: other with reason: shutdown"),
        1,
        "{}",
        d.log_tail()
    );
}

#[test]
fn max_restarts_0_trips_on_the_first_crash() {
    let config = r#"
[supervisor]
max_restarts = 0
max_seconds = 5

[templates.worker]
command = ["sh", "-c", "read code; exit $code"]
"#;
    let mut d = TestDaemon::start(config);
    let bystander = d.start_command("bystander", None, &["sleep", "100000"]);
    let pid = d.start_worker("w", None, &[]);
    // A clean exit is no restart, so it does not count.
    d.request_ok(&cast_req("w", "0"));
    d.wait_unregistered("w");
    d.assert_reaped(pid);
    assert!(!d.has_exited());

    d.start_worker("w", None, &[]);
    d.request_ok(&cast_req("w", "1"));
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    assert!(d.log().contains("reached max restart intensity"));
    assert!(!is_alive(bystander));
}

#[test]
fn stops_and_clean_exits_do_not_count_towards_intensity() {
    let config = r#"
[supervisor]
max_restarts = 1
max_seconds = 60

[templates.worker]
command = ["sleep", "100000"]
restart = "transient"
"#;
    let mut d = TestDaemon::start(config);
    for i in 0..5 {
        let name = format!("w{i}");
        let pid = d.start_worker(&name, None, &[]);
        if i % 2 == 0 {
            d.request_ok(&stop_req(&name, None));
        } else {
            send_signal(pid, Signal::SIGTERM);
            d.wait_unregistered(&name);
        }
        d.assert_reaped(pid);
    }
    assert!(!d.has_exited(), "{}", d.log_tail());
    assert_eq!(d.count(), 0);
}

#[test]
fn a_failed_exec_on_restart_counts_towards_intensity() {
    let dir = TestDir::new();
    let script = dir.write("prog.sh", "#!/bin/sh\nexec sleep 100000\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        r#"
[supervisor]
max_restarts = 2
max_seconds = 60

[templates.worker]
command = [{}]
restart = "permanent"
"#,
        toml_str(script.to_str().unwrap())
    );
    let mut d = TestDaemon::start(&config);
    let pid = d.start_worker("w", None, &[]);
    // The program disappears; the restart after the kill cannot exec it.
    std::fs::remove_file(&script).unwrap();
    send_signal(pid, Signal::SIGKILL);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    assert!(
        d.log().contains("reached max restart intensity"),
        "{}",
        d.log_tail()
    );
}

/// Workers that die as fast as they are restarted (no backoff, an intensity that never
/// trips) do not starve the clients: the loop reaps a bounded number of exits per turn
/// and serves the socket in between.
#[test]
fn a_storm_of_instant_crashes_does_not_starve_the_socket() {
    let config = r#"
[supervisor]
max_restarts = 1000000000
max_seconds = 1

[templates.instant]
command = ["sleep", "--no-such-option"]
restart = "permanent"
"#;
    let d = TestDaemon::start(config);
    for i in 0..5 {
        d.request_ok(&start_req(&format!("c{i}"), Some("instant"), &[]));
    }
    // Answered while the storm goes on (each of these would hang behind an endless
    // reap loop otherwise).
    for _ in 0..3 {
        assert_eq!(d.count(), 5);
    }
    let restarts: u32 = d.list().iter().map(|w| w.restarts).sum();
    assert!(restarts > 0, "the workers are restarted meanwhile");
    d.request_ok(&Request::Shutdown);
}
