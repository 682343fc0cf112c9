//! overlayfs's on-disk whiteouts: a 0/0 character device hides a lower entry, and
//! `trusted.overlay.opaque=y` on a directory hides everything below it.

use crate::fsutil::{remove_all_at, xattr};
use crate::whiteout::WhiteoutFormat;
use rustix::fs::{FileType, Mode};
use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;

/// The xattr overlayfs reads to treat an upper directory as opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whiteouts as overlayfs stores them in an upper directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct OverlayWhiteouts;

impl WhiteoutFormat for OverlayWhiteouts {
    fn whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        remove_all_at(dir, name)?;
        rustix::fs::mknodat(
            dir,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )?;
        Ok(())
    }

    fn opaque(&self, dir: BorrowedFd<'_>, _keep: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
        // An upper directory holds only this layer's entries, so nothing is removed.
        xattr::fset(dir, OsStr::new(OPAQUE_XATTR), b"y")
    }

    fn full_tree(&self) -> bool {
        false
    }
}
