//! The daemon's metrics as plain data, and their rendering in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Pure: no I/O and no clock. [`Metrics`] is the bookkeeping the event loop feeds — the
//! `watch` events the core already emits ([`Metrics::observe`]), each spawn with how
//! long it took ([`Metrics::spawned`]), and the socket's connection counters
//! ([`Connections`]). What is a matter of the moment (workers by state, the intensity
//! window, uptime, RSS, log counters) comes in as a [`Snapshot`] when the text is
//! rendered by [`render`].
//!
//! Memory is bounded by the registry, not by history: a worker's own series live
//! while its name is registered; when it leaves the registry (a `stopped` event, or a
//! `start` whose spawn failed), its series are dropped. Every count is also added to
//! its template's series, which live for the daemon's life (bounded by the templates
//! the config ever named), so nothing is lost from the totals. A worker started again
//! under the same name starts its own series from zero (a counter reset, which
//! Prometheus's `rate()` handles).

pub mod http;
pub mod listen;

use crate::protocol::{Event, ExitReport};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why a worker's process ended, as the `reason` label says it (a closed set, so the
/// number of series per worker is bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// It exited with status 0.
    ExitZero,
    /// It exited with another status.
    ExitNonzero,
    /// A signal ended it (not one dynsup sent for a liveness failure or a restart).
    Signal,
    /// Killed for a missed watchdog (or `WATCHDOG=trigger`).
    Watchdog,
    /// Killed after failing its health check.
    Health,
    /// Stopped by an operator `restart` (or a dependency's restart) to be started again.
    Restart,
}

impl ExitReason {
    pub const ALL: [ExitReason; 6] = [
        ExitReason::ExitZero,
        ExitReason::ExitNonzero,
        ExitReason::Signal,
        ExitReason::Watchdog,
        ExitReason::Health,
        ExitReason::Restart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::ExitZero => "exit_zero",
            ExitReason::ExitNonzero => "exit_nonzero",
            ExitReason::Signal => "signal",
            ExitReason::Watchdog => "watchdog",
            ExitReason::Health => "health",
            ExitReason::Restart => "restart",
        }
    }

    /// The reason of an `exited` event (its `reason` text and its exit status).
    pub fn of(reason: &str, exit: &ExitReport) -> ExitReason {
        if reason == "watchdog" {
            ExitReason::Watchdog
        } else if reason == "health" {
            ExitReason::Health
        } else if reason.ends_with("(stopped to be restarted)") {
            ExitReason::Restart
        } else {
            match exit {
                ExitReport::Exited { code: 0 } => ExitReason::ExitZero,
                ExitReport::Exited { .. } => ExitReason::ExitNonzero,
                ExitReport::Signaled { .. } => ExitReason::Signal,
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Restarts and exits of one worker, or of every worker of a template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    restarts: u64,
    exits: [u64; ExitReason::ALL.len()],
}

/// One registered worker's series.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WorkerSeries {
    template: String,
    counts: Counts,
}

/// One template's series, for the daemon's life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TemplateSeries {
    counts: Counts,
    spawns: u64,
    spawn_failures: u64,
}

/// The upper bounds (seconds) of the spawn latency histogram's buckets.
pub const SPAWN_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    /// Observations at most `SPAWN_BUCKETS[i]` (not cumulative here; summed when
    /// rendered).
    buckets: [u64; SPAWN_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        if let Some(i) = SPAWN_BUCKETS.iter().position(|&le| value <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }
}

/// The control socket's connection counters (kept by the socket's room).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    /// Admitted.
    pub accepted: u64,
    /// Turned away: `max_connections` (or the uid's share) was reached.
    pub refused_full: u64,
    /// Turned away: the peer may not use the socket.
    pub refused_denied: u64,
}

/// The HTTP endpoint's counters (`metrics_listen`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounters {
    /// Requests answered, by status class: 200, 4xx (bad method, path, request or
    /// headers), and connections closed for a missed deadline.
    pub ok: u64,
    pub client_errors: u64,
    pub timed_out: u64,
    /// Connections turned away at the concurrency cap.
    pub refused: u64,
}

