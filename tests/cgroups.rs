//! No escaped processes: with `cgroup = true` every worker runs in its own cgroup v2
//! group, and `cgroup.kill` after each reap kills whatever it left behind, including a
//! grandchild that called `setsid` (which a process-group kill misses) and holds a
//! listening TCP port — the peers' most reported bug (supervisord #1101, pm2 #6084).
//!
//! Each test uses its own `cgroup_root` (`<cgroup2 mount>/dynsup-test-<unique>`),
//! removed at the end; the daemon's workers are in its sub-tree of it
//! (`ROOT/daemon-ID`; `tests/cgroups_ownership.rs` tests the ownership of sub-trees). Without a writable cgroup2 that offers `cgroup.kill` the tests
//! print why and pass without checking anything (the fallback test always runs).

mod common;
use common::*;
use std::net::TcpListener;

/// The worker: forks a child that calls `setsid` and forks the grandchild, which binds
/// 127.0.0.1:PORT and listens; the child exits at once, so the grandchild is orphaned
/// (it comes back to the daemon, a subreaper), in its own session and process group.
/// The grandchild writes `bound-<worker pid>` (its own pid) once it listens, or
/// `failed-<worker pid>` if the address is taken. The worker itself sleeps.
const HOLDER: &str = r#"
import os, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
me = os.getpid()
def mark(name, text):
    tmp = os.path.join(out, "." + name)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(out, name))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(8)
        except OSError as e:
            mark("failed-%d" % me, "%d %s" % (os.getpid(), e))
            os._exit(1)
        mark("bound-%d" % me, str(os.getpid()))
        while True:
            time.sleep(3600)
    os._exit(0)
os.wait()
print("left a setsid grandchild behind", flush=True)
while True:
    time.sleep(3600)
"#;

/// Every worker in a cgroup of its own under `cgroup_root` (a TOML string); template
/// `holder` runs [`HOLDER`].
fn config(cgroup_root: &str) -> String {
    let cgroups = format!("cgroup = true\ncgroup_root = {cgroup_root}\n");
    let holder = format!(
        r#"
[templates.holder]
command = [{python}, "-c", {script}]
restart = "transient"
"#,
        python = toml_str(python3().to_str().unwrap()),
        script = toml_str(HOLDER),
    );
    // The cgroup keys go on in the [supervisor] table that LENIENT_SUPERVISOR opens.
    [LENIENT_SUPERVISOR, &cgroups, &holder].concat()
}

/// A cgroup root for this test, or `None` (the reason printed) when there is none.
fn test_cgroup(test: &str) -> Option<TestCgroup> {
    match TestCgroup::new() {
        Ok(cg) => Some(cg),
        Err(why) => {
            eprintln!("SKIPPED {test}: no usable cgroup v2 on this machine: {why}");
            None
        }
    }
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The `holder` workers of one test: the port their grandchildren bind (free when the
/// test begins) and the directory where the grandchildren say so.
struct Holders {
    port: u16,
    dir: TestDir,
}

impl Holders {
    fn new() -> Holders {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Holders {
            port,
            dir: TestDir::new(),
        }
    }

    /// Starts worker `srv` of template `holder`; returns its pid.
    #[track_caller]
    fn start(&self, d: &TestDaemon) -> i32 {
        let port = self.port.to_string();
        d.start_worker(
            "srv",
            Some("holder"),
            &[&port, self.dir.path().to_str().unwrap()],
        )
    }

    /// The grandchild of worker `worker` once it listens; panics if it could not bind.
    #[track_caller]
    fn grandchild_of(&self, d: &TestDaemon, worker: i32) -> Stat {
        let bound = self.dir.join(&format!("bound-{worker}"));
        let failed = self.dir.join(&format!("failed-{worker}"));
        let pid = d.wait_until(
            DEADLINE,
            &format!("worker {worker}'s grandchild to listen"),
            || {
                if let Ok(why) = std::fs::read_to_string(&failed) {
                    panic!(
                        "worker {worker}'s grandchild could not bind: {why}{}",
                        d.log_tail()
                    );
                }
                std::fs::read_to_string(&bound)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
            },
        );
        let s = stat(pid).unwrap_or_else(|| panic!("grandchild {pid} is not in /proc"));
        // Out of the worker's process group and session: a process-group kill misses it.
        assert_ne!(
            s.pgrp, worker,
            "the grandchild is in the worker's group: {s:?}"
        );
        assert_eq!(
            status_field(pid, "NSsid"),
            Some(s.pgrp.to_string()),
            "the grandchild did not get a session of its own"
        );
        s
    }
}

/// SIGTERM and status 0; every process recorded is gone (the grandchildren included:
/// the shutdown's cgroup.kill got them).
#[track_caller]
fn shut_down(mut d: TestDaemon, processes: &[Stat]) {
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0), "{}", d.log_tail());
    for s in processes {
        d.wait_until(
            DEADLINE,
            &format!("{s:?} to be gone after the shutdown"),
            || is_gone(s).then_some(()),
        );
    }
}

