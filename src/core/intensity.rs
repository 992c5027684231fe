//! OTP's restart intensity: at most `max_restarts` restarts within `max_seconds`.
//!
//! This is `supervisor:add_restart/1` exactly: one list of restart times shared by all
//! children, in whole seconds of monotonic time. At each restart decision, entries
//! older than `now - max_seconds` are dropped, `now` is added, and if the list is then
//! longer than `max_restarts` the limit is tripped. So with 3 in 5 s the 4th
//! restart-worthy exit within the window trips it, and with `max_restarts = 0` the
//! first one does.
//!
//! Like OTP, the window is in whole seconds: an entry made at second `t` is still
//! counted at second `t + max_seconds` (so the effective window is between
//! `max_seconds` and `max_seconds + 1` real seconds).

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The restart may go ahead.
    Within,
    /// Too many restarts: the supervisor must give up and escalate.
    Exceeded,
}

/// At most this many restart times are kept per window: a limit above it behaves as
/// "infinity" (never trips), and `len` saturates there.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone)]
pub struct Intensity {
    max_restarts: u32,
    max_seconds: u64,
    /// Restart times in whole seconds, newest at the back. Never longer than
    /// `max_restarts + 1`, so memory is bounded whatever the crash rate.
    restarts: VecDeque<u64>,
}

impl Intensity {
    pub fn new(max_restarts: u32, max_seconds: u64) -> Intensity {
        Intensity {
            max_restarts,
            max_seconds,
            restarts: VecDeque::new(),
        }
    }

    /// A window that never trips (`max_restarts = "infinity"`), still counting.
    pub fn unlimited(max_seconds: u64) -> Intensity {
        Intensity::new(u32::MAX, max_seconds)
    }

    /// Change the limits (on reload); the recorded history is kept.
    pub fn set_limits(&mut self, max_restarts: u32, max_seconds: u64) {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
    }

    /// How many recorded restarts are still inside the window at `now_secs`.
    pub fn count_within(&self, now_secs: u64) -> usize {
        let threshold = now_secs.saturating_sub(self.max_seconds);
        self.restarts.iter().filter(|&&t| t >= threshold).count()
    }

    /// Record a restart at `now_secs` and say whether it is allowed.
    pub fn record(&mut self, now_secs: u64) -> Verdict {
        let threshold = now_secs.saturating_sub(self.max_seconds);
        while self.restarts.front().is_some_and(|&t| t < threshold) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now_secs);
        // Keep the bound: entries beyond max_restarts + 1 can never matter.
        let keep = (self.max_restarts as usize)
            .saturating_add(1)
            .min(MAX_TRACKED);
        while self.restarts.len() > keep {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.max_restarts as usize {
            Verdict::Exceeded
        } else {
            Verdict::Within
        }
    }

    pub fn max_seconds(&self) -> u64 {
        self.max_seconds
    }

    /// Restarts currently inside the window (as of the last `record`).
    pub fn len(&self) -> usize {
        self.restarts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.restarts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;
    use super::*;

    #[test]
    fn fourth_restart_within_window_trips_3_in_5() {
        let mut i = Intensity::new(3, 5);
        assert_eq!(i.record(0), Within);
        assert_eq!(i.record(1), Within);
        assert_eq!(i.record(2), Within);
        assert_eq!(i.record(3), Exceeded);
    }

    #[test]
    fn zero_max_restarts_trips_on_the_first() {
        let mut i = Intensity::new(0, 5);
        assert_eq!(i.record(10), Exceeded);
    }

    #[test]
    fn window_edge_is_inclusive_in_whole_seconds() {
        // Entries at 0,0,0: at second 5 they are still inside (5 - 0 <= 5): trips.
        let mut i = Intensity::new(3, 5);
        for _ in 0..3 {
            assert_eq!(i.record(0), Within);
        }
        assert_eq!(i.record(5), Exceeded);

        // At second 6 they have left the window: allowed.
        let mut i = Intensity::new(3, 5);
        for _ in 0..3 {
            assert_eq!(i.record(0), Within);
        }
        assert_eq!(i.record(6), Within);
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn slow_crashes_never_trip() {
        let mut i = Intensity::new(3, 5);
        for t in (0..600).step_by(2) {
            // One restart every 2 s: at most 3 in any 5 s window (t-4, t-2, t).
            assert_eq!(i.record(t), Within, "t={t}");
        }
    }

    #[test]
    fn unlimited_never_trips_and_stays_bounded() {
        let mut i = Intensity::unlimited(5);
        for _ in 0..(MAX_TRACKED + 10) {
            assert_eq!(i.record(1), Within);
        }
        assert_eq!(i.len(), MAX_TRACKED);
        assert_eq!(i.count_within(100), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut i = Intensity::new(2, 1000);
        for _ in 0..10_000 {
            i.record(1);
        }
        assert!(i.len() <= 3);
    }
}
