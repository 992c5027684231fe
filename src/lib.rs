//! dynsup: Elixir's DynamicSupervisor + Registry for operating-system processes.
//!
//! The layout is described in `docs/ARCHITECTURE.md`. In short: [`core`] holds OTP's
//! rules as pure code (no syscalls, no clock); [`os`] holds the syscalls and the event
//! loop; [`protocol`] is the wire format shared by the daemon, the CLI and the tests.
//!
//! `unsafe` is a compiler error everywhere except in [`os::spawn`], the one module that
//! must call `clone` and `execve` itself.

#![deny(unsafe_code)]

pub mod access;
pub mod check_config;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod completions;
pub mod config;
pub mod core;
pub mod daemon;
pub mod exit_status;
pub mod logger;
pub mod manpage;
pub mod metrics;
pub mod os;
pub mod paths;
pub mod protocol;
pub mod signal;
pub mod stdout;
