//! Durable dynamic children: with `[supervisor] state_file`, every
//! `start`/`stop` of a dynamic worker is recorded before the reply, and a daemon that
//! starts with the file starts those workers again (after the config's
//! `[[children]]`): after `kill -9` of the daemon, after an intensity escalation. A
//! corrupt file is set aside; without `state_file` nothing is written.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::rc::Rc;

/// Dynamic workers recorded in `state`; `max_restarts` restarts in a minute; a sleeper
/// (also boot child `boot`), a worker that crashes and one that exits cleanly on cue.
fn config(state: &Path, max_restarts: u32) -> String {
    format!(
        r#"
[supervisor]
max_restarts = {max_restarts}
max_seconds = 60
state_file = {state}

# Says its arguments, then waits for a line on stdin and exits 1 (a crash).
[templates.echo]
command = ["sh", "-c", "echo \"args=[$*]\"; read x; exit 1", "sh"]
restart = "transient"

# Exits 0 (cleanly) when it reads a line.
[templates.job]
command = ["sh", "-c", "read x; exit 0"]
restart = "transient"

[[children]]
name = "boot"
template = "sleeper"
"#,
        state = toml_str(state.to_str().unwrap())
    ) + SLEEPER
}

/// A daemon with a state file in a fresh directory, `max_restarts` restarts allowed.
fn durable_daemon(max_restarts: u32) -> (Rc<TestDir>, std::path::PathBuf, String, TestDaemon) {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let config = config(&state, max_restarts);
    let d = Launch::new(&config).in_dir(dir.clone()).start();
    (dir, state, config, d)
}

#[track_caller]
fn state_names(path: &Path) -> Vec<String> {
    read_state(path).1.into_keys().collect()
}

/// Dynamic workers come back after `kill -9` of the daemon: same names,
/// same specs, new pids, started by a second daemon with the same config. The file is
/// written before each `start`/`stop` reply.
#[test]
fn dynamic_workers_come_back_after_kill_9_of_the_daemon() {
    let (dir, state, config, mut d) = durable_daemon(100);
    assert!(!state.exists(), "a state file with no dynamic worker yet");

    let a = d.start_worker("a", Some("sleeper"), &[]);
    // Read at once, without waiting: the reply came after the write.
    assert_eq!(state_names(&state), ["a"]);
    let b = d.start_worker("b", Some("echo"), &["x y", "z"]);
    assert_eq!(state_names(&state), ["a", "b"]);
    let c = d.start_command("c", Some("sleeper"), &["sleep", "99999"]);
    assert_eq!(state_names(&state), ["a", "b", "c"]);
    d.start_worker("gone", Some("sleeper"), &[]);
    d.request_ok(&stop_req("gone", None));
    assert_eq!(state_names(&state), ["a", "b", "c"]);
    // A start that fails records nothing.
    let reply = d.request(&start_cmd_req(
        "bad",
        Some("sleeper"),
        &["/no/such/program"],
    ));
    assert_error(&reply, ErrorKind::SpawnFailed);
    assert_eq!(state_names(&state), ["a", "b", "c"]);
    // A dynamic worker that finishes cleanly is not brought back by a later daemon.
    d.start_worker("job", Some("job"), &[]);
    assert_eq!(state_names(&state), ["a", "b", "c", "job"]);
    d.request_ok(&cast_req("job", "done"));
    d.wait_unregistered("job");
    wait_until(DEADLINE, "job to leave the state file", || {
        (state_names(&state) == ["a", "b", "c"]).then_some(())
    });

    let (version, saved) = read_state(&state);
    assert_eq!(version, 1);
    assert_eq!(saved["a"]["template"], "sleeper");
    assert_eq!(saved["b"]["args"], serde_json::json!(["x y", "z"]));
    assert_eq!(saved["c"]["command"], serde_json::json!(["sleep", "99999"]));
    assert!(
        !saved.contains_key("boot"),
        "a [[children]] entry was recorded"
    );
    // Changes are appended to the journal; no temporary file is left behind.
    let mut files: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("state"))
        .collect();
    files.sort();
    assert_eq!(files, ["state.json.journal"]);
    d.wait_worker_line("b", "args=[x y z]", 1);
    let old: Vec<Stat> = [a, b, c].iter().map(|&p| stat(p).unwrap()).collect();

    // kill -9: the workers die with the daemon (PDEATHSIG); the file stays.
    d.kill_hard();
    wait_until(DEADLINE, "the old workers to die with the daemon", || {
        old.iter().all(is_gone).then_some(())
    });
    assert_eq!(state_names(&state), ["a", "b", "c"]);

    let d2 = d.start_another(&config);
    let mut pids = BTreeMap::new();
    for name in ["boot", "a", "b", "c"] {
        let pid = d2
            .lookup(name)
            .unwrap_or_else(|| panic!("{name} did not come back{}", d2.log_tail()));
        assert!(is_alive(pid), "{name}");
        assert_eq!(stat(pid).unwrap().ppid, d2.pid(), "{name}");
        pids.insert(name, pid);
    }
    assert_eq!(d2.count(), 4);
    assert!(![a, b, c].contains(&pids["a"]));
    assert_eq!(cmdline(pids["c"]), ["sleep", "99999"]);
    d2.wait_worker_line("b", "args=[x y z]", 1);
    let list = d2.list();
    for w in &list {
        assert_eq!(w.dynamic, w.name != "boot", "{w:?}");
        assert_eq!(w.restarts, 0, "{w:?}");
    }
    assert_eq!(state_names(&state), ["a", "b", "c"]);

    // The config's children first, then the restored ones.
    let log = d2.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in the log{}", d2.log_tail()))
    };
    assert!(at("boot: started") < at("a: started"), "{log}");
    assert!(at("boot: started") < at("c: started"), "{log}");

    // The second daemon records changes too.
    d2.request_ok(&stop_req("a", None));
    assert_eq!(state_names(&state), ["b", "c"]);
}

