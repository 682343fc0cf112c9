//! The FUSE side: kernel requests turned into [`Union`] operations.
//!
//! A node (FUSE inode) stands for the file a union path resolves to, keyed by its real
//! device and inode number, so the names of a hardlinked file share one node (and `stat`
//! shows one inode). Opened files are handed to the kernel with FUSE passthrough where the
//! kernel has it, so reads and writes go straight to the branch file; otherwise they are
//! served here with positioned reads and writes.

use crate::branch::{Branch, Loc};
use crate::branches::{file_type, Found, Union};
use fuser::{
    AccessFlags, BackingId, Errno, FileAttr, FileHandle, FileType as FType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{FileType, OFlags, Stat, Timespec, Timestamps};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(1);

struct Node {
    rel: PathBuf,
    key: (u64, u64),
    lookups: u64,
}

#[derive(Default)]
struct Nodes {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next: u64,
}

struct Handle {
    file: File,
    _backing: Option<Arc<BackingId>>,
}

/// Backing files registered for passthrough, per node: the kernel wants one per inode.
struct Backing {
    id: Weak<BackingId>,
    real: Loc,
}

/// The union filesystem served over FUSE.
pub struct UnionFs {
    union: Union,
    nodes: Mutex<Nodes>,
    files: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Vec<(OsStringEntry, u64)>>>,
    backing: Mutex<HashMap<u64, Backing>>,
    next_fh: AtomicU64,
    passthrough: AtomicBool,
    want_passthrough: bool,
}

type OsStringEntry = (std::ffi::OsString, FType);

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

fn kind(ft: FileType) -> FType {
    match ft {
        FileType::Directory => FType::Directory,
        FileType::Symlink => FType::Symlink,
        FileType::Fifo => FType::NamedPipe,
        FileType::CharacterDevice => FType::CharDevice,
        FileType::BlockDevice => FType::BlockDevice,
        FileType::Socket => FType::Socket,
        _ => FType::RegularFile,
    }
}

/// Answers an xattr get or list: its size when asked with `size` 0, ERANGE when it does
/// not fit, else the bytes.
fn reply_xattr(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, Errno>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs())
    }
}

fn attr(ino: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec as i64),
        mtime: time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: kind(file_type(st)),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT as _,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW as _,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as _,
            }
        }
    }
}

impl UnionFs {
    /// Serves `union`, with FUSE passthrough where the kernel has it and `passthrough`.
    pub fn new(union: Union, passthrough: bool) -> UnionFs {
        UnionFs {
            union,
            nodes: Mutex::new(Nodes {
                next: 2,
                ..Default::default()
            }),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            backing: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
            want_passthrough: passthrough,
        }
    }

    fn rel_of(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino == INodeNo::ROOT {
            return Ok(PathBuf::new());
        }
        let nodes = self.nodes.lock().map_err(|_| Errno::EIO)?;
        nodes
            .by_id
            .get(&ino.0)
            .map(|n| n.rel.clone())
            .ok_or(Errno::ENOENT)
    }

    fn resolve(&self, rel: &Path) -> Result<Found, Errno> {
        self.union.resolve(rel).map_err(errno)?.ok_or(Errno::ENOENT)
    }

    /// The node for what `rel` resolved to, counting one lookup.
    fn node_for(&self, rel: &Path, f: &Found) -> u64 {
        if rel.as_os_str().is_empty() {
            return INodeNo::ROOT.0;
        }
        let key = (f.st.st_dev, f.st.st_ino);
        let Ok(mut nodes) = self.nodes.lock() else {
            return 0;
        };
        if let Some(&id) = nodes.by_key.get(&key) {
            if let Some(n) = nodes.by_id.get_mut(&id) {
                n.rel = rel.to_path_buf();
                n.lookups += 1;
                return id;
            }
        }
        let id = nodes.next;
        nodes.next += 1;
        nodes.by_key.insert(key, id);
        nodes.by_id.insert(
            id,
            Node {
                rel: rel.to_path_buf(),
                key,
                lookups: 1,
            },
        );
        id
    }

    /// After a copy-up node `ino` is a different real file: key it by that one, so the
    /// other names of a hardlinked file (resolving to the same pseudo-link) find this node.
    fn rekey(&self, ino: u64, f: &Found) {
        let key = (f.st.st_dev, f.st.st_ino);
        if let Ok(mut nodes) = self.nodes.lock() {
            let Some(n) = nodes.by_id.get_mut(&ino) else {
                return;
            };
            let old = std::mem::replace(&mut n.key, key);
            if nodes.by_key.get(&old) == Some(&ino) {
                nodes.by_key.remove(&old);
            }
            nodes.by_key.insert(key, ino);
        }
    }

