//! journald's native protocol, for worker lines: one datagram per entry to
//! `/run/systemd/journal/socket` (or `$DYNSUP_JOURNAL_SOCKET`), each field as
//! `NAME=value\n`, or — for a value holding a newline — `NAME\n`, the value's length as
//! a 64-bit little-endian number, the value, `\n` (systemd's "Native Journal Protocol").
//!
//! Sends never wait: the socket is the daemon's own (not shared, so it may be
//! non-blocking), and a datagram journald has no room for is dropped; the caller counts
//! it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// journald's socket for native entries.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides [`DEFAULT_SOCKET`] (tests bind their own datagram socket there).
pub const SOCKET_ENV: &str = "DYNSUP_JOURNAL_SOCKET";

/// The daemon's end: an unbound, non-blocking datagram socket, and journald's address.
/// The address is resolved at each send, so a restarted journald is found again.
pub struct JournalSocket {
    socket: UnixDatagram,
    path: PathBuf,
}

/// What became of one entry.
pub enum SendOutcome {
    Delivered,
    /// journald's queue (or this socket's send buffer) is full: dropped.
    NoRoom,
    /// journald cannot be reached (no socket, refused, entry too large): send it
    /// another way.
    Unreachable(io::Error),
}

impl JournalSocket {
    /// The socket at `$DYNSUP_JOURNAL_SOCKET`, else at [`DEFAULT_SOCKET`].
    pub fn from_env() -> io::Result<JournalSocket> {
        let path = std::env::var_os(SOCKET_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        JournalSocket::open(path)
    }

    pub fn open(path: PathBuf) -> io::Result<JournalSocket> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(JournalSocket { socket, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one entry built with [`append_field`].
    pub fn send(&self, entry: &[u8]) -> SendOutcome {
        loop {
            match self.socket.send_to(entry, &self.path) {
                Ok(_) => return SendOutcome::Delivered,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    return SendOutcome::NoRoom
                }
                Err(e) => return SendOutcome::Unreachable(e),
            }
        }
    }
}

/// Appends one field of an entry: `NAME=value\n`, or the binary-safe form when `value`
/// holds a newline. `name` must be a valid journal field name (capitals, digits and
/// `_`, not starting with `_`).
pub fn append_field(entry: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(is_field_name(name), "bad journal field name {name:?}");
    entry.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value);
    entry.push(b'\n');
}

/// journald accepts field names of capitals, digits and `_`, at most 64 long, not
/// starting with `_` (those are its trusted fields) or a digit.
fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && !bytes[0].is_ascii_digit()
        && bytes[0] != b'_'
        && bytes
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol's reader side, as journald parses it: a list of (name, value).
    fn parse(mut entry: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::new();
        while !entry.is_empty() {
            let end = entry.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
            let name = String::from_utf8(entry[..end].to_vec()).unwrap();
            if entry[end] == b'=' {
                let rest = &entry[end + 1..];
                let nl = rest.iter().position(|&b| b == b'\n').unwrap();
                fields.push((name, rest[..nl].to_vec()));
                entry = &rest[nl + 1..];
            } else {
                let rest = &entry[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                fields.push((name, rest[8..8 + len].to_vec()));
                assert_eq!(rest[8 + len], b'\n');
                entry = &rest[8 + len + 1..];
            }
        }
        fields
    }

    #[test]
    fn plain_and_binary_safe_fields_round_trip() {
        let mut entry = Vec::new();
        append_field(&mut entry, "MESSAGE", b"hello = world");
        append_field(&mut entry, "PRIORITY", b"3");
        append_field(&mut entry, "DYNSUP_WORKER", b"api_1");
        append_field(&mut entry, "MESSAGE2", b"two\nlines\n");
        append_field(&mut entry, "EMPTY", b"");
        assert!(entry.starts_with(b"MESSAGE=hello = world\nPRIORITY=3\n"));
        let binary_safe: &[u8] = b"MESSAGE2\n\x0a\0\0\0\0\0\0\0two\nlines\n\n";
        assert!(entry.windows(binary_safe.len()).any(|w| w == binary_safe));
        assert_eq!(
            parse(&entry),
            vec![
                ("MESSAGE".to_string(), b"hello = world".to_vec()),
                ("PRIORITY".to_string(), b"3".to_vec()),
                ("DYNSUP_WORKER".to_string(), b"api_1".to_vec()),
                ("MESSAGE2".to_string(), b"two\nlines\n".to_vec()),
                ("EMPTY".to_string(), b"".to_vec()),
            ]
        );
    }

    #[test]
    fn field_names_follow_journald_rules() {
        assert!(is_field_name("DYNSUP_WORKER"));
        assert!(is_field_name("SYSLOG_IDENTIFIER"));
        assert!(!is_field_name("_PID"));
        assert!(!is_field_name("message"));
        assert!(!is_field_name("1X"));
        assert!(!is_field_name(""));
    }

    #[test]
    fn sends_datagrams_and_reports_a_full_queue_and_a_missing_socket() {
        let dir = std::env::temp_dir().join(format!("dynsup-journal-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let journal = JournalSocket::open(path.clone()).unwrap();
        assert!(matches!(
            journal.send(b"MESSAGE=one\n"),
            SendOutcome::Delivered
        ));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=one\n");
        // Nobody reads: the queue fills, and a send says so instead of waiting.
        let full = (0..100_000).find_map(|_| match journal.send(b"MESSAGE=x\n") {
            SendOutcome::NoRoom => Some(()),
            SendOutcome::Delivered => None,
            SendOutcome::Unreachable(e) => panic!("send failed: {e}"),
        });
        assert!(full.is_some(), "the queue never filled");
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            journal.send(b"MESSAGE=x\n"),
            SendOutcome::Unreachable(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
