//! Rolling restarts: `restart --template T --rolling` (and `--all`) restarts the running
//! instances one at a time, each once the one before it is ready again, so at most one
//! of them is ever not ready; one that fails to get ready stops the roll, is named, and
//! the rest keep their pids. `on_reload = "rolling"` applies a changed template the
//! same way.
//!
//! Readiness is observed twice: in the `watch` stream (every event of the five is
//! applied to a set of not-ready names, whose size must never exceed one), and in what
//! the [`RECORDING_WORKER`]s wrote down (the next one was sent its stop signal only
//! after the one before it wrote `ready`).

mod common;
use common::*;
use std::collections::BTreeSet;

const WEB: [&str; 5] = ["web_1", "web_2", "web_3", "web_4", "web_5"];

/// Five boot children of template `web` (with `extra` keys), each ready 30 ms after
/// it starts.
fn config(f: &Recorded, extra: &str) -> String {
    let mut config = [LENIENT_SUPERVISOR, &f.template("web", extra)].concat();
    for name in WEB {
        config.push_str(&boot_child_after(name, "web", &[], &["30"]));
    }
    config
}

/// The five, running and ready: their rows.
#[track_caller]
fn wait_all_ready(d: &TestDaemon) -> Vec<WorkerInfo> {
    d.wait_until(DEADLINE, "web_1..web_5 to be running and ready", || {
        let rows: Vec<WorkerInfo> = d
            .list()
            .into_iter()
            .filter(|w| WEB.contains(&w.name.as_str()))
            .collect();
        (rows.len() == WEB.len()
            && rows
                .iter()
                .all(|w| w.state == WorkerStateName::Running && w.ready))
        .then_some(rows)
    })
}

fn pids(rows: &[WorkerInfo]) -> Vec<i32> {
    rows.iter().map(|w| w.pid.expect("a pid")).collect()
}

/// Which of the five are not ready, as the event stream tells it, and the most that
/// ever were at once.
struct NotReady {
    now: BTreeSet<String>,
    most: usize,
    /// The events applied, for failure messages.
    seen: Vec<Event>,
    /// `ready` events per name.
    readied: Vec<(String, usize)>,
}

impl NotReady {
    fn new() -> NotReady {
        NotReady {
            now: BTreeSet::new(),
            most: 0,
            seen: Vec::new(),
            readied: WEB.iter().map(|n| (n.to_string(), 0)).collect(),
        }
    }

    fn apply(&mut self, event: &Event) {
        let Some(name) = event.name().filter(|n| WEB.contains(n)) else {
            return;
        };
        self.seen.push(event.clone());
        match event {
            Event::Ready { .. } => {
                self.now.remove(name);
                if let Some((_, n)) = self.readied.iter_mut().find(|(n, _)| n == name) {
                    *n += 1;
                }
            }
            Event::Unhealthy { .. } | Event::Healthy { .. } => {}
            _ => {
                self.now.insert(name.to_string());
            }
        }
        self.most = self.most.max(self.now.len());
    }

    fn ready_count(&self, name: &str) -> usize {
        self.readied
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    }

    /// Reads the stream until each of `names` has sent `ready` once more than
    /// `before` says, applying every event.
    #[track_caller]
    fn follow_until_ready(&mut self, watcher: &mut Watcher, names: &[&str]) {
        let targets: Vec<(String, usize)> = names
            .iter()
            .map(|n| (n.to_string(), self.ready_count(n) + 1))
            .collect();
        while !targets.iter().all(|(n, want)| self.ready_count(n) >= *want) {
            let event = watcher.next().event;
            self.apply(&event);
        }
    }

    #[track_caller]
    fn assert_one_at_a_time(&self) {
        assert!(
            self.most <= 1,
            "{} of the five were not ready at once; events: {:#?}",
            self.most,
            self.seen
        );
    }
}

