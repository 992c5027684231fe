//! The path from the daemon's loop to its stderr: a queue bounded in bytes, and a
//! writer thread that is the only code that ever waits on stderr.
//!
//! The loop hands each finished line to [`StderrQueue::push`], which appends it under a
//! lock held only for that copy and never waits for I/O. The writer thread takes
//! everything queued at once and writes it in chunks of at most [`CHUNK`] bytes, so one
//! `write(2)` carries many lines. fd 2 itself stays as it is (blocking): its open file
//! description may be shared with a shell or other processes, so the daemon must not
//! change its flags.
//!
//! When the bytes not yet written (queued, plus what the writer holds) would exceed the
//! bound, the new line is dropped — the newest, not the oldest: what was accepted is
//! written whole and in order, the loss is one contiguous gap, and refusing costs a
//! comparison. Dropping goes on until the writer has brought the unwritten bytes down
//! to half the bound; then it appends one record saying how many lines were dropped
//! (made by the `dropped_record` function the queue was built with), exactly where the
//! gap is, and lines are accepted again. A slow reader thus costs at most one such
//! record per half a bound written.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Largest single `write(2)` of the writer: the unit in which room comes back.
pub const CHUNK: usize = 64 * 1024;

pub struct StderrQueue {
    state: Mutex<State>,
    /// Signalled when lines arrive for a writer that waits for them.
    wake_writer: Condvar,
    /// Signalled when everything accepted has been written, for [`StderrQueue::wait_drained`].
    drained: Condvar,
    /// Bound on the bytes not yet written.
    capacity: usize,
    /// The record written after a gap: `dropped N lines`.
    dropped_record: fn(u64) -> Vec<u8>,
    /// A copy of `State::dropping`, read without the lock: a line that will be refused
    /// need not be formatted first.
    refusing: AtomicBool,
    /// Lines refused since the daemon started (for `metrics`).
    dropped_total: AtomicU64,
}

struct State {
    /// Lines accepted and not yet taken by the writer.
    queued: Vec<u8>,
    /// Bytes accepted and not yet written: `queued` plus the rest of the writer's batch.
    unwritten: usize,
    /// The writer waits on `wake_writer` (a push must wake it).
    writer_idle: bool,
    /// Lines are being refused until `unwritten` is down to half the capacity.
    dropping: bool,
    /// Lines refused since the last `dropped` record.
    dropped: u64,
    /// Someone waits on `drained`.
    drain_waited: bool,
}

