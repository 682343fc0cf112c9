//! Applies an OCI layer tar (plain, gzip or zstd) into a driver's layer directory.
//!
//! Streams: nothing of the layer is held in memory. The DiffID is computed over the
//! uncompressed stream while it is applied. Every path is resolved with openat2
//! `RESOLVE_IN_ROOT`, so `..`, absolute symlinks and hardlinks cannot reach outside the
//! layer; names with a `..` component are refused outright.

use super::entry_path::clean;
use super::limits::{HeaderGuard, Limits};
use super::pax::{parse_time, PaxInfo};
use super::{AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::readahead::with_read_ahead;
use drivers::fsutil::{open_in_root, open_root, remove_all_at, xattr, OpenMode};
use drivers::WhiteoutFormat;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::EntryType;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer entry {0:?} escapes the layer root (a `..` component): refusing the layer")]
    PathEscape(String),
    #[error(
        "layer entry {path:?}: hardlink target {target:?} does not exist in the layer or below it"
    )]
    HardlinkTarget { path: String, target: String },
    #[error("layer entry {path:?}: unsupported tar entry type {kind}")]
    Unsupported { path: String, kind: String },
    #[error("layer entry {path:?}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer tar: {0} (the archive is truncated or corrupt)")]
    Tar(#[source] io::Error),
    /// The layer asks for more than a limit allows (daemon.json names each limit).
    #[error("refusing the layer: {0}")]
    Limit(String),
}

/// What applying a layer produced.
#[derive(Debug, Clone)]
pub struct ApplyResult {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
    /// Bytes of regular-file content in the layer.
    pub data_size: u64,
    /// Number of entries in the tar.
    pub entries: u64,
    /// The compression the stream had.
    pub compression: Compression,
}

fn display(p: &Path) -> String {
    format!("/{}", p.display())
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        path: display(path),
        op,
        source,
    }
}

/// Whether `b` holds only zero bytes (eight at a time).
fn all_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.all(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == 0)
        && words.remainder().iter().all(|x| *x == 0)
}

fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

/// Applies the layer read from `reader` into `root` using `hook` for whiteouts, under
/// the default [`Limits`]. Decompression and hashing run on a second thread while entries
/// are written.
pub fn apply_layer<R: Read + Send>(
    reader: R,
    root: &Path,
    hook: &dyn WhiteoutFormat,
) -> Result<ApplyResult, ApplyError> {
    apply_layer_limited(reader, root, hook, &Limits::default())
}

/// [`apply_layer`] under `limits`: an oversized PAX or long-name record, too many entries
/// or too many bytes (sparse files at their full size) refuse the layer before the work
/// is done; runs of zeros in file data become holes, never written blocks.
pub fn apply_layer_limited<R: Read + Send>(
    reader: R,
    root: &Path,
    hook: &dyn WhiteoutFormat,
    limits: &Limits,
) -> Result<ApplyResult, ApplyError> {
    let root_fd = open_root(root).map_err(io_err(Path::new(""), "open layer root"))?;
    let (applied, produced) = with_read_ahead(reader, |stream| -> Result<(u64, u64), ApplyError> {
        let (guard, refused) = HeaderGuard::new(&mut *stream, limits.max_header_record);
        let refusal = || refused.borrow().clone().map(ApplyError::Limit);
        let mut archive = tar::Archive::new(guard);
        let mut ap = Applier {
            root: root_fd,
            hook,
            written: HashSet::new(),
            dirs: Vec::new(),
            cache: None,
            buf: vec![0u8; 256 * 1024],
            data_size: 0,
            entries: 0,
        };
        let entries = archive
            .entries()
            .map_err(|e| refusal().unwrap_or(ApplyError::Tar(e)))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| refusal().unwrap_or(ApplyError::Tar(e)))?;
            ap.entries += 1;
            if ap.entries > limits.max_entries {
                return Err(ApplyError::Limit(format!(
                    "more than {} entries (daemon.json max-layer-entries)",
                    limits.max_entries
                )));
            }
            if ap.data_size.saturating_add(entry.size()) > limits.max_layer_bytes {
                return Err(ApplyError::Limit(format!(
                    "more than {} bytes of file data once expanded, at {:?} (daemon.json max-layer-size)",
                    limits.max_layer_bytes,
                    entry.path_bytes().escape_ascii().to_string()
                )));
            }
            ap.apply_entry(&mut entry)
                .map_err(|e| refusal().unwrap_or(e))?;
        }
        drop(archive);
        ap.finish_dirs()?;
        stream.drain().map_err(ApplyError::Tar)?;
        Ok((ap.data_size, ap.entries))
    });
    let (data_size, entries) = applied?;
    let p = produced.map_err(ApplyError::Tar)?;
    Ok(ApplyResult {
        diff_id: p.digest,
        tar_size: p.size,
        data_size,
        entries,
        compression: p.compression,
    })
}