/// The bookkeeping: fed by the event loop, read by [`render`].
#[derive(Debug, Default)]
pub struct Metrics {
    workers: HashMap<String, WorkerSeries>,
    templates: BTreeMap<String, TemplateSeries>,
    spawn_latency: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A spawn of `name` from `template` took `seconds` (from the call that prepares it
    /// to the return of `clone`, which is after the child's `execve`); `ok`: it exec'd.
    pub fn spawned(&mut self, name: &str, template: &str, seconds: f64, ok: bool) {
        let series = self.template_mut(template);
        if ok {
            series.spawns += 1;
            self.spawn_latency.observe(seconds);
        } else {
            series.spawn_failures += 1;
        }
        match self.workers.get_mut(name) {
            Some(worker) if worker.template == template => {}
            Some(worker) => {
                // A new spec under the name (a `restart` with another template cannot
                // happen, but a stop-and-start in one turn can): its own series.
                worker.template = template.to_string();
                worker.counts = Counts::default();
            }
            None => {
                self.workers.insert(
                    name.to_string(),
                    WorkerSeries {
                        template: template.to_string(),
                        counts: Counts::default(),
                    },
                );
            }
        }
    }

    /// A `watch` event: exits and restarts are counted; a worker that left the registry
    /// loses its series.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Exited {
                name, reason, exit, ..
            } => {
                let reason = ExitReason::of(reason, exit);
                self.count(name, |counts| counts.exits[reason.index()] += 1);
            }
            Event::Restarting { name, .. } => self.count(name, |counts| counts.restarts += 1),
            Event::Stopped { name, .. } => self.forget(name),
            _ => {}
        }
    }

    /// `name` is not registered (any more): drop its series (its counts stay in its
    /// template's).
    pub fn forget(&mut self, name: &str) {
        self.workers.remove(name);
    }

    /// Drop the series of every worker `registered` says is gone (a safety net run
    /// before rendering; the events keep it in step otherwise).
    pub fn retain_registered(&mut self, registered: impl Fn(&str) -> bool) {
        self.workers.retain(|name, _| registered(name));
    }

    /// How many workers have series (for the memory bound's test).
    pub fn worker_series(&self) -> usize {
        self.workers.len()
    }

    fn template_mut(&mut self, template: &str) -> &mut TemplateSeries {
        if !self.templates.contains_key(template) {
            self.templates
                .insert(template.to_string(), TemplateSeries::default());
        }
        self.templates
            .get_mut(template)
            .expect("inserted just above")
    }

    fn count(&mut self, name: &str, bump: impl Fn(&mut Counts)) {
        let Some(worker) = self.workers.get_mut(name) else {
            return;
        };
        bump(&mut worker.counts);
        let template = worker.template.clone();
        bump(&mut self.template_mut(&template).counts);
    }
}

/// What is read at the moment of rendering.
#[derive(Debug, Clone, Default)]
pub struct Snapshot<'a> {
    /// Seconds since the Unix epoch when the daemon started.
    pub start_time_seconds: f64,
    pub uptime_seconds: f64,
    /// The daemon's resident set size (none: /proc could not be read).
    pub resident_memory_bytes: Option<u64>,
    /// The config's templates (each gets a row per state, zero included).
    pub templates: Vec<&'a str>,
    /// Registered workers by (template, state name).
    pub workers: BTreeMap<(&'a str, &'static str), usize>,
    /// The supervisor's intensity: restarts within the window, max_restarts,
    /// max_seconds.
    pub intensity: (usize, u32, u64),
    pub log: LogCounters,
    /// Control socket connections open now.
    pub connections_open: usize,
    /// Control socket connections admitted and refused so far.
    pub connections: Connections,
    /// HTTP connections open now and the endpoint's counters (none: no
    /// `metrics_listen`).
    pub http: Option<(usize, HttpCounters)>,
}

