//! Starting one worker: the only `unsafe` code in the daemon (the only module where the
//! compiler allows it). At its end, two raw signal syscalls that nix cannot express
//! (`kill` and `waitpid` with real-time signals), for `os::process`.
//!
//! The parent prepares everything the child will touch: program path, argv, envp and
//! cwd as C strings, credentials and rlimits ([`ExecPlan`]); the null-terminated
//! pointer arrays `execve` takes; the worker's two pipes (stdin, and one pipe for both
//! stdout and stderr); and, from the caller, the open `cgroup.procs` of the worker's
//! cgroup.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)` on a stack the
//! [`Spawner`] keeps, with every signal blocked around the call (the child runs in the
//! daemon's memory and must not run its handlers). Neither the daemon's memory nor its
//! fd table (two fds per worker) is copied, so a spawn costs the same at any number of
//! workers; a `fork` of the daemon grew to 1.7 ms at 18,000 fds.
//!
//! The fds: just before the clone, the parent `dup3`s the child's stdin read end, its
//! output write end and the cgroup fd into three reserved low fd numbers, the "slots"
//! (taken at start, below every other fd the daemon opens). The child's first step,
//! `close_range(FIRST_ABOVE_SLOTS, ~0, CLOSE_RANGE_UNSHARE)`, gives it its own fd table
//! holding only fds 0-2 and the slots. Right after the clone the parent puts
//! `/dev/null` back in the slots, so it keeps no copy of a worker's pipe end.
//!
//! In the child, only async-signal-safe syscalls, no allocation and no lock, in order:
//!
//! 1. `close_range(.., CLOSE_RANGE_UNSHARE)`, as above.
//! 2. `setpgid(0, 0)`: its own process group, so `stop` can signal the whole group.
//! 3. Into its cgroup, when the daemon uses cgroups (a write of "0" to the
//!    `cgroup.procs` slot).
//! 4. Resource limits (`setrlimit`), while still privileged enough to raise them.
//! 5. `setgroups`, `setgid`, `setuid`, in that order, when the template names a user.
//! 6. `prctl(PR_SET_PDEATHSIG, SIGKILL)` (after the uid change, which would clear it),
//!    then exit at once if the daemon is already gone (`getppid()` differs from the
//!    daemon's pid); then `PR_SET_NO_NEW_PRIVS` and the umask.
//! 7. stdin = the mailbox pipe; stdout and stderr = the one output pipe (both streams
//!    end up in the daemon's log as `[NAME] line` anyway).
//! 8. `chdir` to the template's cwd.
//! 9. The signals the daemon handles or ignores back to `SIG_DFL` (ignored ones, such
//!    as Rust's SIGPIPE, would survive exec), and an empty signal mask.
//! 10. `execve`.
//!
//! A failed step writes (stage, errno) into the parent's `ChildArgs` (shared memory,
//! `CLONE_VM`) and the child `_exit`s. `CLONE_VFORK` resumes the parent only once the
//! child has exec'd or exited, so an exec failure is returned, synchronously, to the
//! `start` caller (the failed child already reaped), and a returned pid is known to have
//! exec'd before the daemon goes back to its loop.

#![deny(unsafe_op_in_unsafe_fn)]

use super::env_file;
use crate::core::{ChildSpec, Credentials, Readiness, Resource};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::pipe2;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What the daemon knows once, at start, and every spawn needs.
#[derive(Debug, Clone)]
pub struct SpawnContext {
    /// The directory holding the `dynsup` executable: bare command names are looked up
    /// here first.
    pub exe_dir: Option<PathBuf>,
    /// The daemon's environment, inherited by every worker.
    pub base_env: Vec<(OsString, OsString)>,
    /// `DYNSUP_SOCKET` for the workers.
    pub socket: PathBuf,
    /// `NOTIFY_SOCKET` for workers whose template waits for `READY=1`.
    pub notify_socket: Option<String>,
    /// The daemon's pid, for the child's "is my parent still there" check.
    pub daemon_pid: i32,
}

impl SpawnContext {
    pub fn from_process(socket: PathBuf) -> SpawnContext {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        SpawnContext {
            exe_dir,
            base_env: std::env::vars_os().collect(),
            socket,
            notify_socket: None,
            daemon_pid: std::process::id() as i32,
        }
    }
}

/// A worker's command line, prepared as C strings for `execve`.
pub struct ExecPlan {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    credentials: Option<Credentials>,
    umask: Option<libc::mode_t>,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    no_new_privs: bool,
}

/// Who a plan is for: the worker itself, or a health check run on its behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker,
    /// Same environment, user, cwd, umask and limits as the worker, minus what only
    /// the worker may use: `NOTIFY_SOCKET` and `WATCHDOG_USEC` (a check speaks through
    /// its exit status, never for the worker).
    Probe,
}

