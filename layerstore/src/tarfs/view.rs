//! The filesystem a layer is applied onto: the layer's own directory (being written, the
//! "upper") over the directories of the layers below it, merged the way the driver's
//! mount will merge them, read in the driver's own whiteout form.
//!
//! Drivers whose layer directories hold only their own changes (overlay2, aufs) need it to
//! apply a tar as the image means it, as containerd's applier does with its parents: a
//! path goes through a symlink that lives in a lower layer, a directory only implied by a
//! new entry is copied up with its metadata, a hardlink may point at a lower file, and a
//! whiteout of a path that is not there is a no-op. For a complete tree (vfs, btrfs) the
//! same code runs with no lower layers. Everything is resolved with descriptors and `*at`
//! calls inside the layer roots; symlinks are followed by hand and never leave the root.

use drivers::WhiteoutFormat;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path before giving up (as Linux's MAXSYMLINKS).
const MAX_HOPS: u32 = 40;

/// Waits until the layers below are complete (they may be applied in parallel).
pub type Gate<'a> = &'a (dyn Fn() -> io::Result<()> + Sync);

/// A directory of the merged view.
pub struct MDir {
    /// Its path from the root, every component a real directory of the view.
    pub path: PathBuf,
    /// The directory in the upper, if it is there.
    pub upper: Option<OwnedFd>,
    /// The lower layers' directories that show through, nearest first, with the index of
    /// their layer (0 the nearest).
    pub lowers: Vec<(usize, OwnedFd)>,
}

/// Where an entry of the view lives.
pub enum Place {
    Upper,
    /// In the lower layer of this index (0 is the nearest), in the directory given.
    Lower(usize, OwnedFd),
}

/// What a name in a directory of the view is.
pub enum Hit {
    Dir(MDir),
    Symlink(Vec<u8>, Place),
    Other(Stat, Place),
    /// Not there; `upper_whiteout` when this layer's own whiteout hides it.
    Absent {
        upper_whiteout: bool,
    },
}

/// A directory the view made in the upper while resolving a path.
pub struct Made {
    pub path: PathBuf,
    /// The times of the lower directory it was copied up from (to set once its entries
    /// are written); `None` for a new, empty directory.
    pub times: Option<Timestamps>,
}

/// The merged view of an upper layer directory over its lower ones.
pub struct View<'a> {
    upper: OwnedFd,
    lower_paths: &'a [PathBuf],
    lowers: Option<Vec<(usize, OwnedFd)>>,
    gate: Option<Gate<'a>>,
    format: &'a dyn WhiteoutFormat,
}

fn statat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens directory `name` of `dir` for reading, never following a symlink.
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    fsutil::tree::open_dir_nofollow(dir, name)
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

