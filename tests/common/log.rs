//! Reading a daemon's log (its stderr, sent to a file): the tail quoted in failure
//! messages, and the lines that contain something.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// The last 40 lines of the log at `path`, formatted for a failure message.
pub fn log_tail_of(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    let mut out = format!(
        "\n--- last {} lines of {} ---\n",
        lines.len() - from,
        path.display()
    );
    for line in &lines[from..] {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("--- end of log ---");
    out
}

/// The log lines containing `needle`.
pub fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
