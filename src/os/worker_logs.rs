//! The workers' output after it is read from their pipes: each name's rate limit, and
//! its last lines kept in memory for `logs`.
//!
//! Every line a worker writes comes through [`WorkerLogs::admit`] (its rate limit) and
//! then [`WorkerLogs::push`], which sends it everywhere it goes at once: the daemon's
//! own log (`logger::worker_line`, at the level of its `<N>` prefix), the name's ring
//! of last lines, the batch of its log file (written by the file writer at the end of
//! the loop turn), and the list of names whose followers have new lines.
//!
//! Bounds, all in bytes a line is accounted for (its length plus [`LINE_COST`]):
//! - a name keeps at most its template's `log_buffer_bytes`; its oldest lines go first;
//! - all names together keep at most `log_buffer_total`; then the oldest lines of all
//!   go first, whoever wrote them — so a name that stopped long ago loses its lines
//!   before the names still writing, and a name whose lines are all gone and that has
//!   no pipe open is forgotten.
//!
//! A name's entry outlives its worker: it is kept across restarts and after a stop,
//! until the total bound evicts its lines.
//!
//! The rate limit is journald's: at most `lines` lines per window of `per_ms`, the
//! window starting at the first line after the previous one ended. Lines beyond it are
//! dropped and counted (the caller counts a whole chunk's newlines at once, without
//! looking at the lines), and when the window has passed one line says how many: a
//! warning in the daemon's log and a `dynsup` line in the worker's own log.
//!
//! No syscalls: time comes in as a [`Stamp`], so the rules are tested with synthetic
//! time.

use crate::config::{OutputSettings, RateLimit};
use crate::protocol::{LogLine, LogStream};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a kept line costs beyond its text: its record and the allocator's overhead.
pub const LINE_COST: usize = 64;

/// The index of a name's entry; valid while the name has a pipe open (the entry is
/// not removed then).
pub type NameId = usize;

/// When lines were read: monotonic (rate windows) and wall-clock (what `logs` shows),
/// and the wall-clock time as the file lines print it. Taken once per pipe read.
pub struct Stamp {
    pub mono: Instant,
    pub wall_ms: u64,
    /// `2026-11-24T16:54:00.123Z`, made only when a file needs it.
    text: Option<String>,
}

impl Stamp {
    pub fn now() -> Stamp {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Stamp::at(Instant::now(), wall_ms)
    }

    pub fn at(mono: Instant, wall_ms: u64) -> Stamp {
        Stamp {
            mono,
            wall_ms,
            text: None,
        }
    }

    fn text(&mut self) -> &str {
        let wall_ms = self.wall_ms;
        self.text.get_or_insert_with(|| {
            crate::logger::timestamp(UNIX_EPOCH + Duration::from_millis(wall_ms))
        })
    }
}

/// One kept line.
struct Kept {
    seq: u64,
    at_ms: u64,
    pid: i32,
    stream: LogStream,
    text: Box<str>,
}

impl Kept {
    fn cost(&self) -> usize {
        self.text.len() + LINE_COST
    }

    pub fn to_wire(&self) -> LogLine {
        LogLine {
            at_ms: self.at_ms,
            pid: self.pid,
            stream: self.stream,
            line: self.text.to_string(),
        }
    }
}

/// A rate window: when it began, lines let through and dropped in it.
#[derive(Default)]
struct Window {
    start: Option<Instant>,
    used: u32,
    dropped: u64,
    /// The limit the lines were dropped under (for the note).
    limit: Option<RateLimit>,
}

/// One name's output.
struct NameLog {
    name: Rc<str>,
    settings: Rc<OutputSettings>,
    lines: VecDeque<Kept>,
    /// The accounted bytes of `lines`.
    bytes: usize,
    window: Window,
    /// Lines dropped over the rate limit since the daemon started.
    dropped: u64,
    /// The output pipes open for this name (its entry is kept while any is).
    pipes: u32,
    /// The pid that wrote its last line (for the `dynsup` note on drops).
    last_pid: i32,
    /// The first line added this turn (for followers), if any.
    new_from: Option<u64>,
    /// Lines for its log file, waiting for the end of the turn.
    file_batch: Vec<u8>,
    file_lines: u64,
    /// Listed in `drops_changed` / `open_windows` this turn.
    drops_listed: bool,
    window_listed: bool,
}

