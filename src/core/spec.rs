//! What a worker is: its template and the command line it runs.

use crate::signal::Signal;
use serde::Deserialize;
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

/// A validated template from the config: everything about a worker but its name and
/// its per-start arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub cwd: Option<String>,
}

/// Everything needed to (re)start one named worker. Shared by `Rc` between the
/// registry and the spawn action, so a restart copies a pointer, not the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    pub name: Rc<str>,
    pub template: Rc<Template>,
    /// The full command line: the template's command (or the per-start override)
    /// followed by the per-start arguments. Never empty.
    pub argv: Vec<String>,
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
        let mut argv = command.unwrap_or_else(|| template.command.clone());
        if argv.is_empty() || argv[0].is_empty() {
            return Err("the command is empty".to_string());
        }
        argv.extend(args);
        Ok(ChildSpec {
            name,
            template,
            argv,
        })
    }

    pub fn restart(&self) -> RestartType {
        self.template.restart
    }
}
