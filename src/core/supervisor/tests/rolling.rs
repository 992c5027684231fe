//! Rolling restarts: one at a time, the next once the one before is ready again; a
//! worker that does not get ready stops the roll; `on_reload = "rolling"`.

use super::*;
use crate::core::spec::{OnReload, Readiness};

fn notifying(name: &str) -> Template {
    let mut t = permanent(name);
    t.ready = Readiness::Notify;
    t.ready_timeout_ms = 1000;
    t
}

fn ready(pid: i32) -> Input {
    notify(pid, true, None)
}

/// Three ready instances of `web` (101, 102, 103) and one of `other` (104).
fn three() -> Harness {
    let mut h = Harness::commands_only(10, 5, vec![notifying("web"), notifying("other")]);
    for (name, pid) in [("a", 101), ("b", 102), ("c", 103)] {
        h.started(start_from(name, "web"));
        h.check(ready(pid), "");
    }
    h.started(start_from("x", "other"));
    h.check(ready(104), "");
    h
}

#[test]
fn a_rolling_restart_takes_one_instance_at_a_time() {
    let mut h = three();
    h.check(
        rolling(Select::Template("web".to_string())),
        "signal group 101 SIGTERM",
    )
    .check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         spawn a #5 -> 105",
    )
    // Not ready yet: b waits.
    .check(lookup("b"), "reply c1: ok name=b pid=102 state=running")
    .check(ready(105), "signal group 102 SIGTERM")
    .check(
        exited(102, signaled(Signal::TERM)),
        "reaped #2
         spawn b #6 -> 106",
    )
    .check(ready(106), "signal group 103 SIGTERM")
    .check(
        exited(103, signaled(Signal::TERM)),
        "reaped #3
         spawn c #7 -> 107",
    )
    .check(ready(107), "reply c1: ok rollout=[a b c]");
    assert_eq!(h.row("x").pid, Some(104));
}

#[test]
fn a_worker_that_does_not_get_ready_stops_the_roll_and_the_rest_is_untouched() {
    let mut h = three();
    h.check(
        rolling(Select::Template("web".to_string())),
        "signal group 101 SIGTERM",
    )
    .check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         spawn a #5 -> 105",
    )
    .check(ready(105), "signal group 102 SIGTERM")
    .check(
        exited(102, signaled(Signal::TERM)),
        "reaped #2
         spawn b #6 -> 106",
    )
    .check(
        exited(106, code(1)),
        "reaped #6
         spawn b #7 -> 107
         reply c1: error not_ready restarted=[a] not_restarted=[b c]",
    );
    let message = h.reply().error.map(|e| e.message).unwrap_or_default();
    assert_eq!(
        message,
        "rolling restart stopped at b: it exited (exit 1) before it was ready; restarted: a; not restarted: c"
    );
    assert_eq!(h.row("c").pid, Some(103));
}

#[test]
fn a_ready_timeout_stops_the_roll() {
    let mut h = three();
    h.check(
        rolling(Select::Name("a".to_string())),
        "signal group 101 SIGTERM",
    )
    .check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
             spawn a #5 -> 105",
    )
    .at(1000)
    .check(
        Input::Tick,
        "signal group 105 SIGKILL
             reply c1: error not_ready restarted=[] not_restarted=[a]",
    );
}

#[test]
fn rolling_restarts_of_nothing_and_of_unknown_things() {
    let mut h = three();
    h.check(
        rolling(Select::Template("nope".to_string())),
        "reply c1: error unknown_template",
    )
    .check(
        rolling(Select::Name("nope".to_string())),
        "reply c1: error not_found",
    );
    let mut h = Harness::commands_only(10, 5, vec![notifying("web")]);
    h.check(rolling(Select::All), "reply c1: ok rollout=[]");
}

#[test]
fn a_reload_rolls_a_template_that_says_so() {
    let mut web = notifying("web");
    web.on_reload = OnReload::Rolling;
    let mut h = Harness::commands_only(10, 5, vec![web.clone()]);
    h.check(
        boot_start(0, boot_child("a", "web", &[])),
        "spawn a #1 -> 101
         reply boot0: ok name=a pid=101",
    )
    .check(ready(101), "");
    h.started(start_from("d", "web")); // 102
    h.check(ready(102), "");
    let mut changed = web.clone();
    changed.shutdown_ms = 777;
    h.check(
        reload(10, vec![changed], vec![boot_child("a", "web", &[])]),
        "reply c1: ok reload={started=[] stopped=[] restarted=[a d] unchanged=[] skipped=[]}
         signal group 101 SIGTERM",
    )
    .check(
        exited(101, signaled(Signal::TERM)),
        "reaped #1
         spawn a #3 -> 103",
    )
    .check(ready(103), "signal group 102 SIGTERM")
    .check(
        exited(102, signaled(Signal::TERM)),
        "reaped #2
         spawn d #4 -> 104",
    )
    .check(ready(104), "");
    assert_eq!(h.entry("d").worker.spec.template.shutdown_ms, 777);
}
