//! Per-worker cgroups (v2): nothing a worker started survives it.
//!
//! A process group misses descendants that called `setsid` (supervisord #1101, pm2
//! #6084: a leftover grandchild keeps the port and the next start fails). A cgroup
//! does not: every descendant stays in it whatever it does. With `cgroup = true`,
//! each worker runs in `BASE/NAME` (BASE is `dynsup` under the daemon's own cgroup, or
//! the configured `cgroup_root`); the child joins it before exec. When the worker's
//! process has been reaped, `cgroup.kill` SIGKILLs whatever it left behind, before a
//! restart or after a stop; `cgroup.procs` lists a worker's processes.
//!
//! Works on the unified hierarchy wherever it is mounted (`/sys/fs/cgroup`, or
//! `/sys/fs/cgroup/unified` on hybrid systems). Needs Linux 5.14+ for `cgroup.kill`
//! and write access to BASE (root, or a systemd unit with `Delegate=yes`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct Cgroups {
    base: PathBuf,
    /// Remove BASE at exit only if the daemon created it.
    created_base: bool,
}

impl Cgroups {
    /// Find or create BASE and check that it can hold workers. The error says why
    /// cgroups cannot be used (the daemon then falls back to process groups).
    pub fn setup(root: Option<&Path>) -> Result<Cgroups, String> {
        let base = match root {
            Some(root) => root.to_path_buf(),
            None => own_cgroup_dir()?.join("dynsup"),
        };
        // Never create a plain directory by mistake: BASE, or the nearest existing
        // directory above it, must be on the cgroup2 filesystem.
        let existing = base.ancestors().find(|p| p.exists()).unwrap_or(&base);
        if !is_cgroup2(existing) {
            return Err(format!(
                "{} is not on a cgroup2 filesystem",
                existing.display()
            ));
        }
        let created_base = !base.exists();
        fs::create_dir_all(&base)
            .map_err(|e| format!("cannot create cgroup {}: {e}", base.display()))?;
        // Probe: a child group must offer cgroup.kill (Linux 5.14+).
        let probe = base.join(format!(".probe-{}", std::process::id()));
        let _ = fs::create_dir(&probe);
        let has_kill = probe.join("cgroup.kill").exists();
        let _ = fs::remove_dir(&probe);
        if !has_kill {
            return Err(format!(
                "{} offers no cgroup.kill (needs cgroup v2 on Linux 5.14 or later)",
                base.display()
            ));
        }
        Ok(Cgroups { base, created_base })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    /// Create the worker's group (if needed) and open its `cgroup.procs` for the
    /// child to write itself into before exec.
    pub fn prepare(&self, name: &str) -> io::Result<OwnedFd> {
        let dir = self.dir(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
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

    /// Remove the worker's group. False while it is still emptying (killed processes
    /// take a moment to exit): try again later.
    pub fn remove(&self, name: &str) -> bool {
        match fs::remove_dir(self.dir(name)) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// The pids in the worker's group.
    pub fn procs(&self, name: &str) -> Vec<i32> {
        fs::read_to_string(self.dir(name).join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// At exit: kill whatever is still in a worker group, then remove the groups and
    /// BASE if the daemon created it. Returns false while some group is still
    /// emptying (its killed processes have not exited yet): call again.
    pub fn remove_all(&self) -> bool {
        let mut done = true;
        if let Ok(entries) = fs::read_dir(&self.base) {
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                if fs::remove_dir(&path).is_err() {
                    let _ = OpenOptions::new()
                        .write(true)
                        .open(path.join("cgroup.kill"))
                        .and_then(|mut f| f.write_all(b"1"));
                    done = false;
                }
            }
        }
        if done && self.created_base {
            let _ = fs::remove_dir(&self.base);
        }
        done
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
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }
}
