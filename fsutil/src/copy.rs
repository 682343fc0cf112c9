//! Whole-tree copies that keep everything a layer holds: owners, modes, times, xattrs,
//! hardlinks, symlinks, devices and fifos. Uses reflinks (FICLONE) when the filesystem has
//! them and `copy_file_range` otherwise.

use super::xattr;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Timespec, Timestamps};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// How [`copy_tree`] copies file contents.
#[derive(Debug)]
pub struct CopyOptions {
    /// Try FICLONE first; turned off for good after the first "not supported".
    pub reflink: AtomicBool,
}

impl CopyOptions {
    /// Options with reflinks on or off.
    pub fn new(reflink: bool) -> Self {
        CopyOptions {
            reflink: AtomicBool::new(reflink),
        }
    }
}

/// Copies the contents of directory `src` into the existing, empty directory `dst`, and the
/// metadata of `src` onto `dst`.
pub fn copy_tree(src: &Path, dst: &Path, opts: &CopyOptions) -> io::Result<()> {
    copy_tree_fds(super::open_root(src)?, super::open_root(dst)?, opts)
}

/// [`copy_tree`] between two directories already open.
pub fn copy_tree_fds(s: OwnedFd, d: OwnedFd, opts: &CopyOptions) -> io::Result<()> {
    let mut state = CopyState {
        links: HashMap::new(),
        dst_root: rustix::io::fcntl_dupfd_cloexec(&d, 0)?,
        opts,
    };
    let mut rel = PathBuf::new();
    copy_dir_contents(s.as_fd(), d.as_fd(), &mut rel, &mut state)?;
    let st = rustix::fs::fstat(&s)?;
    copy_meta_fd(s.as_fd(), d.as_fd(), &st)?;
    Ok(())
}

struct CopyState<'a> {
    /// (dev, ino) of multiply-linked files already copied -> their path under dst.
    links: HashMap<(u64, u64), PathBuf>,
    dst_root: OwnedFd,
    opts: &'a CopyOptions,
}

/// The access and modification times of a status, to set on a copy.
pub fn times_of(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Owner, mode, xattrs and times from `st`/`src` onto the open `dst`.
fn copy_meta_fd(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, st: &rustix::fs::Stat) -> io::Result<()> {
    rustix::fs::fchown(
        dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    for (name, value) in xattr::fget_all(src)? {
        xattr::fset(dst, &name, &value)?;
    }
    rustix::fs::futimens(dst, &times_of(st))?;
    Ok(())
}

fn copy_dir_contents(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    rel: &mut PathBuf,
    state: &mut CopyState<'_>,
) -> io::Result<()> {
    let mut names: Vec<OsString> = Vec::new();
    let mut d = Dir::read_from(src)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for name in names {
        rel.push(&name);
        copy_entry(src, dst, &name, &name, rel, state)?;
        rel.pop();
    }
    Ok(())
}

/// Copies the entry `src_name` of directory `src` (a file, directory tree, symlink or
/// node, never following a symlink) to the new entry `dst_name` of directory `dst`,
/// working only through descriptors and `*at` calls: neither side's tree can redirect it
/// while it runs (a running container's, say). Hardlinks inside a copied tree stay links.
pub fn copy_entry_at(
    src: BorrowedFd<'_>,
    src_name: &OsStr,
    dst: BorrowedFd<'_>,
    dst_name: &OsStr,
    opts: &CopyOptions,
) -> io::Result<()> {
    let mut state = CopyState {
        links: HashMap::new(),
        dst_root: rustix::io::fcntl_dupfd_cloexec(dst, 0)?,
        opts,
    };
    let mut rel = PathBuf::from(dst_name);
    copy_entry(src, dst, src_name, dst_name, &mut rel, &mut state)
}

fn copy_entry(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    src_name: &OsStr,
    name: &OsStr,
    rel: &mut PathBuf,
    state: &mut CopyState<'_>,
) -> io::Result<()> {
    let st = rustix::fs::statat(src, src_name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::Directory && st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = state.links.get(&key) {
            // The first copy, found beneath the copy's root without following anything.
            let first = rustix::fs::openat2(
                &state.dst_root,
                first.as_path(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
            )?;
            rustix::fs::linkat(&first, "", dst, name, AtFlags::EMPTY_PATH)?;
            return Ok(());
        }
        state.links.insert(key, rel.clone());
    }
    match ft {
        FileType::Directory => {
            crate::walk::check_depth(rel)?;
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let s = rustix::fs::openat(src, src_name, flags, Mode::empty())?;
            let d = rustix::fs::openat(dst, name, flags, Mode::empty())?;
            copy_dir_contents(s.as_fd(), d.as_fd(), rel, state)?;
            copy_meta_fd(s.as_fd(), d.as_fd(), &st)?;
        }
        FileType::RegularFile => {
            let s = rustix::fs::openat(
                src,
                src_name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            )?;
            let d = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            copy_data(s.as_fd(), d.as_fd(), st.st_size as u64, state.opts)?;
            copy_meta_fd(s.as_fd(), d.as_fd(), &st)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, src_name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
            copy_meta_at(src, src_name, dst, name, &st)?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            rustix::fs::mknodat(
                dst,
                name,
                ft,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )?;
            copy_meta_at(src, src_name, dst, name, &st)?;
        }
        FileType::Unknown => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("unknown file type at {}", rel.display()),
            ))
        }
    }
    Ok(())
}

