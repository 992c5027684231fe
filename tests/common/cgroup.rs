//! cgroup v2 for tests: a [`TestCgroup`] is a `cgroup_root` of its own (or a cgroup to
//! start daemons in), on a writable cgroup2 mount, killed and removed at the end of the
//! test. A daemon's workers are in its [`Subtree`] of the root.

use super::configs::toml_str;
use super::daemon::TestDaemon;
use super::dirs::unique_name;
use super::wait::try_wait_until;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

/// A unique, not yet created `cgroup_root` for one test, on a writable cgroup2 mount
/// whose groups offer `cgroup.kill`. Everything under it is killed and removed on drop.
pub struct TestCgroup {
    pub mount: PathBuf,
    pub root: PathBuf,
}

impl TestCgroup {
    /// `Err(reason)` when this machine has no usable cgroup v2.
    pub fn new() -> Result<TestCgroup, String> {
        let mount = cgroup2_mount()?;
        let unique = unique_name("dynsup-test");
        let probe = mount.join(format!("{unique}-probe"));
        fs::create_dir(&probe)
            .map_err(|e| format!("cannot create a cgroup under {}: {e}", mount.display()))?;
        let has_kill = probe.join("cgroup.kill").exists();
        let _ = fs::remove_dir(&probe);
        if !has_kill {
            return Err(format!(
                "cgroups under {} offer no cgroup.kill (Linux < 5.14)",
                mount.display()
            ));
        }
        Ok(TestCgroup {
            root: mount.join(unique),
            mount,
        })
    }

    /// The root as a TOML string.
    pub fn toml(&self) -> String {
        toml_str(self.root.to_str().expect("utf-8 cgroup path"))
    }

    /// The sub-tree of daemon `d` when this is its `cgroup_root`: `ROOT/daemon-ID`,
    /// named after its socket path.
    pub fn subtree_of(&self, d: &TestDaemon) -> Subtree {
        self.subtree_in(&self.root, d)
    }

    /// The sub-tree of daemon `d` when it was started in this cgroup
    /// ([`TestCgroup::enter_wrapper`]) without a `cgroup_root`: BASE is then
    /// `ROOT/dynsup`.
    pub fn default_subtree_of(&self, d: &TestDaemon) -> Subtree {
        self.subtree_in(&self.root.join("dynsup"), d)
    }

    fn subtree_in(&self, base: &Path, d: &TestDaemon) -> Subtree {
        Subtree {
            mount: self.mount.clone(),
            dir: base.join(dynsup::os::cgroup::subtree_name(d.socket())),
        }
    }

    /// A [`Launch::wrapper`](super::Launch::wrapper) that moves the daemon into this
    /// cgroup (created now) before it execs, as if a service manager had started it
    /// there.
    pub fn enter_wrapper(&self) -> Vec<String> {
        match fs::create_dir(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("mkdir {}: {e}", self.root.display()),
        }
        let procs = self.root.join("cgroup.procs");
        let script = format!(
            "echo $$ > '{}' && exec \"$0\" \"$@\"",
            procs.to_str().expect("utf-8 cgroup path")
        );
        vec!["sh".to_string(), "-c".to_string(), script]
    }
}

/// One daemon's sub-tree of a cgroup root, where its workers' groups are.
pub struct Subtree {
    mount: PathBuf,
    pub dir: PathBuf,
}

impl Subtree {
    /// The group of worker `name`.
    pub fn worker(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The cgroup path of worker `name` as `/proc/<pid>/cgroup` shows it.
    pub fn worker_path(&self, name: &str) -> String {
        format!(
            "/{}",
            self.worker(name)
                .strip_prefix(&self.mount)
                .expect("sub-tree under the mount")
                .display()
        )
    }

    /// The pids in worker `name`'s group (`cgroup.procs`), sorted; none when it has
    /// no group.
    pub fn procs(&self, name: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = fs::read_to_string(self.worker(name).join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        pids.sort();
        pids
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if !self.root.exists() {
            return;
        }
        // Everything below the root, deepest first, then the root.
        let mut dirs = groups_below(&self.root);
        dirs.push(self.root.clone());
        for dir in &dirs {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        // Killed processes take a moment to leave.
        for dir in &dirs {
            let _ = try_wait_until(Duration::from_secs(10), || match fs::remove_dir(dir) {
                Ok(()) => Some(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Some(()),
                Err(_) => None,
            });
        }
        if self.root.exists() && !thread::panicking() {
            eprintln!("warning: could not remove {}", self.root.display());
        }
    }
}

/// Every directory below `dir`, deepest first.
fn groups_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(groups_below(&entry.path()));
                out.push(entry.path());
            }
        }
    }
    out
}

/// Where the cgroup2 filesystem is mounted.
pub fn cgroup2_mount() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(point))
        })
        .ok_or_else(|| "no cgroup2 filesystem is mounted".to_string())
}
