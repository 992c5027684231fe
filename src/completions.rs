//! Shell completion scripts: clap_complete's, generated from the clap definitions, plus
//! worker names from the running daemon.
//!
//! Where a worker comes next on the command line (the NAME of `stop`, `kill`, `restart`,
//! `lookup`, `cast`, `logs`, `watch`; the PID of `whois`), each script asks the binary
//! itself: `dynsup __complete-names -- WORDS...` (the words typed so far, without the
//! program's name and the word being completed). Which slot takes a worker is decided
//! here, from the same clap definitions, so a command added later completes names with
//! no change to the scripts. The helper exits 1 when no worker comes next (the script
//! then falls back to clap's completion); otherwise it prints the daemon's names (or
//! pids) one a line and exits 0 — printing nothing when the daemon cannot be reached
//! or does not answer within [`DAEMON_TIMEOUT`]. It never prints to stderr.

use crate::cli::Cli;
use crate::exit_status::ExitStatus;
use crate::protocol::{Reply, Request};
use clap::{ArgAction, CommandFactory, ValueEnum};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The shells `dynsup completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The longest a completion waits for the daemon: a shell must never hang on Tab.
pub const DAEMON_TIMEOUT: Duration = Duration::from_millis(1000);

/// What the next word is, when it is a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A registered worker's name.
    Name,
    /// A running worker's pid (`whois`).
    Pid,
}

/// The subcommands whose `name` is a new worker's, not a registered one.
const NEW_NAME_COMMANDS: [&str; 1] = ["start"];

/// `dynsup completions SHELL`: the script, on stdout.
pub fn print_script(shell: Shell) -> ExitStatus {
    crate::out!("{}", script(shell));
    ExitStatus::Ok
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let (generator, extra) = match shell {
        Shell::Bash => (clap_complete::Shell::Bash, BASH_WORKERS),
        Shell::Zsh => (clap_complete::Shell::Zsh, ZSH_WORKERS),
        Shell::Fish => (clap_complete::Shell::Fish, FISH_WORKERS),
    };
    clap_complete::generate(generator, &mut cmd, "dynsup", &mut out);
    let generated = String::from_utf8_lossy(&out).into_owned();
    match shell {
        // Our function runs first and falls back to clap's `_dynsup`.
        Shell::Bash => {
            let generated = generated.replace("-F _dynsup ", "-F _dynsup_workers ");
            format!("{generated}\n{extra}")
        }
        // The file is also an autoloaded function (`#compdef dynsup`): ours must be
        // defined before the dispatch at its end, which must call ours.
        Shell::Zsh => {
            let dispatch = generated
                .rfind("if [ \"$funcstack[1]\" = \"_dynsup\" ]")
                .unwrap_or(generated.len());
            let (head, tail) = generated.split_at(dispatch);
            let tail = tail
                .replace("    _dynsup \"$@\"", "    _dynsup_workers \"$@\"")
                .replace("compdef _dynsup dynsup", "compdef _dynsup_workers dynsup");
            format!("{head}{extra}\n{tail}")
        }
        Shell::Fish => format!("{generated}\n{extra}"),
    }
}

const BASH_WORKERS: &str = r#"# Worker names (or pids) from the running daemon where one comes next; else clap's.
_dynsup_workers() {
    local line=${COMP_LINE:0:COMP_POINT} cur out
    local -a words
    read -ra words <<<"$line"
    if [[ -z $line || $line == *[[:space:]] ]]; then
        cur=""
    else
        cur=${words[${#words[@]}-1]}
        unset 'words[${#words[@]}-1]'
    fi
    if ! out=$("${words[0]}" __complete-names -- "${words[@]:1}" 2>/dev/null); then
        _dynsup "$@"
        return
    fi
    compopt +o default +o bashdefault 2>/dev/null
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
    # Names may hold ':', which splits words for bash: it replaces only what follows.
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local prefix=${cur%"${cur##*:}"}
        COMPREPLY=("${COMPREPLY[@]#"$prefix"}")
    fi
}
"#;

const ZSH_WORKERS: &str = r#"# Worker names (or pids) from the running daemon where one comes next; else clap's.
(( $+functions[_dynsup_workers] )) ||
_dynsup_workers() {
    local out
    if out=$(${words[1]} __complete-names -- ${words[2,CURRENT-1]} 2>/dev/null); then
        local -a workers
        workers=(${(f)out})
        compadd -a workers
    else
        _dynsup "$@"
    fi
}
"#;

const FISH_WORKERS: &str = r#"# Worker names (or pids) from the running daemon where one comes next.
function __dynsup_worker_slot
    set -l words (commandline -opc)
    $words[1] __complete-names --check -- $words[2..-1] 2>/dev/null
end
function __dynsup_workers
    set -l words (commandline -opc)
    $words[1] __complete-names -- $words[2..-1] 2>/dev/null
end
complete -c dynsup -n __dynsup_worker_slot -f -a '(__dynsup_workers)'
"#;

/// The helper's name: the first argument. It is not a clap subcommand, so that no
/// completion script, man page or `--help` lists it.
pub const HELPER: &str = "__complete-names";

/// `dynsup __complete-names [--check] -- WORDS...`, when `args` (the arguments after
/// the program's name) are that: its exit status. `None` for every other command line.
pub fn run_helper(mut args: impl Iterator<Item = OsString>) -> Option<ExitStatus> {
    if args.next()? != HELPER {
        return None;
    }
    let mut check = false;
    let mut words = Vec::new();
    let mut after_dashes = false;
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        match arg.as_str() {
            _ if after_dashes => words.push(arg),
            "--" => after_dashes = true,
            "--check" => check = true,
            _ => words.push(arg),
        }
    }
    Some(print_workers(
        &crate::paths::default_socket(),
        &words,
        check,
    ))
}

/// Exit 1 when no worker comes after `words`; else (unless `check`) print the workers
/// of the daemon at `socket` (or at the `--socket` among the words).
pub fn print_workers(socket: &Path, words: &[String], check: bool) -> ExitStatus {
    let Some(slot) = next_slot(words) else {
        return ExitStatus::Error;
    };
    if check {
        return ExitStatus::Ok;
    }
    let socket = socket_in(words).unwrap_or_else(|| socket.to_path_buf());
    if let Some(reply) = list_within(socket, DAEMON_TIMEOUT) {
        for worker in reply.workers.unwrap_or_default() {
            match slot {
                Slot::Name => crate::outln!("{}", worker.name),
                Slot::Pid => {
                    if let Some(pid) = worker.pid {
                        crate::outln!("{pid}");
                    }
                }
            }
        }
    }
    ExitStatus::Ok
}

/// The daemon's `list` reply, or nothing if it does not come within `timeout` (the
/// request runs on its own thread; a late one is abandoned when the process exits).
fn list_within(socket: PathBuf, timeout: Duration) -> Option<Reply> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(crate::client::exchange(&socket, &Request::list()));
    });
    receiver
        .recv_timeout(timeout)
        .ok()?
        .ok()
        .filter(|reply| reply.ok)
}

