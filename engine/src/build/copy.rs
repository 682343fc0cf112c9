//! COPY and ADD into a container's rootfs, as Docker's builder does: a directory source
//! gives its contents, a file goes into a destination that ends in `/` or is a directory
//! (else it is the destination), missing directories are made (mode 0755), everything
//! copied is owned by root or `--chown`'s user, keeps its mode (or gets `--chmod`'s) and
//! its modification time. The rootfs side resolves every path inside the rootfs and works
//! through descriptors, so an image's symlinks cannot send a write outside it. ADD of a
//! local tar archive (plain, gzip or zstd) unpacks it through the layer applier.

use super::context::{io_err, Source, Tree};
use crate::error::{EngineError, Result};
use fsutil::{copy_entry_at, open_in_root, CopyOptions, OpenMode};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How the copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    /// `--chmod`: the mode of every copied entry.
    pub mode: Option<u32>,
}

/// What one COPY or ADD does.
pub struct CopyJob<'a> {
    pub tree: &'a Tree,
    pub sources: &'a [Source],
    /// The destination, absolute in the container.
    pub dest: String,
    pub owner: Ownership,
    /// ADD: unpack local tar archives.
    pub unpack: bool,
    pub line: usize,
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

/// Opens directory `rel` in the rootfs, making what is missing (owned by `owner`, 0755).
pub(super) fn ensure_dir(
    root: BorrowedFd<'_>,
    rel: &Path,
    owner: Ownership,
) -> std::io::Result<OwnedFd> {
    let mut at = PathBuf::new();
    for part in rel.components() {
        at.push(part);
        match open_in_root(root, &at, OpenMode::Dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent =
                    open_in_root(root, at.parent().unwrap_or(Path::new("")), OpenMode::Dir)?;
                let name = at.file_name().unwrap_or_default();
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)).map_err(errno)?;
                rustix::fs::chownat(
                    &parent,
                    name,
                    Some(rustix::fs::Uid::from_raw(owner.uid)),
                    Some(rustix::fs::Gid::from_raw(owner.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(errno)?;
            }
            Err(e) => return Err(e),
        }
    }
    open_in_root(root, rel, OpenMode::Dir)
}

/// Files with more than one link already copied: (dev, ino) -> where the copy is.
type Links = std::collections::HashMap<(u64, u64), (OwnedFd, std::ffi::OsString)>;

/// How entries are copied, and the linked files copied so far.
struct Copier {
    opts: CopyOptions,
    links: Links,
}

/// Whether `rel` in the rootfs is an existing directory.
fn is_dir(root: BorrowedFd<'_>, rel: &Path) -> bool {
    open_in_root(root, rel, OpenMode::Dir).is_ok()
}

/// Runs one COPY/ADD into the rootfs at `rootfs`.
pub fn copy(job: &CopyJob<'_>, rootfs: &Path) -> Result<()> {
    let root = fsutil::open_root(rootfs).map_err(io_err(format!("open {}", rootfs.display())))?;
    let dest_rel = PathBuf::from(super::ignore::clean(&job.dest));
    let into_dir = job.dest.ends_with('/') || is_dir(root.as_fd(), &dest_rel);
    if job.sources.len() > 1 && !into_dir {
        return Err(EngineError::Invalid(format!(
            "Dockerfile line {}: when copying more than one source the destination must be a directory and end with a /",
            job.line
        )));
    }
    let mut cp = Copier {
        opts: CopyOptions::new(true),
        links: Links::new(),
    };
    let dest_dir = || {
        ensure_dir(root.as_fd(), &dest_rel, job.owner).map_err(io_err(format!("make {}", job.dest)))
    };
    for s in job.sources {
        if s.is_dir() {
            let d = dest_dir()?;
            let src = open_in_root(job.tree.root(), &s.rel, OpenMode::Dir)
                .map_err(io_err(format!("open {}", s.rel.display())))?;
            let mut rel = s.rel.clone();
            copy_dir_contents(job, src.as_fd(), &mut rel, d.as_fd(), &mut cp)
                .map_err(io_err(format!("copy {} to {}", s.rel.display(), job.dest)))?;
            continue;
        }
        if job.unpack && is_archive(job.tree, &s.rel) {
            // Entries keep the archive's owners and modes, as Docker's ADD keeps them.
            let d = dest_dir()?;
            // The directory by its descriptor: nothing can swap the path meanwhile.
            let at = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd()));
            unpack(job.tree, &s.rel, &at)?;
            continue;
        }
        let (dir, name) = if into_dir {
            (dest_dir()?, s.name.clone())
        } else {
            let parent = dest_rel.parent().unwrap_or(Path::new(""));
            (
                ensure_dir(root.as_fd(), parent, job.owner)
                    .map_err(io_err(format!("make {}", parent.display())))?,
                dest_rel.file_name().unwrap_or_default().to_os_string(),
            )
        };
        let src_parent = open_in_root(
            job.tree.root(),
            s.rel.parent().unwrap_or(Path::new("")),
            OpenMode::Dir,
        )
        .map_err(io_err(format!("open {}", s.rel.display())))?;
        copy_node(
            job,
            src_parent.as_fd(),
            s.rel.file_name().unwrap_or_default(),
            &mut s.rel.clone(),
            dir.as_fd(),
            &name,
            &mut cp,
        )
        .map_err(io_err(format!("copy {} to {}", s.rel.display(), job.dest)))?;
    }
    Ok(())
}

