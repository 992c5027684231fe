//! Shell completions and `list`'s colours, as a person meets them: the bash script that
//! `dynsup completions bash` prints, sourced into a real bash and driven through the
//! function `complete -p dynsup` names (COMP_LINE, COMP_WORDS, COMP_CWORD), completes
//! the names a real daemon has; with no daemon, or one that never answers, it completes
//! nothing and returns. The zsh and fish scripts are generated (and syntax-checked when
//! those shells are installed). `list` colours its STATE column only on a terminal
//! (a pty from `script`), and never with NO_COLOR, in a pipe, or with --json.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

/// The bash script, written into the daemon's directory.
fn bash_script(dir: &Path) -> std::path::PathBuf {
    let out = run(Command::new(bin()).args(["completions", "bash"]), DEADLINE);
    assert_exit(&out, 0);
    let path = dir.join("dynsup.bash");
    std::fs::write(&path, &out.stdout).expect("write the script");
    path
}

/// What bash completes for each of `lines` (the command line up to the cursor, after
/// the program's path): the candidates, one set per line. Each goes through the
/// function the script registered for `dynsup`, as bash's programmable completion
/// calls it.
fn bash_complete(script: &Path, lines: &[String]) -> Vec<BTreeSet<String>> {
    let dynsup = bin();
    let mut program = format!(
        r#"
source '{script}'
func=$(complete -p dynsup | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[[ -n $func ]] || {{ echo "no completion function for dynsup" >&2; exit 1; }}
complete_line() {{
    COMP_LINE="$1"
    COMP_POINT=${{#COMP_LINE}}
    read -ra COMP_WORDS <<<"$COMP_LINE"
    [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
    COMPREPLY=()
    local prev=""
    (( COMP_CWORD > 0 )) && prev=${{COMP_WORDS[COMP_CWORD-1]}}
    "$func" "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
    printf '%s\n' "${{COMPREPLY[@]}}"
    echo '--end--'
}}
"#,
        script = script.display()
    );
    for line in lines {
        program.push_str(&format!("complete_line '{} {line}'\n", dynsup.display()));
    }
    let out = run(
        Command::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(&program)
            .env_remove("DYNSUP_SOCKET"),
        DEADLINE,
    );
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    let sets: Vec<BTreeSet<String>> = stdout
        .split("--end--\n")
        .take(lines.len())
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(sets.len(), lines.len(), "bash printed: {stdout}");
    sets
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bash_completes_the_daemons_worker_names_where_a_worker_comes_next() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    let alpha = d.start_worker("alpha", Some("sleeper"), &[]);
    let beta = d.start_worker("beta", Some("sleeper"), &[]);
    d.start_worker("game:1", Some("sleeper"), &[]);
    let script = bash_script(d.dir().path());
    let sock = d.socket().display().to_string();
    let lines: Vec<String> = [
        "stop ",
        "stop al",
        "kill --signal TERM ",
        "lookup b",
        "restart --timeout 100 ",
        "logs -n 5 ",
        "cast ",
        "watch alpha ",
        "whois ",
        // `game:1`: bash splits the word at ':' and replaces only what follows it.
        "stop game:",
        // Not a worker: clap's own completion answers.
        "st",
        "cast alpha ",
        "start ",
    ]
    .iter()
    .map(|rest| format!("--socket {sock} {rest}"))
    .collect();
    let got = bash_complete(&script, &lines);
    let all = set(&["alpha", "beta", "game:1"]);
    assert_eq!(got[0], all, "stop");
    assert_eq!(got[1], set(&["alpha"]), "stop al");
    assert_eq!(got[2], all, "kill --signal TERM");
    assert_eq!(got[3], set(&["beta"]), "lookup b");
    assert_eq!(got[4], all, "restart --timeout 100");
    assert_eq!(got[5], all, "logs -n 5");
    assert_eq!(got[6], all, "cast");
    assert_eq!(got[7], all, "watch alpha");
    let pids: BTreeSet<String> = [alpha, beta, d.lookup("game:1").expect("game:1's pid")]
        .iter()
        .map(i32::to_string)
        .collect();
    assert_eq!(got[8], pids, "whois");
    assert_eq!(got[9], set(&["1"]), "stop game:");
    assert!(
        got[10].contains("start") && got[10].contains("stop") && !got[10].contains("alpha"),
        "`st` should complete subcommands: {:?}",
        got[10]
    );
    assert!(
        !got[11].contains("alpha"),
        "a cast's message is not a name: {:?}",
        got[11]
    );
    assert!(
        !got[12].contains("alpha"),
        "start takes a new name: {:?}",
        got[12]
    );
}

#[test]
fn with_no_daemon_bash_completes_no_name_and_returns() {
    let dir = TestDir::new();
    let script = bash_script(dir.path());
    let missing = dir.path().join("no-daemon.sock");
    let got = bash_complete(&script, &[format!("--socket {} stop ", missing.display())]);
    assert_eq!(got[0], BTreeSet::new());
}

#[test]
fn the_helper_is_quiet_and_bounded_when_the_daemon_is_missing_or_mute() {
    let dir = TestDir::new();
    // A socket that accepts connections (the kernel's backlog) but never answers.
    let mute = dir.path().join("mute.sock");
    let _listener = UnixListener::bind(&mute).expect("bind");
    let missing = dir.path().join("missing.sock");
    for socket in [&mute, &missing] {
        let out = run(
            Command::new(bin())
                .args(["__complete-names", "--", "--socket"])
                .arg(socket)
                .arg("stop"),
            DEADLINE,
        );
        assert_exit(&out, 0);
        assert_eq!(stdout_of(&out), "", "{}", socket.display());
        assert_eq!(stderr_of(&out), "", "{}", socket.display());
    }
    // Where no worker comes next it says so by its exit status alone.
    let out = run(
        Command::new(bin()).args(["__complete-names", "--", "start"]),
        DEADLINE,
    );
    assert_exit(&out, 1);
    assert_eq!(stdout_of(&out), "");
    assert_eq!(stderr_of(&out), "");
}

#[test]
fn zsh_and_fish_scripts_are_generated_with_the_name_helper() {
    let dir = TestDir::new();
    for (shell, marker, check) in [
        ("zsh", "#compdef dynsup", ["-n"].as_slice()),
        ("fish", "complete -c dynsup", ["--no-execute"].as_slice()),
    ] {
        let out = run(Command::new(bin()).args(["completions", shell]), DEADLINE);
        assert_exit(&out, 0);
        let script = stdout_of(&out);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        assert!(
            script.contains("__complete-names --"),
            "{shell}: the script does not ask for worker names"
        );
        assert!(
            !script.contains("'__complete-names:") && !script.contains("-a \"__complete-names\""),
            "{shell}: the helper is offered as a command"
        );
        let path = dir.path().join(format!("dynsup.{shell}"));
        std::fs::write(&path, &script).expect("write the script");
        if Command::new(shell).arg("-c").arg("true").output().is_err() {
            eprintln!("note: {shell} is not installed; its script's syntax is not checked");
            continue;
        }
        let out = run(Command::new(shell).args(check).arg(&path), DEADLINE);
        assert_exit(&out, 0);
    }
}

/// `dynsup list` against `d` with its stdout on a pty (`script` from util-linux), with
/// `env` added: what it printed.
fn list_on_a_terminal(d: &TestDaemon, env: &[(&str, &str)]) -> String {
    let line = format!(
        "'{}' --socket '{}' list",
        bin().display(),
        d.socket().display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd, DEADLINE);
    assert_exit(&out, 0);
    stdout_of(&out)
}

#[test]
fn list_is_coloured_on_a_terminal_only_and_never_with_no_color() {
    let d = TestDaemon::start(&[LENIENT_SUPERVISOR, SLEEPER].concat());
    d.start_worker("alpha", Some("sleeper"), &[]);
    const ESC: char = '\x1b';

    let tty = list_on_a_terminal(&d, &[]);
    assert!(
        tty.contains("\x1b[32mrunning"),
        "no green `running` on a terminal: {tty:?}"
    );
    // Padding stays outside the colour codes' width: the header and the row line up.
    let plain: String = tty.replace("\x1b[32m", "").replace("\x1b[0m", "");
    let header = plain.lines().next().expect("a header");
    let row = plain.lines().nth(1).expect("a row");
    assert_eq!(
        header.find("TEMPLATE"),
        row.find("sleeper"),
        "columns misaligned: {plain:?}"
    );

    let no_color = list_on_a_terminal(&d, &[("NO_COLOR", "1")]);
    assert!(!no_color.contains(ESC), "NO_COLOR=1: {no_color:?}");
    assert!(no_color.contains("running"));
    // An empty NO_COLOR does not count (no-color.org).
    let empty = list_on_a_terminal(&d, &[("NO_COLOR", "")]);
    assert!(empty.contains("\x1b[32mrunning"), "NO_COLOR='': {empty:?}");

    let piped = d.cli(&["list"]);
    assert_exit(&piped, 0);
    assert!(!stdout_of(&piped).contains(ESC), "{:?}", stdout_of(&piped));
    assert!(stdout_of(&piped).contains("running"));
    let json = d.cli(&["list", "--json"]);
    assert_exit(&json, 0);
    assert!(!stdout_of(&json).contains(ESC));
}
