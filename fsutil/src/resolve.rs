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
    /// A file opened for reading, never following a final symlink; non-blocking, so a
    /// FIFO planted in its place cannot hang the caller (check the type with `fstat`, or
    /// use [`read_regular_in_root`]).
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
        OpenMode::ReadFile => {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
        }
    };
    Ok(rustix::fs::openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Reads `rel` inside the tree rooted at `root` when it is a regular file of at most `max`
/// bytes: `Ok(None)` when it does not exist; an error naming the problem when it is
/// something else (a FIFO, a device, a directory) or larger. For files an image or a
/// container controls, such as its `/etc/passwd`.
pub fn read_regular_in_root<Fd: AsFd>(
    root: Fd,
    rel: &Path,
    max: u64,
) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let fd = match open_in_root(root, rel, OpenMode::ReadFile) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", rel.display()),
        ));
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", rel.display()),
        ));
    }
    Ok(Some(buf))
}
