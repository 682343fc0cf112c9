//! `commit`: a container's changes become a new layer and a new image on top of its
//! image. The changes come from the driver (overlay2 walks only its upper directory) and
//! the layer tar is hashed while it is written to the blob store. The blob is the layer's
//! durable form; the driver applies it (checking the DiffID) on first use, so a commit
//! reads each changed file once and writes it once.

use crate::child;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::tarfs::WriteOptions;

/// What `commit` records besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The image's new name, if any.
    pub reference: Option<String>,
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The author (`-a`).
    pub author: Option<String>,
}

/// Commits container `key`; returns the new image id. `edit` changes the new image's
/// runtime config (the engine applies `--change` instructions, checked before this call).
pub fn commit(
    store: &Store,
    key: &str,
    opts: &CommitOptions,
    edit: &dyn Fn(&mut serde_json::Value),
) -> Result<Digest> {
    let _content = store.locks.content_shared()?;
    let c = store.resolve_container(key)?;
    let base = store
        .images
        .get(c.image.hex())?
        .ok_or_else(|| StoreError::NoSuchImage(c.image.to_string()))?;
    let name = opts
        .reference
        .as_deref()
        .map(crate::refs::normalize)
        .transpose()?;
    // The blob is uncompressed, so its digest is the DiffID; the driver applies it when
    // something first uses the new image.
    let write = WriteOptions {
        drop_added: crate::tarfs::write::RUNTIME_MOUNTPOINTS,
        ..Default::default()
    };
    let layer = child::container_layer(store, &c.layer, write, false)?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&store.blobs.read(&base.id)?)
        .map_err(|e| StoreError::json("base image config", e))?;
    edit(&mut cfg["config"]);
    let img = child::register(
        store,
        &base,
        child::Child {
            layer,
            config: cfg["config"].take(),
            created: crate::export::rfc3339(crate::now()),
            created_by: format!("strata commit {}", c.name),
            comment: opts.message.clone(),
            author: opts.author.clone(),
            record_parent: false,
        },
        name.as_slice(),
    )?;
    Ok(img.id)
}