/// `base` joined with the symlink `target`, `..` resolved lexically and never above the
/// root (every component of `base` is a real directory, so lexical is exact).
fn join_link(base: &Path, target: &[u8]) -> PathBuf {
    let target = Path::new(OsStr::from_bytes(target));
    let mut out = if target.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl<'a> View<'a> {
    /// The view of `upper` over `lower_paths` (nearest first) read as `format`; `gate`
    /// is called once before the lower layers are first looked at.
    pub fn new(
        upper: OwnedFd,
        lower_paths: &'a [PathBuf],
        gate: Option<Gate<'a>>,
        format: &'a dyn WhiteoutFormat,
    ) -> View<'a> {
        View {
            upper,
            lower_paths,
            lowers: if lower_paths.is_empty() {
                Some(Vec::new())
            } else {
                None
            },
            gate,
            format,
        }
    }

    /// Directory `rel` of the layer itself when every component of it is a real
    /// directory there (then it is the view's directory as it is); an error otherwise
    /// (ENOENT, ENOTDIR or ELOOP for a symlink on the way).
    pub fn upper_dir(&self, rel: &Path) -> Result<OwnedFd, rustix::io::Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            &self.upper,
            rel,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn lower_roots(&mut self) -> io::Result<&[(usize, OwnedFd)]> {
        if self.lowers.is_none() {
            if let Some(gate) = self.gate {
                gate()?;
            }
            let mut v = Vec::with_capacity(self.lower_paths.len());
            for (i, p) in self.lower_paths.iter().enumerate() {
                v.push((i, fsutil::open_root(p)?));
            }
            self.lowers = Some(v);
        }
        Ok(self.lowers.as_deref().unwrap_or(&[]))
    }

    /// The root of the view. (Opaque markers on layer roots are not honoured: overlayfs
    /// ignores them, so an opaque root is stored as whiteouts instead.)
    pub fn root(&mut self) -> io::Result<MDir> {
        let upper = Some(dup(&self.upper)?);
        let lowers = self
            .lower_roots()?
            .iter()
            .map(|(i, fd)| Ok((*i, dup(fd)?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(MDir {
            path: PathBuf::new(),
            upper,
            lowers,
        })
    }

    /// The lower directories named `name` in `lowers` that show through, nearest first.
    fn lower_dirs_of(
        &self,
        lowers: &[(usize, OwnedFd)],
        name: &OsStr,
    ) -> io::Result<Vec<(usize, OwnedFd)>> {
        let mut out = Vec::new();
        for (layer, l) in lowers {
            let st = statat(l.as_fd(), name)?;
            if self.format.is_whiteout(l.as_fd(), name, st.as_ref())? {
                break;
            }
            match st {
                Some(st) if kind(&st) == FileType::Directory => {
                    let fd = open_dir_at(l.as_fd(), name)?;
                    let opaque = self.format.is_opaque(fd.as_fd())?;
                    out.push((*layer, fd));
                    if opaque {
                        break;
                    }
                }
                Some(_) => break,
                None => {}
            }
        }
        Ok(out)
    }

    /// What `name` is in directory `dir` of the view.
    pub fn lookup(&self, dir: &MDir, name: &OsStr) -> io::Result<Hit> {
        let path = dir.path.join(name);
        if let Some(u) = &dir.upper {
            let st = statat(u.as_fd(), name)?;
            if self.format.is_whiteout(u.as_fd(), name, st.as_ref())? {
                return Ok(Hit::Absent {
                    upper_whiteout: true,
                });
            }
            if let Some(st) = st {
                return Ok(match kind(&st) {
                    FileType::Directory => {
                        let fd = open_dir_at(u.as_fd(), name)?;
                        let lowers = if self.format.is_opaque(fd.as_fd())? {
                            Vec::new()
                        } else {
                            self.lower_dirs_of(&dir.lowers, name)?
                        };
                        Hit::Dir(MDir {
                            path,
                            upper: Some(fd),
                            lowers,
                        })
                    }
                    FileType::Symlink => Hit::Symlink(
                        rustix::fs::readlinkat(u.as_fd(), name, Vec::new())?.into_bytes(),
                        Place::Upper,
                    ),
                    _ => Hit::Other(st, Place::Upper),
                });
            }
        }
        for (i, (layer, l)) in dir.lowers.iter().enumerate() {
            let layer = *layer;
            let st = statat(l.as_fd(), name)?;
            if self.format.is_whiteout(l.as_fd(), name, st.as_ref())? {
                break;
            }
            let Some(st) = st else { continue };
            return Ok(match kind(&st) {
                FileType::Directory => {
                    let fd = open_dir_at(l.as_fd(), name)?;
                    let mut lowers = Vec::new();
                    if !self.format.is_opaque(fd.as_fd())? {
                        lowers = self.lower_dirs_of(&dir.lowers[i + 1..], name)?;
                    }
                    lowers.insert(0, (layer, fd));
                    Hit::Dir(MDir {
                        path,
                        upper: None,
                        lowers,
                    })
                }
                FileType::Symlink => Hit::Symlink(
                    rustix::fs::readlinkat(l.as_fd(), name, Vec::new())?.into_bytes(),
                    Place::Lower(layer, dup(l)?),
                ),
                _ => Hit::Other(st, Place::Lower(layer, dup(l)?)),
            });
        }
        Ok(Hit::Absent {
            upper_whiteout: false,
        })
    }

    /// Resolves `rel` to a directory of the view, following symlinks (inside the root)
    /// on the way. With `create`, every directory on the way is made to exist in the
    /// upper: copied up where it exists below (mode, owner, xattrs; its times reported in
    /// `made` to be set last), made 0755 and root-owned where nothing is there (marked
    /// opaque where this layer's own whiteout was). Without `create`, `None` when some
    /// component is not a directory of the view.
    pub fn dir(
        &mut self,
        rel: &Path,
        create: bool,
        made: &mut Vec<Made>,
    ) -> io::Result<Option<MDir>> {
        let mut todo: Vec<OsString> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .rev()
            .collect();
        let mut cur = self.root()?;
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            match self.lookup(&cur, &name)? {
                Hit::Dir(mut d) => {
                    if create && d.upper.is_none() {
                        let parent = cur.upper.as_ref().ok_or_else(not_dir)?;
                        let times = self.copy_up_dir(parent.as_fd(), &name, &d)?;
                        d.upper = Some(open_dir_at(parent.as_fd(), &name)?);
                        made.push(Made {
                            path: d.path.clone(),
                            times: Some(times),
                        });
                    }
                    cur = d;
                }
                Hit::Symlink(target, _) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let next = join_link(&cur.path, &target);
                    for c in next.components().rev() {
                        if let Component::Normal(n) = c {
                            todo.push(n.to_os_string());
                        }
                    }
                    cur = self.root()?;
                }
                Hit::Other(..) => {
                    return if create { Err(not_dir()) } else { Ok(None) };
                }
                Hit::Absent { upper_whiteout } => {
                    if !create {
                        return Ok(None);
                    }
                    let parent = cur.upper.as_ref().ok_or_else(not_dir)?;
                    if upper_whiteout {
                        self.format.clear_whiteout(parent.as_fd(), &name)?;
                    }
                    rustix::fs::mkdirat(parent.as_fd(), &name, Mode::from_raw_mode(0o755))?;
                    let fd = open_dir_at(parent.as_fd(), &name)?;
                    // 0755 whatever the umask, keeping the setgid bit a setgid parent
                    // hands down (as mkdir does for umoci and Docker).
                    let st = rustix::fs::fstat(&fd)?;
                    let mode = 0o755 | (st.st_mode & libc::S_ISGID);
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
                    if upper_whiteout {
                        // Made in place of this layer's whiteout: nothing below shows.
                        self.format.opaque(fd.as_fd(), &|_| true)?;
                    }
                    let path = cur.path.join(&name);
                    made.push(Made {
                        path: path.clone(),
                        times: None,
                    });
                    cur = MDir {
                        path,
                        upper: Some(fd),
                        lowers: Vec::new(),
                    };
                }
            }
        }
        Ok(Some(cur))
    }

    /// Makes `name` in the upper directory `parent` a copy of the lower directory `d`
    /// shows (mode, owner, xattrs but the format's own); returns its times.
    fn copy_up_dir(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        d: &MDir,
    ) -> io::Result<Timestamps> {
        let (_, src) = d.lowers.first().ok_or_else(not_dir)?;
        let st = rustix::fs::fstat(src)?;
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))?;
        let fd = open_dir_at(parent, name)?;
        copy_meta(src.as_fd(), fd.as_fd(), &st, self.format.private_xattrs())?;
        Ok(fsutil::times_of(&st))
    }

    /// Every path in lower layer `layer` whose inode is `(dev, ino)`, for keeping a
    /// hardlink group together when one of its names is copied up.
    pub fn lower_links(&mut self, layer: usize, dev: u64, ino: u64) -> io::Result<Vec<PathBuf>> {
        let Some((_, root)) = self.lower_roots()?.iter().find(|(i, _)| *i == layer) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        find_inode(dup(root)?, &mut PathBuf::new(), (dev, ino), &mut out)?;
        Ok(out)
    }

    /// The names in the lower layers' directories of `dir` (bookkeeping names left out).
    pub fn lower_names(&self, dir: &MDir) -> io::Result<Vec<OsString>> {
        let mut names = std::collections::BTreeSet::new();
        for (_, l) in &dir.lowers {
            for n in fsutil::tree::list_dir(l.as_fd())? {
                if !self.format.is_meta(&n) {
                    names.insert(n);
                }
            }
        }
        Ok(names.into_iter().collect())
    }
}

pub(super) fn not_dir() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTDIR)
}

/// Owner, mode, xattrs (not those starting with `private`) of directory `src` onto
/// `dst`; times are set once the directory's entries exist.
fn copy_meta(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    st: &Stat,
    private: Option<&str>,
) -> io::Result<()> {
    use fsutil::xattr;
    rustix::fs::fchown(
        dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    for (name, value) in xattr::fget_all(src)? {
        if private.is_some_and(|p| name.as_bytes().starts_with(p.as_bytes())) {
            continue;
        }
        xattr::fset(dst, &name, &value)?;
    }
    Ok(())
}

fn find_inode(
    dir: OwnedFd,
    rel: &mut PathBuf,
    key: (u64, u64),
    out: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for name in fsutil::tree::list_dir(dir.as_fd())? {
        let Some(st) = statat(dir.as_fd(), &name)? else {
            continue;
        };
        rel.push(&name);
        if (st.st_dev, st.st_ino) == key {
            out.push(rel.clone());
        } else if kind(&st) == FileType::Directory {
            fsutil::check_depth(rel)?;
            find_inode(open_dir_at(dir.as_fd(), &name)?, rel, key, out)?;
        }
        rel.pop();
    }
    Ok(())
}