impl StderrQueue {
    pub const fn new(capacity: usize, dropped_record: fn(u64) -> Vec<u8>) -> StderrQueue {
        StderrQueue {
            state: Mutex::new(State {
                queued: Vec::new(),
                unwritten: 0,
                writer_idle: false,
                dropping: false,
                dropped: 0,
                drain_waited: false,
            }),
            wake_writer: Condvar::new(),
            drained: Condvar::new(),
            capacity,
            dropped_record,
            refusing: AtomicBool::new(false),
            dropped_total: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can panic halfway through an update; a poisoned lock
        // still holds consistent counts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the next line would be refused, checked before it is even made: `true`
    /// means it was dropped (and counted) already.
    pub fn refuses_next(&self) -> bool {
        if !self.refusing.load(Ordering::Relaxed) {
            return false;
        }
        let mut state = self.lock();
        if state.dropping {
            state.dropped += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        state.dropping
    }

    /// Queue one line (with its newline). Never waits for I/O. `false`: it did not fit
    /// and was dropped (and counted).
    pub fn push(&self, line: &[u8]) -> bool {
        let mut state = self.lock();
        if state.dropping || state.unwritten + line.len() > self.capacity {
            state.dropping = true;
            self.refusing.store(true, Ordering::Relaxed);
            state.dropped += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        state.queued.extend_from_slice(line);
        state.unwritten += line.len();
        if state.writer_idle {
            state.writer_idle = false;
            self.wake_writer.notify_one();
        }
        true
    }

    /// The writer thread's body: write what is queued to `out`, forever. A write that
    /// fails for good (stderr closed, `EPIPE`) discards its chunk: there is nowhere
    /// else to report it.
    pub fn write_forever(&self, out: impl AsFd) -> ! {
        let mut batch = Vec::new();
        loop {
            {
                let mut state = self.lock();
                while state.queued.is_empty() {
                    state.writer_idle = true;
                    state = self
                        .wake_writer
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.writer_idle = false;
                // The emptied buffer of the last batch goes back, so no allocation
                // follows once both have grown.
                std::mem::swap(&mut state.queued, &mut batch);
            }
            let mut done = 0;
            while done < batch.len() {
                let end = batch.len().min(done + CHUNK);
                let taken = write_some(&out, &batch[done..end]);
                done += taken;
                self.written(taken);
            }
            batch.clear();
        }
    }

    /// `n` bytes of the writer's batch are out: room comes back, a gap gets its record,
    /// and a waiting [`StderrQueue::wait_drained`] learns when all is written.
    fn written(&self, n: usize) {
        let mut state = self.lock();
        state.unwritten -= n;
        if state.dropping && state.unwritten <= self.capacity / 2 {
            let record = (self.dropped_record)(state.dropped);
            state.queued.extend_from_slice(&record);
            state.unwritten += record.len();
            state.dropping = false;
            self.refusing.store(false, Ordering::Relaxed);
            state.dropped = 0;
        }
        if state.unwritten == 0 && state.drain_waited {
            state.drain_waited = false;
            self.drained.notify_all();
        }
    }

    /// Waits until everything accepted has been written, at most `grace`. `true` if it
    /// was.
    pub fn wait_drained(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        while state.unwritten > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state.drain_waited = true;
            state = self
                .drained
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Lines refused since the daemon started.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Lines dropped since the last `dropped` record.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// One `write(2)` of `bytes` to `out`, retried on `EINTR` and, when someone else made
/// the file non-blocking, after waiting until it is writable. Returns the bytes taken:
/// written, or all of them when the file cannot take any for good.
fn write_some(out: &impl AsFd, bytes: &[u8]) -> usize {
    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        match nix::unistd::write(out.as_fd(), bytes) {
            Ok(0) => return bytes.len(),
            Ok(n) => return n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    return bytes.len();
                }
            }
            Err(_) => return bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! With real pipes: the writer thread blocks on a pipe nobody reads, exactly as on a
    //! stalled stderr.

    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;

    fn dropped_record(n: u64) -> Vec<u8> {
        format!("dropped {n} lines\n").into_bytes()
    }

    /// A queue of `capacity` bytes writing into a pipe; its read end, non-blocking.
    fn queue_into_pipe(capacity: usize) -> (&'static StderrQueue, std::fs::File) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let queue: &'static StderrQueue =
            Box::leak(Box::new(StderrQueue::new(capacity, dropped_record)));
        std::thread::spawn(move || queue.write_forever(write));
        set_nonblocking(&read);
        (queue, std::fs::File::from(read))
    }

    fn set_nonblocking(fd: &OwnedFd) {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL");
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(fd, FcntlArg::F_SETFL(flags)).expect("F_SETFL");
    }

    /// Reads what the pipe holds now.
    fn read_available(pipe: &mut std::fs::File, into: &mut Vec<u8>) {
        let mut buf = [0u8; 65536];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.extend_from_slice(&buf[..n]);
        }
    }

    /// Waits (up to a second) until the pipe has something to read.
    fn wait_readable(pipe: &std::fs::File) {
        use nix::poll::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, 1000u16);
    }

    #[test]
    fn lines_arrive_whole_and_in_order() {
        let (queue, mut pipe) = queue_into_pipe(1 << 20);
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            assert!(queue.push(line.as_bytes()));
        }
        assert!(queue.wait_drained(Duration::from_secs(20)));
        let mut out = Vec::new();
        read_available(&mut pipe, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), lines.concat());
    }

    #[test]
    fn a_stalled_reader_makes_pushes_drop_newest_then_one_record_marks_the_gap() {
        let capacity = 256 * 1024;
        let (queue, mut pipe) = queue_into_pipe(capacity);
        // Far more than the pipe and the queue can hold: push never waits.
        let total = 100_000;
        let mut accepted = Vec::new();
        for i in 0..total {
            let line = format!("line {i:06}\n");
            if queue.push(line.as_bytes()) {
                accepted.push(i);
            }
        }
        // While refusing, a line is dropped before it is made.
        assert!(queue.refuses_next());
        let dropped = total - accepted.len() + 1;
        assert!(dropped > 1, "nothing was dropped");
        assert_eq!(queue.dropped(), dropped as u64);
        // Newest dropped: what was accepted is the first lines, without a hole.
        assert_eq!(accepted, (0..accepted.len()).collect::<Vec<_>>());
        // Read it all; once half is out, the record comes, then new lines fit again.
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !out.ends_with(format!("dropped {dropped} lines\n").as_bytes()) {
            assert!(Instant::now() < deadline, "no dropped record");
            wait_readable(&pipe);
            read_available(&mut pipe, &mut out);
        }
        assert!(queue.push(b"after\n"));
        assert!(queue.wait_drained(Duration::from_secs(20)));
        read_available(&mut pipe, &mut out);
        let expected: String = accepted
            .iter()
            .map(|i| format!("line {i:06}\n"))
            .chain([format!("dropped {dropped} lines\n"), "after\n".to_string()])
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn wait_drained_gives_up_after_its_grace() {
        let (queue, _pipe) = queue_into_pipe(1 << 20);
        // More than a pipe holds: the writer is stuck.
        let line = [b'x'; 1023];
        for _ in 0..512 {
            queue.push(&[&line[..], b"\n"].concat());
        }
        let start = Instant::now();
        assert!(!queue.wait_drained(Duration::from_millis(100)));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
