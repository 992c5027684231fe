//! A worker's environment from its template's `env_file`s (read at each start, so an
//! edited file applies at the next restart) and its own `start --env` (kept across its
//! restarts and in the state file), checked in `/proc/PID/environ`. An unusable env file
//! refuses a `start` with `invalid_env_file` naming the file and line, and makes a restart
//! after an exit a failed spawn.

mod common;
use common::*;
use dynsup::protocol::ErrorKind;
use std::fs;
use std::path::Path;
use std::rc::Rc;

/// Template `svc` (`sleep`, permanent): `env` sets A and T, then `env_file` the given
/// files; its own restart limit gives up after 2 restarts in a minute.
fn config(files: &[String], state: Option<&Path>) -> String {
    let files: Vec<String> = files.iter().map(|f| toml_str(f)).collect();
    let state = state.map_or(String::new(), |s| {
        format!("state_file = {}\n", toml_str(s.to_str().unwrap()))
    });
    format!(
        r#"{LENIENT_SUPERVISOR}{state}
[templates.svc]
command = ["sleep", "100000"]
restart = "permanent"
env = {{ A = "template", T = "template" }}
env_file = [{}]
max_restarts = 2
max_seconds = 60
on_limit = "give_up"
"#,
        files.join(", ")
    )
}

/// `KEY`'s value in the environment of `pid`.
fn env_var(pid: i32, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    environ(pid)
        .into_iter()
        .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_string))
}

