//! Per-worker cgroups (v2): nothing a worker started survives it.
//!
//! A process group misses descendants that called `setsid` (supervisord #1101, pm2
//! #6084: a leftover grandchild keeps the port and the next start fails). A cgroup
//! does not: every descendant stays in it whatever it does. With `cgroup = true`,
//! each worker runs in `BASE/daemon-ID/NAME` (BASE is `dynsup` under the daemon's own
//! cgroup, or the configured `cgroup_root`); the child joins it before exec. When the
//! worker's process has been reaped, `cgroup.kill` SIGKILLs whatever it left behind,
//! before a restart or after a stop; `cgroup.procs` lists a worker's processes.
//!
//! **One daemon, one sub-tree.** Several daemons may share BASE (the same
//! `cgroup_root`, or the default when they start from one cgroup), and their workers
//! may share names. Each daemon therefore works only inside `BASE/daemon-ID`, ID being
//! a hash of its socket path (the one thing two live daemons never share), and owns
//! it with an exclusive `flock` on the sub-tree's directory, held for its whole life:
//! the kernel drops the lock when the daemon dies, however it dies, so a `kill -9`
//! leaves no stale lock. A daemon whose sub-tree is locked by another refuses to
//! start ([`SetupError::Owned`]). At start, whatever the sub-tree still holds from
//! the daemon's previous life is killed before any worker runs
//! ([`Cgroups::kill_leftovers`]); at exit, only the sub-tree is removed.
//!
//! Works on the unified hierarchy wherever it is mounted (`/sys/fs/cgroup`, or
//! `/sys/fs/cgroup/unified` on hybrid systems). Needs Linux 5.14+ for `cgroup.kill`
//! and write access to BASE (root, or a systemd unit with `Delegate=yes`).

use nix::fcntl::{Flock, FlockArg};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the daemon, starting, waits for the processes its previous life left in
/// its sub-tree to die (SIGKILLed). It is before the loop runs, so nothing waits on it
/// but the start itself.
pub const LEFTOVER_PATIENCE: Duration = Duration::from_secs(5);

pub struct Cgroups {
    base: PathBuf,
    /// This daemon's sub-tree, `BASE/daemon-ID`: every worker group is made in it, and
    /// nothing outside it is ever touched.
    own: PathBuf,
    /// The sub-tree's directory, open and `flock`ed (exclusive) for the daemon's life.
    _ownership: Flock<File>,
    /// Remove BASE at exit (when empty) only if the daemon created it.
    created_base: bool,
}

/// Why [`Cgroups::setup`] gave no cgroups.
#[derive(Debug)]
pub enum SetupError {
    /// Cgroups cannot be used here: the daemon falls back to process groups.
    Unusable(String),
    /// Another live daemon holds this daemon's sub-tree: this one must not start.
    Owned {
        subtree: PathBuf,
        socket: PathBuf,
        /// The holder's pid, as `/proc/locks` shows it (None when it does not).
        holder: Option<u32>,
    },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Unusable(why) => f.write_str(why),
            SetupError::Owned {
                subtree,
                socket,
                holder,
            } => {
                let pid = match holder {
                    Some(pid) => format!("pid {pid}"),
                    None => "pid unknown".to_string(),
                };
                write!(
                    f,
                    "another dynsup daemon ({pid}) owns cgroup sub-tree {} (named after the socket path {}); stop that daemon first, or give this one another --socket",
                    subtree.display(),
                    socket.display()
                )
            }
        }
    }
}

