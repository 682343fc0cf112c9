//! The union of branch directories in AUFS's on-disk form, without any FUSE: how a path
//! resolves top-down through the branches, how a directory's entries merge, and the
//! changes that keep the writable branch (branch 0) a correct AUFS layer: copy-up,
//! `.wh.NAME` whiteouts, `.wh..wh..opq` opaque directories and `.wh..wh.plnk` pseudo-links
//! that keep hardlinked files linked when one of their names is copied up.

use crate::branch::{copy_meta, Branch, Loc};
use fsutil::{copy_data, CopyOptions};
use rustix::fs::{AtFlags, FileType, OFlags, Stat};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub use fsutil::whiteout_names::{
    AUFS_PLINK_DIR as PLINK_DIR, OPAQUE_MARKER as OPAQUE, WHITEOUT_PREFIX as WH_PREFIX,
};

/// Whether `name` is AUFS bookkeeping (a whiteout, the opaque marker, pseudo-links), never
/// shown in the union and never creatable through it.
pub fn is_meta_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(WH_PREFIX.as_bytes())
}

fn whiteout_name(name: &OsStr) -> OsString {
    let mut w = OsString::from(WH_PREFIX);
    w.push(name);
    w
}

/// The type bits of a mode.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn is_dir(st: &Stat) -> bool {
    file_type(st) == FileType::Directory
}

/// Where a union path resolved to.
#[derive(Debug, Clone)]
pub struct Found {
    /// The branch of the topmost entry (0 is the writable one).
    pub branch: usize,
    /// The real file: `rel` in `branch`, or a pseudo-link in the writable branch.
    pub real: Loc,
    pub st: Stat,
    /// For a directory, every branch that contributes entries, top-down (cut at an opaque
    /// directory or a whiteout); empty for anything else.
    pub dirs: Vec<usize>,
}

impl Found {
    pub fn is_dir(&self) -> bool {
        is_dir(&self.st)
    }
}

/// One merged directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: FileType,
    pub ino: u64,
}

/// A union of branch directories: `branches[0]` writable, the rest read-only, top-down.
///
/// The branches are opened on first use, so a server can be set up before it confines
/// itself (see `confine`) and open them as it sees them afterwards.
#[derive(Debug)]
pub struct Union {
    paths: Vec<PathBuf>,
    opened: OnceLock<Vec<Branch>>,
    copy: CopyOptions,
    tmp_seq: AtomicU64,
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

impl Union {
    /// The union of `upper` (writable) over `lowers` (nearest first).
    pub fn new(upper: PathBuf, lowers: Vec<PathBuf>) -> Union {
        let mut paths = vec![upper];
        paths.extend(lowers);
        Union {
            paths,
            opened: OnceLock::new(),
            copy: CopyOptions::new(true),
            tmp_seq: AtomicU64::new(0),
        }
    }

    fn branches(&self) -> io::Result<&[Branch]> {
        if let Some(b) = self.opened.get() {
            return Ok(b);
        }
        let opened = self
            .paths
            .iter()
            .map(|p| Branch::open(p))
            .collect::<io::Result<Vec<_>>>()?;
        // Another thread may have won the race; either set is the same branches.
        let _ = self.opened.set(opened);
        self.opened.get().map(Vec::as_slice).ok_or_else(enoent)
    }

    /// Branch `b` (0 is the writable one).
    pub fn branch(&self, b: usize) -> io::Result<&Branch> {
        self.branches()?.get(b).ok_or_else(enoent)
    }

    /// The writable branch.
    pub fn upper(&self) -> io::Result<&Branch> {
        self.branch(0)
    }

    fn lstat(&self, b: usize, rel: &Path) -> io::Result<Option<Stat>> {
        self.branch(b)?.lstat(rel)
    }

    fn has_opaque(&self, b: usize, rel: &Path) -> io::Result<bool> {
        Ok(self.lstat(b, &rel.join(OPAQUE))?.is_some())
    }

