//! Layers that are whole directories under one folder (vfs copies, btrfs subvolumes), with
//! their metadata and shared mount counts: the trait methods such drivers answer the same
//! way, written once. A layer's directory is its root and its diff directory alike; getting
//! one mounts nothing, it only counts the user.

use crate::error::{check_id, DriverError};
use crate::layer_meta::{list_layer_dirs, MetaDir};
use crate::refcount::MountRefs;
use std::path::{Path, PathBuf};

/// The layer directories, metadata and mount counts of one driver home.
#[derive(Debug)]
pub struct DirLayers {
    dir: PathBuf,
    pub refs: MountRefs,
    pub meta: MetaDir,
}

impl DirLayers {
    /// Layers in `home/<sub>/<id>`, metadata in `home`, counts in `home/mounts`.
    pub fn open(home: &Path, sub: &str) -> Result<DirLayers, DriverError> {
        Ok(DirLayers {
            dir: home.join(sub),
            refs: MountRefs::new(&home.join("mounts"))?,
            meta: MetaDir::open(home)?,
        })
    }

    /// The directory of layer `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Whether `id` is a complete layer (its directory and its metadata).
    pub fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.path(id).is_dir() && self.meta.exists(id)
    }

    /// Whether `id` is a directory without metadata: what a crash between making a layer
    /// and recording it leaves. Nothing can depend on it, so it is removed as it is.
    pub fn is_debris(&self, id: &str) -> bool {
        !self.meta.exists(id) && self.path(id).is_dir()
    }

    /// The parent recorded for `id`.
    pub fn parent(&self, id: &str) -> Result<Option<String>, DriverError> {
        Ok(self.meta.read(id)?.parent)
    }

    /// Every layer directory.
    pub fn list(&self) -> Result<Vec<String>, DriverError> {
        list_layer_dirs(&self.dir)
    }

    /// The directory of an existing layer.
    pub fn diff_dir(&self, id: &str) -> Result<PathBuf, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        Ok(self.path(id))
    }

    /// Counts one more user of `id`; returns its directory.
    pub fn get(&self, id: &str) -> Result<PathBuf, DriverError> {
        let p = self.diff_dir(id)?;
        self.refs.take(id)?;
        Ok(p)
    }

    /// Counts one user of `id` less.
    pub fn put(&self, id: &str) -> Result<(), DriverError> {
        self.refs.give_back(id)
    }

    /// How many users `id` has.
    pub fn mount_count(&self, id: &str) -> Result<u32, DriverError> {
        self.refs.count_of(id)
    }
}
