//! A small blocking client of etcd v3's JSON gRPC gateway (`/v3/...`, etcd 3.4+): the
//! calls cluster mode needs, over HTTP or HTTPS with `ureq` (TLS: rustls, configured by
//! [`super::tls`] and given with [`Etcd::with_tls`]). Keys and values are base64 on
//! the wire, 64-bit integers are strings; both are hidden here.
//!
//! Used by the agent process and the CLI only: never by the daemon's loop.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sent with every call and watch: etcd's "require leader" metadata (what its Go
/// client's `WithRequireLeader` sets), through the gateway's `Grpc-Metadata-` headers.
/// A member that has lost its leader (partitioned from the others) then answers 503
/// "no leader" at once instead of holding the call until its own timeout, and closes
/// a watch instead of keeping it open and silent.
const REQUIRE_LEADER: (&str, &str) = ("Grpc-Metadata-hasleader", "true");

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No endpoint answered (connection refused, timed out, reset).
    Unreachable(String),
    /// etcd answered with an error (`code` is gRPC's: 5 not found, ...).
    Server { code: i64, message: String },
    /// The answer could not be read.
    Protocol(String),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Unreachable(why) => write!(f, "etcd is unreachable: {why}"),
            EtcdError::Server { message, .. } => write!(f, "etcd refused: {message}"),
            EtcdError::Protocol(why) => write!(f, "unexpected answer from etcd: {why}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, EtcdError>;

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A `range` answer: the keys, and the store's revision when it was read.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

/// One comparison of a transaction (all are `EQUAL`, except `LeaseIs`... also equal).
#[derive(Debug, Clone)]
pub enum Compare {
    /// 0: the key does not exist.
    CreateRevision(String, i64),
    ModRevision(String, i64),
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: i64,
    },
    Delete(String),
    Get(String),
}

/// A transaction's outcome: which branch ran, its revision, and the keys of each of
/// its `Get`s (in order).
#[derive(Debug, Clone, Default)]
pub struct TxnResult {
    pub succeeded: bool,
    pub revision: i64,
    pub gets: Vec<Vec<Kv>>,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Kv),
    Delete { key: String, mod_revision: i64 },
}

/// One message of a watch stream.
#[derive(Debug, Clone, Default)]
pub struct WatchBatch {
    pub revision: i64,
    pub changes: Vec<Change>,
    /// The watch was cancelled (its start revision was compacted, say): start again
    /// from a fresh range.
    pub canceled: bool,
}

/// A client: the endpoints, tried from the last one that answered.
#[derive(Clone)]
pub struct Etcd {
    endpoints: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    agent: ureq::Agent,
    /// For `https` endpoints: the CA to verify etcd with, and the client certificate.
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    /// Whether `timeout` bounds a call over all its endpoints (else each endpoint).
    timeout_is_total: bool,
}

