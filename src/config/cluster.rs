//! `[cluster]`: its keys checked, and the agent boot child it adds (docs/CLUSTER.md).

use super::{Invalid, RawTemplate};
use crate::cluster::{ClusterSettings, AGENT_NAME, DEFAULT_LEASE_TTL_MS, DEFAULT_NAMESPACE};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    endpoints: Spanned<Vec<Spanned<String>>>,
    node: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    lease_ttl_ms: Option<Spanned<u64>>,
}

/// The longest lease: ten minutes (a node lost is noticed after it).
const MAX_LEASE_TTL_MS: u64 = 600_000;

pub(super) fn validate(raw: Spanned<RawCluster>) -> Result<ClusterSettings, Invalid> {
    let raw = raw.into_inner();
    if raw.endpoints.get_ref().is_empty() {
        return Err((
            raw.endpoints.span(),
            "cluster: endpoints must name at least one etcd endpoint, such as \"http://127.0.0.1:2379\"".to_string(),
        ));
    }
    let mut endpoints = Vec::new();
    for endpoint in raw.endpoints.into_inner() {
        endpoints.push(check_endpoint(&endpoint)?);
    }
    let node = match raw.node {
        Some(node) => {
            crate::core::validate_name(node.get_ref())
                .map_err(|msg| (node.span(), format!("cluster: node: {msg}")))?;
            node.into_inner()
        }
        None => crate::cluster::hostname(),
    };
    let namespace = match raw.namespace {
        Some(ns) => {
            let text = ns.get_ref();
            let ok = text.starts_with('/')
                && text.len() > 1
                && !text.ends_with('/')
                && !text.contains("//")
                && text.chars().all(|c| !c.is_control() && c != ' ');
            if !ok {
                return Err((
                    ns.span(),
                    format!("cluster: namespace {text:?} must be a key prefix such as \"/dynsup/prod\": starting with /, not ending with /, without spaces or empty parts"),
                ));
            }
            ns.into_inner()
        }
        None => DEFAULT_NAMESPACE.to_string(),
    };
    let lease_ttl_ms = match raw.lease_ttl_ms {
        Some(ttl) => {
            let ms = *ttl.get_ref();
            if !(2000..=MAX_LEASE_TTL_MS).contains(&ms) || ms % 1000 != 0 {
                return Err((
                    ttl.span(),
                    format!("cluster: lease_ttl_ms must be a whole number of seconds from 2000 to {MAX_LEASE_TTL_MS} (etcd's leases count whole seconds); got {ms}"),
                ));
            }
            ms
        }
        None => DEFAULT_LEASE_TTL_MS,
    };
    Ok(ClusterSettings {
        endpoints,
        node,
        namespace,
        lease_ttl_ms,
    })
}

