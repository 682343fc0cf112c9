//! An image made from another by one step: a container's changes as a new layer (or
//! none), a new runtime config and one more history entry. `commit` and a Dockerfile
//! build's steps both make images this way.

use crate::digest::{Digest, HashWriter};
use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::spec::{self, Descriptor, Manifest};
use crate::store::{NewLayer, Store};
use crate::tarfs::WriteOptions;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, Write};

/// A layer written from a container's changes, its blob named and durable.
#[derive(Debug, Clone)]
pub struct CommittedLayer {
    pub diff_id: Digest,
    pub size: u64,
    pub data_size: u64,
}

/// Writes the changes of driver layer `layer` as a layer tar, hashed while written to a
/// staged blob, and names the blob. With `skip_empty`, a layer without changes gives
/// `None` (Docker's builder records such a step as an empty layer).
pub fn container_layer(
    store: &Store,
    layer: &str,
    opts: WriteOptions,
    skip_empty: bool,
) -> Result<Option<CommittedLayer>> {
    let (changes, source) = store.driver.changes_with_source(layer)?;
    if skip_empty && crate::tarfs::write::kept_changes(&changes, opts.drop_added).is_empty() {
        return Ok(None);
    }
    let work = store.temp_dir()?;
    let staged_path = work.join("layer.tar");
    let f = File::create(&staged_path).map_err(|e| StoreError::io("create", &staged_path, e))?;
    let (w, data_size) = store.write_changes(
        layer,
        &changes,
        source,
        HashWriter::new(BufWriter::with_capacity(1 << 20, f)),
        &staged_path,
        opts,
    )?;
    let (diff_id, size, mut bw) = w.finish();
    bw.flush()
        .and_then(|()| bw.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("write layer", &staged_path, e))?;
    // Flushed above: the layer's record, written next, depends on it.
    store.blobs.commit_durable(
        crate::blobs::Staged {
            path: staged_path,
            digest: diff_id.clone(),
            size,
        },
        "committed layer",
        None,
    )?;
    let _ = std::fs::remove_dir(&work);
    Ok(Some(CommittedLayer {
        diff_id,
        size,
        data_size,
    }))
}

/// What the new image has besides its parent's.
#[derive(Debug, Clone)]
pub struct Child {
    /// The new layer, if the step made one.
    pub layer: Option<CommittedLayer>,
    /// The new runtime config (the image config's `config` object).
    pub config: Value,
    /// RFC 3339 creation time, for the config and the history entry.
    pub created: String,
    /// The history entry's `created_by`, `comment` and the image's `author`.
    pub created_by: String,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Record the parent (a build step's image), so `images` can tell intermediate images
    /// from finished ones.
    pub record_parent: bool,
}

/// Registers the image `child` makes of `base`, named `names`; returns its record. The
/// layer's record, then the config and manifest blobs, then the image record are
/// written, so a crash in between leaves no image that lacks a part.
pub fn register(
    store: &Store,
    base: &ImageRecord,
    child: Child,
    names: &[String],
) -> Result<ImageRecord> {
    let docker_types = base.manifest_media_type == spec::DOCKER_MANIFEST;
    let layer_type = if docker_types {
        spec::DOCKER_LAYER
    } else {
        spec::OCI_LAYER
    };
    let mut layers = base.layers.clone();
    let mut size = base.size;
    if let Some(l) = &child.layer {
        let chain = store.register_layer(
            base.layers.last(),
            NewLayer {
                diff_id: &l.diff_id,
                blob: &l.diff_id,
                media_type: layer_type,
                source: None,
            },
            l.size,
            l.data_size,
        )?;
        size += store.layer(&chain)?.size;
        layers.push(chain);
    }
    let mut cfg: Value = serde_json::from_slice(&store.blobs.read(&base.id)?)
        .map_err(|e| StoreError::json("base image config", e))?;
    cfg["created"] = child.created.clone().into();
    if let Some(a) = &child.author {
        cfg["author"] = a.clone().into();
    }
    cfg["config"] = child.config;
    if let Some(l) = &child.layer {
        let diff_ids = cfg["rootfs"]["diff_ids"]
            .as_array_mut()
            .ok_or_else(|| StoreError::Format("base image config has no rootfs.diff_ids".into()))?;
        diff_ids.push(l.diff_id.to_string().into());
    }
    let mut entry = json!({"created": child.created, "created_by": child.created_by});
    if let Some(m) = &child.comment {
        entry["comment"] = m.clone().into();
    }
    if child.layer.is_none() {
        entry["empty_layer"] = true.into();
    }
    match cfg.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(entry),
        None => cfg["history"] = json!([entry]),
    }
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| StoreError::json("config", e))?;
    let config = store.blobs.put(&cfg_bytes, "config", None)?;
    let mut manifest: Manifest = serde_json::from_slice(&store.blobs.read(&base.manifest)?)
        .map_err(|e| StoreError::json("base manifest", e))?;
    manifest.config.digest = config.clone();
    manifest.config.size = cfg_bytes.len() as u64;
    if let Some(l) = &child.layer {
        manifest.layers.push(Descriptor {
            media_type: layer_type.into(),
            digest: l.diff_id.clone(),
            size: l.size,
            annotations: None,
            platform: None,
        });
    }
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
    let manifest_digest = store.blobs.put(&mbytes, "manifest", None)?;
    let img = ImageRecord {
        id: config,
        manifest: manifest_digest,
        manifest_media_type: base.manifest_media_type.clone(),
        layers,
        added: crate::now(),
        size,
        parent: child.record_parent.then(|| base.id.clone()),
    };
    store.register_image(&img, names)?;
    Ok(img)
}

/// The empty image a `FROM scratch` build starts from (Docker's manifest and config
/// types, no layers, no history), registered so a build step can make a container on it.
pub fn scratch(store: &Store) -> Result<ImageRecord> {
    let cfg = json!({
        "architecture": spec::Platform::default_linux().architecture,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| StoreError::json("config", e))?;
    let config = store.blobs.put(&cfg_bytes, "config", None)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": spec::DOCKER_MANIFEST,
        "config": {"mediaType": spec::DOCKER_CONFIG, "digest": config.to_string(), "size": cfg_bytes.len()},
        "layers": [],
    });
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?;
    let manifest_digest = store.blobs.put(&mbytes, "manifest", None)?;
    if let Some(img) = store.images.get(config.hex())? {
        return Ok(img);
    }
    let img = ImageRecord {
        id: config,
        manifest: manifest_digest,
        manifest_media_type: spec::DOCKER_MANIFEST.into(),
        layers: Vec::new(),
        added: crate::now(),
        size: 0,
        parent: None,
    };
    store.register_image(&img, &[])?;
    Ok(img)
}
