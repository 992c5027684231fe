//! Bad configs make the daemon refuse to start: exit status 2 and a message naming
//! the file, line and column. Also: the shipped config works.

mod common;
use common::*;
use std::rc::Rc;
use std::time::Duration;

/// Writes `text` to `file` in `dir` and runs the daemon on it; see [`run_daemon_with`].
fn run_daemon_on(dir: &Rc<TestDir>, file: &str, text: &str) -> (String, Option<i32>, String) {
    let path = dir.write(file, text);
    run_daemon_with(dir, &path.display().to_string())
}

/// Runs `dynsup daemon --config CONFIG --socket DIR/d.sock`, which should refuse to
/// start; returns (config path, exit code, stderr). A daemon that accepts the config
/// is reported when it has not exited after a while.
fn run_daemon_with(dir: &Rc<TestDir>, config: &str) -> (String, Option<i32>, String) {
    let mut d = Launch::config_path(config)
        .in_dir(dir.clone())
        .wait(WaitFor::Nothing)
        .start();
    let status = d.wait_exit(Duration::from_secs(10));
    (config.to_string(), status.code(), d.log())
}

/// Finds `PATH:LINE:COLUMN:` in the message.
fn try_position(stderr: &str, path: &str) -> Option<(usize, usize)> {
    let prefix = format!("{path}:");
    stderr.match_indices(&prefix).find_map(|(at, _)| {
        let mut parts = stderr[at + prefix.len()..].splitn(3, ':');
        let line = parts.next()?.parse().ok()?;
        let column = parts.next()?.parse().ok()?;
        parts.next()?;
        Some((line, column))
    })
}

#[track_caller]
fn position(stderr: &str, path: &str) -> (usize, usize) {
    try_position(stderr, path)
        .unwrap_or_else(|| panic!("stderr does not contain {path}:LINE:COLUMN:\n{stderr}"))
}

