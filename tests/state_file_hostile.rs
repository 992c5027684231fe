//! Whatever is at the state-file path, the daemon starts and serves: a FIFO (which used
//! to block the boot forever), a symlink to `/dev/zero` (read until memory ran out), a
//! file over the size bound, a directory, a dangling symlink. Each is named in a log
//! line and set aside, and the next dynamic `start` writes a proper file.
//!
//! And whatever happens to the state file's file system while the daemon runs — full,
//! read-only, a directory it may not write — the daemon and its workers carry on, the
//! failure is logged, the old file stays intact with no temp file left, and the next
//! write after the resource comes back records everything.

mod common;
use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A config recording dynamic workers in `state`.
fn config(state: &Path) -> String {
    format!(
        "\n[supervisor]\nstate_file = {}\n",
        toml_str(state.to_str().unwrap())
    ) + SLEEPER
}

/// The names recorded in the state file at `path` (which must be valid).
#[track_caller]
fn recorded(path: &Path) -> Vec<String> {
    recorded_names(path)
}

/// The entries of `dir` whose name starts with `prefix`.
fn entries_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Puts something hostile at the state-file path with `make`, starts a daemon (which
/// must listen: `Launch` waits for it), and checks the log names it with `mentions`,
/// it was set aside as `state.json.corrupt-*` (checked with `aside_is`), and a dynamic
/// `start` then writes a proper file.
#[track_caller]
fn daemon_starts_despite(
    make: impl FnOnce(&Path),
    mentions: &str,
    aside_is: impl FnOnce(&Path) -> bool,
) {
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    make(&state);
    let d = Launch::new(&config(&state)).in_dir(dir.clone()).start();
    d.wait_log(mentions);
    d.wait_log("and starting without it");
    let aside = entries_starting(dir.path(), "state.json.corrupt-");
    assert_eq!(aside.len(), 1, "set aside: {aside:?}{}", d.log_tail());
    assert!(
        aside_is(&aside[0]),
        "{} is not what was there",
        aside[0].display()
    );

    let pid = d.start_worker("a", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a"]);
    assert!(fs::symlink_metadata(&state).unwrap().file_type().is_file());
    assert_eq!(d.lookup("a"), Some(pid));
    // The daemon stayed small: nothing was read without bound.
    assert!(
        rss_kib(d.pid()) < 64 * 1024,
        "daemon RSS {} KiB",
        rss_kib(d.pid())
    );
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn a_fifo_at_the_state_file_path_does_not_block_the_boot() {
    daemon_starts_despite(
        |path| {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .expect("mkfifo")
        },
        "is not a regular file (a FIFO)",
        |aside| fs::symlink_metadata(aside).is_ok_and(|m| m.file_type().is_fifo()),
    );
}

#[test]
fn a_symlink_to_dev_zero_is_not_read() {
    daemon_starts_despite(
        |path| std::os::unix::fs::symlink("/dev/zero", path).expect("symlink"),
        "is not a regular file (a character device)",
        |aside| is_symlink(aside) && fs::read_link(aside).unwrap() == Path::new("/dev/zero"),
    );
    assert!(fs::metadata("/dev/zero")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn a_state_file_over_the_size_bound_is_not_read() {
    daemon_starts_despite(
        // Sparse: 64 MiB + 1 byte of size, no disk space.
        |path| {
            fs::File::create(path)
                .and_then(|f| f.set_len((64 << 20) + 1))
                .expect("a sparse file")
        },
        "is larger than 64 MiB",
        |aside| fs::metadata(aside).is_ok_and(|m| m.len() == (64 << 20) + 1),
    );
}

#[test]
fn a_directory_at_the_state_file_path_is_set_aside() {
    daemon_starts_despite(
        |path| {
            fs::create_dir(path).expect("mkdir");
            fs::write(path.join("inside"), "kept").expect("a file inside");
        },
        "is not a regular file (a directory)",
        |aside| fs::read_to_string(aside.join("inside")).is_ok_and(|t| t == "kept"),
    );
}

#[test]
fn a_dangling_symlink_at_the_state_file_path_is_set_aside() {
    daemon_starts_despite(
        |path| std::os::unix::fs::symlink("/nonexistent/state.json", path).expect("symlink"),
        "is a symbolic link to nothing",
        is_symlink,
    );
}

/// Fills the file system under `dir` with one file, until a write fails for lack of
/// space; returns that file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = fs::File::create(&path).expect("create the filler");
    let chunk = vec![0u8; 4096];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::ENOSPC),
                "filling {}: {e}",
                dir.display()
            );
            return path;
        }
    }
}

/// A tmpfs of the test's own for the state file, or `None` (with the reason printed)
/// when this machine does not let the test mount one.
fn small_tmpfs(dir: &TestDir) -> Option<SmallTmpfs> {
    match SmallTmpfs::mount(&dir.join("fs"), 256) {
        Ok(fs) => Some(fs),
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs for the state file: {why}");
            None
        }
    }
}