    fn whited_out(&self, b: usize, parent: &Path, name: &OsStr) -> io::Result<bool> {
        Ok(self.lstat(b, &parent.join(whiteout_name(name)))?.is_some())
    }

    /// The union's root directory.
    pub fn root(&self) -> io::Result<Found> {
        let st = self.lstat(0, Path::new(""))?.ok_or_else(enoent)?;
        let mut dirs = Vec::new();
        for b in 0..self.paths.len() {
            dirs.push(b);
            if self.has_opaque(b, Path::new(""))? {
                break;
            }
        }
        Ok(Found {
            branch: 0,
            real: Loc {
                branch: 0,
                rel: PathBuf::new(),
            },
            st,
            dirs,
        })
    }

    /// Resolves `name` in the directory `parent` (at union path `parent_rel`).
    pub fn child(
        &self,
        parent: &Found,
        parent_rel: &Path,
        name: &OsStr,
    ) -> io::Result<Option<Found>> {
        if is_meta_name(name) || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
            return Ok(None);
        }
        let rel = parent_rel.join(name);
        let mut found: Option<Found> = None;
        for &b in &parent.dirs {
            match &mut found {
                None => {
                    if let Some(st) = self.lstat(b, &rel)? {
                        if is_dir(&st) {
                            let opaque = self.has_opaque(b, &rel)?;
                            found = Some(Found {
                                branch: b,
                                real: Loc {
                                    branch: b,
                                    rel: rel.clone(),
                                },
                                st,
                                dirs: vec![b],
                            });
                            if opaque {
                                break;
                            }
                        } else {
                            return Ok(Some(self.pseudo_linked(b, &rel, st)?));
                        }
                    } else if self.whited_out(b, parent_rel, name)? {
                        return Ok(None);
                    }
                }
                Some(f) => {
                    if self.whited_out(b, parent_rel, name)? {
                        break;
                    }
                    match self.lstat(b, &rel)? {
                        Some(st) if is_dir(&st) => {
                            f.dirs.push(b);
                            if self.has_opaque(b, &rel)? {
                                break;
                            }
                        }
                        Some(_) => break,
                        None => {}
                    }
                }
            }
        }
        Ok(found)
    }

    /// A hardlinked lower file whose pseudo-link exists was copied up under another name:
    /// this name shows the copy too.
    fn pseudo_linked(&self, b: usize, rel: &Path, st: Stat) -> io::Result<Found> {
        if b > 0 && file_type(&st) == FileType::RegularFile && st.st_nlink > 1 {
            let plink = plink_rel(&st);
            if let Some(pst) = self.lstat(0, &plink)? {
                return Ok(Found {
                    branch: 0,
                    real: Loc {
                        branch: 0,
                        rel: plink,
                    },
                    st: pst,
                    dirs: Vec::new(),
                });
            }
        }
        Ok(Found {
            branch: b,
            real: Loc {
                branch: b,
                rel: rel.to_path_buf(),
            },
            st,
            dirs: Vec::new(),
        })
    }

    /// Resolves a whole union path.
    pub fn resolve(&self, rel: &Path) -> io::Result<Option<Found>> {
        let mut cur = self.root()?;
        let mut at = PathBuf::new();
        for c in rel.components() {
            if !cur.is_dir() {
                return Ok(None);
            }
            let name = c.as_os_str();
            match self.child(&cur, &at, name)? {
                Some(f) => cur = f,
                None => return Ok(None),
            }
            at.push(name);
        }
        Ok(Some(cur))
    }

