//! The pure core: OTP's rules as plain data structures and functions.
//!
//! Everything under `core/` takes facts (a request arrived, a pid exited, time passed)
//! and returns commands (spawn this, signal that, reply so). It performs no syscalls and
//! never reads the clock: the time is a parameter. So every OTP rule is unit-tested here
//! with synthetic time, and `os/` only has to prove that the plumbing delivers the facts
//! and carries out the commands. A test (`tests/docs_sync.rs`) checks that no file in
//! this directory names an OS crate.
//!
//! - [`spec`]: what a worker is (template, command, restart type, stop settings).
//! - [`exit`]: how a process ended, as data.
//! - [`policy`]: the restart decision table (permanent / transient / temporary).
//! - [`intensity`]: OTP's max_restarts-in-max_seconds window.
//! - [`supervisor`]: the registry and the per-worker state machine that ties them
//!   together (its own rooms are listed in `supervisor/mod.rs`).

pub mod exit;
pub mod intensity;
pub mod policy;
pub mod spec;
pub mod supervisor;

pub use exit::Exit;
pub use intensity::Intensity;
pub use policy::{decide, CleanExits, Decision};
pub use spec::{
    validate_env_var, validate_name, Backoff, BootChild, ChildSpec, Credentials, EnvFile,
    HealthCheck, OnLimit, OnReload, Readiness, Resource, RestartLimit, RestartType, RestartWith,
    Rlimit, SavedChange, SavedWorker, Template,
};
pub use supervisor::{
    Action, Among, Command, Counts, Input, InstanceId, Limits, Notification, ReloadConfig, ReplyTo,
    Select, Supervisor, Time,
};
