//! Boot children and restored workers: a boot child that fails aborts the boot; a restored one does not.

use super::*;

#[test]
fn a_boot_child_that_cannot_spawn_aborts_the_boot() {
    let mut h = Harness::simple();
    h.check(
        from(ReplyTo::Boot { index: 0 }, start("first")),
        "spawn first #1 -> 101
         reply boot0: ok name=first pid=101",
    );
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 1 }, start("second")),
        "spawn second #2 -> failed
         reply boot1: error spawn_failed
         signal group 101 SIGTERM",
    );
    assert!(h.sup.is_shutting_down());
    h.check(
        exited(101, code(0)),
        "reaped #1
         exit 1",
    );

    // Alone, it exits 1 at once.
    let mut h = Harness::simple();
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 0 }, start("w")),
        "spawn w #1 -> failed
         reply boot0: error spawn_failed
         exit 1",
    );
}

#[test]
fn a_boot_child_refused_before_spawning_aborts_the_boot_too() {
    // Like a spawn failure, any refusal of a boot child's start is a failed boot: the
    // config is checked first, but the core should not depend on that.
    for (child, kind) in [
        (start_from("w", "nope"), "unknown_template"),
        (start("bad name"), "invalid_name"),
    ] {
        let mut h = Harness::simple();
        h.check(
            from(ReplyTo::Boot { index: 3 }, child),
            &format!(
                "reply boot3: error {kind}
                 exit 1"
            ),
        );
    }
}

#[test]
fn restored_workers_are_dynamic_and_their_failures_do_not_abort() {
    let mut h = Harness::new(3, 5, vec![transient("t")]);
    h.check(
        from(
            ReplyTo::Restore { index: 0 },
            start_full("r", "t", &["x"], None),
        ),
        "spawn r #1 -> 101
         event started r pid=101
         save state
         reply restore0: ok name=r pid=101",
    );
    assert!(h.row("r").dynamic);
    assert_eq!(h.sup.saved_workers()[0].name, "r");
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Restore { index: 1 }, start_from("s", "t")),
        "spawn s #2 -> failed
         reply restore1: error spawn_failed",
    )
    .check(
        from(ReplyTo::Restore { index: 2 }, start_from("u", "gone")),
        "reply restore2: error unknown_template",
    )
    .check(
        from(ReplyTo::Restore { index: 3 }, start_from("r", "t")),
        "reply restore3: error already_started pid=101",
    );
    assert!(!h.sup.is_shutting_down());
    h.check(lookup("r"), "reply c1: ok name=r pid=101 state=running");
    // Whereas a boot child's failure aborts the boot.
    h.fail_next = 1;
    h.check(
        from(ReplyTo::Boot { index: 0 }, start_from("b", "t")),
        "spawn b #3 -> failed
         reply boot0: error spawn_failed
         event shutdown
         signal group 101 SIGTERM",
    );
}
