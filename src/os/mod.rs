//! The OS layer: thin modules around syscalls, and the event loop that connects them
//! to the pure core.
//!
//! - [`spawn`]: start one worker: `clone(CLONE_VM | CLONE_VFORK)` + `execve` (the only
//!   `unsafe` code in the daemon, and the only module allowed to have any); also the
//!   raw `kill` and `waitpid` that real-time signals need.
//! - [`process`]: `waitpid`, `kill`, and `/proc` reads (process groups, peer groups).
//! - [`listener`]: binding the control socket (stale-socket replacement, mode 0600).
//! - [`notify`]: sd_notify to systemd (READY, STATUS, STOPPING, WATCHDOG).
//! - [`cgroup`]: per-worker cgroup v2 groups (join, kill, list).
//! - [`conn`]: one client connection: bounded line reader, replies in request order.
//! - [`pipes`]: a worker's output pipe (stdout and stderr) read and split into lines,
//!   and the bounded stdin mailbox.
//! - [`worker_logs`]: each worker name's output: its rate limit, its last lines kept
//!   for `logs`, and where each line goes.
//! - [`log_files`]: the workers' log files, rotated by size, written by a thread of
//!   their own behind a bounded queue.
//! - [`state_file`]: the durable list of dynamic workers.
//! - [`small_file`]: reading a small file an operator named (regular files only, bounded,
//!   never blocking), for the state file and the env files.
//! - [`env_file`]: a template's `env_file`s (systemd's `EnvironmentFile=` syntax), read
//!   bounded at each start.
//! - [`limits`]: the daemon's own resource limits (the open-files soft limit raised).
//! - [`ready`]: the notify socket served to workers (`ready = "notify"`, `watchdog_ms`):
//!   readiness, status and watchdog keep-alives.
//! - [`probes`]: one health check run: spawned like a worker, output captured, killed
//!   at its timeout, its end turned into a verdict.
//! - [`reactor`]: the single-threaded mio loop.

pub mod cgroup;
pub mod conn;
pub mod env_file;
pub mod limits;
pub mod listener;
pub mod log_files;
pub mod notify;
pub mod pipes;
pub mod probes;
pub mod process;
pub mod reactor;
pub mod ready;
pub mod small_file;
#[allow(unsafe_code)]
pub mod spawn;
pub mod state_file;
pub mod worker_logs;
