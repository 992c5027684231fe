//! Cluster mode over TLS (docs/CLUSTER.md, "TLS"): a real etcd that speaks only
//! `https` and requires a client certificate signed by its CA, certificates made with
//! the `openssl` CLI into the test's directory. A fleet whose nodes have the CA and a
//! client certificate works as over http; a wrong CA, or no client certificate, keeps a
//! node out and says why, in the daemon's log and from the CLI (exit 3), while the
//! node's local workers run on.

mod common;
use common::*;

use dynsup::cluster::AGENT_NAME;
use std::process::Output;

const TTL_MS: u64 = 2000;

/// The config of a node of `etcd` whose `[cluster]` trusts `ca` and shows the client
/// certificate when `with_client_cert`.
fn node_config(
    etcd: &TestEtcd,
    node: &str,
    namespace: &str,
    ca: &str,
    with_client_cert: bool,
) -> String {
    [
        CLUSTER_TEMPLATES,
        &cluster_section_at(&etcd.urls(), node, namespace, TTL_MS),
        &etcd.pki().cluster_keys(ca, with_client_cert),
    ]
    .concat()
}

/// A daemon of `etcd` that is not expected to join (its agent cannot talk to etcd).
fn lone_node(etcd: &TestEtcd, ca: &str, with_client_cert: bool) -> TestDaemon {
    let namespace = format!("/dynsup-test/{}", unique_name("tls"));
    let config = [
        LENIENT_SUPERVISOR,
        &node_config(etcd, "a", &namespace, ca, with_client_cert),
    ]
    .concat();
    Launch::new(&config).start()
}

/// `dynsup --socket S --config C ARGS...` against `daemon`.
fn cli_of(daemon: &TestDaemon, args: &[&str]) -> Output {
    run(
        cli_command(daemon.socket())
            .arg("--config")
            .arg(daemon.config_path())
            .args(args),
        std::time::Duration::from_secs(90),
    )
}

#[test]
fn a_fleet_over_tls_with_client_certificates_starts_looks_up_lists_and_fails_over() {
    let etcd = TestEtcd::start_tls();
    assert!(etcd.url.starts_with("https://127.0.0.1:"), "{}", etcd.url);
    let mut fleet = TestFleet::start_on(etcd, 2, TTL_MS, |etcd, node, namespace| {
        node_config(etcd, node, namespace, &etcd.pki().ca, true)
    });
    let prefix = unique_name("tls");
    let on_b: Vec<String> = (0..3).map(|i| format!("{prefix}_b{i}")).collect();
    for (i, name) in on_b.iter().enumerate() {
        let (node, pid) =
            start_cluster(&fleet, i % 2, name, &["--template", "perm", "--node", "b"]);
        assert_eq!(node, "b");
        assert_eq!(fleet.nodes[1].lookup(name), Some(pid));
    }
    let on_a = format!("{prefix}_a");
    let (_, a_pid) = start_cluster(&fleet, 1, &on_a, &["--template", "trans", "--node", "a"]);

    // lookup and list from either node agree with the daemons and /proc.
    for from in 0..2 {
        for name in &on_b {
            let pid = fleet.nodes[1].lookup(name).expect("b runs it");
            assert_eq!(
                lookup_cluster(&fleet, from, name),
                Some(("b".to_string(), pid))
            );
            assert_eq!(processes_named(name), [pid]);
        }
        assert_eq!(
            lookup_cluster(&fleet, from, &on_a),
            Some(("a".to_string(), a_pid))
        );
        let output = fleet.cli(from, &["list", "--cluster"]);
        let (out, err) = out_text(&output);
        assert!(output.status.success(), "list --cluster: {out}{err}");
        for name in on_b.iter().chain([&on_a]) {
            assert!(out.contains(name.as_str()), "{name} not listed: {out}");
        }
    }

    // b is lost: its names run once each on a, found over TLS by a's agent.
    fleet.nodes[1].kill_hard();
    let moved = wait_until(DEADLINE, "b's names to run once each on a", || {
        each_once_on(&fleet, &on_b, "a")
    });
    for (name, pid) in on_b.iter().zip(moved) {
        assert_eq!(fleet.nodes[0].lookup(name), Some(pid));
        assert_eq!(
            lookup_cluster(&fleet, 0, name),
            Some(("a".to_string(), pid))
        );
    }
    assert_eq!(fleet.nodes[0].lookup(&on_a), Some(a_pid));
}