impl ExecPlan {
    /// Resolve the program and build argv/envp. Fails when a bare program name is found
    /// neither next to dynsup nor in `PATH`, or a string holds a NUL byte.
    /// Its template's `env_file`s are read here, in the daemon: a file that cannot be
    /// read or has a syntax error fails the spawn with `bad_env_file` set.
    pub fn new(spec: &ChildSpec, ctx: &SpawnContext) -> Result<ExecPlan, SpawnError> {
        let file_env =
            env_file::read_all(&spec.template.env_files).map_err(|message| SpawnError {
                message,
                shortage: false,
                bad_env_file: true,
            })?;
        ExecPlan::build(spec, &spec.argv, &file_env, ctx, Role::Worker).map_err(SpawnError::other)
    }

    /// The plan of the worker's health check (`spec.template.health`'s command), run
    /// as the worker would be (environment, user and groups, cwd, umask, rlimits).
    /// Fails as `new` does, or when the template has no health check.
    pub fn for_probe(spec: &ChildSpec, ctx: &SpawnContext) -> Result<ExecPlan, String> {
        let Some(health) = &spec.template.health else {
            return Err("the template has no health check".to_string());
        };
        if health.command.is_empty() {
            return Err("the health command is empty".to_string());
        }
        let file_env = env_file::read_all(&spec.template.env_files)?;
        ExecPlan::build(spec, &health.command, &file_env, ctx, Role::Probe)
    }

    /// The environment, lowest precedence first: the daemon's own; `USER`, `LOGNAME`
    /// and `HOME` of the template's user; the template's `env`; `file_env` (its
    /// `env_file`s, in order); the start's own `env`; then what only the daemon sets:
    /// `DYNSUP_NAME`, `DYNSUP_SOCKET` and the sd_notify variables.
    fn build(
        spec: &ChildSpec,
        command: &[String],
        file_env: &[(String, String)],
        ctx: &SpawnContext,
        role: Role,
    ) -> Result<ExecPlan, String> {
        let Some(first) = command.first() else {
            return Err("the command is empty".to_string());
        };
        let program = resolve_program(first, ctx)?;
        let argv = command
            .iter()
            .map(|a| c_string(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let template = &spec.template;
        let mut env: BTreeMap<OsString, OsString> = ctx.base_env.iter().cloned().collect();
        if let Some(creds) = &template.credentials {
            if let Some(user) = &creds.user_name {
                env.insert("USER".into(), user.into());
                env.insert("LOGNAME".into(), user.into());
            }
            if let Some(home) = &creds.home {
                env.insert("HOME".into(), home.into());
            }
        }
        let own = template.env.iter().chain(file_env).map(|(k, v)| (k, v));
        for (key, value) in own.chain(&spec.env) {
            env.insert(key.into(), value.into());
        }
        env.insert("DYNSUP_NAME".into(), OsStr::new(&*spec.name).to_os_string());
        env.insert("DYNSUP_SOCKET".into(), ctx.socket.clone().into_os_string());
        // The sd_notify variables are the daemon's to give. Those inherited from the
        // daemon's own systemd unit (its NOTIFY_SOCKET, and WATCHDOG_USEC and
        // WATCHDOG_PID when the unit has WatchdogSec=) are about the daemon and must
        // never reach a worker, nor may a template's `env` fake them.
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            env.remove(OsStr::new(key));
        }
        if role == Role::Worker {
            // A worker that reports readiness or keep-alives gets the daemon's socket,
            // and a watchdog's interval as systemd gives it (never WATCHDOG_PID: the
            // keep-alives may come from the worker's whole process group).
            let watchdog_usec = template
                .watchdog_ms
                .filter(|&ms| ms > 0)
                .map(|ms| ms.saturating_mul(1000));
            let reports = template.ready == Readiness::Notify || watchdog_usec.is_some();
            if let (true, Some(notify)) = (reports, &ctx.notify_socket) {
                env.insert("NOTIFY_SOCKET".into(), notify.into());
            }
            if let Some(usec) = watchdog_usec {
                env.insert("WATCHDOG_USEC".into(), usec.to_string().into());
            }
        }
        let envp = env
            .into_iter()
            .map(|(mut key, value)| {
                key.push("=");
                key.push(value);
                c_string(&key.into_vec())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = match &spec.template.cwd {
            Some(dir) => Some(c_string(dir.as_bytes())?),
            None => None,
        };
        let mut rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)> = template
            .rlimits
            .iter()
            .map(|limit| {
                let resource = match limit.resource {
                    Resource::Nofile => libc::RLIMIT_NOFILE,
                    Resource::Nproc => libc::RLIMIT_NPROC,
                    Resource::Core => libc::RLIMIT_CORE,
                    Resource::Memlock => libc::RLIMIT_MEMLOCK,
                };
                let value = |v: u64| {
                    if v == u64::MAX {
                        libc::RLIM_INFINITY
                    } else {
                        v
                    }
                };
                (
                    resource,
                    libc::rlimit {
                        rlim_cur: value(limit.soft),
                        rlim_max: value(limit.hard),
                    },
                )
            })
            .collect();
        // The daemon raised its own open-files soft limit (`os::limits`); a worker starts
        // with the one the daemon was given, unless its template sets one.
        if let Some((soft, hard)) = crate::os::limits::worker_open_files() {
            if !rlimits.iter().any(|(r, _)| *r == libc::RLIMIT_NOFILE) {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                rlimits.push((libc::RLIMIT_NOFILE, limit));
            }
        }
        Ok(ExecPlan {
            program: c_string(program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd,
            credentials: template.credentials.clone(),
            umask: template.umask.map(|m| m as libc::mode_t),
            rlimits,
            no_new_privs: template.no_new_privs,
        })
    }
}

fn c_string(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| {
        format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(bytes).replace('\0', "\\0")
        )
    })
}

/// A bare name (no `/`) is looked up next to the dynsup executable, then in `PATH`;
/// anything with a `/` is used as given.
fn resolve_program(program: &str, ctx: &SpawnContext) -> Result<PathBuf, String> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path_var = ctx
        .base_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let candidates = ctx
        .exe_dir
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path_var).filter(|d| !d.as_os_str().is_empty()));
    for dir in candidates {
        let candidate = dir.join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "{program}: command not found next to dynsup ({}) or in PATH (os error 2)",
        ctx.exe_dir.as_deref().map_or_else(
            || "unknown directory".to_string(),
            |d| d.display().to_string()
        )
    ))
}

