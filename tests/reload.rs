//! Reload without restarting the world: `reload` or SIGHUP reads
//! the config again; if valid, the difference is applied (new children start, removed
//! ones stop, changed ones restart, unchanged ones are not touched: same pids), and
//! dynamic workers keep running; if invalid, nothing changes and the error names
//! file:line:column.

mod common;
use common::*;
use std::collections::BTreeMap;

/// The templates of both versions of the config; `echo`'s environment says which.
fn templates(version: u32) -> String {
    format!(
        r#"
[templates.sleeper]
command = ["sleep"]
restart = "permanent"

[templates.echo]
command = ["sh", "-c", "echo \"$DYNSUP_NAME v=$V args=[$*]\"; exec sleep 100000", "sh"]
restart = "permanent"
env = {{ V = "{version}" }}
"#
    )
}

/// Version 1: sleepers `keep`, `change` and `remove`; `tchild` of the `echo` template.
fn v1() -> String {
    [
        LENIENT_SUPERVISOR,
        &templates(1),
        &boot_child("keep", "sleeper", &["100000"]),
        &boot_child("change", "sleeper", &["100001"]),
        &boot_child("remove", "sleeper", &["100002"]),
        &boot_child("tchild", "echo", &[]),
    ]
    .concat()
}

/// Version 2: `keep` unchanged; `change` gets other args; `remove` is gone; `add` is
/// new; the `echo` template's env changes, so its child `tchild` changes too.
fn v2() -> String {
    [
        LENIENT_SUPERVISOR,
        &templates(2),
        &boot_child("keep", "sleeper", &["100000"]),
        &boot_child("change", "sleeper", &["100003"]),
        &boot_child("tchild", "echo", &[]),
        &boot_child("add", "sleeper", &["100004"]),
    ]
    .concat()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The pid and /proc identity of every registered worker.
fn snapshot(d: &TestDaemon) -> BTreeMap<String, Stat> {
    d.list()
        .into_iter()
        .map(|w| {
            let pid = w
                .pid
                .unwrap_or_else(|| panic!("{} has no pid: {w:?}", w.name));
            (w.name, stat(pid).expect("a listed worker in /proc"))
        })
        .collect()
}

/// The same workers, with the very same processes.
#[track_caller]
fn assert_untouched(d: &TestDaemon, before: &BTreeMap<String, Stat>) {
    let now = snapshot(d);
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the set of workers changed{}",
        d.log_tail()
    );
    for (name, s) in before {
        assert_eq!(
            (now[name].pid, now[name].starttime),
            (s.pid, s.starttime),
            "{name} was restarted{}",
            d.log_tail()
        );
    }
}

/// The reload scenario, triggered by `trigger` (which returns the reply's report when
/// there is one).
fn reload_applies_only_the_difference(trigger: impl FnOnce(&TestDaemon) -> Option<ReloadReport>) {
    let d = TestDaemon::start(&v1());
    let dynamic = d.start_worker("dyn", Some("echo"), &["d"]);
    d.wait_worker_line("dyn", "dyn v=1 args=[d]", 1);
    d.wait_worker_line("tchild", "tchild v=1 args=[]", 1);
    let before = snapshot(&d);
    let mut w = Watcher::subscribe(&d, &[]);

    d.rewrite_config(&v2());
    if let Some(report) = trigger(&d) {
        assert_eq!(
            report,
            ReloadReport {
                started: strings(&["add"]),
                stopped: strings(&["remove"]),
                restarted: strings(&["change", "tchild"]),
                unchanged: strings(&["keep"]),
                skipped: vec![],
                needs_daemon_restart: vec![],
            }
        );
    }

    // Unchanged: the very same process. Dynamic: the same too.
    for name in ["keep", "dyn"] {
        let pid = d.lookup(name).expect(name);
        assert_eq!(pid, before[name].pid, "{name} got a new pid");
        assert!(!is_gone(&before[name]), "{name}'s process is gone");
    }
    assert_eq!(d.lookup("dyn"), Some(dynamic));
    // Changed: restarted with the new spec.
    let change = d.wait_restarted("change", before["change"].pid);
    assert_eq!(cmdline(change), ["sleep", "100003"]);
    d.assert_reaped(before["change"].pid);
    let tchild = d.wait_restarted("tchild", before["tchild"].pid);
    d.wait_worker_line("tchild", "tchild v=2 args=[]", 1);
    assert!(is_alive(tchild));
    // Removed: stopped and unregistered.
    d.wait_unregistered("remove");
    d.assert_reaped(before["remove"].pid);
    // Added: running, a config child (not dynamic).
    let add = d.lookup("add").expect("add is running");
    assert_eq!(cmdline(add), ["sleep", "100004"]);
    let info = d.list_one("add").unwrap();
    assert!(!info.dynamic, "{info:?}");
    assert_eq!(d.count(), 5);

    // The events: nothing about the untouched workers.
    let mut pending = vec![
        "started add",
        "started change",
        "started tchild",
        "stopped remove",
    ];
    while !pending.is_empty() {
        let ev = w.next().event;
        let key = match &ev {
            Event::Started { name, .. } => format!("started {name}"),
            Event::Stopped { name, .. } => format!("stopped {name}"),
            _ => String::new(),
        };
        pending.retain(|p| *p != key);
        assert!(
            !matches!(ev.name(), Some("keep") | Some("dyn")),
            "an event about an untouched worker: {ev:?}"
        );
    }

    // Templates are updated for future starts.
    d.start_worker("dyn2", Some("echo"), &["e"]);
    d.wait_worker_line("dyn2", "dyn2 v=2 args=[e]", 1);
    assert_eq!(d.lookup("dyn"), Some(dynamic));

    // Reloading the same file again changes nothing.
    let before = snapshot(&d);
    let reply = d.request_ok(&Request::Reload);
    let report = reply.reload.expect("reload report");
    assert_eq!(
        report,
        ReloadReport {
            unchanged: strings(&["add", "change", "keep", "tchild"]),
            ..ReloadReport::default()
        }
    );
    assert_untouched(&d, &before);
}

