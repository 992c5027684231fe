//! Cluster mode (`docs/CLUSTER.md`): one name, one process, anywhere in the fleet, on
//! etcd v3. The daemon knows nothing of it but the agent boot child the config adds
//! ([`AGENT_NAME`]); the networked parts run in other processes:
//!
//! | file | its one job |
//! |---|---|
//! | `mod.rs` | the settings, the etcd layout ([`Keys`]) and the values stored there |
//! | `etcd.rs` | the blocking client of etcd's JSON gateway |
//! | `tls.rs` | the rustls client config of `https` endpoints, from the `tls_*` PEM files |
//! | `placement.rs` | which node: least loaded for a start, rendezvous ranking for a failover (pure) |
//! | `agent/` | `dynsup cluster-agent`: the node's lease and fence (`lease.rs`), its daemon's socket (`daemon_link.rs`), acting on etcd's and the daemon's events (`mod.rs`) |
//! | `commands.rs` | the CLI's `--cluster` commands and `dynsup cluster ...` |

pub mod agent;
pub mod commands;
pub mod etcd;
pub mod placement;
pub mod tls;

use serde::{Deserialize, Serialize};

/// The boot child (and template) the config adds when it has `[cluster]`.
pub const AGENT_NAME: &str = "dynsup-cluster-agent";

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `http://host:port` or `https://host:port` (all one scheme), without a trailing
    /// slash.
    pub endpoints: Vec<String>,
    /// With `https` endpoints: the PEM files to verify etcd and to present to it.
    pub tls: Option<TlsFiles>,
    /// This node's name.
    pub node: String,
    /// The prefix of every key, starting with `/`, without a trailing one.
    pub namespace: String,
    /// The node's lease, a whole number of seconds in milliseconds.
    pub lease_ttl_ms: u64,
}

/// `[cluster] tls_ca`, `tls_cert`, `tls_key`: absolute paths, checked to exist when the
/// config is loaded and read when a client is built ([`tls::client_config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates etcd's server certificate must chain to.
    pub ca: String,
    /// The client certificate (chain) and its private key, for etcd's
    /// `--client-cert-auth`.
    pub client: Option<ClientCertFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert: String,
    pub key: String,
}

pub const DEFAULT_NAMESPACE: &str = "/dynsup/default";
pub const DEFAULT_LEASE_TTL_MS: u64 = 3000;

impl ClusterSettings {
    pub fn keys(&self) -> Keys {
        Keys {
            namespace: self.namespace.clone(),
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        (self.lease_ttl_ms / 1000) as i64
    }
}

/// The host's name (the default `node`): `/proc/sys/kernel/hostname`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The etcd layout (see docs/CLUSTER.md, "The etcd layout").
#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

/// What a key of the namespace is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Node(&'a str),
    Spec(&'a str),
    Owner(&'a str),
    Other,
}

impl Keys {
    pub fn new(namespace: &str) -> Keys {
        Keys {
            namespace: namespace.to_string(),
        }
    }
    pub fn all(&self) -> String {
        format!("{}/", self.namespace)
    }
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.namespace)
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.namespace)
    }
    pub fn specs(&self) -> String {
        format!("{}/spec/", self.namespace)
    }
    pub fn spec(&self, name: &str) -> String {
        format!("{}/spec/{name}", self.namespace)
    }
    pub fn owners(&self) -> String {
        format!("{}/owner/", self.namespace)
    }
    pub fn owner(&self, name: &str) -> String {
        format!("{}/owner/{name}", self.namespace)
    }

    pub fn kind<'a>(&self, key: &'a str) -> KeyKind<'a> {
        let Some(rest) = key
            .strip_prefix(self.namespace.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return KeyKind::Other;
        };
        if let Some(node) = rest.strip_prefix("nodes/") {
            KeyKind::Node(node)
        } else if let Some(name) = rest.strip_prefix("spec/") {
            KeyKind::Spec(name)
        } else if let Some(name) = rest.strip_prefix("owner/") {
            KeyKind::Owner(name)
        } else {
            KeyKind::Other
        }
    }
}

/// `NS/nodes/NODE`: a live node (bound to its lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeValue {
    pub node: String,
    pub lease: i64,
    pub since_ms: u64,
    #[serde(default)]
    pub draining: bool,
    /// The pid of the daemon whose agent joined: only an agent of the same daemon
    /// adopts the lease after a restart.
    #[serde(default)]
    pub daemon_pid: u32,
}

/// `NS/spec/NAME`: a cluster worker; outlives every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecValue {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub claim: String,
}

/// What the owner of a name is doing with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerState {
    /// Claimed for the node; its agent has not started it yet.
    Assigned,
    Running,
    Restarting,
    Failed,
    /// The node could not start it (`error` says why); the claim is being rolled back.
    Refused,
}

impl OwnerState {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Assigned => "assigned",
            OwnerState::Running => "running",
            OwnerState::Restarting => "restarting",
            OwnerState::Failed => "failed",
            OwnerState::Refused => "refused",
        }
    }
}

/// `NS/owner/NAME`: who holds the name (bound to that node's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerValue {
    pub node: String,
    pub claim: String,
    pub state: OwnerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// During a drain: the node the name is moving from (its copy runs until this one
    /// is running and ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `refused`: the daemon's error kind (`unknown_template`, ...) and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A value read back from etcd, or `None` when it is not ours to read.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A claim id nobody else picks: this process, the time, and a counter.
pub fn new_claim() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_their_namespace() {
        let keys = Keys::new("/dynsup/prod");
        assert_eq!(keys.kind(&keys.node("a")), KeyKind::Node("a"));
        assert_eq!(keys.kind(&keys.spec("g:1")), KeyKind::Spec("g:1"));
        assert_eq!(keys.kind(&keys.owner("g")), KeyKind::Owner("g"));
        assert_eq!(keys.kind("/dynsup/production/spec/x"), KeyKind::Other);
        assert_eq!(keys.kind("/dynsup/prod/other/x"), KeyKind::Other);
    }

    #[test]
    fn owner_values_round_trip() {
        let owner = OwnerValue {
            node: "a".into(),
            claim: new_claim(),
            state: OwnerState::Running,
            pid: Some(42),
            restart: Some("permanent".into()),
            from: None,
            kind: None,
            error: None,
        };
        let text = String::from_utf8(encode(&owner)).expect("utf-8");
        assert!(text.contains("\"state\":\"running\""), "{text}");
        assert_eq!(decode::<OwnerValue>(text.as_bytes()), Some(owner));
        assert_ne!(new_claim(), new_claim());
    }
}
