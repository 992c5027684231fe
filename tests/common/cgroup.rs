//! cgroup v2 for tests: a [`TestCgroup`] is a `cgroup_root` of its own, on a writable
//! cgroup2 mount, killed and removed at the end of the test.

use super::configs::toml_str;
use super::dirs::unique_name;
use super::wait::try_wait_until;
use std::fs;
use std::io;
use std::path::PathBuf;
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

    /// The group of worker `name`.
    pub fn worker(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The cgroup path of worker `name` as `/proc/<pid>/cgroup` shows it.
    pub fn worker_path(&self, name: &str) -> String {
        format!(
            "/{}",
            self.worker(name)
                .strip_prefix(&self.mount)
                .expect("root under mount")
                .display()
        )
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if !self.root.exists() {
            return;
        }
        let mut dirs = vec![self.root.clone()];
        if let Ok(entries) = fs::read_dir(&self.root) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for dir in &dirs {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        // Children first, then the root; killed processes take a moment to leave.
        for dir in dirs.iter().rev() {
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
