//! Applies an OCI layer tar (plain, gzip or zstd) into a driver's layer directory.
//!
//! Streams: nothing of the layer is held in memory. The DiffID is computed over the
//! uncompressed stream while it is applied. Every path is resolved with openat2
//! `RESOLVE_IN_ROOT`, so `..`, absolute symlinks and hardlinks cannot reach outside the
//! layer; names with a `..` component are refused outright.

use super::entry_path::clean;
use super::limits::{HeaderGuard, Limits};
use super::pax::{parse_time, PaxInfo, SparseRecords};
use super::view::{not_dir, open_dir_at, Gate, Hit, MDir, Made, Place, View};
use super::{AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::readahead::with_read_ahead;
use crate::tarsplit::Recorder;
use drivers::WhiteoutFormat;
use fsutil::{open_root, remove_all_at, times_of, xattr};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tar::EntryType;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer entry {0:?} escapes the layer root (it climbs above it with `..`): refusing the layer")]
    PathEscape(String),
    #[error(
        "layer entry {path:?}: hardlink target {target:?} does not exist in the layer or below it"
    )]
    HardlinkTarget { path: String, target: String },
    #[error("layer entry {path:?}: unsupported tar entry type {kind}")]
    Unsupported { path: String, kind: String },
    /// A real file or directory whose name (or a parent's) starts with `.wh.`: in a layer
    /// that prefix means a whiteout, and the aufs driver stores whiteouts under exactly
    /// those names, so the entry cannot be kept as what it is on any driver.
    #[error("layer entry {path:?}: a {what} named .wh.* cannot be stored: in a layer that prefix marks a whiteout (and the aufs driver keeps whiteouts under those names); rename it")]
    ReservedName { path: String, what: &'static str },
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
    /// With [`Target::split_to`]: whether the tar-split record is complete (else the
    /// layer's files cannot give its tar back and the blob must be kept).
    pub split: Option<bool>,
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
/// the default [`Limits`], with no layers below. Decompression and hashing run on a
/// second thread while entries are written.
pub fn apply_layer<R: Read + Send>(
    reader: R,
    root: &Path,
    hook: &dyn WhiteoutFormat,
) -> Result<ApplyResult, ApplyError> {
    let target = Target {
        root,
        format: hook,
        lowers: &[],
        gate: None,
        split_to: None,
    };
    apply_layer_onto(reader, &target, &Limits::default())
}

/// Applies a layer into driver layer `id` over the layers below it (as the store does,
/// without waiting for any).
pub fn apply_to_layer<R: Read + Send>(
    reader: R,
    driver: &dyn drivers::Driver,
    id: &str,
    limits: &Limits,
) -> Result<ApplyResult, ApplyError> {
    let driver_err = |e: drivers::DriverError| ApplyError::Io {
        path: "/".into(),
        op: "find the layer's directories",
        source: io::Error::other(e.to_string()),
    };
    let root = driver.diff_dir(id).map_err(driver_err)?;
    let lowers = driver.lower_dirs(id).map_err(driver_err)?;
    let target = Target {
        root: &root,
        format: driver.whiteout_format(),
        lowers: &lowers,
        gate: None,
        split_to: None,
    };
    apply_layer_onto(reader, &target, limits)
}

/// Where a layer is applied: the layer's own directory, the driver's whiteout format, and
/// for drivers whose layer directories hold only their own changes the directories of the
/// layers below (nearest first), which the tar is applied over.
pub struct Target<'a> {
    pub root: &'a Path,
    pub format: &'a dyn WhiteoutFormat,
    pub lowers: &'a [PathBuf],
    /// Called (once) before the lower layers are first read: where layers are applied in
    /// parallel it waits for the ones below to be complete.
    pub gate: Option<Gate<'a>>,
    /// Record a tar-split of the stream here (see [`crate::tarsplit`]).
    pub split_to: Option<&'a Path>,
}

