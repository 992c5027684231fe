//! `dynsup check-config [FILE]`: the daemon's own loading of real files, a summary on
//! stdout and exit 0 for a valid one, the daemon's own error line (file:line:column) and
//! exit 2 for an invalid or missing one; nothing started, no socket, no state file.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `dynsup check-config ARGS...`, without `DYNSUP_SOCKET` or `XDG_RUNTIME_DIR` from the
/// test's environment.
fn check_config(args: &[&str]) -> Output {
    run(
        Command::new(bin())
            .arg("check-config")
            .args(args)
            .env_remove("DYNSUP_SOCKET")
            .env_remove("XDG_RUNTIME_DIR"),
        DEADLINE,
    )
}

#[test]
fn a_valid_file_is_summarised_and_nothing_is_started_or_touched() {
    let dir = TestDir::new();
    let socket = dir.join("d.sock");
    let state = dir.join("state.json");
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let env = dir.write("game.env", "A=1\n");
    let missing = dir.join("missing.env");
    let config = format!(
        r#"
[supervisor]
socket = {socket}
state_file = {state}
log_dir = {logs}
max_children = 50

[templates.db]
command = ["sleep", "100000"]
restart = "permanent"
ready = "notify"
watchdog_ms = 5000
restart_with = "dependents"

[templates.web]
command = ["sleep", "100000"]
after = ["db"]
health = {{ command = ["true"], interval_ms = 2000 }}
env_file = [{env}, {optional}, {missing}]
max_restarts = 4
max_seconds = 60
on_limit = "give_up"
critical = true

[[children]]
name = "db"
template = "db"

[[children]]
name = "web_1"
template = "web"
args = ["--port", "8080"]
critical = true
"#,
        socket = toml_str(socket.to_str().unwrap()),
        state = toml_str(state.to_str().unwrap()),
        logs = toml_str(logs.to_str().unwrap()),
        env = toml_str(env.to_str().unwrap()),
        optional = toml_str(&format!("-{}", dir.join("absent.env").display())),
        missing = toml_str(missing.to_str().unwrap()),
    );
    let file = dir.write("dynsup.toml", &config);
    let out = check_config(&[file.to_str().unwrap()]);
    assert_exit(&out, 0);
    let summary = stdout_of(&out);
    for expected in [
        format!("{}: valid", file.display()),
        format!("socket         {} ([supervisor] socket), mode 0600", socket.display()),
        "intensity      3 restarts in 5 s; max_children 50".to_string(),
        format!("state file     {}", state.display()),
        "cgroups        off".to_string(),
        format!("log files      {}", logs.display()),
        "health checks  templates web".to_string(),
        "watchdogs      templates db".to_string(),
        "critical       templates web; children web_1".to_string(),
        "templates (2):".to_string(),
        "  db               permanent  sleep 100000 [ready notify within 30000 ms; watchdog 5000 ms]".to_string(),
        "boot children (2):".to_string(),
        "  web_1            web [args --port 8080; critical]".to_string(),
        format!("warning: template \"web\": a start would fail now: env_file {}: no such file", missing.display()),
    ] {
        assert!(summary.contains(&expected), "no {expected:?} in:\n{summary}");
    }
    let web = summary
        .lines()
        .find(|l| l.starts_with("  web "))
        .unwrap_or_else(|| panic!("no web line in:\n{summary}"));
    assert!(
        web.contains("transient  sleep 100000 [health every 2000 ms; critical; limit 4 in 60 s, then give_up; after db; env_file "),
        "{web}"
    );
    assert_eq!(summary.matches("warning:").count(), 1, "{summary}");
    assert!(
        summary.lines().count() <= 24,
        "more than a screen:\n{summary}"
    );
    // Nothing was created: no socket, no state file, no log file.
    assert!(!socket.exists() && !state.exists());
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 0);
    // --socket is what a daemon given it would use.
    let out = run(
        Command::new(bin())
            .args(["--socket", "/run/elsewhere.sock", "check-config"])
            .arg(&file),
        DEADLINE,
    );
    assert!(
        stdout_of(&out).contains("socket         /run/elsewhere.sock (--socket)"),
        "{}",
        stdout_of(&out)
    );
}

/// Runs the daemon on `file`, which it must refuse; returns its error line.
fn daemon_refusal(dir: &std::rc::Rc<TestDir>, file: &Path) -> String {
    let mut d = Launch::config_path(file.to_str().unwrap())
        .in_dir(dir.clone())
        .wait(WaitFor::Nothing)
        .start();
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", d.log());
    d.log()
        .lines()
        .find(|l| l.starts_with("dynsup: invalid configuration: "))
        .unwrap_or_else(|| panic!("no error line in:\n{}", d.log()))
        .to_string()
}

#[test]
fn an_invalid_file_gets_the_daemons_own_error_with_file_line_and_column() {
    let dir = std::rc::Rc::new(TestDir::new());
    let cases = [
        (
            "unknown_key.toml",
            "[templates.w]\ncommand = [\"x\"]\nrestrat = \"permanent\"\n",
            ":3:1: ",
        ),
        (
            "env_file.toml",
            "[templates.w]\ncommand = [\"x\"]\nenv_file = [\"relative.env\"]\n",
            ":3:13: template \"w\": env_file \"relative.env\" must be an absolute path",
        ),
        (
            "dot_name.toml",
            "[templates.w]\ncommand = [\"x\"]\n[[children]]\nname = \"..\"\n",
            ":4:8: worker name \"..\" must not start with a dot",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.write(name, text);
        let out = check_config(&[file.to_str().unwrap()]);
        assert_exit(&out, 2);
        assert_eq!(stdout_of(&out), "", "{name}");
        let stderr = stderr_of(&out);
        let line = format!(
            "dynsup: invalid configuration: {}{expected}",
            file.display()
        );
        assert!(stderr.starts_with(&line), "{name}: {stderr}");
        // Word for word what the daemon says about the same file.
        assert_eq!(stderr.trim_end(), daemon_refusal(&dir, &file), "{name}");
    }
}

#[test]
fn a_missing_file_is_an_error_and_no_file_checks_the_built_in_config() {
    let out = check_config(&["/nonexistent/dynsup.toml"]);
    assert_exit(&out, 2);
    assert_eq!(
        stderr_of(&out).trim_end(),
        "dynsup: invalid configuration: /nonexistent/dynsup.toml: cannot read the config file: No such file or directory (os error 2)"
    );
    let out = check_config(&[]);
    assert_exit(&out, 0);
    let summary = stdout_of(&out);
    assert!(
        summary.starts_with(
            "<built-in>: valid (no FILE: what `dynsup daemon` runs without --config)\n"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("  worker           transient  dynsup-worker [env 1]"),
        "{summary}"
    );
    assert!(summary.contains("boot children (0):"), "{summary}");
}

#[test]
fn an_empty_file_is_valid_with_the_defaults_and_says_it_has_no_templates() {
    let dir = TestDir::new();
    let file = dir.write("empty.toml", "# nothing yet\n");
    let out = check_config(&[file.to_str().unwrap()]);
    assert_exit(&out, 0);
    let summary = stdout_of(&out);
    assert!(summary.contains("templates (0):"), "{summary}");
    assert!(
        summary.contains("warning: no templates: a daemon on this config can start nothing"),
        "{summary}"
    );
}
