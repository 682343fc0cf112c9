//! `commit`: a container's changes become a new layer and a new image on top of its
//! image. The changes come from the driver (overlay2 walks only its upper directory) and
//! the layer tar is hashed while it is written to the blob store. The blob is the layer's
//! durable form; the driver applies it (checking the DiffID) on first use, so a commit
//! reads each changed file once and writes it once.

use crate::digest::{Digest, HashWriter};
use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::spec::{self, Descriptor, Manifest};
use crate::store::NewLayer;
use crate::store::Store;
use std::fs::File;
use std::io::{BufWriter, Write};

/// What `commit` records besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The image's new name, if any.
    pub reference: Option<String>,
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The author (`-a`).
    pub author: Option<String>,
    /// Dockerfile instructions applied to the config (`-c`, see [`crate::config_change`]).
    pub changes: Vec<String>,
}

/// Commits container `key`; returns the new image id.
pub fn commit(store: &Store, key: &str, opts: &CommitOptions) -> Result<Digest> {
    let changes = crate::config_change::parse_all(&opts.changes)?;
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

    // 1. The layer tar, hashed while written to a staged blob.
    let work = store.temp_dir()?;
    let staged_path = work.join("layer.tar");
    let f = File::create(&staged_path).map_err(|e| StoreError::io("create", &staged_path, e))?;
    let (w, data_size) = store.write_layer_changes(
        &c.layer,
        HashWriter::new(BufWriter::with_capacity(1 << 20, f)),
        &staged_path,
    )?;
    let (diff_id, size, mut bw) = w.finish();
    bw.flush()
        .and_then(|()| bw.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("write layer", &staged_path, e))?;
    // Flushed above: the layer's record, written next, depends on it.
    let blob = store.blobs.commit_durable(
        crate::blobs::Staged {
            path: staged_path,
            digest: diff_id.clone(),
            size,
        },
        "committed layer",
        None,
    )?;
    let _ = std::fs::remove_dir(&work);

    // 2. The layer's record, on top of the image's. The blob is uncompressed, so its digest
    //    is the DiffID; the driver applies it when something first uses the new image.
    let docker_types = base.manifest_media_type == spec::DOCKER_MANIFEST;
    let layer_type = if docker_types {
        spec::DOCKER_LAYER
    } else {
        spec::OCI_LAYER
    };
    let layer = NewLayer {
        diff_id: &diff_id,
        blob: &blob,
        media_type: layer_type,
        source: None,
    };
    let chain = store.register_layer(base.layers.last(), layer, size, data_size)?;

    // 3. Config and manifest: the base's, plus this layer and a history entry.
    let mut cfg: serde_json::Value = serde_json::from_slice(&store.blobs.read(&base.id)?)
        .map_err(|e| StoreError::json("base image config", e))?;
    let now = crate::export::rfc3339(crate::now());
    cfg["created"] = now.clone().into();
    if let Some(a) = &opts.author {
        cfg["author"] = a.clone().into();
    }
    crate::config_change::apply(&mut cfg["config"], &changes);
    let diff_ids = cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| StoreError::Format("base image config has no rootfs.diff_ids".into()))?;
    diff_ids.push(diff_id.to_string().into());
    let mut entry =
        serde_json::json!({"created": now, "created_by": format!("strata commit {}", c.name)});
    if let Some(m) = &opts.message {
        entry["comment"] = m.clone().into();
    }
    match cfg.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(entry),
        None => cfg["history"] = serde_json::json!([entry]),
    }
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| StoreError::json("config", e))?;
    let config = store.blobs.put(&cfg_bytes, "config", None)?;
    let mut manifest: Manifest = serde_json::from_slice(&store.blobs.read(&base.manifest)?)
        .map_err(|e| StoreError::json("base manifest", e))?;
    manifest.config.digest = config.clone();
    manifest.config.size = cfg_bytes.len() as u64;
    manifest.layers.push(Descriptor {
        media_type: layer_type.into(),
        digest: blob,
        size,
        annotations: None,
        platform: None,
    });
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
    let manifest_digest = store.blobs.put(&mbytes, "manifest", None)?;
    let mut layers = base.layers.clone();
    layers.push(chain.clone());
    let img = ImageRecord {
        id: config.clone(),
        manifest: manifest_digest,
        manifest_media_type: base.manifest_media_type.clone(),
        layers,
        added: crate::now(),
        size: base.size + store.layer(&chain)?.size,
    };
    store.register_image(&img, name.as_slice())?;
    Ok(config)
}
