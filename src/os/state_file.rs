//! The state file: the dynamically started workers, so that a daemon that comes back
//! after `kill -9`, a crash or an intensity escalation starts them again.
//!
//! Written atomically: a temp file in the same directory, `fsync`, `rename` over the
//! old file, `fsync` of the directory. A reader therefore sees the old list or the new
//! one, never half of either. Format (JSON, versioned):
//!
//! ```json
//! {"version":1,"workers":[{"name":"game_17","template":"worker","args":["--map","x"]}]}
//! ```

use crate::core::SavedWorker;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    workers: Vec<SavedWorker>,
}

/// Read the state file. `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Vec<SavedWorker>>, String> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
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

/// Replace the state file with `workers`, atomically and durably.
pub fn save(path: &Path, workers: &[SavedWorker]) -> io::Result<()> {
    let state = StateFile {
        version: VERSION,
        workers: workers.to_vec(),
    };
    let mut bytes = serde_json::to_vec(&state).map_err(io::Error::other)?;
    bytes.push(b'\n');
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
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()
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
            failed: None,
        }];
        save(&path, &workers).unwrap();
        assert_eq!(load(&path), Ok(Some(workers)));
        assert!(!dir.join(".state.json.tmp").exists());
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
}
