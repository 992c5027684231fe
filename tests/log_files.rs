//! Workers' log files: `LOG_DIR/NAME.log`, rotated by the daemon within
//! `log_max_bytes` and `log_keep`; `reopen_logs` after an external rename; an unusable
//! `log_dir` is a config error at start, and a warning (never a crash) when it breaks
//! later.

mod common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// A test directory with a `logs` directory in it.
fn dir_with_logs() -> (Rc<TestDir>, PathBuf) {
    let dir = Rc::new(TestDir::new());
    let logs = dir.join("logs");
    fs::create_dir(&logs).expect("mkdir logs");
    (dir, logs)
}

fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until the file at `path` contains `needle`.
#[track_caller]
fn wait_file_has(d: &TestDaemon, path: &Path, needle: &str) {
    d.wait_until(
        DEADLINE,
        &format!("`{needle}` in {}", path.display()),
        || read(path).contains(needle).then_some(()),
    )
}

#[test]
fn files_rotate_within_log_max_bytes_and_log_keep() {
    let (dir, logs) = dir_with_logs();
    let config = format!(
        r#"{LENIENT_SUPERVISOR}log_dir = {}
log_max_bytes = 4096
log_keep = 2

[templates.chatty]
command = ["sh", "-c"]
restart = "temporary"
"#,
        toml_str(logs.to_str().expect("utf-8"))
    );
    let d = Launch::new(&config).in_dir(dir).start();
    let script =
        "i=1; while [ $i -le 1000 ]; do echo \"line $i\"; i=$((i+1)); done; exec sleep 100000";
    let pid = d.start_worker("w", Some("chatty"), &[script]);
    let current = logs.join("w.log");
    wait_file_has(&d, &current, " line 1000\n");
    let mut names: Vec<String> = fs::read_dir(&logs)
        .expect("read logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["w.log", "w.log.1", "w.log.2"], "log_keep = 2");
    let mut text = String::new();
    for name in ["w.log.2", "w.log.1", "w.log"] {
        let file = read(&logs.join(name));
        assert!(file.len() <= 4096, "{name} has {} bytes", file.len());
        assert!(file.ends_with('\n'), "{name} ends with a whole line");
        text.push_str(&file);
    }
    // The three files hold the last lines, in order, each as `TIME PID output LINE`.
    let lines: Vec<&str> = text.lines().collect();
    let first: usize = lines[0]
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a line number");
    assert!(first > 1, "older lines were rotated away");
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(fields[0].ends_with('Z') && fields[0].len() == 24, "{line}");
        assert_eq!(fields[1], pid.to_string(), "{line}");
        assert_eq!(fields[2], "output", "{line}");
        assert_eq!(fields[3], format!("line {}", first + i), "{line}");
    }
    assert_eq!(first + lines.len() - 1, 1000);
}

#[test]
fn reopen_logs_after_an_external_rename_writes_a_new_file() {
    let (dir, logs) = dir_with_logs();
    let config = format!(
        "{LENIENT_SUPERVISOR}log_dir = {}\n{SAMPLE_WORKER}",
        toml_str(logs.to_str().expect("utf-8"))
    );
    let d = Launch::new(&config).in_dir(dir).start();
    d.start_worker("w", Some("worker"), &[]);
    let current = logs.join("w.log");
    wait_file_has(&d, &current, "Starting \"w\"");
    // logrotate's way: rename, then tell the daemon.
    let moved = logs.join("w.log-20261201");
    fs::rename(&current, &moved).expect("rename");
    d.request_ok(&cast_req("w", "work"));
    wait_file_has(&d, &moved, "hola");
    assert!(!current.exists(), "the open file is the renamed one");
    let out = d.cli(&["reopen-logs"]);
    assert_exit(&out, 0);
    d.request_ok(&cast_req("w", "work"));
    wait_file_has(&d, &current, "hola");
    assert_eq!(read(&moved).matches("hola").count(), 1);
}

#[test]
fn a_template_can_turn_files_off_or_write_elsewhere() {
    let (dir, logs) = dir_with_logs();
    let own = dir.join("own");
    fs::create_dir(&own).expect("mkdir own");
    let config = format!(
        r#"{LENIENT_SUPERVISOR}log_dir = {}

[templates.quiet]
command = ["dynsup-worker"]
log_dir = false

[templates.elsewhere]
command = ["dynsup-worker"]
log_dir = {}
"#,
        toml_str(logs.to_str().expect("utf-8")),
        toml_str(own.to_str().expect("utf-8"))
    );
    let d = Launch::new(&config).in_dir(dir).start();
    d.start_worker("q", Some("quiet"), &[]);
    d.wait_started("q", 1);
    // Queued to the file writer after anything of q's would have been.
    d.start_worker("e", Some("elsewhere"), &[]);
    wait_file_has(&d, &own.join("e.log"), "Starting \"e\"");
    assert!(!logs.join("q.log").exists() && !logs.join("e.log").exists());
    assert!(!own.join("q.log").exists());
}

