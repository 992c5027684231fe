//! Fork + exec of one worker: the only `unsafe` code in the daemon.
//!
//! Everything the child needs (program path, argv, envp, cwd as C strings; the pipes)
//! is prepared before `fork`, so between `fork` and `execve` the child only makes
//! async-signal-safe syscalls and touches no allocator or lock. In the child:
//!
//! 1. `setpgid(0, 0)`: its own process group, so `stop` can signal the whole group.
//! 2. Into its cgroup, when the daemon uses cgroups (a write of "0" to the
//!    `cgroup.procs` fd the parent opened).
//! 3. Resource limits (`setrlimit`), while still privileged enough to raise them.
//! 4. `setgroups`, `setgid`, `setuid`, in that order, when the template names a user.
//! 5. `prctl(PR_SET_PDEATHSIG, SIGKILL)` (after the uid change, which would clear it),
//!    then exit at once if the daemon is already gone (`getppid()` differs from the
//!    daemon's pid read before fork); then `PR_SET_NO_NEW_PRIVS` and the umask.
//! 6. Every signal disposition back to `SIG_DFL` and an empty signal mask: ignored
//!    signals (Rust ignores SIGPIPE) would otherwise survive exec.
//! 7. stdin = the mailbox pipe, stdout/stderr = pipes the daemon reads.
//! 8. `chdir` to the template's cwd, then `execve`.
//!
//! A failure at any step is written (stage, errno) to a close-on-exec status pipe and
//! the child `_exit`s; the parent reads that pipe until EOF, so exec failures are
//! reported synchronously to the `start` caller and the pid is known to have exec'd
//! before the daemon returns to its loop.

use crate::core::{ChildSpec, Credentials, Readiness, Resource};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::pipe2;
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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

