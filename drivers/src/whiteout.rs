//! The whiteout-format hook: how a driver stores "deleted" and "opaque" on disk.
//!
//! The layer store's one tar applier calls this hook when it meets an OCI whiteout
//! (`.wh.NAME`) or opaque marker (`.wh..wh..opq`), with the parent directory already
//! resolved safely inside the layer. Drivers whose layers are full trees (vfs, btrfs)
//! simply delete; overlay writes 0/0 character devices and `trusted.overlay.opaque`; the
//! AUFS-style driver keeps `.wh.` files.

use fsutil::{clear_dir_at, remove_all_at};
use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;

/// Stores deletions in a driver's layer directory.
pub trait WhiteoutFormat: Send + Sync {
    /// `name` in `dir` is deleted relative to the lower layers.
    fn whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;

    /// `dir` hides everything of the lower layers; entries for which `keep` returns true
    /// were written by the layer being applied and stay.
    fn opaque(&self, dir: BorrowedFd<'_>, keep: &dyn Fn(&OsStr) -> bool) -> io::Result<()>;

    /// Whether a layer's own directory holds the complete filesystem (so applying a
    /// whiteout really deletes, and hardlinks may point into lower layers' files).
    fn full_tree(&self) -> bool;

    /// Whether layer directory `dir` records `name` as deleted (`st` is `name`'s own
    /// status there, if it exists). Read when a layer is applied over the ones below it.
    fn is_whiteout(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: Option<&rustix::fs::Stat>,
    ) -> io::Result<bool> {
        let _ = (dir, name, st);
        Ok(false)
    }

    /// Whether directory `dir` of a layer hides everything the layers below have in it
    /// (`dir` opened for reading).
    fn is_opaque(&self, dir: BorrowedFd<'_>) -> io::Result<bool> {
        let _ = dir;
        Ok(false)
    }

    /// Removes the whiteout of `name` in layer directory `dir`; whether there was one.
    fn clear_whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
        let _ = (dir, name);
        Ok(false)
    }

    /// Whether `name` is this format's own bookkeeping in a layer directory, never a file
    /// of the image.
    fn is_meta(&self, name: &OsStr) -> bool {
        let _ = name;
        false
    }

    /// The prefix of xattrs that are this format's own markers, never the layer's (not
    /// copied when a directory of a lower layer is copied up).
    fn private_xattrs(&self) -> Option<&'static str> {
        None
    }

    /// Why a device node cannot be stored in a layer directory of this format (overlay:
    /// a 0/0 character device is its whiteout), or `None` when it can.
    fn refuses_device(&self, kind: rustix::fs::FileType, rdev: u64) -> Option<&'static str> {
        let _ = (kind, rdev);
        None
    }
}

/// For drivers whose layers are complete trees (vfs, btrfs): a whiteout deletes.
#[derive(Debug, Default, Clone, Copy)]
pub struct RemoveWhiteouts;

impl WhiteoutFormat for RemoveWhiteouts {
    fn whiteout(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        remove_all_at(dir, name)
    }

    fn opaque(&self, dir: BorrowedFd<'_>, keep: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
        clear_dir_at(dir, keep)
    }

    fn full_tree(&self) -> bool {
        true
    }
}