/// The workers' output lines, and the lines dropped, by where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Worker output lines let through the rate limit (kept, logged, filed).
    pub lines: u64,
    /// Worker output lines dropped over their name's `log_rate_limit`.
    pub dropped_rate_limit: u64,
    /// Worker output lines dropped because the log file writer was behind.
    pub dropped_log_file: u64,
    /// Lines (the daemon's own records and worker lines) dropped because stderr did
    /// not keep up.
    pub dropped_stderr: u64,
}

/// The states a worker can be in, as `list` names them (each template gets a row for
/// each).
pub const STATES: [&str; 8] = [
    "starting",
    "running",
    "stopping",
    "draining",
    "restarting",
    "backoff",
    "failed",
    "waiting",
];

/// Every metric family [`render`] writes: name, type, help. The docs test checks each
/// is in docs/OPERATIONS.md.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("dynsup_start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch."),
    ("dynsup_uptime_seconds", "gauge", "Seconds since the daemon started."),
    ("dynsup_resident_memory_bytes", "gauge", "The daemon's resident set size (from /proc/self/statm)."),
    ("dynsup_workers", "gauge", "Registered workers, by template and state."),
    ("dynsup_worker_restarts_total", "counter", "Restarts scheduled for a registered worker (restart rule, operator restart, retry after a resource shortage)."),
    ("dynsup_worker_exits_total", "counter", "Process exits of a registered worker not asked for by stop, by reason."),
    ("dynsup_template_restarts_total", "counter", "Restarts scheduled for the workers of a template, for the daemon's life."),
    ("dynsup_template_exits_total", "counter", "Process exits of the workers of a template not asked for by stop, by reason, for the daemon's life."),
    ("dynsup_template_spawns_total", "counter", "Processes spawned (exec'd) for the workers of a template."),
    ("dynsup_template_spawn_failures_total", "counter", "Spawns of the workers of a template that failed before or at exec."),
    ("dynsup_spawn_duration_seconds", "histogram", "Time of one spawn, from preparing it to the return of clone after the child's execve."),
    ("dynsup_intensity_restarts", "gauge", "Restarts within the supervisor's intensity window now."),
    ("dynsup_intensity_max_restarts", "gauge", "The supervisor's max_restarts: one more restart within the window escalates."),
    ("dynsup_intensity_window_seconds", "gauge", "The supervisor's max_seconds."),
    ("dynsup_intensity_fill_ratio", "gauge", "Restarts within the window divided by max_restarts (1 when max_restarts is 0)."),
    ("dynsup_log_lines_total", "counter", "Worker output lines let through the rate limit."),
    ("dynsup_log_lines_dropped_total", "counter", "Lines dropped, by cause (rate_limit, log_file, stderr)."),
    ("dynsup_connections", "gauge", "Control socket connections open now."),
    ("dynsup_connections_accepted_total", "counter", "Control socket connections admitted."),
    ("dynsup_connections_refused_total", "counter", "Control socket connections turned away, by reason (too_many_connections, permission_denied)."),
    ("dynsup_http_connections", "gauge", "Metrics HTTP connections open now."),
    ("dynsup_http_requests_total", "counter", "Metrics HTTP requests, by outcome (ok, client_error, timed_out, refused)."),
];

/// A label value as the text format wants it: `\`, `"` and newline escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers as such, `+Inf`, `NaN`.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Writes families with their `# HELP` and `# TYPE` lines.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str) {
        let (_, kind, help) = FAMILIES
            .iter()
            .find(|(n, _, _)| *n == name)
            .copied()
            .unwrap_or((name, "untyped", ""));
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(val));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", value(v));
    }
}