impl Etcd {
    /// `timeout` bounds every call but a watch (whose stream stays open).
    pub fn new(endpoints: &[String], timeout: Duration) -> Etcd {
        let agent = agent_builder(timeout, None)
            .max_idle_connections_per_host(4)
            .build();
        Etcd {
            endpoints: Arc::new(
                endpoints
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_string())
                    .collect(),
            ),
            current: Arc::new(AtomicUsize::new(0)),
            agent,
            tls: None,
            timeout,
            timeout_is_total: false,
        }
    }

    /// This client, connecting to `https` endpoints with `tls` (its calls and its
    /// watches); `None` leaves it as it is.
    pub fn with_tls(self, tls: Option<Arc<rustls::ClientConfig>>) -> Etcd {
        let Some(tls) = tls else { return self };
        Etcd {
            agent: agent_builder(self.timeout, Some(&tls))
                .max_idle_connections_per_host(4)
                .build(),
            tls: Some(tls),
            ..self
        }
    }

    /// A client whose calls take at most `total` over all the endpoints they try, the
    /// endpoints not tried yet sharing what is left (the CLI's: with a member that
    /// hangs listed first, a command waits a third of `total` for it, not all).
    pub fn new_within(endpoints: &[String], total: Duration) -> Etcd {
        Etcd {
            timeout_is_total: true,
            ..Etcd::new(endpoints, total)
        }
    }

    /// The index (in the configured order) of the endpoint calls go to first: the last
    /// one that answered.
    pub fn current_endpoint(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The endpoint at `index`, as configured.
    pub fn endpoint(&self, index: usize) -> &str {
        self.endpoints.get(index).map_or("", String::as_str)
    }

    /// POST `body` to `path` on the first endpoint that answers; etcd's JSON answer.
    fn call(&self, path: &str, body: Value, timeout: Duration) -> Result<Value> {
        let budget = if self.timeout_is_total {
            Budget::Until(Instant::now() + timeout)
        } else {
            Budget::Each(timeout)
        };
        self.call_within(path, body, budget)
    }

    /// [`Etcd::call`] with a time budget. An endpoint that does not answer in its
    /// time, or answers that it cannot serve now (503/504: no leader, its own request
    /// timed out), is passed over for the next; the first that answers becomes the
    /// current one. A call that timed out or got a 503 may still have been carried
    /// out (etcd's own rule): callers treat such an outcome as unknown.
    fn call_within(&self, path: &str, body: Value, budget: Budget) -> Result<Value> {
        let n = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed);
        let mut last = EtcdError::Unreachable("no endpoint".to_string());
        for i in 0..n {
            let index = (first + i) % n;
            let Some(endpoint) = self.endpoints.get(index) else {
                break;
            };
            let timeout = match budget {
                Budget::Each(timeout) => timeout,
                // What is left, shared by the endpoints not tried yet: one that hangs
                // leaves the others their turn before the deadline.
                Budget::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    (left / (n - i) as u32).max(Duration::from_millis(10))
                }
            };
            let url = format!("{endpoint}{path}");
            match self
                .agent
                .post(&url)
                .set(REQUIRE_LEADER.0, REQUIRE_LEADER.1)
                .timeout(timeout)
                .send_json(&body)
            {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    // Read whole, then parsed from the slice: serde_json's reader
                    // path tracks lines and columns byte by byte, several times slower
                    // on a range of thousands of keys.
                    let mut body = Vec::new();
                    response
                        .into_reader()
                        .read_to_end(&mut body)
                        .map_err(|e| EtcdError::Unreachable(format!("{endpoint}: {e}")))?;
                    return serde_json::from_slice::<Value>(&body)
                        .map_err(|e| EtcdError::Protocol(e.to_string()));
                }
                Err(ureq::Error::Status(status @ (503 | 504), response)) => {
                    // This member cannot serve now; another may.
                    let why = status_error(status, response);
                    last = EtcdError::Unreachable(format!("{endpoint}: {why}"));
                }
                Err(ureq::Error::Status(status, response)) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Err(status_error(status, response));
                }
                Err(ureq::Error::Transport(t)) => {
                    last = self.transport_error(endpoint, &t);
                }
            }
        }
        Err(last)
    }

    /// Every key with this prefix (`prefix` itself ends in `/`), sorted.
    pub fn range_prefix(&self, prefix: &str) -> Result<Range> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))});
        let answer = self.call("/v3/kv/range", body, self.timeout)?;
        parse_range(&answer)
    }

    /// One key.
    pub fn get(&self, key: &str) -> Result<Option<Kv>> {
        let answer = self.call(
            "/v3/kv/range",
            json!({"key": b64(key.as_bytes())}),
            self.timeout,
        )?;
        Ok(parse_range(&answer)?.kvs.into_iter().next())
    }

    /// `if every compare then success else failure`, in one revision.
    pub fn txn(&self, compare: &[Compare], success: &[Op], failure: &[Op]) -> Result<TxnResult> {
        let compare: Vec<Value> = compare.iter().map(compare_json).collect();
        let success: Vec<Value> = success.iter().map(op_json).collect();
        let failure: Vec<Value> = failure.iter().map(op_json).collect();
        let answer = self.call(
            "/v3/kv/txn",
            json!({"compare": compare, "success": success, "failure": failure}),
            self.timeout,
        )?;
        let succeeded = answer["succeeded"].as_bool().unwrap_or(false);
        let revision = int(&answer["header"]["revision"]);
        let mut gets = Vec::new();
        if let Some(responses) = answer["responses"].as_array() {
            for response in responses {
                if let Some(range) = response.get("response_range") {
                    gets.push(parse_range(range)?.kvs);
                }
            }
        }
        Ok(TxnResult {
            succeeded,
            revision,
            gets,
        })
    }

    /// Put without conditions.
    pub fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        let mut body = json!({"key": b64(key.as_bytes()), "value": b64(value)});
        if lease != 0 {
            body["lease"] = Value::String(lease.to_string());
        }
        let answer = self.call("/v3/kv/put", body, self.timeout)?;
        Ok(int(&answer["header"]["revision"]))
    }

    /// Delete every key with this prefix.
    pub fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))});
        self.call("/v3/kv/deleterange", body, self.timeout)
            .map(|_| ())
    }

    /// A new lease of `ttl_s` seconds: its id.
    pub fn grant(&self, ttl_s: i64) -> Result<i64> {
        let answer = self.call("/v3/lease/grant", json!({"TTL": ttl_s}), self.timeout)?;
        if let Some(error) = answer["error"].as_str().filter(|e| !e.is_empty()) {
            return Err(EtcdError::Server {
                code: 0,
                message: error.to_string(),
            });
        }
        match int(&answer["ID"]) {
            0 => Err(EtcdError::Protocol(
                "lease/grant answered no ID".to_string(),
            )),
            id => Ok(id),
        }
    }

    /// Renew a lease: its TTL in seconds after the renewal, 0 when it is gone. Every
    /// endpoint is tried before `deadline` (the fence's), each given its share of the
    /// time left, so that one member that hangs cannot use all of it.
    pub fn keepalive(&self, lease: i64, deadline: Instant) -> Result<i64> {
        let answer = self.call_within(
            "/v3/lease/keepalive",
            json!({"ID": lease.to_string()}),
            Budget::Until(deadline),
        )?;
        if let Some(error) = answer.get("error") {
            return Err(server_error(error));
        }
        Ok(int(&answer["result"]["TTL"]).max(0))
    }

    /// How long a lease has left, in seconds; `None` when it is gone.
    pub fn time_to_live(&self, lease: i64) -> Result<Option<i64>> {
        let answer = self.call(
            "/v3/lease/timetolive",
            json!({"ID": lease.to_string()}),
            self.timeout,
        )?;
        Ok(Some(int(&answer["TTL"])).filter(|ttl| *ttl > 0))
    }

    /// Revoke a lease: every key bound to it is deleted at once.
    pub fn revoke(&self, lease: i64) -> Result<()> {
        match self.call(
            "/v3/lease/revoke",
            json!({"ID": lease.to_string()}),
            self.timeout,
        ) {
            Ok(_) => Ok(()),
            // Already gone: what a revoke wants.
            Err(EtcdError::Server { code: 5, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Watch every key with this prefix from `start_revision` on. The stream has no
    /// read timeout: it stays open until etcd closes it or the reader is dropped.
    pub fn watch_prefix(&self, prefix: &str, start_revision: i64) -> Result<WatchStream> {
        self.watch(json!({"create_request": {
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }}))
    }

    /// Watch one key from `start_revision` on.
    pub fn watch_key(&self, key: &str, start_revision: i64) -> Result<WatchStream> {
        self.watch(json!({"create_request": {
            "key": b64(key.as_bytes()),
            "start_revision": start_revision.to_string(),
        }}))
    }

    fn watch(&self, body: Value) -> Result<WatchStream> {
        let n = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed);
        let streaming = agent_builder(self.timeout, self.tls.as_ref()).build();
        let mut last = EtcdError::Unreachable("no endpoint".to_string());
        for i in 0..n {
            let index = (first + i) % n;
            let Some(endpoint) = self.endpoints.get(index) else {
                break;
            };
            match streaming
                .post(&format!("{endpoint}/v3/watch"))
                .set(REQUIRE_LEADER.0, REQUIRE_LEADER.1)
                .send_json(&body)
            {
                Ok(response) => {
                    // Calls follow where the watch could open (and the agent's watch
                    // follows its calls: the two agree).
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(WatchStream {
                        lines: BufReader::new(Box::new(response.into_reader())),
                        endpoint: index,
                    });
                }
                Err(ureq::Error::Status(status @ (503 | 504), response)) => {
                    let why = status_error(status, response);
                    last = EtcdError::Unreachable(format!("{endpoint}: {why}"));
                }
                Err(ureq::Error::Status(status, response)) => {
                    return Err(status_error(status, response));
                }
                Err(ureq::Error::Transport(t)) => {
                    last = self.transport_error(endpoint, &t);
                }
            }
        }
        Err(last)
    }

    /// A call that did not get an answer from `endpoint`. Over TLS without a client
    /// certificate, a session that etcd ends after the handshake (an alert, or the
    /// connection closed under the request) is most likely etcd's
    /// `--client-cert-auth` refusing it: the error says so.
    fn transport_error(&self, endpoint: &str, t: &ureq::Transport) -> EtcdError {
        let without_client_cert = self
            .tls
            .as_ref()
            .is_some_and(|tls| !tls.client_auth_cert_resolver.has_certs());
        // After the handshake (a failed handshake is `ConnectionFailed`), and not a
        // timeout: an alert (InvalidData), or the connection gone under the request.
        let session_ended = t.kind() == ureq::ErrorKind::Io
            && std::error::Error::source(t)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .is_some_and(|e| {
                    use std::io::ErrorKind::*;
                    matches!(
                        e.kind(),
                        InvalidData | BrokenPipe | ConnectionReset | UnexpectedEof
                    )
                });
        let hint = if without_client_cert && session_ended {
            " (over TLS without a client certificate: if etcd runs with --client-cert-auth, set tls_cert and tls_key)"
        } else {
            ""
        };
        EtcdError::Unreachable(format!("{endpoint}: {t}{hint}"))
    }
}

/// An agent that gives up connecting after `timeout`, speaking TLS with `tls` to `https`
/// URLs.
fn agent_builder(timeout: Duration, tls: Option<&Arc<rustls::ClientConfig>>) -> ureq::AgentBuilder {
    let builder = ureq::AgentBuilder::new().timeout_connect(timeout);
    match tls {
        Some(tls) => builder.tls_config(tls.clone()),
        None => builder,
    }
}

/// How long a call may take: each endpoint tried, or all of them together.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Each(Duration),
    Until(Instant),
}

/// An open watch: one [`WatchBatch`] per message etcd sends.
pub struct WatchStream {
    lines: BufReader<Box<dyn Read + Send + Sync + 'static>>,
    /// The index of the endpoint it is open on.
    pub endpoint: usize,
}

impl WatchStream {
    /// The next batch; `None` when etcd closed the stream.
    pub fn next_batch(&mut self) -> Result<Option<WatchBatch>> {
        loop {
            let mut line = String::new();
            let n = self
                .lines
                .read_line(&mut line)
                .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            if line.trim().is_empty() {
                continue;
            }
            let message: Value =
                serde_json::from_str(&line).map_err(|e| EtcdError::Protocol(e.to_string()))?;
            if let Some(error) = message.get("error") {
                return Err(server_error(error));
            }
            let result = &message["result"];
            let mut batch = WatchBatch {
                revision: int(&result["header"]["revision"]),
                changes: Vec::new(),
                canceled: result["canceled"].as_bool().unwrap_or(false),
            };
            if let Some(events) = result["events"].as_array() {
                for event in events {
                    let kv = parse_kv(&event["kv"])?;
                    if event["type"].as_str() == Some("DELETE") {
                        batch.changes.push(Change::Delete {
                            key: kv.key,
                            mod_revision: kv.mod_revision,
                        });
                    } else {
                        batch.changes.push(Change::Put(kv));
                    }
                }
            }
            return Ok(Some(batch));
        }
    }
}

/// The end of a prefix range: the prefix with its last byte incremented.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): to the end of the keyspace.
    vec![0]
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// An integer that etcd writes as a string (int64) or a number; absent is 0.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// An HTTP error status: etcd's JSON error (the gateway's chunked body may end in
/// trailers a strict reader trips on, so only its first JSON value is read), else the
/// status itself (404 is gRPC's "not found", 5).
fn status_error(status: u16, response: ureq::Response) -> EtcdError {
    let mut text = String::new();
    let _ = response
        .into_reader()
        .take(64 * 1024)
        .read_to_string(&mut text);
    let answer = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .next()
        .and_then(|v| v.ok())
        .unwrap_or(Value::Null);
    match server_error(&answer) {
        EtcdError::Server { code: 0, message } if message == "no message" => EtcdError::Server {
            code: if status == 404 { 5 } else { 0 },
            message: format!("HTTP status {status}: {}", text.trim()),
        },
        error => error,
    }
}

fn server_error(answer: &Value) -> EtcdError {
    // A streaming call's error (keepalive, watch) is an object of its own:
    // `{"error": {"grpc_code": 14, "message": "etcdserver: no leader", ...}}`.
    if answer["error"].is_object() {
        return server_error(&answer["error"]);
    }
    if let Some(code) = answer.get("grpc_code") {
        return EtcdError::Server {
            code: int(code),
            message: answer["message"]
                .as_str()
                .unwrap_or("no message")
                .to_string(),
        };
    }
    let message = answer["message"]
        .as_str()
        .or_else(|| answer["error"].as_str())
        .unwrap_or("no message")
        .to_string();
    EtcdError::Server {
        code: int(&answer["code"]),
        message,
    }
}

fn parse_kv(kv: &Value) -> Result<Kv> {
    let decode = |field: &str| -> Result<Vec<u8>> {
        match kv[field].as_str() {
            Some(text) => B64
                .decode(text)
                .map_err(|e| EtcdError::Protocol(format!("{field}: {e}"))),
            None => Ok(Vec::new()),
        }
    };
    let key = String::from_utf8(decode("key")?)
        .map_err(|_| EtcdError::Protocol("a key that is not UTF-8".to_string()))?;
    Ok(Kv {
        key,
        value: decode("value")?,
        create_revision: int(&kv["create_revision"]),
        mod_revision: int(&kv["mod_revision"]),
        lease: int(&kv["lease"]),
    })
}

fn parse_range(answer: &Value) -> Result<Range> {
    let mut range = Range {
        revision: int(&answer["header"]["revision"]),
        kvs: Vec::new(),
    };
    if let Some(kvs) = answer["kvs"].as_array() {
        for kv in kvs {
            range.kvs.push(parse_kv(kv)?);
        }
    }
    Ok(range)
}

fn compare_json(compare: &Compare) -> Value {
    match compare {
        Compare::CreateRevision(key, rev) => json!({
            "result": "EQUAL", "target": "CREATE", "key": b64(key.as_bytes()),
            "create_revision": rev.to_string(),
        }),
        Compare::ModRevision(key, rev) => json!({
            "result": "EQUAL", "target": "MOD", "key": b64(key.as_bytes()),
            "mod_revision": rev.to_string(),
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({"key": b64(key.as_bytes()), "value": b64(value)});
            if *lease != 0 {
                put["lease"] = Value::String(lease.to_string());
            }
            json!({ "request_put": put })
        }
        Op::Delete(key) => json!({"request_delete_range": {"key": b64(key.as_bytes())}}),
        Op::Get(key) => json!({"request_range": {"key": b64(key.as_bytes())}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_byte_plus_one() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn a_kv_reads_base64_and_string_integers() {
        let kv = parse_kv(
            &json!({"key":"L2EveA==","create_revision":"2","mod_revision":"3",
            "version":"1","value":"aGk=","lease":"42"}),
        )
        .expect("kv");
        assert_eq!(kv.key, "/a/x");
        assert_eq!(kv.value, b"hi");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.lease), (2, 3, 42));
        assert!(parse_kv(&json!({"key":"!!"})).is_err());
    }

    #[test]
    fn an_unreachable_endpoint_is_an_error_not_a_hang() {
        // Port 1 on loopback: nothing listens there.
        let etcd = Etcd::new(&["http://127.0.0.1:1".to_string()], Duration::from_secs(2));
        assert!(matches!(etcd.get("/x"), Err(EtcdError::Unreachable(_))));
    }

    /// A loopback HTTP server standing in for one etcd member: each connection gets
    /// `answer` (status line and JSON body) once its request is read, or, with
    /// `None`, is held open unanswered (a frozen member). Returns its URL and a
    /// count of the requests it saw.
    fn fake_member(answer: Option<(&'static str, &'static str)>) -> (String, Arc<AtomicUsize>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                // The request's head and its (small) body.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match answer {
                    Some((status, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    None => held.push(stream),
                }
            }
        });
        (url, seen)
    }

    #[test]
    fn a_member_without_a_leader_is_passed_over_for_the_next() {
        let (no_leader, asked) = fake_member(Some((
            "503 Service Unavailable",
            r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#,
        )));
        let (healthy, _) = fake_member(Some((
            "200 OK",
            r#"{"header":{"revision":"7"},"count":"0"}"#,
        )));
        let etcd = Etcd::new(&[no_leader, healthy], Duration::from_secs(5));
        let range = etcd.range_prefix("/x/").expect("the second member answers");
        assert_eq!(range.revision, 7);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(
            etcd.current_endpoint(),
            1,
            "the one that answered is current"
        );
        // A 503 from the only member is an error naming it, not a hang.
        let (url, _) = fake_member(Some((
            "503 Service Unavailable",
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#,
        )));
        let alone = Etcd::new(std::slice::from_ref(&url), Duration::from_secs(5));
        match alone.keepalive(1, Instant::now() + Duration::from_secs(5)) {
            Err(EtcdError::Unreachable(why)) => assert!(why.contains("no leader"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_keepalive_leaves_time_for_the_next_member_when_one_hangs() {
        let (frozen, asked) = fake_member(None);
        let (healthy, _) = fake_member(Some((
            "200 OK",
            r#"{"result":{"header":{"revision":"7"},"ID":"1","TTL":"3"}}"#,
        )));
        let etcd = Etcd::new(&[frozen, healthy], Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_millis(1200);
        // Had the frozen one been given all the time, nothing would be left for the
        // second: the call would fail at the deadline. It had its share (half).
        assert_eq!(etcd.keepalive(1, deadline), Ok(3));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(etcd.current_endpoint(), 1);
    }
}
