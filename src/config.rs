//! The config file: TOML in, a validated [`Config`] out, or an error that names the
//! file, line and column of what is wrong.
//!
//! Two stages: serde reads the raw shape (`deny_unknown_fields`, so a typo is an error,
//! not a silently ignored key), keeping the source span of every value that a later
//! check may need to point at; then [`validate`] checks what serde cannot (empty
//! commands, unknown templates, duplicate child names, signal names, names' syntax).
//! `docs/CONFIG.md` documents every key; a test checks it names each one.

use crate::core::{RestartType, Template};
use crate::protocol::validate_name;
use crate::signal::Signal;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use toml::Spanned;

/// The built-in configuration used when the daemon gets no `--config`: the shipped
/// config's `worker` template, and no boot children.
pub const BUILTIN: &str = r#"
[templates.worker]
command = ["dynsup-worker"]
restart = "transient"
shutdown_ms = 5000
stop_signal = "SIGTERM"
clean_signals = ["SIGTERM"]
env = { RUST_LOG = "info" }
"#;

/// Every key the config accepts, as `section.key`; `docs/CONFIG.md` must name each.
pub const KEYS: &[&str] = &[
    "supervisor.socket",
    "supervisor.max_restarts",
    "supervisor.max_seconds",
    "templates.NAME.command",
    "templates.NAME.restart",
    "templates.NAME.shutdown_ms",
    "templates.NAME.stop_signal",
    "templates.NAME.clean_signals",
    "templates.NAME.env",
    "templates.NAME.cwd",
    "children.name",
    "children.template",
    "children.args",
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a path, or `<built-in>`.
    pub source: String,
    pub socket: Option<PathBuf>,
    pub max_restarts: u32,
    pub max_seconds: u64,
    pub templates: BTreeMap<String, Rc<Template>>,
    pub children: Vec<BootChild>,
}

/// A `[[children]]` entry: started at boot, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChild {
    pub name: String,
    /// Always resolved: the named template, or the only one.
    pub template: String,
    pub args: Vec<String>,
}

/// A config that cannot be used. Displays as `file:line:column: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; absent when the file could not be read at all.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    supervisor: RawSupervisor,
    #[serde(default)]
    templates: BTreeMap<String, RawTemplate>,
    #[serde(default)]
    children: Vec<RawChild>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    socket: Option<Spanned<String>>,
    max_restarts: Option<u32>,
    max_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    command: Spanned<Vec<String>>,
    restart: Option<RestartType>,
    shutdown_ms: Option<u64>,
    stop_signal: Option<Spanned<String>>,
    clean_signals: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    cwd: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    name: Spanned<String>,
    template: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
}

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: file.clone(),
        position: None,
        message: format!("cannot read the config file: {err}"),
    })?;
    parse(&text, &file)
}

/// The built-in configuration.
pub fn builtin() -> Config {
    parse(BUILTIN, "<built-in>").expect("the built-in config is valid")
}

/// Parse and validate config text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let at = |span: Option<Range<usize>>, message: String| ConfigError {
        file: file.to_string(),
        position: span.map(|s| line_column(text, s.start)),
        message,
    };
    let raw: RawConfig = toml::from_str(text)
        .map_err(|err| at(err.span(), err.message().trim_end().replace('\n', "; ")))?;
    validate(raw, file, text).map_err(|(span, message)| at(Some(span), message))
}

type Invalid = (Range<usize>, String);

fn validate(raw: RawConfig, file: &str, text: &str) -> Result<Config, Invalid> {
    let max_seconds = match raw.supervisor.max_seconds {
        Some(s) if *s.get_ref() == 0 => {
            return Err((s.span(), "max_seconds must be at least 1".to_string()))
        }
        Some(s) => s.into_inner(),
        None => 5,
    };
    let mut templates = BTreeMap::new();
    for (name, raw_template) in raw.templates {
        let template = validate_template(name.clone(), raw_template)?;
        templates.insert(name, Rc::new(template));
    }
    let mut children = Vec::with_capacity(raw.children.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for child in raw.children {
        let name_span = child.name.span();
        let name = child.name.into_inner();
        validate_name(&name).map_err(|msg| (name_span.clone(), msg))?;
        if let Some(first_line) = seen.get(&name) {
            return Err((
                name_span,
                format!("duplicate child name {name:?} (first defined on line {first_line})"),
            ));
        }
        seen.insert(name.clone(), line_column(text, name_span.start).0);
        let template = match child.template {
            Some(t) => {
                if !templates.contains_key(t.get_ref()) {
                    return Err((
                        t.span(),
                        format!(
                            "unknown template {:?} (defined: {})",
                            t.get_ref(),
                            names_of(&templates)
                        ),
                    ));
                }
                t.into_inner()
            }
            None if templates.len() == 1 => templates.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err((
                    name_span,
                    format!(
                        "child {name:?} names no template, and the config defines {} ({}); add template = \"...\"",
                        templates.len(),
                        names_of(&templates)
                    ),
                ))
            }
        };
        children.push(BootChild {
            name,
            template,
            args: child.args,
        });
    }
    let socket = raw.supervisor.socket.map(|s| PathBuf::from(s.into_inner()));
    Ok(Config {
        source: file.to_string(),
        socket,
        max_restarts: raw.supervisor.max_restarts.unwrap_or(3),
        max_seconds,
        templates,
        children,
    })
}

