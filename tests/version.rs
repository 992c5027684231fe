//! The `version` request, `dynsup --version`, and the CLI's `--config FILE` (its
//! `socket` is the CLI's; `--socket` wins).

mod common;
use common::*;
use dynsup::protocol::PROTOCOL_VERSION;
use std::process::{Command, Output};

/// The CLI without `--socket` (and without `DYNSUP_SOCKET`), in `dir`.
fn bare_cli(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DYNSUP_SOCKET")
        .env("XDG_RUNTIME_DIR", dir);
    run(&mut cmd, DEADLINE)
}

#[test]
fn the_version_request_says_the_daemons_version_protocol_pid_and_uptime() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    let reply = d.request(&Request::Version);
    assert!(reply.ok, "{reply:?}");
    let version = reply.version.expect("a version report");
    assert_eq!(version.daemon, env!("CARGO_PKG_VERSION"));
    assert_eq!(version.protocol, PROTOCOL_VERSION);
    assert_eq!(version.pid as i32, d.pid());
    let later = d.wait_until(DEADLINE, "the uptime to grow", || {
        let v = d.request(&Request::Version).version?;
        (v.uptime_ms > version.uptime_ms).then_some(v.uptime_ms)
    });
    assert!(later > version.uptime_ms);
}

#[test]
fn dash_dash_version_prints_both_or_only_the_clis_when_the_daemon_is_down() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    let out = d.cli(&["--version"]);
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    let cli = format!(
        "dynsup {} (protocol {PROTOCOL_VERSION})",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(lines[0], cli);
    assert!(
        lines[1].starts_with(&format!(
            "daemon {} (protocol {PROTOCOL_VERSION}), pid {}, up ",
            env!("CARGO_PKG_VERSION"),
            d.pid()
        )),
        "{stdout}"
    );
    let out = d.cli(&["-V", "--json"]);
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("one object");
    assert_eq!(json["cli"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["daemon"]["pid"], d.pid());

    // No daemon: the CLI's version, a note on stderr, exit 0.
    let dir = TestDir::new();
    let out = bare_cli(dir.path(), &["--version", "--socket", "no-daemon.sock"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), cli);
    assert!(stderr_of(&out).contains("no daemon"), "{out:?}");
    let out = bare_cli(dir.path(), &["--json", "--version"]);
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("one object");
    assert_eq!(json["daemon"], serde_json::Value::Null);
}

/// `--config FILE`: the CLI talks to the socket that file names, read by the daemon's
/// own loader (a bad file is exit 2 with its file:line:column); `--socket` wins.
#[test]
fn the_cli_uses_the_sockets_of_its_config_file() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    let pid = d.start_worker("w", Some("sleeper"), &[]);
    let dir = TestDir::new();
    let config = dir.path().join("cli.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\n{SLEEPER}",
        toml_str(d.socket().to_str().unwrap())
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let out = bare_cli(dir.path(), &["--config", config, "lookup", "w"]);
    assert_exit(&out, 0);
    assert_eq!(stdout_of(&out).trim(), pid.to_string());
    let out = bare_cli(dir.path(), &["lookup", "w", "--config", config]);
    assert_exit(&out, 0);

    // --socket wins over the config's.
    let out = bare_cli(
        dir.path(),
        &[
            "--config",
            config,
            "--socket",
            "elsewhere.sock",
            "lookup",
            "w",
        ],
    );
    assert_exit(&out, 3);
    assert!(stderr_of(&out).contains("elsewhere.sock"), "{out:?}");

    // A bad config: its file:line:column, exit 2, no request sent.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[supervisor]\nsocket = 7\n").unwrap();
    let out = bare_cli(dir.path(), &["--config", bad.to_str().unwrap(), "count"]);
    assert_exit(&out, 2);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("bad.toml:2:10"), "{stderr}");
}