impl ExecPlan {
    /// Resolve the program and build argv/envp. Fails when a bare program name is found
    /// neither next to dynsup nor in `PATH`, or a string holds a NUL byte.
    pub fn new(spec: &ChildSpec, ctx: &SpawnContext) -> Result<ExecPlan, String> {
        let program = resolve_program(&spec.argv[0], ctx)?;
        let argv = spec
            .argv
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
        for (key, value) in &template.env {
            env.insert(key.into(), value.into());
        }
        env.insert("DYNSUP_NAME".into(), OsStr::new(&*spec.name).to_os_string());
        env.insert("DYNSUP_SOCKET".into(), ctx.socket.clone().into_os_string());
        // Only workers that report readiness see a NOTIFY_SOCKET: one inherited from
        // the daemon's own systemd unit must never reach a worker.
        env.remove(OsStr::new("NOTIFY_SOCKET"));
        if let (Readiness::Notify, Some(notify)) = (template.ready, &ctx.notify_socket) {
            env.insert("NOTIFY_SOCKET".into(), notify.into());
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
        let rlimits = template
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

/// A running worker: its pid and the daemon's ends of its pipes (non-blocking).
pub struct Spawned {
    pub pid: i32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

const STAGE_SETPGID: i32 = 1;
const STAGE_PDEATHSIG: i32 = 2;
const STAGE_DUP2: i32 = 3;
const STAGE_CHDIR: i32 = 4;
const STAGE_EXEC: i32 = 5;
const STAGE_RLIMIT: i32 = 6;
const STAGE_SETGROUPS: i32 = 7;
const STAGE_SETGID: i32 = 8;
const STAGE_SETUID: i32 = 9;
const STAGE_NO_NEW_PRIVS: i32 = 10;
const STAGE_CGROUP: i32 = 11;

/// Fork and exec the plan. `cgroup_procs`, if given, is the open `cgroup.procs` of the
/// worker's cgroup: the child joins it first. Returns once the child has exec'd, or
/// with the reason it could not (the failed child is already reaped).
pub fn spawn(
    plan: &ExecPlan,
    daemon_pid: i32,
    cgroup_procs: Option<&OwnedFd>,
) -> Result<Spawned, String> {
    let (stdin_r, stdin_w) = cloexec_pipe()?;
    let (stdout_r, stdout_w) = cloexec_pipe()?;
    let (stderr_r, stderr_w) = cloexec_pipe()?;
    let (status_r, status_w) = cloexec_pipe()?;

    // Pointer arrays for execve, built before fork: the child must not allocate.
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let child = ChildFds {
        stdin: stdin_r.as_raw_fd(),
        stdout: stdout_w.as_raw_fd(),
        stderr: stderr_w.as_raw_fd(),
        status: status_w.as_raw_fd(),
        cgroup_procs: cgroup_procs.map(AsRawFd::as_raw_fd),
    };

    // SAFETY: the daemon is single-threaded (one event loop thread, and signal-hook's
    // handlers only write to a pipe), so no lock can be held by another thread at the
    // fork. The child runs only `exec_child`, which makes async-signal-safe syscalls on
    // memory prepared above and never returns. PR_SET_PDEATHSIG is tied to the thread
    // that forks; this is the daemon's only thread, which lives as long as the daemon.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; we are in the freshly forked child.
        unsafe { exec_child(plan, &argv, &envp, &child, daemon_pid) }
    }

    // Parent: close the child's ends, so EOF on the status pipe means "exec'd".
    drop((stdin_r, stdout_w, stderr_w, status_w));
    let mut report = [0u8; 8];
    let read = read_full(&status_r, &mut report);
    drop(status_r);
    match read {
        Ok(0) => {}
        Ok(8) => {
            super::process::reap_pid(pid);
            let stage = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
            let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
            let err = io::Error::from_raw_os_error(errno);
            let program = String::from_utf8_lossy(plan.program.as_bytes());
            return Err(match stage {
                STAGE_SETPGID => format!("setpgid failed: {err}"),
                STAGE_PDEATHSIG => format!("prctl(PR_SET_PDEATHSIG) failed: {err}"),
                STAGE_DUP2 => format!("redirecting stdio failed: {err}"),
                STAGE_RLIMIT => format!("setrlimit failed: {err}"),
                STAGE_SETGROUPS => format!("setgroups failed: {err}"),
                STAGE_SETGID => format!("setgid failed: {err}"),
                STAGE_SETUID => format!("setuid failed: {err}"),
                STAGE_NO_NEW_PRIVS => format!("prctl(PR_SET_NO_NEW_PRIVS) failed: {err}"),
                STAGE_CGROUP => format!("joining the worker's cgroup failed: {err}"),
                STAGE_CHDIR => format!(
                    "cannot change directory to {}: {err}",
                    plan.cwd
                        .as_deref()
                        .map(|c| String::from_utf8_lossy(c.to_bytes()).into_owned())
                        .unwrap_or_default()
                ),
                _ => format!("cannot execute {program}: {err}"),
            });
        }
        Ok(_) | Err(_) => {
            // A short report cannot happen (8 bytes < PIPE_BUF are written atomically);
            // if it does, the child's state is unknown: kill and reap it.
            let _ = super::process::send_signal(pid, crate::signal::Signal::KILL, false);
            super::process::reap_pid(pid);
            return Err("the child failed before exec and its report was unreadable".into());
        }
    }
    for fd in [&stdin_w, &stdout_r, &stderr_r] {
        set_nonblocking(fd).map_err(|e| format!("cannot make a worker pipe non-blocking: {e}"))?;
    }
    Ok(Spawned {
        pid,
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
    })
}

struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    status: RawFd,
    cgroup_procs: Option<RawFd>,
}

/// The child's side of the fork. Never returns.
///
/// # Safety
/// Must be called only in the child of `fork`, with pointers that stay valid (they do:
/// the child has a copy of the parent's memory and nothing frees it before exec).
unsafe fn exec_child(
    plan: &ExecPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: &ChildFds,
    daemon_pid: i32,
) -> ! {
    let fail = |stage: i32| -> ! {
        let errno = *libc::__errno_location();
        let mut report = [0u8; 8];
        report[..4].copy_from_slice(&stage.to_ne_bytes());
        report[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(fds.status, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    };
    if libc::setpgid(0, 0) != 0 {
        fail(STAGE_SETPGID);
    }
    if let Some(fd) = fds.cgroup_procs {
        // "0" moves the writing process; its descendants will be born inside.
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            fail(STAGE_CGROUP);
        }
    }
    for (resource, limit) in &plan.rlimits {
        if libc::setrlimit(*resource, limit) != 0 {
            fail(STAGE_RLIMIT);
        }
    }
    if let Some(creds) = &plan.credentials {
        if libc::setgroups(creds.groups.len(), creds.groups.as_ptr()) != 0 {
            fail(STAGE_SETGROUPS);
        }
        if libc::setgid(creds.gid) != 0 {
            fail(STAGE_SETGID);
        }
        if libc::setuid(creds.uid) != 0 {
            fail(STAGE_SETUID);
        }
    }
    // After the uid change: changing credentials clears the parent-death signal.
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
        fail(STAGE_PDEATHSIG);
    }
    if libc::getppid() != daemon_pid {
        // The daemon died between fork and prctl: nobody will ever supervise us.
        libc::_exit(1);
    }
    if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        fail(STAGE_NO_NEW_PRIVS);
    }
    if let Some(mask) = plan.umask {
        libc::umask(mask);
    }
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // Errors (glibc reserves two real-time signals) are harmless: those
            // signals cannot have been set by the daemon either.
            libc::signal(signal, libc::SIG_DFL);
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    // The daemon keeps fds 0-2 open (daemon::run), so these pipe fds are all >= 3 and
    // dup2 never overwrites one of them; dup2 also clears close-on-exec on the copy.
    for (fd, target) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
        if libc::dup2(fd, target) < 0 {
            fail(STAGE_DUP2);
        }
    }
    if let Some(cwd) = &plan.cwd {
        if libc::chdir(cwd.as_ptr()) != 0 {
            fail(STAGE_CHDIR);
        }
    }
    libc::execve(plan.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(STAGE_EXEC)
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Read until `buf` is full or EOF; retries on EINTR. Blocking: used only on the
/// status pipe, which closes as soon as the child execs or fails.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> nix::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match nix::unistd::read(fd, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