/// Owner, mode (not of a symlink), xattrs and times of `src_name` in `src` (status `st`)
/// onto `name` in `dst`, never following a final symlink on either side: for entries that
/// cannot be opened (symlinks, devices) and for callers that hold only the parent.
pub fn copy_meta_at(
    src: BorrowedFd<'_>,
    src_name: &OsStr,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    st: &rustix::fs::Stat,
) -> io::Result<()> {
    rustix::fs::chownat(
        dst,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        super::nofollow::chmod_at(dst, name, st.st_mode & 0o7777)?;
    }
    for (xname, value) in xattr::lget_all(src, src_name)? {
        xattr::lset(dst, name, &xname, &value)?;
    }
    rustix::fs::utimensat(dst, name, &times_of(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copies file data: a reflink when possible, else in-kernel `copy_file_range`.
pub fn copy_data(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    len: u64,
    opts: &CopyOptions,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    if opts.reflink.load(Ordering::Relaxed) {
        match rustix::fs::ioctl_ficlone(dst, src) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP)
            | Err(rustix::io::Errno::XDEV)
            | Err(rustix::io::Errno::INVAL)
            | Err(rustix::io::Errno::NOTTY) => opts.reflink.store(false, Ordering::Relaxed),
            Err(e) => return Err(e.into()),
        }
    }
    // A sparse file keeps its holes: only its data segments are copied.
    if let Ok(hole) = rustix::fs::seek(src, rustix::fs::SeekFrom::Hole(0)) {
        if hole < len {
            return copy_sparse(src, dst, len);
        }
        rustix::fs::seek(src, rustix::fs::SeekFrom::Start(0))?;
    }
    let mut left = len;
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        let n = match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
            Ok(n) => n,
            // Across filesystems of different types (overlay to ext4): plain read/write.
            Err(rustix::io::Errno::XDEV) | Err(rustix::io::Errno::NOSYS) if left == len => {
                return copy_by_read(src, dst);
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break; // the file shrank while copying
        }
        left -= n as u64;
    }
    Ok(())
}

/// Copies the data segments of a sparse file (`SEEK_DATA`/`SEEK_HOLE`) to the same
/// offsets, then sets the length: holes stay holes, so copying an image's sparse file
/// costs what its data costs.
fn copy_sparse(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    use rustix::fs::SeekFrom;
    let mut off = 0u64;
    let mut buf = Vec::new();
    while off < len {
        let data = match rustix::fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = rustix::fs::seek(src, SeekFrom::Hole(data))?.min(len);
        let (mut i, mut o) = (data, data);
        while i < end {
            let chunk = (end - i).min(1 << 30) as usize;
            match rustix::fs::copy_file_range(src, Some(&mut i), dst, Some(&mut o), chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::XDEV) | Err(rustix::io::Errno::NOSYS) => {
                    buf.resize(1 << 20, 0);
                    let n = rustix::io::pread(src, &mut buf[..chunk.min(1 << 20)], i)?;
                    if n == 0 {
                        break;
                    }
                    let mut done = 0;
                    while done < n {
                        done += rustix::io::pwrite(dst, &buf[done..n], o + done as u64)?;
                    }
                    i += n as u64;
                    o += n as u64;
                }
                Err(e) => return Err(e.into()),
            }
        }
        off = end;
    }
    rustix::fs::ftruncate(dst, len)?;
    Ok(())
}

fn copy_by_read(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = rustix::io::read(src, &mut buf[..])?;
        if n == 0 {
            return Ok(());
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::write(dst, &buf[done..n])?;
        }
    }
}
