//! `fence`: the dead man's switch over the workers started `fenced`. Renewed in time
//! it never fires; not renewed, those workers are stopped (SIGKILL after its timeout),
//! forgotten, never restarted, and their `stopped` events say they were fenced; the
//! other workers are untouched.

use super::*;

fn fence(within_ms: Option<u64>, timeout_ms: Option<u64>) -> Input {
    request(Command::Fence {
        within_ms,
        timeout_ms,
    })
}

fn start_fenced(name: &str) -> Input {
    request(Command::Start {
        name: name.to_string(),
        template: None,
        args: Vec::new(),
        command: None,
        env: Default::default(),
        fenced: true,
    })
}

#[test]
fn renewed_in_time_it_never_fires_and_disarmed_it_costs_no_wakeup() {
    let mut h = Harness::commands_only(3, 5, vec![permanent("p")]);
    h.started(start_fenced("a"));
    h.started(start_fenced("b"));
    h.started(start("local"));
    assert_eq!(h.sup.next_deadline(), None, "disarmed at first");
    h.at(0)
        .check(fence(Some(1000), Some(200)), "reply c1: ok count=2");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1000));
    h.at(900)
        .check(Input::Tick, "")
        .check(fence(Some(1000), Some(200)), "reply c1: ok count=2");
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1900));
    h.at(1500).check(Input::Tick, "");
    h.check(fence(None, None), "reply c1: ok count=2");
    assert_eq!(h.sup.next_deadline(), None);
    h.at(10_000).check(Input::Tick, "");
    assert_eq!(h.sup.count(), 3);
}

#[test]
fn not_renewed_it_stops_the_fenced_workers_for_good_and_leaves_the_others() {
    let mut h = Harness::new(3, 5, vec![shutdown_ms(permanent("p"), 5000)]);
    h.started(start_fenced("a"));
    h.started(start("local"));
    h.started(start_fenced("b"));
    h.at(0)
        .check(fence(Some(1000), Some(200)), "reply c1: ok count=2");
    h.at(999).check(Input::Tick, "");
    h.at(1000).check_unordered(
        Input::Tick,
        "signal group 101 SIGTERM
         signal group 103 SIGTERM",
    );
    // Its own timeout, not the template's 5 s: SIGKILL 200 ms later.
    assert_eq!(h.sup.next_deadline().map(|us| us / 1000), Some(1200));
    h.at(1100).check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         event stopped a (fenced: the fence was not renewed in time)
         save state",
    );
    h.at(1200)
        .check(Input::Tick, "signal group 103 SIGKILL")
        .check(
            exited(103, signaled(Signal::KILL)),
            "reaped #3
         event stopped b (fenced: the fence was not renewed in time)
         save state",
        );
    // Forgotten (not restarted, not counted), the local worker untouched; disarmed.
    assert_eq!(h.sup.count(), 1);
    assert!(h.sup.is_registered("local"));
    assert!(h.sup.intensity.is_empty());
    assert_eq!(h.sup.next_deadline(), None);
    let saved: Vec<_> = h.sup.saved_workers().into_iter().map(|w| w.name).collect();
    assert_eq!(saved, ["local"]);
}

#[test]
fn the_flag_is_recorded_for_the_state_file() {
    let mut h = Harness::new(3, 5, vec![permanent("p")]);
    h.started(start_fenced("a"));
    h.started(start("b"));
    let fenced: Vec<_> = h
        .sup
        .saved_workers()
        .into_iter()
        .map(|w| (w.name, w.fenced))
        .collect();
    assert_eq!(fenced, [("a".to_string(), true), ("b".to_string(), false)]);
}

#[test]
fn a_worker_without_a_process_is_forgotten_at_once_and_a_late_tick_still_fires() {
    let mut h = Harness::new(3, 5, vec![paced(permanent("p"))]);
    h.started(start_fenced("a"));
    h.at(0)
        .check(fence(Some(1000), None), "reply c1: ok count=1");
    // It crashes and waits in its backoff when the switch fires (late: a busy loop).
    h.at(100);
    h.feed(exited(101, code(1)));
    h.at(5000).check(
        Input::Tick,
        "event stopped a (fenced: the fence was not renewed in time)
         save state",
    );
    assert_eq!(h.sup.count(), 0);
    assert_eq!(h.sup.next_deadline(), None);
}

#[test]
fn each_fence_replaces_the_last_and_a_shutdown_refuses_it() {
    let mut h = Harness::commands_only(3, 5, vec![permanent("p")]);
    h.started(start_fenced("a"));
    h.at(0)
        .check(fence(Some(1000), None), "reply c1: ok count=1");
    h.check(fence(Some(500), Some(0)), "reply c1: ok count=1");
    h.at(500).check(
        Input::Tick,
        "signal group 101 SIGTERM
         signal group 101 SIGKILL",
    );
    h.feed(exited(101, signaled(Signal::KILL)));
    h.started(start_fenced("b"));
    h.check(fence(Some(1000), None), "reply c1: ok count=1");
    h.feed(Input::ShutdownSignal {
        signal: Signal::TERM,
    });
    h.check(fence(Some(1000), None), "reply c1: error shutting_down");
}
