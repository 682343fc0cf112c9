//! Containers' records and read-write layers: create (name checked under the records
//! lock), mount, rename, remove.

use super::Store;
use crate::containers::ContainerRecord;
use crate::error::{Result, StoreError};
use drivers::LayerKind;
use std::path::PathBuf;

impl Store {
    /// Finds a container by name, full id or unique id prefix.
    pub fn resolve_container(&self, key: &str) -> Result<ContainerRecord> {
        let all = self.containers.all()?;
        if let Some((_, c)) = all.iter().find(|(_, c)| c.name == key || c.id == key) {
            return Ok(c.clone());
        }
        let hits: Vec<&ContainerRecord> = all
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.id.starts_with(key))
            .collect();
        match hits.len() {
            1 if !key.is_empty() => Ok(hits[0].clone()),
            n if n > 1 => Err(StoreError::Ambiguous(format!(
                "container id prefix {key} is ambiguous"
            ))),
            _ => Err(StoreError::NoSuchContainer(key.to_string())),
        }
    }

    /// Creates a container's read-write layer on an image.
    pub fn create_container(&self, image: &str, name: Option<&str>) -> Result<ContainerRecord> {
        self.create_container_sized(image, name, None)
    }

    /// [`Store::create_container`] with a limit on the space its layer may use
    /// (`--storage-opt size=`), for drivers that can enforce one.
    pub fn create_container_sized(
        &self,
        image: &str,
        name: Option<&str>,
        size_limit: Option<u64>,
    ) -> Result<ContainerRecord> {
        self.create_container_with(image, name, size_limit, false)
    }

    /// [`Store::create_container_sized`]; a `scratch` container (`run --rm`) is not
    /// flushed to disk, as a crash would remove it anyway (`system prune` frees what is
    /// left).
    pub fn create_container_with(
        &self,
        image: &str,
        name: Option<&str>,
        size_limit: Option<u64>,
        scratch: bool,
    ) -> Result<ContainerRecord> {
        let img = self.resolve_image(image)?;
        let id = crate::random_id();
        let name = match name {
            Some(n) => {
                check_container_name(n)?;
                n.to_string()
            }
            None => format!("strata_{}", &id[..12]),
        };
        let name_taken = |name: &str| -> Result<()> {
            if self.containers.all()?.iter().any(|(_, c)| c.name == name) {
                return Err(StoreError::InUse(format!(
                    "the container name {name:?} is already in use: remove that container or pick another name"
                )));
            }
            Ok(())
        };
        // Checked early (no layer made for a name that is taken) and again below, under
        // the records lock, where the record is written.
        name_taken(&name)?;
        // The layer is made before its record: no garbage collection meanwhile.
        let _content = self.locks.content_shared()?;
        let parent = match img.layers.last() {
            Some(top) => Some(self.ensure_layer(top)?),
            None => None,
        };
        let kind = if scratch {
            LayerKind::Scratch
        } else {
            LayerKind::ReadWrite
        };
        self.driver.create(&id, parent.as_deref(), kind)?;
        if let Some(bytes) = size_limit {
            if let Err(e) = self.driver.set_size_limit(&id, bytes) {
                let _ = self.driver.remove(&id);
                return Err(e.into());
            }
        }
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            image: img.id.clone(),
            image_ref: image.to_string(),
            layer: id.clone(),
            driver: self.driver.name().to_string(),
            created: crate::now(),
        };
        let put = self.locks.records().and_then(|_held| {
            name_taken(&rec.name)?;
            if self.images.get(img.id.hex())?.is_none() {
                return Err(StoreError::NoSuchImage(image.to_string()));
            }
            if scratch {
                self.containers.put_volatile(&id, &rec)
            } else {
                self.containers.put(&id, &rec)
            }
        });
        if let Err(e) = put {
            let _ = self.driver.remove(&id);
            return Err(e);
        }
        Ok(rec)
    }

    /// Mounts a container's rootfs and returns its path (one reference per call).
    pub fn mount_container(&self, key: &str) -> Result<PathBuf> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        Ok(self.driver.get(&c.layer)?)
    }

    /// Releases one mount reference of a container's rootfs.
    pub fn umount_container(&self, key: &str) -> Result<()> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        Ok(self.driver.put(&c.layer)?)
    }

    /// Gives container `key` the name `new_name` (refused when another container has it).
    pub fn rename_container(&self, key: &str, new_name: &str) -> Result<ContainerRecord> {
        check_container_name(new_name)?;
        let _held = self.locks.records()?;
        let mut c = self.resolve_container(key)?;
        if self
            .containers
            .all()?
            .iter()
            .any(|(_, o)| o.name == new_name && o.id != c.id)
        {
            return Err(StoreError::InUse(format!(
                "the container name {new_name:?} is already in use: remove that container or pick another name"
            )));
        }
        c.name = new_name.to_string();
        self.containers.put(&c.id, &c)?;
        Ok(c)
    }

    /// Removes a container and its read-write layer; refused while mounted unless `force`.
    pub fn remove_container(&self, key: &str, force: bool) -> Result<ContainerRecord> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        if self.driver.exists(&c.layer) {
            let n = self.driver.mount_count(&c.layer)?;
            if n > 0 {
                if !force {
                    return Err(StoreError::InUse(format!(
                        "container {} is mounted ({n}): unmount it first, or remove it with force",
                        c.name
                    )));
                }
                for _ in 0..n {
                    // Another process (the container's shim) may release its own
                    // reference meanwhile: only a count still held is an error.
                    if let Err(e) = self.driver.put(&c.layer) {
                        if self.driver.mount_count(&c.layer)? > 0 {
                            return Err(e.into());
                        }
                        break;
                    }
                }
            }
            self.driver.remove(&c.layer)?;
        }
        self.containers.remove(&c.id)?;
        Ok(c)
    }

    fn check_driver(&self, c: &ContainerRecord) -> Result<()> {
        if c.driver != self.driver.name() {
            return Err(StoreError::Unsupported(format!(
                "container {} lives in driver {} but the store is open with {}: open the store with driver {}, or migrate it to this one",
                c.name,
                c.driver,
                self.driver.name(),
                c.driver
            )));
        }
        Ok(())
    }
}

/// Container names as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_container_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && n.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid container name {n:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
    }
}
