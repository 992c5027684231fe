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
//! Between two such snapshots, each change of the record (a worker recorded, or
//! forgotten) is appended to a journal beside it, `FILE.journal`, one JSON line per
//! change (`{"put":{...}}`, `{"forget":"name"}`), and the turn's lines are made durable
//! with one `fdatasync` before the replies they answer go out: a start costs the bytes
//! of its own record, not a rewrite of every worker's. Once the journal outgrows the
//! snapshot (and at least [`COMPACT_AT`]), a new snapshot is written as above and the
//! journal emptied; the bytes written per change stay O(1) amortised. Reading is the
//! snapshot, then the journal replayed over it in order — replaying a line the snapshot
//! already holds changes nothing, so a crash between the snapshot's rename and the
//! journal's truncation loses nothing. A last line cut short by a crash mid-append was
//! never acknowledged (its `fdatasync` had not returned) and is ignored; a damaged line
//! before the end stops the replay there, the journal is set aside for inspection, and
//! the daemon starts with what was read.
//!
//! Read defensively, since whatever is at the path is read at boot, before the daemon
//! serves anyone: only a regular file (a symlink to one is followed), checked with `stat`
//! before it is opened (opening a device can have effects) and with `fstat` after; opened
//! with `O_NONBLOCK`, so a FIFO swapped in between cannot block the boot; and at most
//! [`MAX_BYTES`] read. Anything else is refused with a message saying what it is, and
//! the caller sets it aside.

use super::small_file::{self, Unreadable};
use crate::core::{SavedChange, SavedWorker};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
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

/// A journal smaller than this is never compacted (a snapshot of few workers is small:
/// without a floor, every few starts would rewrite it).
pub const COMPACT_AT: u64 = 1 << 20;

/// The journal beside the state file at `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut journal = path.as_os_str().to_owned();
    journal.push(".journal");
    PathBuf::from(journal)
}

/// What [`load`] read: the workers, and what was wrong with the journal, if anything
/// (the workers are then those of its lines before the damage).
#[derive(Debug, PartialEq)]
pub struct Loaded {
    pub workers: Vec<SavedWorker>,
    pub journal_damage: Option<String>,
}

/// Read the state file and replay its journal over it. `Ok(None)` when there is
/// neither yet. An `Err` says why the snapshot is unusable (not a regular file, too
/// large, unreadable, corrupt, another version); a damaged journal is not an `Err`
/// (see [`Loaded::journal_damage`]).
pub fn load(path: &Path) -> Result<Option<Loaded>, String> {
    let snapshot = load_snapshot(path)?;
    let journal = journal_path(path);
    let text = match read_bounded(&journal) {
        Ok(text) => Some(text),
        Err(Unreadable::Missing) => None,
        Err(Unreadable::Why(why)) => {
            return Ok(Some(Loaded {
                workers: snapshot.unwrap_or_default(),
                journal_damage: Some(format!("journal {}: {why}", journal.display())),
            }))
        }
    };
    if snapshot.is_none() && text.is_none() {
        return Ok(None);
    }
    let mut workers: BTreeMap<String, SavedWorker> = snapshot
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
    let journal_damage = text.and_then(|text| replay(&text, &mut workers, &journal));
    Ok(Some(Loaded {
        workers: workers.into_values().collect(),
        journal_damage,
    }))
}

/// Apply the journal's lines in order; a last line without its newline (an append cut
/// short) is ignored; a line that does not parse stops the replay, and says where.
fn replay(
    text: &[u8],
    workers: &mut BTreeMap<String, SavedWorker>,
    journal: &Path,
) -> Option<String> {
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => &[][..],
    };
    if complete.len() < text.len() {
        log::warn!(
            "{}: ignoring a last line cut short ({} bytes; a write the daemon never acknowledged)",
            journal.display(),
            text.len() - complete.len()
        );
    }
    for (i, line) in complete.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<SavedChange>(line) {
            Ok(SavedChange::Put(worker)) => {
                workers.insert(worker.name.clone(), worker);
            }
            Ok(SavedChange::Forget(name)) => {
                workers.remove(&name);
            }
            Err(e) => {
                return Some(format!(
                    "journal {}:{} is damaged ({e}); the lines after it are not read",
                    journal.display(),
                    i + 1
                ))
            }
        }
    }
    None
}

fn load_snapshot(path: &Path) -> Result<Option<Vec<SavedWorker>>, String> {
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(Unreadable::Missing) => return Ok(None),
        Err(Unreadable::Why(why)) => return Err(format!("state file {}: {why}", path.display())),
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

/// The regular file at `path`, at most [`MAX_BYTES`] ([`small_file::read`]); a dangling
/// symlink is not "no file yet" here: something is in the way.
fn read_bounded(path: &Path) -> Result<Vec<u8>, Unreadable> {
    match small_file::read(path, MAX_BYTES, "a state file") {
        Err(Unreadable::Missing) if fs::symlink_metadata(path).is_ok() => Err(Unreadable::Why(
            "is a symbolic link to nothing (a missing file)".to_string(),
        )),
        other => other,
    }
}

/// Move an unusable state file aside (`FILE.corrupt-UNIXTIME`) so that it is kept for
/// inspection and the next save does not overwrite it. (Its journal too: replayed over
/// nothing, or over the next snapshot, it would be wrong.)
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let journal = journal_path(path);
    if fs::symlink_metadata(&journal).is_ok() {
        let _ = set_aside_one(&journal);
    }
    set_aside_one(path)
}

