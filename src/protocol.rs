//! The wire protocol: the one definition of what travels over the control socket.
//!
//! The daemon, the CLI and the integration tests all use these types, so the three can
//! never disagree about a field name. The format is newline-delimited JSON: one
//! [`Request`] object per line from the client, one [`Reply`] object per line back, in the
//! order the requests arrived. `docs/PROTOCOL.md` documents every command, field and
//! error kind; a test checks that the document names each of them.
//!
//! This module does no I/O. [`decode_request`] turns one line into a request or a
//! precise `bad_request` error; [`Reply::encode`] produces one line.

use serde::{Deserialize, Serialize};

/// The longest request line the daemon accepts, newline excluded. A longer line is
/// answered with `bad_request` and the connection is closed.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The longest `timeout_ms` a `stop` or `restart` may ask for: one day. A larger value
/// is answered with `bad_request` (it would keep the request, and the replies queued
/// behind it on its connection, waiting for ever).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A control request: one JSON object per line, discriminated by `"cmd"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Start a named worker from a template (DynamicSupervisor.start_child).
    Start {
        name: String,
        /// Template name; optional when the config has exactly one template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// Arguments appended to the template's command.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Replaces the template's command (program and its arguments); the template's
        /// other settings still apply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<Vec<String>>,
        /// The worker's own environment variables, on top of its template's `env` and
        /// `env_file`s: `{"KEY": "VALUE"}`.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        env: std::collections::BTreeMap<String, String>,
        /// Under the dead man's switch (`fence`): stopped when the switch is armed and
        /// not renewed in time (the cluster agent's workers).
        #[serde(default, skip_serializing_if = "is_false")]
        fenced: bool,
    },
    /// Stop a worker: stop signal to its process group, SIGKILL after the timeout.
    /// Answered once the worker has been reaped.
    /// Exactly one of `name`, `names`, `template` and `all` says which; all but `name`
    /// are answered with one result per worker (`results`).
    Stop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Several workers, stopped together.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        /// Every registered worker of this template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// Every registered worker.
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Send a signal to the worker's pid as if from outside; the restart rule applies.
    /// Exactly one of `name`, `names`, `template` and `all` says which (`template` and
    /// `all`: the workers with a live process).
    Kill {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
        /// Signal name (`SIGKILL`, `KILL`) or number (`9` or `"9"`); default SIGKILL.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "signal_name_or_number"
        )]
        signal: Option<String>,
    },
    /// Write `message` plus a newline to the worker's stdin.
    Cast { name: String, message: String },
    /// The pid registered under `name`.
    Lookup { name: String },
    /// How many names are registered.
    Count,
    /// Every registered worker; or only those named in `names`, or only the instances
    /// of `template` (both: the named ones of that template).
    List {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
    },
    /// Stop every worker and exit the daemon.
    Shutdown,
    /// Stop a worker (as `stop` does), then start it again with the same spec. An
    /// operator action: not counted as a crash. Exactly one of `name`, `names`,
    /// `template` and `all` says which; without `rolling`, all but `name` restart every
    /// selected worker at once and answer with one result per worker (`results`).
    Restart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Several workers, restarted together (not with `rolling`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        /// Every running instance of this template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// Every running worker.
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
        /// One at a time, each once the one before it is ready again; answered at the
        /// end (or when one fails to get ready, which stops the roll).
        #[serde(default, skip_serializing_if = "is_false")]
        rolling: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// The name of the worker owning `pid` (its main pid, or any pid in its process
    /// group).
    Whois { pid: i32 },
    /// Turn this connection into an event stream: one JSON [`Event`] per line. Only
    /// events about `names` are sent, or all events when `names` is empty.
    Watch {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// Read the config file again and apply the difference.
    Reload,
    /// Answer once the worker is ready (`READY=1` for `ready = "notify"` templates; at
    /// once for the others), or with `not_ready` if it exits or times out first.
    WaitReady { name: String },
    /// The processes of each worker (its cgroup's, or its process group's), or of
    /// one worker when `name` is given.
    Ps {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The last `lines` lines a worker name wrote (kept across its restarts and after
    /// it stopped), oldest first; with `follow`, the connection then becomes a stream
    /// of the lines it writes from now on ([`LogEvent`]).
    Logs {
        name: String,
        #[serde(default = "default_log_lines")]
        lines: usize,
        #[serde(default, skip_serializing_if = "is_false")]
        follow: bool,
    },
    /// Close and reopen every worker's log file (after an external logrotate renamed
    /// them).
    ReopenLogs,
    /// Whether every boot child and every critical worker is running and ready (and
    /// passing its health check): for container and orchestrator probes.
    Health,
    /// The daemon's version, protocol version, pid and uptime.
    Version,
    /// The daemon's metrics in the Prometheus text exposition format (0.0.4), as one
    /// string in the reply's `metrics`.
    Metrics,
    /// Arm (or renew) the daemon's dead man's switch: unless another `fence` comes
    /// within `within_ms`, the daemon stops every worker started with `fenced` (as
    /// `stop` does, SIGKILL after `timeout_ms` or each one's `shutdown_ms`; their
    /// `stopped` events say [`FENCED_REASON`]). Without `within_ms` it disarms the
    /// switch. The cluster agent's backstop: its workers stop before its lease can
    /// expire even when the agent itself is frozen or dead (docs/CLUSTER.md,
    /// "Fencing").
    Fence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// The `reason` of the `stopped` event of a worker stopped by the dead man's switch
/// (`fence`): the stop was not an end its owner asked for.
pub const FENCED_REASON: &str = "fenced: the fence was not renewed in time";

/// The protocol's version, in the `version` reply: raised when a change would break a
/// client written for the previous one (new commands and fields do not).
pub const PROTOCOL_VERSION: u32 = 1;

/// `kill`'s `signal`: a name (`"SIGTERM"`), or a number, as a JSON number (`15`) or a
/// string (`"15"`).
fn signal_name_or_number<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NameOrNumber {
        Name(String),
        Number(i64),
    }
    Ok(
        match Option::<NameOrNumber>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "field `signal` must be a signal name such as \"SIGTERM\" or a number such as 15",
            )
        })? {
            Some(NameOrNumber::Name(name)) => Some(name),
            Some(NameOrNumber::Number(number)) => Some(number.to_string()),
            None => None,
        },
    )
}

