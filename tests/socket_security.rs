//! Who may talk to the control socket. The socket file is born 0600 (whatever the
//! umask), or `socket_mode` with `socket_group`; every connection's SO_PEERCRED is
//! checked: root, the daemon's own uid and `allow_uids`/`allow_groups` get full access,
//! `read_only_uids`/`read_only_groups` only the commands that change nothing
//! (`lookup`, `count`, `list`, `whois`, `watch`, `ps`, `wait_ready`), anyone else one
//! `permission_denied` line and the door. At most `max_connections` clients: the next
//! one is told `too_many_connections` and closed.
//!
//! The outsider is a real process of another user: python3 started as `nobody` (uid
//! and gid 65534, set by std's CommandExt), connecting to the socket (made reachable
//! with `socket_mode = "0666"` and a world-searchable directory).

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Instant;

/// The client run as `nobody`. `read-to-end [LINE]`: optionally send LINE, then report
/// every line until the end of the stream. `requests LINE...`: send each line and
/// report its reply line. Each report is one JSON line on stdout: {"line": "..."} or
/// {"end": "eof" | "reset" | "timeout"}.
const CLIENT: &str = r#"
import json, socket, sys
path, mode, lines = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
f = s.makefile("rb")
def report(**kw):
    print(json.dumps(kw), flush=True)
def read_line():
    try:
        line = f.readline()
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    return line.decode() if line else "eof"
if mode == "read-to-end":
    for line in lines:
        try:
            s.sendall(line.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    while True:
        got = read_line()
        if got in ("eof", "reset", "timeout"):
            report(end=got)
            break
        report(line=got)
else:
    for line in lines:
        s.sendall(line.encode() + b"\n")
        got = read_line()
        if got in ("eof", "reset", "timeout"):
            report(end=got)
            break
        report(line=got)
"#;

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Line(Box<Reply>),
    End(String),
}

/// Runs the client as uid/gid 65534; returns its pid and what it reported.
#[track_caller]
fn as_nobody(d: &TestDaemon, mode: &str, lines: &[String]) -> (i32, Vec<Got>) {
    let mut cmd = Command::new(python3());
    cmd.arg("-c")
        .arg(CLIENT)
        .arg(d.socket())
        .arg(mode)
        .args(lines)
        .uid(NOBODY)
        .gid(NOBODY);
    let client = Captured::spawn(&mut cmd);
    let pid = client.pid();
    let output = client.finish(DEADLINE);
    assert!(
        output.status.success(),
        "client failed ({:?}): {}{}",
        output.status,
        stderr_of(&output),
        d.log_tail()
    );
    let got = stdout_of(&output)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("client output");
            match (v.get("line"), v.get("end")) {
                (Some(line), _) => Got::Line(Box::new(
                    serde_json::from_str(line.as_str().unwrap())
                        .unwrap_or_else(|e| panic!("bad reply {line}: {e}")),
                )),
                (_, Some(end)) => Got::End(end.as_str().unwrap().to_string()),
                _ => panic!("{l}"),
            }
        })
        .collect();
    (pid, got)
}

fn line(req: &Request) -> String {
    req.to_line()
}

fn config(extra: &str) -> String {
    format!(
        r#"
[supervisor]
socket_mode = "0666"
{extra}

[templates.sleeper]
command = ["sleep", "100000"]
"#
    )
}

