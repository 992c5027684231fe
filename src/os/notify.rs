//! `sd_notify` for the daemon itself: READY, STATUS, STOPPING, MAINPID and the
//! watchdog, sent as datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket), as systemd's `Type=notify` expects.
//!
//! Sending never blocks the loop: the socket is non-blocking, and a message the
//! manager's queue cannot take is dropped with a debug log (systemd does the same
//! with its own clients' messages under pressure).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Half the watchdog interval, when systemd asked for keep-alives.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From the environment; `None` when not run under a notify-aware manager.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let addr = match addr {
            Ok(addr) => addr,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={path} is not usable: {e}");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(socket) => socket,
            Err(e) => {
                log::warn!("cannot create a socket for NOTIFY_SOCKET: {e}");
                return None;
            }
        };
        Some(Notifier {
            socket,
            addr,
            watchdog_every: watchdog_interval(),
        })
    }

    /// Send one notification (newline-separated `KEY=VALUE` assignments).
    pub fn send(&self, message: &str) {
        match self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            Ok(_) => log::debug!("sd_notify: {}", message.replace('\n', " ")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                log::debug!("sd_notify dropped (manager busy): {message}")
            }
            Err(e) => log::debug!("sd_notify failed: {e}"),
        }
    }
}

/// `WATCHDOG_USEC` / 2, if set and meant for us (`WATCHDOG_PID` absent or ours).
fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_string_lossy().trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// How often, at most, `STATUS=` is recomputed while workers change state (computing
/// it visits every worker, so it is paced instead of done per event).
const STATUS_PACE: Duration = Duration::from_millis(250);

/// The daemon's conversation with systemd: readiness, a paced status line, stopping,
/// and the watchdog. Every method is a no-op when `NOTIFY_SOCKET` is not set, and
/// then no timer is ever armed.
pub struct Systemd {
    notifier: Option<Notifier>,
    /// `READY=1` was sent (it is sent once per daemon).
    ready_sent: bool,
    last_status: String,
    dirty: bool,
    status_at: Option<std::time::Instant>,
    watchdog_at: Option<std::time::Instant>,
}

impl Systemd {
    pub fn from_env() -> Systemd {
        let notifier = Notifier::from_env();
        let watchdog_at = notifier
            .as_ref()
            .and_then(|n| n.watchdog_every)
            .map(|every| std::time::Instant::now() + every);
        Systemd {
            notifier,
            ready_sent: false,
            last_status: String::new(),
            dirty: false,
            status_at: None,
            watchdog_at,
        }
    }

    /// Boot is done (every boot child running and ready) and the socket accepts:
    /// `READY=1` with the pid and first status. Only the first call sends anything.
    pub fn ready(&mut self, status: String) {
        if std::mem::replace(&mut self.ready_sent, true) {
            return;
        }
        if let Some(n) = &self.notifier {
            n.send(&format!(
                "READY=1\nMAINPID={}\nSTATUS={status}",
                std::process::id()
            ));
            self.last_status = status;
        }
    }

    pub fn stopping(&mut self) {
        if let Some(n) = &self.notifier {
            n.send("STOPPING=1\nSTATUS=stopping every worker");
        }
    }

    /// Some worker changed state: a new `STATUS=` is due (paced).
    pub fn changed(&mut self) {
        if self.notifier.is_some() && !self.dirty {
            self.dirty = true;
            self.status_at = Some(std::time::Instant::now() + STATUS_PACE);
        }
    }

    /// When the loop must wake for systemd's sake, if ever.
    pub fn next_wake(&self) -> Option<std::time::Instant> {
        match (self.status_at, self.watchdog_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Do what is due: the watchdog keep-alive, and the status line (from `status`).
    pub fn on_wake(&mut self, status: impl FnOnce() -> String) {
        let Some(n) = &self.notifier else { return };
        let now = std::time::Instant::now();
        if let (Some(at), Some(every)) = (self.watchdog_at, n.watchdog_every) {
            if at <= now {
                n.send("WATCHDOG=1");
                self.watchdog_at = Some(now + every);
            }
        }
        if self.status_at.is_some_and(|at| at <= now) {
            self.status_at = None;
            self.dirty = false;
            let status = status();
            if status != self.last_status {
                n.send(&format!("STATUS={status}"));
                self.last_status = status;
            }
        }
    }
}
