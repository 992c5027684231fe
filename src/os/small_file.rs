//! Reading a small file whose path an operator chose (the state file and its journal, a
//! template's env files) without letting whatever is there block or bloat the daemon:
//! only a regular file (a symlink to one is followed), checked with `stat` before it is
//! opened (opening a device can have effects) and with `fstat` after; opened with
//! `O_NONBLOCK`, so a FIFO swapped in between cannot block the loop; at most a bound
//! read.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file was not read.
pub enum Unreadable {
    /// Nothing at the path (a dangling symlink included: `open` says ENOENT).
    Missing,
    /// Something is there but it is not read: says what.
    Why(String),
}

/// The contents of the regular file at `path`, at most `max_bytes`. `holder` names what
/// the file is for, in the too-large message ("a state file", "an env file").
pub fn read(path: &Path, max_bytes: u64, holder: &str) -> Result<Vec<u8>, Unreadable> {
    let cannot = |e: io::Error| Unreadable::Why(format!("cannot read it: {e}"));
    match fs::metadata(path) {
        Ok(meta) => check(&meta, max_bytes, holder)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unreadable::Missing),
        Err(e) => return Err(cannot(e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Unreadable::Missing,
            _ => cannot(e),
        })?;
    // What was opened may not be what was looked at.
    let meta = file.metadata().map_err(cannot)?;
    check(&meta, max_bytes, holder)?;
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > max_bytes {
        return Err(too_large(max_bytes, holder));
    }
    Ok(text)
}

/// A regular file of at most `max_bytes`, or why not.
fn check(meta: &fs::Metadata, max_bytes: u64, holder: &str) -> Result<(), Unreadable> {
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
        return Err(Unreadable::Why(format!(
            "is not a regular file ({what}); it is not read"
        )));
    }
    if meta.len() > max_bytes {
        return Err(too_large(max_bytes, holder));
    }
    Ok(())
}

fn too_large(max_bytes: u64, holder: &str) -> Unreadable {
    Unreadable::Why(format!(
        "is larger than {} MiB, the most {holder} may hold; it is not read",
        max_bytes >> 20
    ))
}