fn mode_of(d: &TestDaemon) -> (u32, u32, u32) {
    let meta = std::fs::metadata(d.socket()).expect("stat the socket");
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

#[track_caller]
fn expect_denied(got: &Got) {
    match got {
        Got::Line(reply) => assert_error(reply, ErrorKind::PermissionDenied),
        other => panic!("expected a permission_denied line, got {other:?}"),
    }
}

/// 0600 by default, even when the daemon runs under umask 000.
#[test]
fn socket_is_0600_by_default_whatever_the_umask() {
    let d = TestDaemon::start(&config("").replace("socket_mode = \"0666\"", ""));
    assert_eq!(mode_of(&d), (0o600, 0, 0));
    let d = Launch::new(&config("").replace("socket_mode = \"0666\"", ""))
        .wrapper(&["sh", "-c", "umask 000; exec \"$0\" \"$@\""])
        .start();
    assert_eq!(
        status_field(d.pid(), "Umask").as_deref(),
        Some("0000"),
        "the daemon does not run under umask 000"
    );
    assert_eq!(mode_of(&d), (0o600, 0, 0));
}

/// socket_mode = "0660" with socket_group: shared with that group.
#[test]
fn socket_mode_and_group_share_the_socket_with_a_group() {
    let d =
        TestDaemon::start(&config("socket_group = \"nogroup\"").replace("\"0666\"", "\"0660\""));
    assert_eq!(mode_of(&d), (0o660, 0, NOBODY));
    let d = TestDaemon::start(&config("socket_group = 65534").replace("\"0666\"", "\"0640\""));
    assert_eq!(mode_of(&d), (0o640, 0, NOBODY));
}

/// A uid the config does not name: one permission_denied line, then the end of the
/// stream; logged with the peer's uid and pid; the daemon carries on.
#[test]
fn a_stranger_gets_one_permission_denied_line_then_eof() {
    let d = Launch::new(&config(""))
        .in_dir(TestDir::world_searchable())
        .start();
    let (pid, got) = as_nobody(&d, "read-to-end", &[]);
    assert_eq!(got.len(), 2, "{got:?}");
    expect_denied(&got[0]);
    assert_eq!(got[1], Got::End("eof".to_string()), "{got:?}");
    if let Got::Line(reply) = &got[0] {
        let message = &reply.error.as_ref().unwrap().message;
        assert!(message.contains("65534"), "{message}");
    }
    d.wait_log(&format!(
        "refused a connection from uid {NOBODY} (pid {pid})"
    ));

    // A stranger that writes a request first: still one line and the end (EOF, or a
    // reset because its request was never read); the request is not carried out.
    let (pid2, got) = as_nobody(
        &d,
        "read-to-end",
        &[line(&start_req("intruder", Some("sleeper"), &[]))],
    );
    assert_eq!(got.len(), 2, "{got:?}");
    expect_denied(&got[0]);
    assert!(
        matches!(&got[1], Got::End(e) if e == "eof" || e == "reset"),
        "{got:?}"
    );
    d.wait_log(&format!(
        "refused a connection from uid {NOBODY} (pid {pid2})"
    ));
    assert_eq!(d.count(), 0, "the refused start was carried out");
    // Root is unaffected.
    d.start_worker("mine", Some("sleeper"), &[]);
    assert_eq!(d.count(), 1);
}

/// read_only_uids / read_only_groups: the commands that change nothing, but not
/// start, stop, kill, cast, restart, reload or shutdown.
#[test]
fn read_only_uids_may_look_but_not_touch() {
    for extra in [
        "read_only_uids = [65534]",
        "read_only_groups = [\"nogroup\"]",
    ] {
        let d = Launch::new(&config(extra))
            .in_dir(TestDir::world_searchable())
            .start();
        let pid = d.start_worker("w", Some("sleeper"), &[]);
        // Allowed, then denied, then allowed again (the connection stays open), and
        // `watch` last (it turns the connection into an event stream).
        let allowed = [
            line(&Request::list()),
            line(&Request::Count),
            line(&lookup_req("w")),
            line(&whois_req(pid)),
            line(&Request::Ps {
                name: Some("w".to_string()),
            }),
            line(&wait_ready_req("w")),
            line(&Request::Version),
            r#"{"cmd":"list","names":["w"],"template":"sleeper"}"#.to_string(),
            line(&Request::Metrics),
        ];
        let denied = [
            line(&start_req("intruder", Some("sleeper"), &[])),
            line(&stop_req("w", None)),
            r#"{"cmd":"stop","all":true}"#.to_string(),
            r#"{"cmd":"kill","names":["w"]}"#.to_string(),
            r#"{"cmd":"restart","template":"sleeper"}"#.to_string(),
            line(&kill_req("w", None)),
            line(&cast_req("w", "hello")),
            line(&restart_req("w", None)),
            line(&Request::Reload),
            line(&Request::Shutdown),
        ];
        let requests: Vec<String> = allowed
            .iter()
            .chain(&denied)
            .cloned()
            .chain([line(&Request::Count), line(&watch_req(&["w"]))])
            .collect();
        let (_, got) = as_nobody(&d, "requests", &requests);
        assert_eq!(got.len(), requests.len(), "{extra}: {got:?}");
        let replies: Vec<&Reply> = got
            .iter()
            .map(|g| match g {
                Got::Line(r) => &**r,
                other => panic!("{extra}: the connection ended: {other:?} in {got:?}"),
            })
            .collect();
        for (request, reply) in allowed.iter().zip(&replies) {
            assert!(reply.ok, "{extra}: {request} was refused: {reply:?}");
        }
        let list = replies[0];
        assert_eq!(list.workers.as_ref().map(Vec::len), Some(1), "{list:?}");
        assert_eq!(replies[1].count, Some(1), "{:?}", replies[1]);
        assert_eq!(replies[2].pid, Some(pid), "{:?}", replies[2]);
        assert_eq!(replies[3].name.as_deref(), Some("w"), "{:?}", replies[3]);
        let ps = replies[4].processes.as_ref().expect("ps processes");
        assert!(ps[0].pids.contains(&pid), "{ps:?}");
        assert_eq!(replies[5].pid, Some(pid), "{:?}", replies[5]);
        for (request, reply) in denied.iter().zip(&replies[allowed.len()..]) {
            assert!(
                error_kind(reply) == Some(ErrorKind::PermissionDenied),
                "{extra}: {request} was not refused: {reply:?}"
            );
        }
        let n = allowed.len() + denied.len();
        assert!(
            replies[n].ok && replies[n].count == Some(1),
            "{:?}",
            replies[n]
        );
        assert!(replies[n + 1].ok, "{extra}: watch {:?}", replies[n + 1]);
        // Nothing was changed: the same worker, alive; the daemon still running.
        assert_eq!(d.lookup("w"), Some(pid));
        assert!(is_alive(pid));
        assert_eq!(d.count(), 1);
    }
}

/// allow_uids / allow_groups: full access for that user.
#[test]
fn allow_uids_and_allow_groups_give_full_access() {
    for extra in ["allow_uids = [65534]", "allow_groups = [\"nogroup\"]"] {
        let d = Launch::new(&config(extra))
            .in_dir(TestDir::world_searchable())
            .start();
        let requests = [
            line(&start_req("theirs", Some("sleeper"), &[])),
            line(&Request::Count),
        ];
        let (_, got) = as_nobody(&d, "requests", &requests);
        let Got::Line(started) = &got[0] else {
            panic!("{extra}: {got:?}")
        };
        assert!(started.ok, "{extra}: start as nobody: {started:?}");
        let pid = started.pid.expect("pid");
        assert_eq!(d.lookup("theirs"), Some(pid));
        let (_, got) = as_nobody(&d, "requests", &[line(&stop_req("theirs", None))]);
        assert!(matches!(&got[0], Got::Line(r) if r.ok), "{extra}: {got:?}");
        d.wait_unregistered("theirs");
    }
}

/// The daemon's own uid is always let in, as is root: a daemon run as nobody (with no
/// allow list) serves both.
#[test]
fn the_daemons_own_uid_and_root_are_always_allowed() {
    let d = Launch::new("[templates.sleeper]\ncommand = [\"sleep\", \"100000\"]\n")
        .in_dir(TestDir::owned_by_nobody())
        .user(NOBODY, NOBODY)
        .start();
    assert_eq!(
        status_field(d.pid(), "Uid")
            .unwrap()
            .split_whitespace()
            .next(),
        Some("65534")
    );
    let (_, got) = as_nobody(&d, "requests", &[line(&Request::Count)]);
    assert!(matches!(&got[0], Got::Line(r) if r.ok), "{got:?}");
    // The socket is nobody's and 0600: root (the test) may still use it.
    assert_eq!(mode_of(&d), (0o600, NOBODY, NOBODY));
    assert_eq!(d.count(), 0);
}

/// max_connections = 2: the third simultaneous client is told too_many_connections
/// and closed; the first two go on working; once one leaves, there is room again.
#[test]
fn max_connections_turns_away_the_third_client() {
    let d = TestDaemon::start(
        "[supervisor]\nmax_connections = 2\n[templates.sleeper]\ncommand = [\"sleep\", \"100000\"]\n",
    );
    // Two admitted clients. The harness's own readiness probe may still count until
    // the daemon has seen it close, so a refused attempt is simply retried.
    let admitted = || {
        d.wait_until(DEADLINE, "a connection to be admitted", || {
            let mut client = Client::connect(d.socket()).ok()?;
            let reply = client.try_request(&Request::Count)?;
            reply.ok.then_some(client)
        })
    };
    let mut a = admitted();
    let mut b = admitted();

    let mut c = d.client();
    let refusal = c.recv();
    assert_error(&refusal, ErrorKind::TooManyConnections);
    assert!(
        refusal.error.as_ref().unwrap().message.contains('2'),
        "{refusal:?}"
    );
    assert!(c.is_closed_by_peer(), "the third connection was not closed");
    d.wait_log("refusing a connection: 2 clients are connected (max_connections)");

    // The first two still work.
    let pid = a
        .request(&start_req("w", Some("sleeper"), &[]))
        .pid
        .expect("start");
    assert_eq!(b.request(&lookup_req("w")).pid, Some(pid));

    // One leaves: a new client gets in (once the daemon has seen the close).
    drop(a);
    let started = Instant::now();
    let reply = d.wait_until(DEADLINE, "a new connection to be admitted", || {
        let reply = Client::connect(d.socket())
            .ok()?
            .try_request(&Request::Count)?;
        (error_kind(&reply) != Some(ErrorKind::TooManyConnections)).then_some(reply)
    });
    assert!(
        reply.ok && reply.count == Some(1),
        "{reply:?} after {:?}",
        started.elapsed()
    );
    assert!(b.request(&Request::Count).ok);
}