impl Cgroups {
    /// Find or create BASE, then create and take this daemon's sub-tree in it (named
    /// after `socket`, see [`subtree_name`]) and check that it can hold workers.
    /// `Unusable` says why cgroups cannot be used (the daemon then falls back to process
    /// groups); `Owned` means another live daemon holds the sub-tree.
    pub fn setup(root: Option<&Path>, socket: &Path) -> Result<Cgroups, SetupError> {
        let base = match root {
            Some(root) => root.to_path_buf(),
            None => own_cgroup_dir()
                .map_err(SetupError::Unusable)?
                .join("dynsup"),
        };
        // Never create a plain directory by mistake: BASE, or the nearest existing
        // directory above it, must be on the cgroup2 filesystem.
        let existing = base.ancestors().find(|p| p.exists()).unwrap_or(&base);
        if !is_cgroup2(existing) {
            return Err(SetupError::Unusable(format!(
                "{} is not on a cgroup2 filesystem",
                existing.display()
            )));
        }
        let created_base = !base.exists();
        let own = base.join(subtree_name(socket));
        let ownership = take_ownership(&own, socket)?;
        // Every group below the root offers cgroup.kill on Linux 5.14+.
        if !own.join("cgroup.kill").exists() {
            let _ = fs::remove_dir(&own);
            if created_base {
                let _ = fs::remove_dir(&base);
            }
            return Err(SetupError::Unusable(format!(
                "{} offers no cgroup.kill (needs cgroup v2 on Linux 5.14 or later)",
                own.display()
            )));
        }
        Ok(Cgroups {
            base,
            own,
            _ownership: ownership,
            created_base,
        })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// This daemon's sub-tree of BASE, where its workers' groups are.
    pub fn subtree(&self) -> &Path {
        &self.own
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.own.join(name)
    }

    /// Create the worker's group (if needed) and open its `cgroup.procs` for the
    /// child to write itself into before exec.
    pub fn prepare(&self, name: &str) -> io::Result<OwnedFd> {
        let dir = self.dir(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            // A name such as `cgroup.procs` or `cpu.max`: the kernel's own file.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the name {name:?} is a cgroup interface file in {}; with cgroup = true a worker needs another name", self.own.display()),
                ))
            }
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?;
        Ok(OwnedFd::from(file))
    }

    /// Whether anything is still in the worker's group (`populated 1` in its
    /// `cgroup.events`). A group that cannot be read is taken as empty.
    pub fn populated(&self, name: &str) -> bool {
        fs::read_to_string(self.dir(name).join("cgroup.events"))
            .map(|text| text.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false)
    }

    /// SIGKILL everything still in the worker's group.
    pub fn kill(&self, name: &str) {
        let path = self.dir(name).join("cgroup.kill");
        if let Err(e) = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"1"))
        {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("{name}: cannot write {}: {e}", path.display());
            }
        }
    }

    /// Remove the worker's group, and the groups a delegated worker made inside it.
    /// False while one is still emptying (killed processes take a moment to exit): try
    /// again later.
    pub fn remove(&self, name: &str) -> bool {
        let dir = self.dir(name);
        if !dir.is_dir() {
            // Gone already, or never a group of ours (a kernel file of that name).
            return true;
        }
        for nested in groups_below(&dir) {
            let _ = fs::remove_dir(nested);
        }
        match fs::remove_dir(&dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// The pids in the worker's group.
    pub fn procs(&self, name: &str) -> Vec<i32> {
        procs_in(&self.dir(name))
    }

    /// At exit: kill whatever is still in a worker group of this daemon's sub-tree,
    /// then remove the groups, the sub-tree, and BASE if the daemon created it and no
    /// other daemon's sub-tree is in it. Returns false while some group is still
    /// emptying (its killed processes have not exited yet): call again.
    pub fn remove_all(&self) -> bool {
        let mut done = true;
        for group in groups_below(&self.own) {
            if fs::remove_dir(&group).is_err() {
                write_kill(&group);
                done = false;
            }
        }
        if done {
            let _ = fs::remove_dir(&self.own);
            if self.created_base {
                // Fails, as it should, while another daemon's sub-tree is there.
                let _ = fs::remove_dir(&self.base);
            }
        }
        done
    }

    /// At start, before any worker runs: whatever this daemon's previous life left in
    /// its sub-tree (after a `kill -9` of the daemon, its workers' background children
    /// survive there) is SIGKILLed, waited for — at most `patience`, before the loop
    /// runs — and the old groups are removed, so each restored worker starts in a
    /// group of its own processes only. Logs each group that still held processes.
    pub fn kill_leftovers(&self, patience: Duration) {
        let groups = groups_below(&self.own);
        let leftovers = self.leftovers(&groups);
        for (name, pids) in &leftovers {
            log::warn!(
                "{name}: killing {} process(es) this daemon's previous run left in its cgroup (pids {})",
                pids.len(),
                some_pids(pids)
            );
        }
        if !leftovers.is_empty() || is_populated(&self.own) {
            write_kill(&self.own);
            if !wait_until_empty(&self.own, patience) {
                log::warn!(
                    "processes killed in {} were still exiting after {patience:?}; starting the workers anyway",
                    self.own.display()
                );
            }
        }
        for group in &groups {
            if let Err(e) = fs::remove_dir(group) {
                log::debug!("cannot remove stale cgroup {}: {e}", group.display());
            }
        }
    }

    /// The worker groups in the sub-tree that hold processes, by name, with every pid
    /// in each (nested groups included).
    fn leftovers(&self, groups: &[PathBuf]) -> BTreeMap<String, Vec<i32>> {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for group in groups {
            let Some(top) = group
                .strip_prefix(&self.own)
                .ok()
                .and_then(|relative| relative.components().next())
            else {
                continue;
            };
            let pids = procs_in(group);
            if !pids.is_empty() {
                out.entry(top.as_os_str().to_string_lossy().into_owned())
                    .or_default()
                    .extend(pids);
            }
        }
        out
    }
}

/// Up to ten pids for a log line, then how many more.
fn some_pids(pids: &[i32]) -> String {
    const SHOWN: usize = 10;
    let mut text = pids
        .iter()
        .take(SHOWN)
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if pids.len() > SHOWN {
        text.push_str(&format!(" and {} more", pids.len() - SHOWN));
    }
    text
}

/// The name of the sub-tree of the daemon on `socket`: `daemon-` and 16 hex digits of
/// the FNV-1a hash of the socket's path, absolute, its directory resolved through
/// symlinks. Stable across restarts on the same socket, different for two daemons
/// (two live daemons cannot listen on one path).
pub fn subtree_name(socket: &Path) -> String {
    let identity = socket_identity(socket);
    format!("daemon-{:016x}", fnv1a64(identity.as_os_str().as_bytes()))
}

/// The socket's path with its directory canonicalized (the socket itself need not
/// exist: it is removed at exit).
fn socket_identity(socket: &Path) -> PathBuf {
    let (Some(dir), Some(file)) = (socket.parent(), socket.file_name()) else {
        return socket.to_path_buf();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match fs::canonicalize(dir) {
        Ok(dir) => dir.join(file),
        Err(_) => socket.to_path_buf(),
    }
}

/// 64-bit FNV-1a: a fixed function, so a sub-tree keeps its name across versions.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Create the sub-tree (and BASE) if needed, open it and lock it, exclusive and
/// without waiting. The lock is checked to be on the directory now at `own`: a daemon
/// exiting removes its sub-tree, and a lock on the removed one would protect nothing.
fn take_ownership(own: &Path, socket: &Path) -> Result<Flock<File>, SetupError> {
    let shown = own.display();
    for _ in 0..3 {
        // Another daemon's exit may remove BASE between the two mkdirs: try again.
        if let Err(e) = fs::create_dir_all(own) {
            if e.kind() == io::ErrorKind::NotFound {
                continue;
            }
            return Err(SetupError::Unusable(format!(
                "cannot create cgroup {shown}: {e}"
            )));
        }
        let dir = match File::open(own) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SetupError::Unusable(format!("cannot open {shown}: {e}")));
            }
        };
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let same = match (lock.metadata(), fs::metadata(own)) {
                    (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
                    _ => false,
                };
                if same {
                    return Ok(lock);
                }
            }
            Err((dir, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(SetupError::Owned {
                    subtree: own.to_path_buf(),
                    socket: socket.to_path_buf(),
                    holder: lock_holder(&dir),
                });
            }
            Err((_, e)) => {
                return Err(SetupError::Unusable(format!("cannot lock {shown}: {e}")));
            }
        }
    }
    Err(SetupError::Unusable(format!(
        "{shown} kept disappearing while this daemon took it"
    )))
}

