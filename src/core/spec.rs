//! What a worker is: its template and the command line it runs.

use crate::signal::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::rc::Rc;

/// OTP's restart types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartType {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartType {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartType::Permanent => "permanent",
            RestartType::Transient => "transient",
            RestartType::Temporary => "temporary",
        }
    }
}

/// Restart pacing: the delay before the n-th consecutive restart is
/// `initial_ms * multiplier^(n-1)`, capped at `max_ms`. A run that lasted at least
/// `reset_after_ms` starts the sequence again. `initial_ms = 0` (the default) restarts at
/// once, as OTP does. `jitter` (0 to 1, default 0) shortens each delay by up to that
/// fraction, by an amount fixed by the worker's name and the restart's number, so that
/// workers that crash together do not all come back in the same millisecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub multiplier: f64,
    pub reset_after_ms: u64,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial_ms: 0,
            max_ms: 30_000,
            multiplier: 2.0,
            reset_after_ms: 30_000,
            jitter: 0.0,
        }
    }
}

impl Backoff {
    /// The delay of [`Backoff::delay_ms`], less its jitter for worker `name`: a fraction
    /// in `[0, jitter)` of it, the same every time for the same name and restart number
    /// (a pure function: no random source in the core).
    pub fn delay_ms_for(&self, name: &str, consecutive: u32) -> u64 {
        let delay = self.delay_ms(consecutive);
        if delay == 0 || self.jitter <= 0.0 {
            return delay;
        }
        // FNV-1a over the name and the restart number: spread, not secret.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes().chain(consecutive.to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let unit = (hash >> 11) as f64 / (1u64 << 53) as f64;
        let cut = delay as f64 * self.jitter.min(1.0) * unit;
        delay - (cut as u64).min(delay)
    }

    /// The delay before a restart that follows `consecutive` earlier quick restarts.
    pub fn delay_ms(&self, consecutive: u32) -> u64 {
        if self.initial_ms == 0 {
            return 0;
        }
        let factor = self.multiplier.max(1.0).powi(consecutive.min(64) as i32);
        let delay = self.initial_ms as f64 * factor;
        if delay.is_finite() && delay < self.max_ms as f64 {
            delay as u64
        } else {
            self.max_ms
        }
    }
}

/// What happens when a worker exceeds its own restart limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// Escalate: the daemon stops everything and exits 1 (OTP). Restarts of such a
    /// worker also count in the supervisor-wide intensity.
    Escalate,
    /// Give up on this worker only: it is marked `failed`. Its restarts count only in
    /// its own window, never in the supervisor's.
    GiveUp,
}

/// A worker's own restart window (per template, counted per worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    /// `None`: no limit (`"infinity"`).
    pub max_restarts: Option<u32>,
    pub max_seconds: u64,
}

/// A validated template from the config: everything about a worker but its name and
/// its per-start arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    pub restart: RestartType,
    /// How long a stopped worker may take to exit before it is SIGKILLed.
    pub shutdown_ms: u64,
    pub stop_signal: Signal,
    /// Deaths by these signals count as a clean exit (OTP's `:shutdown`).
    pub clean_signals: Vec<Signal>,
    /// Added to the daemon's environment, in order.
    pub env: Vec<(String, String)>,
    /// Read at each start, in order, on top of `env` (systemd's `EnvironmentFile=`).
    pub env_files: Vec<EnvFile>,
    pub cwd: Option<String>,
    /// Prepended to every start's arguments (OTP's `extra_arguments`).
    pub extra_args: Vec<String>,
    /// Exit codes that count as a clean exit for the transient rule.
    pub normal_exit_codes: Vec<i32>,
    pub backoff: Backoff,
    /// The worker's own restart window, if the template sets one.
    pub limit: Option<RestartLimit>,
    pub on_limit: OnLimit,
    /// Run as this user (the daemon must be root).
    pub credentials: Option<Credentials>,
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    /// `PR_SET_NO_NEW_PRIVS`: exec can never grant more privileges (setuid binaries,
    /// file capabilities).
    pub no_new_privs: bool,
    pub ready: Readiness,
    /// `ready = "notify"`: how long the worker may take to send `READY=1`.
    pub ready_timeout_ms: u64,
    /// Boot children that must be running and ready before an instance of this
    /// template starts (added to a `[[children]]` entry's own `after`).
    pub after: Vec<String>,
    /// What else restarts when an instance of this template restarts.
    pub restart_with: RestartWith,
    /// `WATCHDOG=1` is expected at least this often once the worker is ready (and
    /// `WATCHDOG_USEC` is set in its environment).
    pub watchdog_ms: Option<u64>,
    /// A command run periodically while the worker is running.
    pub health: Option<HealthCheck>,
    /// When an instance is given up on or ends for good, the daemon shuts down and
    /// exits with its status.
    pub critical: bool,
    /// How a reload applies a change of this template to its running instances.
    pub on_reload: OnReload,
    /// The daemon's own (the cluster agent's): never the implicit choice of a `start`
    /// that names no template, so a config with one template of its own keeps that
    /// convenience in cluster mode.
    pub internal: bool,
}

