//! The build context: a directory whose files COPY and ADD read, less what
//! `.dockerignore` leaves out. Sources are resolved inside the context (a symlink in a
//! source path, even an absolute one, resolves as if the context were `/`, so nothing
//! outside it is reachable), and the files a step reads are summed into a checksum of
//! their names, types, modes and contents (never their times) for the build cache.

use super::ignore::{self, Ignore};
use crate::error::{EngineError, Result};
use layerstore::digest::HashWriter;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A tree COPY and ADD read from: the context, or another stage's or image's rootfs
/// (`--from`, where nothing is ignored).
pub struct Tree {
    root: OwnedFd,
    /// Where the root is (for telling where a resolved source ended up).
    root_path: PathBuf,
    ignore: Ignore,
    /// What errors call the tree ("build context", "stage build").
    pub what: String,
}

/// One source a COPY names, resolved: its path in the tree and the name it is copied as.
#[derive(Clone)]
pub struct Source {
    /// The resolved path, relative to the tree's root.
    pub rel: PathBuf,
    /// The name a file source gets in a destination directory.
    pub name: OsString,
    /// Its status (of what a symlink named by the source resolved to).
    pub st: rustix::fs::Stat,
}

impl Source {
    pub fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.st.st_mode) == FileType::Directory
    }
}

/// An I/O error while doing `what`, for `map_err`.
pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let what = what.into();
    move |e| EngineError::io(what, e)
}

impl Tree {
    /// The context directory `dir`, with its `.dockerignore`.
    pub fn context(dir: &Path) -> Result<Tree> {
        let root = fsutil::open_root(dir)
            .map_err(io_err(format!("open the build context {}", dir.display())))?;
        let ignore = match fsutil::read_regular_in_root(&root, Path::new(".dockerignore"), 1 << 20)
        {
            Ok(Some(b)) => Ignore::parse(&String::from_utf8_lossy(&b)),
            Ok(None) => Ignore::default(),
            Err(e) => return Err(EngineError::io("read .dockerignore", e)),
        };
        Tree::of(root, ignore, "build context".into())
    }