/// In the record: each worker of `order` (after the first) got its stop signal only
/// after the one before it wrote `ready` for the `n`th time.
#[track_caller]
fn assert_record_one_at_a_time(record: &Record, order: &[&str], nth_ready: usize) {
    for pair in order.windows(2) {
        let (before, next) = (pair[0], pair[1]);
        assert!(
            record.nth(next, "stop", 1) > record.nth(before, "ready", nth_ready),
            "{next} was stopped before {before} was ready again:\n{record}"
        );
    }
}

#[track_caller]
fn assert_new_pids(d: &TestDaemon, rows: &[WorkerInfo], old: &[i32]) {
    for (w, old) in rows.iter().zip(old) {
        let pid = w.pid.expect("pid");
        assert_ne!(pid, *old, "{} kept its pid", w.name);
        assert!(is_alive(pid), "{w:?}");
        assert_eq!(stat(pid).expect("in /proc").ppid, d.pid(), "{w:?}");
        d.assert_reaped(*old);
    }
}

/// `dynsup restart --template web --rolling`: all five get new pids, one at a time; the
/// CLI prints a line per worker and the count.
#[test]
fn a_rolling_restart_never_has_two_instances_not_ready() {
    let f = Recorded::new();
    let d = Launch::new(&config(&f, "")).in_dir(f.dir.clone()).start();
    let old = pids(&wait_all_ready(&d));
    let mut watcher = Watcher::subscribe(&d, &[]);

    let out = d.cli(&["restart", "--template", "web", "--rolling"]);
    assert_exit(&out, 0);
    let mut want: Vec<String> = WEB.iter().map(|n| format!("{n} restarted")).collect();
    want.push("5 restarted".to_string());
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        want,
        "{}",
        stderr_of(&out)
    );

    let mut not_ready = NotReady::new();
    not_ready.follow_until_ready(&mut watcher, &WEB);
    not_ready.assert_one_at_a_time();
    assert!(not_ready.now.is_empty(), "{:?}", not_ready.now);
    let rows = wait_all_ready(&d);
    assert_new_pids(&d, &rows, &old);
    for w in &rows {
        assert_eq!(w.restarts, 0, "an operator restart is not a crash: {w:?}");
    }
    assert_record_one_at_a_time(&f.read(), &WEB, 2);
}

