//! `watch`: a connection turned into an event stream. Events in
//! order, name filters, the end of the stream at shutdown, a stalled watcher that must
//! neither block nor grow the daemon, and the CLI's `watch`.

mod common;
use common::*;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Sleepers, a worker that exits 0 at once, and one that does so for ever.
fn config() -> String {
    [LENIENT_SUPERVISOR, TEMPLATES].concat()
}

const TEMPLATES: &str = r#"
[templates.sleeper]
command = ["sleep", "100000"]
restart = "transient"

[templates.once]
command = ["true"]
restart = "transient"

[templates.spin]
command = ["true"]
restart = "permanent"
max_restarts = "infinity"
on_limit = "give_up"
"#;

/// `watch` sees the events of a kill in order.
#[test]
fn kill_9_is_seen_as_exited_restarting_started_in_order() {
    let d = TestDaemon::start(&config());
    let mut w = Watcher::subscribe(&d, &[]);
    let old = d.start_worker("w", Some("sleeper"), &[]);
    let ev = w.expect("started w", |e| is_started(e, "w")).event;
    assert_eq!(started_pid(&ev), old);

    send_signal(old, Signal::SIGKILL);
    let ev = w.expect("exited w", |e| is_exited(e, "w")).event;
    match &ev {
        Event::Exited {
            pid, reason, exit, ..
        } => {
            assert_eq!(*pid, old, "{ev:?}");
            assert_eq!(reason, "signal SIGKILL", "{ev:?}");
            assert_eq!(
                exit,
                &ExitReport::Signaled {
                    signal: "SIGKILL".to_string(),
                    core_dumped: false
                }
            );
        }
        _ => unreachable!(),
    }
    // No backoff configured: OTP restarts at once.
    let ev = w.expect("restarting w", |e| is_restarting(e, "w")).event;
    assert_eq!(restarting_delay(&ev), 0, "{ev:?}");
    let new = started_pid(&w.expect("started w again", |e| is_started(e, "w")).event);
    assert_ne!(new, old);
    assert_eq!(d.lookup("w"), Some(new));
    d.assert_reaped(old);

    // A stop: one `stopped` event, nothing else.
    d.request_ok(&stop_req("w", None));
    let ev = w.expect("stopped w", |e| is_stopped(e, "w")).event;
    assert_eq!(
        ev,
        Event::Stopped {
            name: "w".into(),
            reason: "stopped".into()
        }
    );

    // A transient worker that exits 0 on its own: exited, then stopped (unregistered).
    let pid = d.start_worker("t", Some("once"), &[]);
    assert_eq!(
        started_pid(&w.expect("started t", |e| is_started(e, "t")).event),
        pid
    );
    let ev = w.expect("exited t", |e| is_exited(e, "t")).event;
    assert!(
        matches!(&ev, Event::Exited { pid: p, reason, exit: ExitReport::Exited { code: 0 }, .. } if *p == pid && reason == "exit 0"),
        "{ev:?}"
    );
    let ev = w.expect("stopped t", |e| is_stopped(e, "t")).event;
    match &ev {
        Event::Stopped { reason, .. } => {
            assert!(reason.contains("exit 0"), "{ev:?}");
            assert!(reason.contains("not restarted"), "{ev:?}");
        }
        _ => unreachable!(),
    }
    assert_eq!(d.lookup("t"), None);
}

