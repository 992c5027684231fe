//! Talking to the daemon's socket: the request builders, one [`Client`] connection
//! (newline-JSON requests and replies, pipelining), and checks on replies.

use super::log::log_tail_of;
use super::wait::REPLY_TIMEOUT;
use dynsup::protocol::{ErrorKind, Reply, Request};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// Anything that can be sent as one request line: a [`Request`] or raw text.
pub trait ToLine {
    fn to_line(&self) -> String;
}

impl ToLine for Request {
    fn to_line(&self) -> String {
        serde_json::to_string(self).expect("encode request")
    }
}

impl ToLine for str {
    fn to_line(&self) -> String {
        self.to_string()
    }
}

impl ToLine for String {
    fn to_line(&self) -> String {
        self.clone()
    }
}

impl<T: ToLine + ?Sized> ToLine for &T {
    fn to_line(&self) -> String {
        (**self).to_line()
    }
}

/// `start` from a template (or the only one), with extra arguments.
pub fn start_req(name: &str, template: Option<&str>, args: &[&str]) -> Request {
    Request::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: args.iter().map(|s| s.to_string()).collect(),
        command: None,
        env: Default::default(),
        fenced: false,
    }
}

/// `start` from a template (or the only one), with its own environment variables.
pub fn start_env_req(name: &str, template: Option<&str>, env: &[(&str, &str)]) -> Request {
    Request::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: Vec::new(),
        command: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        fenced: false,
    }
}

/// `start` with a command that replaces the template's.
pub fn start_cmd_req(name: &str, template: Option<&str>, command: &[&str]) -> Request {
    Request::Start {
        name: name.to_string(),
        template: template.map(str::to_string),
        args: Vec::new(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        env: Default::default(),
        fenced: false,
    }
}

pub fn lookup_req(name: &str) -> Request {
    Request::Lookup {
        name: name.to_string(),
    }
}

pub fn stop_req(name: &str, timeout_ms: Option<u64>) -> Request {
    Request::stop(name, timeout_ms)
}

pub fn kill_req(name: &str, signal: Option<&str>) -> Request {
    Request::kill(name, signal)
}

pub fn cast_req(name: &str, message: &str) -> Request {
    Request::Cast {
        name: name.to_string(),
        message: message.to_string(),
    }
}

pub fn restart_req(name: &str, timeout_ms: Option<u64>) -> Request {
    Request::Restart {
        name: Some(name.to_string()),
        names: Vec::new(),
        template: None,
        all: false,
        rolling: false,
        timeout_ms,
    }
}

pub fn whois_req(pid: i32) -> Request {
    Request::Whois { pid }
}

pub fn wait_ready_req(name: &str) -> Request {
    Request::WaitReady {
        name: name.to_string(),
    }
}

/// `logs`: the last `lines` lines of `name`; with `follow`, a stream follows the reply.
pub fn logs_req(name: &str, lines: usize, follow: bool) -> Request {
    Request::Logs {
        name: name.to_string(),
        lines,
        follow,
    }
}

pub fn watch_req(names: &[&str]) -> Request {
    Request::Watch {
        names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Milliseconds since the Unix epoch, as the daemon reports times in `list`.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The error kind of a reply, or `None` if it succeeded.
pub fn error_kind(reply: &Reply) -> Option<ErrorKind> {
    reply.error.as_ref().map(|e| e.kind)
}

/// Asserts that `reply` failed with `kind`.
#[track_caller]
pub fn assert_error(reply: &Reply, kind: ErrorKind) {
    assert!(
        !reply.ok,
        "expected a {kind:?} error, got success: {reply:?}"
    );
    assert_eq!(error_kind(reply), Some(kind), "wrong error in {reply:?}");
    assert!(
        !reply.error.as_ref().unwrap().message.is_empty(),
        "error without a message: {reply:?}"
    );
}

/// One connection to the daemon's socket.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// The daemon log, quoted in failure messages.
    log: Option<PathBuf>,
}

impl Client {
    pub fn connect(socket: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client {
            stream,
            reader,
            log: None,
        })
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Quote the daemon log at `log` in failure messages.
    pub(crate) fn quoting_log(mut self, log: PathBuf) -> Client {
        self.log = Some(log);
        self
    }

    fn context(&self) -> String {
        match &self.log {
            Some(path) => log_tail_of(path),
            None => String::new(),
        }
    }

    /// Writes one request line (the newline is added).
    #[track_caller]
    pub fn send<R: ToLine + ?Sized>(&mut self, req: &R) {
        let mut line = req.to_line();
        line.push('\n');
        if let Err(e) = self.stream.write_all(line.as_bytes()) {
            panic!("sending {:?}: {e}{}", line.trim_end(), self.context());
        }
    }

    /// Reads one raw reply line: `Ok(None)` at end of stream.
    pub fn recv_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    }

    /// Reads and decodes one reply.
    #[track_caller]
    pub fn recv(&mut self) -> Reply {
        match self.recv_line() {
            Ok(Some(line)) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("undecodable reply {line:?}: {e}{}", self.context())),
            Ok(None) => panic!("the daemon closed the connection{}", self.context()),
            Err(e) => panic!("no reply within {REPLY_TIMEOUT:?}: {e}{}", self.context()),
        }
    }

    /// Sends one request and reads its reply.
    #[track_caller]
    pub fn request<R: ToLine + ?Sized>(&mut self, req: &R) -> Reply {
        self.send(req);
        self.recv()
    }

    /// Sends `req` and reads its reply; `None` if the exchange broke off (the daemon may
    /// close a connection it refuses before or after the request is written).
    pub fn try_request<R: ToLine + ?Sized>(&mut self, req: &R) -> Option<Reply> {
        let mut line = req.to_line();
        line.push('\n');
        let _ = self.stream.write_all(line.as_bytes());
        let line = self.recv_line().ok()??;
        serde_json::from_str(&line).ok()
    }

    /// Writes every request in one write, so that the daemon reads them as one batch;
    /// reads no reply.
    #[track_caller]
    pub fn send_batch(&mut self, requests: &[Request]) {
        let mut text = String::new();
        for r in requests {
            text.push_str(&r.to_line());
            text.push('\n');
        }
        if let Err(e) = self.stream.write_all(text.as_bytes()) {
            panic!("sending {requests:?}: {e}{}", self.context());
        }
    }

    /// Whether reply bytes (or the end of the stream) are waiting to be read; does not
    /// block.
    pub fn has_pending(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        // The reader's stream is a clone of this one: the same open file, whose
        // O_NONBLOCK both share.
        self.stream.set_nonblocking(true).expect("nonblocking");
        let pending = match self.reader.fill_buf() {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("read: {e}{}", self.context()),
        };
        self.stream.set_nonblocking(false).expect("blocking");
        pending
    }

    /// Sends every line (from a second thread, so that neither side can block the
    /// other) and reads as many replies, in order.
    #[track_caller]
    pub fn pipeline(&mut self, lines: &[String]) -> Vec<Reply> {
        let mut buf = String::new();
        for line in lines {
            buf.push_str(line);
            buf.push('\n');
        }
        let mut writer = self.stream.try_clone().expect("clone stream");
        let handle = thread::spawn(move || writer.write_all(buf.as_bytes()));
        let replies: Vec<Reply> = (0..lines.len()).map(|_| self.recv()).collect();
        if let Err(e) = handle.join().expect("writer thread") {
            panic!("pipelined write failed: {e}{}", self.context());
        }
        replies
    }

    /// True once the daemon has closed the connection (end of stream or reset).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
        }
    }
}
