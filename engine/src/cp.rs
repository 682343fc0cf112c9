//! `cp` between a container and the host. Paths inside a container are resolved with
//! openat2 `RESOLVE_IN_ROOT` and every step works through descriptors (*at calls that
//! never follow a symlink), so a running container swapping names for symlinks cannot make
//! strata read or write a host file (CVE-2018-15664).

use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use fsutil::{copy_entry_at, copy_tree_fds, open_in_root, open_root, CopyOptions, OpenMode};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Which way a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDirection {
    /// From the host path into the container.
    In,
    /// From the container out to the host path.
    Out,
}

/// One `cp`: a container, a path in it, a host path and the direction.
#[derive(Debug, Clone)]
pub struct CopySpec {
    pub container: String,
    pub path: String,
    pub host: PathBuf,
    pub direction: CopyDirection,
}

fn split_container(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

impl CopySpec {
    /// Docker's `cp SRC DST`, one side `CONTAINER:PATH`.
    pub fn parse(src: &str, dst: &str) -> Result<CopySpec> {
        let (container, path, direction, host) = match (split_container(src), split_container(dst))
        {
            (Some((c, p)), None) => (c, p, CopyDirection::Out, dst),
            (None, Some((c, p))) => (c, p, CopyDirection::In, src),
            (Some(_), Some(_)) => {
                return Err(EngineError::Unsupported(
                    "copying between containers is not supported: copy through the host".into(),
                ))
            }
            (None, None) => {
                return Err(EngineError::Invalid(
                    "one of SRC and DST must be CONTAINER:PATH".into(),
                ))
            }
        };
        Ok(CopySpec {
            container: container.to_string(),
            path: path.to_string(),
            host: PathBuf::from(host),
            direction,
        })
    }
}

/// The directory and name of a host path (trusted: the user named it).
fn host_parent(p: &Path) -> Result<(OwnedFd, OsString)> {
    let name = p
        .file_name()
        .ok_or_else(|| {
            EngineError::Invalid(format!("{}: give a path that ends in a name", p.display()))
        })?
        .to_os_string();
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fd =
        open_root(parent).map_err(|e| EngineError::io(format!("open {}", parent.display()), e))?;
    Ok((fd, name))
}

/// Makes room for a new entry `name` in `dir`: an existing non-directory is removed (the
/// entry itself, never what a symlink there points to).
fn clear_for(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    use rustix::fs::{AtFlags, FileType};
    if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        }
    }
    Ok(())
}

fn copy_in(root: &OwnedFd, s: &CopySpec, opts: &CopyOptions) -> Result<()> {
    let rel = Path::new(s.path.trim_start_matches('/'));
    let ctr = &s.container;
    // Into the directory `rel` if it is one, else as `rel` itself.
    let (dir, name) = match open_in_root(root, rel, OpenMode::Dir) {
        Ok(d) => (
            d,
            s.host
                .file_name()
                .ok_or_else(|| {
                    EngineError::Invalid(format!("{} has no file name", s.host.display()))
                })?
                .to_os_string(),
        ),
        Err(_) => {
            let dir_rel = rel.parent().unwrap_or(Path::new(""));
            let d = open_in_root(root, dir_rel, OpenMode::Dir).map_err(|_| {
                EngineError::NotFound(format!(
                    "{ctr}:{}: no such directory in the container",
                    dir_rel.display()
                ))
            })?;
            let n = rel
                .file_name()
                .ok_or_else(|| EngineError::Invalid(format!("bad container path {}", s.path)))?
                .to_os_string();
            (d, n)
        }
    };
    let (src_dir, src_name) = host_parent(&s.host)?;
    clear_for(&dir, &name)?;
    copy_entry_at(src_dir.as_fd(), &src_name, dir.as_fd(), &name, opts)?;
    Ok(())
}

