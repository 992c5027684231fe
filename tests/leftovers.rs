//! Nothing of a worker outlives it, without cgroups too: a worker is gone only when its
//! whole process group is gone. When its main process ends — on its own, by an outside
//! kill, by `stop`, by the daemon's shutdown — what is left of its group gets the stop
//! signal, then SIGKILL after `shutdown_ms`, before it is restarted or reported
//! stopped.

mod common;
use common::*;

fn config() -> String {
    [
        LENIENT_SUPERVISOR,
        r#"
[templates.bg]
command = ["sh", "-c", "sleep 1234 & exec sleep 999"]
restart = "permanent"
shutdown_ms = 5000

[templates.stubborn_bg]
command = ["sh", "-c", "(trap '' TERM; exec sleep 1001) & exec sleep 1000"]
restart = "permanent"
shutdown_ms = 300

[templates.orphan_maker]
command = ["sh", "-c", "(sleep 30 &); exec sleep 1003"]
restart = "permanent"

[templates.stubborn_bg_patient]
command = ["sh", "-c", "(trap '' TERM; exec sleep 1002) & exec sleep 1000"]
restart = "permanent"
shutdown_ms = 60000
"#,
    ]
    .concat()
}

const SIGTERM_BIT: u64 = 1 << (15 - 1);

/// Start `name` and wait until its process group holds its main process and one
/// background process (ignoring SIGTERM when `stubborn`); returns (main pid, the
/// background process).
#[track_caller]
fn start_with_background(
    d: &TestDaemon,
    name: &str,
    template: &str,
    stubborn: bool,
) -> (i32, Stat) {
    let main = d.start_worker(name, Some(template), &[]);
    let other = d.wait_until(DEADLINE, &format!("{name}'s background process"), || {
        let group: Vec<i32> = d
            .ps(Some(name))
            .into_iter()
            .flat_map(|(_, pids)| pids)
            .collect();
        let other = group.into_iter().find(|&p| p != main)?;
        let ready = !stubborn || signal_set(other, "SigIgn") & SIGTERM_BIT != 0;
        ready.then(|| stat(other)).flatten()
    });
    assert_eq!(
        other.pgrp, main,
        "the background process is in the worker's group"
    );
    (main, other)
}

#[test]
fn an_outside_kill_takes_the_background_children_before_the_restart() {
    let d = TestDaemon::start(&config());
    let (main, bg) = start_with_background(&d, "w", "bg", false);
    send_signal(main, Signal::SIGKILL);
    let new = d.wait_restarted("w", main);
    // The restart waited for the old group: its background sleep is gone already.
    assert!(
        is_gone(&bg),
        "the old background process outlived the restart"
    );
    let (_, new_bg) = start_with_background_of(&d, "w", new);
    assert_ne!(new_bg.pid, bg.pid);
    // Nothing of the old instance is in anyone's `ps`.
    let every: Vec<i32> = d.ps(None).into_iter().flat_map(|(_, p)| p).collect();
    assert!(!every.contains(&bg.pid), "{every:?}");
}

/// The background process of the worker `name` whose main process is `main`.
#[track_caller]
fn start_with_background_of(d: &TestDaemon, name: &str, main: i32) -> (i32, Stat) {
    let other = d.wait_until(DEADLINE, &format!("{name}'s background process"), || {
        let group: Vec<i32> = d
            .ps(Some(name))
            .into_iter()
            .flat_map(|(_, pids)| pids)
            .collect();
        group.into_iter().find(|&p| p != main).and_then(stat)
    });
    (main, other)
}

#[test]
fn stop_answers_once_a_member_that_ignores_sigterm_is_killed() {
    let d = TestDaemon::start(&config());
    let (main, stubborn) = start_with_background(&d, "w", "stubborn_bg", true);
    let reply = d.request_ok(&stop_req("w", None));
    let report = reply.stopped.expect("a stop report");
    assert_eq!(report.pid, Some(main));
    // The main process obeyed SIGTERM; the member that ignores it was SIGKILLed after
    // shutdown_ms, before the reply.
    assert_eq!(
        report.exit,
        Some(ExitReport::Signaled {
            signal: "SIGTERM".into(),
            core_dumped: false
        })
    );
    assert!(is_gone(&stubborn), "sleep 1001 outlived `stop`");
    assert_eq!(d.lookup("w"), None);
}

