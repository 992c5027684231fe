//! Event streams: a [`Watcher`] turns a connection into a `watch` subscription whose
//! events are read on a thread and stamped with the instant they arrived; predicates
//! and accessors for [`Event`]s.

use super::client::{watch_req, ToLine};
use super::daemon::TestDaemon;
use super::log::log_tail_of;
use super::wait::{each_moment_until, DEADLINE, REPLY_TIMEOUT};
use dynsup::protocol::{Event, Reply};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One line of an event stream, with the instant the test read it.
#[derive(Debug, Clone)]
pub struct Timed {
    pub event: Event,
    pub at: Instant,
}

/// What [`line_pump`] hands over: a line, stamped with the instant it was read, or why
/// the stream ended.
pub(crate) enum StreamLine {
    Line(String, Instant),
    End(String),
}

/// Reads lines from `reader` on a thread and hands them over, stamped with the instant
/// they were read, until the stream ends.
pub(crate) fn line_pump<R: BufRead + Send + 'static>(mut reader: R) -> mpsc::Receiver<StreamLine> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                let _ = tx.send(StreamLine::End("end of stream".to_string()));
                return;
            }
            Ok(_) => {
                if tx.send(StreamLine::Line(line, Instant::now())).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(StreamLine::End(format!("read error: {e}")));
                return;
            }
        }
    });
    rx
}

/// A `watch` subscription: a connection turned into an event stream, read on a
/// thread so that every event is stamped with the instant it arrived.
pub struct Watcher {
    stream: UnixStream,
    rx: mpsc::Receiver<StreamLine>,
    log: Option<PathBuf>,
    /// Set once the stream has ended (why).
    ended: Option<String>,
    /// Every event received so far, for failure messages.
    pub seen: Vec<Event>,
}

impl Watcher {
    /// Connects, sends `watch` and checks the reply (`ok`, `watching` = `names`).
    #[track_caller]
    pub fn subscribe(d: &TestDaemon, names: &[&str]) -> Watcher {
        let stream = UnixStream::connect(d.socket())
            .unwrap_or_else(|e| panic!("connect for watch: {e}{}", d.log_tail()));
        Watcher::send_watch(&stream, names);
        let mut w = Watcher::from_subscribed(stream, Some(d.log_path().to_path_buf()));
        w.expect_reply(names);
        w
    }