/// A running worker: its pid, the daemon's ends of its pipes (non-blocking), and a
/// pidfd that becomes readable when it exits (none on a kernel without `CLONE_PIDFD`).
pub struct Spawned {
    pub pid: i32,
    pub stdin: OwnedFd,
    /// The worker's stdout and stderr.
    pub output: OwnedFd,
    pub pidfd: Option<OwnedFd>,
}

/// What stays the same from one spawn to the next: the child's stack, three reserved
/// low fd numbers, and the signals whose disposition the child must reset.
///
/// Why reserved fds: a forked child copies the whole fd table, and the daemon holds
/// two fds per worker, so a plain fork costs O(workers) (1.7 ms at 18,000 fds). The
/// child here shares the table (`CLONE_FILES`) and unshares it with
/// `close_range(FIRST_ABOVE_SLOTS, ~0, CLOSE_RANGE_UNSHARE)`, which copies only the fds
/// below the range: 0-2 and the slots. The parent puts the child's pipe ends (and the
/// cgroup fd) into the slots just before the clone and puts `/dev/null` back right after.
pub struct Spawner {
    stack: Vec<u8>,
    /// Low fds, each open on /dev/null (close-on-exec) between spawns.
    slots: [RawFd; SLOTS],
    devnull: OwnedFd,
    /// Signals the daemon does not leave at SIG_DFL (handled or ignored).
    reset_signals: Vec<libc::c_int>,
    /// Whether the kernel gives a pidfd with the clone (`CLONE_PIDFD`, Linux 5.2); set
    /// false the first time it refuses the flag.
    pidfds: bool,
}

const SLOTS: usize = 3;
const SLOT_STDIN: usize = 0;
const SLOT_OUTPUT: usize = 1;
const SLOT_CGROUP: usize = 2;
const CHILD_STACK: usize = 256 * 1024;

impl Spawner {
    /// Reserve the slots. Call early, before the daemon opens anything else, so that
    /// they get the lowest free fd numbers.
    pub fn new() -> io::Result<Spawner> {
        let devnull = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?,
        );
        let mut slots = [0; SLOTS];
        for slot in &mut slots {
            // The lowest free fd number, close-on-exec, kept for the daemon's life.
            let fd = fcntl(&devnull, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io::Error::from)?;
            *slot = fd;
        }
        Ok(Spawner {
            stack: vec![0; CHILD_STACK],
            slots,
            devnull,
            reset_signals: Vec::new(),
            pidfds: true,
        })
    }

    /// Whether children come with a pidfd (else their exits are found by `waitpid(-1)`).
    pub fn gives_pidfds(&self) -> bool {
        self.pidfds
    }

    /// Record which signals the child must put back to SIG_DFL: those the daemon
    /// handles or ignores (call once the signal handlers are installed). Handled ones
    /// would be reset by exec anyway, but the child runs before exec in the daemon's
    /// memory; ignored ones (Rust ignores SIGPIPE) would survive exec.
    pub fn record_signal_dispositions(&mut self) {
        self.reset_signals.clear();
        for signal in 1..=libc::SIGRTMAX() {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            // SAFETY: a sigaction is plain data; all-zero is a valid value.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a query (null new action) into an owned sigaction.
            let queried = unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
            if queried == 0 && old.sa_sigaction != libc::SIG_DFL {
                self.reset_signals.push(signal);
            }
        }
    }

    fn highest_slot(&self) -> RawFd {
        self.slots.iter().copied().max().unwrap_or(2)
    }
}

