//! Image import: `load` of docker-archives (classic and Docker 25's hybrid), OCI archives
//! and OCI layout directories, and `import` of a plain rootfs tar as a one-layer image.
//!
//! Order of work, so an interruption never shows a half-loaded image: blobs are verified
//! and stored (content-addressed, invisible on their own), then layers are applied and
//! checked against the config's DiffIDs, and only then is the image record written and
//! tagged. Leftovers of an interrupted load are collected by `gc`.

mod docker;
mod oci;
pub mod source;

pub use oci::select as select_platform;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::spec::{self, ImageConfig, Platform};
use crate::store::{NewLayer, Store};
use source::Source;
use std::fs;
use std::path::Path;

/// Largest manifest or index strata accepts.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config strata accepts.
pub const MAX_CONFIG: u64 = 8 << 20;

/// Options of `load`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The platform to pick from multi-platform indexes (default linux/amd64).
    pub platform: Option<Platform>,
}

/// An image that was loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub names: Vec<String>,
}

/// An image whose blobs are stored and verified, waiting for its layers to be applied
/// (by [`commit`]): what an import or a registry pull produces first.
pub struct Pending<'a> {
    pub names: Vec<String>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    /// Layer blobs bottom-up with their media types.
    pub layers: Vec<(Digest, String)>,
    /// Per layer (or none at all): where to read its tar when its blob is not stored (an
    /// uncompressed layer of the archive being loaded, applied from there and kept as
    /// files plus a tar-split record, never copied as a blob).
    pub sources: Vec<Option<PendingSource<'a>>>,
}

/// Opens one layer's blob (see [`Pending::sources`]).
pub type SourceFn<'a> = Box<dyn Fn() -> Result<Box<dyn std::io::Read + Send>> + Sync + 'a>;

/// Where one layer of a [`Pending`] image is read from.
pub struct PendingSource<'a> {
    pub open: SourceFn<'a>,
    /// The reader names the blob itself at its end (a download).
    pub stores_blob: bool,
}

impl<'a> PendingSource<'a> {
    /// A layer read in place from the archive being loaded.
    pub fn in_place(open: SourceFn<'a>) -> Option<PendingSource<'a>> {
        Some(PendingSource {
            open,
            stores_blob: false,
        })
    }
}

/// Loads every image in the archive or layout at `path`.
pub fn load(store: &Store, path: &Path, opts: &LoadOptions) -> Result<Vec<Loaded>> {
    let _content = store.locks.content_shared()?;
    let started = std::time::Instant::now();
    let staging = store.temp_dir()?;
    let result = (|| {
        let src = Source::open(path, &staging)?;
        let pendings = if docker::is_docker_archive(&src)? {
            docker::read(store, &src)?
        } else if src.exists("index.json") {
            oci::read(store, &src, opts)?
        } else if src.exists("repositories") {
            return Err(StoreError::Format(format!(
                "{}: a legacy docker archive (no manifest.json, Docker < 1.10) is not supported: re-save it with a current docker",
                src.label
            )));
        } else {
            return Err(StoreError::Format(format!(
                "{}: not an image archive: no manifest.json (docker-archive) or index.json (OCI layout) found",
                src.label
            )));
        };
        if pendings.is_empty() {
            return Err(StoreError::Format(format!(
                "{}: the archive holds no image",
                src.label
            )));
        }
        let staged = started.elapsed();
        let loaded: Vec<Loaded> = pendings
            .into_iter()
            .map(|p| commit(store, p))
            .collect::<Result<_>>()?;
        tracing::info!(
            source = %path.display(),
            images = loaded.len(),
            verified_ms = staged.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "loaded (blobs verified and stored, then layers applied)"
        );
        Ok(loaded)
    })();
    let _ = fsutil::remove_tree(&staging);
    result
}

/// Applies a pending image's layers and registers it.
pub fn commit(store: &Store, p: Pending<'_>) -> Result<Loaded> {
    let cfg_bytes = store.blobs.read(&p.config_digest)?;
    let cfg: ImageConfig = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| StoreError::json(format!("image config {}", p.config_digest), e))?;
    if cfg.rootfs.diff_ids.len() != p.layers.len() {
        return Err(StoreError::Format(format!(
            "image config {} lists {} diff_ids but the manifest has {} layers",
            p.config_digest,
            cfg.rootfs.diff_ids.len(),
            p.layers.len()
        )));
    }
    let news: Vec<NewLayer<'_>> = p
        .layers
        .iter()
        .zip(&cfg.rootfs.diff_ids)
        .enumerate()
        .map(|(i, ((blob, mt), diff_id))| NewLayer {
            diff_id,
            blob,
            media_type: mt,
            source: p.sources.get(i).and_then(|s| s.as_ref()).map(|f| {
                crate::split_layers::LayerSource {
                    open: f.open.as_ref(),
                    stores_blob: f.stores_blob,
                }
            }),
        })
        .collect();
    // A leased store (a pull) names the image's parts before it looks for or makes them.
    let manifest_digest = crate::digest::Digest::of(&p.manifest);
    let mut chains: Vec<crate::digest::Digest> = Vec::new();
    for d in &cfg.rootfs.diff_ids {
        chains.push(crate::digest::chain_id(chains.last(), d));
    }
    let mut named: Vec<&crate::digest::Digest> = chains.iter().collect();
    named.extend([&manifest_digest, &p.config_digest]);
    named.extend(p.layers.iter().map(|(b, _)| b));
    store.protect(&named)?;
    // Flushed before the layers' data is written, so its flush is cheap.
    let manifest = store.blobs.put(&p.manifest, "manifest", None)?;
    let chains = store.add_layers(None, &news, "layer")?;
    let mut size = 0;
    for c in &chains {
        size += store.layer(c)?.size;
    }
    let img = ImageRecord {
        id: p.config_digest.clone(),
        manifest,
        manifest_media_type: p.manifest_media_type,
        layers: chains,
        added: crate::now(),
        size,
        parent: None,
    };
    store.register_image(&img, &p.names)?;
    Ok(Loaded {
        id: img.id,
        names: p.names,
    })
}