impl NameLog {
    /// When its current rate window ends (now, if it has no limit any more).
    fn window_end(&self) -> Option<Instant> {
        let per = self.settings.rate_limit.map_or(0, |limit| limit.per_ms);
        Some(self.window.start? + Duration::from_millis(per))
    }
}

/// Every name's output (see the module doc).
pub struct WorkerLogs {
    entries: Vec<Option<NameLog>>,
    free: Vec<NameId>,
    by_name: HashMap<Rc<str>, NameId>,
    /// Names that keep lines, by the sequence number of their oldest line: the total
    /// bound evicts from the first.
    oldest: BTreeSet<(u64, NameId)>,
    /// The accounted bytes of every name's lines.
    total: usize,
    total_cap: usize,
    next_seq: u64,
    /// Names with new lines this turn (for followers).
    new_lines: Vec<NameId>,
    /// Names with lines for their file this turn.
    file_touched: Vec<NameId>,
    /// Names whose drop count changed this turn (for `list`).
    drops_changed: Vec<NameId>,
    /// Names that dropped lines in their current window: each gets its note when the
    /// window ends.
    open_windows: Vec<NameId>,
    /// Entries that may have become removable (no line, no pipe); looked at in
    /// `end_turn`, so that ids handed out this turn stay valid until then.
    maybe_empty: Vec<NameId>,
    /// Lines let through (pushed) since the daemon started, for `metrics`.
    pub lines_total: u64,
    /// Lines dropped over a rate limit since the daemon started, for `metrics`.
    pub dropped_total: u64,
}

/// A name's lines for its log file, gathered during a loop turn.
pub struct FileBatch {
    pub name: Rc<str>,
    pub settings: Rc<OutputSettings>,
    pub bytes: Vec<u8>,
    pub lines: u64,
}

impl WorkerLogs {
    pub fn new(total_cap: usize) -> WorkerLogs {
        WorkerLogs {
            entries: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            oldest: BTreeSet::new(),
            total: 0,
            total_cap,
            next_seq: 0,
            new_lines: Vec::new(),
            file_touched: Vec::new(),
            drops_changed: Vec::new(),
            open_windows: Vec::new(),
            maybe_empty: Vec::new(),
            lines_total: 0,
            dropped_total: 0,
        }
    }

    fn entry(&mut self, id: NameId) -> Option<&mut NameLog> {
        self.entries.get_mut(id).and_then(Option::as_mut)
    }

    fn entry_ref(&self, id: NameId) -> Option<&NameLog> {
        self.entries.get(id).and_then(Option::as_ref)
    }

    /// A pipe of `name` opens (a spawn): its entry, created if new, with the settings
    /// of its template from now on. A name that dropped lines before is listed again,
    /// so the core (whose record of a name restarts with it) hears its count.
    pub fn open_pipe(&mut self, name: &Rc<str>, settings: Rc<OutputSettings>) -> NameId {
        let id = match self.by_name.get(name) {
            Some(&id) => id,
            None => {
                let entry = NameLog {
                    name: name.clone(),
                    settings: settings.clone(),
                    lines: VecDeque::new(),
                    bytes: 0,
                    window: Window::default(),
                    dropped: 0,
                    pipes: 0,
                    last_pid: 0,
                    new_from: None,
                    file_batch: Vec::new(),
                    file_lines: 0,
                    drops_listed: false,
                    window_listed: false,
                };
                let id = match self.free.pop() {
                    Some(id) => {
                        self.entries[id] = Some(entry);
                        id
                    }
                    None => {
                        self.entries.push(Some(entry));
                        self.entries.len() - 1
                    }
                };
                self.by_name.insert(name.clone(), id);
                id
            }
        };
        self.configure(id, settings);
        if let Some(entry) = self.entry(id) {
            entry.pipes += 1;
            if entry.dropped > 0 && !entry.drops_listed {
                entry.drops_listed = true;
                self.drops_changed.push(id);
            }
        }
        id
    }

    /// A pipe of the name reached its end.
    pub fn close_pipe(&mut self, id: NameId) {
        if let Some(entry) = self.entry(id) {
            entry.pipes = entry.pipes.saturating_sub(1);
            self.maybe_empty.push(id);
        }
    }

    /// New settings for `name` (a reload), if it has an entry.
    pub fn reconfigure(&mut self, name: &str, settings: Rc<OutputSettings>) {
        if let Some(&id) = self.by_name.get(name) {
            self.configure(id, settings);
        }
    }

