//! A test's own etcd (`/usr/bin/etcd`, Debian's `etcd-server`): free loopback ports, a
//! data directory of its own, killed by pid when dropped (also when the test panics).
//! Plus [`cluster_config`], the `[cluster]` config of a test node, and [`TestPki`], the
//! certificates of an etcd that speaks TLS ([`TestEtcd::start_tls`]).

use super::dirs::{unique_name, TestDir};
use super::wait::wait_until;
use dynsup::cluster::etcd::Etcd;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestEtcd {
    child: Child,
    /// The client URL of the first member (the only one, unless started with
    /// [`TestEtcd::start_members`]).
    pub url: String,
    pub dir: TestDir,
    /// The other members of a multi-member cluster: their process and client URL.
    others: Vec<(Child, String)>,
    /// Members frozen by [`TestEtcd::freeze`]: the test's own client passes them over.
    frozen: std::cell::RefCell<Vec<usize>>,
    /// With [`TestEtcd::start_tls`]: its certificates (the test's client uses them).
    pub pki: Option<TestPki>,
}

/// A port nobody listens on right now (the kernel's pick; etcd binds it a moment later,
/// and a clash makes [`TestEtcd::start`] try another pair).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

/// `etcd.log`, `etcd1.log`, ...: member 0 keeps the single member's names.
fn member_file(stem: &str, i: usize, ext: &str) -> String {
    if i == 0 {
        format!("{stem}{ext}")
    } else {
        format!("{stem}{i}{ext}")
    }
}

impl TestEtcd {
    #[track_caller]
    pub fn start() -> TestEtcd {
        TestEtcd::start_members(1)
    }

    /// A cluster of `n` members on loopback, each with its own data directory (under
    /// this one's), once every member answers a linearizable read.
    #[track_caller]
    pub fn start_members(n: usize) -> TestEtcd {
        TestEtcd::start_as(n, false)
    }

    /// One member that speaks only TLS (`https://127.0.0.1:PORT`, a server certificate
    /// for the IP address 127.0.0.1) and requires a client certificate signed by its CA
    /// (`--client-cert-auth`): see [`TestEtcd::pki`].
    #[track_caller]
    pub fn start_tls() -> TestEtcd {
        TestEtcd::start_as(1, true)
    }

    #[track_caller]
    fn start_as(n: usize, tls: bool) -> TestEtcd {
        let mut last = String::new();
        for _ in 0..5 {
            match TestEtcd::try_start(n, tls) {
                Ok(etcd) => return etcd,
                Err(why) => last = why,
            }
        }
        panic!("cannot start etcd: {last}");
    }

    fn try_start(n: usize, tls: bool) -> Result<TestEtcd, String> {
        let dir = TestDir::new();
        let pki = if tls {
            Some(TestPki::generate(&dir.join("pki"))?)
        } else {
            None
        };
        let scheme = if tls { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let urls: Vec<String> = ports
            .iter()
            .map(|(client, _)| format!("{scheme}://127.0.0.1:{client}"))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let token = unique_name("etcd");
        let mut children: Vec<Child> = Vec::new();
        let kill_all = |children: &mut Vec<Child>| {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        };
        for (i, (_, peer)) in ports.iter().enumerate() {
            let url = &urls[i];
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = fs::File::create(dir.join(&member_file("etcd", i, ".log")))
                .map_err(|e| e.to_string())?;
            let mut etcd = Command::new("/usr/bin/etcd");
            if let Some(pki) = &pki {
                etcd.arg("--cert-file")
                    .arg(&pki.server_cert)
                    .arg("--key-file")
                    .arg(&pki.server_key)
                    .arg("--trusted-ca-file")
                    .arg(&pki.ca)
                    .arg("--client-cert-auth");
            }
            let spawned = etcd
                .arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(dir.join(&member_file("data", i, "")))
                .arg("--listen-client-urls")
                .arg(url)
                .arg("--advertise-client-urls")
                .arg(url)
                .arg("--listen-peer-urls")
                .arg(&peer_url)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer_url)
                .arg("--initial-cluster")
                .arg(initial.join(","))
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--log-level")
                .arg("warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn();
            match spawned {
                Ok(child) => children.push(child),
                Err(e) => {
                    kill_all(&mut children);
                    return Err(format!(
                        "cannot run /usr/bin/etcd (apt-get install etcd-server): {e}"
                    ));
                }
            }
        }
        for (i, url) in urls.iter().enumerate() {
            let client_api = Etcd::new(std::slice::from_ref(url), Duration::from_secs(2))
                .with_tls(pki.as_ref().map(TestPki::client_config));
            let up = super::wait::try_wait_until(Duration::from_secs(20), || {
                if children
                    .iter_mut()
                    .any(|c| matches!(c.try_wait(), Ok(Some(_))))
                {
                    return Some(false);
                }
                client_api.range_prefix("/").ok().map(|_| true)
            });
            if up != Some(true) {
                kill_all(&mut children);
                let log = fs::read_to_string(dir.join(&member_file("etcd", i, ".log")))
                    .unwrap_or_default();
                return Err(format!("etcd did not come up on {url}: {log}"));
            }
        }
        let mut members = children.into_iter().zip(urls);
        let Some((child, url)) = members.next() else {
            return Err("no member".to_string());
        };
        Ok(TestEtcd {
            child,
            url,
            dir,
            others: members.collect(),
            frozen: Default::default(),
            pki,
        })
    }

    /// Every member's client URL, in member order.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.url.clone())
            .chain(self.others.iter().map(|(_, url)| url.clone()))
            .collect()
    }

