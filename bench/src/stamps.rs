//! The timing workers' stamps: a FIFO the bench holds open read-write (so a worker's
//! open never blocks and the reader never sees EOF), drained by one thread into a
//! channel. Each line is "PID SEC NSEC" in CLOCK_MONOTONIC.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub pid: i32,
    /// CLOCK_MONOTONIC, ns.
    pub t: u64,
}

pub struct Stamps {
    pub path: PathBuf,
    fd: i32,
    rx: Receiver<Stamp>,
    thread: Option<JoinHandle<()>>,
}

impl Stamps {
    pub fn new(path: &Path) -> Result<Stamps, String> {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let _ = std::fs::remove_file(path);
        // SAFETY: plain syscalls on a valid C string.
        let fd = unsafe {
            if libc::mkfifo(c.as_ptr(), 0o600) != 0 {
                return Err(format!(
                    "mkfifo {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            let fd = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(format!(
                    "open {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            // A big buffer so that 10,000 workers stamping at once never block.
            libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
            fd
        };
        let (tx, rx) = channel();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut pending: Vec<u8> = Vec::new();
            loop {
                // SAFETY: reading into our own buffer.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    return;
                }
                pending.extend_from_slice(&buf[..n as usize]);
                while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    if line == "quit" {
                        return;
                    }
                    let f: Vec<u64> = line
                        .split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    if f.len() == 3 {
                        let stamp = Stamp {
                            pid: f[0] as i32,
                            t: f[1] * 1_000_000_000 + f[2],
                        };
                        if tx.send(stamp).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Stamps {
            path: path.to_path_buf(),
            fd,
            rx,
            thread: Some(thread),
        })
    }

    pub fn recv_timeout(&self, d: Duration) -> Option<Stamp> {
        match self.rx.recv_timeout(d) {
            Ok(s) => Some(s),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Whatever has arrived, without waiting.
    pub fn drain(&self) -> Vec<Stamp> {
        self.rx.try_iter().collect()
    }

    /// Wait for `n` stamps; gives up at the deadline, or when none has come for
    /// `STALL` (a subject that does not start its workers). Returns what arrived.
    pub fn collect(&self, n: usize, timeout: Duration) -> Vec<Stamp> {
        const STALL: Duration = Duration::from_secs(10);
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(STALL);
            if left.is_zero() {
                break;
            }
            match self.recv_timeout(left) {
                Some(s) => out.push(s),
                None => break,
            }
        }
        out
    }

    /// Wait for a stamp from a pid not in `known`; stamps from known pids are dropped.
    pub fn wait_new(&self, known: &HashSet<i32>, timeout: Duration) -> Option<Stamp> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let s = self.recv_timeout(left)?;
            if !known.contains(&s.pid) {
                return Some(s);
            }
        }
    }
}

impl Drop for Stamps {
    fn drop(&mut self) {
        let quit = b"quit\n";
        // SAFETY: writing a constant to our own fd.
        unsafe { libc::write(self.fd, quit.as_ptr().cast(), quit.len()) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: closing our own fd once.
        unsafe { libc::close(self.fd) };
        let _ = std::fs::remove_file(&self.path);
    }
}