fn copy_out(root: &OwnedFd, s: &CopySpec, opts: &CopyOptions) -> Result<()> {
    let rel = Path::new(s.path.trim_start_matches('/'));
    let (ctr, path) = (&s.container, &s.path);
    let missing = || {
        EngineError::NotFound(format!(
            "{ctr}:{path}: no such file or directory in the container"
        ))
    };
    let parent = open_in_root(root, rel.parent().unwrap_or(Path::new("")), OpenMode::Dir)
        .map_err(|_| missing())?;
    let (dst_dir, dst_name) = if s.host.is_dir() {
        let n = rel
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "rootfs".into());
        (
            open_root(&s.host)
                .map_err(|e| EngineError::io(format!("open {}", s.host.display()), e))?,
            n,
        )
    } else {
        host_parent(&s.host)?
    };
    clear_for(&dst_dir, &dst_name)?;
    match rel.file_name() {
        Some(n) => copy_entry_at(parent.as_fd(), n, dst_dir.as_fd(), &dst_name, opts).map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => missing(),
                _ => e.into(),
            },
        )?,
        // The container's root: its contents into a new directory.
        None => {
            rustix::fs::mkdirat(&dst_dir, &dst_name, rustix::fs::Mode::from_raw_mode(0o755))?;
            let d = rustix::fs::openat(
                &dst_dir,
                &dst_name,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            copy_tree_fds(parent, d, opts)?;
        }
    }
    Ok(())
}

/// Where a container path lives on the host: the rootfs, or the volume or bind mounted
/// over it (the longest mount destination that holds the path), with the path relative
/// to that root and whether it is read-only there.
struct Located {
    root: PathBuf,
    rel: String,
    read_only: bool,
}

/// Locates container path `path` of container `key` (rootfs mounted at `rootfs`) among
/// its mounts. The path is matched lexically (`..` cleaned, no symlink followed); a path
/// on a tmpfs, which only the container's mount namespace holds, is refused.
fn locate(store: &layerstore::Store, key: &str, rootfs: &Path, path: &str) -> Result<Located> {
    let c = store.resolve_container(key)?;
    let bundle = crate::containers::Bundle::of(&store.root, &c.id);
    let mut clean: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                clean.pop();
            }
            p => clean.push(p),
        }
    }
    let mut best: Option<(usize, Located)> = None;
    for m in bundle
        .spec()
        .ok()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
    {
        let dest: Vec<String> = m
            .destination()
            .to_string_lossy()
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if dest.is_empty()
            || dest.len() > clean.len()
            || dest.iter().zip(&clean).any(|(a, b)| a != b)
        {
            continue;
        }
        if best.as_ref().is_some_and(|(n, _)| *n >= dest.len()) {
            continue;
        }
        let typ = m.typ().clone().unwrap_or_default();
        let Some(src) = m.source().clone().filter(|_| typ == "bind") else {
            if matches!(
                typ.as_str(),
                "tmpfs" | "proc" | "sysfs" | "devpts" | "mqueue"
            ) {
                return Err(EngineError::Unsupported(format!(
                    "{path} is on the container's {typ} mount at {}: strata copies to and from its filesystem, volumes and binds only",
                    m.destination().display()
                )));
            }
            continue;
        };
        let read_only = m.options().iter().flatten().any(|o| o == "ro");
        let rel = clean[dest.len()..].join("/");
        best = Some((
            dest.len(),
            Located {
                root: src,
                rel,
                read_only,
            },
        ));
    }
    Ok(match best {
        Some((_, l)) => l,
        None => Located {
            root: rootfs.to_path_buf(),
            rel: clean.join("/"),
            read_only: bundle.host_config_shared()["ReadonlyRootfs"]
                .as_bool()
                .unwrap_or(false),
        },
    })
}

