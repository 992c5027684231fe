//! Templates that drop privileges (the tests run as root): `user` (and its groups, as
//! initgroups would set them), `group`, `umask`, `rlimits` and `no_new_privs`, checked
//! in the running worker's /proc. Naming a user while the daemon is not root is a
//! config error (exit status 2), checked with the daemon itself run as `nobody`.

mod common;
use common::*;

const CONFIG: &str = r#"
[templates.locked]
command = ["sleep", "100000"]
user = "nobody"
umask = "0077"
rlimits = { nofile = [100, 200] }
no_new_privs = true

[templates.by_number]
command = ["sleep", "100000"]
user = 65534
group = 0

[templates.group_only]
command = ["sleep", "100000"]
group = "nogroup"
rlimits = { core = "infinity", nproc = 4096, memlock = [65536, 131072] }

[templates.as_root]
command = ["sleep", "100000"]
"#;

/// The soft and hard values of a `/proc/<pid>/limits` row.
fn limits(pid: i32, row: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} in /proc/{pid}/limits:\n{text}"));
    let mut values = line[row.len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}

/// `Uid:`/`Gid:` of /proc status: real, effective, saved, filesystem.
fn ids(pid: i32, field: &str) -> Vec<u32> {
    status_field(pid, field)
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn template_user_umask_rlimits_and_no_new_privs_apply_to_the_worker() {
    let mut d = TestDaemon::start(CONFIG);
    let pid = d.start_worker("locked", Some("locked"), &[]);
    assert_eq!(ids(pid, "Uid"), vec![NOBODY; 4]);
    assert_eq!(ids(pid, "Gid"), vec![NOBODY; 4]);
    // initgroups for nobody: just its primary group; root's groups are gone.
    assert_eq!(status_field(pid, "Groups").as_deref(), Some("65534"));
    assert_eq!(status_field(pid, "Umask").as_deref(), Some("0077"));
    assert_eq!(status_field(pid, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(
        limits(pid, "Max open files"),
        ("100".to_string(), "200".to_string())
    );
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    let env = environ(pid);
    for var in [
        "USER=nobody".to_string(),
        "LOGNAME=nobody".to_string(),
        format!("HOME={}", user.dir.display()),
        "DYNSUP_NAME=locked".to_string(),
    ] {
        assert!(env.contains(&var), "no {var} in {env:?}");
    }
    // The daemon itself is unchanged.
    assert_eq!(ids(d.pid(), "Uid"), vec![0; 4]);
    assert_eq!(status_field(d.pid(), "NoNewPrivs").as_deref(), Some("0"));

    // A template without these settings: root, the daemon's umask, no NoNewPrivs.
    let plain = d.start_worker("plain", Some("as_root"), &[]);
    assert_eq!(ids(plain, "Uid"), vec![0; 4]);
    assert_eq!(status_field(plain, "NoNewPrivs").as_deref(), Some("0"));
    assert_eq!(status_field(plain, "Umask"), status_field(d.pid(), "Umask"));

    // An unprivileged worker is still stopped, and still dies with the daemon
    // (PR_SET_PDEATHSIG is set after the uid change, which would clear it).
    let s = stat(pid).unwrap();
    d.request_ok(&stop_req("locked", None));
    d.wait_unregistered("locked");
    assert!(is_gone(&s));
    let again = d.start_worker("locked", Some("locked"), &[]);
    let again_stat = stat(again).unwrap();
    d.kill_hard();
    wait_until(DEADLINE, "the nobody worker to die with the daemon", || {
        is_gone(&again_stat).then_some(())
    });
}

#[test]
fn user_by_number_group_override_and_group_only() {
    let d = TestDaemon::start(CONFIG);
    let pid = d.start_worker("n", Some("by_number"), &[]);
    assert_eq!(ids(pid, "Uid"), vec![NOBODY; 4]);
    // `group` overrides the user's primary group.
    assert_eq!(ids(pid, "Gid"), vec![0; 4]);
    assert!(environ(pid).contains(&"USER=nobody".to_string()));

    let pid = d.start_worker("g", Some("group_only"), &[]);
    assert_eq!(
        ids(pid, "Uid"),
        vec![0; 4],
        "group alone keeps the daemon's user"
    );
    assert_eq!(ids(pid, "Gid"), vec![NOBODY; 4]);
    assert_eq!(status_field(pid, "Groups").as_deref(), Some("65534"));
    assert_eq!(
        limits(pid, "Max core file size"),
        ("unlimited".to_string(), "unlimited".to_string())
    );
    assert_eq!(
        limits(pid, "Max processes"),
        ("4096".to_string(), "4096".to_string())
    );
    assert_eq!(
        limits(pid, "Max locked memory"),
        ("65536".to_string(), "131072".to_string())
    );
}

/// Not root: a template naming a user (or a group) is a config error, exit status 2,
/// pointing at the key. The same daemon, as nobody, runs fine without it.
#[test]
fn naming_a_user_when_not_root_is_a_config_error() {
    for (config, column) in [
        (
            "[templates.u]\ncommand = [\"sleep\", \"1\"]\numask = \"0077\"\nuser = \"nobody\"\n",
            8,
        ),
        (
            "[templates.g]\ncommand = [\"sleep\", \"1\"]\numask = \"0077\"\ngroup = \"nogroup\"\n",
            9,
        ),
    ] {
        let mut d = Launch::new(config)
            .in_dir(TestDir::owned_by_nobody())
            .user(NOBODY, NOBODY)
            .wait(WaitFor::Nothing)
            .start();
        let status = d.wait_exit(DEADLINE);
        let log = d.log();
        assert_eq!(status.code(), Some(2), "{status:?}: {log}");
        assert!(
            log.contains("sets user/group, but the daemon is not running as root"),
            "{log}"
        );
        // Line 4: the value of `user` / `group`.
        let at = format!("{}:4:{column}: ", d.config_path().display());
        assert!(log.contains(&at), "the error does not point at {at}: {log}");
        assert!(!d.socket().exists(), "a socket was created");
    }

    // The control: the same user, directory and setup, no user/group in the config.
    let mut d = Launch::new("[templates.plain]\ncommand = [\"sleep\", \"100000\"]\n")
        .in_dir(TestDir::owned_by_nobody())
        .user(NOBODY, NOBODY)
        .start();
    assert_eq!(ids(d.pid(), "Uid"), vec![NOBODY; 4]);
    let pid = d.start_worker("mine", None, &[]);
    assert_eq!(ids(pid, "Uid"), vec![NOBODY; 4]);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0), "{}", d.log_tail());
}

/// As root, an unknown user is a config error too (exit 2).
#[test]
fn an_unknown_user_is_a_config_error() {
    let mut d = TestDaemon::spawn(
        "[templates.t]\ncommand = [\"sleep\", \"1\"]\nuser = \"no-such-user-dynsup\"\n",
    );
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(2), "{}", d.log_tail());
    assert!(d.log().contains("unknown user"), "{}", d.log_tail());
}
