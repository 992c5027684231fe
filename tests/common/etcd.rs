//! A test's own etcd (`/usr/bin/etcd`, Debian's `etcd-server`): free loopback ports, a
//! data directory of its own, killed by pid when dropped (also when the test panics).
//! Plus [`cluster_config`], the `[cluster]` config of a test node.

use super::dirs::TestDir;
use super::wait::wait_until;
use dynsup::cluster::etcd::Etcd;
use std::fs;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestEtcd {
    child: Child,
    pub url: String,
    pub dir: TestDir,
}

/// A port nobody listens on right now (the kernel's pick; etcd binds it a moment later,
/// and a clash makes [`TestEtcd::start`] try another pair).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

impl TestEtcd {
    #[track_caller]
    pub fn start() -> TestEtcd {
        let mut last = String::new();
        for _ in 0..5 {
            match TestEtcd::try_start() {
                Ok(etcd) => return etcd,
                Err(why) => last = why,
            }
        }
        panic!("cannot start etcd: {last}");
    }

    fn try_start() -> Result<TestEtcd, String> {
        let dir = TestDir::new();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = fs::File::create(dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new("/usr/bin/etcd")
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--listen-client-urls")
            .arg(&url)
            .arg("--advertise-client-urls")
            .arg(&url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("test={peer_url}"))
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run /usr/bin/etcd (apt-get install etcd-server): {e}"))?;
        let client_api = Etcd::new(std::slice::from_ref(&url), Duration::from_secs(2));
        let up = super::wait::try_wait_until(Duration::from_secs(20), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            client_api.range_prefix("/").ok().map(|_| true)
        });
        if up != Some(true) {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
            return Err(format!("etcd did not come up on {url}: {log}"));
        }
        Ok(TestEtcd { child, url, dir })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn client(&self) -> Etcd {
        Etcd::new(std::slice::from_ref(&self.url), Duration::from_secs(5))
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
