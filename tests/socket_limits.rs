//! The control socket under pressure: what one client may hold and cost.
//!
//! - Replies queued behind a request that waits (a `stop` of a worker that ignores
//!   SIGTERM, a `wait_ready` of a worker that is never ready) are bounded in bytes, and
//!   freed when the client leaves; `timeout_ms` has a maximum.
//! - A connection's share of a loop turn is bounded by cost: a client pipelining `ps`
//!   does not hold up another client.
//! - One uid cannot take every connection: root and the daemon's uid keep room, each
//!   other uid has a cap; idle connections are closed, watchers and waiting requests
//!   are not.
//! - With the fd limit reached, a client that connects waits in the listen queue and
//!   is served once descriptors are free, without another client having to connect.
//! - A watcher that shuts down its writing side stays connected.

mod common;
use common::*;
use dynsup::protocol::MAX_TIMEOUT_MS;
use std::io::{ErrorKind as IoErrorKind, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Template `never_ready`: waits for a `READY=1` that never comes (for an hour).
const NEVER_READY: &str = r#"
[templates.never_ready]
command = ["sleep", "100000"]
ready = "notify"
ready_timeout_ms = 3600000
"#;

/// True when the daemon is asleep in `epoll_wait`: it has nothing left to do now (a
/// connection it may still read, or one on its retry list, would keep it awake). Every
/// byte the test wrote before looking has then been read or left unread on purpose.
fn asleep_in_epoll(pid: i32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    stat(pid).is_some_and(|s| s.state == 'S') && wchan.contains("epoll")
}

#[track_caller]
fn wait_asleep(d: &TestDaemon) {
    d.wait_until(DEADLINE, "the daemon to be idle in epoll_wait", || {
        asleep_in_epoll(d.pid()).then_some(())
    });
}

/// A connection that sends `head`, then `lists` pipelined `list` requests, and never
/// reads. All of it fits in the socket buffer, so the write never blocks: what the
/// daemon takes from it is up to the daemon.
fn flood_behind(d: &TestDaemon, head: &Request, lists: usize) -> UnixStream {
    let mut stream = UnixStream::connect(d.socket()).expect("connect");
    let mut text = head.to_line();
    text.push('\n');
    for _ in 0..lists {
        text.push_str(&Request::list().to_line());
        text.push('\n');
    }
    stream.write_all(text.as_bytes()).expect("write the flood");
    stream
}

/// 24 clients each park a request that will not be answered for a long time (a `stop`
/// with the longest timeout of a worker that ignores SIGTERM, or a `wait_ready` of a
/// worker that never gets ready), pipeline `list`s behind it and never read. The
/// replies parked behind the waiting request are bounded in bytes (1 MiB a
/// connection), so the daemon stays small; when the clients leave, their connections
/// are closed although their requests are still pending, and a second wave reuses the
/// memory instead of adding to it.
#[test]
fn replies_parked_behind_a_waiting_request_are_bounded_in_bytes() {
    let config = [LENIENT_SUPERVISOR, STUBBORN_WORKER, SLEEPER, NEVER_READY].concat();
    let d = TestDaemon::start(&config);
    // Forty workers with long names: one `list` reply is about 10 KiB.
    for i in 0..40 {
        d.start_worker(&format!("{}-{i}", "x".repeat(100)), Some("sleeper"), &[]);
    }
    let stubborn = d.start_worker("s", Some("stubborn"), &[]);
    d.wait_started("s", 1);
    d.start_worker("n", Some("never_ready"), &[]);
    let list_bytes = d.request(&Request::list()).encode().len();
    assert!(
        list_bytes > 8 * 1024,
        "a list reply is only {list_bytes} bytes"
    );
    wait_asleep(&d);
    let fds_before = fd_count(d.pid());
    let rss_before = rss_kib(d.pid());

    let wave = || -> Vec<UnixStream> {
        (0..24)
            .map(|i| {
                let head = match i % 2 {
                    0 => stop_req("s", Some(MAX_TIMEOUT_MS)),
                    _ => wait_ready_req("n"),
                };
                flood_behind(&d, &head, 2000)
            })
            .collect()
    };
    let first = wave();
    wait_asleep(&d);
    let rss_first = rss_kib(d.pid());
    // Unbounded by bytes, 24 × 1024 parked replies of 10 KiB would be 240 MiB.
    assert!(
        rss_first < rss_before + 64 * 1024,
        "the daemon grew from {rss_before} KiB to {rss_first} KiB{}",
        d.log_tail()
    );
    // Everyone else is still served, and nothing was stopped.
    assert_eq!(d.lookup("s"), Some(stubborn));
    assert_eq!(d.counts().stopping, 1);

    // The clients leave with their requests unanswered: their connections go.
    drop(first);
    d.wait_until(DEADLINE, "the flooding connections to be closed", || {
        (fd_count(d.pid()) <= fds_before).then_some(())
    });
    // A second wave takes the memory the first one gave back.
    let second = wave();
    wait_asleep(&d);
    let rss_second = rss_kib(d.pid());
    assert!(
        rss_second < rss_first + 16 * 1024,
        "a second wave grew the daemon from {rss_first} KiB to {rss_second} KiB{}",
        d.log_tail()
    );
    drop(second);
    d.wait_until(
        DEADLINE,
        "the second wave's connections to be closed",
        || (fd_count(d.pid()) <= fds_before).then_some(()),
    );
    assert_eq!(d.lookup("s"), Some(stubborn));
}

/// A client that pipelines requests and reads no reply stops being read: the daemon
/// takes a bounded amount of it, and the rest stays in the kernel (whose buffer then
/// stops the client's writes).
#[test]
fn a_client_that_reads_no_reply_stops_being_read() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    for i in 0..40 {
        d.start_worker(&format!("{}-{i}", "y".repeat(100)), Some("sleeper"), &[]);
    }
    let mut stream = UnixStream::connect(d.socket()).expect("connect");
    stream.set_nonblocking(true).expect("nonblocking");
    let line = format!("{}\n", Request::list().to_line());
    let chunk = line.repeat(4096);
    let mut accepted = 0usize;
    // Write until the kernel refuses more, with the daemon idle each time it does: the
    // daemon has then stopped reading.
    d.wait_until(DEADLINE, "the daemon to stop reading the flood", || {
        loop {
            match stream.write(chunk.as_bytes()) {
                Ok(n) => accepted += n,
                Err(e) if e.kind() == IoErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
            assert!(
                accepted < 64 * 1024 * 1024,
                "the daemon took {accepted} bytes of requests whose replies nobody reads"
            );
        }
        asleep_in_epoll(d.pid()).then_some(())
    });
    // Each request is about 15 bytes and each reply about 10 KiB: the daemon read a few
    // hundred of them (1 MiB of replies) plus what the socket buffers hold.
    assert!(
        accepted < 8 * 1024 * 1024,
        "the daemon took {accepted} bytes of requests"
    );
    assert_eq!(d.count(), 40);
}

/// `timeout_ms` of `stop` and `restart` is at most one day: a larger value is a
/// `bad_request` that names the field and the maximum, and nothing is stopped.
#[test]
fn absurd_stop_and_restart_timeouts_are_refused() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SAMPLE_WORKER].concat());
    let pid = d.start_worker("w", Some("worker"), &[]);
    let mut c = d.client();
    for req in [
        stop_req("w", Some(u64::MAX)),
        restart_req("w", Some(MAX_TIMEOUT_MS + 1)),
    ] {
        let reply = c.request(&req);
        assert_error(&reply, ErrorKind::BadRequest);
        let message = &reply.error.as_ref().unwrap().message;
        assert!(
            message.contains("timeout_ms") && message.contains(&MAX_TIMEOUT_MS.to_string()),
            "{message}"
        );
    }
    assert_eq!(d.lookup("w"), Some(pid));
    assert!(is_alive(pid));
    // The maximum itself is taken (the sample worker exits on SIGTERM at once).
    let reply = c.request(&stop_req("w", Some(MAX_TIMEOUT_MS)));
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.stopped.map(|s| s.killed), Some(false));
}

