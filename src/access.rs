//! Who may talk to the control socket, and how much of it one user may hold: pure
//! decisions on a peer's uid and groups and on the connections already open.
//!
//! The socket file is 0600 by default, so the kernel already keeps others out; this is
//! the second lock, checked on every connection with `SO_PEERCRED` (which the peer
//! cannot forge), so that a socket shared with a group (`socket_mode = "0660"`) still
//! admits only the users and groups the config names. [`ConnectionLimits`] then keep
//! one user from holding every connection: root and the daemon's own uid always find
//! room, every other uid has a cap, and idle connections are closed.

use crate::protocol::Cmd;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every command.
    Full,
    /// The commands that change nothing ([`Cmd::read_only`]: `lookup`, `count`,
    /// `list`, `whois`, `watch`, `ps` and `wait_ready`).
    ReadOnly,
    Denied,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The daemon's own effective uid: always allowed, as is root.
    pub daemon_uid: u32,
    pub allow_uids: HashSet<u32>,
    pub allow_gids: HashSet<u32>,
    pub read_only_uids: HashSet<u32>,
    pub read_only_gids: HashSet<u32>,
    /// How many connections each peer may hold, and for how long while idle.
    pub connections: ConnectionLimits,
}

/// The share of the socket's connections one peer may hold (besides the daemon-wide
/// `max_connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one uid may have open at once (root and the daemon's own uid
    /// excepted): `max_connections_per_uid`.
    pub per_uid: usize,
    /// The last this many of `max_connections` are kept for root and the daemon's
    /// own uid (at most `max_connections` − 1): `reserved_connections`.
    pub reserved: usize,
    /// A connection that is not a watcher, owes no reply and has nothing to send is
    /// closed after this long without a byte in either direction (`None`: never):
    /// `idle_timeout_ms`.
    pub idle_timeout: Option<Duration>,
}

impl ConnectionLimits {
    pub const DEFAULT_PER_UID: usize = 64;
    pub const DEFAULT_RESERVED: usize = 8;
    pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            per_uid: ConnectionLimits::DEFAULT_PER_UID,
            reserved: ConnectionLimits::DEFAULT_RESERVED,
            idle_timeout: Some(Duration::from_millis(
                ConnectionLimits::DEFAULT_IDLE_TIMEOUT_MS,
            )),
        }
    }
}

/// Why a peer allowed by the lists still finds no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// `max_connections` are open.
    Full { max: usize },
    /// Only the reserved connections are left, and the peer is neither root nor the
    /// daemon's uid.
    Reserved { max: usize, reserved: usize },
    /// The peer's uid holds `max_connections_per_uid` connections.
    PerUid { uid: u32, max: usize },
}

impl std::fmt::Display for NoRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            NoRoom::Full { max } => write!(f, "the daemon serves at most {max} connections"),
            NoRoom::Reserved { max, reserved } => write!(
                f,
                "the daemon serves at most {max} connections and keeps the last {reserved} for root and its own user (reserved_connections)"
            ),
            NoRoom::PerUid { uid, max } => write!(
                f,
                "uid {uid} already has {max} connections open, the most one user may have (max_connections_per_uid)"
            ),
        }
    }
}

impl AccessPolicy {
    /// Whether group membership can change the answer for `uid` (if not, the peer's
    /// supplementary groups need not be looked up).
    pub fn needs_groups(&self, uid: u32) -> bool {
        !self.is_full_uid(uid)
            && (!self.allow_gids.is_empty()
                || (!self.read_only_gids.is_empty() && !self.read_only_uids.contains(&uid)))
    }

    fn is_full_uid(&self, uid: u32) -> bool {
        self.is_privileged(uid) || self.allow_uids.contains(&uid)
    }

    /// Root and the daemon's own uid: always allowed, never capped per uid, and the
    /// only ones that may use the reserved connections.
    pub fn is_privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    /// Whether one more connection from `uid` fits, with `open` connections open of
    /// which `of_uid` are this uid's, under `max_connections`.
    pub fn room_for(
        &self,
        uid: u32,
        open: usize,
        of_uid: usize,
        max_connections: usize,
    ) -> Result<(), NoRoom> {
        if open >= max_connections {
            return Err(NoRoom::Full {
                max: max_connections,
            });
        }
        if self.is_privileged(uid) {
            return Ok(());
        }
        let reserved = self
            .connections
            .reserved
            .min(max_connections.saturating_sub(1));
        if open >= max_connections - reserved {
            return Err(NoRoom::Reserved {
                max: max_connections,
                reserved,
            });
        }
        if of_uid >= self.connections.per_uid {
            return Err(NoRoom::PerUid {
                uid,
                max: self.connections.per_uid,
            });
        }
        Ok(())
    }

