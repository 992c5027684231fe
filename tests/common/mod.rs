//! The integration-test harness: real daemons, real processes, real signals. Each test
//! file says `mod common; use common::*;` and gets everything below.
//!
//! | module | what is in it |
//! | --- | --- |
//! | [`launch`] | [`Launch`], the one way to start a daemon; the `TestDaemon::start*` shorthands |
//! | [`daemon`] | [`TestDaemon`]: requests, log, waits on workers, exit; killed on drop |
//! | [`client`] | [`Client`], one socket connection; request builders (`start_req`, ...) |
//! | [`watch`] | [`Watcher`], a `watch` event stream; event predicates (`is_started`, ...) |
//! | [`cli`] | running the `dynsup` CLI and other commands; [`CliProcess`] |
//! | [`wait`] | [`wait_until`] and [`DEADLINE`]: the only way a test waits |
//! | [`proc`] | `/proc` readers ([`stat`], [`is_alive`], [`children_of`], ...), [`send_signal`] |
//! | [`dirs`] | [`TestDir`], a directory per test; unique names |
//! | [`configs`] | config snippets shared by test files ([`LENIENT_SUPERVISOR`], [`SAMPLE_WORKER`], ...); [`toml_str`] |
//! | [`log`] | reading a daemon log: the tail for failure messages, [`lines_with`] |
//! | [`notify`] | [`NotifyListener`], a stand-in for systemd's `NOTIFY_SOCKET` |
//! | [`journal`] | [`JournalListener`], a stand-in for journald's native socket; [`parse_journal_entry`] |
//! | [`stderr_pipe`] | [`StderrPipe`], a daemon's stderr as a pipe the test reads when it wants |
//! | [`cgroup`] | [`TestCgroup`], a cgroup v2 root of the test's own |
//! | [`etcd`] | [`TestEtcd`], a test's own etcd on free loopback ports, killed on drop; [`cluster_section`] |
//! | [`slow_proxy`] | [`SlowProxy`], a relay in front of etcd that answers one request late (etcd commits it; the client times out) |
//! | [`cluster`] | [`TestFleet`], etcd and daemons standing in for hosts; [`processes_named`] (by `DYNSUP_NAME=`) |
//! | [`bins`] | paths of `dynsup`, the sample worker and `python3` |
//! | [`rlimit`] | another process's resource limits, read and set ([`set_rlimit_of`]) |
//! | [`mount`] | [`SmallTmpfs`], a tmpfs to fill up or make read-only |
//! | [`saved`] | a state file read as the daemon reads it (snapshot and journal): [`read_state`], [`recorded_names`] |
//! | [`recorded`] | [`RECORDING_WORKER`], a notify worker that writes down when it started, got ready and stopped; [`Record`] |
//!
//! Rules the harness keeps: nothing sleeps to synchronise (wait for a condition with a
//! deadline); pids are checked through the socket and /proc; a failing test leaves no
//! process behind and keeps its files (the directory is printed).
#![allow(dead_code)]

pub mod bins;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod configs;
pub mod daemon;
pub mod dirs;
pub mod etcd;
pub mod journal;
pub mod launch;
pub mod log;
pub mod mount;
pub mod notify;
pub mod proc;
pub mod recorded;
pub mod rlimit;
pub mod saved;
pub mod slow_proxy;
pub mod stderr_pipe;
pub mod wait;
pub mod watch;

// Every test file takes what it needs from these; none takes all of them.
#[allow(unused_imports)]
pub use self::{
    bins::*, cgroup::*, cli::*, client::*, cluster::*, configs::*, daemon::*, dirs::*, etcd::*,
    journal::*, launch::*, log::*, mount::*, notify::*, proc::*, recorded::*, rlimit::*, saved::*,
    slow_proxy::*, stderr_pipe::*, wait::*, watch::*,
};
#[allow(unused_imports)]
pub use dynsup::protocol::{
    Counts, ErrorKind, Event, ExitReport, LastExit, LogEvent, LogLine, LogStream, ReloadReport,
    Reply, Request, StopReport, WorkerInfo, WorkerStateName,
};
#[allow(unused_imports)]
pub use nix::sys::signal::Signal;
