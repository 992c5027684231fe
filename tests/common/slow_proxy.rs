//! [`SlowProxy`]: a TCP relay in front of a real etcd that holds back the answer to the
//! first request whose bytes contain a pattern (say `/v3/kv/txn`) for a while. The
//! request itself goes through at once, so etcd commits it; the client gives up
//! waiting and cannot know whether it happened — a slow etcd under load, on demand.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SlowProxy {
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl SlowProxy {
    /// Relays 127.0.0.1:(a free port) to `target` ("http://127.0.0.1:PORT"); the first
    /// request containing `pattern` gets its answer `hold` late.
    pub fn start(target: &str, pattern: &'static [u8], hold: Duration) -> SlowProxy {
        let target = target
            .strip_prefix("http://")
            .expect("an http:// endpoint")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let held_once = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                relay(client, server, pattern, hold, held_once.clone());
            }
        });
        SlowProxy {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            port,
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Two threads: client → server (arms the hold when the pattern goes by, once per
/// proxy), server → client (waits out an armed hold before passing the answer on).
fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    pattern: &'static [u8],
    hold: Duration,
    held_once: Arc<AtomicBool>,
) {
    let hold_until: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let arm = hold_until.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match client_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let seen = buf[..n].windows(pattern.len()).any(|w| w == pattern);
            if seen && !held_once.swap(true, Ordering::SeqCst) {
                if let Ok(mut until) = arm.lock() {
                    *until = Some(Instant::now() + hold);
                }
            }
            if server_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let until = hold_until.lock().ok().and_then(|mut u| u.take());
            if let Some(until) = until {
                // The proxy's own behaviour (a slow link), not a test's wait.
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
    });
}
