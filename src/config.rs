//! The config file: TOML in, a validated [`Config`] out, or an error that names the
//! file, line and column of what is wrong.
//!
//! Two stages: serde reads the raw shape (`deny_unknown_fields`, so a typo is an error,
//! not a silently ignored key), keeping the source span of every value that a later
//! check may need to point at; then [`validate`] checks what serde cannot (empty
//! commands, unknown templates, duplicate child names, signal names, names' syntax).
//! `docs/CONFIG.md` documents every key; a test checks it names each one.

use crate::access::{AccessPolicy, ConnectionLimits};
use crate::core::{
    validate_name, Backoff, Credentials, EnvFile, HealthCheck, Limits, OnLimit, OnReload,
    Readiness, ReloadConfig, Resource, RestartLimit, RestartType, RestartWith, Rlimit, Template,
};
use crate::signal::Signal;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use toml::Spanned;

mod after;
mod cluster;

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
    "supervisor.max_children",
    "supervisor.state_file",
    "supervisor.log_level",
    "supervisor.socket_mode",
    "supervisor.socket_group",
    "supervisor.allow_uids",
    "supervisor.allow_groups",
    "supervisor.read_only_uids",
    "supervisor.read_only_groups",
    "supervisor.max_connections",
    "supervisor.max_connections_per_uid",
    "supervisor.reserved_connections",
    "supervisor.idle_timeout_ms",
    "supervisor.cgroup",
    "supervisor.cgroup_root",
    "supervisor.log_buffer_total",
    "supervisor.log_dir",
    "supervisor.log_max_bytes",
    "supervisor.log_keep",
    "supervisor.metrics_listen",
    "supervisor.metrics_listen_public",
    "templates.NAME.command",
    "templates.NAME.restart",
    "templates.NAME.shutdown_ms",
    "templates.NAME.stop_signal",
    "templates.NAME.clean_signals",
    "templates.NAME.env",
    "templates.NAME.env_file",
    "templates.NAME.cwd",
    "templates.NAME.extra_args",
    "templates.NAME.normal_exit_codes",
    "templates.NAME.backoff",
    "templates.NAME.backoff.initial_ms",
    "templates.NAME.backoff.max_ms",
    "templates.NAME.backoff.multiplier",
    "templates.NAME.backoff.reset_after_ms",
    "templates.NAME.backoff.jitter",
    "templates.NAME.max_restarts",
    "templates.NAME.max_seconds",
    "templates.NAME.on_limit",
    "templates.NAME.user",
    "templates.NAME.group",
    "templates.NAME.umask",
    "templates.NAME.rlimits",
    "templates.NAME.no_new_privs",
    "templates.NAME.ready",
    "templates.NAME.ready_timeout_ms",
    "templates.NAME.log_buffer_bytes",
    "templates.NAME.log_rate_limit",
    "templates.NAME.log_rate_limit.lines",
    "templates.NAME.log_rate_limit.per_ms",
    "templates.NAME.log_dir",
    "templates.NAME.log_max_bytes",
    "templates.NAME.log_keep",
    "templates.NAME.after",
    "templates.NAME.restart_with",
    "templates.NAME.watchdog_ms",
    "templates.NAME.health",
    "templates.NAME.health.command",
    "templates.NAME.health.interval_ms",
    "templates.NAME.health.timeout_ms",
    "templates.NAME.health.failures",
    "templates.NAME.critical",
    "templates.NAME.on_reload",
    "children.name",
    "children.template",
    "children.args",
    "children.after",
    "children.critical",
    "cluster.endpoints",
    "cluster.node",
    "cluster.namespace",
    "cluster.lease_ttl_ms",
    "cluster.tls_ca",
    "cluster.tls_cert",
    "cluster.tls_key",
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a path, or `<built-in>`.
    pub source: String,
    pub socket: Option<PathBuf>,
    pub max_restarts: u32,
    pub max_seconds: u64,
    /// `None`: no limit.
    pub max_children: Option<usize>,
    /// Where dynamically started workers are recorded; `None`: not recorded.
    pub state_file: Option<PathBuf>,
    /// `None`: `RUST_LOG` or info.
    pub log_level: Option<log::LevelFilter>,
    /// Permission bits of the socket file (default 0600).
    pub socket_mode: u32,
    /// Group owner of the socket file, if shared with a group.
    pub socket_group: Option<u32>,
    /// Who may connect (the daemon's own uid is filled in at start).
    pub access: AccessPolicy,
    pub max_connections: usize,
    /// Run each worker in its own cgroup v2 group.
    pub cgroup: bool,
    /// Where the worker groups go (default: `dynsup` under the daemon's own cgroup).
    pub cgroup_root: Option<PathBuf>,
    pub templates: BTreeMap<String, Rc<Template>>,
    pub children: Vec<BootChild>,
    /// What happens to the workers' output: kept in memory, rate-limited, written to
    /// files.
    pub logs: LogConfig,
    /// Where `GET /metrics` is served over HTTP, if anywhere.
    pub metrics_listen: Option<crate::metrics::listen::MetricsListen>,
    /// `[cluster]`: this daemon is a node of a fleet (docs/CLUSTER.md); its agent is
    /// among `templates` and `children`.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

/// The workers' output settings: the bound on all kept lines, and each template's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `[supervisor] log_buffer_total`: the bytes all names' kept lines may take.
    pub buffer_total: usize,
    /// Each template's settings, by template name.
    pub templates: HashMap<String, Rc<OutputSettings>>,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            buffer_total: DEFAULT_LOG_BUFFER_TOTAL,
            templates: HashMap::new(),
        }
    }
}

impl LogConfig {
    /// The output settings of workers of `template` (the defaults for a template the
    /// config no longer has).
    pub fn for_template(&self, template: &str) -> Rc<OutputSettings> {
        self.templates
            .get(template)
            .cloned()
            .unwrap_or_else(|| Rc::new(OutputSettings::default()))
    }

    /// True when some template writes files.
    pub fn writes_files(&self) -> bool {
        self.templates.values().any(|t| t.file.is_some())
    }
}

/// `[supervisor] log_buffer_total` by default: 64 MiB.
pub const DEFAULT_LOG_BUFFER_TOTAL: usize = 64 * 1024 * 1024;
/// `log_buffer_bytes` by default: 256 KiB per name.
pub const DEFAULT_LOG_BUFFER_BYTES: usize = 256 * 1024;
/// `log_rate_limit` by default: 10,000 lines per second per name.
pub const DEFAULT_LOG_RATE_LIMIT: RateLimit = RateLimit {
    lines: 10_000,
    per_ms: 1000,
};
/// `log_max_bytes` by default: 10 MiB.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// `log_keep` by default: 5 older files.
pub const DEFAULT_LOG_KEEP: u32 = 5;
/// The smallest `log_max_bytes`.
const MIN_LOG_MAX_BYTES: u64 = 1024;
/// The largest `log_buffer_bytes` (and `log_buffer_total`): 1 GiB.
const MAX_LOG_BUFFER: u64 = 1024 * 1024 * 1024;
/// The most older files `log_keep` may ask for.
const MAX_LOG_KEEP: u32 = 1000;

/// What happens to a worker's output lines (a template's `log_*` keys, resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSettings {
    /// The bytes of its last lines kept in memory for `logs` (0: none).
    pub buffer_bytes: usize,
    /// At most so many lines per window; beyond, lines are dropped and counted.
    /// `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Where its lines are also written, if anywhere.
    pub file: Option<FileSettings>,
}

impl Default for OutputSettings {
    fn default() -> OutputSettings {
        OutputSettings {
            buffer_bytes: DEFAULT_LOG_BUFFER_BYTES,
            rate_limit: Some(DEFAULT_LOG_RATE_LIMIT),
            file: None,
        }
    }
}

/// `log_rate_limit = { lines = N, per_ms = M }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub lines: u32,
    pub per_ms: u64,
}