/// The pid holding a `flock` on `file`, from `/proc/locks`.
fn lock_holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let locks = fs::read_to_string("/proc/locks").ok()?;
    flock_holder(
        &locks,
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
        meta.ino(),
    )
}

/// In the text of `/proc/locks`, the pid of the granted `FLOCK` on inode `ino` of
/// device `major:minor`. A line is `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`
/// (hex device numbers); a waiter's line has `->` before `FLOCK` and is skipped.
fn flock_holder(locks: &str, major: u64, minor: u64, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        if at == 0 || fields[at - 1] == "->" {
            return None;
        }
        // 0: a holder this pid namespace cannot see.
        let pid = fields.get(at + 3)?.parse::<u32>().ok().filter(|&p| p > 0)?;
        let mut id = fields.get(at + 4)?.split(':');
        let (maj, min, inode) = (id.next()?, id.next()?, id.next()?);
        let matches = u64::from_str_radix(maj, 16).ok()? == major
            && u64::from_str_radix(min, 16).ok()? == minor
            && inode.parse::<u64>().ok()? == ino;
        matches.then_some(pid)
    })
}

/// Every group below `dir` (not `dir` itself), deepest first, so removing them in
/// order removes children before their parents.
fn groups_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                let path = entry.path();
                out.extend(groups_below(&path));
                out.push(path);
            }
        }
    }
    out
}

