//! The agent's side of its daemon's socket: the documented protocol, nothing private.
//! One connection per request (`client::exchange`), and one `watch` stream read by a
//! thread of its own.

use super::Msg;
use crate::protocol::{Event, Reply, Request, WorkerInfo};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Names per `stop` request: 128-byte names fit a request line 4 times over.
const STOP_CHUNK: usize = 100;

#[derive(Debug, Clone)]
pub struct DaemonLink {
    pub socket: PathBuf,
}

impl DaemonLink {
    pub fn request(&self, request: &Request) -> Result<Reply, String> {
        crate::client::exchange(&self.socket, request)
    }

    /// Start a cluster worker: under the daemon's dead man's switch (`fenced`).
    pub fn start(
        &self,
        name: &str,
        template: Option<String>,
        args: Vec<String>,
    ) -> Result<Reply, String> {
        self.request(&Request::Start {
            name: name.to_string(),
            template,
            args,
            command: None,
            env: Default::default(),
            fenced: true,
        })
    }

    /// Stop these workers together; `timeout_ms` overrides their templates'
    /// `shutdown_ms`. The names go [`STOP_CHUNK`] to a request (a request line is
    /// bounded), all pipelined on one connection, so every worker gets its stop signal
    /// in the same few loop turns. The replies' failures (a name not registered any
    /// more) are not errors here: the point is that none of them runs.
    pub fn stop(&self, names: Vec<String>, timeout_ms: Option<u64>) -> Result<(), String> {
        let requests: Vec<Request> = names
            .chunks(STOP_CHUNK)
            .map(|chunk| Request::Stop {
                name: None,
                names: chunk.to_vec(),
                template: None,
                all: false,
                timeout_ms,
            })
            .collect();
        if requests.is_empty() {
            return Ok(());
        }
        crate::client::exchange_all(&self.socket, &requests).map(|_| ())
    }

    /// Arm the daemon's dead man's switch for `within` (its `fenced` workers stopped
    /// then, SIGKILL after `kill_after`), or disarm it (`None`). Bounded by `patience`
    /// for the lease thread, which must never hang on a stuck daemon.
    pub fn fence(
        &self,
        within: Option<Duration>,
        kill_after: Duration,
        patience: Duration,
    ) -> Result<(), String> {
        let request = Request::Fence {
            within_ms: within.map(|d| (d.as_millis() as u64).max(1)),
            timeout_ms: Some(kill_after.as_millis() as u64),
        };
        let shown = self.socket.display();
        let mut stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("cannot connect to the daemon at {shown}: {e}"))?;
        let patience = patience.max(Duration::from_millis(10));
        stream
            .set_read_timeout(Some(patience))
            .and_then(|()| stream.set_write_timeout(Some(patience)))
            .map_err(|e| e.to_string())?;
        let mut line = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .map_err(|e| format!("cannot send to the daemon at {shown}: {e}"))?;
        let mut answer = String::new();
        BufReader::new(&stream)
            .read_line(&mut answer)
            .map_err(|e| format!("no answer from the daemon at {shown}: {e}"))?;
        let reply: Reply =
            serde_json::from_str(&answer).map_err(|e| format!("the daemon's reply: {e}"))?;
        match reply.ok {
            true => Ok(()),
            false => Err(reply.error.map_or("refused".to_string(), |e| e.message)),
        }
    }

    pub fn list(&self) -> Result<Vec<WorkerInfo>, String> {
        let reply = self.request(&Request::List {
            names: Vec::new(),
            template: None,
        })?;
        match (reply.ok, reply.workers) {
            (true, Some(workers)) => Ok(workers),
            _ => Err(reply
                .error
                .map_or("no workers in the reply".to_string(), |e| e.message)),
        }
    }

    /// Read the daemon's events on a thread until it closes the stream; then
    /// [`Msg::DaemonGone`]. The watch is up when this returns (no event is missed
    /// after it).
    pub fn watch(&self, tx: Sender<Msg>) -> Result<(), String> {
        let shown = self.socket.display().to_string();
        let mut stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("cannot connect to the daemon at {shown}: {e}"))?;
        let mut line =
            serde_json::to_vec(&Request::Watch { names: Vec::new() }).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .map_err(|e| format!("cannot send to the daemon at {shown}: {e}"))?;
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader
            .read_line(&mut first)
            .map_err(|e| format!("cannot read from the daemon at {shown}: {e}"))?;
        let reply: Reply =
            serde_json::from_str(&first).map_err(|e| format!("the daemon's watch reply: {e}"))?;
        if !reply.ok {
            return Err(reply
                .error
                .map_or("watch refused".to_string(), |e| e.message));
        }
        std::thread::Builder::new()
            .name("daemon-events".to_string())
            .spawn(move || {
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if let Ok(event) = serde_json::from_str::<Event>(&line) {
                        if tx.send(Msg::Daemon(event)).is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(Msg::DaemonGone);
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(())
    }
}
