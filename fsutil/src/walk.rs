//! Walking a tree by descriptor without recursion and with a bound on its depth: for trees
//! a container or an archive made, which can be as deep as their maker liked. The walk
//! itself is a loop with one frame per level on the heap; the bound keeps the descriptors
//! it holds (one per level) and any caller's per-level work small.

use rustix::fs::{AtFlags, FileType, Stat};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The deepest directory level strata walks, copies or archives (removal has no bound).
/// Deeper trees are refused with [`too_deep`]: a path that deep is past `PATH_MAX` for
/// most tools anyway, and real images stay far below it.
pub const MAX_TREE_DEPTH: usize = 512;

/// The error for a tree deeper than [`MAX_TREE_DEPTH`] at `rel`.
pub fn too_deep(rel: &Path) -> io::Error {
    let shown: String = rel.to_string_lossy().chars().take(120).collect();
    io::Error::other(format!(
        "directory tree deeper than {MAX_TREE_DEPTH} levels at {shown}...: strata does not \
         walk, copy or archive trees that deep (remove it, or flatten it)"
    ))
}

/// Refuses `rel` when it has more than [`MAX_TREE_DEPTH`] components: for walkers that
/// keep their own path.
pub fn check_depth(rel: &Path) -> io::Result<()> {
    if rel.components().count() > MAX_TREE_DEPTH {
        return Err(too_deep(rel));
    }
    Ok(())
}

struct Frame {
    dir: OwnedFd,
    /// Names still to visit, last first.
    names: Vec<OsString>,
}

/// Sorted names of a directory (without `.` and `..`), reversed for popping.
fn names_of(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = crate::tree::list_dir(dir)?;
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names)
}

/// Visits `name` in `parent` (as `rel`) and, for a directory, everything below it in path
/// order, each directory before its entries. `visit` gets the entry's parent directory,
/// its name, its path (`rel` joined with the names below) and its status; nothing is
/// followed. With `include_top` false the top entry itself is not visited.
pub fn walk_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    rel: &Path,
    include_top: bool,
    visit: &mut dyn FnMut(BorrowedFd<'_>, &OsStr, &Path, &Stat) -> io::Result<()>,
) -> io::Result<()> {
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if include_top {
        visit(parent, name, rel, &st)?;
    }
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(());
    }
    let mut rel: PathBuf = rel.to_path_buf();
    let top = crate::tree::open_dir_nofollow(parent, name)?;
    let mut stack = vec![Frame {
        names: names_of(top.as_fd())?,
        dir: top,
    }];
    loop {
        // The level of `frame`'s entries below the top (1 for the top's own).
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            break;
        };
        let Some(child) = frame.names.pop() else {
            stack.pop();
            rel.pop();
            continue;
        };
        let st = match rustix::fs::statat(&frame.dir, &child, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue, // gone while walking
            Err(e) => return Err(e.into()),
        };
        rel.push(&child);
        visit(frame.dir.as_fd(), &child, &rel, &st)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            rel.pop();
            continue;
        }
        if depth > MAX_TREE_DEPTH {
            return Err(too_deep(&rel));
        }
        let dir = crate::tree::open_dir_nofollow(frame.dir.as_fd(), &child)?;
        stack.push(Frame {
            names: names_of(dir.as_fd())?,
            dir,
        });
    }
    Ok(())
}