/// `stop` kills the setsid grandchild too; the port is free again; `ps` and
/// `list --tree` showed the worker's processes, the grandchild included.
#[test]
fn stop_leaves_no_grandchild_and_frees_the_port() {
    let Some(cg) = test_cgroup("stop_leaves_no_grandchild_and_frees_the_port") else {
        return;
    };
    let holders = Holders::new();
    let port = holders.port;
    let d = TestDaemon::start(&config(&cg.toml()));
    let own = cg.subtree_of(&d);
    assert!(
        d.log().contains(&format!(
            "each worker runs in its own cgroup under {}, this daemon's sub-tree of {}",
            own.dir.display(),
            cg.root.display()
        )),
        "{}",
        d.log_tail()
    );
    let worker = holders.start(&d);
    let g = holders.grandchild_of(&d, worker);
    assert!(!can_bind(port), "the grandchild does not hold port {port}");
    assert_eq!(
        g.ppid,
        d.pid(),
        "the orphan did not come back to the daemon"
    );
    for pid in [worker, g.pid] {
        assert_eq!(
            cgroup_of(pid),
            Some(own.worker_path("srv")),
            "pid {pid} is not in the worker's cgroup"
        );
    }

    // `ps` (one worker, and all) and `list --tree` show the grandchild.
    for (name, pids) in [d.ps(Some("srv")), d.ps(None)].concat() {
        assert_eq!(name, "srv");
        assert!(
            pids.contains(&worker) && pids.contains(&g.pid),
            "ps: {pids:?} lacks {worker} or {}",
            g.pid
        );
    }
    let out = d.cli(&["list", "--tree"]);
    assert!(out.status.success(), "{out:?}");
    let tree = stdout_of(&out);
    for pid in [worker, g.pid] {
        assert!(
            tree.lines()
                .any(|l| l.contains(&format!("─ {pid} ")) && l.contains("python")),
            "list --tree does not show {pid}:\n{tree}"
        );
    }

    let reply = d.request_ok(&stop_req("srv", None));
    assert!(reply.stopped.is_some(), "{reply:?}");
    d.wait_until(DEADLINE, "the setsid grandchild to be gone", || {
        is_gone(&g).then_some(())
    });
    assert!(can_bind(port), "port {port} is still taken after stop");
    d.wait_until(DEADLINE, "the grandchild to be reaped", || {
        zombie_children_of(d.pid()).is_empty().then_some(())
    });
    d.wait_until(DEADLINE, "the worker's empty cgroup to be removed", || {
        (!own.worker("srv").exists()).then_some(())
    });

    // The name can be started again and binds the same address.
    let again = holders.start(&d);
    let g2 = holders.grandchild_of(&d, again);
    shut_down(d, &[g2, stat(again).unwrap_or(g2)]);
}