/// Which workers a `stop`, `kill` or `restart` is about: its `name`, `names`,
/// `template` and `all` fields, of which exactly one is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `name`: one worker, answered as one (the reply of the single-worker form).
    Name(String),
    /// `names`, `template` or `all`: answered with one result per worker.
    Many(Selection),
}

/// The workers of a request that names several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Names(Vec<String>),
    Template(String),
    All,
}

impl Target {
    /// The target of a request's fields, or the `bad_request` message.
    pub fn of(
        cmd: Cmd,
        name: Option<&str>,
        names: &[String],
        template: Option<&str>,
        all: bool,
    ) -> Result<Target, String> {
        match (name, names.is_empty(), template, all) {
            (Some(name), true, None, false) => Ok(Target::Name(name.to_string())),
            (None, false, None, false) => Ok(Target::Many(Selection::Names(names.to_vec()))),
            (None, true, Some(template), false) => {
                Ok(Target::Many(Selection::Template(template.to_string())))
            }
            (None, true, None, true) => Ok(Target::Many(Selection::All)),
            (None, true, None, false) => Err(format!(
                "`{cmd}` needs one of `name`, `names` (not empty), `template` or `all`"
            )),
            _ => Err(format!(
                "`{cmd}` takes only one of `name`, `names`, `template` and `all`"
            )),
        }
    }
}

/// How many lines `logs` returns when the request does not say.
pub const DEFAULT_LOG_LINES: usize = 50;

fn default_log_lines() -> usize {
    DEFAULT_LOG_LINES
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Request {
    /// `list` of every worker.
    pub fn list() -> Request {
        Request::List {
            names: Vec::new(),
            template: None,
        }
    }

    /// `stop` of one worker (`None`: its template's `shutdown_ms`).
    pub fn stop(name: &str, timeout_ms: Option<u64>) -> Request {
        Request::Stop {
            name: Some(name.to_string()),
            names: Vec::new(),
            template: None,
            all: false,
            timeout_ms,
        }
    }

    /// `kill` of one worker (`None`: SIGKILL).
    pub fn kill(name: &str, signal: Option<&str>) -> Request {
        Request::Kill {
            name: Some(name.to_string()),
            names: Vec::new(),
            template: None,
            all: false,
            signal: signal.map(str::to_string),
        }
    }

    /// Which workers a `stop`, `kill` or `restart` is about (`Ok(None)` for the other
    /// commands), or the `bad_request` message when its fields do not say exactly one.
    pub fn target(&self) -> Result<Option<Target>, String> {
        let cmd = self.cmd();
        match self {
            Request::Stop {
                name,
                names,
                template,
                all,
                ..
            }
            | Request::Kill {
                name,
                names,
                template,
                all,
                ..
            }
            | Request::Restart {
                name,
                names,
                template,
                all,
                ..
            } => Target::of(cmd, name.as_deref(), names, template.as_deref(), *all).map(Some),
            _ => Ok(None),
        }
    }

    /// Which command this is.
    pub fn cmd(&self) -> Cmd {
        match self {
            Request::Start { .. } => Cmd::Start,
            Request::Stop { .. } => Cmd::Stop,
            Request::Kill { .. } => Cmd::Kill,
            Request::Cast { .. } => Cmd::Cast,
            Request::Lookup { .. } => Cmd::Lookup,
            Request::Count => Cmd::Count,
            Request::List { .. } => Cmd::List,
            Request::Shutdown => Cmd::Shutdown,
            Request::Restart { .. } => Cmd::Restart,
            Request::Whois { .. } => Cmd::Whois,
            Request::Watch { .. } => Cmd::Watch,
            Request::Reload => Cmd::Reload,
            Request::WaitReady { .. } => Cmd::WaitReady,
            Request::Ps { .. } => Cmd::Ps,
            Request::Logs { .. } => Cmd::Logs,
            Request::ReopenLogs => Cmd::ReopenLogs,
            Request::Health => Cmd::Health,
            Request::Version => Cmd::Version,
            Request::Metrics => Cmd::Metrics,
            Request::Fence { .. } => Cmd::Fence,
        }
    }
}

/// The commands, without their fields: the one list from which the wire names (the
/// decoder's "unknown command" message, the docs test) and the read-only access rule
/// are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    Start,
    Stop,
    Kill,
    Cast,
    Lookup,
    Count,
    List,
    Shutdown,
    Restart,
    Whois,
    Watch,
    Reload,
    WaitReady,
    Ps,
    Logs,
    ReopenLogs,
    Health,
    Version,
    Metrics,
    Fence,
}