    /// Decide for a peer with `uid` whose groups (primary and supplementary) are `gids`.
    pub fn decide(&self, uid: u32, gids: &[u32]) -> Access {
        if self.is_full_uid(uid) || gids.iter().any(|g| self.allow_gids.contains(g)) {
            Access::Full
        } else if self.read_only_uids.contains(&uid)
            || gids.iter().any(|g| self.read_only_gids.contains(g))
        {
            Access::ReadOnly
        } else {
            Access::Denied
        }
    }
}

impl Access {
    /// Whether a peer with this access may use `cmd`.
    pub fn allows(self, cmd: Cmd) -> bool {
        match self {
            Access::Full => true,
            Access::ReadOnly => cmd.read_only(),
            Access::Denied => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy {
            daemon_uid: 1000,
            allow_uids: [1001].into(),
            allow_gids: [50].into(),
            read_only_uids: [2000].into(),
            read_only_gids: [60].into(),
            connections: ConnectionLimits {
                per_uid: 2,
                reserved: 3,
                idle_timeout: None,
            },
        }
    }

    #[test]
    fn room_is_kept_for_root_and_the_daemons_uid_and_each_uid_is_capped() {
        let p = policy();
        // Ten connections at most; the last three for root and uid 1000.
        assert_eq!(p.room_for(2000, 6, 0, 10), Ok(()));
        assert_eq!(
            p.room_for(2000, 7, 0, 10),
            Err(NoRoom::Reserved {
                max: 10,
                reserved: 3
            })
        );
        assert_eq!(p.room_for(0, 7, 7, 10), Ok(()));
        assert_eq!(p.room_for(1000, 9, 9, 10), Ok(()));
        assert_eq!(p.room_for(0, 10, 0, 10), Err(NoRoom::Full { max: 10 }));
        // Two per uid, for any uid but root and the daemon's (allowed ones too).
        assert_eq!(p.room_for(2000, 2, 1, 10), Ok(()));
        assert_eq!(
            p.room_for(2000, 2, 2, 10),
            Err(NoRoom::PerUid { uid: 2000, max: 2 })
        );
        assert_eq!(
            p.room_for(1001, 2, 2, 10),
            Err(NoRoom::PerUid { uid: 1001, max: 2 })
        );
        assert_eq!(p.room_for(0, 5, 5, 10), Ok(()));
        // The reserve never takes the last connection from everyone else.
        assert_eq!(p.room_for(2000, 0, 0, 1), Ok(()));
        assert_eq!(
            p.room_for(2000, 1, 0, 2),
            Err(NoRoom::Reserved {
                max: 2,
                reserved: 1
            })
        );
        assert!(NoRoom::PerUid { uid: 7, max: 2 }
            .to_string()
            .contains("max_connections_per_uid"));
    }

    #[test]
    fn decides_by_uid_then_groups() {
        let p = policy();
        assert_eq!(p.decide(0, &[]), Access::Full);
        assert_eq!(p.decide(1000, &[]), Access::Full);
        assert_eq!(p.decide(1001, &[]), Access::Full);
        assert_eq!(p.decide(3000, &[50]), Access::Full);
        assert_eq!(p.decide(2000, &[]), Access::ReadOnly);
        assert_eq!(p.decide(3000, &[60]), Access::ReadOnly);
        assert_eq!(p.decide(3000, &[61]), Access::Denied);
        assert_eq!(
            AccessPolicy::default().decide(65534, &[65534]),
            Access::Denied
        );
    }

    #[test]
    fn groups_are_looked_up_only_when_they_matter() {
        let p = policy();
        assert!(!p.needs_groups(0));
        assert!(!p.needs_groups(1001));
        assert!(p.needs_groups(3000));
        assert!(!AccessPolicy::default().needs_groups(3000));
    }

    #[test]
    fn read_only_commands() {
        let cmd = |name| Cmd::from_name(name).expect(name);
        for name in [
            "lookup",
            "count",
            "list",
            "whois",
            "watch",
            "ps",
            "wait_ready",
        ] {
            assert!(Access::ReadOnly.allows(cmd(name)), "{name}");
        }
        for name in [
            "start", "stop", "kill", "cast", "shutdown", "restart", "reload",
        ] {
            assert!(!Access::ReadOnly.allows(cmd(name)), "{name}");
        }
        for every in Cmd::ALL {
            assert!(Access::Full.allows(every));
            assert!(!Access::Denied.allows(every));
        }
    }
}