/// The pids directly in group `dir`.
fn procs_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL everything in group `dir` and below it.
fn write_kill(dir: &Path) {
    let path = dir.join("cgroup.kill");
    if let Err(e) = OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"1"))
    {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// Whether group `dir` or a group below it holds a live process (`populated 1` in its
/// `cgroup.events`; zombies do not count).
fn is_populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|text| events_say_populated(&text))
        .unwrap_or(false)
}

fn events_say_populated(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "populated 1")
}

/// Wait, at most `patience`, until group `dir` and everything below it is empty: the
/// kernel wakes a `poll` for POLLPRI on `cgroup.events` when the file changed since
/// that fd last read it. True once empty.
fn wait_until_empty(dir: &Path, patience: Duration) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(events) = File::open(dir.join("cgroup.events")) else {
        return true;
    };
    let deadline = Instant::now() + patience;
    loop {
        let mut buf = [0u8; 128];
        let n = events.read_at(&mut buf, 0).unwrap_or(0);
        if !events_say_populated(&String::from_utf8_lossy(&buf[..n])) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&events),
            nix::poll::PollFlags::POLLPRI,
        )];
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    }
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The directory of the daemon's own cgroup on the unified (v2) hierarchy.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let mount = unified_mount()?;
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("the daemon is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")?;
    Ok(mount.join(own.trim().trim_start_matches('/')))
}

/// Where the cgroup2 filesystem is mounted, from `/proc/self/mountinfo`.
fn unified_mount() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    for line in text.lines() {
        // "... MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some("cgroup2") {
            if let Some(point) = left.split_whitespace().nth(4) {
                return Ok(PathBuf::from(unescape_mount(point)));
            }
        }
    }
    Err("no cgroup2 filesystem is mounted".to_string())
}

/// mountinfo escapes spaces and a few other bytes as `\ooo` (octal).
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(byte) = field
                .get(i + 1..i + 4)
                .and_then(|octal| u8::from_str_radix(octal, 8).ok())
            {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_is_named_after_the_socket_path() {
        let a = subtree_name(Path::new("/nonexistent-dir/a.sock"));
        assert!(
            a.starts_with("daemon-") && a.len() == "daemon-".len() + 16,
            "{a}"
        );
        assert_eq!(a, subtree_name(Path::new("/nonexistent-dir/a.sock")));
        assert_ne!(a, subtree_name(Path::new("/nonexistent-dir/b.sock")));
        // The directory is resolved: `/tmp/./x.sock` is `/tmp/x.sock`.
        assert_eq!(
            subtree_name(Path::new("/tmp/./x.sock")),
            subtree_name(Path::new("/tmp/x.sock"))
        );
        // The published FNV-1a test vector: a fixed function, stable across versions.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_log_line_names_at_most_ten_pids() {
        assert_eq!(some_pids(&[7, 8]), "7, 8");
        let many: Vec<i32> = (1..=12).collect();
        assert_eq!(some_pids(&many), "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more");
    }

    #[test]
    fn the_holder_of_a_flock_is_read_from_proc_locks() {
        let locks = "\
1: POSIX  ADVISORY  WRITE 700 00:26:6941 0 EOF
2: FLOCK  ADVISORY  WRITE 23052 00:26:6941 0 EOF
2: -> FLOCK  ADVISORY  WRITE 23099 00:26:6941 0 EOF
3: FLOCK  ADVISORY  READ 22883 fe:00:10133506 0 EOF
";
        assert_eq!(flock_holder(locks, 0, 0x26, 6941), Some(23052));
        assert_eq!(flock_holder(locks, 0xfe, 0, 10133506), Some(22883));
        assert_eq!(flock_holder(locks, 0, 0x26, 6942), None);
        assert_eq!(flock_holder("garbage\n1: FLOCK\n", 0, 0, 1), None);
        let unseen = "1: FLOCK  ADVISORY  WRITE 0 00:26:6941 0 EOF\n";
        assert_eq!(flock_holder(unseen, 0, 0x26, 6941), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }
}