/// kill -9 of the worker from outside: before the restart, the grandchild is killed,
/// so the restarted worker's grandchild binds the same address.
#[test]
fn sigkill_and_restart_kills_the_grandchild_and_rebinds() {
    let Some(cg) = test_cgroup("sigkill_and_restart_kills_the_grandchild_and_rebinds") else {
        return;
    };
    let holders = Holders::new();
    let d = TestDaemon::start(&config(&cg.toml()));
    let w1 = holders.start(&d);
    let g1 = holders.grandchild_of(&d, w1);
    let w1_stat = stat(w1).expect("worker in /proc");

    send_signal(w1, Signal::SIGKILL);
    let w2 = d.wait_restarted("srv", w1);
    assert!(is_gone(&w1_stat));
    // The restarted worker's grandchild binds the very same address, first try.
    let g2 = holders.grandchild_of(&d, w2);
    assert!(
        is_gone(&g1),
        "the first grandchild {g1:?} survived the restart"
    );
    assert_eq!(cgroup_of(w2), Some(cg.subtree_of(&d).worker_path("srv")));
    let pids = &d.ps(Some("srv"))[0].1;
    assert!(pids.contains(&w2) && pids.contains(&g2.pid), "{pids:?}");
    assert!(!pids.contains(&g1.pid) && !pids.contains(&w1), "{pids:?}");
    let row = d.list_one("srv").unwrap();
    assert_eq!(row.restarts, 1, "{row:?}");
    d.wait_until(DEADLINE, "the first grandchild to be reaped", || {
        zombie_children_of(d.pid()).is_empty().then_some(())
    });
    // Shutdown kills the second grandchild too.
    let w2_stat = stat(w2).expect("worker in /proc");
    shut_down(d, &[g2, w2_stat]);
}

/// `cgroup = true` with a root where no cgroup can be made: the daemon starts anyway,
/// warns once, and falls back to process groups (where a setsid grandchild escapes a
/// stop — exactly what cgroups are for).
#[test]
fn unusable_cgroup_root_falls_back_with_one_warning() {
    let holders = Holders::new();
    let port = holders.port;
    let d = TestDaemon::start(&config(&toml_str("/proc/dynsup-no-cgroups-here")));
    let w = holders.start(&d);
    let g = holders.grandchild_of(&d, w);
    d.start_command("other", Some("holder"), &["sleep", "100000"]);
    let warnings = lines_with(&d.log(), "falling back to process groups");
    assert_eq!(warnings.len(), 1, "{warnings:?}{}", d.log_tail());
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("cgroup = true")
            && warnings[0].contains("/proc"),
        "{warnings:?}"
    );
    assert!(
        !d.log().contains("each worker runs in its own cgroup"),
        "{}",
        d.log_tail()
    );
    // `ps` falls back to the process group: the worker, not the setsid grandchild.
    let pids = &d.ps(Some("srv"))[0].1;
    assert_eq!(pids, &vec![w], "{pids:?}");

    d.request_ok(&stop_req("srv", None));
    d.wait_unregistered("srv");
    assert!(
        !is_gone(&g),
        "without cgroups the setsid grandchild should escape the stop"
    );
    assert!(!can_bind(port));
    // Clean up the escaped process; the daemon (its subreaper) reaps it.
    send_signal(g.pid, Signal::SIGKILL);
    d.wait_until(DEADLINE, "the escaped grandchild to be reaped", || {
        (is_gone(&g) && zombie_children_of(d.pid()).is_empty()).then_some(())
    });
    assert_eq!(
        lines_with(&d.log(), "falling back to process groups").len(),
        1,
        "{}",
        d.log_tail()
    );
}

/// After an orderly shutdown no group is left behind, even when a worker left a process
/// that `cgroup.kill` was still killing: the daemon waits (briefly) for it at exit.
#[test]
fn cgroup_root_is_removed_after_an_orderly_shutdown() {
    let Some(cg) = test_cgroup("cgroup_root_is_removed_after_an_orderly_shutdown") else {
        return;
    };
    let holders = Holders::new();
    let mut d = TestDaemon::start(&config(&cg.toml()));
    let w = holders.start(&d);
    let g = holders.grandchild_of(&d, w);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0), "{}", d.log_tail());
    d.wait_until(DEADLINE, "the grandchild to be gone", || {
        is_gone(&g).then_some(())
    });
    assert!(
        !cg.root.exists(),
        "the daemon left {} behind (holding {:?})",
        cg.root.display(),
        std::fs::read_dir(&cg.root).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
}
