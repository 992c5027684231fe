//! The state file: the dynamically started workers, so that a daemon that comes back
//! after `kill -9`, a crash or an intensity escalation starts them again.
//!
//! Written atomically: a temp file in the same directory, `fsync`, `rename` over the
//! old file, `fsync` of the directory. A reader therefore sees the old list or the new
//! one, never half of either; a write that fails at any step (disk full, read-only file
//! system) removes its temp file and leaves the old file as it was. Format (JSON,
//! versioned):
//!
//! ```json
//! {"version":1,"workers":[{"name":"game_17","template":"worker","args":["--map","x"]}]}
//! ```
//!
//! Read defensively, since whatever is at the path is read at boot, before the daemon
//! serves anyone: only a regular file (a symlink to one is followed), checked with `stat`
//! before it is opened (opening a device can have effects) and with `fstat` after; opened
//! with `O_NONBLOCK`, so a FIFO swapped in between cannot block the boot; and at most
//! [`MAX_BYTES`] read. Anything else is refused with a message saying what it is, and
//! the caller sets it aside.

use crate::core::SavedWorker;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

/// The largest state file read back (and written): 64 MiB, some 300,000 workers with
/// short arguments. A larger file is refused as unusable, and a save that would exceed
/// it fails, so the daemon never writes a file it would refuse to read.
pub const MAX_BYTES: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    workers: Vec<SavedWorker>,
}

/// Read the state file. `Ok(None)` when there is none yet. An `Err` says why the file is
/// unusable (not a regular file, too large, unreadable, corrupt, another version).
pub fn load(path: &Path) -> Result<Option<Vec<SavedWorker>>, String> {
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(Unusable::Missing) => return Ok(None),
        Err(Unusable::Why(why)) => return Err(format!("state file {}: {why}", path.display())),
    };
    let state: StateFile = serde_json::from_slice(&text)
        .map_err(|e| format!("state file {} is corrupt: {e}", path.display()))?;
    if state.version != VERSION {
        return Err(format!(
            "state file {} has version {}, this dynsup reads version {VERSION}",
            path.display(),
            state.version
        ));
    }
    Ok(Some(state.workers))
}

enum Unusable {
    Missing,
    Why(String),
}

/// The contents of the regular file at `path`, at most [`MAX_BYTES`], without blocking.
fn read_bounded(path: &Path) -> Result<Vec<u8>, Unusable> {
    match fs::metadata(path) {
        Ok(meta) => check_file(&meta)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A dangling symlink is not "no file yet": something is in the way.
            return match fs::symlink_metadata(path) {
                Ok(_) => Err(Unusable::Why(
                    "is a symbolic link to nothing (a missing file)".to_string(),
                )),
                Err(_) => Err(Unusable::Missing),
            };
        }
        Err(e) => return Err(Unusable::Why(format!("cannot read it: {e}"))),
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Unusable::Missing,
            _ => Unusable::Why(format!("cannot read it: {e}")),
        })?;
    // What was opened may not be what was looked at.
    let meta = file
        .metadata()
        .map_err(|e| Unusable::Why(format!("cannot read it: {e}")))?;
    check_file(&meta)?;
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| Unusable::Why(format!("cannot read it: {e}")))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(Unusable::Why(too_large()));
    }
    Ok(text)
}

/// A regular file of at most [`MAX_BYTES`], or why not.
fn check_file(meta: &fs::Metadata) -> Result<(), Unusable> {
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else {
            "not a file"
        };
        return Err(Unusable::Why(format!(
            "is not a regular file ({what}); it is not read"
        )));
    }
    if meta.len() > MAX_BYTES {
        return Err(Unusable::Why(too_large()));
    }
    Ok(())
}

fn too_large() -> String {
    format!(
        "is larger than {} MiB, the most a state file may hold; it is not read",
        MAX_BYTES >> 20
    )
}

