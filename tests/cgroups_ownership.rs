//! One daemon, one sub-tree: with `cgroup = true`, daemons that share a cgroup root
//! (the same `cgroup_root`, or the default when they start from the same cgroup) each
//! keep their workers in a sub-tree of their own, `BASE/daemon-ID` (ID named after
//! the socket path), locked for the daemon's life. A `stop`, a restart, a shutdown or
//! the start-up cleanup of one daemon never touches another's workers, even when their
//! workers have the same names; a second daemon for a taken sub-tree is refused (exit
//! 2, naming the holder's pid); and what a `kill -9`ed daemon's workers left in its
//! sub-tree is killed when it starts again, before its workers are restored.
//!
//! Each worker is `sh -c "sleep 1234 & exec sleep 999"`: a main process and a
//! background child in the same process group and cgroup. Without a writable cgroup2
//! that offers `cgroup.kill` the tests print why and pass without checking anything.

mod common;
use common::*;
use std::rc::Rc;

/// `cgroup = true` (with `cgroup_root` when given, a TOML string), a `state_file` when
/// given, and template `bg`: a main process `sleep 999` and its background child
/// `sleep 1234`.
fn config(cgroup_root: Option<&str>, state_file: Option<&str>) -> String {
    let mut supervisor = "cgroup = true\n".to_string();
    if let Some(root) = cgroup_root {
        supervisor.push_str(&format!("cgroup_root = {root}\n"));
    }
    if let Some(state) = state_file {
        supervisor.push_str(&format!("state_file = {}\n", toml_str(state)));
    }
    let template = r#"
[templates.bg]
command = ["sh", "-c", "sleep 1234 & exec sleep 999"]
restart = "transient"
"#;
    // The keys go on in the [supervisor] table that LENIENT_SUPERVISOR opens.
    [LENIENT_SUPERVISOR, &supervisor, template].concat()
}

/// A cgroup of this test's own, or `None` (the reason printed) when there is none.
fn test_cgroup(test: &str) -> Option<TestCgroup> {
    match TestCgroup::new() {
        Ok(cg) => Some(cg),
        Err(why) => {
            eprintln!("SKIPPED {test}: no usable cgroup v2 on this machine: {why}");
            None
        }
    }
}

/// One `bg` worker's processes: the main one (`sleep 999`) and its background child
/// (`sleep 1234`).
#[derive(Debug, Clone, Copy)]
struct Family {
    main: Stat,
    background: Stat,
}

impl Family {
    /// Both pids, sorted.
    fn pids(&self) -> Vec<i32> {
        let mut pids = vec![self.main.pid, self.background.pid];
        pids.sort();
        pids
    }

    fn is_alive(&self) -> bool {
        !is_gone(&self.main) && !is_gone(&self.background)
    }
}

/// Waits until worker `name` (main pid `main`) of the daemon with sub-tree `own` has
/// exec'd `sleep 999` and started its background `sleep 1234`, and its group holds
/// exactly those two.
#[track_caller]
fn family(d: &TestDaemon, own: &Subtree, name: &str, main: i32) -> Family {
    let family = d.wait_until(
        DEADLINE,
        &format!("{name} (pid {main}) to run sleep 999 with its sleep 1234 in its group"),
        || {
            if cmdline(main) != ["sleep", "999"] {
                return None;
            }
            let pids = own.procs(name);
            let background = pids
                .iter()
                .filter_map(|&p| stat(p))
                .find(|s| s.ppid == main && cmdline(s.pid) == ["sleep", "1234"])?;
            let family = Family {
                main: stat(main)?,
                background,
            };
            (pids == family.pids()).then_some(family)
        },
    );
    for pid in family.pids() {
        assert_eq!(
            cgroup_of(pid),
            Some(own.worker_path(name)),
            "pid {pid} of {name} is not in its daemon's group"
        );
    }
    family
}

/// `name` of daemon `d` is `family`, untouched: the same pid, both processes alive, no
/// restart, its group holding just them, and `ps` saying so.
#[track_caller]
fn assert_untouched(d: &TestDaemon, own: &Subtree, name: &str, family: &Family) {
    assert!(
        family.is_alive(),
        "{name}'s processes {family:?} were killed{}",
        d.log_tail()
    );
    assert_eq!(d.lookup(name), Some(family.main.pid), "{}", d.log_tail());
    let row = d.list_one(name).expect("listed");
    assert_eq!(row.restarts, 0, "{row:?}{}", d.log_tail());
    assert_eq!(own.procs(name), family.pids());
    assert_eq!(ps_of(d, name), family.pids());
}

/// `ps NAME` through the socket, sorted.
#[track_caller]
fn ps_of(d: &TestDaemon, name: &str) -> Vec<i32> {
    let mut pids = d.ps(Some(name)).remove(0).1;
    pids.sort();
    pids
}

#[track_caller]
fn wait_gone(d: &TestDaemon, what: &str, family: &Family) {
    d.wait_until(DEADLINE, what, || {
        (is_gone(&family.main) && is_gone(&family.background)).then_some(())
    });
}

