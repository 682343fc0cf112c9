//! A container's filesystem: mount and release it, list its changes, commit them to a
//! new image, export it as one tar.

use crate::error::{Context as _, Result};
use crate::Engine;
use std::path::{Path, PathBuf};

impl Engine {
    /// Mounts container `key`'s rootfs (one reference per call); returns its path.
    pub fn mount(&self, key: &str) -> Result<PathBuf> {
        Ok(self.store()?.mount_container(key)?)
    }

    /// Releases one mount reference of container `key`'s rootfs.
    pub fn umount(&self, key: &str) -> Result<()> {
        Ok(self.store()?.umount_container(key)?)
    }

    /// What container `key` added, changed and deleted (not the mountpoints the runtime
    /// made, as Docker's init layer hides them).
    pub fn diff(&self, key: &str) -> Result<Vec<drivers::Change>> {
        let store = self.store()?;
        let c = store.resolve_container(key)?;
        let all = store.driver.changes(&c.layer)?;
        Ok(layerstore::tarfs::write::kept_changes(
            &all,
            layerstore::tarfs::write::RUNTIME_MOUNTPOINTS,
        ))
    }

    /// Makes a new image from container `key`'s changes, its config edited by `changes`
    /// (Dockerfile instructions, `commit --change`); returns its id.
    pub fn commit(
        &self,
        key: &str,
        o: &layerstore::commit::CommitOptions,
        changes: &[String],
    ) -> Result<layerstore::Digest> {
        let changes = crate::build::config_change::parse_all(changes)?;
        let store = self.store()?;
        let edit = |c: &mut serde_json::Value| crate::build::config_change::apply(c, &changes);
        let id = layerstore::commit::commit(&store, key, o, &edit)?;
        crate::events::record(&store.root, "container", "commit", key, "");
        Ok(id)
    }

    /// Streams container `key`'s whole filesystem as one tar to `out` (what `import` takes),
    /// nothing staged; a failing `out` (a client gone) ends it.
    pub fn export_to<W: std::io::Write>(&self, key: &str, out: W) -> Result<W> {
        let store = self.store()?;
        let root = store.mount_container(key)?;
        let result = layerstore::export::export_rootfs_to(&root, out);
        store.umount_container(key)?;
        result.map_err(|e| crate::error::EngineError::io(format!("export {key}"), e))
    }

    /// Writes container `key`'s whole filesystem as one tar at `out` (what `import` takes).
    pub fn export(&self, key: &str, out: &Path) -> Result<()> {
        let store = self.store()?;
        let root = store.mount_container(key)?;
        let result = layerstore::export::export_rootfs(&root, out);
        store.umount_container(key)?;
        result.ctx(|| format!("export {key} to {}", out.display()))
    }
}