/// One of a template's `env_file`s: a path, and whether a missing file is fine (written
/// with a leading `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Absolute.
    pub path: String,
    pub optional: bool,
}

/// `restart_with`: OTP's `one_for_one` (alone) or `rest_for_one` (dependents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartWith {
    /// Only the worker itself restarts.
    Alone,
    /// The workers that are `after` it are stopped when it ends (to be restarted), and
    /// started again once it is ready again, in order. Each counts as a restart.
    Dependents,
}

/// `on_reload`: how a reload applies a changed template to the running instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReload {
    /// Boot children restart at once; dynamic workers pick the change up at their next
    /// restart.
    Restart,
    /// Every running instance (boot and dynamic) is restarted one at a time, each
    /// once the one before it is ready again.
    Rolling,
}

/// `health = { command = [...], interval_ms, timeout_ms, failures }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Program and arguments; never empty. Run with the worker's environment, user,
    /// working directory and limits, in its own process group.
    pub command: Vec<String>,
    /// From the worker being ready to the first check, and from each result to the
    /// next check.
    pub interval_ms: u64,
    /// A check still running after this long is killed and counts as failed.
    pub timeout_ms: u64,
    /// This many failed checks in a row kill the worker (as a missed watchdog does).
    pub failures: u32,
}

impl HealthCheck {
    pub const DEFAULT_INTERVAL_MS: u64 = 10_000;
    pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
    pub const DEFAULT_FAILURES: u32 = 3;
}

/// The identity a worker runs as, resolved from the config's `user`/`group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the user's, as `initgroups` would set them).
    pub groups: Vec<u32>,
    /// For `USER`, `LOGNAME` and `HOME` in the worker's environment.
    pub user_name: Option<String>,
    pub home: Option<String>,
}

/// A resource limit for the worker (`setrlimit` before exec). `u64::MAX` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Nofile,
    Nproc,
    Core,
    Memlock,
}

/// When a started worker counts as up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// As soon as it has exec'd.
    Exec,
    /// When it sends `READY=1` to its `$NOTIFY_SOCKET` (sd_notify).
    Notify,
}

impl Template {
    /// A template with every optional setting at its default (as the config
    /// documents them).
    pub fn new(name: &str, command: Vec<String>) -> Template {
        Template {
            name: name.to_string(),
            command,
            restart: RestartType::Transient,
            shutdown_ms: 5000,
            stop_signal: Signal::TERM,
            clean_signals: vec![Signal::TERM],
            env: Vec::new(),
            env_files: Vec::new(),
            cwd: None,
            extra_args: Vec::new(),
            normal_exit_codes: vec![0],
            backoff: Backoff::default(),
            limit: None,
            on_limit: OnLimit::Escalate,
            credentials: None,
            umask: None,
            rlimits: Vec::new(),
            no_new_privs: false,
            ready: Readiness::Exec,
            ready_timeout_ms: 30_000,
            after: Vec::new(),
            restart_with: RestartWith::Alone,
            watchdog_ms: None,
            health: None,
            critical: false,
            on_reload: OnReload::Restart,
            internal: false,
        }
    }

    /// Equal in every way that matters to a running worker (all but the name).
    pub fn same_effect(&self, other: &Template) -> bool {
        Template {
            name: String::new(),
            ..self.clone()
        } == Template {
            name: String::new(),
            ..other.clone()
        }
    }
}

/// Everything needed to (re)start one named worker. Shared by `Rc` between the
/// registry and the spawn action, so a restart copies a pointer, not the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    pub name: Rc<str>,
    pub template: Rc<Template>,
    /// The full command line: the template's command and `extra_args` (or the
    /// per-start command override) followed by the per-start arguments. Never empty.
    pub argv: Vec<String>,
    /// The start request's own arguments and command override, as given (what the
    /// state file records).
    pub args: Vec<String>,
    pub command: Option<Vec<String>>,
    /// The start request's own environment variables (`start --env`): on top of the
    /// template's `env` and `env_file`s. Validated keys (non-empty, no `=`, no NUL).
    pub env: BTreeMap<String, String>,
    /// The names it starts after: its template's `after`, and for a boot child its
    /// own (deduplicated, in order).
    pub after: Vec<Rc<str>>,
    /// Its template's `critical`, or the boot child's own.
    pub critical: bool,
    /// Started under the dead man's switch (`start` with `fenced`, the cluster
    /// agent's workers): stopped when the switch fires.
    pub fenced: bool,
}

