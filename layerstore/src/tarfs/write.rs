//! Writes an OCI layer tar from a layer's changes: deterministic (path order, numeric
//! owners, whole-second times), hardlinks kept as links, xattrs as PAX `SCHILY.xattr`,
//! deletions as `.wh.NAME` whiteouts and opaque directories as `.wh..wh..opq`.

use super::pax::record;
use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use drivers::{Change, ChangeKind};
use fsutil::xattr;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Writes a layer tar to `out` for `changes` of the tree at `root`; returns `out`.
pub fn write_layer<W: Write>(root: &Path, changes: &[Change], out: W) -> io::Result<W> {
    write_layer_sized(root, changes, out, &WriteOptions::default()).map(|(w, _)| w)
}

/// How a layer tar is written beyond the changes themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Xattrs starting with this are left out (a driver's bookkeeping when the root is
    /// its own directory).
    pub private_xattrs: Option<&'static str>,
    /// Modification times later than this are written as this (`SOURCE_DATE_EPOCH`), so
    /// a rebuild gives the same bytes.
    pub clamp_mtime: Option<u64>,
    /// Also write every parent directory of a change (as they are now), so the tar does
    /// not depend on whether the driver reports a directory whose entries changed (an
    /// overlay upper dir has it, a tree comparison may not): the same changes give the
    /// same tar on every driver.
    pub with_parents: bool,
    /// Paths left out when the layer added them, with the directories above them that
    /// have no other change ([`RUNTIME_MOUNTPOINTS`] for a container's commit and a
    /// build's RUN).
    pub drop_added: &'static [&'static str],
}

/// The mountpoints the runtime makes in a container's layer where the image has none:
/// not the container's changes (Docker keeps them in an init layer below it), so `diff`,
/// `commit` and a build's RUN leave them out.
pub const RUNTIME_MOUNTPOINTS: &[&str] = &["dev", "proc", "sys", "etc/hosts", "etc/resolv.conf"];

/// `changes` without the ones `drop_added` names (when added) and without a directory
/// changed only because one of them was made in it (an overlay copy-up, a new mtime).
pub fn kept_changes(changes: &[Change], drop_added: &[&str]) -> Vec<Change> {
    let dropped = |c: &Change| {
        c.kind == ChangeKind::Added
            && drop_added
                .iter()
                .any(|d| c.path.as_os_str() == OsStr::new(d))
    };
    let gone: Vec<&Path> = changes
        .iter()
        .filter(|c| dropped(c))
        .map(|c| c.path.as_path())
        .collect();
    if gone.is_empty() {
        return changes.to_vec();
    }
    let left: Vec<&Change> = changes.iter().filter(|c| !dropped(c)).collect();
    left.iter()
        .filter(|c| {
            let above_gone = c.kind == ChangeKind::Modified
                && gone.iter().any(|g| g.starts_with(&c.path) && *g != c.path);
            let has_own = left
                .iter()
                .any(|o| o.path != c.path && o.path.starts_with(&c.path));
            !above_gone || has_own
        })
        .map(|c| (*c).clone())
        .collect()
}

/// [`write_layer`], also returning the bytes of file content written (the layer's size as
/// `images` shows it), so a commit need not read the layer back to know it.
pub fn write_layer_sized<W: Write>(
    root: &Path,
    changes: &[Change],
    out: W,
    opts: &WriteOptions,
) -> io::Result<(W, u64)> {
    let mut w = LayerTarWriter::new(out);
    if let Some(p) = opts.private_xattrs {
        w.hide_xattrs(p);
    }
    w.clamp = opts.clamp_mtime;
    let kept: Vec<Change>;
    let changes = if opts.with_parents || !opts.drop_added.is_empty() {
        let left = kept_changes(changes, opts.drop_added);
        kept = if opts.with_parents {
            add_parents(&left)
        } else {
            left
        };
        &kept[..]
    } else {
        changes
    };
    let rootfd = fsutil::open_root(root)?;
    for c in changes {
        match c.kind {
            ChangeKind::Deleted => w.whiteout(&c.path)?,
            ChangeKind::Added | ChangeKind::Modified => w.entry(&rootfd, root, &c.path)?,
            ChangeKind::Opaque => {
                w.entry(&rootfd, root, &c.path)?;
                w.opaque(&c.path)?;
            }
        }
    }
    let size = w.data_size;
    Ok((w.finish()?, size))
}

/// Writes `name` in the directory open as `parent` and, for a directory, everything below
/// it, as archive entries named from `top` (the top entry itself only with `include_top`),
/// streaming to `out` as it reads: nothing is staged, so a sparse terabyte costs what the
/// reader takes of it, and an `out` that fails (a client gone) ends the walk. The walk is
/// by descriptor, so a running container cannot redirect it, and refuses trees deeper
/// than [`fsutil::MAX_TREE_DEPTH`] (see [`fsutil::walk_at`]).
pub fn write_tree<W: Write>(
    parent: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    top: &Path,
    include_top: bool,
    out: W,
) -> io::Result<W> {
    let mut w = LayerTarWriter::new(out);
    w.layer = false; // an archive of files, where `.wh.` names are plain names
    fsutil::walk_at(
        parent,
        name,
        top,
        include_top,
        &mut |dir, fname, rel, _st| w.entry_in(dir, Path::new(""), rel, fname),
    )?;
    w.finish()
}

