//! A small tmpfs of the test's own, to fill up or make read-only under a running daemon:
//! mounted in the test's directory, unmounted on drop. Mounting needs privileges the
//! machine may not grant: [`SmallTmpfs::mount`] then says why, and the test skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs of a fixed size.
pub struct SmallTmpfs {
    path: PathBuf,
}

impl SmallTmpfs {
    /// Mounts a tmpfs of `size_kib` KiB on `path` (created if needed); `Err(reason)`
    /// when this machine does not allow it.
    pub fn mount(path: &Path, size_kib: u64) -> Result<SmallTmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        mount_cmd(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_kib}k,mode=0755"),
            "tmpfs",
            path.to_str().expect("utf-8 path"),
        ])?;
        Ok(SmallTmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remounts it read-only (`true`) or read-write.
    #[track_caller]
    pub fn set_read_only(&self, read_only: bool) {
        let options = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        if let Err(e) = mount_cmd(&["-o", options, self.path.to_str().expect("utf-8 path")]) {
            panic!("{e}");
        }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon that still has a file open there must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn mount_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
