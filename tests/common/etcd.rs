//! A test's own etcd (`/usr/bin/etcd`, Debian's `etcd-server`): free loopback ports, a
//! data directory of its own, killed by pid when dropped (also when the test panics).
//! Plus [`cluster_config`], the `[cluster]` config of a test node.

use super::dirs::{unique_name, TestDir};
use super::wait::wait_until;
use dynsup::cluster::etcd::Etcd;
use std::fs;
use std::net::TcpListener;
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
        let mut last = String::new();
        for _ in 0..5 {
            match TestEtcd::try_start(n) {
                Ok(etcd) => return etcd,
                Err(why) => last = why,
            }
        }
        panic!("cannot start etcd: {last}");
    }

    fn try_start(n: usize) -> Result<TestEtcd, String> {
        let dir = TestDir::new();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let urls: Vec<String> = ports
            .iter()
            .map(|(client, _)| format!("http://127.0.0.1:{client}"))
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
            let spawned = Command::new("/usr/bin/etcd")
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
            let client_api = Etcd::new(std::slice::from_ref(url), Duration::from_secs(2));
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