/// `watch NAME` only gets events about NAME; an unknown name is not an error, and
/// its events arrive once a worker of that name starts.
#[test]
fn watch_names_filters_and_an_unknown_name_is_not_an_error() {
    let d = TestDaemon::start(&config());
    let mut only_a = Watcher::subscribe(&d, &["a"]);
    let mut later = Watcher::subscribe(&d, &["not_yet"]);
    let mut two = Watcher::subscribe(&d, &["b", "not_yet"]);
    let mut all = Watcher::subscribe(&d, &[]);

    let b = d.start_worker("b", Some("sleeper"), &[]);
    let a = d.start_worker("a", Some("sleeper"), &[]);
    d.request_ok(&stop_req("b", None));
    d.request_ok(&stop_req("a", None));
    let n = d.start_worker("not_yet", Some("sleeper"), &[]);

    // Events reach each watcher in the order they happened; so if the first event a
    // watcher sees is about its own name, the earlier ones were filtered out.
    assert_eq!(
        only_a.next().event,
        Event::Started {
            name: "a".into(),
            pid: a
        }
    );
    assert!(is_stopped(&only_a.next().event, "a"), "{:?}", only_a.seen);

    assert_eq!(
        later.next().event,
        Event::Started {
            name: "not_yet".into(),
            pid: n
        }
    );

    assert_eq!(
        two.next().event,
        Event::Started {
            name: "b".into(),
            pid: b
        }
    );
    assert!(is_stopped(&two.next().event, "b"), "{:?}", two.seen);
    assert!(is_started(&two.next().event, "not_yet"), "{:?}", two.seen);

    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(all.next().event);
    }
    assert_eq!(
        got,
        vec![
            Event::Started {
                name: "b".into(),
                pid: b
            },
            Event::Started {
                name: "a".into(),
                pid: a
            },
            Event::Stopped {
                name: "b".into(),
                reason: "stopped".into()
            },
            Event::Stopped {
                name: "a".into(),
                reason: "stopped".into()
            },
            Event::Started {
                name: "not_yet".into(),
                pid: n
            },
        ]
    );
    // A filtered watcher got nothing else in the meantime: the next thing `only_a`
    // sees is the shutdown (not about any worker, so every watcher gets it).
    d.request_ok(&Request::Shutdown);
    assert_eq!(only_a.next().event, Event::Shutdown, "{:?}", only_a.seen);
}

/// At shutdown every watcher gets `shutdown`, the `stopped` events, then the end of
/// the stream (the daemon exits).
#[test]
fn shutdown_is_announced_and_ends_the_stream() {
    let mut d = TestDaemon::start(&config());
    let mut w = Watcher::subscribe(&d, &[]);
    d.start_worker("s1", Some("sleeper"), &[]);
    d.start_worker("s2", Some("sleeper"), &[]);
    w.expect("started s1", |e| is_started(e, "s1"));
    w.expect("started s2", |e| is_started(e, "s2"));
    d.request_ok(&Request::Shutdown);
    w.expect("shutdown", |e| *e == Event::Shutdown);
    let mut rest = w.expect_end();
    rest.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        rest,
        vec![
            Event::Stopped {
                name: "s1".into(),
                reason: "stopped".into()
            },
            Event::Stopped {
                name: "s2".into(),
                reason: "stopped".into()
            },
        ]
    );
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
}

/// How long any `lookup` may take while a watcher is stalled. A daemon that blocked on
/// the stalled watcher would not answer at all (the reply timeout is 20 s); a healthy
/// one answers in milliseconds, even on a loaded two-core machine.
const LOOKUP_BOUND: Duration = Duration::from_secs(2);