impl ChildSpec {
    /// Build the spec for a start request. `command` replaces the template's command;
    /// `args` are appended. Fails only when the resulting command line is empty.
    pub fn new(
        name: Rc<str>,
        template: Rc<Template>,
        command: Option<Vec<String>>,
        args: Vec<String>,
    ) -> Result<ChildSpec, String> {
        let mut argv = match &command {
            Some(command) => command.clone(),
            None => {
                let mut argv = template.command.clone();
                argv.extend(template.extra_args.iter().cloned());
                argv
            }
        };
        if argv.is_empty() || argv[0].is_empty() {
            return Err("the command is empty".to_string());
        }
        argv.extend(args.iter().cloned());
        let mut after: Vec<Rc<str>> = Vec::with_capacity(template.after.len());
        for name in &template.after {
            if !after.iter().any(|n| &**n == name.as_str()) {
                after.push(name.as_str().into());
            }
        }
        let critical = template.critical;
        Ok(ChildSpec {
            name,
            template,
            argv,
            args,
            command,
            env: BTreeMap::new(),
            after,
            critical,
            fenced: false,
        })
    }

    /// The same spec with the start request's own environment variables.
    pub fn with_env(mut self, env: BTreeMap<String, String>) -> ChildSpec {
        self.env = env;
        self
    }

    /// The spec of a `[[children]]` entry: its template's, with the entry's own
    /// `after` and `critical` added.
    pub fn for_boot_child(child: &BootChild, template: Rc<Template>) -> Result<ChildSpec, String> {
        let mut spec = ChildSpec::new(
            child.name.as_str().into(),
            template,
            None,
            child.args.clone(),
        )?;
        for name in &child.after {
            if !spec.after.iter().any(|n| &**n == name.as_str()) {
                spec.after.push(name.as_str().into());
            }
        }
        spec.critical |= child.critical;
        Ok(spec)
    }

    pub fn restart(&self) -> RestartType {
        self.template.restart
    }
}

/// A `[[children]]` entry of the config: started at boot, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChild {
    pub name: String,
    /// Always resolved: the named template, or the only one.
    pub template: String,
    pub args: Vec<String>,
    /// Its own `after` (its template's comes on top).
    pub after: Vec<String>,
    /// Its own `critical` (or its template's).
    pub critical: bool,
}

/// A dynamically started worker as the state file records it: enough to start it
/// again after the daemon itself restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWorker {
    pub name: String,
    pub template: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Its own environment variables (`start --env`); absent from files written before
    /// they existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Set when the worker is held `failed` across daemon restarts (it made the daemon
    /// escalate, or was not restored): why. Such a worker is restored as `failed`, not
    /// started; `restart NAME` brings it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Started under the dead man's switch (`start` with `fenced`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub fenced: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One change of the record of dynamic workers, in the order it happened: what the
/// state file's journal appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedChange {
    /// Recorded, or recorded anew (held failed, or no longer).
    Put(SavedWorker),
    /// Gone for good: dropped from the record.
    Forget(String),
}

/// Validate a worker name: 1 to 128 characters from `A-Z a-z 0-9 _ - . : @`, not
/// starting with a dot. Names travel in environment variables, log prefixes and file
/// names (a worker's cgroup), so whitespace, slashes and control characters are
/// refused, and `.`/`..` could point at the supervisor's own cgroup or its parent.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("worker name is empty".to_string());
    }
    if name.len() > 128 {
        return Err(format!(
            "worker name is {} bytes long; the limit is 128",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@')))
    {
        return Err(format!(
            "worker name {name:?} contains {bad:?}; allowed are letters, digits and _ - . : @"
        ));
    }
    if name.starts_with('.') {
        return Err(format!("worker name {name:?} must not start with a dot"));
    }
    Ok(())
}

/// Validate one of a start's own environment variables (`start --env KEY=VALUE`): the
/// key non-empty, without `=` or NUL; the value without NUL (neither could reach the
/// worker's environment intact).
pub fn validate_env_var(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("an environment variable's name is empty".to_string());
    }
    if key.contains('=') || key.contains('\0') {
        return Err(format!(
            "environment variable name {key:?} contains {:?}; a name has no = and no NUL byte",
            if key.contains('=') { '=' } else { '\0' }
        ));
    }
    if value.contains('\0') {
        return Err(format!(
            "the value of environment variable {key} contains a NUL byte"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{validate_env_var, validate_name};

    #[test]
    fn env_vars_are_validated() {
        assert!(validate_env_var("GAME_MAP", "de_dust 2=x").is_ok());
        assert!(validate_env_var("lower.case-ok", "").is_ok());
        assert!(validate_env_var("", "x").is_err());
        assert!(validate_env_var("A=B", "x").unwrap_err().contains("'='"));
        assert!(validate_env_var("A\0", "x").is_err());
        assert!(validate_env_var("A", "x\0").is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("worker_1").is_ok());
        assert!(validate_name("tenant@example.com:7").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(129)).is_err());
        assert!(validate_name(".").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name(".hidden").is_err());
        assert!(validate_name("a.b").is_ok());
    }
}
