//! Named volumes: directories that outlive containers, refused removal while one uses them.

use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::volumes::{Volume, Volumes};
use serde_json::json;

/// The document `volume inspect` prints, in Docker's names.
pub fn volume_json(v: &Volume) -> serde_json::Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": layerstore::export::rfc3339(v.created),
        "Scope": "local",
        "Labels": v.labels,
        "Options": {},
    })
}

impl Engine {
    /// Creates volume `name` (an existing one is returned as it is).
    pub fn create_volume(&self, name: &str) -> Result<Volume> {
        self.create_volume_with(name, Default::default())
    }

    /// Creates volume `name` with `labels` (an existing one is returned as it is).
    pub fn create_volume_with(
        &self,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<Volume> {
        let store = self.store()?;
        Ok(Volumes::new(&store.root).create_with(name, labels, false)?)
    }

    /// Every volume.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        let store = self.store_ro()?;
        Ok(Volumes::new(&store.root).list()?)
    }

    /// Volume `name`.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let store = self.store_ro()?;
        Volumes::new(&store.root)
            .get(name)?
            .ok_or_else(|| EngineError::NotFound(format!("no such volume: {name}")))
    }

    /// Removes volume `name`; refused while a container uses it.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let store = self.store()?;
        let vols = Volumes::new(&store.root);
        let users = match vols.get(name)? {
            Some(v) => Self::users_of(&store, &v.mountpoint)?,
            None => Vec::new(),
        };
        vols.remove(name, &users)
            .ctx(|| format!("volume rm {name}"))
    }

    /// The containers that use volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        let store = self.store_ro()?;
        match Volumes::new(&store.root).get(name)? {
            Some(v) => Self::users_of(&store, &v.mountpoint),
            None => Ok(Vec::new()),
        }
    }

    /// Removes every volume no container uses; returns their names.
    pub fn prune_volumes(&self) -> Result<Vec<String>> {
        let store = self.store()?;
        let vols = Volumes::new(&store.root);
        let mut out = Vec::new();
        for v in vols.list()? {
            if Self::users_of(&store, &v.mountpoint)?.is_empty() {
                vols.remove(&v.name, &[])?;
                out.push(v.name);
            }
        }
        Ok(out)
    }
}
