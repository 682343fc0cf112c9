//! OCI image layout import: `index.json` -> (nested indexes) -> manifests -> blobs, every
//! descriptor's digest and size checked, one platform picked from multi-platform indexes.

use super::source::Source;
use super::{LoadOptions, Pending, MAX_CONFIG, MAX_MANIFEST};
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::spec::{self, Descriptor, Index, Manifest, Platform};
use crate::store::Store;

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Stores the blob of `desc` after checking digest and size, then reads it (JSON only).
fn fetch_json(
    store: &Store,
    src: &Source,
    desc: &Descriptor,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>> {
    if desc.size > limit {
        return Err(StoreError::Format(format!(
            "{what} {} claims {} bytes, over the {limit}-byte limit: refusing it",
            desc.digest, desc.size
        )));
    }
    src.ingest(
        &store.blobs,
        &blob_name(&desc.digest),
        what,
        Some(&desc.digest),
        Some(desc.size),
    )?;
    store.blobs.read(&desc.digest)
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// Picks descriptors for `wanted`: all when none says its platform, else the matching ones.
pub fn select(descs: &[Descriptor], wanted: &Platform, label: &str) -> Result<Vec<Descriptor>> {
    let descs: Vec<&Descriptor> = descs.iter().filter(|d| !is_attestation(d)).collect();
    if descs.iter().all(|d| d.platform.is_none()) {
        return Ok(descs.into_iter().cloned().collect());
    }
    let hits: Vec<Descriptor> = descs
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .map(|d| (*d).clone())
        .collect();
    if hits.is_empty() {
        let avail: Vec<String> = descs
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect();
        return Err(StoreError::Format(format!(
            "{label}: no image for platform {wanted}; available: {} (choose one with --platform)",
            avail.join(", ")
        )));
    }
    Ok(hits)
}

fn names_of(desc: &Descriptor, hint: &str) -> Vec<String> {
    let Some(ann) = &desc.annotations else {
        return Vec::new();
    };
    if let Some(n) = ann.get(spec::CONTAINERD_NAME) {
        if let Ok(n) = crate::refs::normalize(n) {
            return vec![n];
        }
    }
    if let Some(r) = ann.get(spec::REF_NAME) {
        let full = if r.contains('/') || r.contains(':') {
            r.clone()
        } else {
            format!("{hint}:{r}")
        };
        if let Ok(n) = crate::refs::normalize(&full) {
            return vec![n];
        }
    }
    Vec::new()
}

/// Reads every image the layout's index names.
pub(crate) fn read<'a>(
    store: &Store,
    src: &'a Source,
    opts: &LoadOptions,
) -> Result<Vec<Pending<'a>>> {
    let data = src.read_small("index.json", "index.json", MAX_MANIFEST)?;
    let index: Index = serde_json::from_slice(&data)
        .map_err(|e| StoreError::json(format!("index.json in {}", src.label), e))?;
    let manifests = index.manifests.unwrap_or_default();
    if manifests.is_empty() {
        return Err(StoreError::Format(format!(
            "{}: index.json lists no manifests",
            src.label
        )));
    }
    let wanted = opts
        .platform
        .clone()
        .unwrap_or_else(Platform::default_linux);
    let mut out = Vec::new();
    for desc in select(&manifests, &wanted, &src.label)? {
        let names = names_of(&desc, &src.name_hint);
        if let Some(p) = resolve(store, src, &desc, &wanted, 0)? {
            out.push(Pending { names, ..p });
        }
    }
    Ok(out)
}

/// Follows `desc` down to one image manifest; `None` for non-image artifacts.
fn resolve<'a>(
    store: &Store,
    src: &'a Source,
    desc: &Descriptor,
    wanted: &Platform,
    depth: u32,
) -> Result<Option<Pending<'a>>> {
    if depth > 4 {
        return Err(StoreError::Format(format!(
            "{}: indexes nested too deep",
            src.label
        )));
    }
    let bytes = fetch_json(store, src, desc, "manifest", MAX_MANIFEST)?;
    let mt = if desc.media_type.is_empty() {
        let v: spec::Versioned = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::json(format!("manifest {}", desc.digest), e))?;
        v.media_type.unwrap_or_else(|| {
            if v.manifests.is_some() {
                spec::OCI_INDEX.into()
            } else {
                spec::OCI_MANIFEST.into()
            }
        })
    } else {
        desc.media_type.clone()
    };
    if spec::is_index_type(&mt) {
        let idx: Index = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::json(format!("index {}", desc.digest), e))?;
        let children = idx.manifests.unwrap_or_default();
        let label = format!("{} (index {})", src.label, desc.digest);
        let picked = select(&children, wanted, &label)?;
        return match picked.first() {
            Some(d) => resolve(store, src, d, wanted, depth + 1),
            None => Ok(None),
        };
    }
    if !spec::is_manifest_type(&mt) {
        return Err(StoreError::MediaType {
            what: format!("manifest {}", desc.digest),
            media_type: mt,
        });
    }
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::json(format!("manifest {}", desc.digest), e))?;
    let cfg_mt = m.config.media_type.as_str();
    if cfg_mt != spec::OCI_CONFIG && cfg_mt != spec::DOCKER_CONFIG {
        return Err(StoreError::MediaType {
            what: format!("config of manifest {} (not a container image)", desc.digest),
            media_type: cfg_mt.to_string(),
        });
    }
    let cfg_bytes = fetch_json(store, src, &m.config, "image config", MAX_CONFIG)?;
    let cfg: crate::spec::ImageConfig = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| StoreError::json(format!("image config {}", m.config.digest), e))?;
    let mut layers = Vec::new();
    let mut sources: Vec<Option<super::PendingSource<'a>>> = Vec::new();
    for (i, l) in m.layers.iter().enumerate() {
        if !spec::is_layer_type(&l.media_type) {
            return Err(StoreError::MediaType {
                what: format!("layer {} of manifest {}", i + 1, desc.digest),
                media_type: l.media_type.clone(),
            });
        }
        let what = format!("layer {}", i + 1);
        let size = Some(l.size);
        // An uncompressed layer (its digest is its DiffID) is applied from the layout
        // itself and kept as files plus a tar-split record, never copied as a blob.
        let plain = matches!(l.media_type.as_str(), spec::OCI_LAYER | spec::DOCKER_LAYER);
        if plain && cfg.rootfs.diff_ids.get(i) == Some(&l.digest) && !store.blobs.exists(&l.digest)
        {
            let name = blob_name(&l.digest);
            let (_, len) = src.open_member(&name, &what)?;
            if len != l.size {
                return Err(StoreError::SizeMismatch {
                    what: format!("{what} ({name} in {})", src.label),
                    expected: l.size,
                    actual: len,
                });
            }
            layers.push((l.digest.clone(), l.media_type.clone()));
            sources.push(super::PendingSource::in_place(Box::new(move || {
                Ok(src.open_member(&name, &what)?.0)
            })));
            continue;
        }
        sources.push(None);
        src.ingest(
            &store.blobs,
            &blob_name(&l.digest),
            &what,
            Some(&l.digest),
            size,
        )?;
        layers.push((l.digest.clone(), l.media_type.clone()));
    }
    Ok(Some(Pending {
        sources,
        names: Vec::new(),
        manifest: bytes,
        manifest_media_type: mt,
        config_digest: m.config.digest.clone(),
        layers,
    }))
}
