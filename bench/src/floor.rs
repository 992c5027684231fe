//! The floor: bench/c/floor.c, a bare fork+execve (or vfork+execve) / sigwaitinfo /
//! waitpid loop.

use crate::harness::{live_from, Ctx, Live, Tree};
use crate::stamps::Stamps;
use crate::util::ms;
use std::time::Duration;

pub struct Floor {
    pub tree: Tree,
    pub stamps: Stamps,
    pub live: Live,
    /// Launch → the last of the N first stamps, ms.
    pub cold_ms: f64,
}

pub fn start(ctx: &Ctx, n: usize) -> Result<Floor, String> {
    start_with(ctx, n, false)
}

/// The floor with dynsup's own spawn primitive (vfork: the child shares the parent's
/// memory until it execs).
pub fn start_vfork(ctx: &Ctx, n: usize) -> Result<Floor, String> {
    start_with(ctx, n, true)
}

fn start_with(ctx: &Ctx, n: usize, vfork: bool) -> Result<Floor, String> {
    let label = if vfork { "floor-vfork" } else { "floor" };
    let (dir, tag) = ctx.instance(&format!("{label}-{n}"));
    let stamps = Stamps::new(&dir.join("stamps.fifo"))?;
    let mut cmd = ctx.command(&ctx.floor_bin, &dir, &tag, &stamps.path);
    if vfork {
        cmd.arg("--vfork");
    }
    cmd.arg(n.to_string()).arg(&ctx.stamp_bin);
    let tree = Tree::spawn(cmd, &tag)?;
    let got = stamps.collect(n, Duration::from_secs(30 + n as u64 / 100));
    if got.len() < n {
        return Err(format!("floor: only {} of {n} workers stamped", got.len()));
    }
    let last = got.iter().map(|s| s.t).max().unwrap();
    Ok(Floor {
        cold_ms: ms(last - tree.t0),
        live: live_from(&got),
        tree,
        stamps,
    })
}