    /// Copies the file of node `ino` up and re-keys the node.
    fn copy_up(&self, ino: INodeNo, rel: &Path) -> Result<Found, Errno> {
        let f = self.union.copy_up(rel).map_err(errno)?;
        if ino != INodeNo::ROOT {
            self.rekey(ino.0, &f);
        }
        Ok(f)
    }

    /// Updates the paths of nodes under `from` after a rename to `to`.
    fn moved(&self, from: &Path, to: &Path) {
        if let Ok(mut nodes) = self.nodes.lock() {
            for n in nodes.by_id.values_mut() {
                if let Ok(rest) = n.rel.strip_prefix(from) {
                    n.rel = if rest.as_os_str().is_empty() {
                        to.to_path_buf()
                    } else {
                        to.join(rest)
                    };
                }
            }
        }
    }

    fn entry(&self, rel: &Path, reply: ReplyEntry) {
        match self.resolve(rel) {
            Ok(f) => {
                let id = self.node_for(rel, &f);
                reply.entry(&TTL, &attr(id, &f.st), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn child_rel(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel_of(parent)?.join(name))
    }

    /// Registers `file` for passthrough for node `ino` if the kernel supports it and no
    /// other backing file of this node is live.
    fn backing_for(
        &self,
        ino: u64,
        real: &Loc,
        open: impl FnOnce() -> io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if !self.passthrough.load(Ordering::Relaxed) {
            return None;
        }
        let mut map = self.backing.lock().ok()?;
        if let Some(b) = map.get(&ino) {
            if let Some(id) = b.id.upgrade() {
                return (&b.real == real).then_some(id);
            }
        }
        let id = Arc::new(open().ok()?);
        map.insert(
            ino,
            Backing {
                id: Arc::downgrade(&id),
                real: real.clone(),
            },
        );
        Some(id)
    }

    /// Whether node `ino` has a live passthrough backing other than `real`: then this open
    /// must bypass the page cache to stay coherent with it.
    fn other_backing_live(&self, ino: u64, real: &Loc) -> bool {
        self.backing
            .lock()
            .ok()
            .and_then(|m| {
                m.get(&ino)
                    .map(|b| &b.real != real && b.id.upgrade().is_some())
            })
            .unwrap_or(false)
    }

    fn add_handle(&self, file: File, backing: Option<Arc<BackingId>>) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.files.lock() {
            m.insert(
                fh,
                Handle {
                    file,
                    _backing: backing,
                },
            );
        }
        fh
    }

    fn with_file<T>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&File) -> io::Result<T>,
    ) -> Result<T, Errno> {
        let m = self.files.lock().map_err(|_| Errno::EIO)?;
        let h = m.get(&fh.0).ok_or(Errno::EBADF)?;
        f(&h.file).map_err(errno)
    }

    fn upper(&self) -> Result<&Branch, Errno> {
        self.union.upper().map_err(errno)
    }

    fn branch(&self, b: usize) -> Result<&Branch, Errno> {
        self.union.branch(b).map_err(errno)
    }

    /// Creates an entry with `make` in the writable branch, owned by the caller.
    fn create_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        is_dir: bool,
        make: impl FnOnce(&Branch, &Path) -> io::Result<()>,
    ) -> Result<(PathBuf, Found, u64), Errno> {
        let prel = self.rel_of(parent)?;
        let rel = prel.join(name);
        if self.union.resolve(&rel).map_err(errno)?.is_some() {
            return Err(Errno::EEXIST);
        }
        let had_whiteout = self.union.prepare_create(&prel, name).map_err(errno)?;
        let upper = self.upper()?;
        make(upper, &rel).map_err(errno)?;
        upper
            .chown(&rel, Some(req.uid()), Some(req.gid()))
            .map_err(errno)?;
        if is_dir && had_whiteout {
            self.union.make_opaque(&rel).map_err(errno)?;
        }
        let f = self.resolve(&rel)?;
        let id = self.node_for(&rel, &f);
        Ok((rel, f, id))
    }
}

