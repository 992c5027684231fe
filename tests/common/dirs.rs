//! Unique names and temporary directories: a [`TestDir`] per test (config, socket,
//! daemon log), removed when the test passes and kept (its path printed) when it fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// The uid and gid of `nobody`, the unprivileged user of the tests (which run as root).
pub const NOBODY: u32 = 65534;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number no other call in this test process gets.
pub fn next_number() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// `PREFIX-<pid>-<number>-<nanoseconds>`: a name no other test, in this process or
/// another, makes at the same time.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), next_number())
}

/// A unique directory for one test. Removed on drop unless the thread is panicking.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let mut base = std::env::temp_dir();
        // Unix socket paths are limited to 107 bytes; keep ours well below.
        if base.as_os_str().len() > 48 {
            base = PathBuf::from("/tmp");
        }
        let path = base.join(unique_name("dynsup-test"));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestDir { path }
    }

    /// A world-searchable directory (0755), so that `nobody` can reach a socket in it.
    pub fn world_searchable() -> Rc<TestDir> {
        let dir = Rc::new(TestDir::new());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
        dir
    }

    /// A world-searchable directory owned by `nobody`, for a daemon run as `nobody`.
    pub fn owned_by_nobody() -> Rc<TestDir> {
        let dir = TestDir::world_searchable();
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown");
        dir
    }

    /// A world-searchable directory owned by `uid`/`gid`, for a daemon run as that user.
    pub fn owned_by(uid: u32, gid: u32) -> Rc<TestDir> {
        let dir = TestDir::world_searchable();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        dir
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