/// Applies a layer onto `target` under `limits`: an oversized PAX or long-name record,
/// too many entries or too many bytes (sparse files at their full size) refuse the layer
/// before the work is done; runs of zeros in sparse files become holes, never written
/// blocks. Paths resolve through the merged view of the layer over the ones below.
pub fn apply_layer_onto<R: Read + Send>(
    reader: R,
    target: &Target<'_>,
    limits: &Limits,
) -> Result<ApplyResult, ApplyError> {
    let root = target.root;
    let root_fd = open_root(root).map_err(io_err(Path::new(""), "open layer root"))?;
    let recorder = match target.split_to {
        Some(p) => Some(Rc::new(RefCell::new(Recorder::create(p).map_err(|e| {
            ApplyError::Io {
                path: p.display().to_string(),
                op: "start the tar-split record",
                source: io::Error::other(e.to_string()),
            }
        })?))),
        None => None,
    };
    let (applied, produced) = with_read_ahead(reader, |stream| -> Result<(u64, u64), ApplyError> {
        if let Some(r) = &recorder {
            stream.record_to(r.clone());
        }
        let (guard, refused) = HeaderGuard::new(&mut *stream, limits.max_header_record);
        let records = guard.records();
        let refusal = || refused.borrow().clone().map(ApplyError::Limit);
        let mut archive = tar::Archive::new(guard);
        let mut ap = Applier {
            view: View::new(root_fd, target.lowers, target.gate, target.format),
            hook: target.format,
            written: HashSet::new(),
            ancestors: HashSet::new(),
            whited: HashSet::new(),
            dir_times: HashMap::new(),
            cache: None,
            buf: vec![0u8; 256 * 1024],
            max_bytes: limits.max_layer_bytes,
            data_size: 0,
            entries: 0,
            recorder: recorder.clone(),
            copied_up: false,
            records,
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
    let split = match recorder.map(Rc::try_unwrap) {
        Some(Ok(r)) => Some(r.into_inner().finish().map_err(|e| ApplyError::Io {
            path: "/".into(),
            op: "write the tar-split record",
            source: io::Error::other(e.to_string()),
        })),
        Some(Err(_)) => Some(Ok(false)),
        None => None,
    };
    let (data_size, entries) = applied?;
    let p = produced.map_err(ApplyError::Tar)?;
    Ok(ApplyResult {
        diff_id: p.digest,
        tar_size: p.size,
        data_size,
        entries,
        compression: p.compression,
        split: split.transpose()?,
    })
}

struct Applier<'a> {
    /// The layer's directory over the layers below.
    view: View<'a>,
    hook: &'a dyn WhiteoutFormat,
    /// Paths this layer wrote (resolved), and the directories it made on their way:
    /// whiteouts and opaque markers hide only what is below, never these.
    written: HashSet<PathBuf>,
    /// Every directory above a written path.
    ancestors: HashSet<PathBuf>,
    /// Whiteouts this layer stored (resolved paths): an entry made at one of them
    /// replaces it, and a directory so made hides what is below.
    whited: HashSet<PathBuf>,
    /// Times to give directories once all entries exist (adding entries changes a
    /// directory's mtime): the tar's for its directory entries, the old ones for
    /// directories that were there before, as umoci restores them.
    dir_times: HashMap<PathBuf, Timestamps>,
    /// The last parent directory resolved (tar path, descriptor, resolved path), reused
    /// while entries stay in one directory.
    cache: Option<(PathBuf, OwnedFd, PathBuf)>,
    buf: Vec<u8>,
    /// The most file data (sparse files at their real size) the layer may hold.
    max_bytes: u64,
    data_size: u64,
    entries: u64,
    /// The tar-split record being made, if any.
    recorder: Option<Rc<RefCell<Recorder>>>,
    /// A hardlink target was copied up from a layer below (names this layer did not
    /// write may exist in it from then on).
    copied_up: bool,
    /// The PAX records of the entry being applied, read by their lengths (see
    /// [`HeaderGuard::records`]).
    records: Rc<RefCell<Option<Vec<super::pax::Record>>>>,
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

/// A link entry's target: the PAX `linkpath` when there is one, else the header's (or
/// a GNU long link's).
fn link_target<R: Read>(entry: &tar::Entry<'_, R>, pax: &PaxInfo) -> Vec<u8> {
    match &pax.linkpath {
        Some(l) => l.clone(),
        None => entry
            .link_name_bytes()
            .map(|c| c.into_owned())
            .unwrap_or_default(),
    }
}

/// The PAX facts strata uses from an entry's records.
fn read_pax(records: &[super::pax::Record]) -> PaxInfo {
    let mut info = PaxInfo::default();
    for (key, value) in records {
        let (key, value) = (key.as_slice(), value.as_slice());
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            info.xattrs.push((name.to_vec(), value.to_vec()));
        } else if let Some(k) = key.strip_prefix(b"GNU.sparse.") {
            info.sparse.take(k, value);
        } else {
            match key {
                b"mtime" => info.mtime = parse_time(value),
                b"atime" => info.atime = parse_time(value),
                b"uid" => info.uid = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
                b"gid" => info.gid = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
                b"path" => info.path = Some(value.to_vec()),
                b"linkpath" => info.linkpath = Some(value.to_vec()),
                _ => {}
            }
        }
    }
    info
}

impl Applier<'_> {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let pax = read_pax(self.records.borrow().as_deref().unwrap_or_default());
        let mut raw = match &pax.path {
            Some(p) => p.clone(),
            None => entry.path_bytes().into_owned(),
        };
        if let Some(real) = &pax.sparse.name {
            raw = real.clone(); // a PAX sparse file's real name
        }
        let path = clean(&raw)
            .ok_or_else(|| ApplyError::PathEscape(String::from_utf8_lossy(&raw).into()))?;
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            return Ok(()); // the layer root itself: its metadata belongs to the image, not the layer
        };
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let nb = name.as_bytes();
        for c in parent.iter() {
            let cb = c.as_bytes();
            if cb.starts_with(AUFS_META_PREFIX.as_bytes()) {
                return Ok(()); // inside AUFS bookkeeping (hardlink dirs): never the rootfs
            }
            if cb.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                return Err(ApplyError::ReservedName {
                    path: display(&path),
                    what: "directory",
                });
            }
        }
        if nb.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let meta = nb.starts_with(AUFS_META_PREFIX.as_bytes());
            // dockerd writes a layer's second whiteout as a hardlink to its first.
            if !meta
                && !matches!(
                    kind,
                    EntryType::Regular | EntryType::Continuous | EntryType::Link
                )
            {
                return Err(ApplyError::ReservedName {
                    path: display(&path),
                    what: if kind == EntryType::Directory {
                        "directory"
                    } else {
                        "non-regular file"
                    },
                });
            }
            return self.whiteout(&parent, &name, &path);
        }
        let hdr = entry.header().clone();
        let device = match kind {
            EntryType::Char | EntryType::Block | EntryType::Fifo => Some(device_of(&hdr, &path)?),
            _ => None,
        };
        if let (Some((ft, rdev)), true) = (device, kind != EntryType::Fifo) {
            if let Some(why) = self.hook.refuses_device(ft, rdev) {
                return Err(ApplyError::Unsupported {
                    path: display(&path),
                    kind: why.to_string(),
                });
            }
        }
        let (pfd, rparent) = self.parent_dir(&parent, &path)?;
        let rpath = rparent.join(&name);
        let is_dir = kind == EntryType::Directory;
        // This layer's own whiteout of the name, before it or after it: a directory made
        // in its place shows nothing of the layers below.
        let mut hide_below = self.whited.remove(&rpath)
            && self
                .hook
                .clear_whiteout(pfd.as_fd(), &name)
                .map_err(io_err(&path, "replace whiteout"))?;
        // Anything already there is replaced, except a directory by a directory. In a
        // layer that holds only its own changes a name can be there only if this layer
        // put it there: otherwise the lookup is skipped (one syscall per entry).
        let may_exist = self.hook.full_tree()
            || self.copied_up
            || self.touched(&rpath)
            || self.dir_times.contains_key(&rpath);
        let existing = if may_exist {
            rustix::fs::statat(&pfd, &name, AtFlags::SYMLINK_NOFOLLOW)
        } else {
            Err(rustix::io::Errno::NOENT)
        };
        match existing {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                // A directory in place of a non-directory of this layer is a new, empty
                // one: what the layers below had at this path stays hidden.
                hide_below |= is_dir && !existing_dir;
                if !(existing_dir && is_dir) {
                    if let Some(r) = &self.recorder {
                        r.borrow_mut().replaced(&rpath);
                    }
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
                let file = File::from(fd);
                if let Some(r) = &self.recorder {
                    let mut r = r.borrow_mut();
                    if pax.sparse.present() || kind == EntryType::GNUSparse {
                        r.taint(format!("{} is a sparse file", display(&path)));
                    } else {
                        r.file(&rpath, entry.raw_file_position(), entry.size());
                    }
                }
                if pax.sparse.present() {
                    self.write_pax_sparse(entry, &file, &pax.sparse, &path)?;
                } else {
                    self.write_data(entry, &file, kind == EntryType::GNUSparse, &path)?;
                }
                set_meta_fd(file.as_fd(), owner, mode, &pax, &times)
                    .map_err(io_err(&path, "set metadata"))?;
            }
            EntryType::Directory => {
                let existed = match rustix::fs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => false,
                    Err(rustix::io::Errno::EXIST) => true,
                    Err(e) => return Err(io_err(&path, "create directory")(errno(e))),
                };
                let dfd =
                    open_dir_at(pfd.as_fd(), &name).map_err(io_err(&path, "open directory"))?;
                rustix::fs::fchown(&dfd, owner.0, owner.1)
                    .map_err(|e| io_err(&path, "chown")(errno(e)))?;
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(mode))
                    .map_err(|e| io_err(&path, "chmod")(errno(e)))?;
                // The entry is the directory's whole state: xattrs it had before go.
                let before = if existed {
                    xattr::fget_all(&dfd).map_err(io_err(&path, "list xattrs"))?
                } else {
                    Vec::new()
                };
                for (k, _) in before {
                    let kb = k.as_bytes();
                    let private = self
                        .hook
                        .private_xattrs()
                        .is_some_and(|p| kb.starts_with(p.as_bytes()));
                    if !private && !pax.xattrs.iter().any(|(n, _)| n.as_slice() == kb) {
                        rustix::fs::fremovexattr(&dfd, k.as_os_str())
                            .map_err(|e| io_err(&path, "remove xattr")(errno(e)))?;
                    }
                }
                for (k, v) in &pax.xattrs {
                    xattr::fset(&dfd, OsStr::from_bytes(k), v)
                        .map_err(io_err(&path, "set xattr"))?;
                }
                if hide_below {
                    self.hook
                        .opaque(dfd.as_fd(), &|_| true)
                        .map_err(io_err(&path, "make directory opaque"))?;
                }
                self.dir_times.insert(rpath.clone(), times);
            }
            EntryType::Symlink => {
                let target = link_target(entry, &pax);
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &pfd, &name)
                    .map_err(|e| io_err(&path, "create symlink")(errno(e)))?;
                set_meta_at(pfd.as_fd(), &name, owner, None, &pax, &times)
                    .map_err(io_err(&path, "set metadata"))?;
            }
            EntryType::Link => {
                let raw_target = link_target(entry, &pax);
                self.hardlink(&raw_target, pfd.as_fd(), &name, &path)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, rdev) = device.unwrap_or((FileType::Fifo, 0));
                rustix::fs::mknodat(&pfd, &name, ft, Mode::from_raw_mode(mode), rdev)
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
        self.mark_written(rpath);
        Ok(())
    }

    /// Streams an entry's data into `file`. Whole blocks of zeros in a sparse file are
    /// skipped, leaving holes: a small tar cannot make the host write terabytes of zeros.
    fn write_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        mut file: &File,
        sparse: bool,
        path: &Path,
    ) -> Result<(), ApplyError> {
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
                    .map_err(io_err(path, "seek past a hole"))?;
                hole = true;
            } else {
                file.write_all(chunk).map_err(io_err(path, "write file"))?;
                hole = false;
            }
            len += n as u64;
            self.data_size += n as u64;
        }
        if hole {
            file.set_len(len)
                .map_err(io_err(path, "set the file's length"))?;
        }
        Ok(())
    }

    /// Writes a sparse file in one of GNU tar's PAX forms (0.0, 0.1: the map in PAX
    /// records; 1.0: the map at the start of the data): each data segment at its offset,
    /// holes left as holes, the file at its real size.
    fn write_pax_sparse<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        mut file: &File,
        sp: &SparseRecords,
        path: &Path,
    ) -> Result<(), ApplyError> {
        use std::io::Seek;
        let corrupt = |why: &str| {
            ApplyError::Tar(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: sparse file: {why}", display(path)),
            ))
        };
        let real_size = sp.real_size.ok_or_else(|| corrupt("no real size"))?;
        if self.data_size.saturating_add(real_size) > self.max_bytes {
            return Err(ApplyError::Limit(format!(
                "more than {} bytes of file data once expanded, at {} (daemon.json max-layer-size)",
                self.max_bytes,
                display(path)
            )));
        }
        let stored = entry.size();
        let map: Vec<(u64, u64)> = match (sp.major, sp.minor) {
            (Some(1), Some(0)) => {
                let (map, used) = read_sparse_map(entry, stored).map_err(|e| corrupt(&e))?;
                // The map is padded to a whole block.
                let pad = used.div_ceil(512) * 512 - used;
                io::copy(&mut entry.by_ref().take(pad), &mut io::sink())
                    .map_err(ApplyError::Tar)?;
                map
            }
            (None, _) | (Some(0), _) => match &sp.map {
                Some(m) => parse_map_record(m).map_err(|e| corrupt(&e))?,
                None => sp
                    .pairs
                    .iter()
                    .map(|p| match p {
                        (Some(o), Some(n)) => Ok((*o, *n)),
                        _ => Err(corrupt("an offset without its size")),
                    })
                    .collect::<Result<_, _>>()?,
            },
            (Some(ma), mi) => {
                return Err(ApplyError::Unsupported {
                    path: display(path),
                    kind: format!("GNU sparse format {ma}.{}", mi.unwrap_or(0)),
                })
            }
        };
        let mut end = 0u64;
        for &(off, len) in &map {
            if off < end || off.checked_add(len).is_none_or(|e| e > real_size) {
                return Err(corrupt("data segments overlap or lie past the real size"));
            }
            end = off + len;
            file.seek(io::SeekFrom::Start(off))
                .map_err(io_err(path, "seek past a hole"))?;
            let copied =
                io::copy(&mut entry.by_ref().take(len), &mut file).map_err(ApplyError::Tar)?;
            if copied != len {
                return Err(corrupt("the data ends before its map does"));
            }
            self.data_size += len;
        }
        file.set_len(real_size)
            .map_err(io_err(path, "set the file's length"))?;
        Ok(())
    }

    /// Records that this layer wrote `p` (and so made every directory above it).
    fn mark_written(&mut self, p: PathBuf) {
        let mut a = p.parent();
        while let Some(dir) = a {
            if self.ancestors.contains(dir) {
                break;
            }
            self.ancestors.insert(dir.to_path_buf());
            a = dir.parent();
        }
        self.written.insert(p);
    }

    /// Whether this layer wrote `p` or something inside it.
    fn touched(&self, p: &Path) -> bool {
        self.written.contains(p) || self.ancestors.contains(p)
    }

    /// Takes note of directories the view made in the layer on the way to a path: new
    /// ones are this layer's; copies up keep their times and stay copies (an opaque
    /// marker of this layer still hides them).
    fn note_made(&mut self, made: Vec<Made>) {
        for m in made {
            match m.times {
                Some(t) => {
                    self.dir_times.entry(m.path).or_insert(t);
                }
                None => self.mark_written(m.path),
            }
        }
    }

    /// Keeps the times a directory had before this layer added or removed entries in it
    /// (a directory entry of the layer, before or after, sets its own instead).
    fn keep_times(&mut self, dir: BorrowedFd<'_>, path: &Path) {
        if !self.dir_times.contains_key(path) {
            if let Ok(st) = rustix::fs::fstat(dir) {
                self.dir_times.insert(path.to_path_buf(), times_of(&st));
            }
        }
    }

    /// Opens the directory an entry at tar path `rel` goes in, making it exist in the
    /// layer (see [`View::dir`]); returns it and its path with symlinks resolved.
    fn parent_dir(&mut self, rel: &Path, entry: &Path) -> Result<(OwnedFd, PathBuf), ApplyError> {
        if let Some((p, fd, resolved)) = &self.cache {
            if p == rel {
                let dup = fd.try_clone().map_err(io_err(rel, "dup"))?;
                return Ok((dup, resolved.clone()));
            }
        }
        let (fd, resolved) = match self.view.upper_dir(rel) {
            Ok(fd) => (fd, rel.to_path_buf()),
            Err(rustix::io::Errno::NOENT)
            | Err(rustix::io::Errno::NOTDIR)
            | Err(rustix::io::Errno::LOOP) => self.layer_dir(rel, entry)?,
            Err(e) => return Err(io_err(rel, "open directory")(errno(e))),
        };
        self.keep_times(fd.as_fd(), &resolved);
        let dup = fd.try_clone().map_err(io_err(rel, "dup"))?;
        self.cache = Some((rel.to_path_buf(), fd, resolved.clone()));
        Ok((dup, resolved))
    }

    /// The directory `rel` of the view, made to exist in the layer, and its path with
    /// symlinks resolved.
    fn layer_dir(&mut self, rel: &Path, entry: &Path) -> Result<(OwnedFd, PathBuf), ApplyError> {
        let mut made = Vec::new();
        let dir = self
            .view
            .dir(rel, true, &mut made)
            .map_err(io_err(entry, "resolve directory"))?;
        self.note_made(made);
        dir.and_then(|d| Some((d.upper?, d.path)))
            .ok_or_else(|| io_err(entry, "resolve directory")(not_dir()))
    }

    /// Handles `.wh.NAME` and `.wh..wh..opq` entries: they hide what the layers below
    /// have, never what this layer wrote, wherever they sit in the tar.
    fn whiteout(&mut self, parent: &Path, name: &OsStr, path: &Path) -> Result<(), ApplyError> {
        let nb = name.as_bytes();
        let opaque = nb == OPAQUE_MARKER.as_bytes();
        if !opaque && nb.starts_with(AUFS_META_PREFIX.as_bytes()) {
            return Ok(()); // AUFS bookkeeping (hardlink dirs), never part of the rootfs
        }
        let target = OsStr::from_bytes(&nb[WHITEOUT_PREFIX.len()..]);
        if !opaque && (target.is_empty() || target == "." || target == "..") {
            return Err(ApplyError::PathEscape(display(path)));
        }
        self.cache = None;
        let mut made = Vec::new();
        let found = self
            .view
            .dir(parent, false, &mut made)
            .map_err(io_err(path, "resolve whiteout"))?;
        let Some(dir) = found else {
            return Ok(()); // nothing there to hide
        };
        if opaque {
            return self.hide_below(&dir.path, path);
        }
        let victim = dir.path.join(target);
        if self.touched(&victim) {
            // Written by this layer: only what the layers below have inside it goes.
            return match self.view.lookup(&dir, target) {
                Ok(Hit::Dir(_)) => self.hide_below(&victim, path),
                _ => Ok(()),
            };
        }
        match self.view.lookup(&dir, target) {
            Ok(Hit::Absent { .. }) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(io_err(path, "resolve whiteout")(e)),
        }
        let (pfd, _) = self.layer_dir(&dir.path, path)?;
        self.keep_times(pfd.as_fd(), &dir.path);
        self.hook
            .whiteout(pfd.as_fd(), target)
            .map_err(io_err(path, "apply whiteout"))?;
        self.whited.insert(victim);
        Ok(())
    }

    /// Makes directory `rel` of the view show nothing of the layers below it, keeping
    /// what this layer wrote.
    fn hide_below(&mut self, rel: &Path, path: &Path) -> Result<(), ApplyError> {
        let (fd, _) = self.layer_dir(rel, path)?;
        self.cache = None;
        self.keep_times(fd.as_fd(), rel);
        // Copies up (and, in a complete tree, the lower layers' files) go; what this
        // layer wrote stays.
        let dup = fd.try_clone().map_err(io_err(rel, "dup"))?;
        self.prune(dup, rel)
            .map_err(io_err(path, "make directory opaque"))?;
        if self.hook.full_tree() {
            return Ok(());
        }
        if !rel.as_os_str().is_empty() {
            return self
                .hook
                .opaque(fd.as_fd(), &|_| true)
                .map_err(io_err(path, "make directory opaque"));
        }
        // overlayfs ignores the opaque mark on its root: hide each name below instead.
        let mut made = Vec::new();
        let root = self
            .view
            .dir(rel, false, &mut made)
            .map_err(io_err(path, "make the root opaque"))?
            .ok_or_else(|| io_err(path, "make the root opaque")(not_dir()))?;
        let names = self
            .view
            .lower_names(&root)
            .map_err(io_err(path, "make the root opaque"))?;
        let below = MDir {
            path: PathBuf::new(),
            upper: None,
            lowers: root.lowers,
        };
        for n in fsutil::tree::list_dir(fd.as_fd()).map_err(io_err(path, "make the root opaque"))? {
            // This layer's own directories at the root show nothing of what is below.
            let st = rustix::fs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err(path, "make the root opaque")(errno(e)))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let sub =
                    open_dir_at(fd.as_fd(), &n).map_err(io_err(path, "make the root opaque"))?;
                self.hook
                    .opaque(sub.as_fd(), &|_| true)
                    .map_err(io_err(path, "make the root opaque"))?;
            }
        }
        for n in names {
            if rustix::fs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW).is_ok()
                || self.hook.is_whiteout(fd.as_fd(), &n, None).unwrap_or(false)
            {
                continue; // this layer's own entry (or already a whiteout)
            }
            match self.view.lookup(&below, &n) {
                Ok(Hit::Absent { .. }) => {}
                Ok(_) => {
                    self.hook
                        .whiteout(fd.as_fd(), &n)
                        .map_err(io_err(path, "make the root opaque"))?;
                    self.whited.insert(PathBuf::from(&n));
                }
                Err(e) => return Err(io_err(path, "make the root opaque")(e)),
            }
        }
        Ok(())
    }

    /// Removes everything under `dir` (at `rel`) that this layer did not write (in a
    /// complete tree the lower layers' files, in a layer directory copies up and
    /// whiteouts), descending into directories that hold something it did.
    fn prune(&self, dir: OwnedFd, rel: &Path) -> io::Result<()> {
        for name in fsutil::tree::list_dir(dir.as_fd())? {
            if self.hook.is_meta(&name) {
                continue; // the format's own markers (aufs): this layer's whiteouts
            }
            let p = rel.join(&name);
            if self.touched(&p) {
                let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    fsutil::check_depth(&p)?;
                    self.prune(open_dir_at(dir.as_fd(), &name)?, &p)?;
                }
            } else {
                remove_all_at(dir.as_fd(), &name)?;
            }
        }
        Ok(())
    }

    /// A hardlink entry: `name` in `pfd` becomes another name of the file at
    /// `raw_target`. A target of a lower layer is copied up first (with the other names
    /// of its inode there), so the link group stays one inode in the merged view.
    fn hardlink(
        &mut self,
        raw_target: &[u8],
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
    ) -> Result<(), ApplyError> {
        let target = clean(raw_target)
            .ok_or_else(|| ApplyError::PathEscape(String::from_utf8_lossy(raw_target).into()))?;
        let missing = || ApplyError::HardlinkTarget {
            path: display(path),
            target: display(&target),
        };
        let (Some(tname), Some(tparent)) = (target.file_name(), target.parent()) else {
            return Err(missing());
        };
        let mut made = Vec::new();
        let dir = self
            .view
            .dir(tparent, false, &mut made)
            .map_err(|_| missing())?
            .ok_or_else(missing)?;
        let hit = self.view.lookup(&dir, tname).map_err(|_| missing())?;
        let place = match hit {
            Hit::Other(st, place) => Some((st, place)),
            Hit::Symlink(_, place) => {
                let st = match &place {
                    Place::Upper => None,
                    Place::Lower(_, l) => {
                        rustix::fs::statat(l, tname, AtFlags::SYMLINK_NOFOLLOW).ok()
                    }
                };
                match (place, st) {
                    (Place::Upper, _) => None,
                    (p, Some(st)) => Some((st, p)),
                    (_, None) => return Err(missing()),
                }
            }
            Hit::Dir(_) | Hit::Absent { .. } => return Err(missing()),
        };
        if let Some((st, Place::Lower(layer, from))) = place {
            self.copied_up = true;
            let (tdir, _) = self.layer_dir(&dir.path, path)?;
            let copy = fsutil::CopyOptions::new(true);
            fsutil::copy_entry_at(from.as_fd(), tname, tdir.as_fd(), tname, &copy)
                .map_err(io_err(path, "copy up the hardlink target"))?;
            if st.st_nlink > 1 {
                self.copy_up_links(layer, &st, &dir.path.join(tname), tdir.as_fd(), tname, path)?;
            }
        }
        let (tdir, _) = self.layer_dir(&dir.path, path)?;
        // Copying up the link group may have made something at this very name (a
        // directory holding another name of the inode): the entry replaces it.
        if rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            remove_all_at(pfd, name).map_err(io_err(path, "replace existing entry"))?;
            self.cache = None;
        }
        rustix::fs::linkat(&tdir, tname, pfd, name, AtFlags::empty())
            .map_err(|e| io_err(path, "create hardlink")(errno(e)))
    }

    /// After `first` (in `tdir` as `tname`) was copied up from lower layer `layer`: every
    /// other name of that inode still showing from there becomes a link to the copy.
    fn copy_up_links(
        &mut self,
        layer: usize,
        st: &rustix::fs::Stat,
        first: &Path,
        tdir: BorrowedFd<'_>,
        tname: &OsStr,
        path: &Path,
    ) -> Result<(), ApplyError> {
        let others = self
            .view
            .lower_links(layer, st.st_dev, st.st_ino)
            .map_err(io_err(path, "find the other names of the hardlink target"))?;
        for other in others.into_iter().filter(|o| o != first) {
            let (Some(oparent), Some(oname)) = (other.parent(), other.file_name()) else {
                continue;
            };
            let mut made = Vec::new();
            let Ok(Some(odir)) = self.view.dir(oparent, false, &mut made) else {
                continue;
            };
            let same = matches!(
                self.view.lookup(&odir, oname),
                Ok(Hit::Other(ost, Place::Lower(l, _)))
                    if l == layer && (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino)
            );
            if !same || odir.path != oparent {
                continue;
            }
            let (ofd, _) = self.layer_dir(oparent, path)?;
            rustix::fs::linkat(tdir, tname, &ofd, oname, AtFlags::empty())
                .map_err(|e| io_err(path, "keep a hardlink group together")(errno(e)))?;
        }
        Ok(())
    }

    /// Sets directory times once all their entries exist.
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        self.cache = None;
        for (path, times) in self.dir_times.drain() {
            match self.view.upper_dir(&path) {
                Ok(fd) => rustix::fs::futimens(&fd, &times)
                    .map_err(|e| io_err(&path, "set times")(errno(e)))?,
                Err(rustix::io::Errno::NOENT)
                | Err(rustix::io::Errno::NOTDIR)
                | Err(rustix::io::Errno::LOOP) => {}
                Err(e) => return Err(io_err(&path, "open directory")(errno(e))),
            }
        }
        Ok(())
    }
}