/// The step of the child's setup that failed, reported to the parent with the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Unshare,
    Setpgid,
    Cgroup,
    Rlimit,
    Setgroups,
    Setgid,
    Setuid,
    Pdeathsig,
    NoNewPrivs,
    Dup2,
    Chdir,
    Exec,
}

impl Stage {
    fn describe(self, plan: &ExecPlan, err: io::Error) -> String {
        match self {
            Stage::Unshare => format!("close_range(CLOSE_RANGE_UNSHARE) failed: {err}"),
            Stage::Setpgid => format!("setpgid failed: {err}"),
            Stage::Cgroup => format!("joining the worker's cgroup failed: {err}"),
            Stage::Rlimit => format!("setrlimit failed: {err}"),
            Stage::Setgroups => format!("setgroups failed: {err}"),
            Stage::Setgid => format!("setgid failed: {err}"),
            Stage::Setuid => format!("setuid failed: {err}"),
            Stage::Pdeathsig => format!("prctl(PR_SET_PDEATHSIG) failed: {err}"),
            Stage::NoNewPrivs => format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {err}"),
            Stage::Dup2 => format!("redirecting stdio failed: {err}"),
            Stage::Chdir => format!(
                "cannot change directory to {}: {err}",
                plan.cwd
                    .as_deref()
                    .map(|c| String::from_utf8_lossy(c.to_bytes()).into_owned())
                    .unwrap_or_default()
            ),
            Stage::Exec => format!(
                "cannot execute {}: {err}",
                String::from_utf8_lossy(plan.program.as_bytes())
            ),
        }
    }
}

/// Everything the child reads, and where it reports a failure. Lives on the parent's
/// stack; the child shares the parent's memory (`CLONE_VM`) and the parent is
/// suspended until the child execs or exits (`CLONE_VFORK`), so it outlives the child's
/// use of it.
struct ChildArgs<'a> {
    plan: &'a ExecPlan,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    slots: [RawFd; SLOTS],
    first_above_slots: libc::c_uint,
    has_cgroup: bool,
    reset_signals: &'a [libc::c_int],
    daemon_pid: i32,
    /// Written by the child before `_exit` when a step fails: (stage, errno).
    failure: Cell<Option<(Stage, i32)>>,
}

/// Why a spawn failed: the message for the caller and the log, and whether it failed
/// for lack of a resource (fds, processes, memory), which is likely to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    pub message: String,
    pub shortage: bool,
    /// One of the template's `env_file`s could not be read or has a syntax error.
    pub bad_env_file: bool,
}

impl SpawnError {
    /// A failure that says nothing about resources (a missing program, a bad cwd).
    pub fn other(message: String) -> SpawnError {
        SpawnError {
            message,
            shortage: false,
            bad_env_file: false,
        }
    }

    /// An OS error, `what` saying what was being done.
    pub fn os(what: &str, err: io::Error) -> SpawnError {
        SpawnError {
            shortage: is_shortage(&err),
            message: format!("{what}: {err}"),
            bad_env_file: false,
        }
    }
}