/// A stalled watcher (subscribed, never reading) does not slow `lookup`
/// on another connection, does not make the daemon grow, and when it reads at last it
/// gets one `lagged` event with the number of events dropped, then the stream goes on.
#[test]
fn a_stalled_watcher_does_not_slow_lookup_and_later_sees_lagged() {
    let d = TestDaemon::start(&config());
    let probe = d.start_worker("probe", Some("sleeper"), &[]);
    let rss_before = rss_kib(d.pid());

    // Subscribe and never read (not even the reply) until the end.
    let stalled = UnixStream::connect(d.socket()).expect("connect");
    Watcher::send_watch(&stalled, &[]);
    // A second watcher that keeps up sees every event: it counts how many bytes were
    // produced, and tells what the stalled one missed. Long names make long events, so
    // fewer restarts fill the queues.
    let spin = format!("spin_{}", "x".repeat(120));
    let mut counter = Watcher::subscribe(&d, &[]);
    // The stalled watcher's queue in the daemon is 256 KiB, and the kernel buffers at
    // most the socket's send buffer (net.core.wmem_default) for it: twice their sum
    // overflows both with room to spare.
    let wmem: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(212_992);
    let enough = 2 * (256 * 1024 + wmem);

    let mut lookup = d.client();
    let mut slowest = Duration::ZERO;
    let mut lookups = 0;
    d.start_worker(&spin, Some("spin"), &[]);
    let mut bytes = 0;
    let mut events = 0;
    while bytes < enough {
        let ev = counter.next().event;
        bytes += ev.encode().len();
        events += 1;
        if events % 50 == 0 {
            let t = Instant::now();
            let reply = lookup.request(&lookup_req("probe"));
            let took = t.elapsed();
            assert_eq!(reply.pid, Some(probe), "{reply:?}");
            lookups += 1;
            slowest = slowest.max(took);
            assert!(
                took < LOOKUP_BOUND,
                "lookup took {took:?} with a stalled watcher{}",
                d.log_tail()
            );
        }
    }
    d.request_ok(&stop_req(&spin, None));
    counter.wait_for("stopped spin", |e| is_stopped(e, &spin));
    eprintln!("{events} events ({bytes} bytes); {lookups} lookups, the slowest took {slowest:?}");

    let rss_after = rss_kib(d.pid());
    assert!(
        rss_after < rss_before + 32 * 1024,
        "the daemon grew from {rss_before} KiB to {rss_after} KiB with a stalled watcher"
    );

    // Now read. The stream starts with the reply, then the oldest events that fit.
    let mut w = Watcher::from_subscribed(stalled, Some(d.log_path().to_path_buf()));
    w.expect_reply(&[]);
    // `lagged` comes before the next event that fits once the queue has drained: keep
    // making events (another worker started) until it shows up.
    let mut pokes = 0;
    let mut before = Vec::new();
    let (dropped, after) = loop {
        match w.try_next(Duration::from_millis(200)) {
            Some(t) => match t.event {
                Event::Lagged { dropped } => break (dropped, w.next().event),
                other => before.push(other),
            },
            None => {
                assert!(!w.has_ended(), "the stalled watcher's stream ended");
                assert!(pokes < 100, "no lagged event after {pokes} more events");
                pokes += 1;
                d.start_worker(&format!("poke_{pokes}"), Some("sleeper"), &[]);
            }
        }
    };
    eprintln!(
        "read {} events, then lagged: {dropped} dropped",
        before.len()
    );
    assert!(dropped > 0, "lagged with dropped = 0");
    assert!(
        is_started(&before[0], &spin),
        "the first event is not the first start: {:?}",
        before[0]
    );
    // The watcher that kept up saw everything: the stalled one got a prefix of it, in
    // order, then lost exactly `dropped` events, then goes on with the next one.
    counter.wait_for("the event after `lagged`", |e| *e == after);
    let all = &counter.seen;
    assert!(
        all[..before.len()] == before[..],
        "the stalled watcher's events are not the first ones, in order"
    );
    let at = all.iter().position(|e| *e == after).unwrap();
    assert_eq!(
        at as u64,
        before.len() as u64 + dropped,
        "lagged says {dropped} dropped; {} events came between the last one read and {after:?}",
        at - before.len()
    );
    // ...and the stream goes on: a new event arrives after it.
    d.start_worker("after", Some("sleeper"), &[]);
    w.wait_for("started after", |e| is_started(e, "after"));
    assert_eq!(d.lookup("probe"), Some(probe));
}

