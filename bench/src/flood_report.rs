//! The flood scenario's part of the report: its rows in the targets table, and its
//! section (lookup latency with and without a flooding worker, the daemon's CPU for it,
//! capture throughput against the `cat` floor).

use crate::flood::{CaptureSubject, Flood, LatencyVariant, QUIET, WIDTH};
use crate::util::Samples;
use std::fmt::Write as _;

fn f_us(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 100_000.0 {
        format!("{:.0} ms", x / 1e3)
    } else if x >= 1000.0 {
        format!("{:.2} ms", x / 1e3)
    } else {
        format!("{x:.0} µs")
    }
}

fn dist(s: &Samples) -> String {
    if s.n() == 0 {
        return "–".into();
    }
    format!(
        "{} / {} / {} / {} ({})",
        f_us(s.median()),
        f_us(s.p90()),
        f_us(s.pct(99.0)),
        f_us(s.max()),
        s.n()
    )
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

/// A rate with a metric prefix: "1.25M", "625k", "12".
fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Rows for the targets table (same columns: target, dynsup, reference, ratio, goal,
/// verdict).
pub fn target_rows(o: &mut String, f: &Flood) {
    for v in &f.latency {
        let target = format!(
            "`lookup` p99 of other clients while one worker floods (`yes`), {}",
            v.label
        );
        if let Some(why) = &v.skipped {
            let _ = writeln!(o, "| {target} | {why} | – | – | ≤ 1 ms | (pending) |");
        } else if v.error.is_some() {
            let _ = writeln!(
                o,
                "| {target} | failed (see Errors) | – | – | ≤ 1 ms | **not met** |"
            );
        } else {
            let p = v.flood.pct(99.0);
            let q = v.quiet.pct(99.0);
            let ok = v.flood.n() > 0 && p <= 1000.0;
            let _ = writeln!(
                o,
                "| {target} | {} | without the flood {} | {:.1}× | ≤ 1 ms | {} |",
                f_us(p),
                f_us(q),
                p / q,
                if ok { "**met**" } else { "**not met**" }
            );
        }
    }
    let floor = f
        .capture
        .iter()
        .find(|c| c.is_floor && !c.trials.is_empty())
        .map(|c| c.median(|t| t.lines as f64 / t.secs));
    for c in f.capture.iter().filter(|c| c.label.starts_with("dynsup")) {
        let target = format!(
            "capture of {} lines × {WIDTH} B to files: {}",
            f.capture_lines, c.label
        );
        if let Some(why) = &c.skipped {
            let _ = writeln!(
                o,
                "| {target} | {why} | – | – | informational: lines/s vs `cat` | (pending) |"
            );
            continue;
        }
        if c.trials.is_empty() {
            let _ = writeln!(
                o,
                "| {target} | failed (see Errors) | – | – | informational: lines/s vs `cat` | – |"
            );
            continue;
        }
        let lps = c.median(|t| t.lines as f64 / t.secs);
        let lost = f.capture_lines - c.trials.iter().map(|t| t.lines).min().unwrap_or(0);
        let _ = writeln!(
            o,
            "| {target} | {} lines/s{} | floor {} | {} | informational: lines/s vs `cat` | – |",
            rate(lps),
            if lost > 0 {
                format!(" ({lost} lines lost)")
            } else {
                String::new()
            },
            floor.map_or("–".into(), |x| format!("{} lines/s", rate(x))),
            floor.map_or("–".into(), |x| format!("{:.2}×", lps / x)),
        );
    }
}

fn sum(v: &LatencyVariant, f: impl Fn(&crate::flood::FloodWindow) -> f64) -> f64 {
    v.windows.iter().map(f).sum()
}

pub fn section(o: &mut String, f: &Flood) {
    let _ = writeln!(o, "### Flood: one worker writing as fast as it can\n");
    let _ = writeln!(
        o,
        "A daemon with {QUIET} quiet workers and a template running `yes`; {} paced `lookup` clients \
         (one request/reply each per {} ms, on their own connections) run throughout, while the driver \
         alternates a {:.1} s quiet window and a {:.1} s flood window (`start floodK` … `stop floodK`), \
         {} round(s). Latency: request → reply of the lookups sent in each kind of window, \
         p50 / p90 / p99 / max (count). CPU: the daemon's utime+stime over the flood windows; bytes from \
         `/proc/PID/io` (the worker's wchar; the daemon's wchar less the replies the clients read).\n",
        crate::flood::CLIENTS,
        crate::flood::PERIOD.as_millis(),
        f.window.as_secs_f64(),
        f.window.as_secs_f64(),
        f.rounds,
    );
    let _ = writeln!(
        o,
        "| daemon's output | keys | quiet: p50 / p90 / p99 / max (n) | flood: p50 / p90 / p99 / max (n) | \
         daemon CPU per s of flood | worker wrote | daemon wrote | CPU per MB the worker wrote | \
         daemon write calls/s | dropped (`log_dropped`) | `stop` of the flooder |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for v in &f.latency {
        if let Some(why) = &v.skipped {
            let _ = writeln!(o, "| {} | – | {why} | | | | | | | | |", v.label);
            continue;
        }
        if let Some(e) = &v.error {
            let _ = writeln!(
                o,
                "| {} | {} | failed: {e} | | | | | | | | |",
                v.label, v.keys
            );
            continue;
        }
        let secs = sum(v, |w| w.secs);
        let cpu = sum(v, |w| w.cpu_s);
        let offered = sum(v, |w| w.offered as f64);
        let written = sum(v, |w| w.written as f64);
        let writes = sum(v, |w| w.writes as f64);
        let dropped = sum(v, |w| w.dropped as f64);
        let stops = Samples::new(v.windows.iter().map(|w| w.stop_ms).collect());
        // `yes` writes "y\n": two bytes a line.
        let lines_offered = offered / 2.0;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.2} s/s | {:.1} MB/s ({} lines/s) | {:.1} MB/s | {:.1} ms | {}/s | {}/s ({:.0}% of its lines) | {:.0} ms (max {:.0}) |",
            v.label,
            v.keys,
            dist(&v.quiet),
            dist(&v.flood),
            cpu / secs,
            mb(offered) / secs,
            rate(lines_offered / secs),
            mb(written) / secs,
            if offered > 0.0 { cpu * 1e3 / mb(offered) } else { f64::NAN },
            rate(writes / secs),
            rate(dropped / secs),
            if lines_offered > 0.0 { 100.0 * dropped / lines_offered } else { 0.0 },
            stops.median(),
            stops.max(),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Each flood window (p99 of the lookups sent in it, daemon CPU, MB/s the worker wrote):\n"
    );
    for v in f.latency.iter().filter(|v| !v.windows.is_empty()) {
        let per: Vec<String> = v
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{} ({} lookups), {:.2} s/s, {:.1} MB/s",
                    f_us(w.p99_us),
                    w.lookups,
                    w.cpu_s / w.secs,
                    mb(w.offered as f64) / w.secs
                )
            })
            .collect();
        let _ = writeln!(o, "- {}: {}", v.label, per.join("; "));
    }
    let _ = writeln!(o);

    let _ = writeln!(
        o,
        "Capture: {} lines of {WIDTH} bytes ({:.0} MB; `bench/c/flood.c`: a 12-digit sequence number, \
         then `x` to the newline) into files on {}, {} repetition(s), subjects interleaved. Time: start \
         of the stream → the consumer's exit (pipes), or → the last growth of the files (dynsup, whose \
         worker stays up; the files must then stay unchanged for 1 s). Lines: whole stream lines found \
         in the files. MB/s counts the stream's bytes, not the prefixes the loggers add. Medians.\n",
        f.capture_lines,
        mb((f.capture_lines * WIDTH) as f64),
        f.fs_type,
        f.capture_reps
    );
    let floor = f
        .capture
        .iter()
        .find(|c| c.is_floor && !c.trials.is_empty())
        .map(|c| c.median(|t| t.lines as f64 / t.secs));
    let _ = writeln!(
        o,
        "| subject | lines/s | MB/s | × floor | time | lines arrived (fewest) / sent | dropped, reported | file bytes | CPU | CPU per MB | peak RSS |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &f.capture {
        row(o, c, f, floor);
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "How each subject ran:\n");
    for c in &f.capture {
        let _ = writeln!(o, "- {}: {}", c.label, c.how);
    }
    let _ = writeln!(o);
    if !f.config.is_empty() {
        let _ = writeln!(
            o,
            "The lookup daemon's config (stderr → file variant; the others add the keys shown):\n\n```toml\n{}```\n",
            f.config
        );
    }
    for n in &f.notes {
        let _ = writeln!(o, "- {n}");
    }
    if !f.notes.is_empty() {
        let _ = writeln!(o);
    }
}

