//! Where the control socket is, when nobody said: shared by the daemon and the CLI so
//! both look in the same place.

use std::path::PathBuf;

/// Where the shipped systemd unit puts the socket.
pub const SYSTEM_SOCKET: &str = "/run/dynsup/dynsup.sock";

/// For the CLI: `$DYNSUP_SOCKET`; else, for root, the system service's socket if it
/// exists; else `$XDG_RUNTIME_DIR/dynsup.sock`; else `/tmp/dynsup-<uid>.sock`.
pub fn default_socket() -> PathBuf {
    if std::env::var_os("DYNSUP_SOCKET").is_none_or(|p| p.is_empty())
        && nix::unistd::getuid().is_root()
        && std::path::Path::new(SYSTEM_SOCKET).exists()
    {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    daemon_default_socket()
}

/// For the daemon: the same, without the system service's path (a second daemon
/// must never pick the service's socket by accident).
pub fn daemon_default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os("DYNSUP_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("dynsup.sock");
    }
    PathBuf::from(format!("/tmp/dynsup-{}.sock", nix::unistd::getuid()))
}