/// A `start` whose state-file write fails: it is answered `not_recorded` (the worker
/// runs, the message says why it is not on disk); returns the worker's pid.
#[track_caller]
fn start_unrecorded(d: &TestDaemon, req: &Request, reason: &str) -> i32 {
    let reply = d.request(req);
    assert_error(&reply, ErrorKind::NotRecorded);
    let message = &reply.error.as_ref().expect("an error").message;
    assert!(
        message.contains("state file") && message.contains(reason),
        "{message}"
    );
    let Request::Start { name, .. } = req else {
        panic!("not a start: {req:?}")
    };
    d.lookup(name).expect("the worker runs anyway")
}

/// Checks, after a `start` whose state-file write failed with `reason`: the failure is
/// logged, the old file still records exactly `old` and no temp file is left, and the
/// worker runs anyway.
#[track_caller]
fn write_failed_cleanly(d: &TestDaemon, state: &Path, reason: &str, old: &[&str], pid: i32) {
    d.wait_log(&format!("cannot write the state file {}", state.display()));
    d.wait_log(reason);
    assert_eq!(recorded(state), old, "the old state file changed");
    let dir = state.parent().unwrap();
    assert_eq!(
        entries_starting(dir, ".state.json"),
        Vec::<PathBuf>::new(),
        "a temp file was left behind"
    );
    assert!(is_alive(pid));
}

/// A full file system: a `start` is recorded nowhere but the worker runs and the old
/// file is intact; once space is back, the next `start` records every worker.
#[test]
fn a_full_file_system_leaves_the_old_state_file_intact_and_recovers() {
    let dir = Rc::new(TestDir::new());
    let Some(tmpfs) = small_tmpfs(&dir) else {
        return;
    };
    let state = tmpfs.path().join("state.json");
    let d = Launch::new(&config(&state)).in_dir(dir.clone()).start();
    let a = d.start_worker("a", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a"]);

    let filler = fill(tmpfs.path());
    // A record larger than a page: it cannot fit in the journal's last page.
    let long = "x".repeat(8192);
    let req = start_cmd_req(
        "b",
        Some("sleeper"),
        &["sh", "-c", "exec sleep 99999", &long],
    );
    let b = start_unrecorded(&d, &req, "No space left on device");
    write_failed_cleanly(&d, &state, "No space left on device", &["a"], b);

    fs::remove_file(&filler).expect("remove the filler");
    let c = d.start_worker("c", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a", "b", "c"]);
    for pid in [a, b, c] {
        assert!(is_alive(pid));
    }
    assert_eq!(d.count(), 3);
    drop(d);
    drop(tmpfs);
}

/// A read-only file system (a remount): the same, with `Read-only file system`.
#[test]
fn a_read_only_file_system_leaves_the_old_state_file_intact_and_recovers() {
    let dir = Rc::new(TestDir::new());
    let Some(tmpfs) = small_tmpfs(&dir) else {
        return;
    };
    let state = tmpfs.path().join("state.json");
    let d = Launch::new(&config(&state)).in_dir(dir.clone()).start();
    d.start_worker("a", Some("sleeper"), &[]);

    tmpfs.set_read_only(true);
    let req = start_req("b", Some("sleeper"), &[]);
    let b = start_unrecorded(&d, &req, "Read-only file system");
    write_failed_cleanly(&d, &state, "Read-only file system", &["a"], b);
    // A stop is not recorded either, and says so.
    let reply = d.request(&stop_req("b", None));
    assert_error(&reply, ErrorKind::NotRecorded);
    d.wait_until(DEADLINE, "a second failed write in the log", || {
        (lines_with(&d.log(), "cannot write the state file").len() >= 2).then_some(())
    });
    assert_eq!(recorded(&state), ["a"]);

    tmpfs.set_read_only(false);
    d.start_worker("c", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a", "c"]);
    drop(d);
    drop(tmpfs);
}

/// A directory the daemon may not write (a daemon run as `nobody`, the directory made
/// read-only after boot): the same, with `Permission denied`. Needs no mount.
#[test]
fn a_state_directory_the_daemon_may_not_write_leaves_the_old_file_and_recovers() {
    let dir = TestDir::owned_by_nobody();
    let state_dir = dir.join("state");
    fs::create_dir(&state_dir).expect("mkdir");
    std::os::unix::fs::chown(&state_dir, Some(NOBODY), Some(NOBODY)).expect("chown");
    let state = state_dir.join("state.json");
    let d = Launch::new(&config(&state))
        .in_dir(dir.clone())
        .user(NOBODY, NOBODY)
        .start();
    d.start_worker("a", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a"]);

    // Neither a new snapshot nor an append to the journal (which the daemon opens
    // for each write) is allowed any more.
    fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o555)).expect("chmod");
    let journal = state_dir.join("state.json.journal");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o444)).expect("chmod");
    let req = start_req("b", Some("sleeper"), &[]);
    let b = start_unrecorded(&d, &req, "Permission denied");
    write_failed_cleanly(&d, &state, "Permission denied", &["a"], b);

    fs::set_permissions(&state_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o644)).expect("chmod");
    d.start_worker("c", Some("sleeper"), &[]);
    assert_eq!(recorded(&state), ["a", "b", "c"]);
}
