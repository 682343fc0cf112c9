//! The vfs driver: every layer is a full copy of its parent.
//!
//! Works on any filesystem. Copies are reflinks (FICLONE) where the filesystem has them
//! (btrfs, xfs with reflink=1), else in-kernel `copy_file_range`; `vfs.reflink=false`
//! turns reflinks off.

use crate::dir_layers::DirLayers;
use crate::driver::{Driver, DriverOptions, LayerKind};
use crate::error::{check_id, DriverError};
use crate::layer_meta::LayerMeta;
use crate::staging::{check_removable, Staging};
use crate::whiteout::{RemoveWhiteouts, WhiteoutFormat};
use fsutil::{self, copy_tree, CopyOptions};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The vfs driver.
#[derive(Debug)]
pub struct Vfs {
    home: PathBuf,
    layers: DirLayers,
    staging: Staging,
    copy: CopyOptions,
    reflink_asked: bool,
}

impl Vfs {
    /// Opens (creating if needed) a vfs driver home, cleaning copies a crash left behind.
    pub fn open(home: &Path, opts: &DriverOptions) -> Result<Vfs, DriverError> {
        let mut reflink = true;
        for (k, v) in opts.for_driver("vfs")? {
            if k == "reflink" {
                reflink = DriverOptions::parse_bool("vfs.reflink", &v)?;
            }
        }
        let dir = home.join("dir");
        fs::create_dir_all(&dir).map_err(|e| DriverError::io("create", dir, e))?;
        let vfs = Vfs {
            home: home.to_path_buf(),
            layers: DirLayers::open(home, "dir")?,
            staging: Staging::open(home)?,
            copy: CopyOptions::new(reflink),
            reflink_asked: reflink,
        };
        Ok(vfs)
    }
}

impl Driver for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<(), DriverError> {
        check_id(id)?;
        if self.exists(id) {
            return Err(DriverError::Exists(id.to_string()));
        }
        let tmp = self.staging.path(id);
        fs::create_dir(&tmp).map_err(|e| DriverError::io("create", &tmp, e))?;
        let result = (|| {
            match parent {
                Some(p) => {
                    check_id(p)?;
                    if !self.exists(p) {
                        return Err(DriverError::NotFound(p.to_string()));
                    }
                    copy_tree(&self.layers.path(p), &tmp, &self.copy)
                        .map_err(|e| DriverError::io("copy layer", self.layers.path(p), e))?;
                }
                None => {
                    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                        .map_err(|e| DriverError::io("chmod", &tmp, e))?
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
            fsutil::fsync_dir(&self.home.join("dir"))
                .map_err(|e| DriverError::io("fsync", self.home.join("dir"), e))
        })();
        if result.is_err() {
            self.staging.discard(&tmp);
        }
        result
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
            return self.staging.delete(id, &self.layers.path(id));
        }
        check_removable(self, id)?;
        self.staging.delete(id, &self.layers.path(id))?;
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

    fn status(&self) -> Vec<(String, String)> {
        let backing = fsutil::backing_fs(&self.home).unwrap_or("unknown");
        let reflink = if !self.reflink_asked {
            "off (vfs.reflink=false)".to_string()
        } else if self.copy.reflink.load(Ordering::Relaxed) {
            "on where the filesystem supports it".to_string()
        } else {
            format!("off ({backing} has no reflinks)")
        };
        vec![
            ("Backing Filesystem".into(), backing.into()),
            ("Reflinks".into(), reflink),
            (
                "Layers".into(),
                self.list().map(|l| l.len()).unwrap_or(0).to_string(),
            ),
        ]
    }

    fn cleanup(&self) -> Result<(), DriverError> {
        self.layers.refs.reset()
    }
}