    /// Member `i`'s pid.
    pub fn member_pid(&self, i: usize) -> i32 {
        if i == 0 {
            return self.pid();
        }
        self.others[i - 1].0.id() as i32
    }

    /// The index of the member that leads now (per the first member that answers).
    pub fn leader(&self) -> Option<usize> {
        let urls = self.urls();
        let status = |url: &str| -> Option<serde_json::Value> {
            ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(2))
                .build()
                .post(&format!("{url}/v3/maintenance/status"))
                .send_string("{}")
                .ok()?
                .into_json()
                .ok()
        };
        let frozen = self.frozen.borrow().clone();
        let live: Vec<usize> = (0..urls.len()).filter(|i| !frozen.contains(i)).collect();
        let leader = live.iter().find_map(|&i| status(&urls[i]))?["leader"]
            .as_str()?
            .to_string();
        live.into_iter().find(|&i| {
            status(&urls[i]).is_some_and(|v| v["header"]["member_id"].as_str() == Some(&leader))
        })
    }

    /// SIGSTOP member `i` (a host that hangs); the test's client passes it over.
    pub fn freeze(&self, i: usize) {
        super::proc::send_signal(self.member_pid(i), nix::sys::signal::Signal::SIGSTOP);
        self.frozen.borrow_mut().push(i);
    }

    /// SIGCONT member `i`.
    pub fn thaw(&self, i: usize) {
        super::proc::send_signal(self.member_pid(i), nix::sys::signal::Signal::SIGCONT);
        self.frozen.borrow_mut().retain(|&j| j != i);
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A client of every member not frozen by the test.
    pub fn client(&self) -> Etcd {
        let frozen = self.frozen.borrow();
        let urls: Vec<String> = self
            .urls()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !frozen.contains(i))
            .map(|(_, url)| url)
            .collect();
        Etcd::new(&urls, Duration::from_secs(5))
            .with_tls(self.pki.as_ref().map(TestPki::client_config))
    }

    /// The certificates of an etcd started with [`TestEtcd::start_tls`].
    #[track_caller]
    pub fn pki(&self) -> &TestPki {
        self.pki
            .as_ref()
            .expect("an etcd started with TestEtcd::start_tls")
    }

    /// Waits until etcd answers again (after a SIGCONT, say).
    pub fn wait_answering(&self) {
        let client = self.client();
        wait_until(Duration::from_secs(20), "etcd to answer", || {
            client.range_prefix("/").ok()
        });
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        // A stopped etcd must be continued to die of anything but SIGKILL; SIGKILL it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for (child, _) in &mut self.others {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `[cluster]` section of a test node: this etcd, `node`, a namespace of the test's
/// own, a lease of `lease_ttl_ms`.
pub fn cluster_section(etcd: &TestEtcd, node: &str, namespace: &str, lease_ttl_ms: u64) -> String {
    cluster_section_at(
        std::slice::from_ref(&etcd.url),
        node,
        namespace,
        lease_ttl_ms,
    )
}

/// The `[cluster]` section of a test node with these `endpoints`, in this order.
pub fn cluster_section_at(
    endpoints: &[String],
    node: &str,
    namespace: &str,
    lease_ttl_ms: u64,
) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[cluster]\nendpoints = [{}]\nnode = \"{node}\"\nnamespace = \"{namespace}\"\nlease_ttl_ms = {lease_ttl_ms}\n",
        endpoints.join(", ")
    )
}