/// The value of a `--socket` among the words typed.
fn socket_in(words: &[String]) -> Option<PathBuf> {
    let mut words = words.iter().take_while(|w| *w != "--");
    while let Some(word) = words.next() {
        if word == "--socket" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.strip_prefix("--socket=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Whether a worker comes after `words` (the command line typed so far, without the
/// program's name), by clap's definitions: the subcommand is the first word that is
/// neither an option nor an option's value, and the positional slot that the next
/// word fills is a worker's `name`/`names` (`pid` for a pid).
pub fn next_slot(words: &[String]) -> Option<Slot> {
    let mut root = Cli::command();
    root.build();
    let mut sub: Option<&clap::Command> = None;
    let mut positionals = 0usize;
    let mut value_next = false;
    for word in words {
        if value_next {
            value_next = false;
            continue;
        }
        if word == "--" {
            // What follows is the `last` argument (`start -- CMD...`): never a worker.
            return None;
        }
        if word.starts_with('-') && word.len() > 1 {
            value_next = takes_value(sub.unwrap_or(&root), word);
            continue;
        }
        match sub {
            None => sub = Some(root.find_subcommand(word)?),
            Some(_) => positionals += 1,
        }
    }
    if value_next {
        return None;
    }
    let sub = sub?;
    if NEW_NAME_COMMANDS.contains(&sub.get_name()) {
        return None;
    }
    let arg = positional_at(sub, positionals)?;
    match arg.get_id().as_str() {
        "name" | "names" => Some(Slot::Name),
        "pid" => Some(Slot::Pid),
        _ => None,
    }
}

/// Whether the option `word` (`--long`, `--long=value`, `-s`) of `cmd` (its own or a
/// global one) takes its value from the next word.
fn takes_value(cmd: &clap::Command, word: &str) -> bool {
    let arg = if let Some(long) = word.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        cmd.get_arguments().find(|a| a.get_long() == Some(long))
    } else {
        let mut chars = word.chars().skip(1);
        match (chars.next(), chars.next()) {
            (Some(short), None) => cmd.get_arguments().find(|a| a.get_short() == Some(short)),
            _ => return false, // `-n20`: the value is attached
        }
    };
    arg.is_some_and(|a| a.get_action().takes_values())
}

/// The positional argument that the positional word number `index` (0-based) fills.
fn positional_at(cmd: &clap::Command, index: usize) -> Option<&clap::Arg> {
    let mut positionals: Vec<&clap::Arg> =
        cmd.get_positionals().filter(|a| !a.is_last_set()).collect();
    positionals.sort_by_key(|a| a.get_index());
    for (seen, arg) in positionals.into_iter().enumerate() {
        let many = matches!(arg.get_action(), ArgAction::Append)
            || arg
                .get_num_args()
                .is_some_and(|range| range.max_values() > 1);
        if many || index == seen {
            return Some(arg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(line: &str) -> Option<Slot> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        next_slot(&words)
    }

    #[test]
    fn a_registered_workers_name_is_completed_where_one_comes_next() {
        for line in [
            "stop",
            "kill",
            "kill --signal TERM",
            "restart --timeout 5",
            "lookup",
            "cast",
            "logs -n 5",
            "logs --follow",
            "watch a b",
            "--socket /x stop",
            "--socket=/x stop",
            "--json lookup",
        ] {
            assert_eq!(slot(line), Some(Slot::Name), "after `{line}`");
        }
        assert_eq!(slot("whois"), Some(Slot::Pid));
    }

    #[test]
    fn no_worker_is_completed_elsewhere() {
        for line in [
            "",
            "--socket",
            "sto",
            "start",
            "start api --template",
            "cast api",
            "lookup api",
            "kill --signal",
            "logs -n",
            "count",
            "daemon --config",
            "start api -- cmd",
            "completions",
        ] {
            assert_eq!(slot(line), None, "after `{line}`");
        }
    }

    #[test]
    fn the_socket_typed_on_the_line_is_used() {
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            socket_in(&words("--socket /a stop")),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(socket_in(&words("stop --socket=/b")), Some("/b".into()));
        assert_eq!(socket_in(&words("stop")), None);
    }
}
