//! Read-only questions: `count` in OTP's `count_children` shape, and `whois`.

use super::*;

#[test]
fn count_has_the_count_children_shape() {
    let mut h = Harness::new(
        100,
        5,
        vec![
            transient("t"),
            paced(permanent("p")),
            limited(permanent("g"), Some(0), 10, OnLimit::GiveUp),
        ],
    );
    h.started(start_from("run", "t")); // 101
    h.started(start_from("stopping", "t")); // 102
    h.started(start_from("back", "p")); // 103
    h.started(start_from("fail", "g")); // 104
    h.started(start_from("retry", "t")); // 105
    h.at(10)
        .check(from(conn(2), stop("stopping")), "signal group 102 SIGTERM")
        .check(
            exited(103, code(1)),
            "reaped #3
             event exited back pid=103 (exit 1)
             event restarting back delay=100",
        )
        .check(
            exited(104, code(1)),
            "reaped #4
             event exited fail pid=104 (exit 1)
             event failed fail (exit 1)",
        );
    h.fail_next = 1;
    h.check(
        exited(105, code(1)),
        "reaped #5
         event exited retry pid=105 (exit 1)
         event restarting retry delay=0
         spawn retry #6 -> failed
         event restarting retry delay=0",
    )
    .check(lookup("retry"), "reply c1: ok name=retry state=restarting")
    .check(
        count(),
        "reply c1: ok count=5 counts={total=5 active=2 backoff=2 failed=1 stopping=1}",
    )
    .check(
        list(),
        "reply c1: ok workers=[\
         {back pid=- p permanent backoff restarts=1 since=0} \
         {fail pid=- g permanent failed restarts=1 since=0} \
         {retry pid=- t transient restarting restarts=2 since=0} \
         {run pid=101 t transient running restarts=0 since=1700000000000} \
         {stopping pid=102 t transient stopping restarts=0 since=1700000000000}]",
    );
    // `restarting` shows the next try too (now: due at once).
    assert_eq!(h.row("retry").next_try_ms, Some(WALL0 + 10));
}

#[test]
fn whois_finds_a_worker_by_pid_or_process_group() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.started(start_from("w", "t")); // 101
    h.started(start_from("v", "t")); // 102
    h.check(
        whois(101, Some(101)),
        "reply c1: ok name=w pid=101 state=running",
    )
    .check(
        whois(101, None),
        "reply c1: ok name=w pid=101 state=running",
    )
    // A grandchild in v's process group.
    .check(
        whois(4242, Some(102)),
        "reply c1: ok name=v pid=102 state=running",
    )
    .check(whois(4242, None), "reply c1: error not_found")
    .check(whois(4242, Some(4000)), "reply c1: error not_found")
    .check(
        from(conn(7), whois(102, Some(102))),
        "reply c7: ok name=v pid=102 state=running",
    );
    let message = {
        h.feed(whois(4242, Some(4000)));
        h.reply().error.unwrap().message
    };
    assert!(message.contains("4242"), "{message}");
    // Still found while it is being stopped; gone once reaped.
    h.check(stop("v"), "signal group 102 SIGTERM").check(
        whois(102, Some(102)),
        "reply c1: ok name=v pid=102 state=stopping",
    );
    h.feed(exited(102, signaled(Signal::TERM)));
    h.check(whois(102, Some(102)), "reply c1: error not_found");
}