/// SIGTERM; exit 0; the daemon's sub-tree is gone with its workers.
#[track_caller]
fn shut_down(d: &mut TestDaemon, own: &Subtree, families: &[&Family]) {
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0), "{}", d.log_tail());
    for family in families {
        wait_gone(d, "the workers to be gone after the shutdown", family);
    }
    assert!(
        !own.dir.exists(),
        "{} is left after the shutdown",
        own.dir.display()
    );
}

/// Two daemons (two sockets) with one `cgroup_root`, each with a worker named `ng`: each
/// has its own sub-tree; B's start, B's `stop ng`, A's SIGKILL and restart of its `ng`,
/// and A's shutdown each reach only that daemon's processes.
#[test]
fn two_daemons_on_one_cgroup_root_touch_only_their_own_workers() {
    let Some(cg) = test_cgroup("two_daemons_on_one_cgroup_root_touch_only_their_own_workers")
    else {
        return;
    };
    let cfg = config(Some(&cg.toml()), None);
    let mut a = TestDaemon::start(&cfg);
    let a_own = cg.subtree_of(&a);
    let a_ng = family(&a, &a_own, "ng", a.start_worker("ng", Some("bg"), &[]));

    // B starts after A's worker runs: its start-up cleanup leaves A's group alone.
    let mut b = TestDaemon::start(&cfg);
    let b_own = cg.subtree_of(&b);
    assert_ne!(a_own.dir, b_own.dir);
    for (d, own) in [(&a, &a_own), (&b, &b_own)] {
        let said = format!(
            "each worker runs in its own cgroup under {}, this daemon's sub-tree of {}",
            own.dir.display(),
            cg.root.display()
        );
        assert!(d.log().contains(&said), "{said:?} not in{}", d.log_tail());
    }
    assert_untouched(&a, &a_own, "ng", &a_ng);
    let b_ng = family(&b, &b_own, "ng", b.start_worker("ng", Some("bg"), &[]));
    assert_untouched(&a, &a_own, "ng", &a_ng);
    assert_untouched(&b, &b_own, "ng", &b_ng);

    // B's `stop ng` kills B's ng and its background child, not A's.
    b.request_ok(&stop_req("ng", None));
    wait_gone(&b, "B's ng to be gone after B's stop", &b_ng);
    assert_untouched(&a, &a_own, "ng", &a_ng);
    let b_ng = family(&b, &b_own, "ng", b.start_worker("ng", Some("bg"), &[]));

    // A's ng is SIGKILLed: A restarts it, and kills what it left in A's group only.
    a.request_ok(&kill_req("ng", Some("SIGKILL")));
    let restarted = a.wait_restarted("ng", a_ng.main.pid);
    wait_gone(&a, "A's first ng to be gone", &a_ng);
    let a_ng = family(&a, &a_own, "ng", restarted);
    assert_untouched(&b, &b_own, "ng", &b_ng);

    // A's shutdown removes A's sub-tree and nothing of B's.
    shut_down(&mut a, &a_own, &[&a_ng]);
    assert_untouched(&b, &b_own, "ng", &b_ng);
    assert!(b_own.worker("ng").exists());
    shut_down(&mut b, &b_own, &[&b_ng]);
}

/// Two daemons started from one cgroup without `cgroup_root` share the default BASE
/// (`dynsup` under that cgroup): each works in its own sub-tree of it, and B's stop and
/// shutdown leave A's `ng` alone. The last one out removes BASE.
#[test]
fn two_daemons_started_from_one_cgroup_share_the_default_root_but_not_their_workers() {
    let Some(cg) = test_cgroup(
        "two_daemons_started_from_one_cgroup_share_the_default_root_but_not_their_workers",
    ) else {
        return;
    };
    let wrapper = cg.enter_wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let cfg = config(None, None);
    let mut a = Launch::new(&cfg).wrapper(&wrapper).start();
    let mut b = Launch::new(&cfg).wrapper(&wrapper).start();
    let (a_own, b_own) = (cg.default_subtree_of(&a), cg.default_subtree_of(&b));
    let base = cg.root.join("dynsup");
    assert_ne!(a_own.dir, b_own.dir);
    for d in [&a, &b] {
        assert_eq!(
            cgroup_of(d.pid()),
            Some(format!(
                "/{}",
                cg.root.strip_prefix(&cg.mount).unwrap().display()
            )),
            "the daemon was not started in the test's cgroup"
        );
    }
    let a_ng = family(&a, &a_own, "ng", a.start_worker("ng", Some("bg"), &[]));
    let b_ng = family(&b, &b_own, "ng", b.start_worker("ng", Some("bg"), &[]));

    b.request_ok(&stop_req("ng", None));
    wait_gone(&b, "B's ng to be gone after B's stop", &b_ng);
    assert_untouched(&a, &a_own, "ng", &a_ng);

    let b_ng = family(&b, &b_own, "ng", b.start_worker("ng", Some("bg"), &[]));
    shut_down(&mut b, &b_own, &[&b_ng]);
    assert_untouched(&a, &a_own, "ng", &a_ng);
    assert!(base.exists(), "B removed the BASE that A still uses");

    shut_down(&mut a, &a_own, &[&a_ng]);
    assert!(
        !base.exists(),
        "A created {} and left it behind",
        base.display()
    );
}