impl Engine {
    /// Copies between a container's filesystem (mounted for the copy, with its volumes and
    /// binds) and the host.
    pub fn copy(&self, s: &CopySpec) -> Result<()> {
        let store = self.store()?;
        let rootfs = store
            .mount_container(&s.container)
            .ctx(|| format!("cp: mount {}", s.container))?;
        let result = (|| -> Result<()> {
            let at = locate(&store, &s.container, &rootfs, &s.path)?;
            if at.read_only && s.direction == CopyDirection::In {
                return Err(EngineError::Conflict(format!(
                    "cannot copy into {}:{}: it is on a read-only mount or rootfs",
                    s.container, s.path
                )));
            }
            let root = open_root(&at.root)
                .map_err(|e| EngineError::io(format!("open {}", at.root.display()), e))?;
            let opts = CopyOptions::new(true);
            let inner = CopySpec {
                path: at.rel,
                ..s.clone()
            };
            match s.direction {
                CopyDirection::In => copy_in(&root, &inner, &opts),
                CopyDirection::Out => copy_out(&root, &inner, &opts),
            }
        })();
        store.umount_container(&s.container)?;
        result
    }
}

/// What `docker cp` is told about a path in a container (its `X-Docker-Container-Path-Stat`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    /// The Unix `st_mode`.
    #[serde(skip)]
    pub unix_mode: u32,
    /// Go's `os.FileMode` bits, as Docker reports them.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn go_mode(st_mode: u32) -> u32 {
    let perm = st_mode & 0o777;
    let mut m = perm;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        libc::S_IFBLK => m |= 1 << 26,
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

impl Engine {
    /// What `path` in container `key` is (never following a symlink out of the rootfs).
    pub fn path_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let store = self.store()?;
        let rootfs = store.mount_container(key)?;
        let r = locate(&store, key, &rootfs, path)
            .and_then(|l| PathAt::resolve(&l.root, key, &l.rel, path))
            .and_then(|at| at.stat());
        store.umount_container(key)?;
        r
    }

    /// Unpacks the tar at `tar` into directory `path` of container `key` (`docker cp` in);
    /// `work` is an empty scratch directory. The tar is unpacked confined to `work` first,
    /// then copied in through descriptors, so neither step can escape.
    pub fn archive_put(&self, key: &str, path: &str, work: &Path, tar: &Path) -> Result<()> {
        let st = self.path_stat(key, path)?;
        if st.unix_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(EngineError::Invalid(format!(
                "{path} in container {key} is not a directory"
            )));
        }
        std::fs::create_dir_all(work).map_err(|e| EngineError::io("create", e))?;
        let f = std::fs::File::open(tar).map_err(|e| EngineError::io("open the archive", e))?;
        layerstore::tarfs::apply_layer(std::io::BufReader::new(f), work, &drivers::RemoveWhiteouts)
            .map_err(layerstore::StoreError::from)?;
        for e in std::fs::read_dir(work).map_err(|e| EngineError::io("read", e))? {
            let e = e.map_err(|e| EngineError::io("read", e))?;
            self.copy(&CopySpec {
                container: key.into(),
                path: path.into(),
                host: e.path(),
                direction: CopyDirection::In,
            })?;
        }
        Ok(())
    }
}

/// A path of a container being archived (`docker cp` out): the container stays mounted
/// until this is dropped, the path's parent is held open, so the tar is written straight
/// from the container's files to the caller's sink, with nothing staged.
pub struct ArchiveOut {
    store: layerstore::Store,
    key: String,
    parent: OwnedFd,
    name: OsString,
    top: PathBuf,
    /// What the path is (sent before the tar, as Docker's header).
    pub stat: PathStat,
}

