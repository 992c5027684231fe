//! The `metrics` request, the loop's side: the bookkeeping ([`Metrics`], fed by
//! `actions.rs` with every spawn and every event, and by `clients.rs` with the socket's
//! connections), the daemon's start time, and the snapshot read when the text is
//! rendered: the core's census and intensity, the log counters, the connections, and
//! the daemon's RSS (one small read of /proc/self/statm per request).

use super::metrics_http::MetricsHttp;
use super::Reactor;
use crate::metrics::{self, LogCounters, Metrics, Snapshot};
use crate::protocol::Reply;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub(super) struct MetricsState {
    pub(super) data: Metrics,
    /// When the daemon's loop was built (wall clock, for `dynsup_start_time_seconds`).
    started_wall: SystemTime,
    started: Instant,
    /// The HTTP endpoint (`metrics_listen`), if configured.
    pub(super) http: Option<MetricsHttp>,
}

impl MetricsState {
    pub(super) fn new() -> MetricsState {
        MetricsState {
            data: Metrics::new(),
            started_wall: SystemTime::now(),
            started: Instant::now(),
            http: None,
        }
    }

    /// Whether `token` is the HTTP endpoint's listener or one of its connections.
    pub(super) fn has_http(&self, token: mio::Token) -> bool {
        self.http.as_ref().is_some_and(|http| http.has(token))
    }

    /// When an HTTP connection's deadline is due, if any is open.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        self.http.as_ref().and_then(MetricsHttp::next_deadline)
    }
}

impl Reactor {
    /// `metrics`: the exposition text in the reply's `metrics`.
    pub(super) fn metrics_reply(&mut self) -> Reply {
        Reply {
            metrics: Some(self.render_metrics()),
            ..Reply::ok()
        }
    }

    /// The whole exposition, as of now (visits every worker).
    pub(super) fn render_metrics(&mut self) -> String {
        let core = &self.core;
        self.metrics
            .data
            .retain_registered(|name| core.is_registered(name));
        let snapshot = Snapshot {
            start_time_seconds: self
                .metrics
                .started_wall
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            uptime_seconds: self.metrics.started.elapsed().as_secs_f64(),
            resident_memory_bytes: resident_memory_bytes(),
            templates: core.template_names().collect(),
            workers: core.census(),
            intensity: core.intensity_fill(self.clock.now()),
            log: LogCounters {
                lines: self.logs.store.lines_total,
                dropped_rate_limit: self.logs.store.dropped_total,
                dropped_log_file: self.logs.file_drops(),
                dropped_stderr: crate::logger::stderr_dropped_total(),
            },
            connections_open: self.clients.open(),
            connections: self.clients.counted,
            http: self
                .metrics
                .http
                .as_ref()
                .map(|http| (http.open(), http.counters)),
        };
        metrics::render(&self.metrics.data, &snapshot)
    }
}

/// The daemon's resident set size: /proc/self/statm's second field, in pages.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()?;
    Some(pages * u64::try_from(page_size).ok()?)
}