    fn of(root: OwnedFd, ignore: Ignore, what: String) -> Result<Tree> {
        let root_path = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))
            .map_err(io_err(format!("find where the {what} is")))?;
        Ok(Tree {
            root,
            root_path,
            ignore,
            what,
        })
    }

    /// A mounted rootfs, read whole.
    pub fn rootfs(dir: &Path, what: String) -> Result<Tree> {
        let root = fsutil::open_root(dir).map_err(io_err(format!("open {}", dir.display())))?;
        Tree::of(root, Ignore::default(), what)
    }

    /// The tree's root directory.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Whether `rel` is left out by `.dockerignore`.
    pub fn excluded(&self, rel: &Path) -> bool {
        self.ignore.excluded(&rel.to_string_lossy())
    }

    /// Whether something under the excluded directory `rel` may still be included.
    pub fn walk_excluded(&self, rel: &Path) -> bool {
        self.ignore.may_include_under(&rel.to_string_lossy())
    }

    /// Opens `rel` in the tree, following symlinks as if the tree were `/`.
    fn resolve(&self, rel: &Path) -> std::io::Result<(OwnedFd, PathBuf)> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd = rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        // Where it ended up, as a path under the root (for the ignore rules and copying
        // through its parent).
        let at = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        let inside = at
            .strip_prefix(&self.root_path)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok((fd, inside))
    }

    /// Resolves COPY/ADD source `src` (a path or a glob, relative to the tree's root).
    pub fn sources(&self, src: &str, line: usize) -> Result<Vec<Source>> {
        let clean = ignore::clean(src);
        let missing = || {
            EngineError::NotFound(format!(
                "Dockerfile line {line}: COPY failed: {src}: no such file or directory in the {} (or left out by .dockerignore)",
                self.what
            ))
        };
        if !ignore::has_glob(&clean) {
            let (fd, rel) = self.resolve(Path::new(&clean)).map_err(|_| missing())?;
            if !rel.as_os_str().is_empty() && self.excluded(&rel) {
                return Err(missing());
            }
            let st =
                rustix::fs::fstat(&fd).map_err(|e| EngineError::io(format!("stat {src}"), e))?;
            let name = Path::new(&clean)
                .file_name()
                .map(OsStr::to_os_string)
                .unwrap_or_else(|| rel.file_name().unwrap_or_default().to_os_string());
            return Ok(vec![Source { rel, name, st }]);
        }
        let mut out = Vec::new();
        self.walk(&mut PathBuf::new(), self.root.as_fd(), &mut |rel, st| {
            if ignore::glob_match(&clean, &rel.to_string_lossy()) {
                out.push(Source {
                    rel: rel.to_path_buf(),
                    name: rel.file_name().unwrap_or_default().to_os_string(),
                    st: *st,
                });
                return Ok(false);
            }
            Ok(true)
        })
        .map_err(|e| EngineError::io(format!("read the {}", self.what), e))?;
        if out.is_empty() {
            return Err(missing());
        }
        Ok(out)
    }

    /// Visits every entry under `dir` (at `rel`) that is not ignored, in name order;
    /// `visit` returns whether to go into a directory, or an error that ends the walk.
    fn walk(
        &self,
        rel: &mut PathBuf,
        dir: BorrowedFd<'_>,
        visit: &mut dyn FnMut(&Path, &rustix::fs::Stat) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let mut names = fsutil::list_dir(dir)?;
        names.sort();
        for n in names {
            rel.push(&n);
            let st = rustix::fs::statat(dir, &n, AtFlags::SYMLINK_NOFOLLOW)?;
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let excluded = self.excluded(rel);
            let enter = if excluded {
                is_dir && self.walk_excluded(rel)
            } else {
                visit(rel, &st)? && is_dir
            };
            if enter {
                fsutil::check_depth(rel)?;
                let sub = rustix::fs::openat(
                    dir,
                    &n,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.walk(rel, sub.as_fd(), visit)?;
            }
            rel.pop();
        }
        Ok(())
    }

    /// A checksum of `sources` as COPY would copy them: every name, type, permission,
    /// owner (`with_owners`, for --from trees), link target and content, in order; never
    /// a time. Docker's form: `file:HEX`, `dir:HEX` or `multi:HEX`.
    pub fn checksum(&self, sources: &[Source], with_owners: bool) -> Result<String> {
        let mut h = HashWriter::new(std::io::sink());
        let summed = (|| -> std::io::Result<()> {
            for s in sources {
                let mut rel = s.rel.clone();
                entry_sum(&mut h, &self.root, &rel, &s.st, with_owners)?;
                if s.is_dir() {
                    let dir = fsutil::open_in_root(&self.root, &s.rel, fsutil::OpenMode::Dir)?;
                    self.walk(&mut rel, dir.as_fd(), &mut |p, st| {
                        entry_sum(&mut h, &self.root, p, st, with_owners)?;
                        Ok(true)
                    })?;
                }
            }
            Ok(())
        })();
        summed.map_err(io_err(format!("read the sources in the {}", self.what)))?;
        let (d, _, _) = h.finish();
        let kind = match sources {
            [s] if s.is_dir() => "dir",
            [_] => "file",
            _ => "multi",
        };
        Ok(format!("{kind}:{}", d.hex()))
    }
}

/// Adds one entry to a checksum.
fn entry_sum(
    h: &mut HashWriter<std::io::Sink>,
    root: &OwnedFd,
    rel: &Path,
    st: &rustix::fs::Stat,
    with_owners: bool,
) -> std::io::Result<()> {
    let ft = FileType::from_raw_mode(st.st_mode);
    write!(h, "{}\0{:o}\0", rel.display(), st.st_mode)?;
    if with_owners {
        write!(h, "{}:{}\0", st.st_uid, st.st_gid)?;
    }
    match ft {
        FileType::RegularFile => {
            let f = fsutil::open_in_root(root, rel, fsutil::OpenMode::ReadFile)?;
            write!(h, "{}\0", st.st_size)?;
            std::io::copy(&mut std::fs::File::from(f), h)?;
        }
        FileType::Symlink => {
            let parent = fsutil::open_in_root(
                root,
                rel.parent().unwrap_or(Path::new("")),
                fsutil::OpenMode::Dir,
            )?;
            let t =
                rustix::fs::readlinkat(&parent, rel.file_name().unwrap_or_default(), Vec::new())?;
            h.write_all(t.as_bytes())?;
        }
        FileType::CharacterDevice | FileType::BlockDevice => write!(h, "{}", st.st_rdev)?,
        _ => {}
    }
    h.write_all(b"\n")?;
    Ok(())
}

/// Unpacks a context sent as a tar (plain, gzip or zstd; the API's `POST /build` body)
/// into the empty directory `into`, through the layer applier: no entry lands outside it,
/// whatever its name or the links before it.
pub fn unpack_context(tar: &Path, into: &Path) -> Result<()> {
    let f = std::fs::File::open(tar)
        .map_err(|e| EngineError::io(format!("open {}", tar.display()), e))?;
    layerstore::tarfs::apply_layer(f, into, &drivers::RemoveWhiteouts).map_err(|e| {
        EngineError::Invalid(format!("the build context is not a readable tar: {e}"))
    })?;
    Ok(())
}