/// One client pipelines `ps` (each one scans /proc: a few hundred processes here)
/// while another sends a `start`. The daemon is stopped while both write, so both
/// are waiting when it resumes, the `ps` flood first. Budgeted by count, the flood
/// would get 64 `ps` before the `start` is read; budgeted by cost, it gets about one
/// per turn, and the `ps` replies show the new worker almost at once.
#[test]
fn a_client_pipelining_ps_does_not_hold_up_another_client() {
    let config = [
        LENIENT_SUPERVISOR,
        SLEEPER,
        r#"
[templates.crowd]
command = ["sh", "-c", "i=0; while [ $i -lt 300 ]; do sleep 100000 & i=$((i+1)); done; wait"]
"#,
    ]
    .concat();
    let d = TestDaemon::start(&config);
    d.start_worker("crowd", Some("crowd"), &[]);
    d.wait_until(DEADLINE, "the crowd's 300 sleeps", || {
        let ps = d.ps(Some("crowd"));
        (ps[0].1.len() > 300).then_some(())
    });
    let mut flood = d.client();
    let mut other = d.client();
    assert!(other.request(&Request::Count).ok);
    const FLOOD: usize = 100;

    d.signal(Signal::SIGSTOP);
    d.wait_until(DEADLINE, "the daemon to be stopped", || {
        stat(d.pid()).is_some_and(|s| s.state == 'T').then_some(())
    });
    let ps = Request::Ps { name: None };
    flood.send_batch(&vec![ps; FLOOD]);
    other.send(&start_req("w2", Some("sleeper"), &[]));
    d.signal(Signal::SIGCONT);

    let started = other.recv();
    assert!(started.ok, "{started:?}");
    let replies: Vec<Reply> = (0..FLOOD).map(|_| flood.recv()).collect();
    let first_with_w2 = replies
        .iter()
        .position(|r| {
            assert!(r.ok, "{r:?}");
            r.processes
                .as_ref()
                .is_some_and(|p| p.iter().any(|p| p.name == "w2"))
        })
        .expect("no ps reply shows w2");
    assert!(
        first_with_w2 <= 16,
        "{first_with_w2} ps requests of one client were served before another client's start"
    );
}