    fn configure(&mut self, id: NameId, settings: Rc<OutputSettings>) {
        // A new rate limit applies to the current window (its end moves with `per_ms`;
        // with none, a pending note is due at once).
        let Some(entry) = self.entry(id) else { return };
        let cap = settings.buffer_bytes;
        entry.settings = settings;
        while self.entry_ref(id).is_some_and(|entry| entry.bytes > cap) {
            self.pop_oldest_of(id);
        }
    }

    /// A new bound on all names' lines (a reload); applied at once.
    pub fn set_total_cap(&mut self, cap: usize) {
        self.total_cap = cap;
        self.enforce_total();
    }

    /// May one more line of `id` go through its rate limit now? Counts it if so.
    pub fn admit(&mut self, id: NameId, at: &mut Stamp) -> bool {
        let now = at.mono;
        let Some(entry) = self.entry(id) else {
            return false;
        };
        let Some(limit) = entry.settings.rate_limit else {
            return true;
        };
        let per = Duration::from_millis(limit.per_ms);
        match entry.window.start {
            Some(start) if now < start + per => {}
            _ => {
                self.close_window(id, at);
                let Some(entry) = self.entry(id) else {
                    return false;
                };
                entry.window.start = Some(now);
                entry.window.used = 0;
            }
        }
        let Some(entry) = self.entry(id) else {
            return false;
        };
        if entry.window.used < limit.lines {
            entry.window.used += 1;
            true
        } else {
            false
        }
    }

    /// `n` lines of `id` were dropped over its rate limit.
    pub fn drop_lines(&mut self, id: NameId, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped_total += n;
        let Some(entry) = self.entry(id) else { return };
        entry.window.limit = entry.settings.rate_limit;
        entry.window.dropped += n;
        entry.dropped += n;
        let list_drops = !std::mem::replace(&mut entry.drops_listed, true);
        let list_window = !std::mem::replace(&mut entry.window_listed, true);
        if list_drops {
            self.drops_changed.push(id);
        }
        if list_window {
            self.open_windows.push(id);
        }
    }

    /// A line `id` wrote (its newline removed), admitted by its rate limit: to the
    /// daemon's log, the ring, the file batch and the followers.
    pub fn push(&mut self, id: NameId, pid: i32, raw: &[u8], at: &mut Stamp) {
        self.lines_total += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        let Some(entry) = self.entry_ref(id) else {
            return;
        };
        let (level, message) = crate::logger::split_priority(&text);
        crate::logger::worker_line(&entry.name, level, message);
        self.add(id, pid, LogStream::Output, text.into_owned(), at);
    }

