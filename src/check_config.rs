//! `dynsup check-config [FILE]` (like `nginx -t`): load a config exactly as the daemon
//! does ([`config::load_or_builtin`], the same messages with file:line:column), and print
//! a one-screen summary of what a daemon would run with it. Nothing is started, no
//! socket is touched, the state file is neither read nor written.
//!
//! The one thing it reads beyond the config: each template's `env_file`s, which the
//! daemon reads only at each start; any that would fail a start is printed as a warning
//! (the config itself is still valid: exit 0).

use crate::config::{self, Config};
use crate::core::Template;
use crate::exit_status::ExitStatus;
use crate::os::env_file;
use std::fmt::Write as _;
use std::path::Path;

/// Check `file` (none: the built-in config the daemon uses without `--config`), with
/// the `--socket` the daemon would be given, if any. Prints the summary on stdout (exit
/// 0) or the daemon's own error line on stderr (exit 2).
pub fn run(file: Option<&Path>, socket: Option<&Path>) -> ExitStatus {
    match config::load_or_builtin(file) {
        Ok(config) => {
            crate::out!("{}", summary(&config, file.is_some(), socket));
            ExitStatus::Ok
        }
        Err(err) => {
            eprintln!("dynsup: invalid configuration: {err}");
            ExitStatus::Usage
        }
    }
}