impl Engine {
    /// Opens `path` of container `key` for [`ArchiveOut::write_to`]. The tree is walked once
    /// first (names and types only), so one too deep to archive is refused here, before a
    /// caller has sent anything.
    pub fn archive_open(&self, key: &str, path: &str) -> Result<ArchiveOut> {
        let store = self.store()?;
        let rootfs = store.mount_container(key)?;
        let opened = (|| -> Result<(PathAt, PathStat, PathBuf)> {
            let l = locate(&store, key, &rootfs, path)?;
            let at = PathAt::resolve(&l.root, key, &l.rel, path)?;
            let stat = at.stat()?;
            let top = match (at.is_root, at.mount_name()) {
                (true, None) => PathBuf::from("rootfs"),
                (true, Some(n)) => PathBuf::from(n),
                (false, _) => PathBuf::from(&at.name),
            };
            fsutil::walk_at(
                at.parent.as_fd(),
                &at.name,
                &top,
                true,
                &mut |_, _, _, _| Ok(()),
            )
            .map_err(|e| EngineError::Invalid(format!("cannot archive {path}: {e}")))?;
            Ok((at, stat, top))
        })();
        match opened {
            Ok((at, stat, top)) => Ok(ArchiveOut {
                store,
                key: key.to_string(),
                parent: at.parent,
                name: at.name,
                top,
                stat,
            }),
            Err(e) => {
                let _ = store.umount_container(key);
                Err(e)
            }
        }
    }
}

/// Docker's answer for a path a container does not have.
fn missing(key: &str, path: &str) -> EngineError {
    EngineError::NotFound(format!("Could not find the file {path} in container {key}"))
}

/// A path of a mounted container, resolved inside its rootfs: its parent directory held
/// open and its name there (`.` for the root itself).
struct PathAt {
    parent: OwnedFd,
    name: OsString,
    is_root: bool,
    /// The path as the caller gave it, and its container, for errors.
    path: String,
    key: String,
}

impl PathAt {
    /// `rel` under `root` (the rootfs, a volume or a bind); `path` is the container
    /// path as given, for errors.
    fn resolve(root: &Path, key: &str, rel: &str, path: &str) -> Result<PathAt> {
        let root =
            open_root(root).map_err(|e| EngineError::io(format!("open {}", root.display()), e))?;
        let rel = Path::new(rel.trim_start_matches('/'));
        let parent = open_in_root(&root, rel.parent().unwrap_or(Path::new("")), OpenMode::Dir)
            .map_err(|_| missing(key, path))?;
        Ok(PathAt {
            parent,
            name: rel
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| ".".into()),
            is_root: rel.file_name().is_none(),
            path: path.to_string(),
            key: key.to_string(),
        })
    }

    /// The name of a mount's own root (`/vol` is `vol`), `None` for the container's root.
    fn mount_name(&self) -> Option<String> {
        self.path
            .split('/')
            .rfind(|p| !p.is_empty() && *p != ".")
            .map(str::to_string)
    }

    /// What the path is, as Docker's `X-Docker-Container-Path-Stat` says it.
    fn stat(&self) -> Result<PathStat> {
        let st = rustix::fs::statat(
            &self.parent,
            &self.name,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|_| missing(&self.key, &self.path))?;
        let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            rustix::fs::readlinkat(&self.parent, &self.name, Vec::new())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(PathStat {
            name: match (self.is_root, self.mount_name()) {
                (true, None) => "/".into(),
                (true, Some(n)) => n,
                (false, _) => self.name.to_string_lossy().into_owned(),
            },
            size: st.st_size as u64,
            unix_mode: st.st_mode,
            mode: go_mode(st.st_mode),
            mtime: layerstore::export::rfc3339(st.st_mtime as u64),
            link_target,
        })
    }
}

impl ArchiveOut {
    /// Streams the tar (its top entry named after the path, as `docker cp` expects) to
    /// `out`; a failing `out` (a client gone) ends it.
    pub fn write_to<W: std::io::Write>(&self, out: W) -> std::io::Result<W> {
        layerstore::tarfs::write_tree(self.parent.as_fd(), &self.name, &self.top, true, out)
    }
}

impl Drop for ArchiveOut {
    fn drop(&mut self) {
        if let Err(e) = self.store.umount_container(&self.key) {
            tracing::warn!("cp: unmount {}: {e}", self.key);
        }
    }
}
