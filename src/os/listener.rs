//! Binding the control socket.
//!
//! The socket file never exists with a wider mode than asked: it is bound under a umask
//! of 0177 (so it is born 0600), then given its group (`socket_group`) and only then its
//! final mode (`socket_mode`, default 0600). A socket file left by
//! a daemon that was SIGKILLed is replaced; one that a live daemon still answers on is
//! not (the new daemon refuses to start instead of stealing it).

use mio::net::UnixListener;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, String> {
    let shown = path.display();
    if path.as_os_str().len() >= 108 {
        return Err(format!(
            "socket path {shown} is {} bytes long; Unix sockets allow at most 107",
            path.as_os_str().len()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another daemon is already listening on {shown}; stop it first or use --socket"
                ));
            }
            log::info!("replacing stale socket file {shown}");
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale socket {shown}: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; refusing to replace it"
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {shown}: {e}")),
    }
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old_umask);
    let listener = bound.map_err(|e| format!("cannot bind {shown}: {e}"))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| format!("cannot give {shown} to group {gid}: {e}"))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {shown} to {mode:o}: {e}"))?;
    Ok(listener)
}