/// `reload` applies only the difference; the reply lists each worker.
#[test]
fn reload_request_applies_only_the_difference() {
    reload_applies_only_the_difference(|d| {
        let reply = d.request_ok(&Request::Reload);
        Some(reply.reload.expect("reload reply without a report"))
    });
}

/// SIGHUP does the same as `reload` (its report goes to the log).
#[test]
fn sighup_applies_only_the_difference() {
    reload_applies_only_the_difference(|d| {
        d.signal(Signal::SIGHUP);
        d.wait_log("config reloaded: 1 started, 1 stopped, 2 restarted, 1 unchanged, 0 skipped");
        None
    });
}

/// Where `needle` is in `text`, as 1-based (line, column).
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).expect("needle in text");
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Asserts that `message` names `path:line:COLUMN` for some column.
#[track_caller]
fn assert_names_position(message: &str, path: &str, line: usize) {
    let prefix = format!("{path}:{line}:");
    let rest = message
        .find(&prefix)
        .map(|i| &message[i + prefix.len()..])
        .unwrap_or_else(|| panic!("`{prefix}COLUMN` not in {message:?}"));
    let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
    assert!(
        digits > 0 && rest[digits..].starts_with(':'),
        "no column after `{prefix}` in {message:?}"
    );
}

/// An invalid reload changes nothing; the reply is `invalid_config` with
/// file:line:column, and every pid stays the same. Then a valid one works, also from
/// the CLI.
#[test]
fn an_invalid_reload_changes_nothing() {
    let mut d = TestDaemon::start(&v1());
    d.start_worker("dyn", Some("echo"), &[]);
    let before = snapshot(&d);
    let path = d.config_path().to_str().unwrap().to_string();

    // A syntax error.
    let broken = v2().replacen("restart = \"permanent\"", "restart = permanent", 1);
    let (line, _) = position_of(&broken, "restart = permanent");
    d.rewrite_config(&broken);
    let reply = d.request(&Request::Reload);
    assert_error(&reply, ErrorKind::InvalidConfig);
    assert_names_position(&reply.error.as_ref().unwrap().message, &path, line);
    assert_untouched(&d, &before);

    // A valid TOML file that is not a valid config: a child with an unknown template.
    let wrong = v2().replacen(
        "template = \"sleeper\"\nargs = [\"100004\"]",
        "template = \"nope\"\nargs = [\"100004\"]",
        1,
    );
    assert_ne!(wrong, v2());
    let (line, column) = position_of(&wrong, "\"nope\"");
    d.rewrite_config(&wrong);
    let reply = d.request(&Request::Reload);
    assert_error(&reply, ErrorKind::InvalidConfig);
    let message = &reply.error.as_ref().unwrap().message;
    assert!(
        message.contains(&format!("{path}:{line}:{column}")),
        "{message:?} does not point at {path}:{line}:{column}"
    );
    assert_untouched(&d, &before);

    // SIGHUP with an invalid file: logged, nothing changes, the daemon lives on.
    d.rewrite_config(&broken);
    d.signal(Signal::SIGHUP);
    d.wait_until(DEADLINE, "the refused SIGHUP reload in the log", || {
        (d.log().matches("reload refused").count() >= 3).then_some(())
    });
    let refusal = d
        .log()
        .lines()
        .rfind(|l| l.contains("reload refused"))
        .unwrap()
        .to_string();
    assert!(refusal.contains("ERROR"), "{refusal}");
    assert_names_position(
        &refusal,
        &path,
        position_of(&broken, "restart = permanent").0,
    );
    assert!(!d.has_exited());
    assert_untouched(&d, &before);

    // The CLI: an invalid reload exits 1 and says where.
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr_of(&out).contains(&format!("{path}:")),
        "{}",
        stderr_of(&out)
    );
    assert_untouched(&d, &before);

    // A valid file again: applied, and the CLI prints what changed.
    d.rewrite_config(&v2());
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout_of(&out);
    for line in [
        "started: add",
        "stopped: remove",
        "restarted: change, tchild",
        "unchanged: keep",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in {text:?}");
    }
    d.wait_unregistered("remove");
    assert_eq!(d.lookup("dyn"), Some(before["dyn"].pid));
    assert_eq!(d.lookup("keep"), Some(before["keep"].pid));
}

