//! docker-archive import: `manifest.json` with `Config`, `RepoTags` and `Layers`, as
//! written by `docker save` (classic `<id>/layer.tar`, and Docker 25's `blobs/sha256/`).

use super::source::Source;
use super::{Pending, MAX_CONFIG, MAX_MANIFEST};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::spec::{self, Descriptor, DockerArchiveEntry, Manifest};
use crate::store::Store;
use std::io::BufReader;

/// Whether the source is a docker-archive: a `manifest.json` listing at least one image.
/// Docker 25 writes both `manifest.json` and an OCI `index.json`; the former carries the
/// tags, so it wins.
pub fn is_docker_archive(src: &Source) -> Result<bool> {
    if !src.exists("manifest.json") {
        return Ok(false);
    }
    let data = src.read_small("manifest.json", "docker manifest.json", MAX_MANIFEST)?;
    match serde_json::from_slice::<Option<Vec<DockerArchiveEntry>>>(&data) {
        Ok(Some(v)) if !v.is_empty() => Ok(true),
        Ok(_) => Ok(false),
        Err(_) if src.exists("index.json") => Ok(false),
        Err(e) => Err(StoreError::json(
            format!("manifest.json in {}", src.label),
            e,
        )),
    }
}

/// A digest spelled in a member name: `blobs/sha256/<hex>`, `<hex>.json`, `sha256:<hex>`.
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let base = base.strip_suffix(".json").unwrap_or(base);
    let base = base.strip_prefix("sha256:").unwrap_or(base);
    Digest::from_hex(base).ok()
}

/// The length of member `name` when it is an uncompressed tar (no gzip or zstd magic).
fn plain_len(src: &Source, name: &str, what: &str) -> Result<Option<u64>> {
    let (r, len) = src.open_member(name, what)?;
    let mut r = BufReader::new(r);
    let c = Compression::detect(&mut r)
        .map_err(|e| StoreError::io("read", std::path::PathBuf::from(name), e))?;
    Ok((c == Compression::None).then_some(len))
}

/// Reads every image of the archive, storing and verifying its blobs.
pub(crate) fn read<'a>(store: &Store, src: &'a Source) -> Result<Vec<Pending<'a>>> {
    let data = src.read_small("manifest.json", "docker manifest.json", MAX_MANIFEST)?;
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&data)
        .map_err(|e| StoreError::json(format!("manifest.json in {}", src.label), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let (config_digest, config_size) = src.ingest(
            &store.blobs,
            &entry.config,
            "image config",
            digest_in_name(&entry.config).as_ref(),
            None,
        )?;
        if config_size > MAX_CONFIG {
            return Err(StoreError::Format(format!(
                "image config {} is too large",
                entry.config
            )));
        }
        let cfg: crate::spec::ImageConfig =
            serde_json::from_slice(&store.blobs.read(&config_digest)?)
                .map_err(|e| StoreError::json(format!("image config {}", entry.config), e))?;
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        let mut sources: Vec<Option<super::PendingSource<'a>>> = Vec::new();
        for (i, name) in entry.layers.iter().enumerate() {
            // Classic `<id>/layer.tar` ids are v1 ids, not digests; only `blobs/sha256/`
            // names are a claim to check. The DiffID check at apply covers the rest.
            let claim = name
                .starts_with("blobs/sha256/")
                .then(|| digest_in_name(name))
                .flatten();
            let what = format!("layer {}", i + 1);
            // An uncompressed layer is applied from the archive itself and kept as files
            // plus a tar-split record: its digest is its DiffID (checked as it is applied).
            if let Some(diff_id) = cfg.rootfs.diff_ids.get(i) {
                let plain = if store.blobs.exists(diff_id) {
                    None
                } else {
                    plain_len(src, name, &what)?
                };
                if let Some(size) = plain {
                    if let Some(c) = &claim {
                        if c != diff_id {
                            return Err(StoreError::DigestMismatch {
                                what: format!("{what} ({name} in {})", src.label),
                                expected: c.clone(),
                                actual: diff_id.clone(),
                            });
                        }
                    }
                    descs.push(Descriptor {
                        media_type: spec::DOCKER_LAYER.into(),
                        digest: diff_id.clone(),
                        size,
                        annotations: None,
                        platform: None,
                    });
                    layers.push((diff_id.clone(), spec::DOCKER_LAYER.to_string()));
                    let (name, what) = (name.clone(), what.clone());
                    sources.push(super::PendingSource::in_place(Box::new(move || {
                        Ok(src.open_member(&name, &what)?.0)
                    })));
                    continue;
                }
            }
            sources.push(None);
            let (digest, size) = src.ingest(&store.blobs, name, &what, claim.as_ref(), None)?;
            let mut r = BufReader::new(store.blobs.open(&digest)?);
            let mt = match Compression::detect(&mut r)
                .map_err(|e| StoreError::io("read", store.blobs.path(&digest), e))?
            {
                Compression::None => spec::DOCKER_LAYER,
                Compression::Gzip => spec::DOCKER_LAYER_GZIP,
                Compression::Zstd => spec::OCI_LAYER_ZSTD,
            };
            descs.push(Descriptor {
                media_type: mt.into(),
                digest: digest.clone(),
                size,
                annotations: None,
                platform: None,
            });
            layers.push((digest, mt.to_string()));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::DOCKER_MANIFEST.into()),
            config: Descriptor {
                media_type: spec::DOCKER_CONFIG.into(),
                digest: config_digest.clone(),
                size: config_size,
                annotations: None,
                platform: None,
            },
            layers: descs,
            annotations: None,
        };
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| crate::refs::normalize(t))
            .collect::<Result<Vec<_>>>()?;
        out.push(Pending {
            sources,
            names,
            manifest: serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest", e))?,
            manifest_media_type: spec::DOCKER_MANIFEST.into(),
            config_digest,
            layers,
        });
    }
    Ok(out)
}