/// The client run as another uid: it opens `N` connections one after the other,
/// sends `count` on each and reports the reply line, then holds them all until it is
/// killed.
const HOLDER: &str = r#"
import json, signal, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    try:
        s.sendall(b'{"cmd":"count"}\n')
    except OSError:
        pass
    f = s.makefile("rb")
    try:
        line = f.readline().decode()
    except OSError:
        line = ""
    print(json.dumps({"reply": line}), flush=True)
    held.append((s, f))
print("holding", flush=True)
signal.pause()
"#;

/// A process of uid `uid` holding connections; killed (and its connections closed)
/// on drop.
struct Holder {
    _process: CliProcess,
    replies: Vec<Reply>,
}

impl Holder {
    #[track_caller]
    fn start(d: &TestDaemon, uid: u32, n: usize) -> Holder {
        let mut cmd = Command::new(python3());
        cmd.arg("-c")
            .arg(HOLDER)
            .arg(d.socket())
            .arg(n.to_string())
            .uid(uid)
            .gid(uid);
        let mut process = CliProcess::spawn(&mut cmd);
        let mut replies = Vec::new();
        for _ in 0..n {
            let line = process.wait_line("with a reply", |l| l.starts_with('{'));
            let v: serde_json::Value = serde_json::from_str(&line).expect("holder output");
            let reply = v["reply"].as_str().expect("reply");
            replies.push(
                serde_json::from_str(reply)
                    .unwrap_or_else(|e| panic!("uid {uid}: bad reply {reply:?}: {e}")),
            );
        }
        process.wait_line("holding", |l| l == "holding");
        Holder {
            _process: process,
            replies,
        }
    }

    fn admitted(&self) -> usize {
        self.replies.iter().filter(|r| r.ok).count()
    }

    fn refusals(&self) -> Vec<String> {
        self.replies
            .iter()
            .filter(|r| !r.ok)
            .map(|r| {
                assert_error(r, ErrorKind::TooManyConnections);
                r.error.as_ref().unwrap().message.clone()
            })
            .collect()
    }
}

