//! Names the filesystem a path lives on, for `info` and driver support checks.

use std::io;
use std::path::Path;

/// The backing filesystem of `path` by its magic number (`ext4`, `btrfs`, `xfs`, ...).
pub fn backing_fs(path: &Path) -> io::Result<&'static str> {
    let st = rustix::fs::statfs(path)?;
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    Ok(match magic {
        0xEF53 => "extfs",
        0x9123683E => "btrfs",
        0x58465342 => "xfs",
        0x01021994 => "tmpfs",
        0x794C7630 => "overlayfs",
        0x65735546 => "fuse",
        0x6969 => "nfs",
        0x2FC12FC1 => "zfs",
        0x73717368 => "squashfs",
        _ => "unknown",
    })
}