/// `changes` with every missing parent directory added as modified, in path order.
fn add_parents(changes: &[Change]) -> Vec<Change> {
    let mut all: std::collections::BTreeMap<PathBuf, Change> = changes
        .iter()
        .map(|c| (c.path.clone(), c.clone()))
        .collect();
    for c in changes {
        let mut p = c.path.parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            all.entry(dir.to_path_buf()).or_insert_with(|| Change {
                path: dir.to_path_buf(),
                kind: ChangeKind::Modified,
            });
            p = dir.parent();
        }
    }
    all.into_values().collect()
}

/// A streaming tar writer for layer entries.
pub struct LayerTarWriter<W: Write> {
    out: W,
    links: HashMap<(u64, u64), PathBuf>,
    data_size: u64,
    parent: Option<(PathBuf, std::os::fd::OwnedFd)>,
    private_xattrs: Option<&'static str>,
    clamp: Option<u64>,
    /// The directory entry written last, with its permissions and owner.
    last_dir: Option<(PathBuf, (u32, u64, u64))>,
    /// Writing a layer (not a plain archive): a real entry named `.wh.*` is refused, as
    /// a reader would take it for a whiteout.
    layer: bool,
}

const ZEROS: [u8; 1024] = [0; 1024];

impl<W: Write> LayerTarWriter<W> {
    /// Starts a layer tar on `out`.
    pub fn new(out: W) -> Self {
        LayerTarWriter {
            out,
            links: HashMap::new(),
            data_size: 0,
            parent: None,
            private_xattrs: None,
            clamp: None,
            last_dir: None,
            layer: true,
        }
    }

    /// Leaves xattrs starting with `prefix` out of entries: reading a driver's own layer
    /// directory (overlay's upper dir keeps `trusted.overlay.*` there) rather than a mount.
    pub fn hide_xattrs(&mut self, prefix: &'static str) {
        self.private_xattrs = Some(prefix);
    }

    /// Writes the end-of-archive marker and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&ZEROS)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// A whiteout entry hiding `path` of the lower layers (mode 0600, as Docker writes
    /// them).
    pub fn whiteout(&mut self, path: &Path) -> io::Result<()> {
        let name = path.file_name().unwrap_or_default();
        let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
        wh.push(name);
        let p = path.parent().unwrap_or(Path::new("")).join(wh);
        self.marker(&p, (0o600, 0, 0))
    }

    /// An opaque marker for directory `dir`, with the directory's permissions and owner
    /// when it was the entry just written (as Docker writes them).
    pub fn opaque(&mut self, dir: &Path) -> io::Result<()> {
        let meta = match &self.last_dir {
            Some((p, m)) if p == dir => *m,
            _ => (0, 0, 0),
        };
        self.marker(&dir.join(OPAQUE_MARKER), meta)
    }