impl Cmd {
    /// Every command, in documentation order.
    pub const ALL: [Cmd; 20] = [
        Cmd::Start,
        Cmd::Stop,
        Cmd::Kill,
        Cmd::Cast,
        Cmd::Lookup,
        Cmd::Count,
        Cmd::List,
        Cmd::Shutdown,
        Cmd::Restart,
        Cmd::Whois,
        Cmd::Watch,
        Cmd::Reload,
        Cmd::WaitReady,
        Cmd::Ps,
        Cmd::Logs,
        Cmd::ReopenLogs,
        Cmd::Health,
        Cmd::Version,
        Cmd::Metrics,
        Cmd::Fence,
    ];

    /// The wire name: the value of `"cmd"` (serde's snake_case of the variant).
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Start => "start",
            Cmd::Stop => "stop",
            Cmd::Kill => "kill",
            Cmd::Cast => "cast",
            Cmd::Lookup => "lookup",
            Cmd::Count => "count",
            Cmd::List => "list",
            Cmd::Shutdown => "shutdown",
            Cmd::Restart => "restart",
            Cmd::Whois => "whois",
            Cmd::Watch => "watch",
            Cmd::Reload => "reload",
            Cmd::WaitReady => "wait_ready",
            Cmd::Ps => "ps",
            Cmd::Logs => "logs",
            Cmd::ReopenLogs => "reopen_logs",
            Cmd::Health => "health",
            Cmd::Version => "version",
            Cmd::Metrics => "metrics",
            Cmd::Fence => "fence",
        }
    }

    /// The command with this wire name.
    pub fn from_name(name: &str) -> Option<Cmd> {
        Cmd::ALL.into_iter().find(|cmd| cmd.name() == name)
    }

    /// Whether a read-only peer may use it: it only reads the daemon's state (or
    /// waits for a change of it) and changes nothing.
    pub fn read_only(self) -> bool {
        match self {
            Cmd::Lookup
            | Cmd::Count
            | Cmd::List
            | Cmd::Whois
            | Cmd::Watch
            | Cmd::Ps
            | Cmd::WaitReady
            | Cmd::Logs
            | Cmd::Health
            | Cmd::Version => true,
            Cmd::Metrics => true,
            Cmd::Start
            | Cmd::Stop
            | Cmd::Kill
            | Cmd::Cast
            | Cmd::Shutdown
            | Cmd::Restart
            | Cmd::Reload
            | Cmd::ReopenLogs
            | Cmd::Fence => false,
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stable error kinds. Clients match on these strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed line: invalid JSON, unknown command, missing or mistyped field, too long.
    BadRequest,
    /// No worker is registered under that name.
    NotFound,
    /// The name is already registered; the error carries the live `pid`.
    AlreadyStarted,
    /// The worker name is empty, too long or has characters outside the allowed set.
    InvalidName,
    /// The named template does not exist, or none was named and the config has several.
    UnknownTemplate,
    /// A signal name or number that the daemon does not know.
    InvalidSignal,
    /// Starting the worker failed: its setup before exec, or exec itself (the message
    /// says which step, with the OS reason).
    SpawnFailed,
    /// The worker's stdin buffer is full; the message was not queued.
    MailboxFull,
    /// The worker has no live process right now (it is waiting to be restarted, or its
    /// stdin is closed).
    NotRunning,
    /// The daemon is shutting down and accepts no new workers.
    ShuttingDown,
    /// `start` while `[supervisor] max_children` workers are registered.
    MaxChildren,
    /// `reload` found the config invalid (the message has file:line:column), or the
    /// daemon runs without a config file; nothing was changed.
    InvalidConfig,
    /// The peer may not use this command (or, at connect, the socket at all; then the
    /// connection is closed).
    PermissionDenied,
    /// `max_connections` clients are connected; this one is closed.
    TooManyConnections,
    /// `wait_ready`: the worker exited, or did not send `READY=1` within its
    /// `ready_timeout_ms` (it was killed; the restart rule applies).
    NotReady,
    /// The change was made (a worker started or stopped), but the state file could not
    /// be written: after a daemon restart it would be lost. The message says which.
    NotRecorded,
    /// `start` of a worker whose `after` names a worker that is not registered, or
    /// that did not become running and ready within the new worker's
    /// `ready_timeout_ms`.
    DependencyNotRunning,
    /// `start` (or `restart`) of a worker whose template's `env_file` is missing (and
    /// not optional), unreadable, too large, or has a syntax error (the message names
    /// the file and line); nothing was spawned.
    InvalidEnvFile,
}

impl ErrorKind {
    /// Every kind, in documentation order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::BadRequest,
        ErrorKind::NotFound,
        ErrorKind::AlreadyStarted,
        ErrorKind::InvalidName,
        ErrorKind::UnknownTemplate,
        ErrorKind::InvalidSignal,
        ErrorKind::SpawnFailed,
        ErrorKind::MailboxFull,
        ErrorKind::NotRunning,
        ErrorKind::ShuttingDown,
        ErrorKind::MaxChildren,
        ErrorKind::InvalidConfig,
        ErrorKind::PermissionDenied,
        ErrorKind::TooManyConnections,
        ErrorKind::NotReady,
        ErrorKind::NotRecorded,
        ErrorKind::DependencyNotRunning,
        ErrorKind::InvalidEnvFile,
    ];

    /// The wire string of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyStarted => "already_started",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::UnknownTemplate => "unknown_template",
            ErrorKind::InvalidSignal => "invalid_signal",
            ErrorKind::SpawnFailed => "spawn_failed",
            ErrorKind::MailboxFull => "mailbox_full",
            ErrorKind::NotRunning => "not_running",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::MaxChildren => "max_children",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::NotReady => "not_ready",
            ErrorKind::NotRecorded => "not_recorded",
            ErrorKind::DependencyNotRunning => "dependency_not_running",
            ErrorKind::InvalidEnvFile => "invalid_env_file",
        }
    }
}

