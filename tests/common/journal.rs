//! [`JournalListener`]: a datagram socket standing in for journald's native socket
//! (`/run/systemd/journal/socket`; the daemon is pointed at it with
//! `DYNSUP_JOURNAL_SOCKET`), and a reader of the native protocol's entries.

use super::notify::recv_datagram;
use super::wait::each_moment_until;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One native journal entry: its fields in the order they came.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub fields: Vec<(String, Vec<u8>)>,
}

impl JournalEntry {
    /// The value of field `name` as text, if it is there.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads an entry as journald does: `NAME=value\n`, or `NAME\n`, a 64-bit
/// little-endian length, the value and `\n`.
pub fn parse_journal_entry(mut bytes: &[u8]) -> Result<JournalEntry, String> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .iter()
            .position(|&b| b == b'=' || b == b'\n')
            .ok_or_else(|| format!("a field without `=` or newline: {bytes:?}"))?;
        let name = String::from_utf8(bytes[..end].to_vec()).map_err(|e| e.to_string())?;
        let rest = &bytes[end + 1..];
        if bytes[end] == b'=' {
            let nl = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| format!("field {name} without its newline"))?;
            fields.push((name, rest[..nl].to_vec()));
            bytes = &rest[nl + 1..];
        } else {
            let len: [u8; 8] = rest
                .get(..8)
                .and_then(|l| l.try_into().ok())
                .ok_or_else(|| format!("field {name}: no length"))?;
            let len = u64::from_le_bytes(len) as usize;
            let value = rest
                .get(8..8 + len)
                .ok_or_else(|| format!("field {name}: shorter than its length {len}"))?;
            if rest.get(8 + len) != Some(&b'\n') {
                return Err(format!("field {name}: no newline after its value"));
            }
            fields.push((name, value.to_vec()));
            bytes = &rest[8 + len + 1..];
        }
    }
    Ok(JournalEntry { fields })
}

pub struct JournalListener {
    socket: UnixDatagram,
    pub path: PathBuf,
    /// Every entry received so far.
    pub entries: Vec<JournalEntry>,
}

impl JournalListener {
    /// Bound to `path` (which must not exist yet).
    pub fn bind(path: &Path) -> JournalListener {
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        JournalListener {
            socket,
            path: path.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// The next entry within `timeout`, if any.
    pub fn recv(&mut self, timeout: Duration) -> Option<JournalEntry> {
        let bytes = recv_datagram(&self.socket, timeout, 256 * 1024, "the journal socket")?;
        let entry = parse_journal_entry(&bytes)
            .unwrap_or_else(|e| panic!("a malformed journal entry ({e}): {bytes:?}"));
        self.entries.push(entry.clone());
        Some(entry)
    }

    /// Reads entries until one satisfies `pred` (it is returned); panics after
    /// `timeout`, naming `what` and quoting what was received.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&JournalEntry) -> bool,
    ) -> JournalEntry {
        let found = each_moment_until(timeout, |left| self.recv(left).filter(|e| pred(e)));
        found.unwrap_or_else(|| {
            panic!(
                "no journal entry {what} within {timeout:?}; received: {:?}",
                self.entries
            )
        })
    }

    /// Reads every entry queued now (never waits); returns how many.
    pub fn drain_now(&mut self) -> usize {
        self.socket.set_nonblocking(true).expect("set_nonblocking");
        let mut n = 0;
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(len) = self.socket.recv(&mut buf) {
            let entry = parse_journal_entry(&buf[..len])
                .unwrap_or_else(|e| panic!("a malformed journal entry ({e})"));
            self.entries.push(entry);
            n += 1;
        }
        self.socket.set_nonblocking(false).expect("set_nonblocking");
        n
    }

    /// The entries received so far whose `DYNSUP_WORKER` is `name`.
    pub fn of_worker(&self, name: &str) -> Vec<&JournalEntry> {
        self.entries
            .iter()
            .filter(|e| e.field("DYNSUP_WORKER").as_deref() == Some(name))
            .collect()
    }
}