/// A daemon whose sub-tree another live daemon holds is refused: exit 2, and the log
/// names the holder's pid and the sub-tree. Two live daemons can only meet on one
/// sub-tree when the first one's socket file was moved or deleted, so that the second
/// could bind the same path; the first one's workers are untouched.
#[test]
fn a_second_daemon_for_a_held_subtree_is_refused_naming_the_holder() {
    let Some(cg) = test_cgroup("a_second_daemon_for_a_held_subtree_is_refused_naming_the_holder")
    else {
        return;
    };
    let cfg = config(Some(&cg.toml()), None);
    let a = TestDaemon::start(&cfg);
    let a_own = cg.subtree_of(&a);
    let a_ng = family(&a, &a_own, "ng", a.start_worker("ng", Some("bg"), &[]));
    // A keeps listening on its socket under another name.
    let moved = a.dir().join("moved.sock");
    std::fs::rename(a.socket(), &moved).expect("move A's socket");

    let mut b = Launch::new(&cfg)
        .in_dir(a.dir())
        .wait(WaitFor::Nothing)
        .start();
    assert_eq!(b.socket(), a.socket());
    assert_eq!(b.wait_exit(DEADLINE).code(), Some(2), "{}", b.log_tail());
    let refusal = format!(
        "another dynsup daemon (pid {}) owns cgroup sub-tree {} (named after the socket path {}); stop that daemon first, or give this one another --socket",
        a.pid(),
        a_own.dir.display(),
        a.socket().display()
    );
    let lines = lines_with(&b.log(), &refusal);
    assert!(
        lines.len() == 1 && lines[0].contains("ERROR"),
        "{refusal:?} not logged once as an error{}",
        b.log_tail()
    );
    assert!(
        !b.log().contains("listening on"),
        "the refused daemon listened{}",
        b.log_tail()
    );
    assert!(!b.socket().exists(), "the refused daemon left its socket");

    // A and its worker are untouched, and A still answers (on the moved socket).
    assert!(a_ng.is_alive(), "{a_ng:?} were killed{}", b.log_tail());
    assert_eq!(a_own.procs("ng"), a_ng.pids());
    let reply = Client::connect(&moved)
        .expect("connect to A")
        .request(&lookup_req("ng"));
    assert_eq!(reply.pid, Some(a_ng.main.pid), "{reply:?}{}", a.log_tail());
}

/// `kill -9` of a daemon with cgroups and a state file: its worker dies (PDEATHSIG) but
/// the worker's background child survives in the worker's group. Started again on the
/// same socket and state file, the daemon takes its sub-tree back (the lock died with
/// the old daemon), kills the leftover before it listens — before the worker is
/// restored — and the restored worker's group holds only the restored worker's own
/// processes.
#[test]
fn leftovers_of_a_killed_daemon_die_before_its_workers_are_restored() {
    let Some(cg) = test_cgroup("leftovers_of_a_killed_daemon_die_before_its_workers_are_restored")
    else {
        return;
    };
    let dir = Rc::new(TestDir::new());
    let state = dir.join("state.json");
    let cfg = config(Some(&cg.toml()), Some(state.to_str().unwrap()));
    let mut old = Launch::new(&cfg).in_dir(dir.clone()).start();
    let own = cg.subtree_of(&old);
    let first = family(&old, &own, "ng", old.start_worker("ng", Some("bg"), &[]));

    old.kill_hard();
    old.wait_until(DEADLINE, "the old worker to die with its daemon", || {
        is_gone(&first.main).then_some(())
    });
    old.wait_until(DEADLINE, "the old group to hold only the leftover", || {
        (own.procs("ng") == [first.background.pid]).then_some(())
    });
    assert!(
        !is_gone(&first.background),
        "the background child did not survive the daemon's kill -9: nothing to test"
    );

    let mut new = old.start_another(&cfg);
    // Listening means the leftover is already dead.
    assert!(
        is_gone(&first.background),
        "the leftover {:?} survived the daemon's restart{}",
        first.background,
        new.log_tail()
    );
    let said = format!(
        "ng: killing 1 process(es) this daemon's previous run left in its cgroup (pids {})",
        first.background.pid
    );
    assert_eq!(
        lines_with(&new.log(), &said).len(),
        1,
        "{said:?} not logged once{}",
        new.log_tail()
    );
    let restored = new.wait_until(DEADLINE, "ng to be restored", || new.lookup("ng"));
    let second = family(&new, &own, "ng", restored);
    // The restored worker's group: its own two processes, nothing of the old one's.
    assert_eq!(own.procs("ng"), second.pids());
    assert_eq!(ps_of(&new, "ng"), second.pids());
    assert_eq!(second.background.ppid, restored);
    shut_down(&mut new, &own, &[&second]);
}