/// The error object of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
    /// For `already_started`: the pid that holds the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

/// How a process ended, as reported on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExitReport {
    /// It called exit with this code.
    Exited { code: i32 },
    /// A signal ended it.
    Signaled {
        /// Name such as `SIGTERM` or `SIGRTMIN+2` (`src/signal.rs`).
        signal: String,
        #[serde(default)]
        core_dumped: bool,
    },
}

impl std::fmt::Display for ExitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReport::Exited { code } => write!(f, "exit {code}"),
            ExitReport::Signaled {
                signal,
                core_dumped: true,
            } => write!(f, "signal {signal} (core dumped)"),
            ExitReport::Signaled { signal, .. } => write!(f, "signal {signal}"),
        }
    }
}

/// The answer to `stop`: how the worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReport {
    pub name: String,
    /// The pid that was stopped; absent if the worker had no live process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// How it ended; absent if it had no live process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitReport>,
    /// True when it outlived its timeout and was SIGKILLed.
    pub killed: bool,
}

/// The state of a registered worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStateName {
    /// A live process that has not reported `READY=1` yet (`ready = "notify"`).
    Starting,
    /// A live process.
    Running,
    /// Being stopped by dynsup; the process is still alive.
    Stopping,
    /// Its main process ended (on its own or stopped), and what is left of its process
    /// group (or cgroup) is being stopped before it is restarted or removed.
    Draining,
    /// Its restart failed to exec; another attempt is due at once.
    Restarting,
    /// Waiting for its backoff delay before the next restart.
    Backoff,
    /// Gave up after its own restart limit (`on_limit = "give_up"`); stays listed with
    /// its last exit until stopped or started again.
    Failed,
    /// Not started yet: a worker it is `after` is not running and ready
    /// (`waiting_for` in `list` names them).
    Waiting,
}

impl WorkerStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStateName::Starting => "starting",
            WorkerStateName::Running => "running",
            WorkerStateName::Stopping => "stopping",
            WorkerStateName::Draining => "draining",
            WorkerStateName::Restarting => "restarting",
            WorkerStateName::Backoff => "backoff",
            WorkerStateName::Failed => "failed",
            WorkerStateName::Waiting => "waiting",
        }
    }
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    /// Absent while `restarting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub template: String,
    /// `permanent`, `transient` or `temporary`.
    pub restart: String,
    pub state: WorkerStateName,
    /// Restart attempts after exits (each counted toward the intensity, failed
    /// respawns included).
    pub restarts: u32,
    /// Of those, how many fall within the restart window that limits this worker.
    #[serde(default)]
    pub restarts_in_window: u32,
    /// When the current process was started, in milliseconds since the Unix epoch
    /// (0 when it has none).
    pub started_at_ms: u64,
    /// How its last process ended, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
    /// In `backoff` or `restarting`: when the next start is due (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try_ms: Option<u64>,
    /// Started at run time (`start`, or restored from the state file), not a
    /// `[[children]]` entry of the config.
    #[serde(default)]
    pub dynamic: bool,
    /// It has a process that is ready (always true once exec'd, unless the template
    /// waits for `READY=1`).
    #[serde(default)]
    pub ready: bool,
    /// The last `STATUS=` the worker sent over sd_notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Output lines of this name dropped so far (over its log rate limit, or because
    /// the daemon's own log could not keep up); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_dropped: u64,
    /// In `waiting`: the workers it is `after` that are not running and ready yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// Its health check's last result (templates with `health` only), since its
    /// current process became ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
    /// Its end (given up, or ended for good) shuts the daemon down.
    #[serde(default, skip_serializing_if = "is_false")]
    pub critical: bool,
}

