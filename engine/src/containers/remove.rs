//! Removing containers: stopped first when forced, then their layer, record and folder.

use super::bundle::Bundle;
use crate::error::{EngineError, Result};
use crate::Engine;
use layerstore::containers::ContainerRecord;
use layerstore::Store;

/// Removes container `key`'s record and layer (refused while mounted unless `force`),
/// then takes it off its networks and removes its folder. The record goes first: a crash
/// in between leaves endpoints of a container that is gone, which `fsck --repair`
/// releases.
pub(crate) fn discard(store: &Store, key: &str, force: bool) -> Result<ContainerRecord> {
    let c = store.remove_container(key, force)?;
    crate::networks::sandbox::teardown(&store.root, &c.id)?;
    Bundle::of(&store.root, &c.id).remove();
    Ok(c)
}

impl Engine {
    /// Refuses (or with `force` stops) a running container, before anything is removed.
    pub fn stop_for_removal(&self, key: &str, force: bool) -> Result<()> {
        let Ok(view) = self.container(key) else {
            return Ok(());
        };
        if view.state.is_running() {
            if !force {
                // dockerd's words: clients match on them.
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    view.record.id
                )));
            }
            self.stop(key, 0)?;
        }
        Ok(())
    }

    /// Removes a stopped container: its read-write layer (refused while mounted unless
    /// `force`), its record and its folder.
    pub fn remove_container(&self, key: &str, force: bool) -> Result<ContainerRecord> {
        let store = self.store()?;
        let c = discard(&store, key, force)?;
        crate::events::record(&store.root, "container", "destroy", &c.id, &c.name);
        Ok(c)
    }
}

impl Engine {
    /// Gives container `key` another name.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<ContainerRecord> {
        let store = self.store()?;
        let c = store.rename_container(key, new_name)?;
        crate::networks::sandbox::renamed(&store.root, &c.id, &c.name)?;
        crate::events::record(&store.root, "container", "rename", &c.id, &c.name);
        Ok(c)
    }
}