/// A worker's log file: `dir/NAME.log`, rotated at `max_bytes`, `keep` older ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

/// The settings a running daemon cannot change: a reload that changes one of them
/// says so, and the new value applies after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedSettings {
    pub socket: Option<PathBuf>,
    pub socket_mode: u32,
    pub socket_group: Option<u32>,
    pub state_file: Option<PathBuf>,
    pub cgroup: bool,
    pub cgroup_root: Option<PathBuf>,
    pub metrics_listen: Option<crate::metrics::listen::MetricsListen>,
}

impl Config {
    /// The core's supervisor-wide limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_restarts: self.max_restarts,
            max_seconds: self.max_seconds,
            max_children: self.max_children,
        }
    }

    /// What the core applies on a reload: limits, templates and boot children.
    pub fn reload_config(&self) -> ReloadConfig {
        ReloadConfig {
            limits: self.limits(),
            templates: self.templates.clone(),
            children: self.children.clone(),
        }
    }

    pub fn fixed_settings(&self) -> FixedSettings {
        FixedSettings {
            socket: self.socket.clone(),
            socket_mode: self.socket_mode,
            socket_group: self.socket_group,
            state_file: self.state_file.clone(),
            cgroup: self.cgroup,
            cgroup_root: self.cgroup_root.clone(),
            metrics_listen: self.metrics_listen.clone(),
        }
    }
}

pub use crate::core::BootChild;

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
    cluster: Option<Spanned<cluster::RawCluster>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    socket: Option<Spanned<String>>,
    max_restarts: Option<u32>,
    max_seconds: Option<Spanned<u64>>,
    max_children: Option<usize>,
    state_file: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    socket_group: Option<Spanned<toml::Value>>,
    #[serde(default)]
    allow_uids: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    allow_groups: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    read_only_uids: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    read_only_groups: Vec<Spanned<toml::Value>>,
    max_connections: Option<Spanned<usize>>,
    max_connections_per_uid: Option<Spanned<usize>>,
    reserved_connections: Option<usize>,
    idle_timeout_ms: Option<u64>,
    #[serde(default)]
    cgroup: bool,
    cgroup_root: Option<String>,
    log_buffer_total: Option<Spanned<u64>>,
    log_dir: Option<Spanned<String>>,
    log_max_bytes: Option<Spanned<u64>>,
    log_keep: Option<Spanned<u32>>,
    metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    metrics_listen_public: bool,
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
    #[serde(default)]
    env_file: Vec<Spanned<String>>,
    cwd: Option<Spanned<String>>,
    #[serde(default)]
    extra_args: Vec<String>,
    normal_exit_codes: Option<Vec<i32>>,
    backoff: Option<Spanned<RawBackoff>>,
    max_restarts: Option<Spanned<toml::Value>>,
    max_seconds: Option<Spanned<u64>>,
    on_limit: Option<OnLimit>,
    user: Option<Spanned<toml::Value>>,
    group: Option<Spanned<toml::Value>>,
    umask: Option<Spanned<String>>,
    #[serde(default)]
    rlimits: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    no_new_privs: bool,
    ready: Option<Readiness>,
    ready_timeout_ms: Option<Spanned<u64>>,
    log_buffer_bytes: Option<Spanned<u64>>,
    log_rate_limit: Option<Spanned<toml::Value>>,
    log_dir: Option<Spanned<toml::Value>>,
    log_max_bytes: Option<Spanned<u64>>,
    log_keep: Option<Spanned<u32>>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    restart_with: Option<RestartWith>,
    watchdog_ms: Option<Spanned<i64>>,
    health: Option<Spanned<RawHealthTable>>,
    #[serde(default)]
    critical: bool,
    on_reload: Option<OnReload>,
}

/// `health = { command = [...], interval_ms, timeout_ms, failures }`, inline or as a
/// `[templates.NAME.health]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    command: Option<Spanned<Vec<String>>>,
    interval_ms: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    failures: Option<Spanned<i64>>,
}

/// A [`RawHealth`] read only from a table. serde's derived struct would also accept an
/// array of its fields in order, so `health = ["check"]` would be read as `command =
/// "check"` and refused for a reason that makes no sense to the reader.
#[derive(Debug)]
struct RawHealthTable(RawHealth);

