//! Waiting for a condition with a deadline: the only way a test waits. A poll sleeps
//! between tries (a short backoff), but no test sleeps to synchronise.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// The deadline for anything that should happen "soon". Generous on purpose: CI is a
/// loaded two-core machine, and a passing test never waits for the full deadline.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How long a request may take to be answered before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `f` with a short backoff until it returns `Some`, or `timeout` passes.
pub fn try_wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(1);
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // Sleeping here is the backoff of a poll, not a synchronisation.
        thread::sleep(backoff.min(deadline - now));
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Polls `f` until it returns `Some`; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match try_wait_until(timeout, f) {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Calls `step` with the time left until `timeout`, again and again, until it returns
/// `Some` (which is returned) or no time is left (`None`). For waits whose every step
/// blocks by itself for at most the time it is given (a channel or a socket read), so
/// that nothing is polled.
pub fn each_moment_until<T>(
    timeout: Duration,
    mut step: impl FnMut(Duration) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Some(value) = step(left) {
            return Some(value);
        }
    }
}

/// Waits until `path` holds a pid (written by a worker, ideally with write-then-rename)
/// and returns it.
#[track_caller]
pub fn wait_pid_file(path: &Path) -> i32 {
    wait_until(DEADLINE, &format!("a pid in {}", path.display()), || {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|&p| p > 0)
    })
}
