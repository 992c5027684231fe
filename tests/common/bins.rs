//! The programs the tests run: the `dynsup` binary under test, the sample worker, and a
//! `python3` for helper scripts.

use std::path::{Path, PathBuf};

/// The `dynsup` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dynsup"))
}

/// The sample worker, which cargo builds next to `dynsup` only when the worker
/// package's tests are selected too (`cargo test --workspace`).
pub fn worker_bin() -> PathBuf {
    let path = bin().with_file_name("dynsup-worker");
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A `python3` that any user can run (root's pyenv shims are not reachable for
/// `nobody`).
pub fn python3() -> PathBuf {
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!("these tests need python3 at /usr/bin/python3 (or /usr/local/bin/python3)")
}