/// The third instance fails to get ready: the roll stops there with `not_ready` naming
/// it, the first two were restarted, the last two keep their pids. Over the socket, the
/// same with `all`: the reply's `rollout` says what was and was not restarted.
#[test]
fn a_roll_stops_at_the_first_instance_that_does_not_get_ready() {
    let f = Recorded::new();
    let d = Launch::new(&config(&f, "")).in_dir(f.dir.clone()).start();
    let old = pids(&wait_all_ready(&d));
    let mut watcher = Watcher::subscribe(&d, &[]);

    f.fail_once("web_3");
    let out = d.cli(&["restart", "--template", "web", "--rolling"]);
    assert_exit(&out, 1);
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        ["web_1 restarted", "web_2 restarted"],
        "{}",
        stderr_of(&out)
    );
    // The daemon's message: where the roll stopped, why, and what it did not touch.
    let stderr = stderr_of(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in ["web_3", "web_4", "web_5"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    let record = f.read();
    assert_eq!(record.count("web_3", "fail"), 1, "{record}");
    assert_eq!(
        record.count("web_4", "stop"),
        0,
        "web_4 was touched:\n{record}"
    );
    assert_eq!(
        record.count("web_5", "stop"),
        0,
        "web_5 was touched:\n{record}"
    );
    assert_eq!(d.lookup("web_4"), Some(old[3]));
    assert_eq!(d.lookup("web_5"), Some(old[4]));

    // web_3's restart rule brings it back (the flag fails one start only).
    let mut not_ready = NotReady::new();
    not_ready.follow_until_ready(&mut watcher, &["web_1", "web_2", "web_3"]);
    not_ready.assert_one_at_a_time();
    let rows = wait_all_ready(&d);
    assert_new_pids(&d, &rows[..3], &old[..3]);
    assert_eq!(
        pids(&rows)[3..],
        old[3..],
        "web_4 and web_5 keep their pids"
    );

    // The same over the socket, with `all`, failing at the first one.
    f.fail_once("web_1");
    let now = pids(&rows);
    let reply = d.request(&Request::Restart {
        name: None,
        names: Vec::new(),
        template: None,
        all: true,
        rolling: true,
        timeout_ms: None,
    });
    assert_error(&reply, ErrorKind::NotReady);
    assert!(
        reply.error.as_ref().unwrap().message.contains("web_1"),
        "{reply:?}"
    );
    let rollout = reply.rollout.as_ref().expect("a rollout in the failure");
    assert!(rollout.restarted.is_empty(), "{reply:?}");
    assert_eq!(rollout.not_restarted, WEB, "{reply:?}");
    for (name, pid) in WEB.iter().zip(&now).skip(1) {
        assert_eq!(d.lookup(name), Some(*pid), "{name} was touched");
    }
    not_ready.follow_until_ready(&mut watcher, &["web_1"]);
    not_ready.assert_one_at_a_time();
}

/// `on_reload = "rolling"`: a reload that changes the template restarts its five
/// instances one at a time (the reply lists them as restarted), with the new settings.
#[test]
fn a_reload_of_a_rolling_template_restarts_one_at_a_time() {
    let f = Recorded::new();
    let d = Launch::new(&config(&f, "on_reload = \"rolling\""))
        .in_dir(f.dir.clone())
        .start();
    let old = pids(&wait_all_ready(&d));
    let mut watcher = Watcher::subscribe(&d, &[]);

    d.rewrite_config(&config(
        &f,
        "on_reload = \"rolling\"\nenv = { RELEASE = \"2\" }",
    ));
    let reply = d.request_ok(&Request::Reload);
    let report = reply.reload.expect("a reload report");
    assert_eq!(report.restarted, WEB, "{report:?}");

    let mut not_ready = NotReady::new();
    not_ready.follow_until_ready(&mut watcher, &WEB);
    not_ready.assert_one_at_a_time();
    let rows = wait_all_ready(&d);
    assert_new_pids(&d, &rows, &old);
    for pid in pids(&rows) {
        assert!(
            environ(pid).iter().any(|v| v == "RELEASE=2"),
            "pid {pid} does not have the new template's env"
        );
    }
    assert_record_one_at_a_time(&f.read(), &WEB, 2);
}

/// A roll takes as long as its workers take to get ready: its connection is not idle
/// meanwhile (here each instance needs 150 ms, the idle timeout is 100 ms), and the CLI
/// has no timeout of its own. `restart NAME --rolling` rolls one worker; an unknown
/// template is refused.
#[test]
fn a_long_roll_is_waited_for_and_one_name_rolls_alone() {
    let f = Recorded::new();
    let mut config = [
        LENIENT_SUPERVISOR,
        "idle_timeout_ms = 100\n",
        &f.template("web", ""),
    ]
    .concat();
    for name in WEB {
        config.push_str(&boot_child_after(name, "web", &[], &["150"]));
    }
    let d = Launch::new(&config).in_dir(f.dir.clone()).start();
    let old = pids(&wait_all_ready(&d));

    let out = d.cli(&["restart", "--all", "--rolling"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout_of(&out).lines().last(),
        Some("5 restarted"),
        "{}",
        stderr_of(&out)
    );
    let rows = wait_all_ready(&d);
    assert_new_pids(&d, &rows, &old);

    let out = d.cli(&["restart", "web_2", "--rolling"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out), "web_2 restarted\n1 restarted\n");
    let now = pids(&wait_all_ready(&d));
    assert_ne!(now[1], pids(&rows)[1]);
    assert_eq!(now[0], pids(&rows)[0], "web_1 was touched");

    let out = d.cli(&["restart", "--template", "nope", "--rolling"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("nope"), "{}", stderr_of(&out));
}
