//! Config text for the daemon: snippets that several test files share, joined with
//! `concat()` (each is whole TOML tables and starts on a new line), and TOML literals.
//!
//! ```ignore
//! let config = [LENIENT_SUPERVISOR, SAMPLE_WORKER, WORKER_1_AT_BOOT].concat();
//! ```

/// `[supervisor]` with a restart intensity no test trips by accident: 100 restarts in
/// 5 s. More `[supervisor]` keys may follow it directly.
pub const LENIENT_SUPERVISOR: &str = r#"
[supervisor]
max_restarts = 100
max_seconds = 5
"#;

/// Template `worker`: the sample worker (`dynsup-worker`), transient. It logs
/// `Starting "NAME"` once its SIGTERM handler is installed, answers the message `work`
/// with `hola`, crashes on `raise`, and says `Exiting worker: NAME with reason:
/// shutdown` on SIGTERM.
pub const SAMPLE_WORKER: &str = r#"
[templates.worker]
command = ["dynsup-worker"]
restart = "transient"
"#;

/// Template `stubborn`: the sample worker ignoring SIGTERM (it says `ignoring SIGTERM`),
/// permanent, SIGKILLed 300 ms after its stop signal.
pub const STUBBORN_WORKER: &str = r#"
[templates.stubborn]
command = ["dynsup-worker", "--ignore-sigterm"]
restart = "permanent"
shutdown_ms = 300
"#;

/// Boot child `worker_1`, of template `worker`.
pub const WORKER_1_AT_BOOT: &str = r#"
[[children]]
name = "worker_1"
template = "worker"
"#;

/// Template `sleeper`: `sleep 100000`, permanent. A worker that does nothing, for
/// a sibling that must stay untouched or a slot that must stay taken.
pub const SLEEPER: &str = r#"
[templates.sleeper]
command = ["sleep", "100000"]
restart = "permanent"
"#;

/// A `[[children]]` entry: boot child `name` of `template`, with `args` (if any).
pub fn boot_child(name: &str, template: &str, args: &[&str]) -> String {
    let mut entry = format!(
        "\n[[children]]\nname = {}\ntemplate = {}\n",
        toml_str(name),
        toml_str(template)
    );
    if !args.is_empty() {
        let args: Vec<String> = args.iter().map(|a| toml_str(a)).collect();
        entry.push_str(&format!("args = [{}]\n", args.join(", ")));
    }
    entry
}

/// `config` with `log_level = "debug"` in its `[supervisor]` table.
#[track_caller]
pub fn with_debug_log(config: &str) -> String {
    assert!(
        config.contains("[supervisor]\n"),
        "with_debug_log: no [supervisor] table in {config:?}"
    );
    config.replace("[supervisor]\n", "[supervisor]\nlog_level = \"debug\"\n")
}

/// A TOML string literal for a path or any other text.
pub fn toml_str(s: &str) -> String {
    format!("{s:?}")
}
