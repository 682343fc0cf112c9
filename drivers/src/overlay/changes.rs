//! overlay2's native changes: a layer's changes are exactly its upper (diff) directory, so
//! only that is walked (the shared [`crate::upper_walk`]). 0/0 character devices are
//! deletions and `trusted.overlay.opaque` directories are opaque. Where redirect or
//! metacopy xattrs appear the upper dir is not a plain diff, and the caller falls back to
//! the tree walk.

use super::whiteout::OPAQUE_XATTR;
use crate::changes::Change;
use crate::driver::ChangesSource;
use crate::error::DriverError;
use crate::upper_walk::{EntryMeaning, LayerDirFormat};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn xattr_of(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Whether `p` has any `trusted.overlay.*` xattr: one list call instead of a lookup per
/// name, as nearly every entry of an upper dir has none.
fn has_overlay_xattrs(p: &Path) -> io::Result<bool> {
    let mut buf = [0u8; 1024];
    let names: Vec<u8> = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => buf[..n].to_vec(),
        Err(rustix::io::Errno::RANGE) => {
            let mut v = vec![0u8; rustix::fs::llistxattr_query(p)? * 2];
            let n = rustix::fs::llistxattr(p, &mut v[..])?;
            v.truncate(n);
            v
        }
        Err(rustix::io::Errno::NOTSUP) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(names
        .split(|&b| b == 0)
        .any(|n| n.starts_with(b"trusted.overlay.")))
}

/// How overlayfs stores a layer in its upper dir.
struct OverlayUpper;

impl LayerDirFormat for OverlayUpper {
    fn classify(&self, p: &Path, name: &OsStr, md: &fs::Metadata) -> io::Result<EntryMeaning> {
        let marked = has_overlay_xattrs(p)?;
        if marked
            && (xattr_of(p, "trusted.overlay.redirect").is_some()
                || xattr_of(p, "trusted.overlay.metacopy").is_some())
        {
            return Ok(EntryMeaning::Unsafe);
        }
        if md.file_type().is_char_device() && md.rdev() == 0 {
            return Ok(EntryMeaning::Deletes(name.to_os_string()));
        }
        let opaque = marked && md.is_dir() && xattr_of(p, OPAQUE_XATTR).as_deref() == Some(b"y");
        Ok(EntryMeaning::Entry { opaque })
    }
}

/// The changes of overlay layer `id` from its upper dir `diff` where that is safe (no
/// redirect or metacopy entries), else the tree walk (`on_fallback` told first).
pub fn native_or_walk<D: crate::Driver + ?Sized>(
    driver: &D,
    id: &str,
    diff: PathBuf,
    lowers: &[PathBuf],
    on_fallback: impl FnOnce(),
) -> Result<(Vec<Change>, Option<ChangesSource>), DriverError> {
    crate::upper_walk::native_or_walk(
        driver,
        id,
        diff,
        lowers,
        &OverlayUpper,
        Some("trusted.overlay."),
        on_fallback,
    )
}
