//! The one way to start a test daemon: [`Launch`] writes the config, spawns
//! `dynsup daemon --config FILE --socket DIR/d.sock` (its stderr to a log file, unless
//! the test hands it a pipe of its own) and waits until it listens.
//! The `TestDaemon::start*` constructors are shorthands for the common launches.

use super::bins::{bin, worker_bin};
use super::daemon::TestDaemon;
use super::dirs::{next_number, TestDir};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

/// What [`Launch::start`] waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The socket accepts and the log says `listening on` (as [`TestDaemon::start`]).
    Listening,
    /// Only that the socket accepts (a log level that hides `listening on`).
    Socket,
    /// Nothing: the test observes readiness itself, or the daemon is expected to exit.
    Nothing,
}

/// Where the daemon's `--config` comes from.
enum ConfigSource {
    /// No `--config`: the built-in defaults.
    None,
    /// This text, written to a new file in the test directory.
    Text(String),
    /// A path given as is (it may not exist, or be no file at all).
    Path(PathBuf),
}

/// A daemon launch: a config, and optionally a directory, more arguments, environment,
/// `JOURNAL_STREAM`, a wrapper command (`unshare ...`, `sh -c ...`), another user, or
/// a stderr other than a log file.
///
/// The daemon gets no `DYNSUP_SOCKET`, `RUST_LOG`, `NOTIFY_SOCKET`, `WATCHDOG_*`,
/// `JOURNAL_STREAM` or `DYNSUP_JOURNAL_SOCKET` from the test's own environment unless they are set here, so that
/// the machine the tests run on cannot change what they see.
pub struct Launch {
    dir: Rc<TestDir>,
    config: ConfigSource,
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    journal_stream: bool,
    wrapper: Vec<String>,
    user: Option<(u32, u32)>,
    wait: WaitFor,
    /// The daemon's stderr, and the file the harness reads as its log.
    stderr: Option<(OwnedFd, PathBuf)>,
}

impl TestDaemon {
    /// Writes `config`, starts the daemon and waits until it is listening.
    #[track_caller]
    pub fn start(config: &str) -> TestDaemon {
        Launch::new(config).start()
    }

    /// A daemon on its built-in defaults (no `--config`), once it listens.
    #[track_caller]
    pub fn start_without_config() -> TestDaemon {
        Launch::without_config().start()
    }

    /// Starts the daemon without waiting for it to listen (for daemons expected to
    /// exit on their own).
    #[track_caller]
    pub fn spawn(config: &str) -> TestDaemon {
        Launch::new(config).wait(WaitFor::Nothing).start()
    }

    /// Starts another daemon in the same directory, on the same socket path, once it
    /// listens.
    #[track_caller]
    pub fn start_another(&self, config: &str) -> TestDaemon {
        Launch::new(config).in_dir(self.dir()).start()
    }
}

impl Launch {
    /// `dynsup daemon --config FILE --socket DIR/d.sock` in a fresh directory, waiting
    /// until it listens.
    pub fn new(config: &str) -> Launch {
        Launch::with_config(ConfigSource::Text(config.to_string()))
    }

    /// No `--config`: the daemon's built-in defaults.
    pub fn without_config() -> Launch {
        Launch::with_config(ConfigSource::None)
    }

    /// `--config PATH` as given: for a file the test wrote itself, or none at all.
    pub fn config_path(path: &str) -> Launch {
        Launch::with_config(ConfigSource::Path(PathBuf::from(path)))
    }

    fn with_config(config: ConfigSource) -> Launch {
        Launch {
            dir: Rc::new(TestDir::new()),
            config,
            args: Vec::new(),
            env: Vec::new(),
            env_remove: [
                "DYNSUP_SOCKET",
                "RUST_LOG",
                "NOTIFY_SOCKET",
                "WATCHDOG_USEC",
                "WATCHDOG_PID",
                "JOURNAL_STREAM",
                "DYNSUP_JOURNAL_SOCKET",
            ]
            .map(String::from)
            .to_vec(),
            journal_stream: false,
            wrapper: Vec::new(),
            user: None,
            wait: WaitFor::Listening,
            stderr: None,
        }
    }

    /// Use this directory (for config files that refer to paths in it, or a second
    /// daemon on the same socket path).
    pub fn in_dir(mut self, dir: Rc<TestDir>) -> Launch {
        self.dir = dir;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env_remove.retain(|k| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Set `JOURNAL_STREAM` to the `DEV:INODE` of the file the daemon's stderr goes to.
    pub fn journal_stream(mut self) -> Launch {
        self.env_remove.retain(|k| k != "JOURNAL_STREAM");
        self.journal_stream = true;
        self
    }

    /// Run the daemon command line as arguments of `wrapper`.
    pub fn wrapper(mut self, wrapper: &[&str]) -> Launch {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Start the daemon with `signals` (shell names such as `USR2 INT`) ignored, as
    /// `nohup` or a background job would leave them: a shell ignores them and execs
    /// the daemon (same pid).
    pub fn ignoring(self, signals: &str) -> Launch {
        let script = format!("trap '' {signals}; exec \"$0\" \"$@\"");
        self.wrapper(&["sh", "-c", &script])
    }

    pub fn arg(mut self, arg: &str) -> Launch {
        self.args.push(arg.to_string());
        self
    }

    /// Run the daemon as `uid`/`gid` (the test runs as root).
    pub fn user(mut self, uid: u32, gid: u32) -> Launch {
        self.user = Some((uid, gid));
        self
    }

    /// The daemon's stderr is `fd` (the write end of a [`StderrPipe`](super::StderrPipe),
    /// say) instead of a log file; the harness reads the log from `log`, which the test
    /// fills. `WaitFor::Listening` would wait for the test to fill it: use
    /// `WaitFor::Socket`.
    pub fn stderr(mut self, fd: OwnedFd, log: &Path) -> Launch {
        self.stderr = Some((fd, log.to_path_buf()));
        self
    }

    pub fn wait(mut self, wait: WaitFor) -> Launch {
        self.wait = wait;
        self
    }

    /// Spawns the daemon, then waits as [`Launch::wait`] says.
    #[track_caller]
    pub fn start(self) -> TestDaemon {
        worker_bin();
        let dir = self.dir;
        let n = next_number();
        let socket = dir.join("d.sock");
        let (log_file, log) = match self.stderr {
            Some((fd, log)) => (fs::File::from(fd), log),
            None => {
                let log = dir.join(&format!("daemon-{n}.log"));
                (fs::File::create(&log).expect("log file"), log)
            }
        };
        let config = match self.config {
            ConfigSource::None => None,
            ConfigSource::Path(path) => Some(path),
            ConfigSource::Text(text) => {
                let path = dir.write(&format!("config-{n}.toml"), &text);
                // Readable by a daemon run as another user, whatever the test's umask.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
                Some(path)
            }
        };
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("daemon");
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--socket").arg(&socket).args(&self.args);
        cmd.env("RUST_BACKTRACE", "0");
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if self.journal_stream {
            let meta = log_file.metadata().expect("stat the log file");
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(
                fs::File::create(dir.join(&format!("daemon-{n}.stdout"))).expect("stdout file"),
            ))
            .stderr(Stdio::from(log_file));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let mut daemon = TestDaemon::spawned(dir, child, socket, config, log);
        match self.wait {
            WaitFor::Listening => daemon.wait_listening(),
            WaitFor::Socket => daemon.wait_socket(),
            WaitFor::Nothing => {}
        }
        daemon
    }
}