/// max_connections = 10, reserved_connections = 3, max_connections_per_uid = 3: two
/// read-only uids get three connections each and no more; a third uid gets the
/// seventh and is then refused, because the last three are kept; root (the daemon's
/// uid here) still gets in, up to the tenth; then even root is told there is no room.
#[test]
fn one_uid_cannot_lock_out_the_others_or_root() {
    let d = Launch::new(
        r#"
[supervisor]
socket_mode = "0666"
read_only_uids = [65534, 4242, 4243]
max_connections = 10
reserved_connections = 3
max_connections_per_uid = 3
"#,
    )
    .in_dir(TestDir::world_searchable())
    .start();
    // The harness's own probe connection must be gone before counting.
    wait_asleep(&d);

    let a = Holder::start(&d, NOBODY, 5);
    assert_eq!(a.admitted(), 3, "{:?}", a.replies);
    for message in a.refusals() {
        assert!(message.contains("max_connections_per_uid"), "{message}");
        assert!(message.contains("65534"), "{message}");
    }
    d.wait_log("refusing a connection from uid 65534");
    let b = Holder::start(&d, 4242, 4);
    assert_eq!(b.admitted(), 3, "{:?}", b.replies);
    let c = Holder::start(&d, 4243, 3);
    assert_eq!(c.admitted(), 1, "{:?}", c.replies);
    for message in c.refusals() {
        assert!(message.contains("reserved_connections"), "{message}");
    }
    // Seven connections are held by others: root is still served (the CLI, then the
    // three connections it keeps), up to max_connections.
    let out = d.cli(&["list"]);
    assert_exit(&out, 0);
    wait_asleep(&d);
    let mut mine: Vec<Client> = (0..4).map(|_| d.client()).collect();
    for client in &mut mine[..3] {
        assert!(client.request(&Request::Count).ok);
    }
    let refusal = mine[3].recv();
    assert_error(&refusal, ErrorKind::TooManyConnections);
    assert!(
        refusal
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("at most 10"),
        "{refusal:?}"
    );
    // When a holder (and root's connections) leave, the room is given back.
    drop((a, mine));
    let d2 = &d;
    let reply = d.wait_until(DEADLINE, "room for uid 65534 again", || {
        let again = Holder::start(d2, NOBODY, 1);
        (again.admitted() == 1).then_some(again)
    });
    drop((reply, b, c));
}

/// idle_timeout_ms = 300: a connection that sends nothing, and one that is done with
/// its requests, are closed; a watcher is not, nor a connection whose `stop` takes
/// longer than that (it is answered, then closed once idle in turn).
#[test]
fn idle_connections_are_closed_but_not_watchers_or_waiting_requests() {
    let config = [
        "\n[supervisor]\nmax_restarts = 100\nidle_timeout_ms = 300\n",
        STUBBORN_WORKER,
        SLEEPER,
    ]
    .concat();
    let d = TestDaemon::start(&config);
    d.start_worker("s", Some("stubborn"), &[]);
    d.wait_started("s", 1);
    let mut silent = d.client();
    let mut done = d.client();
    assert!(done.request(&Request::Count).ok);
    let mut watcher = Watcher::subscribe(&d, &[]);
    let mut waiting = d.client();
    waiting.send(&stop_req("s", Some(1500)));

    assert!(silent.is_closed_by_peer(), "the silent connection stayed");
    assert!(done.is_closed_by_peer(), "the idle connection stayed");
    d.wait_log("closing an idle connection from uid 0");
    let stopped = waiting.recv();
    assert!(stopped.ok, "{stopped:?}");
    assert_eq!(stopped.stopped.map(|s| s.killed), Some(true));
    assert!(
        waiting.is_closed_by_peer(),
        "the answered connection stayed"
    );
    // The watcher saw the stop and is still there for what follows.
    watcher.wait_for("s stopped", |e| is_stopped(e, "s"));
    d.start_worker("later", Some("sleeper"), &[]);
    watcher.wait_for("later started", |e| is_started(e, "later"));
}

/// The config keys are checked: a cap of 0 connections per uid is an error with its
/// place in the file.
#[test]
fn connection_limits_are_validated() {
    let mut d = Launch::new("[supervisor]\nmax_connections_per_uid = 0\n")
        .wait(WaitFor::Nothing)
        .start();
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(2), "{}", d.log());
    assert!(
        d.log()
            .contains(":2:27: max_connections_per_uid must be at least 1"),
        "{}",
        d.log()
    );
}

/// Sets the daemon's soft RLIMIT_NOFILE with prlimit(1).
#[track_caller]
fn set_fd_limit(pid: i32, soft: usize) {
    let out = run(
        Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(format!("--nofile={soft}:")),
        DEADLINE,
    );
    assert_exit(&out, 0);
}

/// How a new client fared: admitted and answered, or left in the listen queue.
enum Admission {
    Served(Client),
    Queued(Client),
}