/// EMFILE, ENFILE, EAGAIN (a process limit, or clone's), ENOMEM: the system or the
/// daemon is out of something that may come back.
pub fn is_shortage(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

/// Clone and exec the plan. `cgroup_procs`, if given, is the open `cgroup.procs` of the
/// worker's cgroup: the child joins it first. Returns once the child has exec'd, or
/// with the reason it could not (the failed child is already reaped).
pub fn spawn(
    spawner: &mut Spawner,
    plan: &ExecPlan,
    daemon_pid: i32,
    cgroup_procs: Option<&OwnedFd>,
) -> Result<Spawned, SpawnError> {
    let (stdin_r, stdin_w) = cloexec_pipe()?;
    set_nonblocking(&stdin_w).map_err(|e| {
        SpawnError::os("cannot make a worker pipe non-blocking", io::Error::from(e))
    })?;
    let (pid, output, pidfd) = clone_exec(spawner, plan, daemon_pid, cgroup_procs, Some(stdin_r))?;
    Ok(Spawned {
        pid,
        stdin: stdin_w,
        output,
        pidfd,
    })
}

/// A running health check: its pid (it leads its own process group) and the daemon's
/// end of its output pipe (stdout and stderr; non-blocking).
pub struct SpawnedProbe {
    pub pid: i32,
    pub output: OwnedFd,
    /// Readable when the check exits (see [`Spawned::pidfd`]).
    pub pidfd: Option<OwnedFd>,
}

/// Clone and exec a health check's plan: the same steps as a worker's (its own process
/// group, the template's limits, user, umask, cwd; `PR_SET_PDEATHSIG`), in no cgroup
/// of its own (it stays in the daemon's), with stdin on `/dev/null`.
pub fn spawn_probe(
    spawner: &mut Spawner,
    plan: &ExecPlan,
    daemon_pid: i32,
) -> Result<SpawnedProbe, SpawnError> {
    let (pid, output, pidfd) = clone_exec(spawner, plan, daemon_pid, None, None)?;
    Ok(SpawnedProbe { pid, output, pidfd })
}

/// The clone and exec of `spawn` and `spawn_probe`: the child's stdin is `stdin`'s read
/// end, or `/dev/null` (the slot's resting state) when none; its stdout and stderr are
/// a new pipe, whose read end (non-blocking) is returned with the pid and the child's
/// pidfd (when the kernel gives one).
fn clone_exec(
    spawner: &mut Spawner,
    plan: &ExecPlan,
    daemon_pid: i32,
    cgroup_procs: Option<&OwnedFd>,
    stdin: Option<OwnedFd>,
) -> Result<(i32, OwnedFd, Option<OwnedFd>), SpawnError> {
    let (output_r, output_w) = cloexec_pipe()?;
    set_nonblocking(&output_r).map_err(|e| {
        SpawnError::os("cannot make a worker pipe non-blocking", io::Error::from(e))
    })?;

    // Pointer arrays for execve, built before the clone: the child must not allocate.
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.envp);

    // The child's ends go into the reserved slots (see `Spawner`). A slot left alone
    // holds /dev/null.
    let mut into_slots = vec![(output_w.as_fd(), spawner.slots[SLOT_OUTPUT])];
    if let Some(stdin_r) = &stdin {
        into_slots.push((stdin_r.as_fd(), spawner.slots[SLOT_STDIN]));
    }
    if let Some(cgroup) = cgroup_procs {
        into_slots.push((cgroup.as_fd(), spawner.slots[SLOT_CGROUP]));
    }
    for (fd, slot) in &into_slots {
        dup_into(fd.as_raw_fd(), *slot)
            .map_err(|e| SpawnError::os("cannot prepare the worker's fds", e))?;
    }

    let args = ChildArgs {
        plan,
        argv: &argv,
        envp: &envp,
        slots: spawner.slots,
        first_above_slots: (spawner.highest_slot() + 1) as libc::c_uint,
        has_cgroup: cgroup_procs.is_some(),
        reset_signals: &spawner.reset_signals,
        daemon_pid,
        failure: Cell::new(None),
    };
    let stack_top = {
        let base = spawner.stack.as_mut_ptr() as usize + spawner.stack.len();
        (base & !0xf) as *mut libc::c_void
    };

    // Block every signal around the clone: the child runs in the daemon's memory until
    // it execs, and must not run the daemon's handlers there. It unblocks them itself
    // right before exec, once their dispositions are back to SIG_DFL.
    // SAFETY: a sigset_t is plain data; all-zero is a valid (empty) value.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain calls on owned, properly sized sigset_t values.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
    }
    // SAFETY: `child_main` runs on `spawner.stack`, a buffer this function holds
    // exclusively (`&mut Spawner`) and that outlives the child's use of it: with
    // CLONE_VFORK the parent does not return from `clone` until the child has exec'd or
    // exited, and the child never returns from `child_main`. CLONE_VM shares memory, so
    // `args` (on this frame) stays valid for the same reason. The daemon's only other
    // thread, the logger's writer, may hold a lock (its queue's, or malloc's) while the
    // child runs; the child needs none: it makes only async-signal-safe syscalls, and
    // does not allocate. That thread opens and closes no fd, and never spawns.
    // Signals are blocked (above) so no daemon handler runs on the child's stack.
    // CLONE_FILES shares the fd table until the child unshares it with close_range;
    // until then it only reads it. PR_SET_PDEATHSIG is tied to the parent thread, the
    // loop's thread, which lives as long as the daemon.
    //
    // SAFETY: as above, for the clone in this closure. With CLONE_PIDFD the kernel
    // writes the child's pidfd (close-on-exec) into `pidfd_out`, a local of this frame,
    // before `clone` returns; the child, sharing the fd table until its close_range,
    // closes its view of it there with everything else above the slots.
    let mut pidfd_out: libc::c_int = -1;
    let clone_with = |flags: libc::c_int, pidfd_out: &mut libc::c_int| unsafe {
        libc::clone(
            child_main,
            stack_top,
            flags,
            &args as *const ChildArgs as *mut libc::c_void,
            pidfd_out as *mut libc::c_int,
        )
    };
    let base_flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD;
    let mut pid = if spawner.pidfds {
        clone_with(base_flags | libc::CLONE_PIDFD, &mut pidfd_out)
    } else {
        clone_with(base_flags, &mut pidfd_out)
    };
    if pid < 0 && spawner.pidfds && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
    {
        // A kernel older than 5.2: no pidfds; exits are found by `waitpid(-1)`.
        log::info!(
            "the kernel gives no pidfd with clone (CLONE_PIDFD): exits are found by waitpid(-1)"
        );
        spawner.pidfds = false;
        pidfd_out = -1;
        pid = clone_with(base_flags, &mut pidfd_out);
    }
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    // Put /dev/null back in the slots, so the daemon holds no extra copy of a worker's
    // pipe end (its EOF must come when the worker is gone).
    for slot in spawner.slots {
        let _ = dup_into(spawner.devnull.as_raw_fd(), slot);
    }
    drop((stdin, output_w));
    if pid < 0 {
        return Err(SpawnError::os("clone failed", clone_error));
    }
    let pidfd = (pidfd_out >= 0).then(|| {
        // SAFETY: the kernel just created this fd for us (CLONE_PIDFD) and nothing else
        // holds it: this OwnedFd is its only owner.
        unsafe { OwnedFd::from_raw_fd(pidfd_out) }
    });
    if let Some((stage, errno)) = args.failure.get() {
        super::process::reap_pid(pid);
        let err = io::Error::from_raw_os_error(errno);
        return Err(SpawnError {
            shortage: is_shortage(&err),
            message: stage.describe(plan, err),
            bad_env_file: false,
        });
    }
    Ok((pid, output_r, pidfd))
}

