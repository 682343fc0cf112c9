//! The btrfs driver: one subvolume per layer, a child is a snapshot of its parent.
//!
//! Layout under the driver home: `subvolumes/<id>` (the layer's full tree), `meta/<id>.json`
//! (parent, kind, size limit), `mounts/` (reference counts; a subvolume needs no mount) and
//! `tmp/` (where layers are snapshotted and destroyed out of sight). Subvolumes are made and
//! destroyed with the btrfs ioctls directly. The diff of a layer comes from btrfs's own
//! metadata: the inodes changed since the snapshot was taken (see [`changes`]).

pub mod changes;
pub mod ioctl;

use crate::changes::Change;
use crate::dir_layers::DirLayers;
use crate::driver::{Driver, DriverOptions, LayerKind};
use crate::error::{check_id, DriverError};
use crate::layer_meta::LayerMeta;
use crate::staging::{check_removable, Staging};
use crate::whiteout::{RemoveWhiteouts, WhiteoutFormat};
use fsutil::{self, write_atomic};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The btrfs driver.
#[derive(Debug)]
pub struct Btrfs {
    home: PathBuf,
    layers: DirLayers,
    staging: Staging,
    /// `btrfs.min_space`: the smallest per-container size limit accepted.
    min_space: Option<u64>,
    /// Set when a native diff was not possible and the tree walk was used instead.
    fell_back: AtomicBool,
}

impl Btrfs {
    /// Opens (creating) a btrfs driver home. Refused unless `home` is on btrfs and a test
    /// subvolume can be made there.
    pub fn open(home: &Path, opts: &DriverOptions) -> Result<Btrfs, DriverError> {
        let mut min_space = None;
        for (k, v) in opts.for_driver("btrfs")? {
            if k == "min_space" {
                min_space = Some(DriverOptions::parse_size("btrfs.min_space", &v)?);
            }
        }
        let unsupported = |reason: String| DriverError::Unsupported {
            driver: "btrfs".into(),
            reason,
        };
        let probe = home
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let fs_name = fsutil::backing_fs(probe).unwrap_or("unknown");
        if fs_name != "btrfs" {
            return Err(unsupported(format!(
                "{} is on {fs_name}, not btrfs: put the data root on a btrfs filesystem (--data-root)",
                probe.display()
            )));
        }
        let subs = home.join("subvolumes");
        fs::create_dir_all(&subs).map_err(|e| DriverError::io("create", subs, e))?;
        let d = Btrfs {
            home: home.to_path_buf(),
            layers: DirLayers::open(home, "subvolumes")?,
            staging: Staging::open(home)?,
            min_space,
            fell_back: AtomicBool::new(false),
        };
        let marker = home.join("supported");
        if !marker.exists() {
            d.probe().map_err(|e| {
                unsupported(format!(
                    "cannot create a subvolume in {}: {e}",
                    home.display()
                ))
            })?;
            write_atomic(&marker, b"subvolume create/snapshot/destroy work\n")
                .map_err(|e| DriverError::io("write", &marker, e))?;
        }
        Ok(d)
    }

    /// Makes and destroys a subvolume and a snapshot of it in the temp area.
    fn probe(&self) -> std::io::Result<()> {
        let tmp = self.staging.path("probe");
        let dir = fsutil::open_root(tmp.parent().unwrap_or(&self.home))?;
        let name = tmp.file_name().unwrap_or_default().to_os_string();
        ioctl::subvol_create(&dir, &name)?;
        let mut snap_name = name.clone();
        snap_name.push("-snap");
        let src = fsutil::open_root(&tmp)?;
        let r = ioctl::snapshot(&src, &dir, &snap_name);
        drop(src);
        if r.is_ok() {
            ioctl::subvol_destroy(&dir, &snap_name)?;
        }
        ioctl::subvol_destroy(&dir, &name)?;
        r
    }