impl<'de> Deserialize<'de> for RawHealthTable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableOnly;
        impl<'de> serde::de::Visitor<'de> for TableOnly {
            type Value = RawHealth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table, such as health = { command = [\"/usr/local/bin/check\"] }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawHealth, A::Error> {
                RawHealth::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(TableOnly).map(RawHealthTable)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    initial_ms: Option<u64>,
    max_ms: Option<u64>,
    multiplier: Option<f64>,
    reset_after_ms: Option<u64>,
    jitter: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    name: Spanned<String>,
    template: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    critical: bool,
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

/// What the daemon runs on: the file at `path`, or without one the built-in config.
/// `dynsup check-config` loads through here too, so it says what the daemon would.
pub fn load_or_builtin(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => load(path),
        None => Ok(builtin()),
    }
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
    let file_defaults = supervisor_file_defaults(&raw.supervisor)?;
    let max_seconds = match raw.supervisor.max_seconds {
        Some(s) if *s.get_ref() == 0 => {
            return Err((s.span(), "max_seconds must be at least 1".to_string()))
        }
        Some(s) => s.into_inner(),
        None => 5,
    };
    let defaults = RestartLimit {
        max_restarts: Some(raw.supervisor.max_restarts.unwrap_or(3)),
        max_seconds,
    };
    let mut logs = LogConfig {
        buffer_total: match &raw.supervisor.log_buffer_total {
            Some(total) => buffer_size(total, "log_buffer_total")?,
            None => DEFAULT_LOG_BUFFER_TOTAL,
        },
        templates: HashMap::new(),
    };
    let mut templates = BTreeMap::new();
    // Each template's `after` as written, checked once the children are known.
    let mut template_after = BTreeMap::new();
    for (name, raw_template) in raw.templates {
        let output = output_settings(&name, &raw_template, &file_defaults)?;
        logs.templates.insert(name.clone(), Rc::new(output));
        template_after.insert(name.clone(), raw_template.after.clone());
        let template = validate_template(name.clone(), raw_template, defaults)?;
        templates.insert(name, Rc::new(template));
    }
    let mut children = Vec::with_capacity(raw.children.len());
    let mut child_after = Vec::with_capacity(raw.children.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for child in raw.children {
        let name_span = child.name.span();
        let name = child.name.into_inner();
        validate_name(&name).map_err(|msg| (name_span.clone(), msg))?;
        if let Some(&first_offset) = seen.get(&name) {
            let first_line = line_column(text, first_offset).0;
            return Err((
                name_span,
                format!("duplicate child name {name:?} (first defined on line {first_line})"),
            ));
        }
        // The offset, not the line: counting lines for every child would make a config
        // of N children cost O(N²) to load.
        seen.insert(name.clone(), name_span.start);
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
            after: child.after.iter().map(|n| n.get_ref().clone()).collect(),
            critical: child.critical,
        });
        child_after.push(child.after);
    }
    let boot_children: Vec<after::Child<'_>> = children
        .iter()
        .zip(&child_after)
        .map(|(child, after)| after::Child {
            name: &child.name,
            template: &child.template,
            after,
        })
        .collect();
    after::check(&template_after, &boot_children)?;
    let cluster = match raw.cluster {
        Some(raw_cluster) => {
            let span = raw_cluster.span();
            let settings = cluster::validate(raw_cluster)?;
            let agent = crate::cluster::AGENT_NAME;
            if templates.contains_key(agent) || children.iter().any(|c| c.name == agent) {
                return Err((span, cluster::name_taken_message()));
            }
            let mut template =
                validate_template(agent.to_string(), cluster::agent_template(file), defaults)?;
            template.internal = true;
            // The agent reads `[cluster]` from the file when it starts; carrying the
            // settings in its environment makes a reload that changes them restart it
            // (its template then differs), instead of leaving it on the old ones.
            template.env.push((
                "DYNSUP_CLUSTER_SETTINGS".to_string(),
                format!("{settings:?}"),
            ));
            templates.insert(agent.to_string(), Rc::new(template));
            logs.templates.insert(
                agent.to_string(),
                Rc::new(output_settings(
                    agent,
                    &cluster::agent_template(file),
                    &file_defaults,
                )?),
            );
            children.push(BootChild {
                name: agent.to_string(),
                template: agent.to_string(),
                args: Vec::new(),
                after: Vec::new(),
                critical: false,
            });
            Some(settings)
        }
        None => None,
    };
    let socket = raw.supervisor.socket.map(|s| PathBuf::from(s.into_inner()));
    let state_file = match raw.supervisor.state_file {
        Some(f) if f.get_ref().is_empty() => {
            return Err((f.span(), "state_file must be a non-empty path".to_string()))
        }
        Some(f) => Some(PathBuf::from(f.into_inner())),
        None => None,
    };
    let log_level = match raw.supervisor.log_level {
        Some(level) => Some(level.get_ref().parse::<log::LevelFilter>().map_err(|_| {
            (
                level.span(),
                format!(
                    "unknown log_level {:?} (expected off, error, warn, info, debug or trace)",
                    level.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let socket_mode = match &raw.supervisor.socket_mode {
        Some(mode) => parse_mode(mode, "socket_mode")?,
        None => 0o600,
    };
    let socket_group = match &raw.supervisor.socket_group {
        Some(group) => Some(resolve_gid(group)?),
        None => None,
    };
    let uids =
        |list: &[Spanned<toml::Value>]| list.iter().map(resolve_uid).collect::<Result<_, _>>();
    let gids =
        |list: &[Spanned<toml::Value>]| list.iter().map(resolve_gid).collect::<Result<_, _>>();
    let access = AccessPolicy {
        daemon_uid: 0,
        allow_uids: uids(&raw.supervisor.allow_uids)?,
        allow_gids: gids(&raw.supervisor.allow_groups)?,
        read_only_uids: uids(&raw.supervisor.read_only_uids)?,
        read_only_gids: gids(&raw.supervisor.read_only_groups)?,
        connections: connection_limits(
            raw.supervisor.max_connections_per_uid.as_ref(),
            raw.supervisor.reserved_connections,
            raw.supervisor.idle_timeout_ms,
        )?,
    };
    let max_connections = match raw.supervisor.max_connections {
        Some(m) if *m.get_ref() == 0 => {
            return Err((m.span(), "max_connections must be at least 1".to_string()))
        }
        Some(m) => m.into_inner(),
        None => 1024,
    };
    let metrics_listen = match &raw.supervisor.metrics_listen {
        Some(listen) => Some(
            crate::metrics::listen::parse(listen.get_ref(), raw.supervisor.metrics_listen_public)
                .map_err(|message| (listen.span(), message))?,
        ),
        None => None,
    };
    Ok(Config {
        source: file.to_string(),
        log_level,
        socket_mode,
        socket_group,
        access,
        max_connections,
        cgroup: raw.supervisor.cgroup,
        cgroup_root: raw.supervisor.cgroup_root.map(PathBuf::from),
        socket,
        max_restarts: raw.supervisor.max_restarts.unwrap_or(3),
        max_seconds,
        max_children: raw.supervisor.max_children,
        state_file,
        templates,
        children,
        logs,
        metrics_listen,
        cluster,
    })
}

/// The `[supervisor]` file keys: the defaults of every template's `log_dir`,
/// `log_max_bytes` and `log_keep`.
struct FileDefaults {
    dir: Option<PathBuf>,
    max_bytes: u64,
    keep: u32,
}

fn supervisor_file_defaults(raw: &RawSupervisor) -> Result<FileDefaults, Invalid> {
    let dir = match &raw.log_dir {
        Some(dir) => Some(writable_dir(dir.get_ref(), dir.span(), "log_dir")?),
        None => None,
    };
    Ok(FileDefaults {
        dir,
        max_bytes: match &raw.log_max_bytes {
            Some(max) => max_bytes(max, "log_max_bytes")?,
            None => DEFAULT_LOG_MAX_BYTES,
        },
        keep: match &raw.log_keep {
            Some(keep) => log_keep(keep, "log_keep")?,
            None => DEFAULT_LOG_KEEP,
        },
    })
}

/// A template's output settings: its own `log_*` keys, else the `[supervisor]` ones,
/// else the defaults.
fn output_settings(
    template: &str,
    raw: &RawTemplate,
    defaults: &FileDefaults,
) -> Result<OutputSettings, Invalid> {
    let key = |key: &str| format!("template {template:?}: {key}");
    let buffer_bytes = match &raw.log_buffer_bytes {
        Some(bytes) => buffer_size(bytes, &key("log_buffer_bytes"))?,
        None => DEFAULT_LOG_BUFFER_BYTES,
    };
    let rate_limit = match &raw.log_rate_limit {
        Some(limit) => rate_limit(limit, &key("log_rate_limit"))?,
        None => Some(DEFAULT_LOG_RATE_LIMIT),
    };
    let dir = match &raw.log_dir {
        None => defaults.dir.clone(),
        Some(value) => match value.get_ref() {
            toml::Value::Boolean(false) => None,
            toml::Value::String(dir) => Some(writable_dir(dir, value.span(), &key("log_dir"))?),
            _ => {
                return Err((
                    value.span(),
                    format!(
                        "{}: expected a directory (a string) or false",
                        key("log_dir")
                    ),
                ))
            }
        },
    };
    let max_bytes = match &raw.log_max_bytes {
        Some(max) => max_bytes(max, &key("log_max_bytes"))?,
        None => defaults.max_bytes,
    };
    let keep = match &raw.log_keep {
        Some(keep) => log_keep(keep, &key("log_keep"))?,
        None => defaults.keep,
    };
    Ok(OutputSettings {
        buffer_bytes,
        rate_limit,
        file: dir.map(|dir| FileSettings {
            dir,
            max_bytes,
            keep,
        }),
    })
}

/// `log_buffer_bytes` or `log_buffer_total`: at most 1 GiB.
fn buffer_size(value: &Spanned<u64>, key: &str) -> Result<usize, Invalid> {
    match usize::try_from(*value.get_ref()) {
        Ok(bytes) if *value.get_ref() <= MAX_LOG_BUFFER => Ok(bytes),
        _ => Err((
            value.span(),
            format!("{key} must be at most {MAX_LOG_BUFFER} (1 GiB)"),
        )),
    }
}

fn max_bytes(value: &Spanned<u64>, key: &str) -> Result<u64, Invalid> {
    match *value.get_ref() {
        bytes if bytes >= MIN_LOG_MAX_BYTES => Ok(bytes),
        _ => Err((
            value.span(),
            format!("{key} must be at least {MIN_LOG_MAX_BYTES}"),
        )),
    }
}

fn log_keep(value: &Spanned<u32>, key: &str) -> Result<u32, Invalid> {
    match *value.get_ref() {
        keep if keep <= MAX_LOG_KEEP => Ok(keep),
        _ => Err((
            value.span(),
            format!("{key} must be at most {MAX_LOG_KEEP}"),
        )),
    }
}

/// `log_rate_limit = { lines = N, per_ms = M }` (both at least 1), or `"off"`.
fn rate_limit(value: &Spanned<toml::Value>, key: &str) -> Result<Option<RateLimit>, Invalid> {
    let bad = || {
        (
            value.span(),
            format!("{key} must be \"off\" or {{ lines = N, per_ms = M }} with N and M at least 1 (such as {{ lines = 10000, per_ms = 1000 }})"),
        )
    };
    match value.get_ref() {
        toml::Value::String(off) if off == "off" => Ok(None),
        toml::Value::Table(table) => {
            if table.keys().any(|k| k != "lines" && k != "per_ms") {
                return Err(bad());
            }
            let number = |field: &str| match table.get(field) {
                Some(toml::Value::Integer(n)) if *n >= 1 => Some(*n),
                _ => None,
            };
            let lines = number("lines").and_then(|n| u32::try_from(n).ok());
            let per_ms = number("per_ms").and_then(|n| u64::try_from(n).ok());
            match (lines, per_ms) {
                (Some(lines), Some(per_ms)) if per_ms <= 86_400_000 => {
                    Ok(Some(RateLimit { lines, per_ms }))
                }
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// A `log_dir`: an existing directory the daemon may create files in. Checked when the
/// config is read, so an unusable one is a config error, not a surprise at the first
/// line.
fn writable_dir(dir: &str, span: Range<usize>, key: &str) -> Result<PathBuf, Invalid> {
    use nix::unistd::{access, AccessFlags};
    if dir.is_empty() || dir.contains('\0') {
        return Err((span, format!("{key} must be a non-empty path")));
    }
    let path = PathBuf::from(dir);
    let problem = match std::fs::metadata(&path) {
        Err(e) => Some(e.to_string()),
        Ok(meta) if !meta.is_dir() => Some("not a directory".to_string()),
        Ok(_) => access(&path, AccessFlags::W_OK | AccessFlags::X_OK)
            .err()
            .map(|errno| std::io::Error::from(errno).to_string()),
    };
    match problem {
        None => Ok(path),
        Some(why) => Err((
            span,
            format!("{key}: the daemon cannot write log files in {dir}: {why}"),
        )),
    }
}

/// `max_connections_per_uid`, `reserved_connections` and `idle_timeout_ms`.
fn connection_limits(
    per_uid: Option<&Spanned<usize>>,
    reserved: Option<usize>,
    idle_timeout_ms: Option<u64>,
) -> Result<ConnectionLimits, Invalid> {
    let per_uid = match per_uid {
        Some(m) if *m.get_ref() == 0 => {
            return Err((
                m.span(),
                "max_connections_per_uid must be at least 1".to_string(),
            ))
        }
        Some(m) => *m.get_ref(),
        None => ConnectionLimits::DEFAULT_PER_UID,
    };
    let idle_timeout = match idle_timeout_ms {
        Some(0) => None,
        Some(ms) => Some(std::time::Duration::from_millis(ms)),
        None => Some(std::time::Duration::from_millis(
            ConnectionLimits::DEFAULT_IDLE_TIMEOUT_MS,
        )),
    };
    Ok(ConnectionLimits {
        per_uid,
        reserved: reserved.unwrap_or(ConnectionLimits::DEFAULT_RESERVED),
        idle_timeout,
    })
}

/// The longest `watchdog_ms`, health `interval_ms` and `timeout_ms`: a day.
const MAX_INTERVAL_MS: u64 = 86_400_000;
/// The most health `failures` in a row a template may wait for.
const MAX_HEALTH_FAILURES: u64 = 1000;

/// A command line (`command`, `health.command`): at least a non-empty program, no NUL
/// byte anywhere.
fn command_line(
    template: &str,
    key: &str,
    command: Spanned<Vec<String>>,
) -> Result<Vec<String>, Invalid> {
    let span = command.span();
    let command = command.into_inner();
    if command.is_empty() || command[0].is_empty() {
        return Err((
            span,
            format!("template {template:?}: {key} is empty; it needs at least a program"),
        ));
    }
    if let Some(bad) = command.iter().find(|a| a.contains('\0')) {
        return Err((
            span,
            format!("template {template:?}: {key} argument {bad:?} contains a NUL byte"),
        ));
    }
    Ok(command)
}

/// An integer key that must lie in `min ..= max`.
fn in_range(value: &Spanned<i64>, min: u64, max: u64, key: &str) -> Result<u64, Invalid> {
    match u64::try_from(*value.get_ref()) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err((
            value.span(),
            format!(
                "{key} must be between {min} and {max}, not {}",
                value.get_ref()
            ),
        )),
    }
}

/// A template's `health` table, with its defaults filled in.
fn health_check(template: &str, raw: Spanned<RawHealthTable>) -> Result<HealthCheck, Invalid> {
    let key = |key: &str| format!("template {template:?}: health.{key}");
    let span = raw.span();
    let RawHealthTable(raw) = raw.into_inner();
    let Some(command) = raw.command else {
        return Err((
            span,
            format!(
                "template {template:?}: health has no command; it needs one, such as command = [\"/usr/local/bin/check\"]"
            ),
        ));
    };
    let ms = |value: &Option<Spanned<i64>>, name: &str, default: u64| match value {
        Some(v) => in_range(v, 1, MAX_INTERVAL_MS, &key(name)),
        None => Ok(default),
    };
    let interval_ms = ms(
        &raw.interval_ms,
        "interval_ms",
        HealthCheck::DEFAULT_INTERVAL_MS,
    )?;
    let timeout_ms = ms(
        &raw.timeout_ms,
        "timeout_ms",
        HealthCheck::DEFAULT_TIMEOUT_MS,
    )?;
    let failures = match &raw.failures {
        // At most 1000, so the conversion cannot fail.
        Some(v) => u32::try_from(in_range(v, 1, MAX_HEALTH_FAILURES, &key("failures"))?)
            .unwrap_or(u32::MAX),
        None => HealthCheck::DEFAULT_FAILURES,
    };
    Ok(HealthCheck {
        command: command_line(template, "health.command", command)?,
        interval_ms,
        timeout_ms,
        failures,
    })
}

fn validate_template(
    name: String,
    raw: RawTemplate,
    defaults: RestartLimit,
) -> Result<Template, Invalid> {
    let command = command_line(&name, "command", raw.command)?;
    let signal = |key: &str, s: &Spanned<String>| {
        Signal::parse(s.get_ref())
            .map_err(|msg| (s.span(), format!("template {name:?}: {key}: {msg}")))
    };
    let stop_signal = match &raw.stop_signal {
        // SIGSTOP cannot be caught and ends nothing: every stop would wait `shutdown_ms`
        // and SIGKILL.
        Some(s) => match signal("stop_signal", s)? {
            stop if stop.0 == libc::SIGSTOP => {
                return Err((
                    s.span(),
                    format!("template {name:?}: stop_signal: SIGSTOP pauses a process and never ends it; use SIGTERM, SIGINT, SIGKILL or a signal the program handles"),
                ))
            }
            stop => stop,
        },
        None => Signal::TERM,
    };
    let clean_signals = match &raw.clean_signals {
        Some(list) => list
            .iter()
            .map(|s| signal("clean_signals", s))
            .collect::<Result<Vec<_>, _>>()?,
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
    let env_files = raw
        .env_file
        .iter()
        .map(|path| env_file(&name, path))
        .collect::<Result<Vec<_>, _>>()?;
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
    let backoff = match raw.backoff {
        Some(spanned) => {
            let span = spanned.span();
            let b = spanned.into_inner();
            let d = Backoff::default();
            let backoff = Backoff {
                initial_ms: b.initial_ms.unwrap_or(d.initial_ms),
                max_ms: b.max_ms.unwrap_or(d.max_ms.max(b.initial_ms.unwrap_or(0))),
                multiplier: b.multiplier.unwrap_or(d.multiplier),
                reset_after_ms: b.reset_after_ms.unwrap_or(d.reset_after_ms),
                jitter: b.jitter.unwrap_or(d.jitter),
            };
            if !(backoff.jitter.is_finite() && (0.0..=1.0).contains(&backoff.jitter)) {
                return Err((
                    span,
                    format!("template {name:?}: backoff.jitter must be a number from 0 to 1"),
                ));
            }
            if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
                return Err((
                    span,
                    format!("template {name:?}: backoff.multiplier must be a number >= 1"),
                ));
            }
            if backoff.max_ms < backoff.initial_ms {
                return Err((
                    span,
                    format!("template {name:?}: backoff.max_ms must be at least initial_ms"),
                ));
            }
            backoff
        }
        None => Backoff::default(),
    };
    let max_restarts = match raw.max_restarts {
        None => None,
        Some(v) => Some(match v.get_ref() {
            toml::Value::Integer(n) if (0..=i64::from(u32::MAX)).contains(n) => Some(*n as u32),
            toml::Value::String(s) if s == "infinity" => None,
            _ => {
                return Err((
                    v.span(),
                    format!("template {name:?}: max_restarts must be a non-negative integer or \"infinity\""),
                ))
            }
        }),
    };
    let own_max_seconds = match raw.max_seconds {
        Some(s) if *s.get_ref() == 0 => {
            return Err((
                s.span(),
                format!("template {name:?}: max_seconds must be at least 1"),
            ))
        }
        Some(s) => Some(s.into_inner()),
        None => None,
    };
    let on_limit = raw.on_limit.unwrap_or(OnLimit::Escalate);
    let ready_timeout_ms = match raw.ready_timeout_ms {
        Some(t) if *t.get_ref() == 0 => {
            return Err((
                t.span(),
                format!("template {name:?}: ready_timeout_ms must be at least 1"),
            ))
        }
        Some(t) => t.into_inner(),
        None => 30_000,
    };
    let watchdog_ms = match &raw.watchdog_ms {
        Some(ms) => Some(in_range(
            ms,
            1,
            MAX_INTERVAL_MS,
            &format!("template {name:?}: watchdog_ms"),
        )?),
        None => None,
    };
    let health = match raw.health {
        Some(health) => Some(health_check(&name, health)?),
        None => None,
    };
    let credentials = credentials(&name, raw.user.as_ref(), raw.group.as_ref())?;
    let umask = match &raw.umask {
        Some(mask) => Some(parse_mode(mask, "umask")?),
        None => None,
    };
    let rlimits = raw
        .rlimits
        .iter()
        .map(|(resource, value)| rlimit(resource, value))
        .collect::<Result<Vec<_>, _>>()?;
    // A worker has its own window when the template sets one, and always when it gives
    // up on its own (then the supervisor's values are the defaults).
    let limit = (max_restarts.is_some()
        || own_max_seconds.is_some()
        || on_limit == OnLimit::GiveUp)
        .then(|| RestartLimit {
            max_restarts: max_restarts.unwrap_or(defaults.max_restarts),
            max_seconds: own_max_seconds.unwrap_or(defaults.max_seconds),
        });
    Ok(Template {
        name,
        command,
        restart: raw.restart.unwrap_or(RestartType::Transient),
        shutdown_ms: raw.shutdown_ms.unwrap_or(5000),
        stop_signal,
        clean_signals,
        env,
        env_files,
        cwd,
        extra_args: raw.extra_args,
        normal_exit_codes: raw.normal_exit_codes.unwrap_or_else(|| vec![0]),
        backoff,
        limit,
        on_limit,
        credentials,
        umask,
        rlimits,
        no_new_privs: raw.no_new_privs,
        ready: raw.ready.unwrap_or(Readiness::Exec),
        ready_timeout_ms,
        after: raw.after.into_iter().map(Spanned::into_inner).collect(),
        restart_with: raw.restart_with.unwrap_or(RestartWith::Alone),
        watchdog_ms,
        health,
        critical: raw.critical,
        on_reload: raw.on_reload.unwrap_or(OnReload::Restart),
        internal: false,
    })
}

/// One `env_file` entry: an absolute path, optional when written with a leading `-`.
/// The file itself is read at each start, not here.
fn env_file(template: &str, path: &Spanned<String>) -> Result<EnvFile, Invalid> {
    let written = path.get_ref();
    let (optional, file) = match written.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, written.as_str()),
    };
    if !file.starts_with('/') || file.contains('\0') {
        return Err((
            path.span(),
            format!("template {template:?}: env_file {written:?} must be an absolute path (with a leading - when a missing file is fine)"),
        ));
    }
    Ok(EnvFile {
        path: file.to_string(),
        optional,
    })
}

/// `user` / `group` of a template, resolved to ids (and the user's supplementary
/// groups, as `initgroups` would set them). Only root can switch users, so naming one
/// while the daemon is not root is an error here, not a failure at every spawn.
fn credentials(
    template: &str,
    user: Option<&Spanned<toml::Value>>,
    group: Option<&Spanned<toml::Value>>,
) -> Result<Option<Credentials>, Invalid> {
    let Some(span) = user.or(group).map(Spanned::span) else {
        return Ok(None);
    };
    if !nix::unistd::geteuid().is_root() {
        return Err((
            span,
            format!("template {template:?} sets user/group, but the daemon is not running as root"),
        ));
    }
    let gid_override = group.map(resolve_gid).transpose()?;
    let Some(user) = user else {
        // Only a group: keep the daemon's user, switch the group.
        let gid = gid_override.unwrap_or(0);
        return Ok(Some(Credentials {
            uid: nix::unistd::geteuid().as_raw(),
            gid,
            groups: vec![gid],
            user_name: None,
            home: None,
        }));
    };
    let entry = match user.get_ref() {
        toml::Value::String(name) => nix::unistd::User::from_name(name).ok().flatten(),
        toml::Value::Integer(n) => u32::try_from(*n).ok().and_then(|uid| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
        }),
        _ => None,
    };
    let Some(entry) = entry else {
        let which = match user.get_ref() {
            toml::Value::String(name) => format!("unknown user {name:?}"),
            toml::Value::Integer(n) => format!("unknown user id {n}"),
            other => format!(
                "a user must be a name or a number, not {}",
                other.type_str()
            ),
        };
        return Err((
            user.span(),
            format!("template {template:?}: {which} (no passwd entry)"),
        ));
    };
    let gid = gid_override.unwrap_or(entry.gid.as_raw());
    let groups = std::ffi::CString::new(entry.name.clone())
        .ok()
        .and_then(|cname| nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid)).ok())
        .map(|list| list.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![gid]);
    Ok(Some(Credentials {
        uid: entry.uid.as_raw(),
        gid,
        groups,
        user_name: Some(entry.name),
        home: Some(entry.dir.display().to_string()),
    }))
}

/// `nofile = 1024`, `core = "infinity"` or `nofile = [1024, 4096]` (soft, hard).
fn rlimit(resource: &Spanned<String>, value: &Spanned<toml::Value>) -> Result<Rlimit, Invalid> {
    let which = match resource.get_ref().as_str() {
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "core" => Resource::Core,
        "memlock" => Resource::Memlock,
        other => {
            return Err((
                resource.span(),
                format!("unknown rlimit {other:?} (known: nofile, nproc, core, memlock)"),
            ))
        }
    };
    let one = |v: &toml::Value| match v {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) if s == "infinity" => Some(u64::MAX),
        _ => None,
    };
    let (soft, hard) = match value.get_ref() {
        toml::Value::Array(pair) if pair.len() == 2 => (one(&pair[0]), one(&pair[1])),
        v => (one(v), one(v)),
    };
    match (soft, hard) {
        (Some(soft), Some(hard)) if soft <= hard => Ok(Rlimit {
            resource: which,
            soft,
            hard,
        }),
        _ => Err((
            value.span(),
            format!(
                "rlimits.{}: expected a number, \"infinity\", or [soft, hard] with soft <= hard",
                resource.get_ref()
            ),
        )),
    }
}

/// An octal mode written as a string, such as `"0660"`.
fn parse_mode(mode: &Spanned<String>, key: &str) -> Result<u32, Invalid> {
    let text = mode.get_ref().trim();
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(bits) if bits <= 0o7777 => Ok(bits),
        _ => Err((
            mode.span(),
            format!("{key} must be an octal mode written as a string, such as \"0660\""),
        )),
    }
}

/// A user given by name or number.
fn resolve_uid(value: &Spanned<toml::Value>) -> Result<u32, Invalid> {
    resolve_id(value, "user", "uid", |name| {
        let user = nix::unistd::User::from_name(name).ok().flatten()?;
        Some(user.uid.as_raw())
    })
}

/// A group given by name or number.
fn resolve_gid(value: &Spanned<toml::Value>) -> Result<u32, Invalid> {
    resolve_id(value, "group", "gid", |name| {
        let group = nix::unistd::Group::from_name(name).ok().flatten()?;
        Some(group.gid.as_raw())
    })
}

/// A user or group id: a number as it is, a name through `by_name`.
fn resolve_id(
    value: &Spanned<toml::Value>,
    what: &str,
    id: &str,
    by_name: impl FnOnce(&str) -> Option<u32>,
) -> Result<u32, Invalid> {
    match value.get_ref() {
        toml::Value::Integer(n) => {
            u32::try_from(*n).map_err(|_| (value.span(), format!("{n} is not a valid {id}")))
        }
        toml::Value::String(name) => {
            by_name(name).ok_or_else(|| (value.span(), format!("unknown {what} {name:?}")))
        }
        _ => Err((value.span(), format!("a {what} must be a name or a number"))),
    }
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
    fn the_shipped_configs_commented_out_keys_are_valid() {
        // Uncomment every `# key = value` line (a comment line that is TOML by
        // itself), and give `after = ["db"]` its child.
        let mut text = String::new();
        for line in include_str!("../config/dynsup.toml").lines() {
            let uncommented = line
                .strip_prefix("# ")
                .filter(|rest| rest.contains(" = ") && rest.parse::<toml::Table>().is_ok());
            text.push_str(uncommented.unwrap_or(line));
            text.push('\n');
        }
        text.push_str(
            "[templates.db]\ncommand = [\"db\"]\n[[children]]\nname = \"db\"\ntemplate = \"db\"\n",
        );
        let config =
            parse(&text, "config/dynsup.toml, uncommented").unwrap_or_else(|e| panic!("{e}"));
        let worker = &config.templates["worker"];
        assert_eq!(worker.after, ["db"]);
        assert_eq!(worker.watchdog_ms, Some(30_000));
        assert!(worker.health.is_some());
        assert_eq!(config.children[0].after, Vec::<String>::new());
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
        let e = err("[templates.w]\ncommand=[\"x\"]\nstop_signal=\"SIGNOPE\"\n");
        assert!(
            e.starts_with("t.toml:3:13: template \"w\": stop_signal: unknown signal"),
            "{e}"
        );
        let e = err("[templates.w]\ncommand=[\"x\"]\nrestart=\"sometimes\"\n");
        assert!(e.starts_with("t.toml:3:9: "), "{e}");
    }

    #[test]
    fn real_time_signals_are_accepted_and_the_c_librarys_own_refused() {
        let ok = parse(
            "[templates.w]\ncommand=[\"x\"]\nstop_signal=\"SIGRTMIN+4\"\nclean_signals=[\"40\", \"RTMAX\"]\n",
            "t",
        )
        .unwrap();
        let w = &ok.templates["w"];
        assert_eq!(w.stop_signal, Signal(libc::SIGRTMIN() + 4));
        assert_eq!(w.clean_signals, [Signal(40), Signal(libc::SIGRTMAX())]);
        let e = err("[templates.w]\ncommand=[\"x\"]\nstop_signal=\"33\"\n");
        assert!(
            e.starts_with("t.toml:3:13: template \"w\": stop_signal: signal number 33 is reserved"),
            "{e}"
        );
        let e = err("[templates.w]\ncommand=[\"x\"]\nclean_signals=[\"TERM\", \"SIGRTMIN+31\"]\n");
        assert!(
            e.starts_with("t.toml:3:24: template \"w\": clean_signals: unknown signal"),
            "{e}"
        );
        let e = err("[templates.w]\ncommand=[\"x\"]\nstop_signal=\"STOP\"\n");
        assert!(
            e.starts_with("t.toml:3:13: template \"w\": stop_signal: SIGSTOP pauses"),
            "{e}"
        );
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
    fn an_unknown_user_is_named() {
        let e = err("[templates.w]\ncommand = [\"x\"]\nuser = \"no-such-user-dynsup\"\n");
        if nix::unistd::geteuid().is_root() {
            assert!(
                e.starts_with("t.toml:3:8: template \"w\": unknown user \"no-such-user-dynsup\" (no passwd entry)"),
                "{e}"
            );
            let e = err("[templates.w]\ncommand = [\"x\"]\nuser = 4000000000\n");
            assert!(e.contains("unknown user id 4000000000"), "{e}");
        } else {
            assert!(e.contains("the daemon is not running as root"), "{e}");
        }
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
    fn output_settings_default_and_override_per_template() {
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let text = format!(
            "[supervisor]\nlog_dir = {dir:?}\nlog_keep = 3\nlog_buffer_total = 1000000\n\
             [templates.a]\ncommand = [\"x\"]\n\
             [templates.b]\ncommand = [\"x\"]\nlog_dir = false\nlog_rate_limit = \"off\"\nlog_buffer_bytes = 0\n\
             [templates.c]\ncommand = [\"x\"]\nlog_max_bytes = 2048\nlog_rate_limit = {{ lines = 5, per_ms = 100 }}\n"
        );
        let config = parse(&text, "t").unwrap();
        assert_eq!(config.logs.buffer_total, 1_000_000);
        let a = config.logs.for_template("a");
        assert_eq!(a.buffer_bytes, DEFAULT_LOG_BUFFER_BYTES);
        assert_eq!(a.rate_limit, Some(DEFAULT_LOG_RATE_LIMIT));
        let file = a.file.clone().unwrap();
        assert_eq!((file.max_bytes, file.keep), (DEFAULT_LOG_MAX_BYTES, 3));
        let b = config.logs.for_template("b");
        assert_eq!(
            (b.buffer_bytes, b.rate_limit, b.file.is_some()),
            (0, None, false)
        );
        let c = config.logs.for_template("c");
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                lines: 5,
                per_ms: 100
            })
        );
        assert_eq!(c.file.clone().unwrap().max_bytes, 2048);
        assert!(config.logs.writes_files());
        assert!(!builtin().logs.writes_files());
        assert_eq!(
            builtin().logs.for_template("worker"),
            Rc::new(OutputSettings::default())
        );
    }

    #[test]
    fn bad_output_settings_point_at_the_value() {
        let e = err("[templates.w]\ncommand=[\"x\"]\nlog_rate_limit = { lines = 10 }\n");
        assert!(
            e.starts_with("t.toml:3:18: template \"w\": log_rate_limit must be"),
            "{e}"
        );
        let e = err("[templates.w]\ncommand=[\"x\"]\nlog_rate_limit = { lines = 1, per_ms = 1, burst = 2 }\n");
        assert!(e.starts_with("t.toml:3:18: "), "{e}");
        let e = err("[templates.w]\ncommand=[\"x\"]\nlog_rate_limit = \"on\"\n");
        assert!(e.starts_with("t.toml:3:18: "), "{e}");
        let e = err("[supervisor]\nlog_keep = 1001\n");
        assert!(
            e.starts_with("t.toml:2:12: log_keep must be at most 1000"),
            "{e}"
        );
        let e = err("[supervisor]\nlog_buffer_total = 2000000000\n");
        assert!(
            e.starts_with("t.toml:2:20: log_buffer_total must be at most"),
            "{e}"
        );
        let e = err("[supervisor]\nlog_dir = \"\"\n");
        assert!(
            e.starts_with("t.toml:2:11: log_dir must be a non-empty path"),
            "{e}"
        );
        let e = err("[supervisor]\nlog_dir = \"/nonexistent/x\"\n");
        assert!(
            e.contains("cannot write log files in /nonexistent/x: No such file"),
            "{e}"
        );
    }

    #[test]
    fn max_seconds_zero_is_refused() {
        assert!(err("[supervisor]\nmax_seconds = 0\n").starts_with("t.toml:2:15: "));
    }

    /// A template `w` with `lines` added to it, then `children`.
    fn with_w(lines: &str, children: &str) -> String {
        format!("[templates.w]\ncommand = [\"x\"]\n{lines}{children}")
    }

    #[test]
    fn issue_11_template_keys_default_as_documented() {
        let config = parse(&with_w("", ""), "t").unwrap();
        let w = &config.templates["w"];
        assert!(w.after.is_empty());
        assert_eq!(w.restart_with, RestartWith::Alone);
        assert_eq!(w.watchdog_ms, None);
        assert_eq!(w.health, None);
        assert!(!w.critical);
        assert_eq!(w.on_reload, OnReload::Restart);
        assert!(w.same_effect(&Template::new("w", vec!["x".to_string()])));
    }

    #[test]
    fn issue_11_template_keys_are_read() {
        let text = "[templates.db]\ncommand = [\"db\"]\n\
                    [templates.w]\ncommand = [\"x\"]\nafter = [\"db\", \"cache\", \"db\"]\n\
                    restart_with = \"dependents\"\nwatchdog_ms = 86400000\n\
                    health = { command = [\"check\", \"--quick\"], interval_ms = 1, timeout_ms = 86400000, failures = 1000 }\n\
                    critical = true\non_reload = \"rolling\"\n\
                    [[children]]\nname = \"db\"\ntemplate = \"db\"\n\
                    [[children]]\nname = \"cache\"\ntemplate = \"db\"\n";
        let config = parse(text, "t").unwrap();
        let w = &config.templates["w"];
        // Kept as written: duplicates go when a spec is built.
        assert_eq!(w.after, ["db", "cache", "db"]);
        assert_eq!(w.restart_with, RestartWith::Dependents);
        assert_eq!(w.watchdog_ms, Some(86_400_000));
        assert_eq!(
            w.health,
            Some(HealthCheck {
                command: vec!["check".to_string(), "--quick".to_string()],
                interval_ms: 1,
                timeout_ms: 86_400_000,
                failures: 1000,
            })
        );
        assert!(w.critical);
        assert_eq!(w.on_reload, OnReload::Rolling);
        let db = &config.templates["db"];
        assert!(db.after.is_empty() && !db.critical);
    }

    #[test]
    fn health_as_a_section_gets_the_defaults() {
        let config = parse(
            &with_w("[templates.w.health]\ncommand = [\"check\"]\n", ""),
            "t",
        )
        .unwrap();
        assert_eq!(
            config.templates["w"].health,
            Some(HealthCheck {
                command: vec!["check".to_string()],
                interval_ms: HealthCheck::DEFAULT_INTERVAL_MS,
                timeout_ms: HealthCheck::DEFAULT_TIMEOUT_MS,
                failures: HealthCheck::DEFAULT_FAILURES,
            })
        );
    }

    #[test]
    fn children_keep_their_own_after_and_critical() {
        let text = "[templates.d]\ncommand = [\"d\"]\n\
                    [templates.w]\ncommand = [\"x\"]\nafter = [\"db\"]\n\
                    [[children]]\nname = \"db\"\ntemplate = \"d\"\n\
                    [[children]]\nname = \"web\"\ntemplate = \"w\"\nafter = [\"cache\", \"cache\"]\ncritical = true\n\
                    [[children]]\nname = \"cache\"\ntemplate = \"d\"\n";
        let config = parse(text, "t").unwrap();
        let web = &config.children[1];
        assert_eq!(web.name, "web");
        assert_eq!(web.after, ["cache", "cache"]);
        assert!(web.critical);
        assert!(config.children[0].after.is_empty() && !config.children[0].critical);
        assert_eq!(config.templates["w"].after, ["db"]);
        let spec =
            crate::core::ChildSpec::for_boot_child(web, config.templates["w"].clone()).unwrap();
        let after: Vec<&str> = spec.after.iter().map(|n| &**n).collect();
        assert_eq!(after, ["db", "cache"]);
        assert!(spec.critical);
    }

    #[test]
    fn issue_11_keys_of_the_wrong_type_point_at_the_value() {
        for (line, column) in [
            ("after = \"db\"\n", 9),
            ("after = [1]\n", 10),
            ("restart_with = \"everyone\"\n", 16),
            ("watchdog_ms = \"5s\"\n", 15),
            ("watchdog_ms = 1.5\n", 15),
            ("health = [\"check\"]\n", 10),
            ("health = 5\n", 10),
            ("health = { command = \"check\" }\n", 22),
            ("health = { command = [\"c\"], failures = \"3\" }\n", 40),
            ("critical = \"yes\"\n", 12),
            ("on_reload = \"later\"\n", 13),
        ] {
            let e = err(&with_w(line, ""));
            assert!(
                e.starts_with(&format!("t.toml:3:{column}: ")),
                "{line:?}: {e}"
            );
        }
        let e = err(&with_w("", "[[children]]\nname = \"a\"\ncritical = 1\n"));
        assert!(e.starts_with("t.toml:5:12: "), "{e}");
        let e = err(&with_w("", "[[children]]\nname = \"a\"\nafter = \"b\"\n"));
        assert!(e.starts_with("t.toml:5:9: "), "{e}");
    }

    #[test]
    fn issue_11_numbers_out_of_range_point_at_them() {
        for (line, column, message) in [
            (
                "watchdog_ms = 0\n",
                15,
                "template \"w\": watchdog_ms must be between 1 and 86400000, not 0",
            ),
            (
                "watchdog_ms = 86400001\n",
                15,
                "template \"w\": watchdog_ms must be between 1 and 86400000",
            ),
            (
                "watchdog_ms = -1\n",
                15,
                "template \"w\": watchdog_ms must be between 1 and 86400000, not -1",
            ),
            (
                "health = { command = [\"c\"], interval_ms = 0 }\n",
                43,
                "template \"w\": health.interval_ms must be between 1 and 86400000",
            ),
            (
                "health = { command = [\"c\"], timeout_ms = 86400001 }\n",
                42,
                "template \"w\": health.timeout_ms must be between 1 and 86400000",
            ),
            (
                "health = { command = [\"c\"], failures = 0 }\n",
                40,
                "template \"w\": health.failures must be between 1 and 1000, not 0",
            ),
            (
                "health = { command = [\"c\"], failures = 1001 }\n",
                40,
                "template \"w\": health.failures must be between 1 and 1000",
            ),
            (
                "health = { command = [\"c\"], failures = 5000000000 }\n",
                40,
                "template \"w\": health.failures must be between 1 and 1000",
            ),
        ] {
            let e = err(&with_w(line, ""));
            assert!(
                e.starts_with(&format!("t.toml:3:{column}: {message}")),
                "{line:?}: {e}"
            );
        }
    }

    #[test]
    fn a_health_check_needs_a_command() {
        let e = err(&with_w("health = { command = [] }\n", ""));
        assert!(
            e.starts_with("t.toml:3:22: template \"w\": health.command is empty"),
            "{e}"
        );
        let e = err(&with_w("health = { command = [\"\", \"x\"] }\n", ""));
        assert!(
            e.starts_with("t.toml:3:22: template \"w\": health.command is empty"),
            "{e}"
        );
        let e = err(&with_w(
            "health = { command = [\"c\", \"a\\u0000b\"] }\n",
            "",
        ));
        assert!(
            e.contains("health.command argument \"a\\0b\" contains a NUL byte"),
            "{e}"
        );
        let e = err(&with_w("health = { interval_ms = 5 }\n", ""));
        assert!(
            e.starts_with("t.toml:3:10: template \"w\": health has no command"),
            "{e}"
        );
        let e = err(&with_w("[templates.w.health]\ntimeout_ms = 5\n", ""));
        assert!(
            e.starts_with("t.toml:3:1: template \"w\": health has no command"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_health_points_at_it() {
        let e = err(&with_w(
            "health = { command = [\"c\"], intervall_ms = 5 }\n",
            "",
        ));
        assert!(e.starts_with("t.toml:3:29: "), "{e}");
        assert!(e.contains("intervall_ms"), "{e}");
        let e = err(&with_w(
            "[templates.w.health]\ncommand = [\"c\"]\n  retries = 3\n",
            "",
        ));
        assert!(e.starts_with("t.toml:5:3: "), "{e}");
        assert!(e.contains("retries"), "{e}");
    }

    #[test]
    fn after_must_name_boot_children() {
        let children = "[[children]]\nname = \"db\"\n[[children]]\nname = \"web\"\nafter = [\"db\", \"dbb\"]\n";
        let e = err(&with_w("", children));
        assert!(
            e.starts_with(
                "t.toml:7:16: child \"web\": after names \"dbb\", which is not a [[children]] name"
            ),
            "{e}"
        );
        assert!(e.contains("the [[children]] are: db, web)"), "{e}");
        // A template's unknown name points at the template's string, and is checked
        // even when no child uses the template.
        let text = "[templates.w]\ncommand = [\"x\"]\n[templates.u]\ncommand = [\"x\"]\nafter = [\"db\", \"w\"]\n[[children]]\nname = \"db\"\ntemplate = \"w\"\n";
        let e = err(text);
        assert!(
            e.starts_with(
                "t.toml:5:16: template \"u\": after names \"w\", which is not a [[children]] name"
            ),
            "{e}"
        );
        let e = err(&with_w("after = [\"db\"]\n", ""));
        assert!(
            e.starts_with("t.toml:3:10: template \"w\": after names \"db\"")
                && e.contains("the config has no [[children]]"),
            "{e}"
        );
    }

    #[test]
    fn the_unknown_name_message_shortens_a_long_list_of_children() {
        let mut children = String::new();
        for i in 0..25 {
            children.push_str(&format!("[[children]]\nname = \"c{i}\"\n"));
        }
        children.push_str("after = [\"nope\"]\n");
        let e = err(&with_w("", &children));
        assert!(
            e.contains("the [[children]] are: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 and 15 more)"),
            "{e}"
        );
    }

    #[test]
    fn a_child_after_itself_is_refused() {
        let e = err(&with_w(
            "",
            "[[children]]\nname = \"a\"\n[[children]]\nname = \"b\"\nafter = [\"a\", \"b\"]\n",
        ));
        assert!(
            e.starts_with("t.toml:7:15: child \"b\" is after itself"),
            "{e}"
        );
        // Through its template: the error points at the template's string.
        let e = err(&with_w(
            "after = [\"b\"]\n",
            "[[children]]\nname = \"a\"\ntemplate = \"v\"\n[[children]]\nname = \"b\"\ntemplate = \"w\"\n[templates.v]\ncommand = [\"v\"]\n",
        ));
        assert!(
            e.starts_with("t.toml:3:10: template \"w\": after names \"b\", which is a child of this template: it would be after itself"),
            "{e}"
        );
    }

    #[test]
    fn a_three_cycle_is_named_and_points_at_the_entry_that_closes_it() {
        let e = err(&with_w(
            "",
            "[[children]]\nname = \"a\"\nafter = [\"b\"]\n\
             [[children]]\nname = \"b\"\nafter = [\"c\"]\n\
             [[children]]\nname = \"free\"\n\
             [[children]]\nname = \"c\"\nafter = [\"free\", \"a\"]\n",
        ));
        assert!(
            e.starts_with(
                "t.toml:13:18: child \"c\" is after \"a\", which closes a cycle: a -> b -> c -> a"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_cycle_through_a_templates_after_points_at_the_templates_entry() {
        // a is after b (its own), b is after a (through its template t).
        let text = "[templates.s]\ncommand = [\"x\"]\n\
                    [templates.t]\ncommand = [\"x\"]\nafter = [\"a\"]\n\
                    [[children]]\nname = \"a\"\ntemplate = \"s\"\nafter = [\"b\"]\n\
                    [[children]]\nname = \"b\"\ntemplate = \"t\"\n";
        let e = err(text);
        assert!(
            e.starts_with("t.toml:5:10: child \"b\" is after \"a\" through its template \"t\", which closes a cycle: a -> b -> a"),
            "{e}"
        );
    }

    #[test]
    fn acyclic_graphs_with_shared_and_repeated_names_load() {
        // A diamond, a name listed twice, and a template's after shared by two children.
        let text = "[templates.s]\ncommand = [\"x\"]\n\
                    [templates.t]\ncommand = [\"x\"]\nafter = [\"db\"]\n\
                    [[children]]\nname = \"web\"\ntemplate = \"t\"\nafter = [\"cache\", \"api\", \"cache\"]\n\
                    [[children]]\nname = \"api\"\ntemplate = \"t\"\nafter = [\"cache\"]\n\
                    [[children]]\nname = \"cache\"\ntemplate = \"s\"\nafter = [\"db\"]\n\
                    [[children]]\nname = \"db\"\ntemplate = \"s\"\n";
        let config = parse(text, "t").unwrap();
        assert_eq!(config.children.len(), 4);
    }

    #[test]
    fn the_documented_start_order_example_is_valid() {
        let doc = include_str!("../docs/CONFIG.md");
        let section = doc
            .split("\n## Example: start order, liveness, a critical worker\n")
            .nth(1)
            .expect("docs/CONFIG.md has the example");
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|block| block.split("```").next())
            .expect("the example has a toml block");
        let config = parse(toml, "docs/CONFIG.md").unwrap_or_else(|e| panic!("{e}"));
        let web = &config.templates["web"];
        assert_eq!(web.after, ["db", "cache"]);
        assert_eq!(web.watchdog_ms, Some(20_000));
        assert_eq!(web.health.as_ref().map(|h| h.failures), Some(3));
        assert_eq!(web.on_reload, OnReload::Rolling);
        assert_eq!(config.templates["db"].restart_with, RestartWith::Dependents);
        assert!(config.children[2].critical && !web.critical);
    }

    /// `n` children of template `w`, each after the one `next(i)` names, if any.
    fn chain(n: usize, after: impl Fn(usize) -> Option<usize>) -> String {
        let mut text = String::from("[templates.w]\ncommand = [\"x\"]\n");
        for i in 0..n {
            text.push_str(&format!("[[children]]\nname = \"c{i}\"\n"));
            if let Some(j) = after(i) {
                text.push_str(&format!("after = [\"c{j}\"]\n"));
            }
        }
        text
    }

    /// Runs `f` on a thread with a small stack: a check that recursed once per child
    /// would overflow it.
    fn on_a_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_chain_of_2000_children_loads_without_deep_recursion() {
        const N: usize = 2000;
        // c1 after c0, c2 after c1, ...
        let forward = chain(N, |i| i.checked_sub(1));
        // c0 after c1, c1 after c2, ...: the search goes 2000 deep from c0.
        let backward = chain(N, |i| (i + 1 < N).then_some(i + 1));
        let (forward, backward) = on_a_small_stack(move || {
            (
                parse(&forward, "t").map(|c| c.children.len()),
                parse(&backward, "t").map(|c| c.children.len()),
            )
        });
        assert_eq!(forward, Ok(N));
        assert_eq!(backward, Ok(N));
    }

    #[test]
    fn a_2000_long_cycle_is_found_and_its_name_shortened() {
        const N: usize = 2000;
        let cycle = chain(N, |i| Some((i + 1) % N));
        let e = on_a_small_stack(move || parse(&cycle, "t").map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("child \"c1999\" is after \"c0\", which closes a cycle: c0 -> c1 -> c2 -> c3 -> c4 -> c5 -> ... (1990 more) ... -> c1996 -> c1997 -> c1998 -> c1999 -> c0 ("),
            "{e}"
        );
        let line = 2 + 3 * N;
        assert!(e.starts_with(&format!("t:{line}:10: ")), "{e}");
    }
}