/// The child's side of the clone: set up, then exec. Never returns.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to clone, alive on the
    // suspended parent's stack (see `spawn`).
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: we are the freshly cloned child, with the contract `exec_child` states.
    unsafe { exec_child(args) }
}

/// The steps between clone and exec, in order (see the module documentation).
///
/// # Safety
/// Must run only in the child of the `clone` in `spawn`, with `args` valid: it shares
/// the suspended daemon's memory, so it makes only async-signal-safe syscalls,
/// allocates nothing, takes no lock, and never returns.
///
/// Each block below is a plain libc call; the pointers it passes are to `args` and the
/// plan (alive in the suspended parent's frame) or to this frame's locals.
unsafe fn exec_child(args: &ChildArgs) -> ! {
    let plan = args.plan;
    let fail = |stage: Stage| -> ! {
        // Reads errno, as `__errno_location` does: no allocation.
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        args.failure.set(Some((stage, errno)));
        // SAFETY: `_exit` ends this process at once (no atexit handlers, no flush of
        // the daemon's buffers, which the child shares).
        unsafe { libc::_exit(127) }
    };
    // Our own fd table, holding only 0-2 and the slots (all others closed, cheaply).
    // SAFETY: integer arguments; closes fds only in the table it unshares.
    let unshared = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            args.first_above_slots,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    if unshared != 0 {
        fail(Stage::Unshare);
    }
    // SAFETY: integer arguments; acts on this process only.
    if unsafe { libc::setpgid(0, 0) } != 0 {
        fail(Stage::Setpgid);
    }
    if args.has_cgroup {
        // "0" moves the writing process; its descendants will be born inside.
        // SAFETY: writes one byte from a static string to the cgroup slot.
        if unsafe { libc::write(args.slots[SLOT_CGROUP], b"0".as_ptr().cast(), 1) } != 1 {
            fail(Stage::Cgroup);
        }
    }
    for (resource, limit) in &plan.rlimits {
        // SAFETY: `limit` points into the plan, alive (see above).
        if unsafe { libc::setrlimit(*resource, limit) } != 0 {
            fail(Stage::Rlimit);
        }
    }
    if let Some(creds) = &plan.credentials {
        // SAFETY: a pointer and length of the plan's group list, alive.
        if unsafe { libc::setgroups(creds.groups.len(), creds.groups.as_ptr()) } != 0 {
            fail(Stage::Setgroups);
        }
        // SAFETY: integer argument; this process only (no CLONE_THREAD).
        if unsafe { libc::setgid(creds.gid) } != 0 {
            fail(Stage::Setgid);
        }
        // SAFETY: as above.
        if unsafe { libc::setuid(creds.uid) } != 0 {
            fail(Stage::Setuid);
        }
    }
    // After the uid change: changing credentials clears the parent-death signal.
    // SAFETY: integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        fail(Stage::Pdeathsig);
    }
    // SAFETY: no arguments.
    if unsafe { libc::getppid() } != args.daemon_pid {
        // The daemon died between clone and prctl: nobody will ever supervise us.
        // SAFETY: as in `fail`.
        unsafe { libc::_exit(1) }
    }
    if plan.no_new_privs {
        // SAFETY: integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            fail(Stage::NoNewPrivs);
        }
    }
    if let Some(mask) = plan.umask {
        // SAFETY: integer argument.
        unsafe { libc::umask(mask) };
    }
    // dup2 clears close-on-exec on the copy; the slots themselves close at exec.
    for (slot, target) in [
        (args.slots[SLOT_STDIN], 0),
        (args.slots[SLOT_OUTPUT], 1),
        (args.slots[SLOT_OUTPUT], 2),
    ] {
        // SAFETY: integer arguments, in this process's own fd table.
        if unsafe { libc::dup2(slot, target) } < 0 {
            fail(Stage::Dup2);
        }
    }
    if let Some(cwd) = &plan.cwd {
        // SAFETY: a NUL-terminated string of the plan, alive.
        if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
            fail(Stage::Chdir);
        }
    }
    // Dispositions back to default (this process's own copy: no CLONE_SIGHAND), then
    // the empty mask the worker expects.
    for &signal in args.reset_signals {
        // SAFETY: integer arguments; SIG_DFL installs no handler.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // SAFETY: a sigset_t is plain data (all-zero is valid), filled and passed by
    // pointer to this frame's local.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // SAFETY: NUL-terminated strings of the plan and the null-terminated pointer arrays
    // `spawn` built from them, all alive in the suspended parent's frame.
    unsafe {
        libc::execve(
            plan.program.as_ptr(),
            args.argv.as_ptr(),
            args.envp.as_ptr(),
        )
    };
    fail(Stage::Exec)
}