/// Move a damaged journal aside (the snapshot stays).
pub fn set_journal_aside(path: &Path) -> io::Result<PathBuf> {
    set_aside_one(&journal_path(path))
}

fn set_aside_one(path: &Path) -> io::Result<PathBuf> {
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
/// Returns the snapshot's size.
pub fn save(path: &Path, workers: &[SavedWorker]) -> io::Result<u64> {
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
        .map_err(|e| in_step("fsync the directory", &dir, e))?;
    Ok(bytes.len() as u64)
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

/// The journal's bookkeeping: how much was appended since the last snapshot, and that
/// snapshot's size, which decide when to compact. The file is opened for each append
/// and closed after it: no fd held between turns (a file system can be remounted
/// read-only under a daemon that holds none open for writing).
#[derive(Default)]
pub struct Journal {
    /// Its size (what was appended since the last snapshot).
    bytes: u64,
    /// The last snapshot's size.
    snapshot_bytes: u64,
}

impl Journal {
    /// Append `changes` and make them durable (one write, one `fdatasync`). A failed
    /// append is cut back off the file, so a later one does not follow half a line.
    pub fn append(&mut self, path: &Path, changes: &[SavedChange]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(changes.len() * 96);
        for change in changes {
            serde_json::to_writer(&mut lines, change).map_err(io::Error::other)?;
            lines.push(b'\n');
        }
        if self.bytes + lines.len() as u64 > MAX_BYTES {
            return Err(io::Error::other(format!(
                "the journal would exceed the {} MiB a state file may hold",
                MAX_BYTES >> 20
            )));
        }
        let journal = journal_path(path);
        let mut file = open_journal(&journal)?;
        let before = file
            .metadata()
            .map_err(|e| in_step("stat", &journal, e))?
            .len();
        let appended = file
            .write_all(&lines)
            .map_err(|e| in_step("append to", &journal, e))
            .and_then(|()| {
                file.sync_data()
                    .map_err(|e| in_step("fdatasync", &journal, e))
            });
        match appended {
            Ok(()) => {
                self.bytes = before + lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(before);
                Err(e)
            }
        }
    }

    /// Whether the next write should be a snapshot instead of an append.
    pub fn wants_compaction(&self) -> bool {
        self.bytes >= COMPACT_AT.max(self.snapshot_bytes)
    }

    /// Write a snapshot of `workers` (atomically, as [`save`]), then empty the journal.
    pub fn compact(&mut self, path: &Path, workers: &[SavedWorker]) -> io::Result<()> {
        self.snapshot_bytes = save(path, workers)?;
        // The snapshot holds every change in the journal: replaying them over it would
        // change nothing, so emptying the journal need not be atomic with the rename.
        let journal = journal_path(path);
        match fs::symlink_metadata(&journal) {
            Ok(_) => {
                let file = open_journal(&journal)?;
                file.set_len(0)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| in_step("empty", &journal, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(in_step("look at", &journal, e)),
        }
        self.bytes = 0;
        Ok(())
    }
}

/// Open (or create) the journal for appends: never through a symlink, never anything
/// but a regular file (a FIFO put there must not block the loop).
fn open_journal(journal: &Path) -> io::Result<File> {
    let existed = fs::symlink_metadata(journal).is_ok();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(journal)
        .map_err(|e| in_step("open", journal, e))?;
    let meta = file.metadata().map_err(|e| in_step("stat", journal, e))?;
    if !meta.file_type().is_file() || meta.nlink() == 0 {
        return Err(in_step(
            "open",
            journal,
            io::Error::other("it is not a regular file"),
        ));
    }
    if !existed {
        // Its directory entry is durable before anything appended to it is acknowledged.
        let dir = match journal.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| in_step("fsync the directory", &dir, e))?;
    }
    Ok(file)
}

/// `e`, with the step that failed and the path it failed on.
fn in_step(step: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {step} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workers `load` reads, without the journal's report.
    fn load_workers(path: &Path) -> Result<Option<Vec<SavedWorker>>, String> {
        load(path).map(|loaded| loaded.map(|l| l.workers))
    }

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
        assert_eq!(load_workers(&path), Ok(None));
        let workers = vec![SavedWorker {
            name: "g1".into(),
            template: "worker".into(),
            args: vec!["a".into()],
            command: None,
            env: Default::default(),
            failed: None,
            fenced: false,
        }];
        save(&path, &workers).unwrap();
        assert_eq!(load_workers(&path), Ok(Some(workers)));
        assert!(!dir.join(".state.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_workers_env_is_kept_and_files_without_it_still_read() {
        let dir = temp_dir("env");
        let path = dir.join("state.json");
        let older = r#"{"version":1,"workers":[{"name":"g1","template":"worker","args":["a"]}]}"#;
        fs::write(&path, older).unwrap();
        let workers = load_workers(&path).unwrap().unwrap();
        assert!(workers[0].env.is_empty());
        let mut with_env = workers.clone();
        with_env[0].env.insert("MAP".into(), "de_dust2".into());
        save(&path, &with_env).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""env":{"MAP":"de_dust2"}"#), "{text}");
        assert_eq!(load_workers(&path), Ok(Some(with_env)));
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
            fenced: false,
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
        assert_eq!(load_workers(&link), Ok(Some(saved("a"))));
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
        assert_eq!(load_workers(&path), Ok(Some(saved("b"))));
        assert!(!dir.join(".state.json.tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    fn put(name: &str) -> SavedChange {
        SavedChange::Put(saved(name).remove(0))
    }

    #[test]
    fn the_journal_is_replayed_over_the_snapshot_in_order() {
        let dir = temp_dir("journal");
        let path = dir.join("state.json");
        let mut journal = Journal::default();
        // No snapshot yet: the journal alone.
        journal.append(&path, &[put("a"), put("b")]).unwrap();
        journal
            .append(&path, &[SavedChange::Forget("a".into()), put("c")])
            .unwrap();
        let names = |path: &Path| -> Vec<String> {
            load_workers(path)
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|w| w.name)
                .collect()
        };
        assert_eq!(names(&path), ["b", "c"]);
        // A snapshot empties the journal; what follows is appended again.
        journal
            .compact(&path, &load_workers(&path).unwrap().unwrap())
            .unwrap();
        assert_eq!(fs::metadata(journal_path(&path)).unwrap().len(), 0);
        journal.append(&path, &[put("d")]).unwrap();
        assert_eq!(names(&path), ["b", "c", "d"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_cut_last_line_is_ignored_and_a_damaged_line_stops_the_replay() {
        let dir = temp_dir("torn");
        let path = dir.join("state.json");
        save(&path, &saved("a")).unwrap();
        let journal = journal_path(&path);
        fs::write(
            &journal,
            "{\"put\":{\"name\":\"b\",\"template\":\"worker\"}}\n{\"put\":{\"na",
        )
        .unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.journal_damage, None);
        let names: Vec<String> = loaded.workers.into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "b"]);
        fs::write(
            &journal,
            "{\"put\":{\"name\":\"b\",\"template\":\"worker\"}}\ngarbage\n{\"forget\":\"a\"}\n",
        )
        .unwrap();
        let loaded = load(&path).unwrap().unwrap();
        let damage = loaded.journal_damage.expect("damage reported");
        assert!(
            damage.contains("state.json.journal:2 is damaged"),
            "{damage}"
        );
        let names: Vec<String> = loaded.workers.into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "b"], "the lines before the damage, not after");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn appends_cost_their_own_bytes_and_compaction_waits_for_the_journal_to_outgrow_the_snapshot() {
        let dir = temp_dir("amortised");
        let path = dir.join("state.json");
        let mut journal = Journal::default();
        let mut all = Vec::new();
        let mut written = 0u64;
        let mut compactions = 0;
        // 50,000 starts, ten per loop turn (one append each).
        for turn in 0..5_000 {
            let changes: Vec<SavedChange> = (0..10)
                .map(|k| put(&format!("worker_{:05}", turn * 10 + k)))
                .collect();
            all.extend(changes.iter().filter_map(|c| match c {
                SavedChange::Put(w) => Some(w.clone()),
                SavedChange::Forget(_) => None,
            }));
            if journal.wants_compaction() {
                journal.compact(&path, &all).unwrap();
                written += fs::metadata(&path).unwrap().len();
                compactions += 1;
            } else {
                let before = journal.bytes;
                journal.append(&path, &changes).unwrap();
                written += journal.bytes - before;
            }
        }
        let per_start = written / 50_000;
        // One record is about 50 bytes; snapshots at most double it, amortised.
        assert!(per_start < 200, "{per_start} bytes written per start");
        assert!(compactions >= 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_in_the_journals_place_is_refused_without_blocking() {
        let dir = temp_dir("journal-fifo");
        let path = dir.join("state.json");
        nix::unistd::mkfifo(
            &journal_path(&path),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let err = Journal::default().append(&path, &[put("a")]).unwrap_err();
        assert!(err.to_string().contains("journal"), "{err}");
        let loaded = load(&path).unwrap().unwrap();
        assert!(loaded.journal_damage.unwrap().contains("FIFO"));
        fs::remove_dir_all(dir).unwrap();
    }
}