fn validate_template(name: String, raw: RawTemplate) -> Result<Template, Invalid> {
    let command_span = raw.command.span();
    let command = raw.command.into_inner();
    if command.is_empty() || command[0].is_empty() {
        return Err((
            command_span,
            format!("template {name:?}: command is empty; it needs at least a program"),
        ));
    }
    if let Some(bad) = command.iter().find(|a| a.contains('\0')) {
        return Err((
            command_span,
            format!("template {name:?}: command argument {bad:?} contains a NUL byte"),
        ));
    }
    let signal = |s: &Spanned<String>| Signal::parse(s.get_ref()).map_err(|msg| (s.span(), msg));
    let stop_signal = match &raw.stop_signal {
        Some(s) => signal(s)?,
        None => Signal::TERM,
    };
    let clean_signals = match &raw.clean_signals {
        Some(list) => list.iter().map(signal).collect::<Result<Vec<_>, _>>()?,
        None => vec![Signal::TERM],
    };
    let mut env = Vec::with_capacity(raw.env.len());
    for (key, value) in raw.env {
        let k = key.get_ref();
        if k.is_empty() || k.contains('=') || k.contains('\0') || value.contains('\0') {
            return Err((
                key.span(),
                format!("template {name:?}: invalid environment variable {k:?}"),
            ));
        }
        env.push((key.into_inner(), value));
    }
    let cwd = match raw.cwd {
        Some(c) if c.get_ref().is_empty() || c.get_ref().contains('\0') => {
            return Err((
                c.span(),
                format!("template {name:?}: cwd must be a non-empty path"),
            ))
        }
        Some(c) => Some(c.into_inner()),
        None => None,
    };
    Ok(Template {
        name,
        command,
        restart: raw.restart.unwrap_or(RestartType::Transient),
        shutdown_ms: raw.shutdown_ms.unwrap_or(5000),
        stop_signal,
        clean_signals,
        env,
        cwd,
    })
}

fn names_of(templates: &BTreeMap<String, Rc<Template>>) -> String {
    if templates.is_empty() {
        "none".to_string()
    } else {
        templates.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// 1-based line and column (in characters) of a byte offset. toml's spans always
/// start on a character boundary; anything else falls back to the whole text.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, "t.toml")
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn builtin_is_valid_and_has_the_worker_template() {
        let config = builtin();
        assert_eq!(config.templates.len(), 1);
        let worker = &config.templates["worker"];
        assert_eq!(worker.command, vec!["dynsup-worker"]);
        assert_eq!(worker.restart, RestartType::Transient);
        assert!(config.children.is_empty());
        assert_eq!((config.max_restarts, config.max_seconds), (3, 5));
    }

    #[test]
    fn shipped_config_matches_the_builtin_template() {
        let shipped = parse(include_str!("../config/dynsup.toml"), "config/dynsup.toml")
            .expect("shipped config is valid");
        assert_eq!(shipped.templates["worker"], builtin().templates["worker"]);
        assert_eq!(shipped.children[0].name, "worker_1");
    }

    #[test]
    fn unknown_key_points_at_it() {
        let e = err("[supervisor]\nmax_restarts = 3\nmax_secs = 5\n");
        assert!(e.starts_with("t.toml:3:1: "), "{e}");
        assert!(e.contains("max_secs"), "{e}");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let e = err("[supervisor]\nmax_restarts = \"three\"\n");
        assert!(e.starts_with("t.toml:2:16: "), "{e}");
    }

    #[test]
    fn duplicate_child_names() {
        let e = err(
            "[templates.w]\ncommand=[\"x\"]\n[[children]]\nname=\"a\"\n[[children]]\nname = \"a\"\n",
        );
        assert!(
            e.starts_with("t.toml:6:8: duplicate child name \"a\""),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn unknown_template() {
        let e =
            err("[templates.w]\ncommand=[\"x\"]\n[[children]]\nname=\"a\"\ntemplate=\"nope\"\n");
        assert!(
            e.starts_with("t.toml:5:10: unknown template \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn empty_command() {
        let e = err("[templates.w]\ncommand = []\n");
        assert!(e.starts_with("t.toml:2:11: "), "{e}");
        assert!(e.contains("command is empty"), "{e}");
    }

    #[test]
    fn bad_signal_and_restart() {
        assert!(
            err("[templates.w]\ncommand=[\"x\"]\nstop_signal=\"SIGNOPE\"\n")
                .starts_with("t.toml:3:13: ")
        );
        let e = err("[templates.w]\ncommand=[\"x\"]\nrestart=\"sometimes\"\n");
        assert!(e.starts_with("t.toml:3:9: "), "{e}");
    }

    #[test]
    fn child_without_template_needs_exactly_one() {
        let ok = parse(
            "[templates.w]\ncommand=[\"x\"]\n[[children]]\nname=\"a\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(ok.children[0].template, "w");
        let e = err("[templates.w]\ncommand=[\"x\"]\n[templates.v]\ncommand=[\"y\"]\n[[children]]\nname=\"a\"\n");
        assert!(e.contains("names no template"), "{e}");
    }

    #[test]
    fn unreadable_file_names_it() {
        let e = load(Path::new("/nonexistent/dynsup.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/dynsup.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn max_seconds_zero_is_refused() {
        assert!(err("[supervisor]\nmax_seconds = 0\n").starts_with("t.toml:2:15: "));
    }
}
