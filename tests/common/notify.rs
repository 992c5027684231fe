//! sd_notify: a [`NotifyListener`] stands in for systemd's `NOTIFY_SOCKET` (a path or an
//! abstract `@name`), and [`send_notify`] sends a datagram as any process could.

use super::dirs::unique_name;
use super::wait::each_moment_until;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifyListener {
    socket: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub address: String,
    /// Every message received so far, with the instant it was read.
    pub received: Vec<(String, Instant)>,
}

impl NotifyListener {
    /// Bound to a path (which must not exist yet).
    pub fn bind_path(path: &Path) -> NotifyListener {
        let socket =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        NotifyListener {
            socket,
            address: path.display().to_string(),
            received: Vec::new(),
        }
    }

    /// Bound to a unique abstract name.
    pub fn bind_abstract() -> NotifyListener {
        use std::os::linux::net::SocketAddrExt;
        let name = unique_name("dynsup-test-notify");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let socket =
            UnixDatagram::bind_addr(&addr).unwrap_or_else(|e| panic!("bind abstract @{name}: {e}"));
        NotifyListener {
            socket,
            address: format!("@{name}"),
            received: Vec::new(),
        }
    }

    /// The next message within `timeout`, if any.
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        let bytes = recv_datagram(&self.socket, timeout, 65536, "the notify socket")?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.received.push((text.clone(), Instant::now()));
        Some(text)
    }

    /// Reads messages until one satisfies `pred` (it is returned); panics after
    /// `timeout`, naming `what` and quoting what was received.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let found = each_moment_until(timeout, |left| self.recv(left).filter(|m| pred(m)));
        found.unwrap_or_else(|| {
            panic!(
                "no sd_notify message {what} within {timeout:?}; received: {:?}",
                self.messages()
            )
        })
    }

    /// Reads whatever arrives within `window` (a negative check: nothing is waited for).
    pub fn drain_for(&mut self, window: Duration) {
        each_moment_until(window, |left| {
            self.recv(left);
            None::<()>
        });
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        self.received.iter().map(|(m, _)| m.clone()).collect()
    }

    /// How many messages received so far contain the assignment `line`.
    pub fn count(&self, line: &str) -> usize {
        self.received
            .iter()
            .filter(|(m, _)| m.lines().any(|l| l == line))
            .count()
    }
}

/// The value of `KEY=` in an sd_notify message.
pub fn notify_field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// Sends one sd_notify datagram to `address` (`@name` or a path) from this process.
pub fn send_notify(address: &str, message: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = match address.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?,
        None => std::os::unix::net::SocketAddr::from_pathname(address)?,
    };
    UnixDatagram::unbound()?
        .send_to_addr(message.as_bytes(), &addr)
        .map(drop)
}

/// The next datagram on `socket` within `timeout` (at most `max` bytes), if any;
/// panics on an error other than a timeout, naming `what`.
pub fn recv_datagram(
    socket: &UnixDatagram,
    timeout: Duration,
    max: usize,
    what: &str,
) -> Option<Vec<u8>> {
    socket
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .expect("set_read_timeout");
    let mut buf = vec![0u8; max];
    match socket.recv(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("recv on {what}: {e}"),
    }
}