fn row(o: &mut String, c: &CaptureSubject, f: &Flood, floor: Option<f64>) {
    if let Some(why) = &c.skipped {
        let _ = writeln!(o, "| {} | {why} | | | | | | | | | |", c.label);
        return;
    }
    if c.trials.is_empty() {
        let _ = writeln!(o, "| {} | failed (see Errors) | | | | | | | | | |", c.label);
        return;
    }
    let lps = c.median(|t| t.lines as f64 / t.secs);
    let secs = c.median(|t| t.secs);
    let cpu = c.median(|t| t.cpu_s);
    let fewest = c.trials.iter().map(|t| t.lines).min().unwrap_or(0);
    let reported: Vec<String> = c
        .trials
        .iter()
        .filter_map(|t| t.dropped_reported)
        .map(|d| d.to_string())
        .collect();
    let _ = writeln!(
        o,
        "| {} | {} lines/s | {:.0} MB/s | {} | {:.2} s | {fewest} / {} | {} | {:.1} MB | {:.2} s | {:.1} ms | {} |",
        c.label,
        rate(lps),
        mb(lps * WIDTH as f64),
        floor.map_or("–".into(), |x| format!("{:.2}×", lps / x)),
        secs,
        f.capture_lines,
        if reported.is_empty() {
            "–".into()
        } else {
            reported.join(", ")
        },
        mb(c.median(|t| t.file_bytes as f64)),
        cpu,
        c.median(|t| t.cpu_s * 1e3 / mb((t.lines * WIDTH) as f64)),
        c.trials
            .iter()
            .filter_map(|t| t.peak_rss_kb)
            .max()
            .map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
    );
}

/// Every failure of the scenario, for the report's Errors section.
pub fn errors(f: &Flood) -> Vec<String> {
    let mut out = Vec::new();
    for v in &f.latency {
        if let Some(e) = &v.error {
            out.push(format!("flood, {}: {e}", v.label));
        }
    }
    for c in &f.capture {
        for e in &c.errors {
            out.push(format!("flood capture, {}: {e}", c.label));
        }
    }
    out
}