    /// The merged entries of directory `dir` (at `rel`): higher branches win, whiteouts
    /// hide what is below them, bookkeeping names never show.
    pub fn list(&self, dir: &Found, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut seen: HashSet<OsString> = HashSet::new();
        for &b in &dir.dirs {
            let fd = self.branch(b)?.dir(rel)?;
            let mut d = rustix::fs::Dir::read_from(fd.as_fd())?;
            let mut whiteouts = Vec::new();
            while let Some(e) = d.read() {
                let e = e?;
                let name = OsStr::from_bytes(e.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                if let Some(hidden) = name.as_bytes().strip_prefix(WH_PREFIX.as_bytes()) {
                    if !hidden.starts_with(WH_PREFIX.as_bytes()) {
                        whiteouts.push(OsString::from_vec(hidden.to_vec()));
                    }
                    continue;
                }
                if seen.insert(name.to_os_string()) {
                    let kind = match e.file_type() {
                        FileType::Unknown => {
                            match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                                Ok(st) => file_type(&st),
                                Err(_) => FileType::RegularFile,
                            }
                        }
                        k => k,
                    };
                    out.push(DirEntry {
                        name: name.to_os_string(),
                        kind,
                        ino: e.ino(),
                    });
                }
            }
            // A branch's whiteouts hide the entries of the branches below it.
            seen.extend(whiteouts);
        }
        Ok(out)
    }

    /// Makes sure directory `rel` exists in the writable branch, copying up each missing
    /// directory on the way with its owner, mode, times and xattrs.
    pub fn ensure_upper_dir(&self, rel: &Path) -> io::Result<()> {
        let upper = self.upper()?;
        let mut at = PathBuf::new();
        for c in rel.components() {
            at.push(c);
            match upper.lstat(&at)? {
                Some(st) if is_dir(&st) => continue,
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => {}
            }
            let f = self.resolve(&at)?.ok_or_else(enoent)?;
            if !f.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            upper.mkdir(&at, 0o700)?;
            copy_meta(self.branch(f.real.branch)?, &f.real.rel, &f.st, upper, &at)?;
        }
        Ok(())
    }

