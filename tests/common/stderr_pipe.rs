//! [`StderrPipe`]: a pipe for a daemon's stderr whose read end the test holds. Left
//! unread it stalls every write to it, like a paused `| less` or a stuck log shipper;
//! [`StderrPipe::drain`] reads what is there into a file the harness reads as the log.

use super::dirs::TestDir;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct StderrPipe {
    read: File,
    /// Everything drained so far.
    copy: PathBuf,
    /// The pipe's capacity in bytes.
    pub capacity: usize,
}

impl StderrPipe {
    /// A pipe of the smallest capacity the kernel allows (one page), and the write end
    /// for [`Launch::stderr`](super::Launch::stderr). Its copy is `DIR/stderr-copy.log`.
    pub fn new(dir: &TestDir) -> (StderrPipe, OwnedFd) {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2");
        let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(4096)).expect("F_SETPIPE_SZ");
        let flags = OFlag::from_bits_truncate(fcntl(&read, FcntlArg::F_GETFL).expect("F_GETFL"));
        fcntl(&read, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("F_SETFL");
        let copy = dir.join("stderr-copy.log");
        File::create(&copy).expect("create the stderr copy");
        let pipe = StderrPipe {
            read: File::from(read),
            copy,
            capacity: capacity as usize,
        };
        (pipe, write)
    }

    /// The file the drained bytes go to (the daemon's log for the harness).
    pub fn copy_path(&self) -> &Path {
        &self.copy
    }

    /// Reads what the pipe holds now (never waits) and appends it to the copy. Returns
    /// the bytes read.
    pub fn drain(&mut self) -> usize {
        let mut copy = OpenOptions::new()
            .append(true)
            .open(&self.copy)
            .expect("open the stderr copy");
        let mut buf = vec![0u8; 65536];
        let mut total = 0;
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => {
                    copy.write_all(&buf[..n]).expect("write the stderr copy");
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read the stderr pipe: {e}"),
            }
        }
    }

    /// Everything drained so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.copy).expect("read the stderr copy")).into_owned()
    }
}
