//! The markdown report: targets (met / not met, with ratios), the side-by-side table,
//! the distributions, the machine and the configs used.

use crate::harness::Ctx;
use crate::util::{Mem, Samples};
use crate::{Idle, Results};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn f_ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

fn f_ratio(x: f64) -> String {
    format!("{x:.2}×")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn f_mem(m: &Mem) -> String {
    format!(
        "{} PSS / {} RSS ({} proc{})",
        mib(m.pss_kb),
        mib(m.rss_kb),
        m.procs,
        if m.procs == 1 { "" } else { "s" }
    )
}

fn f_idle(i: &Idle) -> String {
    format!(
        "{} ticks, {} vol. ctx sw ({:.2}/s), {} invol.{}",
        i.ticks,
        i.vol,
        i.vol as f64 / i.secs as f64,
        i.invol,
        if i.stable {
            ""
        } else {
            " (process count changed!)"
        }
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l[12..].trim_matches('"').to_string())
        })
        .unwrap_or_default();
    format!(
        "- date: {date}\n- nproc: {nproc}; CPU: {cpu}\n- kernel: {}; {os}\n- load average at the end: {}",
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

pub fn render(ctx: &Ctx, r: &Results, command: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Results\n");
    let _ = writeln!(
        o,
        "Command: `{command}`{}\n",
        if ctx.quick { " (quick mode)" } else { "" }
    );
    let _ = writeln!(o, "{}\n- dynsup binary: {}\n", machine(), ctx.dynsup_desc);

    let floor = r.floor_restart.as_ref().map(|s| s.median());
    let med = |v: &[f64]| Samples::new(v.to_vec()).median();
    let floor_cold: BTreeMap<usize, f64> = r.floor_cold.iter().map(|(k, v)| (*k, med(v))).collect();
    let cold_children: BTreeMap<usize, f64> = r
        .dyn_cold_children
        .iter()
        .map(|(k, v)| (*k, med(v)))
        .collect();
    let cold_socket: BTreeMap<usize, f64> = r
        .dyn_cold_socket
        .iter()
        .map(|(k, v)| (*k, med(&v.iter().map(|x| x.0).collect::<Vec<_>>())))
        .collect();
    let cold_socket_replies: BTreeMap<usize, f64> = r
        .dyn_cold_socket
        .iter()
        .map(|(k, v)| (*k, med(&v.iter().map(|x| x.1).collect::<Vec<_>>())))
        .collect();

    // ---------------------------------------------------------------- targets
    let _ = writeln!(
        o,
        "### Targets (medians; ratios against the floor measured in this run)\n"
    );
    let _ = writeln!(
        o,
        "| target | dynsup | reference | ratio | goal | verdict |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    let row =
        |o: &mut String, t: &str, d: String, rf: String, ratio: String, goal: &str, v: &str| {
            let _ = writeln!(o, "| {t} | {d} | {rf} | {ratio} | {goal} | {v} |");
        };
    if let (Some(f), Some(d)) = (floor, r.dyn_restart.get(&10)) {
        let x = d.median() / f;
        row(
            &mut o,
            "restart, N=10: SIGKILL → replacement's first instruction",
            f_ms(d.median()),
            format!("floor {}", f_ms(f)),
            f_ratio(x),
            "≤ 1.25× floor",
            verdict(x <= 1.25),
        );
    }
    if let (Some(f), Some(d)) = (floor, r.dyn_lookup_restart.get(&10)) {
        let x = d.median() / f;
        row(
            &mut o,
            "restart, N=10: SIGKILL → new pid answered by `lookup`",
            f_ms(d.median()),
            format!("floor {}", f_ms(f)),
            f_ratio(x),
            "≤ 1.5× floor",
            verdict(x <= 1.5),
        );
    }
    if let (Some(f), Some(d)) = (r.floor_vfork_restart.as_ref(), r.dyn_restart.get(&10)) {
        let x = d.median() / f.median();
        row(
            &mut o,
            "restart, N=10: SIGKILL → first instruction, against the vfork floor",
            f_ms(d.median()),
            format!("vfork floor {}", f_ms(f.median())),
            f_ratio(x),
            "≤ 1.10× vfork floor",
            verdict(x <= 1.10),
        );
    }
    for (label, map) in [
        ("SIGKILL → first instruction", &r.dyn_restart),
        (
            "SIGKILL → new pid answered by `lookup`",
            &r.dyn_lookup_restart,
        ),
    ] {
        if let (Some(small), Some((&big, large))) = (map.get(&10), map.range(11..).next_back()) {
            let x = large.p90() / small.p90();
            row(
                &mut o,
                &format!("flat: restart p90, N={big} against N=10, {label}"),
                f_ms(large.p90()),
                format!("N=10 {}", f_ms(small.p90())),
                f_ratio(x),
                "≤ 1.3× N=10",
                verdict(x <= 1.3),
            );
        }
    }
    if let Some(d) = r.dyn_restart.get(&10) {
        let best = r
            .peers
            .iter()
            .filter_map(|(n, p)| p.restart.as_ref().map(|s| (*n, s.median())))
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        if let Some((name, m)) = best {
            let x = m / d.median();
            row(
                &mut o,
                "restart, N=10: faster than the best peer",
                f_ms(d.median()),
                format!("{name} {}", f_ms(m)),
                format!("{x:.2}× faster"),
                "≥ 1.5× faster",
                verdict(x >= 1.5),
            );
        }
    }
    for (label, map) in [
        ("`[[children]]`", &cold_children),
        ("socket `start` ×N", &cold_socket),
    ] {
        if let (Some(f), Some(d)) = (floor_cold.get(&1000), map.get(&1000)) {
            let x = d / f;
            row(
                &mut o,
                &format!("cold start N=1000, {label}: launch → all stamped"),
                f_ms(*d),
                format!("floor {}", f_ms(*f)),
                f_ratio(x),
                "≤ 1.5× floor",
                verdict(x <= 1.5),
            );
        }
        if let (Some(d1), Some((&big, d10))) = (map.get(&1000), map.range(1001..).next_back()) {
            let x = (d10 / big as f64) / (d1 / 1000.0);
            row(
                &mut o,
                &format!("cold start N={big}, {label}: works, stays linear"),
                f_ms(*d10),
                format!(
                    "N=1000 {} (×{} = {})",
                    f_ms(*d1),
                    big / 1000,
                    f_ms(d1 * big as f64 / 1000.0)
                ),
                format!("{x:.2}× per worker"),
                "works; per-worker cost ≤ 1.3× N=1000's",
                verdict(x <= 1.3),
            );
        }
    }
    if let Some(base) = r.dyn_restart.get(&10).map(|s| s.median()) {
        for (&n, s) in r.dyn_restart.iter().filter(|(&n, _)| n > 10) {
            let x = s.median() / base;
            row(
                &mut o,
                &format!("scaling: restart latency at N={n}"),
                f_ms(s.median()),
                format!("N=10 {}", f_ms(base)),
                f_ratio(x),
                "≤ 1.3× N=10",
                verdict(x <= 1.3),
            );
        }
    }
    if let Some(s) = &r.dyn_lookup_rps {
        let m = s.median();
        row(
            &mut o,
            "`lookup` throughput, one pipelined connection",
            format!("{:.0} req/s", m),
            "–".into(),
            "–".into(),
            "≥ 100,000 req/s",
            verdict(m >= 100_000.0),
        );
    }
    if let Some(s) = &r.dyn_concurrent {
        let p = s.pct(99.0);
        row(
            &mut o,
            "`lookup` p99, 16 concurrent clients",
            format!("{:.0} µs", p),
            format!("p50 {:.0} µs", s.median()),
            "–".into(),
            "≤ 1 ms",
            verdict(p <= 1000.0),
        );
    }
    if let Some((n, s)) = &r.dyn_list {
        let m = s.median();
        if *n == 10_000 {
            row(
                &mut o,
                "`list` of 10000 workers",
                f_ms(m),
                "–".into(),
                "–".into(),
                "≤ 50 ms",
                verdict(m <= 50.0),
            );
        } else if *n > 1000 {
            let est = m * 10_000.0 / *n as f64;
            row(
                &mut o,
                &format!("`list` of {n} workers (10000 cannot run here)"),
                f_ms(m),
                format!(
                    "×{:.2} → {} at 10000 (linear)",
                    10_000.0 / *n as f64,
                    f_ms(est)
                ),
                "–".into(),
                "≤ 50 ms at N=10000",
                &format!("{} (extrapolated)", verdict(est <= 50.0)),
            );
        } else {
            row(
                &mut o,
                &format!("`list` of {n} workers"),
                f_ms(m),
                "–".into(),
                "–".into(),
                "≤ 50 ms at N=10000",
                "(n/a: quick mode)",
            );
        }
    }
    if !r.durable.is_empty() {
        let volatile = med(&r.durable.iter().map(|x| x.0).collect::<Vec<_>>());
        let durable = med(&r.durable.iter().map(|x| x.1).collect::<Vec<_>>());
        let x = durable / volatile;
        row(
            &mut o,
            "durable starts: 1000 pipelined `start`s with `state_file`, send → last reply",
            f_ms(durable),
            format!("without {}", f_ms(volatile)),
            f_ratio(x),
            "≤ 1.3× without",
            verdict(x <= 1.3),
        );
        let extra: Vec<f64> = r
            .durable
            .iter()
            .map(|x| x.3.saturating_sub(x.2) as f64 / 1000.0)
            .collect();
        let per_start = med(&extra);
        row(
            &mut o,
            "durable starts: bytes written per start for the state file (wchar, with − without)",
            format!("{per_start:.0} B"),
            "one record ≈ 50 B".into(),
            "–".into(),
            "O(1) amortised",
            verdict(per_start < 1000.0),
        );
    }
    if let Some(s) = &r.churn_lookup {
        let p99 = s.pct(99.0) / 1000.0;
        row(
            &mut o,
            "`lookup` p99, 16 clients, 1000 workers crash-looping under backoff",
            f_ms(p99),
            format!("p50 {}", f_ms(s.median() / 1000.0)),
            "–".into(),
            "≤ 1 ms",
            verdict(p99 <= 1.0),
        );
    }
    for (n, took) in &r.failover {
        let limit = crate::failover::LEASE_TTL_MS as f64 + 2000.0;
        row(
            &mut o,
            &format!("cluster failover: node kill → its {n} names running on the survivors"),
            f_ms(*took),
            format!("lease {} ms", crate::failover::LEASE_TTL_MS),
            "–".into(),
            "≤ lease + 2 s",
            verdict(*took <= limit),
        );
    }
    if let Some(m) = r.dyn_mem.get(&1000) {
        let v = m.rss_kb as f64 / 1024.0;
        row(
            &mut o,
            "footprint: daemon RSS at N=1000",
            mib(m.rss_kb),
            format!("PSS {}", mib(m.pss_kb)),
            "–".into(),
            "≤ 8 MiB",
            verdict(v <= 8.0),
        );
    }
    if let Some((&big, m)) = r.dyn_mem.range(1001..).next_back() {
        let v = m.rss_kb as f64 / 1024.0;
        if big == 10_000 {
            row(
                &mut o,
                "footprint: daemon RSS at N=10000",
                mib(m.rss_kb),
                format!("PSS {}", mib(m.pss_kb)),
                "–".into(),
                "≤ 32 MiB",
                verdict(v <= 32.0),
            );
        } else if let Some(m1) = r.dyn_mem.get(&1000) {
            let slope = (m.rss_kb as f64 - m1.rss_kb as f64) / (big as f64 - 1000.0);
            let est = (m1.rss_kb as f64 + slope * 9000.0) / 1024.0;
            row(
                &mut o,
                &format!("footprint: daemon RSS at N={big} (10000 cannot run here)"),
                mib(m.rss_kb),
                format!("{:.1} KiB/worker → {est:.1} MiB at 10000 (linear)", slope),
                "–".into(),
                "≤ 32 MiB at N=10000",
                &format!("{} (extrapolated)", verdict(est <= 32.0)),
            );
        }
    }
    if let Some(i) = &r.dyn_idle {
        row(
            &mut o,
            &format!("idle: N=100, {} s", i.secs),
            format!("{} ticks, {} vol. ctx sw", i.ticks, i.vol),
            r.floor_idle
                .map(|f| format!("floor {} / {}", f.ticks, f.vol))
                .unwrap_or_default(),
            "–".into(),
            "0 ticks, 0 ctx sw",
            verdict(i.ticks == 0 && i.vol == 0),
        );
    }
    if let Some(c) = &r.crash {
        let ok = c.crashes as u64 == c.expected && c.exit == Some(1);
        row(
            &mut o,
            "crash loop, intensity 3 in 5 s",
            format!(
                "{} crashes, exit {}",
                c.crashes,
                c.exit.map_or("none (timeout)".into(), |e| e.to_string())
            ),
            format!("escalated after {}", f_ms(c.elapsed_ms)),
            "–".into(),
            &format!("exactly {} crashes, exit 1", c.expected),
            verdict(ok),
        );
    }
    if let Some(b) = &r.backoff {
        // Never early; late by at most 20 ms (a restart, plus scheduling on a busy machine).
        let ok = b
            .gaps_ms
            .iter()
            .zip(&b.expected_ms)
            .all(|(g, e)| *g >= e - 1.0 && *g <= e + 20.0);
        let worst = b
            .gaps_ms
            .iter()
            .zip(&b.expected_ms)
            .map(|(g, e)| g - e)
            .fold(f64::NAN, f64::max);
        row(
            &mut o,
            &format!("backoff curve: `{}`, a worker that exits at once", b.config),
            format!(
                "gaps {} ms",
                b.gaps_ms
                    .iter()
                    .map(|g| format!("{g:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "curve {} ms",
                b.expected_ms
                    .iter()
                    .map(|g| format!("{g:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("latest +{worst:.1} ms"),
            "each gap within [curve − 1 ms, curve + 20 ms]",
            verdict(ok),
        );
    }
    if let Some(f) = &r.flood {
        crate::flood_report::target_rows(&mut o, f);
    }
    let _ = writeln!(o);

    // ---------------------------------------------------------------- side by side
    let peer_names = ["runit", "s6", "supervisord"];
    let shown: Vec<&str> = peer_names
        .iter()
        .copied()
        .filter(|p| r.peers.contains_key(p))
        .collect();
    let _ = writeln!(o, "### Side by side\n");
    let mut header = String::from("| scenario | floor | dynsup |");
    let mut sep = String::from("|---|---|---|");
    for p in &shown {
        let v = &r.peers[p];
        let _ = write!(
            header,
            " {} |",
            if v.version.is_empty() {
                p.to_string()
            } else {
                format!("{p} ({})", v.version)
            }
        );
        sep.push_str("---|");
    }
    let _ = writeln!(o, "{header}\n{sep}");
    let cell_s = |s: Option<&Samples>, f: &dyn Fn(&Samples) -> String| s.map_or("–".into(), f);
    let peer_cell = |p: &str, f: &dyn Fn(&crate::PeerResults) -> Option<String>| -> String {
        let v = &r.peers[p];
        if let Some(why) = &v.skipped {
            return format!("skipped: {why}");
        }
        f(v).unwrap_or_else(|| {
            if v.errors.is_empty() {
                "–".into()
            } else {
                "failed (see below)".into()
            }
        })
    };
    {
        let mut line = format!(
            "| restart, N=10: kill → first instruction, median | {} | {} |",
            cell_s(r.floor_restart.as_ref(), &|s| f_ms(s.median())),
            cell_s(r.dyn_restart.get(&10), &|s| f_ms(s.median()))
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| v.restart.as_ref().map(|s| f_ms(s.median())))
            );
        }
        let _ = writeln!(o, "{line}");
        let mut line = format!(
            "| … p90 / max | {} | {} |",
            cell_s(r.floor_restart.as_ref(), &|s| format!(
                "{} / {}",
                f_ms(s.p90()),
                f_ms(s.max())
            )),
            cell_s(r.dyn_restart.get(&10), &|s| format!(
                "{} / {}",
                f_ms(s.p90()),
                f_ms(s.max())
            ))
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| v.restart.as_ref().map(|s| format!(
                    "{} / {}",
                    f_ms(s.p90()),
                    f_ms(s.max())
                )))
            );
        }
        let _ = writeln!(o, "{line}");
        let mut line = format!(
            "| … trials | {} | {} |",
            cell_s(r.floor_restart.as_ref(), &|s| s.n().to_string()),
            cell_s(r.dyn_restart.get(&10), &|s| s.n().to_string())
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| v.restart.as_ref().map(|_| v.restart_note.clone()))
            );
        }
        let _ = writeln!(o, "{line}");
        let mut line = format!(
            "| cold start, N=1000: launch → all stamped | {} | {} |",
            floor_cold.get(&1000).map_or("–".into(), |x| f_ms(*x)),
            cold_children.get(&1000).map_or("–".into(), |x| f_ms(*x))
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| if v.cold1000.is_empty() {
                    None
                } else {
                    Some(f_ms(med(&v.cold1000)))
                })
            );
        }
        let _ = writeln!(o, "{line}");
        let mut line = format!(
            "| footprint, N=1000: supervisor processes | {} | {} |",
            r.floor_mem.get(&1000).map_or("–".into(), f_mem),
            r.dyn_mem.get(&1000).map_or("–".into(), f_mem)
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| v.mem1000.as_ref().map(f_mem))
            );
        }
        let _ = writeln!(o, "{line}");
        let mut line = format!(
            "| idle, N=100, {} s: supervisor processes | {} | {} |",
            ctx.idle_secs,
            r.floor_idle.as_ref().map_or("–".into(), f_idle),
            r.dyn_idle.as_ref().map_or("–".into(), f_idle)
        );
        for p in &shown {
            let _ = write!(
                line,
                " {} |",
                peer_cell(p, &|v| v.idle.as_ref().map(f_idle))
            );
        }
        let _ = writeln!(o, "{line}\n");
    }

    // ---------------------------------------------------------------- dynsup by N
    let _ = writeln!(o, "### dynsup by number of running workers\n");
    let _ = writeln!(o, "| N | cold start `[[children]]` | cold start, socket (→ stamped / → replies) | restart → first instruction: median / p90 / max (trials) | × N=10 | restart → `lookup`: median / p90 / max | RSS / PSS | fds |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    let base = r.dyn_restart.get(&10).map(|s| s.median());
    for (&n, s) in &r.dyn_restart {
        let l = r.dyn_lookup_restart.get(&n);
        let _ = writeln!(
            o,
            "| {n} | {} | {} | {} / {} / {} ({}) | {} | {} | {} | {} |",
            cold_children.get(&n).map_or("–".into(), |x| f_ms(*x)),
            cold_socket.get(&n).map_or("–".into(), |x| format!(
                "{} / {}",
                f_ms(*x),
                f_ms(cold_socket_replies[&n])
            )),
            f_ms(s.median()),
            f_ms(s.p90()),
            f_ms(s.max()),
            s.n(),
            base.map_or("–".into(), |b| f_ratio(s.median() / b)),
            l.map_or("–".into(), |l| format!(
                "{} / {} / {}",
                f_ms(l.median()),
                f_ms(l.p90()),
                f_ms(l.max())
            )),
            r.dyn_mem.get(&n).map_or("–".into(), |m| format!(
                "{} / {}",
                mib(m.rss_kb),
                mib(m.pss_kb)
            )),
            r.dyn_fds.get(&n).map_or("–".into(), |c| c.to_string()),
        );
    }
    let _ = writeln!(o);
    let list = |v: &[f64]| v.iter().map(|x| f_ms(*x)).collect::<Vec<_>>().join(", ");
    if !r.floor_cold.is_empty() || !r.dyn_cold_children.is_empty() {
        let _ = writeln!(
            o,
            "Cold starts, every repetition (the table shows medians):\n"
        );
        for (n, v) in &r.floor_cold {
            let _ = writeln!(o, "- floor N={n}: {}", list(v));
        }
        for (n, v) in r.dyn_cold_children.iter().filter(|(n, _)| **n >= 1000) {
            let _ = writeln!(o, "- dynsup `[[children]]` N={n}: {}", list(v));
        }
        for (n, v) in &r.dyn_cold_socket {
            let _ = writeln!(
                o,
                "- dynsup socket N={n} (→ all stamped): {}",
                list(&v.iter().map(|x| x.0).collect::<Vec<_>>())
            );
        }
        for (p, v) in &r.peers {
            if !v.cold1000.is_empty() {
                let _ = writeln!(o, "- {p} N=1000: {}", list(&v.cold1000));
            }
        }
        let _ = writeln!(o);
    }
    if let Some(s) = &r.dyn_lookup_rps {
        let _ = writeln!(
            o,
            "Control plane (N=1000): `lookup` pipelined on one connection, {} runs: {} req/s.",
            s.n(),
            s.values
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(s) = &r.dyn_concurrent {
        let _ = writeln!(
            o,
            "16 clients × {} request/reply lookups each: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs.",
            s.n() / 16,
            s.median(),
            s.p90(),
            s.pct(99.0),
            s.max()
        );
    }
    if let Some((n, s)) = &r.dyn_list {
        let _ = writeln!(
            o,
            "`list` of {n}: median {}, p90 {}, max {} ({} trials).",
            f_ms(s.median()),
            f_ms(s.p90()),
            f_ms(s.max()),
            s.n()
        );
    }
    let _ = writeln!(o);

    // ---------------------------------------------------------------- start ordering
    if !r.order.is_empty() {
        let _ = writeln!(
            o,
            "### Start ordering: 1000 boot children, launch → all stamped\n\n\
             `after` edges, readiness = spawned. flat: no edges; star: 999 after one; layers: \
             10 × 100, each child after all 100 of the layer before (9 × 10,000 edges); chain: \
             each after the one before (serial by definition).\n"
        );
        let flat = r
            .order
            .iter()
            .find(|(s, _)| *s == "flat")
            .map(|(_, v)| med(v));
        let _ = writeln!(o, "| shape | median | runs | × flat |\n|---|---|---|---|");
        for (shape, v) in &r.order {
            let m = med(v);
            let runs: Vec<String> = v.iter().map(|x| f_ms(*x)).collect();
            let ratio = flat
                .filter(|f| *f > 0.0)
                .map_or("–".into(), |f| f_ratio(m / f));
            let _ = writeln!(
                o,
                "| {shape} | {} | {} | {ratio} |",
                f_ms(m),
                runs.join(", ")
            );
        }
        let _ = writeln!(o);
    }

    // ---------------------------------------------------------------- spawn primitives
    if !r.spawn.is_empty() {
        let _ = writeln!(
            o,
            "### Spawn primitives (bench/c/spawnprobe.c): spawn → the child's first instruction\n"
        );
        let _ = writeln!(o, "Median / p90 in µs over {} spawns each. `clone_files` = clone(CLONE_VM | CLONE_VFORK | CLONE_FILES), then close_range(3, ~0U, CLOSE_RANGE_UNSHARE) in the child: neither the heap nor the fd table is copied.\n", r.spawn[0].3.n());
        let modes = ["fork", "vfork", "posix_spawn", "clone_files"];
        let _ = writeln!(o, "| parent | {} |", modes.join(" | "));
        let _ = writeln!(o, "|---|---|---|---|---|");
        let mut shapes: Vec<(u64, u64)> = r.spawn.iter().map(|(_, h, f, _)| (*h, *f)).collect();
        shapes.dedup();
        for (h, f) in shapes {
            let label = match (h, f) {
                (0, 0) => "small (no heap, fds 0-2)".to_string(),
                (h, 0) => format!("{h} MiB of touched heap"),
                (_, f) => format!("{f} close-on-exec fds (dynsup at N={})", f / 3),
            };
            let cells: Vec<String> = modes
                .iter()
                .map(|m| {
                    r.spawn
                        .iter()
                        .find(|(mm, hh, ff, _)| mm == m && *hh == h && *ff == f)
                        .map_or("–".into(), |(_, _, _, s)| {
                            format!("{:.0} / {:.0}", s.median(), s.p90())
                        })
                })
                .collect();
            let _ = writeln!(o, "| {label} | {} |", cells.join(" | "));
        }
        let _ = writeln!(o);
    }

    // ---------------------------------------------------------------- flood
    if let Some(f) = &r.flood {
        crate::flood_report::section(&mut o, f);
    }

    // ---------------------------------------------------------------- notes
    let mut errors: Vec<String> = r.errors.clone();
    if let Some(f) = &r.flood {
        errors.extend(crate::flood_report::errors(f));
    }
    for (p, v) in &r.peers {
        for e in &v.errors {
            errors.push(format!("{p}: {e}"));
        }
    }
    if !errors.is_empty() {
        let _ = writeln!(o, "### Errors\n");
        for e in &errors {
            let _ = writeln!(o, "- {e}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "### Notes\n");
    let _ = writeln!(
        o,
        "- Restart latency: the bench reads CLOCK_MONOTONIC, SIGKILLs the oldest worker with kill(2) and takes the \
         replacement's own stamp of its first instruction. The floor, dynsup at every N (both figures) and runit and s6 \
         run side by side and their trials are interleaved round-robin (one trial of each per round, the order rotating, \
         5 ms apart), so the machine's noise falls on all of them alike. supervisord (~1 s per restart) is measured alone."
    );
    let _ = writeln!(
        o,
        "- Cold start: launch (just before the supervisor is spawned, or before the first `start` request is written) → the \
         last of the N workers' stamps. The first `[[children]]` sample of each N comes from the daemon of the latency phase."
    );
    let _ = writeln!(o, "- Footprint: VmRSS and smaps_rollup Pss summed over the supervisor's own processes (workers excluded).");
    let _ = writeln!(
        o,
        "- Idle: utime+stime ticks and voluntary context switches from /proc over one window in which every subject ran \
         100 workers side by side (the counters are per process)."
    );
    for n in &r.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(o);

    // ---------------------------------------------------------------- configs
    let _ = writeln!(o, "### Configs used\n");
    let _ = writeln!(o, "Timing worker: `bench/c/stamp.c` (static, no libc; stamps, appends `PID SEC NSEC` to the FIFO in `$BENCH_STAMP`, pause()s). Every subject runs with the environment `PATH`, `BENCH_STAMP`, `BENCH_TAG` only.\n");
    let _ = writeln!(
        o,
        "Floor: `floor N {}` (bench/c/floor.c).\n",
        ctx.stamp_bin.display()
    );
    let mut cfg = r.dynsup_config_example.clone();
    if let Some(i) = cfg.find("\n[[children]]") {
        let rest = cfg[i..].matches("[[children]]").count();
        cfg.truncate(i);
        cfg.push_str(&format!(
            "\n\n[[children]]\nname = \"w0\"\n# … w0 to w{} ({} children; N varies per scenario)\n",
            rest - 1,
            rest
        ));
    }
    if !cfg.is_empty() {
        let _ = writeln!(o, "dynsup (`dynsup daemon --config F --socket S`, RUST_LOG unset = info, stderr to a file):\n\n```toml\n{}```\n", cfg);
    }
    for p in &shown {
        let _ = writeln!(o, "{p}:\n\n```\n{}\n```\n", r.peers[p].config.trim_end());
    }
    o
}
