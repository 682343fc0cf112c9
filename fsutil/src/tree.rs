//! Removing trees relative to a directory descriptor, never following symlinks, and
//! measuring them.

use rustix::fs::{AtFlags, Dir, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Removes `name` in `dir`, and for a directory everything below it. A missing entry is not
/// an error. Works at any depth with two descriptors and no recursion: see [`empty_dir`].
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    if remove_if_simple(dir, name)? {
        return Ok(());
    }
    let sub = open_dir_nofollow(dir, name)?;
    empty_dir(sub.as_fd())?;
    drop(sub);
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes every entry of `dir` for which `keep` returns false.
pub fn clear_dir_at(dir: BorrowedFd<'_>, keep: &dyn Fn(&OsStr) -> bool) -> io::Result<()> {
    for name in list_dir(dir)? {
        if !keep(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

/// Opens directory `name` of `dir` for reading, never following a symlink.
pub fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The name a directory hoisted into the root of a removal gets: NUL-free, and a name no
/// tree can already hold there is not needed (`RENAME_NOREPLACE` skips taken ones).
fn hoisted_name(n: u64) -> OsString {
    OsString::from(format!(".strata-rm-{n}"))
}

/// Empties the directory open as `root`, whatever the depth of the tree below it.
///
/// A tree made by a container can be 100,000 levels deep; removing it one stack frame (or
/// one descriptor) per level kills the remover. Instead, a non-empty directory found
/// anywhere is renamed up into `root` under a fresh name and queued: each directory is
/// then emptied with two descriptors open (the root and itself), its non-directories
/// unlinked, its empty subdirectories removed, its non-empty ones hoisted in turn. Every
/// entry moves at most once, nothing is ever followed, and `..` is never used, so the
/// walk cannot be led outside `root` even if the tree changes under it.
///
/// A directory whose entries cannot move up (`EXDEV`: another filesystem's root, such as a
/// btrfs subvolume a container made) is emptied in place as a root of its own; such roots
/// nest at most [`MAX_NESTED_ROOTS`] deep.
pub fn empty_dir(root: BorrowedFd<'_>) -> io::Result<()> {
    empty_dir_nested(root, 0)
}

/// How many filesystem roots (btrfs subvolumes in a subvolume ...) [`empty_dir`] enters.
pub const MAX_NESTED_ROOTS: usize = 64;

fn empty_dir_nested(root: BorrowedFd<'_>, nested: usize) -> io::Result<()> {
    if nested > MAX_NESTED_ROOTS {
        return Err(io::Error::other(format!(
            "more than {MAX_NESTED_ROOTS} nested filesystems (btrfs subvolumes?) in a tree to remove; \
             delete the innermost ones by hand (btrfs subvolume delete)"
        )));
    }
    let mut next = 0u64;
    // Directories in `root` still to empty: its own entries first, then hoisted ones.
    let mut queue: Vec<OsString> = Vec::new();
    for name in list_dir(root)? {
        if !remove_if_simple(root, &name)? {
            queue.push(name);
        }
    }
    while let Some(name) = queue.pop() {
        let dir = match open_dir_nofollow(root, &name) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        loop {
            let names = list_dir_batch(dir.as_fd(), 4096)?;
            if names.is_empty() {
                break;
            }
            for child in names {
                if remove_if_simple(dir.as_fd(), &child)? {
                    continue;
                }
                loop {
                    let to = hoisted_name(next);
                    next += 1;
                    match rustix::fs::renameat_with(
                        dir.as_fd(),
                        &child,
                        root,
                        &to,
                        rustix::fs::RenameFlags::NOREPLACE,
                    ) {
                        Ok(()) => {
                            queue.push(to);
                            break;
                        }
                        Err(rustix::io::Errno::EXIST) => continue,
                        Err(rustix::io::Errno::XDEV) => {
                            // `dir` is another filesystem's root: empty `child` from there.
                            let sub = open_dir_nofollow(dir.as_fd(), &child)?;
                            empty_dir_nested(sub.as_fd(), nested + 1)?;
                            drop(sub);
                            rustix::fs::unlinkat(dir.as_fd(), &child, AtFlags::REMOVEDIR)?;
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        drop(dir);
        match rustix::fs::unlinkat(root, &name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes `name` in `dir` if it is not a directory or is an empty one; `false` for a
/// directory with entries (left for the caller).
fn remove_if_simple(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(true),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(true),
        Err(rustix::io::Errno::NOTEMPTY) | Err(rustix::io::Errno::EXIST) => Ok(false),
        // unlink said EPERM and this is no directory: an immutable or append-only file.
        Err(rustix::io::Errno::NOTDIR) => Err(rustix::io::Errno::PERM.into()),
        Err(e) => Err(e.into()),
    }
}

/// Up to `max` names of `dir` (without `.` and `..`), read from its start.
fn list_dir_batch(dir: BorrowedFd<'_>, max: usize) -> io::Result<Vec<OsString>> {
    let mut d = Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(n).to_os_string());
        if names.len() >= max {
            break;
        }
    }
    Ok(names)
}

/// Names in a directory, without `.` and `..`.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    list_dir_batch(dir, usize::MAX)
}

/// Bytes of regular files under `root`, counting each hardlinked inode once.
pub fn tree_size(root: &Path) -> io::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.size();
            }
        }
    }
    Ok(total)
}

/// [`remove_all_at`] by path: the parent is opened (following symlinks in it, as any path
/// does), the last component never is. For trees a container or an archive made, in place
/// of `std::fs::remove_dir_all`, which recurses once per level.
pub fn remove_tree(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = match super::open_root(parent) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_all_at(fd.as_fd(), name)
}