/// A new child whose name a dynamic worker already holds is skipped (and said so);
/// the dynamic worker is left alone.
#[test]
fn a_new_child_whose_name_a_dynamic_worker_holds_is_skipped() {
    let d = TestDaemon::start(&v1());
    let add = d.start_worker("add", Some("sleeper"), &["99999"]);
    d.rewrite_config(&v2());
    let reply = d.request_ok(&Request::Reload);
    let report = reply.reload.expect("report");
    assert!(report.started.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].starts_with("add"), "{report:?}");
    assert_eq!(d.lookup("add"), Some(add));
    assert_eq!(cmdline(add), ["sleep", "99999"]);
    assert!(d.list_one("add").unwrap().dynamic);
}

/// Dynamic workers keep running on their old spec across a reload "until their next
/// restart": after a crash restart they run from the reloaded template.
#[test]
fn dynamic_workers_take_the_new_template_at_their_next_restart() {
    let d = TestDaemon::start(&v1());
    let old = d.start_worker("dyn", Some("echo"), &["d"]);
    d.wait_worker_line("dyn", "dyn v=1 args=[d]", 1);
    d.rewrite_config(&v2());
    d.request_ok(&Request::Reload);
    assert_eq!(
        d.lookup("dyn"),
        Some(old),
        "a reload restarted a dynamic worker"
    );
    send_signal(old, Signal::SIGKILL);
    d.wait_restarted("dyn", old);
    d.wait_until(DEADLINE, "the restarted dyn to say hello", || {
        (d.worker_lines("dyn", "args=[d]") >= 2).then_some(())
    });
    assert_eq!(
        d.worker_output_exact("dyn", "dyn v=2 args=[d]"),
        1,
        "after its restart, dyn still runs the old template:\n{}",
        d.log()
            .lines()
            .filter(|l| l.contains("[dyn]"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Without `--config` there is nothing to reload: `invalid_config`, nothing changes.
#[test]
fn reload_without_a_config_file_is_refused() {
    let d = TestDaemon::start_without_config();
    let pid = d.start_worker("w", None, &[]);
    assert_error(&d.request(&Request::Reload), ErrorKind::InvalidConfig);
    assert_eq!(d.lookup("w"), Some(pid));
}

/// Children with no process (waiting in backoff) are handled at once: a removed one
/// is unregistered before the reply, a changed one is started now with its new spec.
#[test]
fn reload_acts_at_once_on_children_waiting_in_backoff() {
    // Says its arguments, then crashes when it reads a line; restarted only after a
    // minute.
    let wait_crash = r#"
[templates.wait_crash]
command = ["sh", "-c", "echo \"args=[$*]\"; read x; exit 1", "sh"]
restart = "permanent"
backoff = { initial_ms = 60000 }
"#;
    let v1 = [
        wait_crash,
        &boot_child("gone", "wait_crash", &[]),
        &boot_child("changed", "wait_crash", &[]),
    ]
    .concat();
    let v2 = [wait_crash, &boot_child("changed", "wait_crash", &["new"])].concat();
    let d = TestDaemon::start(&v1);
    let mut w = Watcher::subscribe(&d, &[]);
    for name in ["gone", "changed"] {
        d.wait_worker_line(name, "args=[]", 1);
        d.request_ok(&cast_req(name, "crash"));
        w.wait_for("restarting", |e| is_restarting(e, name));
        assert_eq!(d.list_one(name).unwrap().state, WorkerStateName::Backoff);
    }
    d.rewrite_config(&v2);
    let report = d.request_ok(&Request::Reload).reload.expect("report");
    assert_eq!(report.stopped, strings(&["gone"]), "{report:?}");
    assert_eq!(report.restarted, strings(&["changed"]), "{report:?}");
    // Unregistered in the same step: no process to wait for.
    assert_eq!(d.lookup("gone"), None);
    // Then, in either order: `gone` leaves, `changed` starts now (not in 60 s).
    let mut gone = None;
    let mut changed = false;
    while gone.is_none() || !changed {
        let ev = w.next().event;
        changed |= is_started(&ev, "changed");
        if is_stopped(&ev, "gone") {
            gone = Some(ev);
        }
    }
    assert_eq!(
        gone.unwrap(),
        Event::Stopped {
            name: "gone".into(),
            reason: "removed from the config".into()
        }
    );
    d.wait_worker_line("changed", "args=[new]", 1);
    assert_eq!(
        d.list_one("changed").unwrap().state,
        WorkerStateName::Running
    );
}
