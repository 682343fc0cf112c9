//! overlayfs's on-disk whiteouts: a 0/0 character device hides a lower entry, and
//! `trusted.overlay.opaque=y` on a directory hides everything below it.

use crate::whiteout::WhiteoutFormat;
use fsutil::{remove_all_at, xattr};
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

    fn is_whiteout(
        &self,
        _dir: BorrowedFd<'_>,
        _name: &OsStr,
        st: Option<&rustix::fs::Stat>,
    ) -> io::Result<bool> {
        Ok(st.is_some_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
        }))
    }

    fn is_opaque(&self, dir: BorrowedFd<'_>) -> io::Result<bool> {
        let mut v = [0u8; 4];
        match rustix::fs::fgetxattr(dir, OPAQUE_XATTR, &mut v) {
            Ok(n) => Ok(&v[..n] == b"y"),
            Err(rustix::io::Errno::NODATA)
            | Err(rustix::io::Errno::RANGE)
            | Err(rustix::io::Errno::NOTSUP) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn clear_whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
        let st = match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if !self.is_whiteout(dir, name, Some(&st))? {
            return Ok(false);
        }
        rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty())?;
        Ok(true)
    }

    fn private_xattrs(&self) -> Option<&'static str> {
        Some("trusted.overlay.")
    }

    fn refuses_device(&self, kind: FileType, rdev: u64) -> Option<&'static str> {
        (kind == FileType::CharacterDevice && rdev == 0).then_some(
            "a 0/0 character device is how overlayfs stores a whiteout, so overlay2 cannot \
             keep one as a file of the image (use the vfs or btrfs driver for this image)",
        )
    }
}