/// Connects and sends `count`; waits until the daemon has done all it can with it:
/// answered it, or gone to sleep without answering (it could not accept it).
#[track_caller]
fn connect_and_count(d: &TestDaemon) -> Admission {
    let mut client = d.client();
    client.send(&Request::Count);
    d.wait_until(DEADLINE, "a reply or an idle daemon", || {
        if client.has_pending() {
            return Some(());
        }
        // Asleep after the request was sent: whatever it had to write is written.
        asleep_in_epoll(d.pid()).then_some(())
    });
    if client.has_pending() {
        let reply = client.recv();
        assert!(reply.ok, "{reply:?}");
        Admission::Served(client)
    } else {
        Admission::Queued(client)
    }
}

/// Opens connections until one is left in the listen queue; returns it (the served
/// ones go to `served`).
#[track_caller]
fn fill_up(d: &TestDaemon, served: &mut Vec<Client>) -> Client {
    loop {
        match connect_and_count(d) {
            Admission::Served(client) => served.push(client),
            Admission::Queued(client) => return client,
        }
        assert!(served.len() <= 64, "the fd limit was never reached");
    }
}

/// With the fd limit reached, a client that connects is left in the listen queue
/// (accept fails with EMFILE). It is served once descriptors are free — when other
/// connections close, or when the limit is raised — without another client having to
/// connect.
#[test]
fn after_emfile_waiting_clients_are_accepted_once_fds_are_free() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    wait_asleep(&d);
    let base = fd_count(d.pid());
    set_fd_limit(d.pid(), base + 6);
    let mut served = Vec::new();
    let mut waiting = fill_up(&d, &mut served);
    assert!(!served.is_empty(), "no connection fit under the limit");
    d.wait_log("cannot accept a connection: Too many open files");
    // A client leaves: its descriptor comes back, and the one waiting is served. That
    // takes the last descriptor again, so the next `accept` fails again, although
    // nobody waits.
    served.pop();
    let reply = waiting.recv();
    assert!(reply.ok, "{reply:?}");
    served.push(waiting);
    // Another leaves: the retry finds the queue empty, and stops.
    served.pop();
    wait_asleep_without_retry(&d);

    // Full again; this time no connection closes, the limit is raised.
    let mut waiting = fill_up(&d, &mut served);
    set_fd_limit(d.pid(), base + 64);
    let reply = waiting.recv();
    assert!(reply.ok, "{reply:?}");
    d.wait_log("accepting connections again");
    // And the daemon goes on as before, with no retry timer left: asleep, it waits
    // longer than any retry (only the idle check of the open connections is due).
    d.start_worker("after", Some("sleeper"), &[]);
    assert_eq!(d.count(), 1);
    wait_asleep_without_retry(&d);
}

/// Waits until the daemon sleeps longer than any accept retry would let it (or with
/// no timeout at all): it has stopped retrying.
#[track_caller]
fn wait_asleep_without_retry(d: &TestDaemon) {
    d.wait_until(DEADLINE, "an epoll_wait without the retry timer", || {
        let timeout = epoll_timeout_ms(d.pid())?;
        (!(0..=1000).contains(&timeout)).then_some(())
    });
}

/// The timeout (ms) of the `epoll_wait` the process is asleep in, from
/// `/proc/PID/syscall` (its fourth argument); `None` when it is not asleep there.
fn epoll_timeout_ms(pid: i32) -> Option<i32> {
    if !asleep_in_epoll(pid) {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let arg = text.split_whitespace().nth(4)?;
    let value = u64::from_str_radix(arg.trim_start_matches("0x"), 16).ok()?;
    // An `int`: the low 32 bits.
    Some(value as u32 as i32)
}

/// A watcher that shuts down its writing side (as `echo '{"cmd":"watch"}' | socat`
/// does when its input ends) still gets its events: it only reads.
#[test]
fn a_watcher_that_half_closes_stays_connected() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    let stream = UnixStream::connect(d.socket()).expect("connect");
    Watcher::send_watch(&stream, &[]);
    let writer = stream.try_clone().expect("clone");
    let mut watcher = Watcher::from_subscribed(stream, Some(d.log_path().to_path_buf()));
    watcher.expect_reply(&[]);
    writer.shutdown(Shutdown::Write).expect("shutdown");
    d.start_worker("a", Some("sleeper"), &[]);
    watcher.wait_for("a started", |e| is_started(e, "a"));
    d.request_ok(&stop_req("a", None));
    watcher.wait_for("a stopped", |e| is_stopped(e, "a"));
    assert!(
        !watcher.has_ended(),
        "the half-closed watcher was disconnected"
    );
}