/// `import FILE REF`: a rootfs tar (plain, gzip or zstd) becomes a one-layer image;
/// `edit` changes its runtime config (the engine applies `--change` instructions).
pub fn import_rootfs(
    store: &Store,
    file: &Path,
    reference: &str,
    edit: &dyn Fn(&mut serde_json::Value),
) -> Result<Loaded> {
    let _content = store.locks.content_shared()?;
    let name = crate::refs::normalize(reference)?;
    let f = fs::File::open(file).map_err(|e| StoreError::io("open", file, e))?;
    let mut reader = std::io::BufReader::new(f);
    let compression = crate::compress::Compression::detect(&mut reader)
        .map_err(|e| StoreError::io("read", file, e))?;
    let staged = store.blobs.stage(&mut reader)?;
    let blob = store.blobs.commit(staged, "imported rootfs", None)?;
    // The DiffID is the hash of the uncompressed stream: learn it by decompressing once.
    let (_, mut plain) = crate::compress::decompress(store.blobs.open(&blob)?)
        .map_err(|e| StoreError::io("read", file, e))?;
    let mut hw = crate::digest::HashWriter::new(std::io::sink());
    std::io::copy(&mut plain, &mut hw)
        .map_err(|e| StoreError::Format(format!("{}: not a readable tar ({e})", file.display())))?;
    let (diff_id, _, _) = hw.finish();
    let media_type = match compression {
        crate::compress::Compression::None => spec::OCI_LAYER,
        crate::compress::Compression::Gzip => spec::OCI_LAYER_GZIP,
        crate::compress::Compression::Zstd => spec::OCI_LAYER_ZSTD,
    };
    let created = crate::export::rfc3339(crate::now());
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": format!("strata import {}", file.display())}],
    });
    edit(&mut config["config"]);
    let cfg_bytes = serde_json::to_vec(&config).map_err(|e| StoreError::json("config", e))?;
    let config_digest = store.blobs.put(&cfg_bytes, "config", None)?;
    let size = store
        .blobs
        .path(&blob)
        .metadata()
        .map(|m| m.len())
        .unwrap_or(0);
    let manifest = spec::Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: spec::Descriptor {
            media_type: spec::OCI_CONFIG.into(),
            digest: config_digest.clone(),
            size: cfg_bytes.len() as u64,
            annotations: None,
            platform: None,
        },
        layers: vec![spec::Descriptor {
            media_type: media_type.into(),
            digest: blob.clone(),
            size,
            annotations: None,
            platform: None,
        }],
        annotations: None,
    };
    commit(
        store,
        Pending {
            sources: Vec::new(),
            names: vec![name],
            manifest: serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?,
            manifest_media_type: spec::OCI_MANIFEST.into(),
            config_digest,
            layers: vec![(blob, media_type.into())],
        },
    )
}