/// The whole exposition: every family of [`FAMILIES`] (the HTTP ones only with an
/// HTTP endpoint), each with its `# HELP` and `# TYPE` lines, then its samples.
pub fn render(metrics: &Metrics, snap: &Snapshot) -> String {
    let mut out = Out {
        text: String::with_capacity(4096 + 256 * metrics.workers.len()),
    };
    out.family("dynsup_start_time_seconds");
    out.sample("dynsup_start_time_seconds", &[], snap.start_time_seconds);
    out.family("dynsup_uptime_seconds");
    out.sample("dynsup_uptime_seconds", &[], snap.uptime_seconds);
    if let Some(rss) = snap.resident_memory_bytes {
        out.family("dynsup_resident_memory_bytes");
        out.sample("dynsup_resident_memory_bytes", &[], rss as f64);
    }

    // Workers by template and state: every configured template gets every state.
    let mut workers: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for template in &snap.templates {
        for state in STATES {
            workers.insert((template, state), 0);
        }
    }
    for (&key, &n) in &snap.workers {
        workers.insert(key, n);
    }
    out.family("dynsup_workers");
    for ((template, state), n) in &workers {
        out.sample(
            "dynsup_workers",
            &[("template", template), ("state", state)],
            *n as f64,
        );
    }

    // Per worker, sorted by name for a stable output.
    let mut names: Vec<(&String, &WorkerSeries)> = metrics.workers.iter().collect();
    names.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.family("dynsup_worker_restarts_total");
    for (name, series) in &names {
        out.sample(
            "dynsup_worker_restarts_total",
            &[("worker", name), ("template", &series.template)],
            series.counts.restarts as f64,
        );
    }
    out.family("dynsup_worker_exits_total");
    for (name, series) in &names {
        for reason in ExitReason::ALL {
            out.sample(
                "dynsup_worker_exits_total",
                &[
                    ("worker", name),
                    ("template", &series.template),
                    ("reason", reason.as_str()),
                ],
                series.counts.exits[reason.index()] as f64,
            );
        }
    }

    // Per template, for the daemon's life.
    out.family("dynsup_template_restarts_total");
    for (template, series) in &metrics.templates {
        out.sample(
            "dynsup_template_restarts_total",
            &[("template", template)],
            series.counts.restarts as f64,
        );
    }
    out.family("dynsup_template_exits_total");
    for (template, series) in &metrics.templates {
        for reason in ExitReason::ALL {
            out.sample(
                "dynsup_template_exits_total",
                &[("template", template), ("reason", reason.as_str())],
                series.counts.exits[reason.index()] as f64,
            );
        }
    }
    out.family("dynsup_template_spawns_total");
    for (template, series) in &metrics.templates {
        out.sample(
            "dynsup_template_spawns_total",
            &[("template", template)],
            series.spawns as f64,
        );
    }
    out.family("dynsup_template_spawn_failures_total");
    for (template, series) in &metrics.templates {
        out.sample(
            "dynsup_template_spawn_failures_total",
            &[("template", template)],
            series.spawn_failures as f64,
        );
    }

    out.family("dynsup_spawn_duration_seconds");
    let hist = &metrics.spawn_latency;
    let mut cumulative = 0;
    for (le, n) in SPAWN_BUCKETS.iter().zip(hist.buckets) {
        cumulative += n;
        out.sample(
            "dynsup_spawn_duration_seconds_bucket",
            &[("le", &value(*le))],
            cumulative as f64,
        );
    }
    out.sample(
        "dynsup_spawn_duration_seconds_bucket",
        &[("le", "+Inf")],
        hist.count as f64,
    );
    out.sample("dynsup_spawn_duration_seconds_sum", &[], hist.sum);
    out.sample(
        "dynsup_spawn_duration_seconds_count",
        &[],
        hist.count as f64,
    );

    let (in_window, max_restarts, max_seconds) = snap.intensity;
    out.family("dynsup_intensity_restarts");
    out.sample("dynsup_intensity_restarts", &[], in_window as f64);
    out.family("dynsup_intensity_max_restarts");
    out.sample(
        "dynsup_intensity_max_restarts",
        &[],
        f64::from(max_restarts),
    );
    out.family("dynsup_intensity_window_seconds");
    out.sample("dynsup_intensity_window_seconds", &[], max_seconds as f64);
    out.family("dynsup_intensity_fill_ratio");
    let fill = match max_restarts {
        0 => 1.0,
        max => in_window as f64 / f64::from(max),
    };
    out.sample("dynsup_intensity_fill_ratio", &[], fill);

    out.family("dynsup_log_lines_total");
    out.sample("dynsup_log_lines_total", &[], snap.log.lines as f64);
    out.family("dynsup_log_lines_dropped_total");
    for (cause, n) in [
        ("rate_limit", snap.log.dropped_rate_limit),
        ("log_file", snap.log.dropped_log_file),
        ("stderr", snap.log.dropped_stderr),
    ] {
        out.sample(
            "dynsup_log_lines_dropped_total",
            &[("cause", cause)],
            n as f64,
        );
    }

    out.family("dynsup_connections");
    out.sample("dynsup_connections", &[], snap.connections_open as f64);
    out.family("dynsup_connections_accepted_total");
    out.sample(
        "dynsup_connections_accepted_total",
        &[],
        snap.connections.accepted as f64,
    );
    out.family("dynsup_connections_refused_total");
    for (reason, n) in [
        ("too_many_connections", snap.connections.refused_full),
        ("permission_denied", snap.connections.refused_denied),
    ] {
        out.sample(
            "dynsup_connections_refused_total",
            &[("reason", reason)],
            n as f64,
        );
    }

    if let Some((open, http)) = snap.http {
        out.family("dynsup_http_connections");
        out.sample("dynsup_http_connections", &[], open as f64);
        out.family("dynsup_http_requests_total");
        for (outcome, n) in [
            ("ok", http.ok),
            ("client_error", http.client_errors),
            ("timed_out", http.timed_out),
            ("refused", http.refused),
        ] {
            out.sample(
                "dynsup_http_requests_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
    }
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(name: &str, reason: &str, exit: ExitReport) -> Event {
        Event::Exited {
            name: name.to_string(),
            pid: 1,
            reason: reason.to_string(),
            exit,
        }
    }

    fn snapshot() -> Snapshot<'static> {
        Snapshot {
            start_time_seconds: 1_700_000_000.5,
            uptime_seconds: 12.25,
            resident_memory_bytes: Some(4096),
            templates: vec!["game"],
            intensity: (1, 3, 5),
            http: Some((0, HttpCounters::default())),
            ..Snapshot::default()
        }
    }

    /// The sample lines of `text` for `name` (with labels), without comments.
    fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn exit_reasons_are_a_closed_set() {
        let code = |code| ExitReport::Exited { code };
        let signal = ExitReport::Signaled {
            signal: "SIGKILL".into(),
            core_dumped: false,
        };
        assert_eq!(ExitReason::of("exit 0", &code(0)), ExitReason::ExitZero);
        assert_eq!(ExitReason::of("exit 3", &code(3)), ExitReason::ExitNonzero);
        assert_eq!(
            ExitReason::of("signal SIGKILL", &signal),
            ExitReason::Signal
        );
        assert_eq!(ExitReason::of("watchdog", &signal), ExitReason::Watchdog);
        assert_eq!(ExitReason::of("health", &signal), ExitReason::Health);
        assert_eq!(
            ExitReason::of("signal SIGTERM (stopped to be restarted)", &signal),
            ExitReason::Restart
        );
    }

    #[test]
    fn events_count_per_worker_and_per_template() {
        let mut m = Metrics::new();
        m.spawned("a", "game", 0.0002, true);
        m.observe(&exited("a", "exit 1", ExitReport::Exited { code: 1 }));
        m.observe(&Event::Restarting {
            name: "a".into(),
            delay_ms: 0,
        });
        m.spawned("a", "game", 0.0003, true);
        let text = render(&m, &snapshot());
        assert!(text.contains(
            "dynsup_worker_exits_total{worker=\"a\",template=\"game\",reason=\"exit_nonzero\"} 1\n"
        ));
        assert!(text.contains("dynsup_worker_restarts_total{worker=\"a\",template=\"game\"} 1\n"));
        assert!(text.contains("dynsup_template_restarts_total{template=\"game\"} 1\n"));
        assert!(text.contains("dynsup_template_spawns_total{template=\"game\"} 2\n"));
        assert!(text.contains("dynsup_spawn_duration_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("dynsup_spawn_duration_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(text.contains("dynsup_spawn_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("dynsup_spawn_duration_seconds_count 2\n"));
    }

    #[test]
    fn a_stopped_worker_loses_its_series_but_not_its_templates_counts() {
        let mut m = Metrics::new();
        for i in 0..10_000 {
            let name = format!("w{i}");
            m.spawned(&name, "game", 0.001, true);
            m.observe(&exited(&name, "exit 0", ExitReport::Exited { code: 0 }));
            m.observe(&Event::Stopped {
                name,
                reason: "exit 0; not restarted".into(),
            });
        }
        assert_eq!(m.worker_series(), 0);
        let text = render(&m, &snapshot());
        assert!(samples(&text, "dynsup_worker_").is_empty(), "{text}");
        assert!(text.contains(
            "dynsup_template_exits_total{template=\"game\",reason=\"exit_zero\"} 10000\n"
        ));
    }

    #[test]
    fn unregistered_workers_are_pruned() {
        let mut m = Metrics::new();
        m.spawned("kept", "t", 0.001, true);
        m.spawned("gone", "t", 0.001, false);
        m.retain_registered(|name| name == "kept");
        assert_eq!(m.worker_series(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        let mut m = Metrics::new();
        m.spawned("w", "we\"ird\\\ntemplate", 0.001, true);
        let text = render(&m, &snapshot());
        assert!(text
            .contains("dynsup_template_spawns_total{template=\"we\\\"ird\\\\\\ntemplate\"} 1\n"));
    }

    #[test]
    fn every_template_has_every_state() {
        let mut snap = snapshot();
        snap.workers.insert(("game", "running"), 2);
        snap.workers.insert(("old", "stopping"), 1);
        let text = render(&Metrics::new(), &snap);
        let rows = samples(&text, "dynsup_workers{");
        assert_eq!(rows.len(), STATES.len() + 1, "{text}");
        assert!(rows.contains(&"dynsup_workers{template=\"game\",state=\"running\"} 2"));
        assert!(rows.contains(&"dynsup_workers{template=\"game\",state=\"failed\"} 0"));
        assert!(rows.contains(&"dynsup_workers{template=\"old\",state=\"stopping\"} 1"));
    }

    #[test]
    fn every_family_has_help_and_type_once_and_before_its_samples() {
        let mut m = Metrics::new();
        m.spawned("w", "game", 0.001, true);
        let text = render(&m, &snapshot());
        for (name, kind, _) in FAMILIES {
            let help = format!("# HELP {name} ");
            let ty = format!("# TYPE {name} {kind}\n");
            assert_eq!(text.matches(&help).count(), 1, "{name}");
            assert_eq!(text.matches(&ty).count(), 1, "{name}");
            let first_sample = text
                .lines()
                .position(|l| l.starts_with(name) && !l.starts_with('#'));
            let type_line = text.lines().position(|l| l == ty.trim_end());
            assert!(type_line < first_sample, "{name}");
        }
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let metric = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                FAMILIES.iter().any(|(n, _, _)| metric == *n
                    || metric
                        .strip_prefix(n)
                        .is_some_and(|rest| ["_bucket", "_sum", "_count"].contains(&rest))),
                "{line}"
            );
        }
    }

    /// docs/OPERATIONS.md ("Metrics") lists every family with its type.
    #[test]
    fn every_family_is_documented() {
        let doc = include_str!("../docs/OPERATIONS.md");
        for (name, kind, _) in FAMILIES {
            let row = format!("| `{name}` | {kind} |");
            assert!(doc.contains(&row), "docs/OPERATIONS.md has no row {row}");
        }
    }

    #[test]
    fn fill_ratio_and_values() {
        let mut snap = snapshot();
        snap.intensity = (0, 0, 5);
        let text = render(&Metrics::new(), &snap);
        assert!(text.contains("dynsup_intensity_fill_ratio 1\n"));
        snap.intensity = (1, 4, 5);
        let text = render(&Metrics::new(), &snap);
        assert!(text.contains("dynsup_intensity_fill_ratio 0.25\n"));
        assert!(text.contains("dynsup_uptime_seconds 12.25\n"));
        assert!(text.contains("dynsup_resident_memory_bytes 4096\n"));
        snap.http = None;
        let text = render(&Metrics::new(), &snap);
        assert!(!text.contains("dynsup_http_"));
    }
}