    /// Sends the `watch` request on `stream` (and nothing else: the caller may then
    /// leave the stream unread, as a stalled watcher does).
    #[track_caller]
    pub fn send_watch(mut stream: &UnixStream, names: &[&str]) {
        let mut line = watch_req(names).to_line();
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("send watch: {e}"));
    }

    /// Starts reading a stream on which `watch` was sent; its first line is the reply.
    pub fn from_subscribed(stream: UnixStream, log: Option<PathBuf>) -> Watcher {
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        Watcher {
            stream,
            rx: line_pump(reader),
            log,
            ended: None,
            seen: Vec::new(),
        }
    }

    fn context(&self) -> String {
        let mut out = format!("\nevents so far: {:?}", self.seen);
        if let Some(path) = &self.log {
            out.push_str(&log_tail_of(path));
        }
        out
    }

    fn next_line(&mut self, timeout: Duration) -> Option<(String, Instant)> {
        if self.ended.is_some() {
            return None;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(StreamLine::Line(line, at)) => Some((line, at)),
            Ok(StreamLine::End(why)) => {
                self.ended = Some(why);
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.ended = Some("reader thread gone".to_string());
                None
            }
        }
    }

    /// Reads the reply to `watch`: it must succeed and echo `names`.
    #[track_caller]
    pub fn expect_reply(&mut self, names: &[&str]) {
        let Some((line, _)) = self.next_line(REPLY_TIMEOUT) else {
            panic!("no reply to watch ({:?}){}", self.ended, self.context())
        };
        let reply: Reply = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("undecodable watch reply {line:?}: {e}"));
        assert!(reply.ok, "watch failed: {line}{}", self.context());
        let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(reply.watching.as_ref(), Some(&want), "watch reply {line}");
    }

    /// The next event within `timeout`; `None` on timeout or at the end of the stream.
    #[track_caller]
    pub fn try_next(&mut self, timeout: Duration) -> Option<Timed> {
        let (line, at) = self.next_line(timeout)?;
        let event: Event = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("undecodable event {line:?}: {e}{}", self.context()));
        self.seen.push(event.clone());
        Some(Timed { event, at })
    }

    /// The next event; panics after [`DEADLINE`].
    #[track_caller]
    pub fn next(&mut self) -> Timed {
        match self.try_next(DEADLINE) {
            Some(t) => t,
            None => panic!(
                "no event within {DEADLINE:?} ({}){}",
                self.ended.as_deref().unwrap_or("stream open"),
                self.context()
            ),
        }
    }

    /// The next event, which must satisfy `pred` (`what` describes it).
    #[track_caller]
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Timed {
        let t = self.next();
        assert!(
            pred(&t.event),
            "expected {what}, got {:?}{}",
            t.event,
            self.context()
        );
        t
    }

    /// Skips events until one satisfies `pred`; returns it and the skipped ones.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> (Timed, Vec<Event>) {
        let mut skipped = Vec::new();
        let found = each_moment_until(DEADLINE, |left| match self.try_next(left) {
            Some(t) if pred(&t.event) => Some(Some(t)),
            Some(t) => {
                skipped.push(t.event);
                None
            }
            // The stream ended, or no time is left.
            None => Some(None),
        });
        match found.flatten() {
            Some(t) => (t, skipped),
            None => panic!(
                "no {what} within {DEADLINE:?} ({}){}",
                self.ended.as_deref().unwrap_or("stream open"),
                self.context()
            ),
        }
    }

    /// Waits until the daemon closes the stream; returns the events read until then.
    #[track_caller]
    pub fn expect_end(&mut self) -> Vec<Event> {
        let mut rest = Vec::new();
        let ended = each_moment_until(DEADLINE, |left| {
            if let Some(t) = self.try_next(left) {
                rest.push(t.event);
            }
            self.ended.is_some().then_some(())
        });
        if ended.is_none() {
            panic!(
                "the stream did not end within {DEADLINE:?}{}",
                self.context()
            );
        }
        rest
    }

    /// True once the stream has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Event predicates.
pub fn is_started(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Started { name, .. } if name == who)
}

pub fn is_exited(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Exited { name, .. } if name == who)
}

pub fn is_restarting(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Restarting { name, .. } if name == who)
}

pub fn is_stopped(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Stopped { name, .. } if name == who)
}

pub fn is_failed(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Failed { name, .. } if name == who)
}

/// The pid of a `started` event.
#[track_caller]
pub fn started_pid(ev: &Event) -> i32 {
    match ev {
        Event::Started { pid, .. } => *pid,
        other => panic!("not a started event: {other:?}"),
    }
}

/// The delay of a `restarting` event.
#[track_caller]
pub fn restarting_delay(ev: &Event) -> u64 {
    match ev {
        Event::Restarting { delay_ms, .. } => *delay_ms,
        other => panic!("not a restarting event: {other:?}"),
    }
}

/// An `exited` event of `who` whose reason is exactly `reason` (`watchdog`, `health`).
pub fn is_exited_because(ev: &Event, who: &str, why: &str) -> bool {
    matches!(ev, Event::Exited { name, reason, .. } if name == who && reason == why)
}

pub fn is_unhealthy(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Unhealthy { name, .. } if name == who)
}

pub fn is_healthy(ev: &Event, who: &str) -> bool {
    matches!(ev, Event::Healthy { name } if name == who)
}

/// The failures in a row and the message of an `unhealthy` event.
#[track_caller]
pub fn unhealthy_of(ev: &Event) -> (u32, String) {
    match ev {
        Event::Unhealthy {
            failures, message, ..
        } => (*failures, message.clone()),
        other => panic!("not an unhealthy event: {other:?}"),
    }
}