fn check_endpoint(endpoint: &Spanned<String>) -> Result<String, Invalid> {
    let text = endpoint.get_ref();
    let bad = |why: &str| Err((endpoint.span(), format!("cluster: endpoint {text:?} {why}")));
    if text.starts_with("https://") {
        return bad("uses https, which this version does not speak: dynsup talks to etcd's JSON gateway over plain http (keep etcd on loopback or a trusted network)");
    }
    let Some(rest) = text.strip_prefix("http://") else {
        return bad("must start with http:// (such as \"http://127.0.0.1:2379\")");
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains('/') || host_port.contains(char::is_whitespace) {
        return bad("must be http://HOST:PORT, without a path");
    }
    Ok(format!("http://{host_port}"))
}

/// The agent's template: `dynsup --config FILE cluster-agent`, restarted whatever its
/// exit, never escalating (its own limit gives up never: `"infinity"`), backing off
/// from 100 ms to 2 s, given 15 s to leave (it waits for the node's cluster workers to
/// be stopped before it revokes the lease).
pub(super) fn agent_template(config_file: &str) -> RawTemplate {
    let text = format!(
        "command = [\"dynsup\", \"--config\", {file}, \"cluster-agent\"]\n\
         restart = \"permanent\"\n\
         shutdown_ms = 15000\n\
         on_limit = \"give_up\"\n\
         max_restarts = \"infinity\"\n\
         backoff = {{ initial_ms = 100, max_ms = 2000, multiplier = 2.0 }}\n",
        file = toml_string(config_file)
    );
    toml::from_str(&text).expect("the agent's template is valid TOML")
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

pub(super) fn name_taken_message() -> String {
    format!("{AGENT_NAME:?} is the cluster agent's name: with [cluster], no template or child may use it")
}

#[cfg(test)]
mod tests {
    use crate::cluster::AGENT_NAME;
    use crate::config::parse;

    const T: &str = "[templates.w]\ncommand = [\"x\"]\n";

    fn err(cluster: &str) -> String {
        match parse(&format!("{T}[cluster]\n{cluster}"), "t.toml") {
            Ok(_) => panic!("accepted: {cluster}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_cluster_section_adds_the_agent_and_takes_defaults() {
        let config = parse(
            &format!("{T}[cluster]\nendpoints = [\"http://127.0.0.1:2379/\"]\nnode = \"a\"\n"),
            "/etc/d.toml",
        )
        .expect("valid");
        let cluster = config.cluster.expect("[cluster]");
        assert_eq!(cluster.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(
            (cluster.node.as_str(), cluster.namespace.as_str()),
            ("a", "/dynsup/default")
        );
        assert_eq!(cluster.lease_ttl_ms, 3000);
        let agent = &config.templates[AGENT_NAME];
        assert_eq!(
            agent.command,
            ["dynsup", "--config", "/etc/d.toml", "cluster-agent"].map(String::from)
        );
        assert_eq!(agent.restart, crate::core::RestartType::Permanent);
        assert!(config.children.iter().any(|c| c.name == AGENT_NAME));
        // Without [cluster], nothing of it.
        let plain = parse(T, "t.toml").expect("valid");
        assert!(plain.cluster.is_none() && !plain.templates.contains_key(AGENT_NAME));
    }

    #[test]
    fn bad_cluster_values_name_their_line_and_column() {
        let e = err("endpoints = [\"http://h:1\"]\nlease_ttl_ms = 2500\n");
        assert!(
            e.starts_with("t.toml:5:16: cluster: lease_ttl_ms must be a whole number of seconds"),
            "{e}"
        );
        let e = err("endpoints = [\"http://h:1\"]\nlease_ttl_ms = 1000\n");
        assert!(e.contains("from 2000"), "{e}");
        let e = err("endpoints = []\n");
        assert!(
            e.starts_with("t.toml:4:13: cluster: endpoints must name at least one"),
            "{e}"
        );
        let e = err("endpoints = [\"https://h:1\"]\n");
        assert!(e.starts_with("t.toml:4:14:") && e.contains("https"), "{e}");
        let e = err("endpoints = [\"h:2379\"]\n");
        assert!(e.contains("must start with http://"), "{e}");
        let e = err("endpoints = [\"http://h:1/v3\"]\n");
        assert!(e.contains("without a path"), "{e}");
        let e = err("endpoints = [\"http://h:1\"]\nnode = \"a b\"\n");
        assert!(e.starts_with("t.toml:5:8: cluster: node:"), "{e}");
        let e = err("endpoints = [\"http://h:1\"]\nnamespace = \"dynsup/\"\n");
        assert!(
            e.starts_with("t.toml:5:13: cluster: namespace \"dynsup/\""),
            "{e}"
        );
        let e = err("endpoints = [\"http://h:1\"]\nttl = 3\n");
        assert!(e.contains("unknown field `ttl`"), "{e}");
        let e = match parse(
            &format!("{T}[[children]]\nname = \"{AGENT_NAME}\"\n[cluster]\nendpoints = [\"http://h:1\"]\n"),
            "t.toml",
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("is the cluster agent's name"), "{e}");
    }
}
