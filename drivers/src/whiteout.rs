//! The whiteout-format hook: how a driver stores "deleted" and "opaque" on disk.
//!
//! The layer store's one tar applier calls this hook when it meets an OCI whiteout
//! (`.wh.NAME`) or opaque marker (`.wh..wh..opq`), with the parent directory already
//! resolved safely inside the layer. Drivers whose layers are full trees (vfs, btrfs)
//! simply delete; overlay writes 0/0 character devices and `trusted.overlay.opaque`; the
//! AUFS-style driver keeps `.wh.` files.

use crate::fsutil::{clear_dir_at, remove_all_at};
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