/// Move an unusable state file aside (`FILE.corrupt-UNIXTIME`) so that it is kept for
/// inspection and the next save does not overwrite it.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Replace the state file with `workers`, atomically and durably. On any error the old
/// file is left as it was and the temp file is removed.
pub fn save(path: &Path, workers: &[SavedWorker]) -> io::Result<()> {
    let state = StateFile {
        version: VERSION,
        workers: workers.to_vec(),
    };
    let mut bytes = serde_json::to_vec(&state).map_err(io::Error::other)?;
    bytes.push(b'\n');
    if bytes.len() as u64 > MAX_BYTES {
        return Err(io::Error::other(format!(
            "the list of {} workers takes {} bytes, more than the {} MiB a state file may hold",
            workers.len(),
            bytes.len(),
            MAX_BYTES >> 20
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "state_file has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A leftover of a crash, or anything else in the way (a FIFO there would block the
    // open below): gone first, then created anew, never followed.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(in_step("remove the old temp file", &tmp, e)),
    }
    let written = write_new(&tmp, &bytes).and_then(|()| {
        fs::rename(&tmp, path).map_err(|e| in_step("rename it over the state file", &tmp, e))
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The new file is in place; only its directory entry's durability is left.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| in_step("fsync the directory", &dir, e))
}

/// Create `tmp` (which must not exist), write `bytes` and fsync it.
fn write_new(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|e| in_step("create the temp file", tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| in_step("write the temp file", tmp, e))?;
    file.sync_all()
        .map_err(|e| in_step("fsync the temp file", tmp, e))
}

/// `e`, with the step that failed and the path it failed on.
fn in_step(step: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {step} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dynsup-state-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = temp_dir("rt");
        let path = dir.join("state.json");
        assert_eq!(load(&path), Ok(None));
        let workers = vec![SavedWorker {
            name: "g1".into(),
            template: "worker".into(),
            args: vec!["a".into()],
            command: None,
            env: Default::default(),
            failed: None,
        }];
        save(&path, &workers).unwrap();
        assert_eq!(load(&path), Ok(Some(workers)));
        assert!(!dir.join(".state.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_workers_env_is_kept_and_files_without_it_still_read() {
        let dir = temp_dir("env");
        let path = dir.join("state.json");
        let older = r#"{"version":1,"workers":[{"name":"g1","template":"worker","args":["a"]}]}"#;
        fs::write(&path, older).unwrap();
        let workers = load(&path).unwrap().unwrap();
        assert!(workers[0].env.is_empty());
        let mut with_env = workers.clone();
        with_env[0].env.insert("MAP".into(), "de_dust2".into());
        save(&path, &with_env).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""env":{"MAP":"de_dust2"}"#), "{text}");
        assert_eq!(load(&path), Ok(Some(with_env)));
        // An empty env is left out, so the file reads as before.
        save(&path, &workers).unwrap();
        assert!(!fs::read_to_string(&path).unwrap().contains("env"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_file_is_reported_and_set_aside() {
        let dir = temp_dir("bad");
        let path = dir.join("state.json");
        fs::write(&path, "{not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("is corrupt"), "{err}");
        let aside = set_aside(&path).unwrap();
        assert!(aside.to_string_lossy().contains("state.json.corrupt-"));
        assert!(!path.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    fn saved(name: &str) -> Vec<SavedWorker> {
        vec![SavedWorker {
            name: name.into(),
            template: "worker".into(),
            args: Vec::new(),
            command: None,
            env: Default::default(),
            failed: None,
        }]
    }

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = temp_dir("kinds");
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = load(&fifo).unwrap_err();
        assert!(err.contains("is not a regular file (a FIFO)"), "{err}");
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = load(&zero).unwrap_err();
        assert!(err.contains("(a character device)"), "{err}");
        let err = load(&dir).unwrap_err();
        assert!(err.contains("(a directory)"), "{err}");
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        let err = load(&dangling).unwrap_err();
        assert!(err.contains("symbolic link to nothing"), "{err}");
        // A symlink to a regular file is followed.
        let real = dir.join("real.json");
        save(&real, &saved("a")).unwrap();
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(load(&link), Ok(Some(saved("a"))));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_the_bound_is_not_read() {
        let dir = temp_dir("huge");
        let path = dir.join("state.json");
        // Sparse: no disk space used.
        File::create(&path).unwrap().set_len(MAX_BYTES + 1).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("is larger than 64 MiB"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_save_leaves_the_old_file_and_no_temp_file() {
        let dir = temp_dir("fail");
        // A directory where the file should be: the rename fails.
        let path = dir.join("state.json");
        fs::create_dir(&path).unwrap();
        let err = save(&path, &saved("a")).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot rename it over the state file"),
            "{err}"
        );
        assert!(path.is_dir());
        assert!(!dir.join(".state.json.tmp").exists());
        fs::remove_dir(&path).unwrap();
        // A FIFO left where the temp file goes does not block the save.
        nix::unistd::mkfifo(
            &dir.join(".state.json.tmp"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        save(&path, &saved("b")).unwrap();
        assert_eq!(load(&path), Ok(Some(saved("b"))));
        assert!(!dir.join(".state.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