/// The array of pointers `execve` takes: one per string, then a null pointer. Valid
/// while `strings` is.
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::os("cannot create a pipe", io::Error::from(e)))
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// `dup3(fd, slot, O_CLOEXEC)`.
fn dup_into(fd: RawFd, slot: RawFd) -> io::Result<()> {
    // SAFETY: dup3 only manipulates the fd table; `slot` is one of the daemon's
    // reserved fds, which nothing else uses.
    if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ----- Raw signal syscalls ----------------------------------------------------------------
//
// nix's `Signal` is an enum of the standard signals only: it can neither send a real-time
// signal (SIGRTMIN+n) nor decode the status of a child killed by one (its `waitpid`
// reaps the child, then fails with EINVAL, and the exit is lost). These two calls take
// and give plain numbers instead. They live here only because this is the one module
// where the compiler allows `unsafe`; neither touches memory the caller does not own.

/// `kill(2)`: send signal number `signal` to `target` (a pid, or minus a process group
/// id). Any number the kernel accepts, real-time signals included.
pub fn kill_raw(target: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and reads or writes no memory of this process.
    if unsafe { libc::kill(target, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `waitpid(-1, &status, WNOHANG)`: reap one exited child, if any, returning its pid and
/// raw wait status (decoded with `libc::WIFEXITED` and friends); `Ok(None)` when children
/// exist but none has exited.
pub fn wait_any_nohang() -> io::Result<Option<(libc::pid_t, libc::c_int)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one c_int through the pointer, which points at `status`,
    // a local that outlives the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some((pid, status))),
    }
}

/// How a child ended, as `waitid` reports it: `si_code` (`CLD_EXITED`, `CLD_KILLED`,
/// `CLD_DUMPED`) and `si_status` (the exit code, or the signal number).
pub struct ChildEnd {
    pub pid: libc::pid_t,
    pub code: libc::c_int,
    pub status: libc::c_int,
}

/// `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`: reap exactly the child `pidfd` refers
/// to, if it has exited. `Ok(None)`: it has not. ECHILD: it was reaped already.
/// Cost: O(1) in the number of children, unlike `waitpid(-1)`, which walks them all.
pub fn wait_pidfd_nohang(pidfd: BorrowedFd<'_>) -> io::Result<Option<ChildEnd>> {
    // SAFETY: a siginfo_t is plain data; all-zero is a valid value, and the one WNOHANG
    // leaves when the child has not exited (si_pid stays 0).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes one siginfo_t through the pointer, which points at `info`,
    // a local that outlives the call; the fd is borrowed, so open for the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful waitid with WEXITED, si_pid and si_status are the
    // members the kernel filled in (the SIGCHLD layout of the union).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(ChildEnd {
        pid,
        code: info.si_code,
        status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{HealthCheck, Template};
    use std::rc::Rc;

    /// The daemon's own environment as systemd gives it to a `Type=notify` unit with
    /// `WatchdogSec=`.
    fn ctx() -> SpawnContext {
        SpawnContext {
            exe_dir: None,
            base_env: [
                ("PATH", "/usr/bin:/bin"),
                ("NOTIFY_SOCKET", "/run/systemd/notify"),
                ("WATCHDOG_USEC", "30000000"),
                ("WATCHDOG_PID", "4242"),
                ("KEPT", "yes"),
            ]
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
            socket: PathBuf::from("/run/dynsup/dynsup.sock"),
            notify_socket: Some("@dynsup-notify-test".to_string()),
            daemon_pid: 4242,
        }
    }

    fn spec(edit: impl FnOnce(&mut Template)) -> ChildSpec {
        let mut template = Template::new("t", vec!["sh".to_string(), "-c".to_string()]);
        edit(&mut template);
        ChildSpec::new("w_1".into(), Rc::new(template), None, Vec::new()).expect("spec")
    }

    fn env_of(plan: &ExecPlan) -> Vec<String> {
        plan.envp
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect()
    }

    fn value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
        env.iter()
            .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
    }

    #[test]
    fn the_daemons_own_sd_notify_variables_never_reach_a_plain_worker() {
        let plan = ExecPlan::new(&spec(|_| {}), &ctx()).expect("plan");
        let env = env_of(&plan);
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            assert_eq!(value(&env, key), None, "{key} leaked: {env:?}");
        }
        assert_eq!(value(&env, "KEPT"), Some("yes"));
        assert_eq!(value(&env, "DYNSUP_NAME"), Some("w_1"));
    }

    #[test]
    fn a_notify_worker_gets_the_daemons_socket_and_no_watchdog() {
        let plan = ExecPlan::new(&spec(|t| t.ready = Readiness::Notify), &ctx()).expect("plan");
        let env = env_of(&plan);
        assert_eq!(value(&env, "NOTIFY_SOCKET"), Some("@dynsup-notify-test"));
        assert_eq!(value(&env, "WATCHDOG_USEC"), None);
        assert_eq!(value(&env, "WATCHDOG_PID"), None);
    }

    #[test]
    fn a_watchdog_worker_gets_its_interval_and_the_socket_even_with_ready_exec() {
        let plan = ExecPlan::new(&spec(|t| t.watchdog_ms = Some(1500)), &ctx()).expect("plan");
        let env = env_of(&plan);
        assert_eq!(value(&env, "WATCHDOG_USEC"), Some("1500000"));
        assert_eq!(value(&env, "NOTIFY_SOCKET"), Some("@dynsup-notify-test"));
        assert_eq!(value(&env, "WATCHDOG_PID"), None, "never WATCHDOG_PID");
        // A template's `env` cannot fake them either.
        let plan = ExecPlan::new(
            &spec(|t| {
                t.env = vec![
                    ("WATCHDOG_USEC".to_string(), "1".to_string()),
                    ("WATCHDOG_PID".to_string(), "1".to_string()),
                ]
            }),
            &ctx(),
        )
        .expect("plan");
        let env = env_of(&plan);
        assert_eq!(value(&env, "WATCHDOG_USEC"), None);
        assert_eq!(value(&env, "WATCHDOG_PID"), None);
    }

    #[test]
    fn a_probe_runs_its_command_with_the_workers_environment_minus_sd_notify() {
        let health = HealthCheck {
            command: vec!["true".to_string(), "--check".to_string()],
            interval_ms: 100,
            timeout_ms: 100,
            failures: 3,
        };
        let spec = spec(|t| {
            t.watchdog_ms = Some(1000);
            t.ready = Readiness::Notify;
            t.env = vec![("FROM_TEMPLATE".to_string(), "1".to_string())];
            t.umask = Some(0o027);
            t.health = Some(health);
        });
        let plan = ExecPlan::for_probe(&spec, &ctx()).expect("plan");
        let argv: Vec<_> = plan.argv.iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(argv, ["true", "--check"]);
        assert!(plan.program.to_string_lossy().ends_with("/true"));
        assert_eq!(plan.umask, Some(0o027));
        let env = env_of(&plan);
        assert_eq!(value(&env, "DYNSUP_NAME"), Some("w_1"));
        assert_eq!(value(&env, "FROM_TEMPLATE"), Some("1"));
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            assert_eq!(value(&env, key), None, "{key} given to a probe: {env:?}");
        }
        // No health check: no plan.
        assert!(ExecPlan::for_probe(&super::tests::spec(|_| {}), &ctx()).is_err());
    }

    #[test]
    fn env_precedence_base_template_files_own_then_the_daemons() {
        let dir = std::env::temp_dir().join(format!("dynsup-spawn-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.env");
        std::fs::write(
            &file,
            "KEPT=file\nB=file\nC=file\nDYNSUP_NAME=fake\nNOTIFY_SOCKET=/fake\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let own = [("C", "own"), ("DYNSUP_NAME", "fake2")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let spec = spec(|t| {
            t.env = [("A", "template"), ("B", "template"), ("C", "template")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec();
            t.env_files = vec![
                crate::core::EnvFile {
                    path: path.clone(),
                    optional: false,
                },
                crate::core::EnvFile {
                    path: format!("{path}.missing"),
                    optional: true,
                },
            ];
        })
        .with_env(own);
        let plan = ExecPlan::new(&spec, &ctx()).expect("plan");
        let env = env_of(&plan);
        assert_eq!(value(&env, "KEPT"), Some("file"));
        assert_eq!(value(&env, "A"), Some("template"));
        assert_eq!(value(&env, "B"), Some("file"));
        assert_eq!(value(&env, "C"), Some("own"));
        assert_eq!(value(&env, "DYNSUP_NAME"), Some("w_1"));
        assert_eq!(value(&env, "NOTIFY_SOCKET"), None);
        // A syntax error fails the plan, marked as the env file's fault.
        std::fs::write(&file, "B=file\nnot an assignment\n").unwrap();
        let err = ExecPlan::new(&spec, &ctx()).err().expect("refused");
        assert!(err.bad_env_file && !err.shortage, "{err:?}");
        assert_eq!(
            err.message,
            format!("{path}:2: expected KEY=VALUE, found \"not an assignment\"")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