fn copy_dir_contents(
    job: &CopyJob<'_>,
    src: BorrowedFd<'_>,
    rel: &mut PathBuf,
    dst: BorrowedFd<'_>,
    cp: &mut Copier,
) -> std::io::Result<()> {
    let mut names = fsutil::list_dir(src)?;
    names.sort();
    for n in names {
        rel.push(&n);
        copy_node(job, src, &n, rel, dst, &n, cp)?;
        rel.pop();
    }
    Ok(())
}

/// Copies entry `name` of `src` (at `rel` in the tree) to `dst_name` in `dst`, merging
/// into an existing directory and replacing anything else.
fn copy_node(
    job: &CopyJob<'_>,
    src: BorrowedFd<'_>,
    name: &OsStr,
    rel: &mut PathBuf,
    dst: BorrowedFd<'_>,
    dst_name: &OsStr,
    cp: &mut Copier,
) -> std::io::Result<()> {
    let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if job.tree.excluded(rel) && !(ft == FileType::Directory && job.tree.walk_excluded(rel)) {
        return Ok(());
    }
    let existing = rustix::fs::statat(dst, dst_name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let existing_dir =
        existing.is_some_and(|e| FileType::from_raw_mode(e.st_mode) == FileType::Directory);
    if existing.is_some() && !(existing_dir && ft == FileType::Directory) {
        fsutil::remove_all_at(dst, dst_name)?;
    }
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if ft == FileType::Directory {
        fsutil::check_depth(rel)?;
        if !existing_dir {
            rustix::fs::mkdirat(dst, dst_name, Mode::from_raw_mode(0o700)).map_err(errno)?;
        }
        let s = rustix::fs::openat(src, name, dir_flags, Mode::empty()).map_err(errno)?;
        let d = rustix::fs::openat(dst, dst_name, dir_flags, Mode::empty()).map_err(errno)?;
        copy_dir_contents(job, s.as_fd(), rel, d.as_fd(), cp)?;
    } else {
        // Files linked to each other in the source stay linked in the copy.
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some((dir, first)) = cp.links.get(&key) {
                rustix::fs::linkat(dir, first, dst, dst_name, AtFlags::empty()).map_err(errno)?;
                return Ok(());
            }
        }
        copy_entry_at(src, name, dst, dst_name, &cp.opts)?;
        if st.st_nlink > 1 {
            let dir = rustix::io::fcntl_dupfd_cloexec(dst, 0).map_err(errno)?;
            cp.links.insert(key, (dir, dst_name.to_os_string()));
        }
    }
    // Owner and mode as COPY gives them; the time the source had.
    rustix::fs::chownat(
        dst,
        dst_name,
        Some(rustix::fs::Uid::from_raw(job.owner.uid)),
        Some(rustix::fs::Gid::from_raw(job.owner.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    if ft != FileType::Symlink {
        // chown clears set-id bits: the mode goes on after it.
        fsutil::chmod_at(dst, dst_name, job.owner.mode.unwrap_or(st.st_mode & 0o7777))?;
    }
    rustix::fs::utimensat(
        dst,
        dst_name,
        &fsutil::times_of(&st),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    Ok(())
}

/// Whether the file `rel` is a tar archive (plain, gzip or zstd).
fn is_archive(tree: &Tree, rel: &Path) -> bool {
    let Ok(f) = open_in_root(tree.root(), rel, OpenMode::ReadFile) else {
        return false;
    };
    let Ok((_, mut r)) = layerstore::compress::decompress(std::fs::File::from(f)) else {
        return false;
    };
    let mut block = [0u8; 512];
    r.read_exact(&mut block).is_ok() && &block[257..262] == b"ustar"
}

/// Unpacks the archive `rel` into the directory `dst` through the layer applier
/// (paths confined to `dst`; a whiteout entry deletes, as unpacking a layer would).
fn unpack(tree: &Tree, rel: &Path, dst: &Path) -> Result<()> {
    let f = open_in_root(tree.root(), rel, OpenMode::ReadFile)
        .map_err(io_err(format!("open {}", rel.display())))?;
    layerstore::tarfs::apply_layer(std::fs::File::from(f), dst, &drivers::RemoveWhiteouts)
        .map_err(|e| EngineError::Invalid(format!("ADD {}: {e}", rel.display())))?;
    Ok(())
}