struct Case {
    what: &'static str,
    text: &'static str,
    /// The line the message must point at.
    line: usize,
    /// Acceptable columns (empty: any).
    columns: &'static [usize],
    /// Words the message must contain.
    mentions: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "unknown key in [supervisor]",
        text: "[supervisor]\nmax_restarts = 3\nbogus = 1\n",
        line: 3,
        columns: &[1],
        mentions: &["bogus"],
    },
    Case {
        what: "unknown key in a template",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n  colour = \"red\"\n",
        line: 3,
        columns: &[3],
        mentions: &["colour"],
    },
    Case {
        what: "unknown key in a child",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\nnmae = \"b\"\n",
        line: 6,
        columns: &[1],
        mentions: &["nmae"],
    },
    Case {
        what: "unknown top-level table",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n[supervisr]\nmax_restarts = 1\n",
        line: 3,
        columns: &[],
        mentions: &["supervisr"],
    },
    Case {
        what: "wrong type",
        text: "[supervisor]\nmax_restarts = \"three\"\n",
        line: 2,
        columns: &[1, 16],
        mentions: &[],
    },
    Case {
        what: "wrong type in a template",
        text: "[templates.worker]\ncommand = \"sleep 1\"\n",
        line: 2,
        columns: &[],
        mentions: &[],
    },
    Case {
        what: "duplicate child name",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\n\n[[children]]\nname = \"a\"\n",
        // The second `name = "a"`: its key or its value.
        line: 8,
        columns: &[1, 8],
        mentions: &["a"],
    },
    Case {
        what: "unknown template",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\ntemplate = \"nope\"\n",
        line: 6,
        columns: &[],
        mentions: &["nope"],
    },
    Case {
        what: "empty command",
        text: "[templates.worker]\ncommand = []\n",
        line: 2,
        columns: &[],
        mentions: &["command"],
    },
    Case {
        what: "invalid restart type",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nrestart = \"sometimes\"\n",
        line: 3,
        columns: &[],
        mentions: &["sometimes"],
    },
    Case {
        what: "invalid stop signal",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nstop_signal = \"SIGFOO\"\n",
        line: 3,
        columns: &[],
        mentions: &["SIGFOO"],
    },
    Case {
        what: "a child after a name that is no [[children]] entry",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"db\"\n\n[[children]]\nname = \"web\"\nafter = [\"db\", \"dbb\"]\n",
        line: 9,
        columns: &[16],
        mentions: &["child \"web\"", "\"dbb\"", "the [[children]] are: db, web"],
    },
    Case {
        what: "a template no child uses, after an unknown name",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[templates.spare]\ncommand = [\"sleep\", \"1\"]\nafter = [\"worker_1\", \"nope\"]\n\n[[children]]\nname = \"worker_1\"\ntemplate = \"worker\"\n",
        line: 6,
        columns: &[22],
        mentions: &["template \"spare\"", "\"nope\""],
    },
    Case {
        what: "a child after itself",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\nafter = [\"a\"]\n",
        line: 6,
        columns: &[10],
        mentions: &["child \"a\" is after itself"],
    },
    Case {
        what: "a cycle of three children",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\nafter = [\"b\"]\n\n[[children]]\nname = \"b\"\nafter = [\"c\"]\n\n[[children]]\nname = \"c\"\nafter = [\"a\"]\n",
        line: 14,
        columns: &[10],
        mentions: &["a -> b -> c -> a"],
    },
    Case {
        what: "a cycle closed by a template's after",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[templates.web]\ncommand = [\"sleep\", \"1\"]\nafter = [\"db\"]\n\n[[children]]\nname = \"db\"\ntemplate = \"worker\"\nafter = [\"web\"]\n\n[[children]]\nname = \"web\"\ntemplate = \"web\"\n",
        line: 6,
        columns: &[10],
        mentions: &["through its template \"web\"", "db -> web -> db"],
    },
    Case {
        what: "watchdog_ms out of range",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nwatchdog_ms = 0\n",
        line: 3,
        columns: &[15],
        mentions: &["watchdog_ms must be between 1 and 86400000"],
    },
    Case {
        what: "unknown key in a health table",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[templates.worker.health]\ncommand = [\"true\"]\nretries = 3\n",
        line: 6,
        columns: &[1],
        mentions: &["retries"],
    },
    Case {
        what: "a health table without a command",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nhealth = { interval_ms = 1000 }\n",
        line: 3,
        columns: &[10],
        mentions: &["health has no command"],
    },
    Case {
        what: "health failures out of range",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nhealth = { command = [\"true\"], failures = 0 }\n",
        line: 3,
        columns: &[43],
        mentions: &["health.failures must be between 1 and 1000"],
    },
    Case {
        what: "invalid restart_with",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\nrestart_with = \"everyone\"\n",
        line: 3,
        columns: &[16],
        mentions: &["everyone", "dependents"],
    },
    Case {
        what: "critical that is not a boolean",
        text: "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"a\"\ncritical = \"yes\"\n",
        line: 6,
        columns: &[12],
        mentions: &["boolean"],
    },
    Case {
        what: "TOML syntax error",
        text: "[supervisor]\nmax_restarts = 3\n[templates.worker\n",
        line: 3,
        columns: &[],
        mentions: &[],
    },
];

/// Each case above: exit status 2, the right line (and column), the words it names.
#[test]
fn bad_configs_are_refused_with_file_line_and_column() {
    let dir = Rc::new(TestDir::new());
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let (path, code, stderr) = run_daemon_on(&dir, &format!("c{i}.toml"), case.text);
        let mut problems = Vec::new();
        if code != Some(2) {
            problems.push(format!("exit code {code:?}, expected 2"));
        }
        match try_position(&stderr, &path) {
            Some((line, column)) => {
                if line != case.line {
                    problems.push(format!("line {line}, expected {}", case.line));
                }
                if !case.columns.is_empty() && !case.columns.contains(&column) {
                    problems.push(format!(
                        "column {column}, expected one of {:?}",
                        case.columns
                    ));
                }
            }
            None => problems.push("no PATH:LINE:COLUMN: in the message".to_string()),
        }
        for word in case.mentions {
            if !stderr.contains(word) {
                problems.push(format!("the message does not mention {word:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  config:\n{}\n  stderr:\n{}",
                case.what,
                problems.join("; "),
                indent(case.text),
                indent(&stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(
        !dir.join("d.sock").exists(),
        "a refused config left a socket behind"
    );
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

#[test]
fn unknown_key_position_is_exact() {
    let dir = Rc::new(TestDir::new());
    let text = "[supervisor]\nmax_restarts = 3\n\n[templates.worker]\ncommand = [\"sleep\", \"1\"]\n    shutdown_msec = 10\n";
    let (path, code, stderr) = run_daemon_on(&dir, "k.toml", text);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(position(&stderr, &path), (6, 5), "{stderr}");
    assert!(stderr.contains("shutdown_msec"), "{stderr}");
}

#[test]
fn duplicate_child_name_position_is_exact() {
    let dir = Rc::new(TestDir::new());
    let text = "[templates.worker]\ncommand = [\"sleep\", \"1\"]\n\n[[children]]\nname = \"w1\"\n\n[[children]]\nname = \"w2\"\n\n[[children]]\n  name = \"w1\"\n";
    let (path, code, stderr) = run_daemon_on(&dir, "dup.toml", text);
    assert_eq!(code, Some(2), "{stderr}");
    let (line, column) = position(&stderr, &path);
    assert_eq!(line, 11, "{stderr}");
    assert!(column == 3 || column == 10, "column {column}: {stderr}");
    assert!(stderr.contains("w1"), "{stderr}");
}

#[test]
fn missing_or_unreadable_config_file_is_refused() {
    let dir = Rc::new(TestDir::new());
    let missing = dir.join("does-not-exist.toml");
    let (path, code, stderr) = run_daemon_with(&dir, missing.to_str().unwrap());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&path),
        "the message does not name {path}: {stderr}"
    );

    // A directory is not a readable config file either.
    let (path, code, stderr) = run_daemon_with(&dir, dir.path().to_str().unwrap());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&path), "{stderr}");
}

#[test]
fn the_shipped_config_starts_worker_1() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/dynsup.toml");
    let text = std::fs::read_to_string(shipped)
        .unwrap_or_else(|e| panic!("cannot read the shipped config {shipped}: {e}"));
    // The shipped config may name a socket; the test's --socket overrides it.
    let d = TestDaemon::start(&text);
    let pid = d
        .lookup("worker_1")
        .expect("worker_1 is a boot child of the shipped config");
    assert_eq!(stat(pid).unwrap().ppid, d.pid());
    d.wait_started("worker_1", 1);
    d.request_ok(&cast_req("worker_1", "work"));
    d.wait_worker_line("worker_1", "hola", 1);
}