/// After an intensity escalation (the daemon stops everything and exits 1, as systemd
/// would then restart it), the dynamic workers come back — except the one that made it
/// escalate: it is restored held `failed` (so it cannot make the new daemon escalate
/// too), and `restart` brings it back.
#[test]
fn after_an_escalation_the_workers_come_back_and_the_culprit_is_held_failed() {
    // max_restarts = 0: the first crash escalates.
    let (_dir, state, config, mut d) = durable_daemon(0);
    let a = d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("echo"), &["arg"]);
    d.wait_worker_line("b", "args=[arg]", 1);
    assert_eq!(state_names(&state), ["a", "b"]);

    let mut w = Watcher::subscribe(&d, &[]);
    d.request_ok(&cast_req("b", "crash"));
    w.wait_for("b exited", |e| is_exited(e, "b"));
    let ev = w.next().event;
    assert_eq!(
        ev,
        Event::IntensityTripped { name: "b".into() },
        "{:?}",
        w.seen
    );
    assert_eq!(w.next().event, Event::Shutdown, "{:?}", w.seen);
    w.expect_end();
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}{}", d.log_tail());
    assert!(!is_alive(a));
    assert_eq!(
        state_names(&state),
        ["a", "b"],
        "the escalation must not forget the dynamic workers"
    );
    let (_, saved) = read_state(&state);
    let why = saved["b"]["failed"].as_str().unwrap_or_default();
    assert!(why.contains("it made the daemon escalate"), "{saved:?}");

    let d2 = d.start_another(&config);
    for name in ["boot", "a"] {
        let pid = d2
            .lookup(name)
            .unwrap_or_else(|| panic!("{name} did not come back{}", d2.log_tail()));
        assert!(is_alive(pid));
        assert_eq!(stat(pid).unwrap().ppid, d2.pid());
    }
    assert_ne!(d2.lookup("a"), Some(a));
    let b = d2.list_one("b").expect("b is listed");
    assert_eq!((b.state, b.pid), (WorkerStateName::Failed, None));
    let why = b.last_exit.map(|e| e.reason).unwrap_or_default();
    assert!(why.contains("escalate"), "{why}");
    // It stays held across another restart of the daemon, until `restart`.
    let reply = d2.request_ok(&restart_req("b", None));
    let pid = reply.pid.expect("restart answers the new pid");
    d2.wait_worker_line("b", "args=[arg]", 1);
    assert_eq!(d2.lookup("b"), Some(pid));
    let (_, saved) = read_state(&state);
    assert!(
        saved["b"].get("failed").is_none(),
        "restart unholds it: {saved:?}"
    );
}

/// `--no-restore`: the daemon starts, serves its socket, and holds every saved worker
/// `failed` instead of starting it; `restart` starts one, `stop` forgets one.
#[test]
fn no_restore_holds_every_saved_worker() {
    let (dir, state, config, mut d) = durable_daemon(100);
    d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("sleeper"), &[]);
    d.request_ok(&Request::Shutdown);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
    assert_eq!(state_names(&state), ["a", "b"]);

    let d2 = Launch::new(&config)
        .in_dir(dir.clone())
        .arg("--no-restore")
        .start();
    for name in ["a", "b"] {
        let row = d2.list_one(name).expect("listed");
        assert_eq!(
            (row.state, row.pid),
            (WorkerStateName::Failed, None),
            "{name}"
        );
    }
    assert!(d2.lookup("boot").is_some(), "boot children start as usual");
    let pid = d2
        .request_ok(&restart_req("a", None))
        .pid
        .expect("a new pid");
    assert!(is_alive(pid));
    d2.request_ok(&stop_req("b", None));
    assert_eq!(state_names(&state), ["a"]);
}

