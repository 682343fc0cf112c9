//! One branch directory of the union, reached only through a descriptor of its root.
//!
//! The container owns what is inside its branches and can rename, replace and symlink
//! entries while the server works on them. So no operation ever re-walks a path string:
//! the parent of every entry is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! from the branch root (a symlink anywhere on the way is refused, never followed, and
//! nothing can resolve above the root), and the entry itself is then used with `*at` calls
//! that do not follow it.

use rustix::fs::{AtFlags, Gid, Mode, OFlags, ResolveFlags, Stat, Timestamps, Uid};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A branch: its root directory, opened once.
#[derive(Debug)]
pub struct Branch {
    root: OwnedFd,
}

/// The parent directory of an entry, opened, and the entry's name in it.
pub struct At {
    pub dir: OwnedFd,
    pub name: OsString,
}

impl At {
    fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn rel_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

impl Branch {
    /// Opens the branch rooted at `path`.
    pub fn open(path: &Path) -> io::Result<Branch> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Branch { root })
    }

    /// Opens directory `rel` of the branch (readable, for listing or as a dirfd).
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat2(
            &self.root,
            rel_or_dot(rel),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// The parent of `rel`, opened, and the last name; the root itself is `.` in itself.
    pub fn at(&self, rel: &Path) -> io::Result<At> {
        match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) => Ok(At {
                dir: rustix::fs::openat2(
                    &self.root,
                    rel_or_dot(parent),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )?,
                name: name.to_os_string(),
            }),
            _ if rel.as_os_str().is_empty() => Ok(At {
                dir: rustix::io::fcntl_dupfd_cloexec(&self.root, 0)?,
                name: ".".into(),
            }),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }

    /// The status of `rel` without following it; `None` when it is not there (a missing
    /// component, or a non-directory or a symlink on the way).
    pub fn lstat(&self, rel: &Path) -> io::Result<Option<Stat>> {
        let at = match self.at(rel) {
            Ok(at) => at,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(at.fd(), &at.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens `rel` with `flags`, never following it if it is a symlink.
    pub fn open_file(&self, rel: &Path, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        let at = self.at(rel)?;
        Ok(rustix::fs::openat(
            at.fd(),
            &at.name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?)
    }

    /// Creates an empty regular file (a whiteout or marker), replacing nothing.
    pub fn touch(&self, rel: &Path) -> io::Result<()> {
        match self.open_file(rel, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o644) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The target of symlink `rel`.
    pub fn readlink(&self, rel: &Path) -> io::Result<std::ffi::CString> {
        let at = self.at(rel)?;
        Ok(rustix::fs::readlinkat(at.fd(), &at.name, Vec::new())?)
    }

    /// Makes directory `rel`.
    pub fn mkdir(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let at = self.at(rel)?;
        rustix::fs::mkdirat(at.fd(), &at.name, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Makes a device node, FIFO or socket `rel`.
    pub fn mknod(
        &self,
        rel: &Path,
        kind: rustix::fs::FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        let at = self.at(rel)?;
        rustix::fs::mknodat(at.fd(), &at.name, kind, Mode::from_raw_mode(mode), dev)?;
        Ok(())
    }

    /// Makes symlink `rel` pointing at `target` (never resolved here).
    pub fn symlink(&self, target: &OsStr, rel: &Path) -> io::Result<()> {
        let at = self.at(rel)?;
        rustix::fs::symlinkat(target, at.fd(), &at.name)?;
        Ok(())
    }

    /// Hardlinks `from` as `to`, both in this branch.
    pub fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (self.at(from)?, self.at(to)?);
        rustix::fs::linkat(f.fd(), &f.name, t.fd(), &t.name, AtFlags::empty())?;
        Ok(())
    }

    /// Renames `from` to `to`, both in this branch.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (self.at(from)?, self.at(to)?);
        rustix::fs::renameat(f.fd(), &f.name, t.fd(), &t.name)?;
        Ok(())
    }

    /// Removes non-directory `rel`; `Ok(false)` when it was not there.
    pub fn unlink(&self, rel: &Path) -> io::Result<bool> {
        let at = match self.at(rel) {
            Ok(at) => at,
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(at.fd(), &at.name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `rel` and, for a directory, everything in it; nothing is followed.
    pub fn remove_all(&self, rel: &Path) -> io::Result<()> {
        let at = self.at(rel)?;
        fsutil::remove_all_at(at.fd(), &at.name)
    }

    /// Sets the owner of `rel` itself.
    pub fn chown(&self, rel: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let at = self.at(rel)?;
        rustix::fs::chownat(
            at.fd(),
            &at.name,
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Sets the mode of `rel` (refused for a symlink).
    pub fn chmod(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let at = self.at(rel)?;
        fsutil::nofollow::chmod_at(at.fd(), &at.name, mode)
    }

    /// Sets the times of `rel` itself.
    pub fn utimens(&self, rel: &Path, times: &Timestamps) -> io::Result<()> {
        let at = self.at(rel)?;
        rustix::fs::utimensat(at.fd(), &at.name, times, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// One xattr of `rel` itself.
    pub fn getxattr(&self, rel: &Path, name: &OsStr) -> io::Result<Vec<u8>> {
        let at = self.at(rel)?;
        fsutil::xattr::lget(at.fd(), &at.name, name)
    }

    /// The xattr names of `rel` itself, NUL-separated.
    pub fn listxattr(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let at = self.at(rel)?;
        fsutil::xattr::llist(at.fd(), &at.name)
    }

    /// Sets one xattr of `rel` itself.
    pub fn setxattr(
        &self,
        rel: &Path,
        name: &OsStr,
        value: &[u8],
        flags: rustix::fs::XattrFlags,
    ) -> io::Result<()> {
        let at = self.at(rel)?;
        fsutil::xattr::lset_flags(at.fd(), &at.name, name, value, flags)
    }

    /// Removes one xattr of `rel` itself.
    pub fn removexattr(&self, rel: &Path, name: &OsStr) -> io::Result<()> {
        let at = self.at(rel)?;
        fsutil::xattr::lremove(at.fd(), &at.name, name)
    }

    /// Statistics of the branch's filesystem.
    pub fn statvfs(&self) -> io::Result<rustix::fs::StatVfs> {
        Ok(rustix::fs::fstatvfs(&self.root)?)
    }
}

/// Copies `rel`'s owner, mode, xattrs and times (status `st`) in branch `src` onto `to` in
/// branch `dst`.
pub fn copy_meta(src: &Branch, rel: &Path, st: &Stat, dst: &Branch, to: &Path) -> io::Result<()> {
    let (s, d) = (src.at(rel)?, dst.at(to)?);
    fsutil::copy_meta_at(s.fd(), &s.name, d.fd(), &d.name, st)
}

/// Whether an error from resolving a path means "not there": a missing component, a
/// non-directory on the way, or a symlink on the way (refused, never followed).
pub fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
    )
}

/// A path inside a branch, as [`Found`](crate::branches::Found) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The branch index (0 is the writable one).
    pub branch: usize,
    /// The path inside that branch.
    pub rel: PathBuf,
}
