//! Worker readiness and liveness: the daemon's own `NOTIFY_SOCKET`, served to workers
//! whose template says `ready = "notify"` or sets `watchdog_ms`, so an unmodified
//! sd_notify daemon can report `READY=1`, `STATUS=...` and its watchdog keep-alives
//! (`WATCHDOG=1`, `WATCHDOG=trigger`, `WATCHDOG_USEC=N`) to dynsup as it would to
//! systemd.
//!
//! The socket is an abstract datagram socket (no file to clean up or to protect) with
//! `SO_PASSCRED` set, so every message arrives with the sender's pid as the kernel saw
//! it; the core maps that pid (or its process group) to a worker and ignores everyone
//! else. The sender's process group is read from `/proc` *before* the file descriptors
//! it attached are closed: `systemd-notify` (without `--no-block`) attaches a barrier
//! pipe and waits until the receiver closes it, so it is still alive, and its group
//! readable, until then. Reading is non-blocking and bounded per wake-up.

use crate::core::Notification;
use mio::net::UnixDatagram;
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials};
use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;

/// Messages read per wake-up before other sources get their turn.
const BUDGET: usize = 256;
/// File descriptors accepted (and closed at once) per message.
const MAX_FDS: usize = 32;

pub struct NotifySocket {
    pub socket: UnixDatagram,
    /// The value for the workers' `NOTIFY_SOCKET` (`@` marks an abstract name).
    pub address: String,
}

/// One datagram, decoded: who sent it, and what it says.
pub struct Datagram {
    pub pid: i32,
    /// The sender's process group, if it could still be read.
    pub group: Option<i32>,
    pub note: Notification,
}

impl NotifySocket {
    pub fn bind() -> io::Result<NotifySocket> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("dynsup-notify-{}-{nanos}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
        std_socket.set_nonblocking(true)?;
        socket::setsockopt(&std_socket, sockopt::PassCred, &true).map_err(io::Error::from)?;
        Ok(NotifySocket {
            socket: UnixDatagram::from_std(std_socket),
            address: format!("@{name}"),
        })
    }

    /// Read waiting datagrams (up to a budget). The bool is true when more may wait.
    pub fn receive(&mut self) -> (Vec<Datagram>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < BUDGET {
            // Room for the credentials and for file descriptors a sender may attach
            // (sd_notify's FDSTORE, systemd-notify's barrier): without it the kernel
            // truncates the control data and the credentials are lost with the fds.
            let mut cmsg = nix::cmsg_space!(UnixCredentials, [std::os::fd::RawFd; MAX_FDS]);
            let (len, pid, fds) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                match socket::recvmsg::<()>(
                    self.socket.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(msg) => {
                        let mut pid = None;
                        let mut fds = Vec::new();
                        if let Ok(cmsgs) = msg.cmsgs() {
                            for c in cmsgs {
                                match c {
                                    ControlMessageOwned::ScmCredentials(creds) => {
                                        pid = Some(creds.pid())
                                    }
                                    ControlMessageOwned::ScmRights(passed) => fds.extend(passed),
                                    _ => {}
                                }
                            }
                        }
                        (msg.bytes, pid, fds)
                    }
                    Err(nix::errno::Errno::EAGAIN) => return (out, false),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        log::warn!("reading the workers' notify socket failed: {e}");
                        return (out, false);
                    }
                }
            };
            // While a barrier's sender still waits for its fd to be closed.
            let group = pid.and_then(crate::os::process::process_group);
            // We keep no fd store, and closing a barrier's pipe end answers it.
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
            let Some(pid) = pid else {
                log::debug!("ignored an sd_notify message without credentials");
                continue;
            };
            let note = decode(&String::from_utf8_lossy(&buf[..len]));
            out.push(Datagram { pid, group, note });
        }
        (out, true)
    }
}

/// The assignments of one sd_notify message (newline-separated `KEY=VALUE`) that the
/// core uses; anything else, and a malformed `WATCHDOG_USEC`, is ignored.
pub fn decode(text: &str) -> Notification {
    let mut note = Notification::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("READY", "1")) => note.ready = true,
            Some(("STATUS", status)) => note.status = Some(status.to_string()),
            Some(("WATCHDOG", "1")) => note.watchdog = true,
            Some(("WATCHDOG", "trigger")) => note.watchdog_trigger = true,
            Some(("WATCHDOG_USEC", usec)) => {
                if let Ok(usec) = usec.parse::<u64>() {
                    note.watchdog_usec = Some(usec);
                }
            }
            _ => {}
        }
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_and_status() {
        let note = decode("READY=1\nSTATUS=serving 3 clients\n");
        assert!(note.ready);
        assert_eq!(note.status.as_deref(), Some("serving 3 clients"));
        assert!(!note.watchdog && !note.watchdog_trigger);
        assert_eq!(note.watchdog_usec, None);
        // `READY=0` or `READY` alone is not readiness; a status may be empty.
        assert!(!decode("READY=0").ready);
        assert!(!decode("READY").ready);
        assert_eq!(decode("STATUS=").status.as_deref(), Some(""));
    }

    #[test]
    fn watchdog_keep_alive_and_trigger() {
        let note = decode("WATCHDOG=1");
        assert!(note.watchdog && !note.watchdog_trigger && !note.ready);
        let note = decode("WATCHDOG=trigger");
        assert!(note.watchdog_trigger && !note.watchdog);
        // Anything else is not a watchdog message.
        for text in [
            "WATCHDOG=0",
            "WATCHDOG=",
            "WATCHDOG=yes",
            "WATCHDOG",
            "watchdog=1",
        ] {
            assert_eq!(decode(text), Notification::default(), "{text:?}");
        }
        // Several in one datagram, as sd_notify allows.
        let note = decode("READY=1\nWATCHDOG=1\nSTATUS=up");
        assert!(note.ready && note.watchdog);
        assert_eq!(note.status.as_deref(), Some("up"));
    }

    #[test]
    fn watchdog_interval_is_a_plain_number_of_microseconds() {
        assert_eq!(
            decode("WATCHDOG_USEC=2000000").watchdog_usec,
            Some(2_000_000)
        );
        assert_eq!(decode("WATCHDOG_USEC=0").watchdog_usec, Some(0));
        assert_eq!(
            decode(&format!("WATCHDOG_USEC={}", u64::MAX)).watchdog_usec,
            Some(u64::MAX)
        );
        for bad in [
            "WATCHDOG_USEC=",
            "WATCHDOG_USEC=-1",
            "WATCHDOG_USEC= 5",
            "WATCHDOG_USEC=5s",
            "WATCHDOG_USEC=1.5",
            "WATCHDOG_USEC=18446744073709551616",
            "WATCHDOG_USEC",
        ] {
            assert_eq!(decode(bad).watchdog_usec, None, "{bad:?}");
        }
        // A malformed one does not hide the rest of the message.
        let note = decode("WATCHDOG_USEC=x\nWATCHDOG=1");
        assert!(note.watchdog);
        assert_eq!(note.watchdog_usec, None);
    }

    #[test]
    fn lines_end_with_lf_or_crlf_and_unknown_keys_are_ignored() {
        let note = decode("FDSTORE=1\r\nWATCHDOG=1\r\nMAINPID=5\r\nBARRIER=1");
        assert!(note.watchdog);
        assert_eq!(
            Notification {
                watchdog: false,
                ..note
            },
            Notification::default()
        );
    }
}