/// `dynsup watch --json` prints one event per line; `dynsup watch` prints readable
/// lines; both end with status 0 when the daemon shuts down. An unknown name is fine.
#[test]
fn cli_watch_streams_events() {
    let mut d = TestDaemon::start(&config());
    let mut json = d.cli_process(&["watch", "--json"]);
    let mut human = d.cli_process(&["watch"]);
    let mut unknown = d.cli_process(&["watch", "nobody_yet"]);

    // The CLIs subscribe on their own schedule: make events until each has printed
    // one (a watcher prints nothing but events), so that it sees all that follows.
    let mut json_ready = false;
    let mut human_ready = false;
    for poke in 0.. {
        if json_ready && human_ready {
            break;
        }
        assert!(poke < 100, "the CLI watchers printed nothing");
        d.start_worker(&format!("probe_{poke}"), Some("once"), &[]);
        let wait = Duration::from_millis(150);
        json_ready = json_ready || json.try_line(wait).is_some();
        human_ready = human_ready || human.try_line(wait).is_some();
    }
    // The watcher of a name that did not exist when it subscribed: it sees the worker
    // once one of that name starts.
    for poke in 0.. {
        assert!(poke < 100, "`watch nobody_yet` printed nothing");
        d.start_worker("nobody_yet", Some("once"), &[]);
        d.wait_unregistered("nobody_yet");
        if let Some(line) = unknown.try_line(Duration::from_millis(150)) {
            // (It may have subscribed between two events of that worker.)
            assert!(line.contains("nobody_yet "), "{line:?}");
            break;
        }
    }

    let old = d.start_worker("w", Some("sleeper"), &[]);
    send_signal(old, Signal::SIGKILL);
    let new = d.wait_restarted("w", old);

    // JSON: the four events about w, in order, as protocol events.
    let mut about_w = Vec::new();
    while about_w.len() < 4 {
        let line = json.wait_line("about w", |l| l.contains("\"w\""));
        let ev: Event = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("watch --json printed {line:?}: {e}"));
        about_w.push(ev);
    }
    assert_eq!(
        about_w[0],
        Event::Started {
            name: "w".into(),
            pid: old
        }
    );
    assert!(
        matches!(&about_w[1], Event::Exited { pid, reason, .. } if *pid == old && reason == "signal SIGKILL"),
        "{about_w:?}"
    );
    assert_eq!(
        about_w[2],
        Event::Restarting {
            name: "w".into(),
            delay_ms: 0
        }
    );
    assert_eq!(
        about_w[3],
        Event::Started {
            name: "w".into(),
            pid: new
        }
    );

    // Readable lines.
    human.wait_line("`w started`", |l| {
        l.ends_with(&format!("w started (pid {old})"))
    });
    human.wait_line("`w exited`", |l| {
        l.contains("w exited: signal SIGKILL") && l.contains(&format!("pid {old}"))
    });
    human.wait_line("`w restarting`", |l| l.contains("w restarting"));
    human.wait_line("`w started` again", |l| {
        l.ends_with(&format!("w started (pid {new})"))
    });

    // Shutdown: every CLI watcher (the unknown name too) reports it and exits 0.
    d.request_ok(&Request::Shutdown);
    json.wait_line("shutdown", |l| l.contains("\"shutdown\""));
    human.wait_line("shutting down", |l| l.contains("shutting down"));
    unknown.wait_line("shutting down", |l| l.contains("shutting down"));
    for cli in [&mut json, &mut human, &mut unknown] {
        let (status, stderr) = cli.wait_exit(DEADLINE);
        assert_eq!(status.code(), Some(0), "watch exited {status:?}: {stderr}");
    }
    assert!(
        unknown
            .lines
            .iter()
            .all(|l| l.contains("nobody_yet") || l.contains("shutting down")),
        "`watch nobody_yet` printed events about other workers: {:#?}",
        unknown.lines
    );
    d.wait_exit(DEADLINE);
}

/// Watchers that hang up are forgotten: the daemon's descriptors come back to where
/// they were, and the remaining watchers go on.
#[test]
fn watchers_that_hang_up_are_forgotten() {
    let d = TestDaemon::start(&config());
    let mut keeper = Watcher::subscribe(&d, &[]);
    // One connection for the requests, so that no short-lived one is open or closing
    // when the baseline is taken.
    let mut c = d.client();
    let pid = c
        .request(&start_req("w", Some("sleeper"), &[]))
        .pid
        .expect("pid");
    keeper.expect("started w", |e| is_started(e, "w"));
    let baseline = fd_count(d.pid());
    let watchers: Vec<Watcher> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                Watcher::subscribe(&d, &[])
            } else {
                Watcher::subscribe(&d, &["w"])
            }
        })
        .collect();
    let with = fd_count(d.pid());
    assert!(
        with >= baseline + 50,
        "{baseline} fds, then {with} with 50 watchers"
    );
    // An event reaches them all while they are connected.
    d.request_ok(&kill_req("w", Some("SIGKILL")));
    let pid = d.wait_restarted("w", pid);
    drop(watchers);
    d.wait_until(
        DEADLINE,
        "the daemon to close the watchers' sockets",
        || (fd_count(d.pid()) <= baseline).then_some(()),
    );
    send_signal(pid, Signal::SIGKILL);
    keeper.wait_for(
        "w restarted",
        |e| matches!(e, Event::Started { name, pid: p } if name == "w" && *p != pid),
    );
    assert!(d.lookup("w").is_some());
}

/// A watcher that shuts down its writing side after `watch` (as `echo ... | socat`
/// does) still gets its events: it is disconnected when it hangs up, not on EOF.
#[test]
fn a_watcher_that_half_closes_still_gets_events() {
    let d = TestDaemon::start(&config());
    let stream = UnixStream::connect(d.socket()).expect("connect");
    Watcher::send_watch(&stream, &["w"]);
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown(SHUT_WR)");
    let mut w = Watcher::from_subscribed(stream, Some(d.log_path().to_path_buf()));
    w.expect_reply(&["w"]);
    let pid = d.start_worker("w", Some("sleeper"), &[]);
    assert_eq!(
        w.next().event,
        Event::Started {
            name: "w".into(),
            pid
        }
    );
    send_signal(pid, Signal::SIGKILL);
    w.expect("exited w", |e| is_exited(e, "w"));
}