/// An orderly shutdown forgets nothing either: the dynamic workers stay in the file and
/// the next daemon starts them (`stop` them first to forget them).
#[test]
fn dynamic_workers_come_back_after_an_orderly_shutdown() {
    let (_dir, state, config, mut d) = durable_daemon(100);
    d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("sleeper"), &[]);
    d.request_ok(&stop_req("b", None));
    let reply = d.request_ok(&Request::Shutdown);
    assert_eq!(reply.shutdown.map(|r| r.len()), Some(2), "boot and a");
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
    assert_eq!(state_names(&state), ["a"]);
    let d2 = d.start_another(&config);
    assert!(
        d2.lookup("a").is_some(),
        "a did not come back{}",
        d2.log_tail()
    );
    assert_eq!(d2.lookup("b"), None);
    assert_eq!(d2.count(), 2);
}

/// The content of the file a corrupt state file was moved to, and its path.
#[track_caller]
fn set_aside_file(state: &Path) -> (std::path::PathBuf, String) {
    let dir = state.parent().unwrap();
    let prefix = format!("{}.corrupt-", state.file_name().unwrap().to_str().unwrap());
    let found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|stamp| !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {prefix}<unixtime> file in {}",
        dir.display()
    );
    let text = fs::read_to_string(&found[0]).unwrap();
    (found[0].clone(), text)
}

/// A corrupt state file is set aside (renamed `FILE.corrupt-UNIXTIME`),
/// the daemon says so naming the file, and starts with the config's children only.
#[test]
fn a_corrupt_state_file_is_set_aside() {
    for bad in [
        "{\"version\":1,\"workers\":[{\"name\":\"a\",\"templ",
        "{\"version\":99,\"workers\":[]}\n",
        "\u{0}\u{1}binary junk",
    ] {
        let dir = Rc::new(TestDir::new());
        let state = dir.join("state.json");
        fs::write(&state, bad).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let d = Launch::new(&config(&state, 100))
            .in_dir(dir.clone())
            .start();
        assert_eq!(d.count(), 1, "only the config's children: {:?}", d.list());
        assert!(d.lookup("boot").is_some());
        assert!(!state.exists(), "the corrupt file was left in place");
        let (aside, text) = set_aside_file(&state);
        assert_eq!(text, bad, "the set-aside file is not the original");
        let stamp: u64 = aside
            .to_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            stamp >= before && stamp <= before + 600,
            "{} is not stamped with the time",
            aside.display()
        );
        let log = d.log();
        let line = log
            .lines()
            .find(|l| l.contains("ERROR") && l.contains(state.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no error naming {}{}", state.display(), d.log_tail()));
        assert!(
            line.contains(aside.to_str().unwrap()),
            "the error does not say where the file went: {line}"
        );

        // The daemon works on, and records from scratch.
        d.start_worker("fresh", Some("sleeper"), &[]);
        assert_eq!(state_names(&state), ["fresh"]);
        assert_eq!(
            set_aside_file(&state).1,
            bad,
            "the set-aside file was touched"
        );
    }
}

/// A recorded worker whose template no longer exists is reported by name; the others
/// are restored.
#[test]
fn a_worker_that_cannot_be_restored_is_reported_and_the_others_come_back() {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    fs::write(
        &state,
        r#"{"version":1,"workers":[{"name":"good","template":"sleeper"},{"name":"ghost","template":"removed_template"},{"name":"good2","template":"echo","args":["q"]}]}"#,
    )
    .unwrap();
    let d = Launch::new(&config(&state, 100))
        .in_dir(dir.clone())
        .start();
    assert!(d.lookup("good").is_some());
    assert!(d.lookup("good2").is_some());
    assert_eq!(d.lookup("ghost"), None);
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("removed_template"))
        .unwrap_or_else(|| panic!("no error about the missing template{}", d.log_tail()));
    assert!(
        line.contains("ghost"),
        "the error does not name the worker that was not restored: {line}"
    );
}

/// Off by default: without `state_file` nothing is written anywhere the daemon
/// could write (its directory, its working directory).
#[test]
fn no_state_file_by_default() {
    let config = r#""#;
    let cwd_before: Vec<_> = fs::read_dir(".")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let d = TestDaemon::start(&[config, SLEEPER].concat());
    d.start_worker("a", Some("sleeper"), &[]);
    d.start_worker("b", Some("sleeper"), &[]);
    d.request_ok(&stop_req("a", None));
    let mut files: Vec<String> = fs::read_dir(d.dir().path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for f in &files {
        assert!(
            f == "d.sock"
                || (f.starts_with("config-") && f.ends_with(".toml"))
                || (f.starts_with("daemon-") && (f.ends_with(".log") || f.ends_with(".stdout"))),
            "unexpected file {f} in {files:?}"
        );
    }
    let new_in_cwd: Vec<_> = fs::read_dir(".")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !cwd_before.contains(n))
        .collect();
    assert!(
        new_in_cwd.is_empty(),
        "new files in the cwd: {new_in_cwd:?}"
    );
    assert!(
        !d.log().contains("state file"),
        "the log mentions a state file{}",
        d.log_tail()
    );
}