/// A worker's last health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// The last check passed.
    pub ok: bool,
    /// Failed checks in a row (0 after a pass).
    pub failures: u32,
    /// When the last check ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What the last check said: `exit 0`, `exit 1: <its first output line>`, `timed
    /// out after 2000 ms`, ...
    pub message: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `ps`: one worker's processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    pub name: String,
    pub pids: Vec<i32>,
}

/// How a worker's last process ended: `exit 1`, `signal SIGKILL`, `stopped`,
/// `spawn failed: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    pub reason: String,
    pub at_ms: u64,
    /// How the process ended, when it had one (a `watchdog` or `health` kill, say, has
    /// `signal SIGABRT` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitReport>,
}

/// `count` in OTP's `count_children` shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Every registered name.
    pub total: usize,
    /// Names with a live process (running or stopping).
    pub active: usize,
    /// Waiting to be restarted (`backoff` and `restarting`).
    pub backoff: usize,
    pub failed: usize,
    pub stopping: usize,
    /// Waiting for the workers they are `after`.
    #[serde(default)]
    pub waiting: usize,
}

/// What `reload` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// New `[[children]]`, started.
    pub started: Vec<String>,
    /// `[[children]]` no longer in the config, being stopped.
    pub stopped: Vec<String>,
    /// `[[children]]` whose effective spec changed, being restarted with the new one.
    pub restarted: Vec<String>,
    /// `[[children]]` whose spec did not change: not touched.
    pub unchanged: Vec<String>,
    /// Entries that could not be applied, with the reason (for example a new child
    /// whose name a dynamic worker already holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// `[supervisor]` settings the new config changes that a reload cannot apply:
    /// they take effect when the daemon is restarted (`socket`, `state_file`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_daemon_restart: Vec<String>,
}

/// One line of a `watch` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A process was started for `name` (first start or restart).
    Started { name: String, pid: i32 },
    /// The worker reported `READY=1` (`ready = "notify"` templates only).
    Ready { name: String, pid: i32 },
    /// A worker's process ended: on its own, or stopped by an operator `restart`
    /// (not by `stop` or shutdown, which send `stopped`).
    Exited {
        name: String,
        pid: i32,
        reason: String,
        exit: ExitReport,
    },
    /// A restart is scheduled after `delay_ms`.
    Restarting { name: String, delay_ms: u64 },
    /// The worker was stopped by dynsup (or left the registry after a clean exit) and
    /// is no longer registered.
    Stopped { name: String, reason: String },
    /// The worker reached its own restart limit and was given up.
    Failed { name: String, reason: String },
    /// The supervisor-wide restart intensity was reached; the daemon is shutting down.
    IntensityTripped { name: String },
    /// The worker waits for the workers it is `after` (`on`) before it starts.
    Waiting { name: String, on: Vec<String> },
    /// A health check failed (`failures` in a row); at the template's `failures` the
    /// worker is killed and the restart rule applies.
    Unhealthy {
        name: String,
        failures: u32,
        message: String,
    },
    /// A health check passed after one or more failed.
    Healthy { name: String },
    /// The daemon is shutting down.
    Shutdown,
    /// This watcher did not read fast enough; `dropped` events were discarded.
    Lagged { dropped: u64 },
}

impl Event {
    /// The worker the event is about, if any (for `watch NAME` filters).
    pub fn name(&self) -> Option<&str> {
        match self {
            Event::Started { name, .. }
            | Event::Ready { name, .. }
            | Event::Exited { name, .. }
            | Event::Restarting { name, .. }
            | Event::Stopped { name, .. }
            | Event::Failed { name, .. }
            | Event::IntensityTripped { name }
            | Event::Waiting { name, .. }
            | Event::Unhealthy { name, .. }
            | Event::Healthy { name } => Some(name),
            Event::Shutdown | Event::Lagged { .. } => None,
        }
    }

    /// One JSON line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// One line a worker wrote, as `logs` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the daemon read it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The process that wrote it (the worker's pid at the time).
    pub pid: i32,
    pub stream: LogStream,
    /// The line as written, without its newline (invalid UTF-8 replaced by U+FFFD).
    pub line: String,
}

/// Where a kept line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// The worker's stdout and stderr (they share one pipe).
    Output,
    /// A note of the daemon's in the worker's log: how many lines it dropped.
    Dynsup,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Output => "output",
            LogStream::Dynsup => "dynsup",
        }
    }
}