    /// Keep a line (any stream) and queue it for the file and the followers.
    fn add(&mut self, id: NameId, pid: i32, stream: LogStream, text: String, at: &mut Stamp) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(entry) = self.entries.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        entry.last_pid = pid;
        if entry.settings.file.is_some() {
            if entry.file_batch.is_empty() {
                self.file_touched.push(id);
            }
            let batch = &mut entry.file_batch;
            batch.extend_from_slice(at.text().as_bytes());
            // Writing to a Vec cannot fail.
            let _ = write!(batch, " {pid} {} ", stream.as_str());
            batch.extend_from_slice(text.as_bytes());
            batch.push(b'\n');
            entry.file_lines += 1;
        }
        let kept = Kept {
            seq,
            at_ms: at.wall_ms,
            pid,
            stream,
            text: text.into_boxed_str(),
        };
        let cost = kept.cost();
        let cap = entry.settings.buffer_bytes;
        if cost > cap {
            // Longer than all it may keep: it goes to the log and the file only.
            return;
        }
        if entry.new_from.is_none() {
            entry.new_from = Some(seq);
            self.new_lines.push(id);
        }
        while self
            .entry_ref(id)
            .is_some_and(|entry| entry.bytes + cost > cap)
        {
            self.pop_oldest_of(id);
        }
        let Some(entry) = self.entries.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if entry.lines.is_empty() {
            self.oldest.insert((seq, id));
        }
        entry.lines.push_back(kept);
        entry.bytes += cost;
        self.total += cost;
        self.enforce_total();
    }

    /// Drop `id`'s oldest line.
    fn pop_oldest_of(&mut self, id: NameId) {
        let Some(entry) = self.entries.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let Some(line) = entry.lines.pop_front() else {
            entry.bytes = 0;
            return;
        };
        let cost = line.cost();
        entry.bytes -= cost;
        self.total -= cost;
        self.oldest.remove(&(line.seq, id));
        match entry.lines.front() {
            Some(next) => {
                self.oldest.insert((next.seq, id));
            }
            // Forgotten at the end of the turn, unless a pipe of it is still open.
            None if entry.pipes == 0 => self.maybe_empty.push(id),
            None => {}
        }
        // Give back the memory of a ring that shrank a lot.
        if entry.lines.capacity() > 64 && entry.lines.len() < entry.lines.capacity() / 4 {
            entry.lines.shrink_to(entry.lines.len() * 2);
        }
    }

    /// Over the total bound: the oldest lines of all go first.
    fn enforce_total(&mut self) {
        while self.total > self.total_cap {
            let Some(&(_, id)) = self.oldest.first() else {
                break;
            };
            self.pop_oldest_of(id);
        }
    }

    /// A window that dropped lines ended: say how many, in the daemon's log and in the
    /// name's own.
    fn close_window(&mut self, id: NameId, at: &mut Stamp) {
        let Some(entry) = self.entry(id) else { return };
        let dropped = std::mem::take(&mut entry.window.dropped);
        entry.window.start = None;
        if dropped == 0 {
            return;
        }
        let (lines, per_ms) = entry.window.limit.map_or((0, 0), |l| (l.lines, l.per_ms));
        let note = format!(
            "dropped {dropped} line(s): over log_rate_limit ({lines} lines per {per_ms} ms)"
        );
        log::warn!("{}: {note}", entry.name);
        let pid = entry.last_pid;
        self.add(id, pid, LogStream::Dynsup, note, at);
    }

    /// When the next window with dropped lines ends (its note is due), if any.
    pub fn next_wake(&self) -> Option<Instant> {
        self.open_windows
            .iter()
            .filter_map(|&id| self.entry_ref(id).and_then(NameLog::window_end))
            .min()
    }

    /// Write the notes of the windows that ended by `now`.
    pub fn close_due_windows(&mut self, at: &mut Stamp) {
        if self.open_windows.is_empty() {
            return;
        }
        let now = at.mono;
        let open = std::mem::take(&mut self.open_windows);
        for id in open {
            let due = self
                .entry_ref(id)
                .and_then(NameLog::window_end)
                .is_none_or(|end| end <= now);
            if !due {
                self.open_windows.push(id);
                continue;
            }
            // A window already ended by a later line wrote its note then; this one
            // has nothing left to say.
            self.close_window(id, at);
            if let Some(entry) = self.entry(id) {
                entry.window_listed = false;
                self.maybe_empty.push(id);
            }
        }
    }

    /// Whether `name` has an entry (it ran, and its lines were not all evicted).
    pub fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The sequence number the next line will get (a follower wants lines from here).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last `n` kept lines of `name`, oldest first, as many as fit in `max_bytes`
    /// of JSON (at least one line is given whatever its size).
    pub fn tail(&self, name: &str, n: usize, max_bytes: usize) -> Vec<LogLine> {
        let Some(entry) = self.by_name.get(name).and_then(|&id| self.entry_ref(id)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut size = 0;
        for kept in entry.lines.iter().rev().take(n) {
            let line = kept.to_wire();
            size += serde_json::to_vec(&line).map_or(0, |v| v.len()) + 1;
            if size > max_bytes && !out.is_empty() {
                break;
            }
            out.push(line);
        }
        out.reverse();
        out
    }

    /// The names with new kept lines this turn, each with the sequence number of its
    /// first new line.
    pub fn take_new_lines(&mut self) -> Vec<(Rc<str>, u64)> {
        let ids = std::mem::take(&mut self.new_lines);
        ids.into_iter()
            .filter_map(|id| {
                let entry = self.entries.get_mut(id).and_then(Option::as_mut)?;
                Some((entry.name.clone(), entry.new_from.take()?))
            })
            .collect()
    }

    /// The kept lines of `name` from sequence number `from` on, oldest first.
    pub fn lines_since(&self, name: &str, from: u64) -> Vec<(u64, LogLine)> {
        let Some(entry) = self.by_name.get(name).and_then(|&id| self.entry_ref(id)) else {
            return Vec::new();
        };
        let start = entry.lines.partition_point(|line| line.seq < from);
        entry
            .lines
            .range(start..)
            .map(|kept| (kept.seq, kept.to_wire()))
            .collect()
    }

    /// Each name's lines for its file this turn.
    pub fn take_file_batches(&mut self) -> Vec<FileBatch> {
        let ids = std::mem::take(&mut self.file_touched);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(entry) = self.entries.get_mut(id).and_then(Option::as_mut) else {
                continue;
            };
            if entry.file_batch.is_empty() {
                continue;
            }
            out.push(FileBatch {
                name: entry.name.clone(),
                settings: entry.settings.clone(),
                bytes: std::mem::take(&mut entry.file_batch),
                lines: std::mem::take(&mut entry.file_lines),
            });
        }
        out
    }

    /// The names whose drop count changed this turn, with their count so far.
    pub fn take_changed_drops(&mut self) -> Vec<(Rc<str>, u64)> {
        let ids = std::mem::take(&mut self.drops_changed);
        ids.into_iter()
            .filter_map(|id| {
                let entry = self.entries.get_mut(id).and_then(Option::as_mut)?;
                entry.drops_listed = false;
                Some((entry.name.clone(), entry.dropped))
            })
            .collect()
    }

    /// The end of a loop turn: forget the names left with no line and no pipe.
    pub fn end_turn(&mut self) {
        if self.maybe_empty.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.maybe_empty);
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            let removable = self.entry_ref(id).is_some_and(|entry| {
                entry.pipes == 0
                    && entry.lines.is_empty()
                    && entry.file_batch.is_empty()
                    && !entry.window_listed
                    && !entry.drops_listed
            });
            if removable {
                if let Some(entry) = self.entries[id].take() {
                    self.by_name.remove(&entry.name);
                    self.free.push(id);
                }
            }
        }
        self.maybe_empty = ids;
        self.maybe_empty.clear();
    }

    /// The accounted bytes of all kept lines (for tests and the bound).
    pub fn total_bytes(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(buffer_bytes: usize, rate: Option<(u32, u64)>) -> Rc<OutputSettings> {
        Rc::new(OutputSettings {
            buffer_bytes,
            rate_limit: rate.map(|(lines, per_ms)| RateLimit { lines, per_ms }),
            file: None,
        })
    }

    fn lines_of(logs: &WorkerLogs, name: &str) -> Vec<String> {
        logs.tail(name, usize::MAX, usize::MAX)
            .into_iter()
            .map(|l| l.line)
            .collect()
    }

    fn push(logs: &mut WorkerLogs, id: NameId, text: &str, at: Instant) {
        let mut stamp = Stamp::at(at, 1);
        assert!(logs.admit(id, &mut stamp), "{text} admitted");
        logs.push(id, 7, text.as_bytes(), &mut stamp);
    }

    #[test]
    fn keeps_the_last_lines_of_a_name_within_its_bytes() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(3 * (LINE_COST + 6), None));
        for i in 0..10 {
            push(&mut logs, id, &format!("line {i}"), t);
        }
        assert_eq!(lines_of(&logs, "w"), ["line 7", "line 8", "line 9"]);
        let two: Vec<String> = logs
            .tail("w", 2, usize::MAX)
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(two, ["line 8", "line 9"]);
        assert_eq!(logs.total_bytes(), 3 * (LINE_COST + 6));
    }

    #[test]
    fn the_total_bound_evicts_the_oldest_lines_of_all_and_forgets_empty_names() {
        let t = Instant::now();
        let cost = LINE_COST + 1;
        let mut logs = WorkerLogs::new(4 * cost);
        let (a, b): (Rc<str>, Rc<str>) = (Rc::from("a"), Rc::from("b"));
        let ia = logs.open_pipe(&a, settings(1 << 20, None));
        push(&mut logs, ia, "1", t);
        push(&mut logs, ia, "2", t);
        logs.close_pipe(ia);
        let ib = logs.open_pipe(&b, settings(1 << 20, None));
        for text in ["3", "4", "5"] {
            push(&mut logs, ib, text, t);
        }
        assert_eq!(lines_of(&logs, "a"), ["2"]);
        push(&mut logs, ib, "6", t);
        assert!(lines_of(&logs, "a").is_empty());
        assert_eq!(lines_of(&logs, "b"), ["3", "4", "5", "6"]);
        assert!(logs.knows("a"), "forgotten only at the end of the turn");
        logs.end_turn();
        assert!(!logs.knows("a"), "no line and no pipe: forgotten");
        assert!(logs.knows("b"), "b has its pipe open");
        assert_eq!(logs.total_bytes(), 4 * cost);
    }

    #[test]
    fn a_name_keeps_its_lines_across_restarts_and_after_its_pipe_closed() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, None));
        push(&mut logs, id, "last words", t);
        logs.close_pipe(id);
        logs.end_turn();
        assert_eq!(lines_of(&logs, "w"), ["last words"]);
        let again = logs.open_pipe(&name, settings(1 << 16, None));
        assert_eq!(again, id);
        push(&mut logs, again, "back", t);
        assert_eq!(lines_of(&logs, "w"), ["last words", "back"]);
    }

    #[test]
    fn the_rate_limit_drops_and_counts_then_notes_the_drops_when_the_window_ends() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, Some((2, 1000))));
        push(&mut logs, id, "a", t);
        push(&mut logs, id, "b", t + Duration::from_millis(10));
        let at = |ms| Stamp::at(t + Duration::from_millis(ms), ms);
        assert!(!logs.admit(id, &mut at(20)));
        logs.drop_lines(id, 1);
        logs.drop_lines(id, 40);
        assert_eq!(logs.take_changed_drops(), [(name.clone(), 41)]);
        assert_eq!(logs.take_changed_drops(), []);
        assert_eq!(logs.next_wake(), Some(t + Duration::from_millis(1000)));
        logs.close_due_windows(&mut at(999));
        assert_eq!(lines_of(&logs, "w"), ["a", "b"]);
        logs.close_due_windows(&mut at(1000));
        assert_eq!(logs.next_wake(), None);
        let kept = logs.tail("w", 1, usize::MAX);
        assert_eq!(kept[0].stream, LogStream::Dynsup);
        assert_eq!(
            kept[0].line,
            "dropped 41 line(s): over log_rate_limit (2 lines per 1000 ms)"
        );
        // A new window lets lines through again.
        push(&mut logs, id, "c", t + Duration::from_millis(1001));
        assert_eq!(lines_of(&logs, "w").last().map(String::as_str), Some("c"));
    }

    #[test]
    fn a_limit_turned_off_by_a_reload_still_notes_what_was_dropped() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, Some((1, 60_000))));
        push(&mut logs, id, "a", t);
        logs.drop_lines(id, 3);
        assert_eq!(logs.next_wake(), Some(t + Duration::from_secs(60)));
        logs.reconfigure("w", settings(1 << 16, None));
        assert_eq!(logs.next_wake(), Some(t), "due at once");
        logs.close_due_windows(&mut Stamp::at(t, 1));
        assert_eq!(logs.next_wake(), None);
        assert_eq!(
            lines_of(&logs, "w").last().map(String::as_str),
            Some("dropped 3 line(s): over log_rate_limit (1 lines per 60000 ms)")
        );
    }

    #[test]
    fn a_name_that_comes_back_reports_its_drops_again() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, Some((1, 1000))));
        push(&mut logs, id, "a", t);
        logs.drop_lines(id, 5);
        assert_eq!(logs.take_changed_drops(), [(name.clone(), 5)]);
        logs.close_pipe(id);
        logs.open_pipe(&name, settings(1 << 16, Some((1, 1000))));
        assert_eq!(logs.take_changed_drops(), [(name, 5)]);
    }

    #[test]
    fn followers_get_the_lines_of_the_turn_once() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, None));
        push(&mut logs, id, "old", t);
        let _ = logs.take_new_lines();
        push(&mut logs, id, "x", t);
        push(&mut logs, id, "y", t);
        let new = logs.take_new_lines();
        assert_eq!(new.len(), 1);
        let lines = logs.lines_since(&new[0].0, new[0].1);
        let texts: Vec<&str> = lines.iter().map(|(_, l)| l.line.as_str()).collect();
        assert_eq!(texts, ["x", "y"]);
        assert!(logs.take_new_lines().is_empty());
    }

    #[test]
    fn tail_stops_at_its_byte_bound_but_gives_at_least_one_line() {
        let t = Instant::now();
        let mut logs = WorkerLogs::new(1 << 20);
        let name: Rc<str> = Rc::from("w");
        let id = logs.open_pipe(&name, settings(1 << 16, None));
        for i in 0..10 {
            push(&mut logs, id, &format!("{i:0100}"), t);
        }
        assert_eq!(logs.tail("w", 10, 1).len(), 1);
        assert_eq!(logs.tail("w", 10, 450).len(), 3);
    }
}
