//! Who may talk to the control socket: a pure decision on a peer's uid and groups.
//!
//! The socket file is 0600 by default, so the kernel already keeps others out; this is
//! the second lock, checked on every connection with `SO_PEERCRED` (which the peer
//! cannot forge), so that a socket shared with a group (`socket_mode = "0660"`) still
//! admits only the users and groups the config names.

use crate::protocol::Cmd;
use std::collections::HashSet;

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
        uid == 0 || uid == self.daemon_uid || self.allow_uids.contains(&uid)
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
        }
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