/// One line of a `logs` stream (`follow`), after the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LogEvent {
    /// A line the worker wrote.
    Line(LogLine),
    /// This follower did not read fast enough; `dropped` lines were discarded.
    Lagged { dropped: u64 },
    /// The daemon is exiting: its workers' last lines were sent; the stream ends.
    Shutdown,
}

impl LogEvent {
    /// One JSON line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// One reply line. `ok` says which fields to read: on failure only `error`; on success
/// the fields the command documents (`pid` for start/lookup/kill, `count`, `workers`,
/// `stopped`, and so on). Unset fields are omitted from the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `lookup` while the worker is restarting: the state instead of a pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WorkerStateName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// `count`: the breakdown by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerInfo>>,
    /// `stop`: how the worker ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReport>,
    /// `shutdown`: how every worker ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Vec<StopReport>>,
    /// `kill`: the signal that was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// `cast`: how many bytes were queued (message plus newline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<usize>,
    /// `watch`: the names watched (empty: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching: Option<Vec<String>>,
    /// `reload`: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
    /// `ps`: processes per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<Processes>>,
    /// `logs`: the worker's last lines, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<LogLine>>,
    /// `health`: what is not running and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
    /// `restart` with `rolling`: what was restarted (also on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutReport>,
    /// `stop`, `kill` and `restart` of several workers: one reply per worker, in the
    /// order of the selection, each with its `name` and what the single-worker form
    /// replies (`ok` and its fields, or `ok: false` and its `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<Reply>>,
    /// `version`: the daemon's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionReport>,
    /// `metrics`: the Prometheus text exposition (format 0.0.4), newlines included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

/// The answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReport {
    /// The daemon's version (its Cargo package version).
    pub daemon: String,
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
}

/// The answer to `health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Every boot child and critical worker is running, ready and passing its health
    /// check, the boot is complete, and the daemon is not shutting down.
    pub healthy: bool,
    /// How many workers were checked (the boot children and the critical workers).
    pub checked: usize,
    /// One line per thing that is not as it should be, the most telling first
    /// (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The outcome of a rolling restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutReport {
    /// Restarted and ready again, in order.
    pub restarted: Vec<String>,
    /// Not restarted: after a failure, or no longer running when their turn came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_restarted: Vec<String>,
}

impl Reply {
    /// An empty success.
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    /// A failure of `kind` with a human-readable message.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(WireError {
                kind,
                message: message.into(),
                pid: None,
            }),
            ..Reply::default()
        }
    }

    /// One JSON line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and vectors cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"ok":false,"error":{"kind":"bad_request","message":"unencodable reply"}}"#.to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// Decode one request line (without its newline). The error is the `bad_request`
/// message: it says whether the JSON was invalid (with the column), the command
/// unknown, a field missing or mistyped, or a value out of range.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    match serde_json::from_slice::<Request>(line) {
        Ok(
            req @ (Request::Count
            | Request::Shutdown
            | Request::Reload
            | Request::ReopenLogs
            | Request::Health
            | Request::Version),
        ) => {
            // serde's deny_unknown_fields does not reach the fieldless variants of an
            // internally tagged enum; check them by hand so a typo is never ignored.
            reject_extra_fields(line)?;
            Ok(req)
        }
        Ok(req) => check_ranges(req),
        Err(err) => Err(explain_decode_error(line, err)),
    }
}

/// The values the types let through but the daemon does not take.
fn check_ranges(req: Request) -> Result<Request, String> {
    if let Request::Stop {
        timeout_ms: Some(ms),
        ..
    }
    | Request::Restart {
        timeout_ms: Some(ms),
        ..
    } = req
    {
        if ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "field `timeout_ms` must be at most {MAX_TIMEOUT_MS} (one day); got {ms}"
            ));
        }
    }
    req.target()?;
    if let Request::Fence {
        within_ms,
        timeout_ms,
    } = &req
    {
        if let Some(ms) = timeout_ms.filter(|ms| *ms > MAX_TIMEOUT_MS) {
            return Err(format!(
                "field `timeout_ms` must be at most {MAX_TIMEOUT_MS} (one day); got {ms}"
            ));
        }
        if let Some(ms) = within_ms.filter(|ms| *ms == 0 || *ms > MAX_TIMEOUT_MS) {
            return Err(format!(
                "field `within_ms` must be from 1 to {MAX_TIMEOUT_MS} (one day); got {ms}"
            ));
        }
    }
    if let Request::Restart {
        names,
        rolling: true,
        ..
    } = &req
    {
        if !names.is_empty() {
            return Err(
                "`restart` with `rolling` takes `name`, `template` or `all`, not `names`"
                    .to_string(),
            );
        }
    }
    Ok(req)
}

fn reject_extra_fields(line: &[u8]) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let extra = value
        .as_object()
        .and_then(|obj| obj.keys().find(|k| k.as_str() != "cmd").cloned());
    match extra {
        Some(field) => Err(format!("unknown field `{field}`")),
        None => Ok(()),
    }
}