    fn temp_in(&self, dir: &Path) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(
            "{}tmp.{}.{n}",
            fsutil::whiteout_names::AUFS_META_PREFIX,
            std::process::id()
        ))
    }

    /// Copies union path `rel` up into the writable branch (if it is not there already) and
    /// returns its resolution there. Hardlinked files go through a pseudo-link, so every
    /// name of the inode keeps showing the same copy.
    pub fn copy_up(&self, rel: &Path) -> io::Result<Found> {
        let f = self.resolve(rel)?.ok_or_else(enoent)?;
        if f.branch == 0 && f.real.rel == rel {
            return Ok(f);
        }
        if let Some(parent) = rel.parent() {
            self.ensure_upper_dir(parent)?;
        }
        let upper = self.upper()?;
        if f.is_dir() {
            self.ensure_upper_dir(rel)?;
        } else if f.branch == 0 {
            // The pseudo-link of a hardlinked file copied up under another name.
            upper.link(&f.real.rel, rel)?;
        } else {
            let ft = file_type(&f.st);
            let hardlinked = ft == FileType::RegularFile && f.st.st_nlink > 1;
            let dst = if hardlinked {
                match upper.mkdir(Path::new(PLINK_DIR), 0o700) {
                    Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                    _ => {}
                }
                plink_rel(&f.st)
            } else {
                rel.to_path_buf()
            };
            let tmp = self.temp_in(dst.parent().unwrap_or(Path::new("")));
            let r = self
                .copy_entry(&f, &tmp)
                .and_then(|()| upper.rename(&tmp, &dst));
            if let Err(e) = r {
                let _ = upper.unlink(&tmp);
                return Err(e);
            }
            if hardlinked {
                upper.link(&dst, rel)?;
            }
        }
        self.resolve(rel)?.ok_or_else(enoent)
    }

    /// Copies the entry `f` (not a directory) to `dst` in the writable branch.
    fn copy_entry(&self, f: &Found, dst: &Path) -> io::Result<()> {
        let src = self.branch(f.real.branch)?;
        let upper = self.upper()?;
        match file_type(&f.st) {
            FileType::RegularFile => {
                let s = src.open_file(&f.real.rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
                let out =
                    upper.open_file(dst, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600)?;
                copy_data(s.as_fd(), out.as_fd(), f.st.st_size as u64, &self.copy)?;
            }
            FileType::Symlink => {
                let target = src.readlink(&f.real.rel)?;
                upper.symlink(OsStr::from_bytes(target.as_bytes()), dst)?;
            }
            ft => upper.mknod(dst, ft, f.st.st_mode & 0o7777, f.st.st_rdev)?,
        }
        copy_meta(src, &f.real.rel, &f.st, upper, dst)
    }

    /// Before creating `name` in `parent_rel` in the writable branch: the directory exists
    /// there and a whiteout of that name is gone. Returns whether there was one (a new
    /// directory in its place must then hide the old one's contents).
    pub fn prepare_create(&self, parent_rel: &Path, name: &OsStr) -> io::Result<bool> {
        if is_meta_name(name) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.ensure_upper_dir(parent_rel)?;
        self.upper()?.unlink(&parent_rel.join(whiteout_name(name)))
    }

    /// After a directory was made at `rel` in place of a whiteout: mark it opaque.
    pub fn make_opaque(&self, rel: &Path) -> io::Result<()> {
        self.upper()?.touch(&rel.join(OPAQUE))
    }

    /// Whether the union directory at `rel` has no entries.
    pub fn is_empty_dir(&self, dir: &Found, rel: &Path) -> io::Result<bool> {
        Ok(self.list(dir, rel)?.is_empty())
    }

    /// Removes `name` from directory `parent_rel`: deletes the writable branch's entry
    /// (a directory with whatever bookkeeping it holds) and, where a lower branch still
    /// shows the name, writes a whiteout.
    pub fn remove(&self, parent_rel: &Path, name: &OsStr) -> io::Result<()> {
        let rel = parent_rel.join(name);
        let upper = self.upper()?;
        if upper.lstat(&rel)?.is_some() {
            upper.remove_all(&rel)?;
        }
        if self.resolve(&rel)?.is_some() {
            self.ensure_upper_dir(parent_rel)?;
            upper.touch(&parent_rel.join(whiteout_name(name)))?;
        }
        Ok(())
    }

    /// Renames union path `from` to `to`. A directory that exists in a read-only branch
    /// cannot move (EXDEV, as aufs and overlayfs without redirects answer; `mv` then copies).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let src = self.resolve(from)?.ok_or_else(enoent)?;
        if src.is_dir() && (src.branch != 0 || src.dirs.len() > 1) {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let dst = self.resolve(to)?;
        if let Some(d) = &dst {
            if d.is_dir() != src.is_dir() {
                return Err(io::Error::from_raw_os_error(if d.is_dir() {
                    libc::EISDIR
                } else {
                    libc::ENOTDIR
                }));
            }
            if d.is_dir() && !self.is_empty_dir(d, to)? {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
            }
        }
        self.copy_up(from)?;
        let (to_parent, to_name) = split(to)?;
        let replaced_lower_dir = dst
            .as_ref()
            .is_some_and(|d| d.is_dir() && d.dirs.iter().any(|&b| b > 0));
        let upper = self.upper()?;
        if let Some(st) = upper.lstat(to)? {
            if is_dir(&st) {
                upper.remove_all(to)?;
            }
        }
        let had_whiteout = self.prepare_create(to_parent, to_name)?;
        upper.rename(from, to)?;
        if src.is_dir() && (had_whiteout || replaced_lower_dir) {
            self.make_opaque(to)?;
        }
        let (from_parent, from_name) = split(from)?;
        if self.resolve(from)?.is_some() {
            upper.touch(&from_parent.join(whiteout_name(from_name)))?;
        }
        Ok(())
    }

    /// Statistics of the writable branch's filesystem.
    pub fn statfs(&self) -> io::Result<rustix::fs::StatVfs> {
        self.upper()?.statvfs()
    }
}

/// Where the copy of a hardlinked lower file lives, named by its lower inode.
fn plink_rel(lower: &Stat) -> PathBuf {
    Path::new(PLINK_DIR).join(format!("{}.{}", lower.st_dev, lower.st_ino))
}

fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(io::Error::from_raw_os_error(libc::EBUSY)),
    }
}
