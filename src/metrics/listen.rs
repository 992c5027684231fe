//! `[supervisor] metrics_listen`: where the metrics are served over HTTP, checked. Pure.
//!
//! An absolute path is a Unix socket; anything else must be an IP address and a port
//! (`127.0.0.1:9101`, `[::1]:9101`; no host names, so nothing is looked up). A
//! non-loopback address exposes the daemon's worker names to the network: it needs
//! `metrics_listen_public = true`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the HTTP endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsListen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsListen::Tcp(addr) => write!(f, "http://{addr}/metrics"),
            MetricsListen::Unix(path) => write!(f, "{} (GET /metrics)", path.display()),
        }
    }
}

/// `text` checked: a Unix socket path, or an address that is loopback unless `public`.
pub fn parse(text: &str, public: bool) -> Result<MetricsListen, String> {
    if text.starts_with('/') {
        if text.len() >= 108 {
            return Err(format!(
                "metrics_listen {text:?} is {} bytes long; Unix sockets allow at most 107",
                text.len()
            ));
        }
        return Ok(MetricsListen::Unix(PathBuf::from(text)));
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!(
            "metrics_listen {text:?} is neither an IP address with a port (such as \"127.0.0.1:9101\" or \"[::1]:9101\") nor an absolute Unix socket path"
        )
    })?;
    if !addr.ip().is_loopback() && !public {
        return Err(format!(
            "metrics_listen {text:?} is not a loopback address: anyone who can reach it would read the workers' names and counters; set metrics_listen_public = true to allow it"
        ));
    }
    Ok(MetricsListen::Tcp(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_paths_are_fine_other_addresses_need_the_opt_in() {
        assert_eq!(
            parse("127.0.0.1:9101", false),
            Ok(MetricsListen::Tcp("127.0.0.1:9101".parse().unwrap()))
        );
        assert!(parse("[::1]:0", false).is_ok());
        assert_eq!(
            parse("/run/dynsup/metrics.sock", false),
            Ok(MetricsListen::Unix("/run/dynsup/metrics.sock".into()))
        );
        let e = parse("0.0.0.0:9101", false).unwrap_err();
        assert!(e.contains("metrics_listen_public = true"), "{e}");
        assert!(parse("0.0.0.0:9101", true).is_ok());
        let e = parse("localhost:9101", false).unwrap_err();
        assert!(e.contains("neither an IP address"), "{e}");
        assert!(parse("127.0.0.1", false).is_err());
        assert!(parse(&format!("/{}", "x".repeat(120)), false).is_err());
    }
}
