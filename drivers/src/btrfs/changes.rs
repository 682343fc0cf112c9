//! btrfs's native diff: what changed in a snapshot since it was taken, from the filesystem's
//! own metadata instead of comparing two whole trees (Docker walks both: moby#10091).
//!
//! Every inode modified after the snapshot's creation transaction carries a newer transid,
//! and the tree search ioctl visits only tree blocks written since then. Each such inode is
//! a changed path (added when the parent layer has no such path, else modified unless only
//! its atime moved: same inode, same ctime); each
//! changed directory is compared entry by entry with the parent layer's directory to find
//! deletions. Ancestors of a change are reported as modified, as `docker diff` does.

use super::ioctl;
use crate::changes::{Change, ChangeKind};
use fsutil::{open_in_root, open_root, OpenMode};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

/// Names in directory `rel` of the tree open as `root`, or `None` when that path is not a
/// directory there (missing, a file, or reached through a symlink).
fn names(root: &OwnedFd, rel: &Path) -> io::Result<Option<HashSet<OsString>>> {
    let fd = match open_in_root(root, rel, OpenMode::Dir) {
        Ok(fd) => fd,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut out = HashSet::new();
    let mut dir = rustix::fs::Dir::read_from(fd.as_fd())?;
    while let Some(e) = dir.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.insert(OsString::from_vec(n.to_vec()));
        }
    }
    Ok(Some(out))
}

/// The status of `rel` in the tree open as `root` if it exists as that very path: every
/// component before the last a real directory (not a symlink), the last of any type.
fn lookup(root: &OwnedFd, rel: &Path) -> io::Result<Option<rustix::fs::Stat>> {
    use rustix::fs::{openat, statat, AtFlags, Mode, OFlags};
    let comps: Vec<_> = rel.components().collect();
    let mut dir = root.try_clone()?;
    for (i, c) in comps.iter().enumerate() {
        let st = match statat(&dir, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if i + 1 == comps.len() {
            return Ok(Some(st));
        }
        if st.st_mode & S_IFMT != S_IFDIR {
            return Ok(None);
        }
        dir = openat(
            &dir,
            c.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(None)
}

/// The changes of the snapshot at `layer` against `parent`, given the transaction the
/// snapshot was created in.
pub fn native(layer: &Path, parent: &Path, since: u64) -> io::Result<Vec<Change>> {
    let lfd = open_root(layer)?;
    let pfd = open_root(parent)?;
    // Written data updates an inode's item only when it reaches the disk (delalloc), and
    // inode updates wait in the delayed-inode cache until a commit: flush and commit (one
    // syncfs) so the tree holds every change.
    rustix::fs::syncfs(&lfd)?;
    ioctl::commit_transaction(&lfd)?;
    let changed = ioctl::search_inodes_since(&lfd, since)?;
    let mut out: BTreeMap<PathBuf, ChangeKind> = BTreeMap::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for inode in changed {
        let paths = if inode.ino == 256 {
            vec![Vec::new()] // the subvolume's root directory
        } else {
            ioctl::inode_paths(&lfd, inode.ino)?
        };
        for p in paths {
            let rel = PathBuf::from(OsString::from_vec(p));
            fsutil::check_depth(&rel)?;
            if inode.mode & S_IFMT == S_IFDIR {
                dirs.push(rel.clone());
            }
            if rel.as_os_str().is_empty() {
                continue;
            }
            let kind = match lookup(&pfd, &rel)? {
                None => ChangeKind::Added,
                Some(before) => {
                    // Reading a file updates its atime, which gives it a new transid too:
                    // the same inode with the same ctime has not really changed.
                    let now = lookup(&lfd, &rel)?;
                    let same = now.is_some_and(|n| {
                        n.st_ino == before.st_ino
                            && n.st_ctime == before.st_ctime
                            && n.st_ctime_nsec == before.st_ctime_nsec
                    });
                    if same {
                        continue;
                    }
                    ChangeKind::Modified
                }
            };
            out.insert(rel, kind);
        }
    }
    // Deletions: entries a changed directory had in the parent layer and has no more.
    for d in dirs {
        let (Some(before), Some(now)) = (names(&pfd, &d)?, names(&lfd, &d)?) else {
            continue;
        };
        for gone in before.difference(&now) {
            out.insert(d.join(gone), ChangeKind::Deleted);
        }
    }
    // Ancestors of every change are modified (a rename inside an unchanged tree still
    // touches its directory, but a content change does not).
    let mut ancestors = Vec::new();
    for p in out.keys() {
        let mut a = p.parent();
        while let Some(x) = a {
            if x.as_os_str().is_empty() {
                break;
            }
            ancestors.push(x.to_path_buf());
            a = x.parent();
        }
    }
    for a in ancestors {
        out.entry(a).or_insert(ChangeKind::Modified);
    }
    Ok(out
        .into_iter()
        .map(|(path, kind)| Change { path, kind })
        .collect())
}