/// The summary of a valid config, as printed (ends with a newline).
/// `file_given`: false for the built-in config.
pub fn summary(config: &Config, file_given: bool, socket: Option<&Path>) -> String {
    let mut out = String::new();
    let mut warnings = Vec::new();
    match file_given {
        true => {
            let _ = writeln!(out, "{}: valid", config.source);
        }
        false => {
            let _ = writeln!(
                out,
                "{}: valid (no FILE: what `dynsup daemon` runs without --config)",
                config.source
            );
        }
    }
    let socket = match (socket, &config.socket) {
        (Some(path), _) => format!("{} (--socket)", path.display()),
        (None, Some(path)) => format!("{} ([supervisor] socket)", path.display()),
        (None, None) => format!(
            "{} (default: $DYNSUP_SOCKET, else $XDG_RUNTIME_DIR, else /tmp)",
            crate::paths::daemon_default_socket().display()
        ),
    };
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<15}{value}");
    };
    line(
        "socket",
        format!("{socket}, mode {:04o}", config.socket_mode),
    );
    line(
        "intensity",
        format!(
            "{} restarts in {} s; max_children {}",
            config.max_restarts,
            config.max_seconds,
            config
                .max_children
                .map_or("unlimited".to_string(), |n| n.to_string())
        ),
    );
    line(
        "state file",
        config
            .state_file
            .as_ref()
            .map_or("off".to_string(), |p| p.display().to_string()),
    );
    line(
        "cgroups",
        match (config.cgroup, &config.cgroup_root) {
            (false, _) => "off".to_string(),
            (true, Some(root)) => format!("on, under {}", root.display()),
            (true, None) => "on, under the daemon's own cgroup".to_string(),
        },
    );
    let mut log_dirs: Vec<String> = config
        .logs
        .templates
        .values()
        .filter_map(|t| t.file.as_ref().map(|f| f.dir.display().to_string()))
        .collect();
    log_dirs.sort();
    log_dirs.dedup();
    line(
        "log files",
        match log_dirs.is_empty() {
            true => "off".to_string(),
            false => log_dirs.join(", "),
        },
    );
    let with = |pick: &dyn Fn(&Template) -> bool| -> String {
        let names: Vec<&str> = config
            .templates
            .values()
            .filter(|t| pick(t))
            .map(|t| t.name.as_str())
            .collect();
        match names.is_empty() {
            true => "none".to_string(),
            false => format!("templates {}", names.join(", ")),
        }
    };
    line(
        "metrics",
        match &config.metrics_listen {
            Some(listen) => format!("served at {listen}"),
            None => "`dynsup metrics` only (no metrics_listen)".to_string(),
        },
    );
    line("health checks", with(&|t| t.health.is_some()));
    line("watchdogs", with(&|t| t.watchdog_ms.is_some()));
    let critical_children: Vec<&str> = config
        .children
        .iter()
        .filter(|c| c.critical)
        .map(|c| c.name.as_str())
        .collect();
    line(
        "critical",
        match (with(&|t| t.critical).as_str(), critical_children.is_empty()) {
            ("none", true) => "none".to_string(),
            ("none", false) => format!("children {}", critical_children.join(", ")),
            (templates, true) => templates.to_string(),
            (templates, false) => {
                format!("{templates}; children {}", critical_children.join(", "))
            }
        },
    );
    let _ = writeln!(out, "templates ({}):", config.templates.len());
    for template in config.templates.values() {
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {}{}",
            template.name,
            template.restart.as_str(),
            shorten(&template.command.join(" "), 40),
            options(template)
        );
        for file in &template.env_files {
            if let Err(why) = env_file::read_all(std::slice::from_ref(file)) {
                warnings.push(format!(
                    "template {:?}: a start would fail now: {why}",
                    template.name
                ));
            }
        }
    }
    if config.templates.is_empty() {
        warnings.push(
            "no templates: a daemon on this config can start nothing until a reload adds one (an empty file is valid: every setting at its default)"
                .to_string(),
        );
    }
    let _ = writeln!(out, "boot children ({}):", config.children.len());
    const SHOWN: usize = 20;
    for child in config.children.iter().take(SHOWN) {
        let mut notes = Vec::new();
        if !child.args.is_empty() {
            notes.push(format!("args {}", shorten(&child.args.join(" "), 30)));
        }
        if !child.after.is_empty() {
            notes.push(format!("after {}", child.after.join(", ")));
        }
        if child.critical {
            notes.push("critical".to_string());
        }
        let notes = match notes.is_empty() {
            true => String::new(),
            false => format!(" [{}]", notes.join("; ")),
        };
        let _ = writeln!(out, "  {:<16} {}{notes}", child.name, child.template);
    }
    if config.children.len() > SHOWN {
        let _ = writeln!(out, "  ... and {} more", config.children.len() - SHOWN);
    }
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// A template's settings that differ from the defaults, as ` [a; b]`.
fn options(t: &Template) -> String {
    let mut notes = Vec::new();
    if t.ready == crate::core::Readiness::Notify {
        notes.push(format!("ready notify within {} ms", t.ready_timeout_ms));
    }
    if let Some(ms) = t.watchdog_ms {
        notes.push(format!("watchdog {ms} ms"));
    }
    if let Some(h) = &t.health {
        notes.push(format!("health every {} ms", h.interval_ms));
    }
    if t.critical {
        notes.push("critical".to_string());
    }
    if let Some(limit) = &t.limit {
        let restarts = limit
            .max_restarts
            .map_or("infinity".to_string(), |n| n.to_string());
        let on_limit = match t.on_limit {
            crate::core::OnLimit::Escalate => "escalate",
            crate::core::OnLimit::GiveUp => "give_up",
        };
        notes.push(format!(
            "limit {restarts} in {} s, then {on_limit}",
            limit.max_seconds
        ));
    }
    if t.backoff.initial_ms > 0 {
        notes.push(format!(
            "backoff {}..{} ms",
            t.backoff.initial_ms, t.backoff.max_ms
        ));
    }
    if !t.after.is_empty() {
        notes.push(format!("after {}", t.after.join(", ")));
    }
    if let Some(creds) = &t.credentials {
        notes.push(match &creds.user_name {
            Some(user) => format!("user {user}"),
            None => format!("group {}", creds.gid),
        });
    }
    if !t.env.is_empty() {
        notes.push(format!("env {}", t.env.len()));
    }
    if !t.env_files.is_empty() {
        let files: Vec<String> = t
            .env_files
            .iter()
            .map(|f| format!("{}{}", if f.optional { "-" } else { "" }, f.path))
            .collect();
        notes.push(format!("env_file {}", files.join(", ")));
    }
    match notes.is_empty() {
        true => String::new(),
        false => format!(" [{}]", notes.join("; ")),
    }
}

/// `text`, cut to `max` characters with `...` when longer.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