    /// Destroys the subvolume at `path` (renamed into the temp area first, so a crash never
    /// leaves a half-destroyed layer under its name).
    fn destroy(&self, id: &str, path: &Path) -> Result<(), DriverError> {
        let tmp = self.staging.path(id);
        fs::rename(path, &tmp).map_err(|e| DriverError::io("rename", path, e))?;
        let dir = tmp.parent().unwrap_or(&self.home);
        let fd = fsutil::open_root(dir).map_err(|e| DriverError::io("open", dir, e))?;
        let name = tmp.file_name().unwrap_or_default();
        match ioctl::subvol_destroy(&fd, name) {
            // Subvolumes made inside it (a container may make them): those first.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                let inner =
                    fsutil::open_root(&tmp).map_err(|e| DriverError::io("open", &tmp, e))?;
                fsutil::tree::empty_dir(inner.as_fd())
                    .map_err(|e| DriverError::io("destroy nested subvolumes", &tmp, e))?;
                ioctl::subvol_destroy(&fd, name)
            }
            r => r,
        }
        .map_err(|e| DriverError::io("destroy subvolume", &tmp, e))
    }

    /// Subvolumes under `subvolumes/` that have no metadata (a crash between snapshot and
    /// record), for `fsck` and cleanup.
    pub fn orphans(&self) -> Result<Vec<String>, DriverError> {
        let d = self.home.join("subvolumes");
        let mut out = Vec::new();
        for e in fs::read_dir(&d).map_err(|e| DriverError::io("read", &d, e))? {
            let e = e.map_err(|e| DriverError::io("read", &d, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if !self.layers.meta.exists(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The filesystem's subvolume info for layer `id`.
    fn info(&self, id: &str) -> std::io::Result<ioctl::SubvolInfo> {
        let fd = fsutil::open_root(&self.layers.path(id))?;
        ioctl::subvol_info(&fd)
    }
}

impl Driver for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<(), DriverError> {
        check_id(id)?;
        if self.exists(id) || self.layers.path(id).exists() {
            return Err(DriverError::Exists(id.to_string()));
        }
        if let Some(p) = parent {
            check_id(p)?;
            if !self.exists(p) {
                return Err(DriverError::NotFound(p.to_string()));
            }
        }
        let tmp = self.staging.path(id);
        let tmp_dir = tmp.parent().unwrap_or(&self.home).to_path_buf();
        let name = tmp.file_name().unwrap_or_default().to_os_string();
        let build = || -> Result<(), DriverError> {
            let dir =
                fsutil::open_root(&tmp_dir).map_err(|e| DriverError::io("open", &tmp_dir, e))?;
            match parent {
                Some(p) => {
                    let src = fsutil::open_root(&self.layers.path(p))
                        .map_err(|e| DriverError::io("open", self.layers.path(p), e))?;
                    ioctl::snapshot(&src, &dir, &name)
                        .map_err(|e| DriverError::io("snapshot subvolume", &tmp, e))?;
                }
                None => {
                    ioctl::subvol_create(&dir, &name)
                        .map_err(|e| DriverError::io("create subvolume", &tmp, e))?;
                    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                        .map_err(|e| DriverError::io("chmod", &tmp, e))?;
                }
            }
            self.layers.meta.write(
                id,
                &LayerMeta {
                    parent: parent.map(str::to_string),
                    rw: kind.writable(),
                    size_limit: None,
                },
            )?;
            fs::rename(&tmp, self.layers.path(id))
                .map_err(|e| DriverError::io("rename", &tmp, e))?;
            let subs = self.home.join("subvolumes");
            fsutil::fsync_dir(&subs).map_err(|e| DriverError::io("fsync", subs, e))
        };
        let r = build();
        if r.is_err() {
            if let Ok(fd) = fsutil::open_root(&tmp_dir) {
                let _ = ioctl::subvol_destroy(fd.as_fd(), &name);
            }
            self.layers.meta.remove(id);
        }
        r
    }

    fn remove(&self, id: &str) -> Result<(), DriverError> {
        check_id(id)?;
        if self.layers.is_debris(id) {
            if self.mount_count(id)? > 0 {
                return Err(DriverError::InUse {
                    id: id.to_string(),
                    what: "mounted".into(),
                });
            }
            return self.destroy(id, &self.layers.path(id));
        }
        check_removable(self, id)?;
        self.destroy(id, &self.layers.path(id))?;
        self.layers.meta.remove(id);
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        self.layers.exists(id)
    }

    fn parent(&self, id: &str) -> Result<Option<String>, DriverError> {
        self.layers.parent(id)
    }

    fn list(&self) -> Result<Vec<String>, DriverError> {
        self.layers.list()
    }

    fn get(&self, id: &str) -> Result<PathBuf, DriverError> {
        self.layers.get(id)
    }

    fn put(&self, id: &str) -> Result<(), DriverError> {
        self.layers.put(id)
    }

    fn mount_count(&self, id: &str) -> Result<u32, DriverError> {
        self.layers.mount_count(id)
    }

    fn diff_dir(&self, id: &str) -> Result<PathBuf, DriverError> {
        self.layers.diff_dir(id)
    }

    fn whiteout_format(&self) -> &dyn WhiteoutFormat {
        &RemoveWhiteouts
    }

    /// From btrfs's metadata where the layer is a snapshot of its recorded parent; the
    /// shared tree walk otherwise (and `info` says so).
    fn changes(&self, id: &str) -> Result<Vec<Change>, DriverError> {
        let parent = self.parent(id)?;
        let dir = self.diff_dir(id)?;
        if let Some(p) = &parent {
            let pdir = self.diff_dir(p)?;
            let snapshot_of_parent = match (self.info(id), self.info(p)) {
                (Ok(me), Ok(par)) => (me.parent_uuid == par.uuid).then_some(me.otransid),
                _ => None,
            };
            if let Some(since) = snapshot_of_parent {
                match changes::native(&dir, &pdir, since) {
                    Ok(c) => return Ok(c),
                    Err(e) => {
                        eprintln!("strata: btrfs native diff of {id} failed ({e}); walking the trees instead");
                    }
                }
            }
            self.fell_back.store(true, Ordering::Relaxed);
        }
        crate::changes::compare_views(self, id)
    }

    fn set_size_limit(&self, id: &str, bytes: u64) -> Result<(), DriverError> {
        if let Some(min) = self.min_space {
            if bytes < min {
                return Err(DriverError::BadOption(
                    format!("size={bytes}"),
                    format!("smaller than btrfs.min_space ({min} bytes)"),
                ));
            }
        }
        let mut meta = self.layers.meta.read(id)?;
        let info = self
            .info(id)
            .map_err(|e| DriverError::io("subvolume info", self.layers.path(id), e))?;
        let fd = fsutil::open_root(&self.layers.path(id))
            .map_err(|e| DriverError::io("open", self.layers.path(id), e))?;
        ioctl::qgroup_limit(&fd, info.treeid, bytes).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                DriverError::BadOption(
                    "size".into(),
                    format!(
                        "btrfs quotas are off on the filesystem of {}: run `btrfs quota enable <mountpoint>` first",
                        self.home.display()
                    ),
                )
            } else {
                DriverError::io("set qgroup limit", self.layers.path(id), e)
            }
        })?;
        meta.size_limit = Some(bytes);
        self.layers.meta.write(id, &meta)
    }

    fn status(&self) -> Vec<(String, String)> {
        let native = if self.fell_back.load(Ordering::Relaxed) {
            "false (a layer was not a snapshot of its parent; tree walk used)"
        } else {
            "true"
        };
        let mut v = vec![
            ("Backing Filesystem".into(), "btrfs".into()),
            ("Native Diff".into(), native.into()),
            (
                "Layers".into(),
                self.list().map(|l| l.len()).unwrap_or(0).to_string(),
            ),
            (
                "Layer Limit".into(),
                "none (each layer is a full snapshot)".into(),
            ),
        ];
        if let Some(m) = self.min_space {
            v.push(("Min Space".into(), m.to_string()));
        }
        if let Ok(o) = self.orphans() {
            if !o.is_empty() {
                v.push(("Orphan Subvolumes".into(), o.join(", ")));
            }
        }
        v
    }

    fn cleanup(&self) -> Result<(), DriverError> {
        self.layers.refs.reset()
    }
}