fn path_of(dir: &TestDir, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn files_then_own_env_in_order_and_an_edited_file_applies_at_the_next_restart() {
    let dir = Rc::new(TestDir::new());
    let game = dir.write(
        "game.env",
        "# the game\nA=file\nB=file\nexport Q=\"quoted # kept\"\n",
    );
    let game = game.display().to_string();
    let optional = format!("-{}", path_of(&dir, "absent.env"));
    let d = Launch::new(&config(&[game.clone(), optional], None))
        .in_dir(dir.clone())
        .start();
    let reply = d.request_ok(&start_env_req(
        "w",
        None,
        &[("B", "own"), ("DYNSUP_NAME", "forged")],
    ));
    let pid = reply.pid.expect("pid");
    assert_eq!(env_var(pid, "A").as_deref(), Some("file"));
    assert_eq!(env_var(pid, "T").as_deref(), Some("template"));
    assert_eq!(env_var(pid, "B").as_deref(), Some("own"));
    assert_eq!(env_var(pid, "Q").as_deref(), Some("quoted # kept"));
    assert_eq!(env_var(pid, "DYNSUP_NAME").as_deref(), Some("w"));

    // Edited in place (as an editor that truncates would): the running worker keeps its
    // environment; its next start reads the new file, and keeps its own variables.
    fs::write(&game, "A=changed\n").unwrap();
    assert_eq!(env_var(pid, "A").as_deref(), Some("file"));
    d.request_ok(&kill_req("w", Some("SIGKILL")));
    let pid = d.wait_restarted("w", pid);
    assert_eq!(env_var(pid, "A").as_deref(), Some("changed"));
    assert_eq!(env_var(pid, "B").as_deref(), Some("own"));
    // An operator restart reads it again too.
    fs::write(&game, "A=again\n").unwrap();
    d.request_ok(&restart_req("w", None));
    let pid = d.wait_restarted("w", pid);
    assert_eq!(env_var(pid, "A").as_deref(), Some("again"));
}

#[test]
fn an_unusable_file_refuses_a_start_with_its_file_and_line() {
    let dir = Rc::new(TestDir::new());
    let game = dir.write("game.env", "A=1\n\noops\n").display().to_string();
    let d = Launch::new(&config(std::slice::from_ref(&game), None))
        .in_dir(dir.clone())
        .start();
    let reply = d.request(&start_req("w", None, &[]));
    let error = reply.error.expect("refused");
    assert_eq!(error.kind, ErrorKind::InvalidEnvFile, "{error:?}");
    assert_eq!(
        error.message,
        format!("cannot start w: {game}:3: expected KEY=VALUE, found \"oops\"")
    );
    assert_eq!(d.lookup("w"), None);
    assert_eq!(d.count(), 0);

    // A required file that is missing, or a directory in its place.
    fs::remove_file(&game).unwrap();
    let error = d
        .request(&start_req("w", None, &[]))
        .error
        .expect("refused");
    assert_eq!(error.kind, ErrorKind::InvalidEnvFile, "{error:?}");
    assert!(
        error
            .message
            .contains(&format!("env_file {game}: no such file")),
        "{error:?}"
    );
    fs::create_dir(&game).unwrap();
    let error = d
        .request(&start_req("w", None, &[]))
        .error
        .expect("refused");
    assert!(
        error
            .message
            .contains("is not a regular file (a directory)"),
        "{error:?}"
    );
    // The CLI says the same and exits 1.
    let out = d.cli(&["start", "w"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("is not a regular file"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_file_broken_while_the_worker_runs_fails_its_restarts_until_it_is_given_up() {
    let dir = Rc::new(TestDir::new());
    let game = dir.write("game.env", "A=1\n").display().to_string();
    let d = Launch::new(&config(std::slice::from_ref(&game), None))
        .in_dir(dir.clone())
        .start();
    let pid = d.start_worker("w", None, &[]);
    fs::write(&game, "A=1\nB='unclosed\n").unwrap();
    d.request_ok(&kill_req("w", Some("SIGKILL")));
    let info = d.wait_until(DEADLINE, "w to be given up on", || {
        d.list_one("w")
            .filter(|w| w.state == dynsup::protocol::WorkerStateName::Failed)
    });
    let reason = info.last_exit.clone().expect("a last exit").reason;
    assert!(
        reason.starts_with(&format!(
            "spawn failed: {game}:2: the value has no closing ' on this line"
        )),
        "{reason}"
    );
    assert!(info.restarts >= 2, "{info:?}");
    assert!(!is_alive(pid) || is_zombie(pid));
    d.wait_log(&format!("w: restart failed: {game}:2:"));
    // The daemon serves on, and a fixed file lets the worker start again.
    fs::write(&game, "A=fixed\n").unwrap();
    let pid = d.start_worker("w", None, &[]);
    assert_eq!(env_var(pid, "A").as_deref(), Some("fixed"));
    // An operator restart is answered with the kind too; the worker is unregistered, as
    // for any restart that cannot spawn.
    fs::write(&game, "9=nine\n").unwrap();
    let error = d.request(&restart_req("w", None)).error.expect("refused");
    assert_eq!(error.kind, ErrorKind::InvalidEnvFile, "{error:?}");
    assert!(
        error.message.contains(&format!(
            "cannot restart w: {game}:1: \"9\" is not a variable name"
        )),
        "{error:?}"
    );
    d.assert_reaped(pid);
    d.wait_unregistered("w");
}

#[test]
fn start_env_from_the_cli_is_kept_in_the_state_file_and_restored() {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let config = config(&[], Some(&state));
    let mut d = Launch::new(&config).in_dir(dir.clone()).start();
    let out = d.cli(&["start", "w", "--env", "MAP=de_dust2", "--env", "EMPTY="]);
    assert_exit(&out, 0);
    let pid: i32 = stdout_of(&out).trim().parse().expect("a pid");
    assert_eq!(env_var(pid, "MAP").as_deref(), Some("de_dust2"));
    assert_eq!(env_var(pid, "EMPTY").as_deref(), Some(""));
    let (_, saved) = read_state(&state);
    assert_eq!(
        saved["w"]["env"],
        serde_json::json!({"EMPTY": "", "MAP": "de_dust2"}),
        "{saved:?}"
    );

    d.kill_hard();
    let d2 = d.start_another(&config);
    let pid = d2.wait_until(DEADLINE, "w to be restored", || d2.lookup("w"));
    assert_eq!(env_var(pid, "MAP").as_deref(), Some("de_dust2"));
}

#[test]
fn a_bad_env_key_is_a_usage_error_before_anything_is_sent() {
    // No daemon listens here: exit 2 (not 3) shows nothing was sent.
    let dir = TestDir::new();
    let socket = dir.join("none.sock");
    for (arg, says) in [("NOEQUALS", "expected KEY=VALUE"), ("=x", "name is empty")] {
        let out = run(
            cli_command(&socket).args(["start", "w", "--env", arg]),
            DEADLINE,
        );
        assert_exit(&out, 2);
        assert!(stderr_of(&out).contains(says), "{arg}: {}", stderr_of(&out));
    }
    // On the wire, the daemon checks them too.
    let d = TestDaemon::start(&config(&[], None));
    let line = r#"{"cmd":"start","name":"w","env":{"A=B":"x"}}"#;
    let reply = d.client().request(line);
    let error = reply.error.expect("refused");
    assert_eq!(error.kind, ErrorKind::BadRequest, "{error:?}");
    assert!(error.message.contains("\"A=B\""), "{error:?}");
}
