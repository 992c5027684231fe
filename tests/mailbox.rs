//! `cast` delivers a line to the worker's stdin; the worker's output reaches the daemon
//! log as `[NAME] line`. Also the bounded mailbox and output edge cases.

mod common;
use common::*;

/// The sample worker (boot child `worker_1`) and workers that never read their
/// stdin, write a last line without a newline, or write a lot.
fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        SAMPLE_WORKER,
        WORKER_1_AT_BOOT,
        r#"
[templates.deaf]
command = ["sleep", "100000"]
restart = "transient"

[templates.once]
command = ["sh", "-c", "printf 'first line\nno newline at the end'"]
restart = "temporary"

[templates.chatty]
command = ["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done; echo done >&2"]
restart = "temporary"
"#,
    ]
    .concat()
}

/// `work` makes the sample worker log `hola`; `raise` crashes it, and the restarted
/// instance has a working mailbox.
#[test]
fn cast_reaches_the_worker_and_raise_crashes_it_into_a_restart() {
    let d = TestDaemon::start(&config());
    let pid = d.lookup("worker_1").expect("boot child worker_1");
    d.wait_started("worker_1", 1);

    let reply = d.request_ok(&cast_req("worker_1", "work"));
    assert_eq!(reply.queued, Some("work\n".len()), "{reply:?}");
    d.wait_worker_line("worker_1", "hola", 1);
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("[worker_1] ") && l.contains("hola"))
        .unwrap();
    assert!(line.contains("[worker_1] info: hola"), "log line {line:?}");

    d.request_ok(&cast_req("worker_1", "work"));
    d.wait_worker_line("worker_1", "hola", 2);

    d.request_ok(&cast_req("worker_1", "raise"));
    let new = d.wait_restarted("worker_1", pid);
    d.assert_reaped(pid);
    d.wait_worker_line("worker_1", "Error, Server worker_1 has crashed", 1);
    d.wait_started("worker_1", 2);

    // The restarted worker has a fresh mailbox that works.
    d.request_ok(&cast_req("worker_1", "work"));
    d.wait_worker_line("worker_1", "hola", 3);
    assert_eq!(d.lookup("worker_1"), Some(new));
}

#[test]
fn cast_to_an_unknown_worker_is_not_found() {
    let d = TestDaemon::start(&config());
    assert_error(&d.request(&cast_req("ghost", "work")), ErrorKind::NotFound);
}

#[test]
fn a_full_mailbox_answers_mailbox_full_and_the_daemon_goes_on() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("deaf", Some("deaf"), &[]);
    let message = "m".repeat(60 * 1024);
    let mut client = d.client();
    let mut queued = 0usize;
    let mut full = false;
    // 1 MiB of mailbox plus a pipe buffer is a few dozen messages; 200 is far beyond.
    for _ in 0..200 {
        let reply = client.request(&cast_req("deaf", &message));
        if reply.ok {
            queued += reply.queued.unwrap_or(0);
        } else {
            assert_error(&reply, ErrorKind::MailboxFull);
            full = true;
            break;
        }
    }
    assert!(
        full,
        "{queued} bytes queued to a worker that never reads, and no mailbox_full"
    );
    assert!(
        queued >= 512 * 1024,
        "mailbox_full after only {queued} bytes"
    );
    // The loop was never blocked: other requests are answered, the worker is untouched.
    assert_eq!(d.lookup("deaf"), Some(pid));
    assert_eq!(d.lookup("worker_1").map(is_alive), Some(true));
    d.wait_started("worker_1", 1);
    d.request_ok(&cast_req("worker_1", "work"));
    d.wait_worker_line("worker_1", "hola", 1);
}

#[test]
fn output_is_logged_to_the_last_byte_when_a_worker_exits() {
    let d = TestDaemon::start(&config());
    let pid = d.start_worker("once", Some("once"), &[]);
    d.wait_unregistered("once");
    d.assert_reaped(pid);
    d.wait_worker_line("once", "first line", 1);
    // A final partial line is not lost.
    d.wait_worker_line("once", "no newline at the end", 1);
}

#[test]
fn every_line_of_a_chatty_worker_is_logged_in_order() {
    let d = TestDaemon::start(&config());
    d.start_worker("chatty", Some("chatty"), &[]);
    d.wait_worker_line("chatty", "done", 1);
    d.wait_until(DEADLINE, "all 2000 stdout lines of chatty", || {
        (d.worker_lines("chatty", "line ") >= 2000).then_some(())
    });
    let log = d.log();
    let numbers: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("[chatty] line "))
        .map(|l| l.rsplit("line ").next().unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..2000).collect::<Vec<_>>(),
        "lines lost, split or reordered"
    );
}

#[test]
fn a_very_long_output_line_does_not_break_the_daemon() {
    let d = TestDaemon::start(&config());
    d.start_command(
        "long",
        Some("once"),
        &[
            "sh",
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' x; echo; echo after",
        ],
    );
    d.wait_worker_line("long", "after", 1);
    // Whatever the cap on a logged line, the worker's later output is still there, and
    // the daemon answers.
    assert!(d.count() >= 1);
}