/// A loopback endpoint where no etcd answers: a port below 1024 that refuses
/// connections. Test etcds take their ports from the kernel's ephemeral range, so none
/// of them can start answering there while the test runs.
pub struct DeadEndpoint {
    pub url: String,
}

impl DeadEndpoint {
    pub fn new() -> DeadEndpoint {
        let port = (1..1024u16)
            .find(|port| {
                matches!(
                    std::net::TcpStream::connect(("127.0.0.1", *port)),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                )
            })
            .expect("a loopback port below 1024 that refuses connections");
        DeadEndpoint {
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Default for DeadEndpoint {
    fn default() -> Self {
        DeadEndpoint::new()
    }
}

/// The PEM files of a TLS test etcd, made with the `openssl` CLI (P-256 keys, valid two
/// days): a CA; etcd's server certificate for the IP address 127.0.0.1 (also good for
/// client auth: etcd's JSON gateway dials etcd with it); a client certificate; and
/// another CA, which signed none of them (a wrong `tls_ca`).
pub struct TestPki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub other_ca: String,
}

/// The extensions of each certificate, for `openssl -extensions`.
const PKI_EXTENSIONS: &str = "\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

impl TestPki {
    /// Makes them in `dir` (created).
    pub fn generate(dir: &Path) -> Result<TestPki, String> {
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
        let ext = path("extensions.cnf");
        fs::write(&ext, PKI_EXTENSIONS).map_err(|e| e.to_string())?;
        let openssl = |args: &[&str]| -> Result<(), String> {
            let output = Command::new("openssl")
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run openssl (apt-get install openssl): {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        };
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let self_signed = |name: &str, cn: &str| {
            let (key, pem) = (path(&format!("{name}.key")), path(&format!("{name}.pem")));
            let mut args = vec!["req", "-x509"];
            args.extend(new_key);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "2"]);
            args.extend(["-subj", cn, "-config", &ext, "-extensions", "ca"]);
            openssl(&args)
        };
        let signed = |name: &str, cn: &str, serial: &str| {
            let (key, csr, pem) = (
                path(&format!("{name}.key")),
                path(&format!("{name}.csr")),
                path(&format!("{name}.pem")),
            );
            let mut args = vec!["req", "-new"];
            args.extend(new_key);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", cn, "-config", &ext]);
            openssl(&args)?;
            let (ca, ca_key) = (path("ca.pem"), path("ca.key"));
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-set_serial",
                serial,
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
                "-extensions",
                name,
            ])
        };
        self_signed("ca", "/CN=dynsup-test-ca")?;
        self_signed("other-ca", "/CN=dynsup-test-other-ca")?;
        signed("server", "/CN=etcd-test", "2")?;
        signed("client", "/CN=dynsup-test-client", "3")?;
        Ok(TestPki {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            other_ca: path("other-ca.pem"),
        })
    }

    /// The TLS of a client that trusts the CA and shows the client certificate.
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        dynsup::cluster::tls::client_config(&dynsup::cluster::TlsFiles {
            ca: self.ca.clone(),
            client: Some(dynsup::cluster::ClientCertFiles {
                cert: self.client_cert.clone(),
                key: self.client_key.clone(),
            }),
        })
        .expect("the test's certificates make a TLS client config")
    }

    /// The `tls_` keys of a `[cluster]` section: `ca` as `tls_ca`, and the client
    /// certificate when `with_client_cert`.
    pub fn cluster_keys(&self, ca: &str, with_client_cert: bool) -> String {
        let mut keys = format!("tls_ca = \"{ca}\"\n");
        if with_client_cert {
            keys.push_str(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                self.client_cert, self.client_key
            ));
        }
        keys
    }
}