#[test]
fn a_wrong_ca_keeps_the_node_out_and_says_why_while_its_local_workers_run() {
    let etcd = TestEtcd::start_tls();
    let daemon = lone_node(&etcd, &etcd.pki().other_ca, true);

    // The agent cannot verify etcd's certificate: it says so in the daemon's log, and
    // never joins.
    daemon.wait_worker_line(AGENT_NAME, "invalid peer certificate: UnknownIssuer", 1);
    assert!(
        daemon
            .log()
            .lines()
            .any(|l| l.contains("cannot join")
                && l.contains("invalid peer certificate: UnknownIssuer")),
        "{}",
        daemon.log_tail()
    );
    let nodes = etcd.client().range_prefix("/").expect("range");
    assert!(nodes.kvs.is_empty(), "something joined: {:?}", nodes.kvs);

    // The CLI cannot either: exit 3, naming the TLS failure.
    let output = cli_of(&daemon, &["lookup", "x", "--cluster"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(3), "{out}{err}");
    assert!(
        err.contains("etcd is unreachable") && err.contains("invalid peer certificate"),
        "{err}"
    );

    // The daemon's own workers are not the agent's business.
    let local = daemon.start_worker("plain", Some("local"), &[]);
    assert!(is_alive(local));
    assert_eq!(daemon.lookup("plain"), Some(local));
}

#[test]
fn without_a_client_certificate_an_etcd_that_requires_one_refuses_and_both_say_why() {
    let etcd = TestEtcd::start_tls();
    let daemon = lone_node(&etcd, &etcd.pki().ca, false);
    let output = cli_of(&daemon, &["list", "--cluster"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(3), "{out}{err}");
    // etcd ends the session after the handshake (an alert, or the connection closed
    // under the request, as the race goes): the error says what is missing.
    let why = "over TLS without a client certificate: if etcd runs with --client-cert-auth, set tls_cert and tls_key";
    assert!(
        err.contains("etcd is unreachable") && err.contains(why),
        "{err}"
    );
    daemon.wait_worker_line(AGENT_NAME, why, 1);
    assert!(
        daemon
            .log()
            .lines()
            .any(|l| l.contains("cannot join") && l.contains(why)),
        "{}",
        daemon.log_tail()
    );
}

#[test]
fn a_garbled_ca_file_is_named_by_the_cli_and_by_the_agent() {
    let etcd = TestEtcd::start_tls();
    let daemon = lone_node(&etcd, &etcd.pki().ca, true);
    // Once the agent has read the files and is on its way:
    daemon.wait_worker_line(AGENT_NAME, "joining the fleet", 1);
    // The file exists (the config loads) but holds no certificate: whoever builds a
    // client says which file.
    std::fs::write(&etcd.pki().ca, "not a certificate\n").expect("garble the CA file");
    let output = cli_of(&daemon, &["count", "--cluster"]);
    let (out, err) = out_text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}{err}");
    let why = format!("tls_ca {:?} has no PEM certificate", etcd.pki().ca);
    assert!(err.contains(&why), "{err}");
    // The agent, when it starts again (the daemon restarts it), says the same.
    let agent = daemon.lookup(AGENT_NAME).expect("the agent runs");
    send_signal(agent, Signal::SIGKILL);
    daemon.wait_worker_line(AGENT_NAME, &why, 1);
}