struct Applier<'a> {
    root: OwnedFd,
    hook: &'a dyn WhiteoutFormat,
    /// Paths this layer wrote: whiteouts and opaque markers only hide lower layers.
    written: HashSet<PathBuf>,
    /// Directories whose times are set last (writing children changes a dir's mtime).
    dirs: Vec<(PathBuf, Timestamps)>,
    /// The last parent directory opened, reused while entries stay in one directory.
    cache: Option<(PathBuf, OwnedFd)>,
    buf: Vec<u8>,
    data_size: u64,
    entries: u64,
}

fn timestamps(hdr: &tar::Header, pax: &PaxInfo) -> Timestamps {
    let (ms, mn) = pax
        .mtime
        .unwrap_or_else(|| (hdr.mtime().unwrap_or(0) as i64, 0));
    let (as_, an) = pax.atime.unwrap_or((ms, mn));
    Timestamps {
        last_access: Timespec {
            tv_sec: as_,
            tv_nsec: an as _,
        },
        last_modification: Timespec {
            tv_sec: ms,
            tv_nsec: mn as _,
        },
    }
}

fn read_pax<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<PaxInfo, ApplyError> {
    let mut info = PaxInfo::default();
    let Some(exts) = entry.pax_extensions().map_err(ApplyError::Tar)? else {
        return Ok(info);
    };
    for ext in exts {
        let ext = ext.map_err(ApplyError::Tar)?;
        let key = ext.key_bytes();
        let value = ext.value_bytes();
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            info.xattrs.push((name.to_vec(), value.to_vec()));
        } else {
            match key {
                b"mtime" => info.mtime = parse_time(value),
                b"atime" => info.atime = parse_time(value),
                b"uid" => info.uid = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
                b"gid" => info.gid = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
                _ => {}
            }
        }
    }
    Ok(info)
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let path = clean(&raw)
            .ok_or_else(|| ApplyError::PathEscape(String::from_utf8_lossy(&raw).into()))?;
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            return Ok(()); // the layer root itself: its metadata belongs to the image, not the layer
        };
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let nb = name.as_bytes();
        if nb.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&parent, &name, &path);
        }
        let pax = read_pax(entry)?;
        let pfd = self
            .parent_dir(&parent, true)?
            .ok_or_else(|| ApplyError::Io {
                path: display(&path),
                op: "open parent directory",
                source: io::ErrorKind::NotFound.into(),
            })?;
        let is_dir = kind == EntryType::Directory;
        // Anything already there is replaced, except a directory by a directory.
        match rustix::fs::statat(&pfd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if !(existing_dir && is_dir) {
                    remove_all_at(pfd.as_fd(), &name)
                        .map_err(io_err(&path, "replace existing entry"))?;
                    if existing_dir {
                        self.cache = None;
                    }
                }
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_err(&path, "stat")(errno(e))),
        }
        let hdr = entry.header().clone();
        let uid = pax.uid.unwrap_or_else(|| hdr.uid().unwrap_or(0)) as u32;
        let gid = pax.gid.unwrap_or_else(|| hdr.gid().unwrap_or(0)) as u32;
        let mode = hdr.mode().map_err(ApplyError::Tar)? & 0o7777;
        let times = timestamps(&hdr, &pax);
        let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &pfd,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(&path, "create file")(errno(e)))?;
                let mut file = File::from(fd);
                // Whole blocks of zeros in a sparse file are skipped, leaving holes: a small
                // tar cannot make the host write terabytes of zeros.
                let sparse = kind == EntryType::GNUSparse;
                let mut len = 0u64;
                let mut hole = false;
                loop {
                    let n = entry.read(&mut self.buf).map_err(ApplyError::Tar)?;
                    if n == 0 {
                        break;
                    }
                    let chunk = &self.buf[..n];
                    if sparse && all_zero(chunk) {
                        use std::io::Seek;
                        file.seek(io::SeekFrom::Current(n as i64))
                            .map_err(io_err(&path, "seek past a hole"))?;
                        hole = true;
                    } else {
                        file.write_all(chunk).map_err(io_err(&path, "write file"))?;
                        hole = false;
                    }
                    len += n as u64;
                    self.data_size += n as u64;
                }
                if hole {
                    file.set_len(len)
                        .map_err(io_err(&path, "set the file's length"))?;
                }
                set_meta_fd(file.as_fd(), owner, mode, &pax, &times)
                    .map_err(io_err(&path, "set metadata"))?;
            }
            EntryType::Directory => {
                match rustix::fs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err(&path, "create directory")(errno(e))),
                }
                let dfd = rustix::fs::openat(
                    &pfd,
                    &name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(&path, "open directory")(errno(e)))?;
                rustix::fs::fchown(&dfd, owner.0, owner.1)
                    .map_err(|e| io_err(&path, "chown")(errno(e)))?;
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(mode))
                    .map_err(|e| io_err(&path, "chmod")(errno(e)))?;
                for (k, v) in &pax.xattrs {
                    xattr::fset(&dfd, OsStr::from_bytes(k), v)
                        .map_err(io_err(&path, "set xattr"))?;
                }
                self.dirs.push((path.clone(), times));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &pfd, &name)
                    .map_err(|e| io_err(&path, "create symlink")(errno(e)))?;
                set_meta_at(pfd.as_fd(), &name, owner, None, &pax, &times)
                    .map_err(io_err(&path, "set metadata"))?;
            }
            EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let target = clean(&raw_target).ok_or_else(|| {
                    ApplyError::PathEscape(String::from_utf8_lossy(&raw_target).into())
                })?;
                let missing = || ApplyError::HardlinkTarget {
                    path: display(&path),
                    target: display(&target),
                };
                if target.as_os_str().is_empty() {
                    return Err(missing());
                }
                let tfd = open_in_root(&self.root, &target, OpenMode::PathNoFollow)
                    .map_err(|_| missing())?;
                rustix::fs::linkat(&tfd, "", &pfd, &name, AtFlags::EMPTY_PATH)
                    .map_err(|e| io_err(&path, "create hardlink")(errno(e)))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &pfd,
                    &name,
                    ft,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| io_err(&path, "create device node")(errno(e)))?;
                set_meta_at(pfd.as_fd(), &name, owner, Some(mode), &pax, &times)
                    .map_err(io_err(&path, "set metadata"))?;
            }
            other => {
                return Err(ApplyError::Unsupported {
                    path: display(&path),
                    kind: format!("{other:?}"),
                })
            }
        }
        self.written.insert(path);
        Ok(())
    }

    /// Handles `.wh.NAME` and `.wh..wh..opq` entries through the driver's hook.
    fn whiteout(&mut self, parent: &Path, name: &OsStr, path: &Path) -> Result<(), ApplyError> {
        let nb = name.as_bytes();
        let full_tree = self.hook.full_tree();
        if nb == OPAQUE_MARKER.as_bytes() {
            let Some(pfd) = self.parent_dir(parent, !full_tree)? else {
                return Ok(());
            };
            let written = &self.written;
            let keep = |n: &OsStr| written.contains(&parent.join(n));
            self.hook
                .opaque(pfd.as_fd(), &keep)
                .map_err(io_err(path, "make directory opaque"))?;
            self.cache = None;
            return Ok(());
        }
        if nb.starts_with(AUFS_META_PREFIX.as_bytes()) {
            return Ok(()); // AUFS bookkeeping (hardlink dirs), never part of the rootfs
        }
        let target = OsStr::from_bytes(&nb[WHITEOUT_PREFIX.len()..]);
        if target.is_empty() || target == "." || target == ".." {
            return Err(ApplyError::PathEscape(display(path)));
        }
        if self.written.contains(&parent.join(target)) {
            return Ok(()); // a whiteout hides lower layers only
        }
        let Some(pfd) = self.parent_dir(parent, !full_tree)? else {
            return Ok(());
        };
        self.hook
            .whiteout(pfd.as_fd(), target)
            .map_err(io_err(path, "apply whiteout"))?;
        self.cache = None;
        Ok(())
    }

    /// Opens (creating when `create`, as Docker does) the directory `rel` inside the root.
    /// Returns `None` when it is missing and `create` is false.
    fn parent_dir(&mut self, rel: &Path, create: bool) -> Result<Option<OwnedFd>, ApplyError> {
        if let Some((p, fd)) = &self.cache {
            if p == rel {
                let dup = fd.try_clone().map_err(io_err(rel, "dup"))?;
                return Ok(Some(dup));
            }
        }
        let fd = match open_in_root(&self.root, rel, OpenMode::Dir) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                self.create_dirs(rel)?
            }
            Err(e) => return Err(io_err(rel, "open directory")(e)),
        };
        let dup = fd.try_clone().map_err(io_err(rel, "dup"))?;
        self.cache = Some((rel.to_path_buf(), fd));
        Ok(Some(dup))
    }

    /// Creates the missing directories of `rel` (mode 0755, root-owned, like Docker).
    fn create_dirs(&mut self, rel: &Path) -> Result<OwnedFd, ApplyError> {
        let mut cur = self.root.try_clone().map_err(io_err(rel, "dup"))?;
        let mut sofar = PathBuf::new();
        for comp in rel.iter() {
            sofar.push(comp);
            match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    rustix::fs::chmodat(&cur, comp, Mode::from_raw_mode(0o755), AtFlags::empty())
                        .map_err(|e| io_err(&sofar, "chmod")(errno(e)))?;
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_err(&sofar, "create parent directory")(errno(e))),
            }
            cur = open_in_root(&self.root, &sofar, OpenMode::Dir)
                .map_err(io_err(&sofar, "open parent directory"))?;
        }
        Ok(cur)
    }

    /// Sets directory times once all their entries exist.
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        self.cache = None;
        for (path, times) in self.dirs.drain(..).rev() {
            match open_in_root(&self.root, &path, OpenMode::Dir) {
                Ok(fd) => rustix::fs::futimens(&fd, &times)
                    .map_err(|e| io_err(&path, "set times")(errno(e)))?,
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(io_err(&path, "open directory")(e)),
            }
        }
        Ok(())
    }
}

fn set_meta_fd(
    fd: BorrowedFd<'_>,
    owner: (Option<Uid>, Option<Gid>),
    mode: u32,
    pax: &PaxInfo,
    times: &Timestamps,
) -> io::Result<()> {
    rustix::fs::fchown(fd, owner.0, owner.1)?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
    for (k, v) in &pax.xattrs {
        xattr::fset(fd, OsStr::from_bytes(k), v)?;
    }
    rustix::fs::futimens(fd, times)?;
    Ok(())
}

fn set_meta_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    owner: (Option<Uid>, Option<Gid>),
    mode: Option<u32>,
    pax: &PaxInfo,
    times: &Timestamps,
) -> io::Result<()> {
    rustix::fs::chownat(dir, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
    if let Some(m) = mode {
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(m), AtFlags::empty())?;
    }
    for (k, v) in &pax.xattrs {
        xattr::lset(dir, name, OsStr::from_bytes(k), v)?;
    }
    rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}
