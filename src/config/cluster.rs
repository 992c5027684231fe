//! `[cluster]`: its keys checked, and the agent boot child it adds (docs/CLUSTER.md).

use super::{Invalid, RawTemplate};
use crate::cluster::{
    ClientCertFiles, ClusterSettings, TlsFiles, AGENT_NAME, DEFAULT_LEASE_TTL_MS, DEFAULT_NAMESPACE,
};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    endpoints: Spanned<Vec<Spanned<String>>>,
    node: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    lease_ttl_ms: Option<Spanned<u64>>,
    tls_ca: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
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
    let endpoints_span = raw.endpoints.span();
    let mut endpoints = Vec::new();
    let mut first_scheme: Option<&str> = None;
    for endpoint in raw.endpoints.into_inner() {
        let (scheme, url) = check_endpoint(&endpoint)?;
        match first_scheme {
            None => first_scheme = Some(scheme),
            Some(first) if first != scheme => {
                return Err((
                    endpoint.span(),
                    format!("cluster: endpoint {:?} uses {scheme}:// where the first uses {first}://: every endpoint must use the same scheme (one etcd cluster, with TLS or without)", endpoint.get_ref()),
                ))
            }
            Some(_) => {}
        }
        endpoints.push(url);
    }
    let tls = tls_files(
        first_scheme == Some("https"),
        endpoints_span,
        raw.tls_ca,
        raw.tls_cert,
        raw.tls_key,
    )?;
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
        tls,
        node,
        namespace,
        lease_ttl_ms,
    })
}

/// An endpoint's scheme (`http` or `https`) and its URL without a trailing slash.
fn check_endpoint(endpoint: &Spanned<String>) -> Result<(&'static str, String), Invalid> {
    let text = endpoint.get_ref();
    let bad = |why: &str| Err((endpoint.span(), format!("cluster: endpoint {text:?} {why}")));
    let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = text.strip_prefix("http://") {
        ("http", rest)
    } else {
        return bad("must start with http:// or https:// (such as \"http://127.0.0.1:2379\")");
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains('/') || host_port.contains(char::is_whitespace) {
        return bad(&format!("must be {scheme}://HOST:PORT, without a path"));
    }
    Ok((scheme, format!("{scheme}://{host_port}")))
}

/// `tls_ca`, `tls_cert` and `tls_key`: for `https` endpoints, `tls_ca` and either both
/// of the others or neither; for `http` ones, none. Each an absolute path to a file
/// that exists now (its contents are read when a client is built: see
/// `crate::cluster::tls`).
fn tls_files(
    https: bool,
    endpoints_span: std::ops::Range<usize>,
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
) -> Result<Option<TlsFiles>, Invalid> {
    if !https {
        if let Some((name, value)) = [("tls_ca", &ca), ("tls_cert", &cert), ("tls_key", &key)]
            .into_iter()
            .find_map(|(name, value)| value.as_ref().map(|v| (name, v)))
        {
            return Err((
                value.span(),
                format!("cluster: {name} is set but the endpoints use http://: write them as https://HOST:PORT to talk TLS to etcd, or leave out the tls_ keys"),
            ));
        }
        return Ok(None);
    }
    let Some(ca) = ca else {
        return Err((
            endpoints_span,
            "cluster: https endpoints need tls_ca, the PEM file of the CA certificates that sign etcd's server certificate (for a publicly signed one, the system's bundle, such as \"/etc/ssl/certs/ca-certificates.crt\")".to_string(),
        ));
    };
    let ca = existing_file("tls_ca", &ca)?;
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), None) => {
            return Err((
                cert.span(),
                "cluster: tls_cert needs tls_key, the PEM file of its private key".to_string(),
            ))
        }
        (None, Some(key)) => return Err((
            key.span(),
            "cluster: tls_key needs tls_cert, the PEM file of the client certificate it goes with"
                .to_string(),
        )),
        (Some(cert), Some(key)) => Some(ClientCertFiles {
            cert: existing_file("tls_cert", &cert)?,
            key: existing_file("tls_key", &key)?,
        }),
    };
    Ok(Some(TlsFiles { ca, client }))
}

