//! The restart rule: permanent / transient / temporary × how the worker ended
//! (the table below), and configurable `clean_signals`.
//!
//! Workers are `sh -c 'read code; exit $code'`: they wait for one line on stdin and
//! exit with it, so a test decides when and how a worker exits with `cast`. Deaths by
//! signal use `sleep 100000` (which dies of any terminating signal's default action)
//! and kill(2) from the test, never through dynsup.

mod common;
use common::*;
use nix::sys::signal::Signal as Sig;

/// A template per restart rule, whose workers exit with the code they read, and one
/// with its own clean signal.
fn config() -> String {
    [LENIENT_SUPERVISOR, TEMPLATES].concat()
}

const TEMPLATES: &str = r#"
[templates.permanent]
command = ["sh", "-c", "read code; exit $code"]
restart = "permanent"

[templates.transient]
command = ["sh", "-c", "read code; exit $code"]
restart = "transient"

[templates.temporary]
command = ["sh", "-c", "read code; exit $code"]
restart = "temporary"

[templates.custom_clean]
command = ["sleep", "100000"]
restart = "transient"
clean_signals = ["SIGUSR1"]
"#;

#[derive(Debug, Clone, Copy)]
enum End {
    /// Exits on its own with this status.
    Exit(i32),
    /// Killed from outside with this signal.
    Signal(Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Restarted,
    NotRestarted,
}

/// Starts worker `name` from `template`, ready to end as `end`; returns its pid.
fn start_for(d: &TestDaemon, name: &str, template: &str, end: End) -> i32 {
    match end {
        End::Exit(_) => d.start_worker(name, Some(template), &[]),
        End::Signal(_) => d.start_command(name, Some(template), &["sleep", "100000"]),
    }
}

/// Makes worker `name` (pid `pid`) end as `end`.
fn trigger(d: &TestDaemon, name: &str, pid: i32, end: End) {
    match end {
        End::Exit(code) => {
            d.request_ok(&cast_req(name, &code.to_string()));
        }
        End::Signal(signal) => send_signal(pid, signal),
    }
}

/// Waits for the daemon's decision about `name`, whose process `old` has ended.
fn outcome(d: &TestDaemon, name: &str, old: i32) -> Outcome {
    let outcome = d.wait_until(
        DEADLINE,
        &format!("a decision about {name} (pid {old})"),
        || match d.lookup(name) {
            None => Some(Outcome::NotRestarted),
            Some(pid) if pid != old => Some(Outcome::Restarted),
            Some(_) => None,
        },
    );
    d.assert_reaped(old);
    if outcome == Outcome::Restarted {
        let new = d.lookup(name).expect("still registered");
        assert!(is_alive(new), "{name}: restarted pid {new} is not alive");
        assert_eq!(stat(new).unwrap().ppid, d.pid());
    }
    outcome
}

fn check(template: &str, end: End, expected: Outcome) {
    let d = TestDaemon::start(&config());
    let pid = start_for(&d, "w", template, end);
    trigger(&d, "w", pid, end);
    let got = outcome(&d, "w", pid);
    assert_eq!(
        got,
        expected,
        "{template} worker ended by {end:?}{}",
        d.log_tail()
    );
    match expected {
        Outcome::NotRestarted => {
            assert_eq!(d.count(), 0);
            assert!(d.list().is_empty());
        }
        Outcome::Restarted => assert_eq!(d.count(), 1),
    }
}

// Transient: restarted only after an abnormal exit.

#[test]
fn transient_exit_0_is_not_restarted_and_unregistered() {
    check("transient", End::Exit(0), Outcome::NotRestarted);
}

#[test]
fn transient_killed_by_sigterm_from_outside_is_not_restarted_and_unregistered() {
    check(
        "transient",
        End::Signal(Sig::SIGTERM),
        Outcome::NotRestarted,
    );
}

#[test]
fn transient_exit_1_is_restarted() {
    check("transient", End::Exit(1), Outcome::Restarted);
}

#[test]
fn transient_killed_by_another_signal_is_restarted() {
    check("transient", End::Signal(Sig::SIGUSR1), Outcome::Restarted);
}

// Permanent (always restarted) and temporary (never).

#[test]
fn permanent_exit_0_is_restarted() {
    check("permanent", End::Exit(0), Outcome::Restarted);
}

#[test]
fn temporary_killed_is_not_restarted() {
    check(
        "temporary",
        End::Signal(Sig::SIGKILL),
        Outcome::NotRestarted,
    );
}

/// Every cell of the restart table (rule × how the worker ended), on one daemon, all
/// workers ending at once.
#[test]
fn the_whole_restart_table() {
    use End::*;
    use Outcome::*;
    let cases = [
        ("permanent", Exit(0), Restarted),
        ("permanent", Exit(3), Restarted),
        ("permanent", Signal(Sig::SIGTERM), Restarted),
        ("permanent", Signal(Sig::SIGKILL), Restarted),
        ("transient", Exit(0), NotRestarted),
        ("transient", Exit(3), Restarted),
        ("transient", Signal(Sig::SIGTERM), NotRestarted),
        ("transient", Signal(Sig::SIGKILL), Restarted),
        ("transient", Signal(Sig::SIGUSR2), Restarted),
        ("temporary", Exit(0), NotRestarted),
        ("temporary", Exit(3), NotRestarted),
        ("temporary", Signal(Sig::SIGTERM), NotRestarted),
        ("temporary", Signal(Sig::SIGKILL), NotRestarted),
    ];
    let d = TestDaemon::start(&config());
    let started: Vec<(String, i32)> = cases
        .iter()
        .enumerate()
        .map(|(i, (template, end, _))| {
            let name = format!("case{i}");
            let pid = start_for(&d, &name, template, *end);
            (name, pid)
        })
        .collect();
    for ((_, end, _), (name, pid)) in cases.iter().zip(&started) {
        trigger(&d, name, *pid, *end);
    }
    let mut wrong = Vec::new();
    for ((template, end, expected), (name, pid)) in cases.iter().zip(&started) {
        let got = outcome(&d, name, *pid);
        if got != *expected {
            wrong.push(format!(
                "{template} ended by {end:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}{}", d.log_tail());
    let restarted = cases.iter().filter(|c| c.2 == Restarted).count();
    assert_eq!(d.count(), restarted);
    assert!(zombie_children_of(d.pid()).is_empty());
}

#[test]
fn restarted_worker_keeps_its_template_and_rule() {
    let d = TestDaemon::start(&config());
    let first = d.start_worker("w", Some("transient"), &[]);
    d.request_ok(&cast_req("w", "1"));
    let second = d.wait_restarted("w", first);
    // The new instance obeys the same command and rule: exit 0 ends it for good.
    d.request_ok(&cast_req("w", "0"));
    d.wait_unregistered("w");
    d.assert_reaped(second);
}

#[test]
fn clean_signals_are_configurable() {
    let d = TestDaemon::start(&config());
    // SIGUSR1 is this template's clean signal: not restarted.
    let pid = d.start_worker("u", Some("custom_clean"), &[]);
    send_signal(pid, Signal::SIGUSR1);
    assert_eq!(outcome(&d, "u", pid), Outcome::NotRestarted);
    // SIGTERM is not in its list, so it is abnormal here: restarted.
    let pid = d.start_worker("t", Some("custom_clean"), &[]);
    send_signal(pid, Signal::SIGTERM);
    assert_eq!(outcome(&d, "t", pid), Outcome::Restarted);
}
