//! AUFS's on-disk form: a whiteout is a file `.wh.NAME` beside the hidden name, an opaque
//! directory holds `.wh..wh..opq`, and `.wh..wh.*` names (pseudo-links, orphans, temp
//! files) are the filesystem's bookkeeping. This is also the OCI tar form, so applying a
//! layer keeps its whiteouts as they come and the native diff reads them straight back.

use crate::upper_walk::{EntryMeaning, LayerDirFormat};
use crate::whiteout::WhiteoutFormat;
use fsutil::remove_all_at;
use rustix::fs::{Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fsutil::whiteout_names::{AUFS_META_PREFIX, OPAQUE_MARKER as OPAQUE, WHITEOUT_PREFIX};

/// Prefix of a whiteout file.
pub const WH_PREFIX: &[u8] = WHITEOUT_PREFIX.as_bytes();
/// Prefix of AUFS's own bookkeeping names.
pub const META_PREFIX: &[u8] = AUFS_META_PREFIX.as_bytes();

fn create_marker(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o444),
    )?;
    drop(fd);
    Ok(())
}

/// Whiteouts kept as `.wh.` files when a layer is applied.
#[derive(Debug, Default, Clone, Copy)]
pub struct AufsWhiteouts;

impl WhiteoutFormat for AufsWhiteouts {
    fn whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        remove_all_at(dir, name)?;
        create_marker(dir, &whiteout_name(name))
    }

    fn opaque(&self, dir: BorrowedFd<'_>, _keep: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
        // A layer directory holds only this layer's entries, so nothing is removed.
        create_marker(dir, OsStr::new(OPAQUE))
    }

    fn full_tree(&self) -> bool {
        false
    }

    fn is_whiteout(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        _st: Option<&rustix::fs::Stat>,
    ) -> io::Result<bool> {
        exists_at(dir, &whiteout_name(name))
    }

    fn is_opaque(&self, dir: BorrowedFd<'_>) -> io::Result<bool> {
        exists_at(dir, OsStr::new(OPAQUE))
    }

    fn clear_whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
        match rustix::fs::unlinkat(dir, whiteout_name(name), rustix::fs::AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn is_meta(&self, name: &OsStr) -> bool {
        name.as_bytes().starts_with(WH_PREFIX)
    }
}

fn whiteout_name(name: &OsStr) -> OsString {
    let mut wh = OsString::from(WHITEOUT_PREFIX);
    wh.push(name);
    wh
}

fn exists_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// How the native diff reads a `diff/<id>` directory.
pub struct AufsLayerDir;

impl LayerDirFormat for AufsLayerDir {
    fn classify(&self, _p: &Path, name: &OsStr, _md: &fs::Metadata) -> io::Result<EntryMeaning> {
        let b = name.as_bytes();
        Ok(if name == OPAQUE {
            EntryMeaning::MarksDirOpaque
        } else if b.starts_with(META_PREFIX) {
            EntryMeaning::Ignore
        } else if let Some(victim) = b.strip_prefix(WH_PREFIX) {
            EntryMeaning::Deletes(OsStr::from_bytes(victim).to_os_string())
        } else {
            EntryMeaning::Entry { opaque: false }
        })
    }
}