/// A path that must be absolute and name a file that exists.
fn existing_file(key: &str, path: &Spanned<String>) -> Result<String, Invalid> {
    let text = path.get_ref();
    if !text.starts_with('/') || text.contains('\0') {
        return Err((
            path.span(),
            format!("cluster: {key} {text:?} must be an absolute path"),
        ));
    }
    match std::fs::metadata(text) {
        Ok(meta) if meta.is_file() => Ok(text.clone()),
        Ok(_) => Err((
            path.span(),
            format!("cluster: {key} {text:?} is not a file"),
        )),
        Err(e) => Err((path.span(), format!("cluster: {key} {text:?}: {e}"))),
    }
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
        assert!(
            e.starts_with("t.toml:4:13: cluster: https endpoints need tls_ca"),
            "{e}"
        );
        let e = err("endpoints = [\"h:2379\"]\n");
        assert!(e.contains("must start with http:// or https://"), "{e}");
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

    /// A directory with `ca.pem`, `cert.pem` and `key.pem` (contents never read here:
    /// the config checks only that they exist).
    fn pem_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dynsup-config-tls-{}-{}",
            std::process::id(),
            crate::cluster::new_claim()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(file), "x").expect("write");
        }
        dir
    }

    #[test]
    fn https_endpoints_take_a_ca_and_optionally_a_client_certificate() {
        let dir = pem_dir();
        let d = dir.display();
        let config = parse(
            &format!("{T}[cluster]\nendpoints = [\"https://127.0.0.1:2379/\", \"https://e2:2379\"]\ntls_ca = \"{d}/ca.pem\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n"),
            "t.toml",
        )
        .expect("valid");
        let cluster = config.cluster.expect("[cluster]");
        assert_eq!(
            cluster.endpoints,
            ["https://127.0.0.1:2379", "https://e2:2379"]
        );
        let tls = cluster.tls.expect("tls");
        assert_eq!(tls.ca, format!("{d}/ca.pem"));
        let client = tls.client.expect("a client certificate");
        assert_eq!(
            (client.cert, client.key),
            (format!("{d}/cert.pem"), format!("{d}/key.pem"))
        );
        // The CA alone: the server verified, no client certificate.
        let config = parse(
            &format!("{T}[cluster]\nendpoints = [\"https://h:1\"]\ntls_ca = \"{d}/ca.pem\"\n"),
            "t.toml",
        )
        .expect("valid");
        assert_eq!(
            config.cluster.and_then(|c| c.tls).map(|t| t.client),
            Some(None)
        );
        // http: no TLS at all.
        let config = parse(
            &format!("{T}[cluster]\nendpoints = [\"http://h:1\"]\n"),
            "t.toml",
        )
        .expect("valid");
        assert_eq!(config.cluster.map(|c| c.tls), Some(None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_tls_settings_name_their_line_and_column() {
        let dir = pem_dir();
        let d = dir.display();
        let https = "endpoints = [\"https://h:1\"]\n";
        // A CA file that is not there.
        let e = err(&format!("{https}tls_ca = \"{d}/absent.pem\"\n"));
        assert!(
            e.starts_with(&format!(
                "t.toml:5:10: cluster: tls_ca \"{d}/absent.pem\": No such file"
            )),
            "{e}"
        );
        // A key file that is not there.
        let e = err(&format!(
            "{https}tls_ca = \"{d}/ca.pem\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/nokey.pem\"\n"
        ));
        assert!(
            e.starts_with(&format!(
                "t.toml:7:11: cluster: tls_key \"{d}/nokey.pem\": No such file"
            )),
            "{e}"
        );
        // One of the pair without the other: the error names the missing one.
        let e = err(&format!(
            "{https}tls_ca = \"{d}/ca.pem\"\ntls_cert = \"{d}/cert.pem\"\n"
        ));
        assert!(
            e.starts_with("t.toml:6:12: cluster: tls_cert needs tls_key"),
            "{e}"
        );
        let e = err(&format!(
            "{https}tls_ca = \"{d}/ca.pem\"\ntls_key = \"{d}/key.pem\"\n"
        ));
        assert!(
            e.starts_with("t.toml:6:11: cluster: tls_key needs tls_cert"),
            "{e}"
        );
        // Relative paths: whose directory would they be relative to?
        let e = err(&format!("{https}tls_ca = \"ca.pem\"\n"));
        assert!(
            e.contains("tls_ca \"ca.pem\" must be an absolute path"),
            "{e}"
        );
        // A directory is not a PEM file.
        let e = err(&format!("{https}tls_ca = \"{d}\"\n"));
        assert!(e.contains("is not a file"), "{e}");
        // Mixed schemes: refused at the first endpoint that differs.
        let e = err(&format!(
            "endpoints = [\"https://h:1\", \"http://h:2\"]\ntls_ca = \"{d}/ca.pem\"\n"
        ));
        assert!(
            e.starts_with("t.toml:4:29: cluster: endpoint \"http://h:2\" uses http:// where the first uses https://"),
            "{e}"
        );
        // tls_ keys with http endpoints: TLS the operator believes in but would not get.
        let e = err(&format!(
            "endpoints = [\"http://h:1\"]\ntls_ca = \"{d}/ca.pem\"\n"
        ));
        assert!(
            e.starts_with("t.toml:5:10: cluster: tls_ca is set but the endpoints use http://"),
            "{e}"
        );
        let e = err("endpoints = [\"https://h:1/v3\"]\n");
        assert!(
            e.contains("must be https://HOST:PORT, without a path"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