#[test]
fn an_unusable_log_dir_is_a_config_error_with_its_position() {
    let dir = Rc::new(TestDir::new());
    let file = dir.write("not-a-dir", "");
    let cases = [
        (
            format!(
                "[supervisor]\nlog_dir = {}\n",
                toml_str("/nonexistent/dynsup-logs")
            ),
            (2, 11),
            "log_dir: the daemon cannot write log files in /nonexistent/dynsup-logs",
        ),
        (
            format!(
                "[templates.w]\ncommand = [\"x\"]\nlog_dir = {}\n",
                toml_str(file.to_str().expect("utf-8"))
            ),
            (3, 11),
            "not a directory",
        ),
        (
            "[templates.w]\ncommand = [\"x\"]\nlog_dir = 3\n".to_string(),
            (3, 11),
            "expected a directory (a string) or false",
        ),
        (
            "[templates.w]\ncommand = [\"x\"]\nlog_rate_limit = { lines = 0, per_ms = 10 }\n"
                .to_string(),
            (3, 18),
            "log_rate_limit must be \"off\" or { lines = N, per_ms = M }",
        ),
        (
            "[supervisor]\nlog_max_bytes = 10\n".to_string(),
            (2, 17),
            "log_max_bytes must be at least 1024",
        ),
    ];
    for (text, (line, column), message) in cases {
        let mut d = Launch::new(&text)
            .in_dir(dir.clone())
            .wait(WaitFor::Nothing)
            .start();
        let status = d.wait_exit(Duration::from_secs(10));
        let log = d.log();
        assert_eq!(status.code(), Some(2), "{text}: {log}");
        let at = format!(".toml:{line}:{column}: ");
        assert!(log.contains(&at), "{text}: expected {at} in {log}");
        assert!(
            log.contains(message),
            "{text}: expected {message:?} in {log}"
        );
    }
    // A read-only file system, where the machine lets the test mount one.
    let mount_at = dir.join("ro");
    let Ok(tmpfs) = SmallTmpfs::mount(&mount_at, 64) else {
        return;
    };
    tmpfs.set_read_only(true);
    let text = format!(
        "[supervisor]\nlog_dir = {}\n",
        toml_str(mount_at.to_str().expect("utf-8"))
    );
    let mut d = Launch::new(&text)
        .in_dir(dir.clone())
        .wait(WaitFor::Nothing)
        .start();
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(d.log().contains("Read-only file system"), "{}", d.log());
}

#[test]
fn a_log_dir_that_breaks_later_gives_a_warning_and_the_daemon_goes_on() {
    let (dir, logs) = dir_with_logs();
    let config = format!(
        "{LENIENT_SUPERVISOR}log_dir = {}\n{SAMPLE_WORKER}",
        toml_str(logs.to_str().expect("utf-8"))
    );
    let d = Launch::new(&config).in_dir(dir).start();
    let pid = d.start_worker("w", Some("worker"), &[]);
    let current = logs.join("w.log");
    wait_file_has(&d, &current, "Starting \"w\"");
    fs::remove_dir_all(&logs).expect("remove the log directory");
    d.request_ok(&Request::ReopenLogs);
    d.request_ok(&cast_req("w", "work"));
    d.wait_log("w: cannot open");
    d.wait_log("its lines are not written to a file until this works again");
    // The daemon answers, the worker runs, its line is kept in memory.
    assert_eq!(d.lookup("w"), Some(pid));
    d.wait_kept_line("w", 1, "info: hola");
    // Back: the next line opens the file again.
    fs::create_dir(&logs).expect("mkdir logs again");
    d.request_ok(&cast_req("w", "work"));
    wait_file_has(&d, &current, "hola");
    d.wait_log("is written again");
}

#[test]
fn a_full_disk_gives_a_warning_and_the_daemon_goes_on() {
    let dir = Rc::new(TestDir::new());
    let mount_at = dir.join("small");
    let tmpfs = match SmallTmpfs::mount(&mount_at, 64) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let config = format!(
        r#"{LENIENT_SUPERVISOR}log_dir = {}
log_max_bytes = 1048576

[templates.chatty]
command = ["sh", "-c", "yes 0123456789012345678901234567890123456789 | head -n 3000; exec sleep 100000"]
restart = "permanent"
"#,
        toml_str(tmpfs.path().to_str().expect("utf-8"))
    );
    let d = Launch::new(&config).in_dir(dir).start();
    let pid = d.start_worker("w", Some("chatty"), &[]);
    d.wait_log("w: cannot write");
    assert_eq!(d.lookup("w"), Some(pid));
    assert_eq!(d.count(), 1);
}
