//! The union of branch directories in AUFS's on-disk form, without any FUSE: how a path
//! resolves top-down through the branches, how a directory's entries merge, and the
//! changes that keep the writable branch (branch 0) a correct AUFS layer: copy-up,
//! `.wh.NAME` whiteouts, `.wh..wh..opq` opaque directories and `.wh..wh.plnk` pseudo-links
//! that keep hardlinked files linked when one of their names is copied up.

use drivers::fsutil::{copy_data, CopyOptions};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of a whiteout: `.wh.NAME` hides `NAME` of the branches below.
pub const WH_PREFIX: &str = ".wh.";
/// A directory holding this file hides everything the branches below have in it.
pub const OPAQUE: &str = ".wh..wh..opq";
/// Where copied-up hardlinked files live, named by their lower inode number.
pub const PLINK_DIR: &str = ".wh..wh.plnk";

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

/// `lstat`, with "not there" (including a non-directory on the way) as `None`.
pub fn lstat(p: &Path) -> io::Result<Option<Stat>> {
    match rustix::fs::lstat(p) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
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
    /// The real file: `branch/rel`, or a pseudo-link in the writable branch.
    pub real: PathBuf,
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
#[derive(Debug)]
pub struct Union {
    branches: Vec<PathBuf>,
    copy: CopyOptions,
    tmp_seq: AtomicU64,
}

impl Union {
    /// The union of `upper` (writable) over `lowers` (nearest first).
    pub fn new(upper: PathBuf, lowers: Vec<PathBuf>) -> Union {
        let mut branches = vec![upper];
        branches.extend(lowers);
        Union {
            branches,
            copy: CopyOptions::new(true),
            tmp_seq: AtomicU64::new(0),
        }
    }

    /// The writable branch.
    pub fn upper(&self) -> &Path {
        &self.branches[0]
    }

    fn real(&self, b: usize, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.branches[b].clone()
        } else {
            self.branches[b].join(rel)
        }
    }

    fn has_opaque(&self, b: usize, rel: &Path) -> io::Result<bool> {
        Ok(lstat(&self.real(b, rel).join(OPAQUE))?.is_some())
    }

    fn whited_out(&self, b: usize, parent: &Path, name: &OsStr) -> io::Result<bool> {
        Ok(lstat(&self.real(b, parent).join(whiteout_name(name)))?.is_some())
    }

    /// The union's root directory.
    pub fn root(&self) -> io::Result<Found> {
        let st = rustix::fs::lstat(&self.branches[0])?;
        let mut dirs = Vec::new();
        for b in 0..self.branches.len() {
            dirs.push(b);
            if self.has_opaque(b, Path::new(""))? {
                break;
            }
        }
        Ok(Found {
            branch: 0,
            real: self.branches[0].clone(),
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
                    if let Some(st) = lstat(&self.real(b, &rel))? {
                        if is_dir(&st) {
                            let opaque = self.has_opaque(b, &rel)?;
                            found = Some(Found {
                                branch: b,
                                real: self.real(b, &rel),
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
                    match lstat(&self.real(b, &rel))? {
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
            let plink = self.plink_path(&st);
            if let Some(pst) = lstat(&plink)? {
                return Ok(Found {
                    branch: 0,
                    real: plink,
                    st: pst,
                    dirs: Vec::new(),
                });
            }
        }
        Ok(Found {
            branch: b,
            real: self.real(b, rel),
            st,
            dirs: Vec::new(),
        })
    }

    fn plink_path(&self, lower: &Stat) -> PathBuf {
        self.branches[0]
            .join(PLINK_DIR)
            .join(format!("{}.{}", lower.st_dev, lower.st_ino))
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
            let path = self.real(b, rel);
            let fd = rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
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
                        FileType::Unknown => lstat(&path.join(name))?
                            .map(|s| file_type(&s))
                            .unwrap_or(FileType::RegularFile),
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
        let mut at = PathBuf::new();
        for c in rel.components() {
            at.push(c);
            let up = self.real(0, &at);
            match lstat(&up)? {
                Some(st) if is_dir(&st) => continue,
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => {}
            }
            let f = self
                .resolve(&at)?
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            if !f.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            rustix::fs::mkdir(&up, Mode::from_raw_mode(0o700))?;
            copy_meta(&f.real, &up, &f.st)?;
        }
        Ok(())
    }

    fn temp_in(&self, dir: &Path) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".wh..wh.tmp.{}.{n}", std::process::id()))
    }

    /// Copies union path `rel` up into the writable branch (if it is not there already) and
    /// returns its resolution there. Hardlinked files go through a pseudo-link, so every
    /// name of the inode keeps showing the same copy.
    pub fn copy_up(&self, rel: &Path) -> io::Result<Found> {
        let f = self
            .resolve(rel)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let up = self.real(0, rel);
        if f.branch == 0 && f.real == up {
            return Ok(f);
        }
        if let Some(parent) = rel.parent() {
            self.ensure_upper_dir(parent)?;
        }
        if f.is_dir() {
            self.ensure_upper_dir(rel)?;
        } else if f.branch == 0 {
            // The pseudo-link of a hardlinked file copied up under another name.
            rustix::fs::link(&f.real, &up)?;
        } else {
            let ft = file_type(&f.st);
            let hardlinked = ft == FileType::RegularFile && f.st.st_nlink > 1;
            let dst = if hardlinked {
                let dir = self.branches[0].join(PLINK_DIR);
                fs::create_dir_all(&dir)?;
                self.plink_path(&f.st)
            } else {
                up.clone()
            };
            let tmp = self.temp_in(dst.parent().unwrap_or(self.upper()));
            let r = self
                .copy_entry(&f, &tmp)
                .and_then(|()| fs::rename(&tmp, &dst));
            if let Err(e) = r {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            if hardlinked {
                rustix::fs::link(&dst, &up)?;
            }
        }
        self.resolve(rel)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn copy_entry(&self, f: &Found, dst: &Path) -> io::Result<()> {
        match file_type(&f.st) {
            FileType::RegularFile => {
                let src = fs::File::open(&f.real)?;
                let out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dst)?;
                copy_data(src.as_fd(), out.as_fd(), f.st.st_size as u64, &self.copy)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlink(&f.real, Vec::new())?;
                rustix::fs::symlink(target.as_c_str(), dst)?;
            }
            ft => {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    dst,
                    ft,
                    Mode::from_raw_mode(f.st.st_mode & 0o7777),
                    f.st.st_rdev,
                )?;
            }
        }
        copy_meta(&f.real, dst, &f.st)
    }

    /// Before creating `name` in `parent_rel` in the writable branch: the directory exists
    /// there and a whiteout of that name is gone. Returns whether there was one (a new
    /// directory in its place must then hide the old one's contents).
    pub fn prepare_create(&self, parent_rel: &Path, name: &OsStr) -> io::Result<bool> {
        if is_meta_name(name) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.ensure_upper_dir(parent_rel)?;
        let wh = self.real(0, parent_rel).join(whiteout_name(name));
        match fs::remove_file(&wh) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// After a directory was made at `rel` in place of a whiteout: mark it opaque.
    pub fn make_opaque(&self, rel: &Path) -> io::Result<()> {
        fs::File::create(self.real(0, rel).join(OPAQUE)).map(|_| ())
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
        let up = self.real(0, &rel);
        if let Some(st) = lstat(&up)? {
            if is_dir(&st) {
                fs::remove_dir_all(&up)?;
            } else {
                fs::remove_file(&up)?;
            }
        }
        if self.resolve(&rel)?.is_some() {
            self.ensure_upper_dir(parent_rel)?;
            let wh = self.real(0, parent_rel).join(whiteout_name(name));
            fs::File::create(wh)?;
        }
        Ok(())
    }

    /// Renames union path `from` to `to`. A directory that exists in a read-only branch
    /// cannot move (EXDEV, as aufs and overlayfs without redirects answer; `mv` then copies).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let src = self
            .resolve(from)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
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
        let up_to = self.real(0, to);
        if let Some(st) = lstat(&up_to)? {
            if is_dir(&st) {
                fs::remove_dir_all(&up_to)?;
            }
        }
        let had_whiteout = self.prepare_create(to_parent, to_name)?;
        fs::rename(self.real(0, from), &up_to)?;
        if src.is_dir() && (had_whiteout || replaced_lower_dir) {
            self.make_opaque(to)?;
        }
        let (from_parent, from_name) = split(from)?;
        if self.resolve(from)?.is_some() {
            let wh = self.real(0, from_parent).join(whiteout_name(from_name));
            fs::File::create(wh)?;
        }
        Ok(())
    }

    /// Statistics of the writable branch's filesystem.
    pub fn statfs(&self) -> io::Result<rustix::fs::StatVfs> {
        Ok(rustix::fs::statvfs(self.upper())?)
    }

    /// The writable-branch path of union path `rel`.
    pub fn upper_path(&self, rel: &Path) -> PathBuf {
        self.real(0, rel)
    }
}

fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(io::Error::from_raw_os_error(libc::EBUSY)),
    }
}

/// Copies owner, mode, xattrs and times of `src` (status `st`) onto `dst`.
fn copy_meta(src: &Path, dst: &Path, st: &Stat) -> io::Result<()> {
    use rustix::fs::{Gid, Uid};
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if file_type(st) != FileType::Symlink {
        rustix::fs::chmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    }
    copy_xattrs(src, dst)?;
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(src, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(rustix::io::Errno::RANGE) => {
            names.resize(rustix::fs::llistxattr_query(src)? * 2, 0);
            rustix::fs::llistxattr(src, &mut names[..])?
        }
        Err(e) => return Err(e.into()),
    };
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = OsStr::from_bytes(name);
        let mut v = vec![0u8; 65536];
        let len = match rustix::fs::lgetxattr(src, name, &mut v[..]) {
            Ok(len) => len,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        rustix::fs::lsetxattr(dst, name, &v[..len], rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}
