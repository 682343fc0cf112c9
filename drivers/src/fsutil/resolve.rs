//! Path resolution confined to a root directory (openat2 `RESOLVE_IN_ROOT`).

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// What kind of descriptor [`open_in_root`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// A directory, readable (for listing and as a dirfd).
    Dir,
    /// An `O_PATH` handle to the entry itself, never following a final symlink.
    PathNoFollow,
    /// A regular file opened for reading, never following a final symlink.
    ReadFile,
}

/// Opens the root directory of a tree.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `rel` inside the tree rooted at `root`: `..` and absolute symlinks are resolved as
/// if `root` were `/`, so nothing outside the root can be reached, and magic links are refused.
pub fn open_in_root<Fd: AsFd>(root: Fd, rel: &Path, mode: OpenMode) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let flags = match mode {
        OpenMode::Dir => OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        OpenMode::PathNoFollow => OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        OpenMode::ReadFile => OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
    };
    Ok(rustix::fs::openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}