    fn marker(&mut self, p: &Path, (mode, uid, gid): (u32, u64, u64)) -> io::Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.header(h, p.as_os_str().as_bytes(), None, &[])
    }

    /// The entry at `rel` under `root` (whose open descriptor is `rootfd`). Everything is
    /// read relative to the entry's parent directory, opened inside the root (so a symlink
    /// never leads out) and kept open for its siblings, which come next in path order.
    pub fn entry(
        &mut self,
        rootfd: &std::os::fd::OwnedFd,
        root: &Path,
        rel: &Path,
    ) -> io::Result<()> {
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let fname = rel.file_name().unwrap_or_default();
        let parent = match self.parent.take() {
            Some((p, fd)) if p == parent_rel => fd,
            _ => fsutil::open_in_root(rootfd, parent_rel, fsutil::OpenMode::Dir)?,
        };
        let r = self.entry_in(parent.as_fd(), root, rel, fname);
        self.parent = Some((parent_rel.to_path_buf(), parent));
        r
    }

    fn entry_in(
        &mut self,
        parent: std::os::fd::BorrowedFd<'_>,
        root: &Path,
        rel: &Path,
        fname: &OsStr,
    ) -> io::Result<()> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags};
        if self.layer && fname.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: a file named .wh.* cannot be stored in a layer: that prefix marks a \
                     whiteout in the layer format (and the aufs driver keeps whiteouts under \
                     those names), so it would be read back as a deletion; rename it",
                    rel.display()
                ),
            ));
        }
        let st = rustix::fs::statat(parent, fname, AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut h = Header::new_ustar();
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mode(st.st_mode & 0o7777);
        let mtime = st.st_mtime.max(0) as u64;
        h.set_mtime(self.clamp.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);
        let mut name = rel.as_os_str().as_bytes().to_vec();
        let mut link: Option<Vec<u8>> = None;
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(EntryType::Link);
                let target = first.as_os_str().as_bytes().to_vec();
                return self.header(h, &name, Some(&target), &[]);
            }
            self.links.insert(key, rel.to_path_buf());
        }
        match ft {
            FileType::Directory => {
                h.set_entry_type(EntryType::Directory);
                name.push(b'/');
                self.last_dir = Some((
                    rel.to_path_buf(),
                    (st.st_mode & 0o777, st.st_uid as u64, st.st_gid as u64),
                ));
            }
            FileType::RegularFile => h.set_entry_type(EntryType::Regular),
            FileType::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                link = Some(rustix::fs::readlinkat(parent, fname, Vec::new())?.into_bytes());
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                h.set_entry_type(if ft == FileType::CharacterDevice {
                    EntryType::Char
                } else {
                    EntryType::Block
                });
                h.set_device_major(rustix::fs::major(st.st_rdev))?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
            }
            FileType::Fifo => h.set_entry_type(EntryType::Fifo),
            _ => return Ok(()), // sockets are not part of images
        }
        if ft != FileType::RegularFile {
            let xattrs = self.visible(xattr::lget_all(parent.as_fd(), fname)?);
            return self.header(h, &name, link.as_deref(), &xattrs);
        }
        let fd = rustix::fs::openat(
            parent,
            fname,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let xattrs = self.visible(xattr::fget_all(&fd)?);
        let f = File::from(fd);
        let size = st.st_size as u64;
        h.set_size(size);
        self.header(h, &name, None, &xattrs)?;
        let copied = io::copy(&mut io::Read::take(&f, size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while being read", root.join(rel).display()),
            ));
        }
        self.data_size += size;
        self.pad(size)
    }

    /// Leaves out the xattrs the layer's driver keeps for itself.
    fn visible(
        &self,
        mut xattrs: Vec<(std::ffi::OsString, Vec<u8>)>,
    ) -> Vec<(std::ffi::OsString, Vec<u8>)> {
        if let Some(prefix) = self.private_xattrs {
            xattrs.retain(|(n, _)| !n.as_bytes().starts_with(prefix.as_bytes()));
        }
        xattrs
    }

    /// A regular file entry of an archive (not a layer): `size` bytes from `r`.
    pub fn file(&mut self, name: &str, size: u64, r: &mut dyn io::Read) -> io::Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        self.header(h, name.as_bytes(), None, &[])?;
        let copied = io::copy(&mut r.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: source ended after {copied} of {size} bytes"),
            ));
        }
        self.pad(size)
    }

    /// A directory entry of an archive.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        self.header(
            h,
            format!("{}/", name.trim_end_matches('/')).as_bytes(),
            None,
            &[],
        )
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&ZEROS[..512 - rem])?;
        }
        Ok(())
    }

    /// Writes `h` with `name` and `link`, preceded by a PAX header when the names are
    /// too long for ustar or there are xattrs.
    fn header(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(std::ffi::OsString, Vec<u8>)],
    ) -> io::Result<()> {
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(record("path", name));
        }
        if let Some(l) = link {
            if l.len() > 100 {
                pax.extend(record("linkpath", l));
            }
        }
        for (k, v) in xattrs {
            let key = format!("SCHILY.xattr.{}", OsStr::to_string_lossy(k));
            pax.extend(record(&key, v));
        }
        if !pax.is_empty() {
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.set_mode(0o644);
            ph.set_size(pax.len() as u64);
            let pname = format!(
                "PaxHeaders/{}",
                String::from_utf8_lossy(&name[..name.len().min(80)])
            );
            set_name_bytes(&mut ph, pname.as_bytes());
            ph.set_cksum();
            self.out.write_all(ph.as_bytes())?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        set_name_bytes(&mut h, name);
        if let Some(l) = link {
            let field = &mut h.as_old_mut().linkname;
            let n = l.len().min(100);
            field.fill(0);
            field[..n].copy_from_slice(&l[..n]);
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }
}

/// Writes up to 100 bytes of `name` into the header's name field (PAX carries the rest).
fn set_name_bytes(h: &mut Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    let n = name.len().min(100);
    field[..n].copy_from_slice(&name[..n]);
}

#[cfg(test)]
mod mountpoint_tests {
    use super::*;

    fn ch(p: &str, kind: ChangeKind) -> Change {
        Change {
            path: PathBuf::from(p),
            kind,
        }
    }

    #[test]
    fn runtime_mountpoints_and_the_directories_made_for_them_are_not_changes() {
        let all = [
            ch("etc", ChangeKind::Modified),
            ch("etc/hosts", ChangeKind::Added),
            ch("proc", ChangeKind::Added),
            ch("written", ChangeKind::Added),
        ];
        let kept = kept_changes(&all, RUNTIME_MOUNTPOINTS);
        let paths: Vec<_> = kept.iter().map(|c| c.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["written"]);
        // A directory with a change of its own stays; a mountpoint the image had (so
        // changed, not added) is a change.
        let all = [
            ch("etc", ChangeKind::Modified),
            ch("etc/hosts", ChangeKind::Added),
            ch("etc/passwd", ChangeKind::Modified),
            ch("dev", ChangeKind::Modified),
        ];
        let kept = kept_changes(&all, RUNTIME_MOUNTPOINTS);
        let paths: Vec<_> = kept.iter().map(|c| c.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["etc", "etc/passwd", "dev"]);
    }
}
