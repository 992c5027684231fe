//! Worker readiness: the daemon's own `NOTIFY_SOCKET`, served to workers whose template
//! says `ready = "notify"`, so an unmodified sd_notify daemon can report `READY=1` and
//! `STATUS=...` to dynsup as it would to systemd.
//!
//! The socket is an abstract datagram socket (no file to clean up or to protect) with
//! `SO_PASSCRED` set, so every message arrives with the sender's pid as the kernel saw
//! it; the core maps that pid (or its process group) to a worker and ignores everyone
//! else. Reading is non-blocking and bounded per wake-up.

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
            let (len, pid) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                match socket::recvmsg::<()>(
                    self.socket.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(msg) => {
                        let mut pid = None;
                        if let Ok(cmsgs) = msg.cmsgs() {
                            for c in cmsgs {
                                match c {
                                    ControlMessageOwned::ScmCredentials(creds) => {
                                        pid = Some(creds.pid())
                                    }
                                    ControlMessageOwned::ScmRights(fds) => {
                                        // We keep no fd store: close what was sent.
                                        for fd in fds {
                                            let _ = nix::unistd::close(fd);
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        (msg.bytes, pid)
                    }
                    Err(nix::errno::Errno::EAGAIN) => return (out, false),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        log::warn!("reading the workers' notify socket failed: {e}");
                        return (out, false);
                    }
                }
            };
            let Some(pid) = pid else {
                log::debug!("ignored an sd_notify message without credentials");
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..len]);
            let mut note = Notification::default();
            for line in text.lines() {
                match line.split_once('=') {
                    Some(("READY", "1")) => note.ready = true,
                    Some(("STATUS", status)) => note.status = Some(status.to_string()),
                    _ => {}
                }
            }
            out.push(Datagram { pid, note });
        }
        (out, true)
    }
}
