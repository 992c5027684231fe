//! A worker that writes down its life: [`RECORDING_WORKER`], a python script that
//! appends `NAME start NS`, `NAME ready NS`, `NAME stop NS` (and `NAME fail NS`) to a
//! record file, with `NS` from the system-wide CLOCK_MONOTONIC, so that the order in
//! which different workers did things can be checked after the fact ([`Record`]).
//!
//! It gets ready (`READY=1` on its `NOTIFY_SOCKET`) after a delay, or once the test
//! opens its gate ([`open_gate`]); it writes `ready` *before* it sends `READY=1`, so
//! anything the daemon does because of that `READY=1` is recorded later. A fail flag
//! ([`fail_once`]) makes its next start exit 1 before it is ready, once.

use super::bins::python3;
use super::configs::toml_str;
use super::dirs::TestDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// `python3 -c RECORDING_WORKER RECORD CTL_DIR [DELAY_MS [gate]] [ANYTHING...]`:
///
/// - at start: installs a SIGTERM handler (which appends `stop` and exits 0), then
///   appends `start`;
/// - if `CTL_DIR/fail-NAME` exists: renames it to `CTL_DIR/failed-NAME`, appends `fail`
///   and exits 1 (so the flag fails one start);
/// - with `gate`: waits until `CTL_DIR/gate-NAME` exists (it polls every 5 ms);
/// - sleeps `DELAY_MS` (default 0), appends `ready`, sends `READY=1`, and sleeps.
pub const RECORDING_WORKER: &str = r#"
import os, signal, socket, sys, time
record, ctl = sys.argv[1], sys.argv[2]
delay = int(sys.argv[3]) if len(sys.argv) > 3 else 0
gated = len(sys.argv) > 4 and sys.argv[4] == "gate"
name = os.environ["DYNSUP_NAME"]
def note(what):
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %d\n" % (name, what, time.monotonic_ns())).encode())
    os.close(fd)
def on_term(signum, frame):
    note("stop")
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
note("start")
flag = os.path.join(ctl, "fail-" + name)
if os.path.exists(flag):
    os.rename(flag, os.path.join(ctl, "failed-" + name))
    note("fail")
    sys.exit(1)
if gated:
    while not os.path.exists(os.path.join(ctl, "gate-" + name)):
        time.sleep(0.005)
time.sleep(delay / 1000.0)
note("ready")
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", "\0" + addr[1:] if addr.startswith("@") else addr)
while True:
    time.sleep(3600)
"#;

/// The TOML `command = [...]` value that runs [`RECORDING_WORKER`] with `record` and
/// `ctl` (a directory); a template's or child's `args` add the delay and `gate`.
pub fn recording_command(record: &Path, ctl: &Path) -> String {
    format!(
        "[{}, \"-c\", {}, {}, {}]",
        toml_str(python3().to_str().expect("utf-8 path")),
        toml_str(RECORDING_WORKER),
        toml_str(record.to_str().expect("utf-8 path")),
        toml_str(ctl.to_str().expect("utf-8 path")),
    )
}

/// Lets the gated worker `name` get ready (now, or as soon as it starts).
pub fn open_gate(ctl: &Path, name: &str) {
    fs::write(ctl.join(format!("gate-{name}")), "").expect("write a gate file");
}

/// Closes `name`'s gate again: its next start waits until it is opened.
pub fn close_gate(ctl: &Path, name: &str) {
    let _ = fs::remove_file(ctl.join(format!("gate-{name}")));
}

/// Makes the next start of `name` exit 1 before it is ready (once).
pub fn fail_once(ctl: &Path, name: &str) {
    fs::write(ctl.join(format!("fail-{name}")), "").expect("write a fail flag");
}

/// A test's record file and control directory (gates, fail flags), in its own test
/// directory (launch the daemon `in_dir(files.dir.clone())`).
pub struct Recorded {
    pub dir: Rc<TestDir>,
    pub record: PathBuf,
    pub ctl: PathBuf,
}

impl Recorded {
    pub fn new() -> Recorded {
        let dir = Rc::new(TestDir::new());
        let ctl = dir.join("ctl");
        fs::create_dir(&ctl).expect("mkdir ctl");
        Recorded {
            record: dir.join("record"),
            ctl,
            dir,
        }
    }

    /// The record as it is now.
    pub fn read(&self) -> Record {
        Record::read(&self.record)
    }

    /// A `[templates.NAME]` of recording workers: `ready = "notify"`, permanent, with
    /// the `extra` keys (and a ready timeout no test reaches, unless `extra` sets one).
    pub fn template(&self, name: &str, extra: &str) -> String {
        let timeout = if extra.contains("ready_timeout_ms") {
            ""
        } else {
            "ready_timeout_ms = 120000\n"
        };
        format!(
            "\n[templates.{name}]\ncommand = {}\nready = \"notify\"\nrestart = \"permanent\"\n{timeout}{extra}\n",
            recording_command(&self.record, &self.ctl)
        )
    }

    pub fn open_gate(&self, name: &str) {
        open_gate(&self.ctl, name)
    }

    pub fn close_gate(&self, name: &str) {
        close_gate(&self.ctl, name)
    }

    pub fn fail_once(&self, name: &str) {
        fail_once(&self.ctl, name)
    }
}

impl Default for Recorded {
    fn default() -> Self {
        Recorded::new()
    }
}

/// A `[[children]]` entry with `after` (if any) and `args` (if any).
pub fn boot_child_after(name: &str, template: &str, after: &[&str], args: &[&str]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut entry = format!(
        "\n[[children]]\nname = {}\ntemplate = {}\n",
        toml_str(name),
        toml_str(template)
    );
    if !after.is_empty() {
        entry.push_str(&format!("after = [{}]\n", list(after)));
    }
    if !args.is_empty() {
        entry.push_str(&format!("args = [{}]\n", list(args)));
    }
    entry
}

/// One line of a record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// `start`, `ready`, `stop` or `fail`.
    pub what: String,
    /// CLOCK_MONOTONIC, in nanoseconds.
    pub at: u64,
}

/// A record file as read at one moment, in the order it was written.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub entries: Vec<Entry>,
}

impl Record {
    /// Reads `path` (empty when it does not exist yet).
    pub fn read(path: &Path) -> Record {
        let text = fs::read_to_string(path).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let (name, what, at) = (parts.next()?, parts.next()?, parts.next()?);
                Some(Entry {
                    name: name.to_string(),
                    what: what.to_string(),
                    at: at.parse().ok()?,
                })
            })
            .collect();
        Record { entries }
    }

    /// When `name` did `what`, each time, in order.
    pub fn times(&self, name: &str, what: &str) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|e| e.name == name && e.what == what)
            .map(|e| e.at)
            .collect()
    }

    /// How many times `name` did `what`.
    pub fn count(&self, name: &str, what: &str) -> usize {
        self.times(name, what).len()
    }

    /// When `name` did `what` for the `n`th time (1-based); panics if it has not.
    #[track_caller]
    pub fn nth(&self, name: &str, what: &str, n: usize) -> u64 {
        let times = self.times(name, what);
        match times.get(n.wrapping_sub(1)) {
            Some(&at) => at,
            None => panic!("{name} did not `{what}` {n} time(s) in the record:\n{self}"),
        }
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = self.entries.first().map_or(0, |e| e.at);
        for e in &self.entries {
            writeln!(
                f,
                "  {:>9.3} ms  {} {}",
                e.at.saturating_sub(base) as f64 / 1e6,
                e.name,
                e.what
            )?;
        }
        Ok(())
    }
}
