//! The TLS side of `https` endpoints: the `[cluster] tls_*` PEM files read into the
//! rustls client config the etcd client ([`super::etcd::Etcd::with_tls`]) connects with.
//! Read when the agent or the CLI builds its client, never by the daemon (which checks
//! at config load only that the files exist).
//!
//! The server is verified against `tls_ca` only (not the system's or a bundled root
//! store): etcd's certificates come from a private CA almost always. The endpoint's
//! host, a DNS name or an IP address, must be among the certificate's subject
//! alternative names.

use super::{ClientCertFiles, TlsFiles};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// The client config of these files; the error names the key and the file at fault.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for ca in certificates("tls_ca", &files.ca)? {
        roots.add(ca).map_err(|e| {
            format!(
                "cluster: tls_ca {:?}: a certificate that cannot be a trust anchor: {e}",
                files.ca
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cluster: TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some(ClientCertFiles { cert, key }) => {
            let chain = certificates("tls_cert", cert)?;
            let bytes = read("tls_key", key)?;
            let private_key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
                format!("cluster: tls_key {key:?} has no usable PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): {e}")
            })?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| {
                    format!("cluster: tls_cert {cert:?} and tls_key {key:?} do not make a client certificate: {e}")
                })?
        }
    };
    Ok(Arc::new(config))
}

fn read(key: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cluster: {key} {path:?}: cannot read it: {e}"))
}

/// Every `CERTIFICATE` block of a PEM file: at least one.
fn certificates(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cluster: {key} {path:?}: not a readable PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "cluster: {key} {path:?} has no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &std::path::Path, ca: &[u8]) -> TlsFiles {
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca).expect("write");
        TlsFiles {
            ca: path.to_string_lossy().into_owned(),
            client: None,
        }
    }

    #[test]
    fn unusable_files_are_errors_naming_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("dynsup-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let e = client_config(&files_in(&dir, b"not a certificate\n")).expect_err("no PEM");
        assert!(
            e.starts_with("cluster: tls_ca \"") && e.contains("has no PEM certificate"),
            "{e}"
        );
        let garbled = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let e = client_config(&files_in(&dir, garbled)).expect_err("not DER");
        assert!(e.starts_with("cluster: tls_ca \""), "{e}");
        let missing = TlsFiles {
            ca: dir.join("absent.pem").to_string_lossy().into_owned(),
            client: None,
        };
        let e = client_config(&missing).expect_err("absent");
        assert!(
            e.contains("absent.pem") && e.contains("cannot read it"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