impl Filesystem for UnionFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(2).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child_rel(parent, name) {
            Ok(rel) => self.entry(&rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if let Ok(mut nodes) = self.nodes.lock() {
            let gone = match nodes.by_id.get_mut(&ino.0) {
                Some(n) => {
                    n.lookups = n.lookups.saturating_sub(nlookup);
                    (n.lookups == 0).then_some(n.key)
                }
                None => None,
            };
            if let Some(key) = gone {
                nodes.by_id.remove(&ino.0);
                if nodes.by_key.get(&key) == Some(&ino.0) {
                    nodes.by_key.remove(&key);
                }
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.rel_of(ino).and_then(|rel| self.resolve(&rel)) {
            Ok(f) => reply.attr(&TTL, &attr(ino.0, &f.st)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = (|| -> Result<Found, Errno> {
            let rel = self.rel_of(ino)?;
            let f = self.copy_up(ino, &rel)?;
            let upper = self.upper()?;
            if let Some(size) = size {
                match fh {
                    Some(fh) => self.with_file(fh, |file| file.set_len(size))?,
                    None => upper
                        .open_file(&rel, OFlags::WRONLY | OFlags::NONBLOCK, 0)
                        .and_then(|fd| File::from(fd).set_len(size))
                        .map_err(errno)?,
                }
            }
            if uid.is_some() || gid.is_some() {
                upper.chown(&rel, uid, gid).map_err(errno)?;
            }
            if let Some(m) = mode {
                if file_type(&f.st) != FileType::Symlink {
                    upper.chmod(&rel, m & 0o7777).map_err(errno)?;
                }
            }
            if atime.is_some() || mtime.is_some() {
                let t = Timestamps {
                    last_access: timespec(atime),
                    last_modification: timespec(mtime),
                };
                upper.utimens(&rel, &t).map_err(errno)?;
            }
            self.resolve(&rel)
        })();
        match r {
            Ok(f) => reply.attr(&TTL, &attr(ino.0, &f.st)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.rel_of(ino).and_then(|rel| self.resolve(&rel)) {
            Ok(f) => match self
                .branch(f.real.branch)
                .and_then(|b| b.readlink(&f.real.rel).map_err(errno))
            {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self.create_entry(req, parent, name, false, |upper, rel| {
            upper.mknod(
                rel,
                FileType::from_raw_mode(mode),
                mode & !umask & 0o7777,
                rdev as u64,
            )
        });
        match r {
            Ok((_, f, id)) => reply.entry(&TTL, &attr(id, &f.st), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.create_entry(req, parent, name, true, |upper, rel| {
            upper.mkdir(rel, mode & !umask & 0o7777)
        });
        match r {
            Ok((_, f, id)) => reply.entry(&TTL, &attr(id, &f.st), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| -> Result<(), Errno> {
            let prel = self.rel_of(parent)?;
            let f = self.resolve(&prel.join(name))?;
            if f.is_dir() {
                return Err(Errno::EISDIR);
            }
            self.union.remove(&prel, name).map_err(errno)
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| -> Result<(), Errno> {
            let prel = self.rel_of(parent)?;
            let rel = prel.join(name);
            let f = self.resolve(&rel)?;
            if !f.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if !self.union.is_empty_dir(&f, &rel).map_err(errno)? {
                return Err(Errno::ENOTEMPTY);
            }
            self.union.remove(&prel, name).map_err(errno)
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self.create_entry(req, parent, link_name, false, |upper, rel| {
            upper.symlink(target.as_os_str(), rel)
        });
        match r {
            Ok((_, f, id)) => reply.entry(&TTL, &attr(id, &f.st), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> Result<(), Errno> {
            if !flags.is_empty() {
                return Err(Errno::EINVAL);
            }
            let from = self.child_rel(parent, name)?;
            let to = self.child_rel(newparent, newname)?;
            if crate::branches::is_meta_name(newname) {
                return Err(Errno::EPERM);
            }
            self.union.rename(&from, &to).map_err(errno)?;
            self.moved(&from, &to);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| -> Result<(Found, u64), Errno> {
            let rel = self.rel_of(ino)?;
            let prel = self.rel_of(newparent)?;
            let to = prel.join(newname);
            if self.union.resolve(&to).map_err(errno)?.is_some() {
                return Err(Errno::EEXIST);
            }
            self.copy_up(ino, &rel)?;
            self.union.prepare_create(&prel, newname).map_err(errno)?;
            self.upper()?.link(&rel, &to).map_err(errno)?;
            let f = self.resolve(&to)?;
            let id = self.node_for(&to, &f);
            Ok((f, id))
        })();
        match r {
            Ok((f, id)) => reply.entry(&TTL, &attr(id, &f.st), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| -> Result<(File, Loc, bool), Errno> {
            let rel = self.rel_of(ino)?;
            let acc = flags.0 & libc::O_ACCMODE;
            let writing = acc != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
            let (real, lower) = if writing {
                (self.copy_up(ino, &rel)?.real, false)
            } else {
                let f = self.resolve(&rel)?;
                (f.real, f.branch > 0)
            };
            let keep =
                libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_SYNC | libc::O_DSYNC;
            let oflags = OFlags::from_bits_retain((flags.0 & keep) as u32)
                | OFlags::CLOEXEC
                | OFlags::NOFOLLOW;
            let fd = self
                .branch(real.branch)?
                .open_file(&real.rel, oflags, 0)
                .map_err(errno)?;
            Ok((File::from(fd), real, lower))
        })();
        match r {
            Ok((file, real, lower)) => {
                let backing = self.backing_for(ino.0, &real, || reply.open_backing(&file));
                let direct = backing.is_none() && self.other_backing_live(ino.0, &real);
                let fh = self.add_handle(file, backing.clone());
                match backing {
                    Some(id) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id),
                    None if direct => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                    // Read-only branches never change: their pages stay cached.
                    None if lower => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
                    None => reply.opened(FileHandle(fh), FopenFlags::empty()),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.with_file(fh, |f| {
            let mut buf = vec![0u8; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match f.read_at(&mut buf[n..], offset + n as u64)? {
                    0 => break,
                    k => n += k,
                }
            }
            buf.truncate(n);
            Ok(buf)
        });
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with_file(fh, |f| f.write_all_at(data, offset)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut m) = self.files.lock() {
            m.remove(&fh.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.with_file(fh, |f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| -> Result<Vec<(OsStringEntry, u64)>, Errno> {
            let rel = self.rel_of(ino)?;
            let f = self.resolve(&rel)?;
            if !f.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let mut v = vec![
                ((".".into(), FType::Directory), ino.0),
                (("..".into(), FType::Directory), ino.0),
            ];
            for e in self.union.list(&f, &rel).map_err(errno)? {
                v.push(((e.name, kind(e.kind)), e.ino));
            }
            Ok(v)
        })();
        match r {
            Ok(v) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = self.dirs.lock() {
                    m.insert(fh, v);
                }
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Ok(m) = self.dirs.lock() else {
            return reply.error(Errno::EIO);
        };
        let Some(entries) = m.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, ((name, k), ino)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *k, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut m) = self.dirs.lock() {
            m.remove(&fh.0);
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.union.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> Result<(), Errno> {
            let rel = self.rel_of(ino)?;
            self.copy_up(ino, &rel)?;
            self.upper()?
                .setxattr(
                    &rel,
                    name,
                    value,
                    rustix::fs::XattrFlags::from_bits_retain(flags as u32),
                )
                .map_err(errno)
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = (|| -> Result<Vec<u8>, Errno> {
            let f = self.resolve(&self.rel_of(ino)?)?;
            self.branch(f.real.branch)?
                .getxattr(&f.real.rel, name)
                .map_err(errno)
        })();
        reply_xattr(reply, size, r)
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = (|| -> Result<Vec<u8>, Errno> {
            let f = self.resolve(&self.rel_of(ino)?)?;
            self.branch(f.real.branch)?
                .listxattr(&f.real.rel)
                .map_err(errno)
        })();
        reply_xattr(reply, size, r)
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| -> Result<(), Errno> {
            let rel = self.rel_of(ino)?;
            self.copy_up(ino, &rel)?;
            self.upper()?.removexattr(&rel, name).map_err(errno)
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Mounted with default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut opened: Option<File> = None;
        let r = self.create_entry(req, parent, name, false, |upper, rel| {
            let keep = libc::O_ACCMODE | libc::O_APPEND;
            let oflags =
                OFlags::from_bits_retain((flags & keep) as u32) | OFlags::CREATE | OFlags::EXCL;
            let fd = upper.open_file(rel, oflags, mode & !umask & 0o7777)?;
            opened = Some(File::from(fd));
            Ok(())
        });
        match (r, opened) {
            (Ok((_, f, id)), Some(file)) => {
                let backing = self.backing_for(id, &f.real, || reply.open_backing(&file));
                let fh = self.add_handle(file, backing.clone());
                let a = attr(id, &f.st);
                match backing {
                    Some(b) => reply.created_passthrough(
                        &TTL,
                        &a,
                        Generation(0),
                        FileHandle(fh),
                        FopenFlags::empty(),
                        &b,
                    ),
                    None => {
                        reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
                    }
                }
            }
            (Err(e), _) => reply.error(e),
            (Ok(_), None) => reply.error(Errno::EIO),
        }
    }
}