/// Sparse map entries one file may have (GNU tar's own limit is far lower in practice).
const MAX_SPARSE_SEGMENTS: u64 = 1 << 20;

/// Reads the 1.0 sparse map at the start of an entry's data: a count, then offset and
/// size for each segment, decimal, one per line. Returns the map and the bytes read.
fn read_sparse_map<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    stored: u64,
) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut used = 0u64;
    let mut next = || -> Result<u64, String> {
        let mut digits = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if entry.read(&mut b).map_err(|e| e.to_string())? == 0 {
                return Err("the map ends early".into());
            }
            used += 1;
            if used > stored {
                return Err("the map runs past the entry".into());
            }
            match b[0] {
                b'\n' => break,
                d @ b'0'..=b'9' if digits.len() < 20 => digits.push(d),
                _ => return Err("a map number is malformed".into()),
            }
        }
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "a map number is malformed".to_string())
    };
    let count = next()?;
    if count > MAX_SPARSE_SEGMENTS {
        return Err(format!("more than {MAX_SPARSE_SEGMENTS} segments"));
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        map.push((next()?, next()?));
    }
    Ok((map, used))
}

/// Parses a 0.1 `GNU.sparse.map` record: "offset,size,offset,size...".
fn parse_map_record(v: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let text = std::str::from_utf8(v).map_err(|_| "the map is not text".to_string())?;
    let nums: Vec<u64> = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| "a map number is malformed".to_string())
        })
        .collect::<Result<_, _>>()?;
    if !nums.len().is_multiple_of(2) || nums.len() as u64 > 2 * MAX_SPARSE_SEGMENTS {
        return Err("the map has an odd count or too many segments".into());
    }
    Ok(nums.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// The type and device number of a device or FIFO entry. A major or minor number that
/// does not fit 32 bits (base-256, negative or huge) makes the archive corrupt: cutting
/// it down would make a different device.
fn device_of(hdr: &tar::Header, path: &Path) -> Result<(FileType, u64), ApplyError> {
    let ft = match hdr.entry_type() {
        EntryType::Char => FileType::CharacterDevice,
        EntryType::Block => FileType::BlockDevice,
        _ => return Ok((FileType::Fifo, 0)),
    };
    let bad = |what: &str| {
        ApplyError::Tar(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: device {what} number does not fit 32 bits",
                display(path)
            ),
        ))
    };
    // devmajor and devminor: 8 bytes each at 329 and 337 in ustar and GNU headers.
    let raw = hdr.as_bytes();
    let major = device_number(&raw[329..337]).ok_or_else(|| bad("major"))?;
    let minor = device_number(&raw[337..345]).ok_or_else(|| bad("minor"))?;
    Ok((ft, rustix::fs::makedev(major, minor)))
}

/// A tar numeric field holding a device number: octal text, or GNU base-256 (high bit
/// set, big-endian two's complement). `None` when it is negative, above 32 bits or not
/// a number.
fn device_number(field: &[u8]) -> Option<u32> {
    let value: u64 = if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            if v > (u64::MAX >> 8) {
                return None;
            }
            v = (v << 8) | u64::from(b);
        }
        v
    } else {
        let text: Vec<u8> = field
            .iter()
            .copied()
            .take_while(|&b| b != 0)
            .filter(|b| *b != b' ')
            .collect();
        if text.is_empty() {
            0
        } else {
            u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()?
        }
    };
    u32::try_from(value).ok()
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