#[test]
fn a_restart_waits_while_leftovers_drain_and_goes_on_when_they_are_gone() {
    let d = TestDaemon::start(&config());
    let (main, stubborn) = start_with_background(&d, "w", "stubborn_bg_patient", true);
    send_signal(main, Signal::SIGKILL);
    // SIGTERM does not move the leftover and SIGKILL is a minute away: the worker
    // drains, with no pid and no restart yet.
    d.wait_until(DEADLINE, "w to drain", || {
        d.list_one("w")
            .filter(|w| w.state == WorkerStateName::Draining)
    });
    let row = d.list_one("w").expect("listed");
    assert_eq!(row.pid, None);
    assert!(!is_gone(&stubborn));
    assert_eq!(d.counts().stopping, 1);
    // The leftover dies (here by our hand): it is our daemon's child now (subreaper),
    // its death wakes the daemon, and the restart goes ahead at once.
    send_signal(stubborn.pid, Signal::SIGKILL);
    let new = d.wait_restarted("w", main);
    assert!(is_gone(&stubborn));
    assert!(is_alive(new));
}

#[test]
fn the_daemons_shutdown_leaves_no_member_of_any_group() {
    let mut d = TestDaemon::start(&config());
    let (_, bg) = start_with_background(&d, "a", "bg", false);
    let (_, stubborn) = start_with_background(&d, "b", "stubborn_bg", true);
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", d.log_tail());
    assert!(is_gone(&bg), "sleep 1234 outlived the daemon");
    assert!(is_gone(&stubborn), "sleep 1001 outlived the daemon");
}

#[test]
fn a_worker_that_exits_on_its_own_takes_its_group_with_it() {
    let config = [
        LENIENT_SUPERVISOR,
        r#"
[templates.quitter]
command = ["sh", "-c", "sleep 1235 & read line; exit 3"]
restart = "transient"
"#,
    ]
    .concat();
    let d = TestDaemon::start(&config);
    let (_, bg) = start_with_background(&d, "q", "quitter", false);
    d.request_ok(&cast_req("q", "bye"));
    // exit 3 of a transient worker: a restart, after the group is empty.
    let reply = d.wait_until(DEADLINE, "q to be restarted", || {
        d.list_one("q")
            .filter(|w| w.restarts == 1 && w.pid.is_some())
    });
    assert!(is_gone(&bg), "sleep 1235 outlived its worker");
    assert_eq!(
        reply.last_exit.map(|e| e.reason),
        Some("exit 3".to_string())
    );
}

/// Workers' own exits are reaped through their pidfds; an orphan the daemon adopts (as
/// subreaper) has none, and must be reaped all the same — here one that exits while its
/// worker runs on, so no group is being drained when it goes.
#[test]
fn an_adopted_orphan_that_exits_while_its_worker_runs_is_reaped() {
    let d = TestDaemon::start(&config());
    let main = d.start_worker("orphans", Some("orphan_maker"), &[]);
    let orphan = d.wait_until(DEADLINE, "the orphan adopted by the daemon", || {
        children_of(d.pid()).into_iter().find(|s| {
            s.pid != main && s.pgrp == main && cmdline(s.pid).first().is_some_and(|c| c == "sleep")
        })
    });
    send_signal(orphan.pid, Signal::SIGKILL);
    d.wait_until(DEADLINE, "the orphan reaped", || {
        (!is_alive(orphan.pid) && zombie_children_of(d.pid()).is_empty()).then_some(())
    });
    assert_eq!(d.lookup("orphans"), Some(main), "its worker runs on");
}