fn explain_decode_error(line: &[u8], err: serde_json::Error) -> String {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(syntax) => {
            return format!(
                "invalid JSON at line {} column {}: {}",
                syntax.line(),
                syntax.column(),
                strip_position(&syntax.to_string())
            )
        }
    };
    let Some(obj) = value.as_object() else {
        return "a request must be a JSON object such as {\"cmd\":\"count\"}".to_string();
    };
    match obj.get("cmd") {
        None => "missing field `cmd`".to_string(),
        Some(serde_json::Value::String(cmd)) if Cmd::from_name(cmd).is_none() => {
            let names: Vec<&str> = Cmd::ALL.iter().map(|c| c.name()).collect();
            format!(
                "unknown command `{cmd}` (expected one of: {})",
                names.join(", ")
            )
        }
        Some(serde_json::Value::String(_)) => strip_position(&err.to_string()),
        Some(_) => "field `cmd` must be a string".to_string(),
    }
}

/// serde_json appends " at line L column C"; for a one-line request the position adds
/// nothing once the field is named.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_command() {
        let cases = [
            (r#"{"cmd":"count"}"#, Request::Count),
            (r#"{"cmd":"list"}"#, Request::list()),
            (
                r#"{"cmd":"list","names":["a"],"template":"t"}"#,
                Request::List {
                    names: vec!["a".into()],
                    template: Some("t".into()),
                },
            ),
            (r#"{"cmd":"version"}"#, Request::Version),
            (r#"{"cmd":"shutdown"}"#, Request::Shutdown),
            (
                r#"{"cmd":"lookup","name":"w"}"#,
                Request::Lookup { name: "w".into() },
            ),
            (
                r#"{"cmd":"start","name":"w","template":"t","args":["a"]}"#,
                Request::Start {
                    name: "w".into(),
                    template: Some("t".into()),
                    args: vec!["a".into()],
                    command: None,
                    env: Default::default(),
                    fenced: false,
                },
            ),
            (
                r#"{"cmd":"start","name":"w","env":{"MAP":"de_dust2","A":""}}"#,
                Request::Start {
                    name: "w".into(),
                    template: None,
                    args: Vec::new(),
                    command: None,
                    env: [("MAP", "de_dust2"), ("A", "")]
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .into(),
                    fenced: false,
                },
            ),
            (
                r#"{"cmd":"stop","name":"w","timeout_ms":10}"#,
                Request::stop("w", Some(10)),
            ),
            (
                r#"{"cmd":"stop","names":["a","b"]}"#,
                Request::Stop {
                    name: None,
                    names: vec!["a".into(), "b".into()],
                    template: None,
                    all: false,
                    timeout_ms: None,
                },
            ),
            (
                r#"{"cmd":"kill","name":"w","signal":"SIGTERM"}"#,
                Request::kill("w", Some("SIGTERM")),
            ),
            (
                r#"{"cmd":"kill","name":"w","signal":15}"#,
                Request::kill("w", Some("15")),
            ),
            (
                r#"{"cmd":"kill","all":true}"#,
                Request::Kill {
                    name: None,
                    names: Vec::new(),
                    template: None,
                    all: true,
                    signal: None,
                },
            ),
            (
                r#"{"cmd":"cast","name":"w","message":"work"}"#,
                Request::Cast {
                    name: "w".into(),
                    message: "work".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(decode_request(line.as_bytes()), Ok(want), "{line}");
        }
    }

    #[test]
    fn cmd_names_are_the_wire_tags() {
        let name = || "w".to_string();
        let one_of_each = [
            Request::Start {
                name: name(),
                template: None,
                args: Vec::new(),
                command: None,
                env: Default::default(),
                fenced: false,
            },
            Request::stop(&name(), None),
            Request::kill(&name(), None),
            Request::Cast {
                name: name(),
                message: name(),
            },
            Request::Lookup { name: name() },
            Request::Count,
            Request::list(),
            Request::Shutdown,
            Request::Restart {
                name: Some(name()),
                names: Vec::new(),
                template: None,
                all: false,
                rolling: false,
                timeout_ms: None,
            },
            Request::Whois { pid: 1 },
            Request::Watch { names: Vec::new() },
            Request::Reload,
            Request::WaitReady { name: name() },
            Request::Ps { name: None },
            Request::Logs {
                name: name(),
                lines: 5,
                follow: true,
            },
            Request::ReopenLogs,
            Request::Health,
            Request::Version,
            Request::Metrics,
            Request::Fence {
                within_ms: Some(1000),
                timeout_ms: None,
            },
        ];
        for req in &one_of_each {
            let json = serde_json::to_value(req).unwrap();
            assert_eq!(json["cmd"], req.cmd().name(), "{req:?}");
        }
        let cmds: Vec<Cmd> = one_of_each.iter().map(Request::cmd).collect();
        assert_eq!(cmds, Cmd::ALL, "Cmd::ALL lists every command, in order");
        for (i, cmd) in Cmd::ALL.into_iter().enumerate() {
            assert_eq!(cmd as usize, i);
            assert_eq!(Cmd::from_name(cmd.name()), Some(cmd));
        }
        assert_eq!(Cmd::from_name("fly"), None);
    }

    #[test]
    fn explains_bad_requests() {
        let check = |line: &str, needle: &str| {
            let err = decode_request(line.as_bytes()).expect_err(line);
            assert!(err.contains(needle), "{line}: {err}");
        };
        check("{nope", "invalid JSON at line 1 column 2");
        check(r#"{"cmd":"fly"}"#, "unknown command `fly`");
        check(r#"{"cmd":"lookup"}"#, "missing field `name`");
        check(r#"{"name":"x"}"#, "missing field `cmd`");
        check(r#"[1]"#, "must be a JSON object");
        check(r#"{"cmd":7}"#, "`cmd` must be a string");
        check(r#"{"cmd":"lookup","name":3}"#, "invalid type");
        check(r#"{"cmd":"count","extra":1}"#, "unknown field `extra`");
        check(r#"{"cmd":"version","extra":1}"#, "unknown field `extra`");
        check(r#"{"cmd":"list","nmes":[]}"#, "unknown field `nmes`");
        check(r#"{"cmd":"stop"}"#, "needs one of `name`, `names`");
        check(
            r#"{"cmd":"stop","names":[]}"#,
            "needs one of `name`, `names`",
        );
        check(
            r#"{"cmd":"kill","name":"a","all":true}"#,
            "takes only one of `name`, `names`, `template` and `all`",
        );
        check(
            r#"{"cmd":"restart","names":["a"],"rolling":true}"#,
            "not `names`",
        );
        check(
            r#"{"cmd":"kill","name":"a","signal":[9]}"#,
            "field `signal` must be a signal name",
        );
        check(
            r#"{"cmd":"stop","name":"w","timeout_ms":18446744073709551615}"#,
            "field `timeout_ms` must be at most 86400000",
        );
        check(
            r#"{"cmd":"restart","name":"w","timeout_ms":86400001}"#,
            "field `timeout_ms` must be at most 86400000",
        );
        check(
            r#"{"cmd":"stop","name":"w","timeout_ms":-1}"#,
            "invalid value",
        );
        let at_most = format!(r#"{{"cmd":"stop","name":"w","timeout_ms":{MAX_TIMEOUT_MS}}}"#);
        assert!(decode_request(at_most.as_bytes()).is_ok());
    }

    #[test]
    fn replies_omit_unset_fields() {
        let mut reply = Reply::ok();
        reply.pid = Some(42);
        assert_eq!(reply.encode(), b"{\"ok\":true,\"pid\":42}\n");
        let err = Reply::error(ErrorKind::NotFound, "worker_9 is not registered");
        assert_eq!(
            String::from_utf8(err.encode()).unwrap(),
            "{\"ok\":false,\"error\":{\"kind\":\"not_found\",\"message\":\"worker_9 is not registered\"}}\n"
        );
    }

    #[test]
    fn logs_defaults_to_fifty_lines_without_follow() {
        assert_eq!(
            decode_request(br#"{"cmd":"logs","name":"w"}"#),
            Ok(Request::Logs {
                name: "w".into(),
                lines: DEFAULT_LOG_LINES,
                follow: false,
            })
        );
        assert_eq!(
            decode_request(br#"{"cmd":"logs","name":"w","lines":0,"follow":true}"#),
            Ok(Request::Logs {
                name: "w".into(),
                lines: 0,
                follow: true,
            })
        );
        let err = decode_request(br#"{"cmd":"logs","name":"w","lines":-1}"#).unwrap_err();
        assert!(err.contains("invalid value"), "{err}");
        let err = decode_request(br#"{"cmd":"reopen_logs","name":"w"}"#).unwrap_err();
        assert!(err.contains("unknown field `name`"), "{err}");
        assert!(Cmd::Logs.read_only());
        assert!(!Cmd::ReopenLogs.read_only());
    }

    #[test]
    fn log_stream_lines_are_tagged_events() {
        let line = LogEvent::Line(LogLine {
            at_ms: 7,
            pid: 42,
            stream: LogStream::Output,
            line: "hi \u{1b}[2J".into(),
        });
        assert_eq!(
            String::from_utf8(line.encode()).unwrap(),
            "{\"event\":\"line\",\"at_ms\":7,\"pid\":42,\"stream\":\"output\",\"line\":\"hi \\u001b[2J\"}\n"
        );
        assert_eq!(
            LogEvent::Lagged { dropped: 3 }.encode(),
            Event::Lagged { dropped: 3 }.encode()
        );
        assert_eq!(LogEvent::Shutdown.encode(), b"{\"event\":\"shutdown\"}\n");
    }

    #[test]
    fn error_kind_strings_match_serde() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
