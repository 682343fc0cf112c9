//! `pull`: manifest (or index, then the platform's manifest), config, and layers, each
//! applied while it downloads ([`crate::stream`]) and verified against its digest before it
//! is stored; a dropped connection resumes with a Range request; layers already in the
//! store are not fetched. The image is registered exactly as an imported one (layers
//! applied, DiffIDs checked). Should applying while downloading fail, the layers are
//! downloaded (in parallel) and checked first, then applied.

use crate::client::{status_error, Client, Payload};
use crate::error::{RegistryError, Result};
use crate::reference::Reference;
use crate::stream::BlobStream;
use layerstore::import::{self, Loaded, Pending};
use layerstore::spec::{self, Descriptor, Index, Manifest, Platform, Versioned};
use layerstore::{Digest, Store};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Media types a pull accepts, most preferred first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Receives (layer digest, bytes done, bytes total) as layers download.
pub type Progress = Box<dyn Fn(&str, u64, u64) + Send + Sync>;

/// Options of a pull.
#[derive(Default)]
pub struct PullOptions {
    pub platform: Option<Platform>,
    pub progress: Option<Progress>,
    /// Apply each layer while it downloads (else download all, then apply).
    pub stream: bool,
}

/// Fetches manifest `target` of `repo`: its bytes, media type and digest (checked when
/// `target` is a digest). Refused above [`import::MAX_MANIFEST`].
pub fn fetch_manifest(
    client: &Client,
    repo: &str,
    target: &str,
) -> Result<(Vec<u8>, String, Digest)> {
    let path = format!("/v2/{repo}/manifests/{target}");
    let mut r = client.request(
        "GET",
        &path,
        &[("Accept", ACCEPT.to_string())],
        Payload::Empty,
    )?;
    if !r.status().is_success() {
        return Err(match status_error(&client.url(&path), &mut r) {
            RegistryError::NotFound(_) => RegistryError::NotFound(format!("{repo}:{target}")),
            e => e,
        });
    }
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let mut body = Vec::new();
    r.body_mut()
        .as_reader()
        .take(import::MAX_MANIFEST + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::io("read manifest", &path, e))?;
    if body.len() as u64 > import::MAX_MANIFEST {
        return Err(RegistryError::Protocol(format!(
            "{repo}:{target}: the manifest is over the {} MiB limit: refused",
            import::MAX_MANIFEST >> 20
        )));
    }
    let digest = Digest::of(&body);
    if target.starts_with("sha256:") && digest.to_string() != target {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest {repo}@{target}"),
            expected: target.to_string(),
            actual: digest.to_string(),
        });
    }
    let v: Versioned = serde_json::from_slice(&body).map_err(|e| {
        RegistryError::Protocol(format!("{repo}:{target}: the manifest is not JSON: {e}"))
    })?;
    let media_type = v
        .media_type
        .filter(|m| !m.is_empty())
        .unwrap_or(if ctype.is_empty() {
            if v.manifests.is_some() {
                spec::OCI_INDEX.to_string()
            } else {
                spec::OCI_MANIFEST.to_string()
            }
        } else {
            ctype
        });
    Ok((body, media_type, digest))
}

/// Fetches a small blob (a config) whole, checking its digest.
fn fetch_small(client: &Client, repo: &str, d: &Descriptor) -> Result<Vec<u8>> {
    let path = format!("/v2/{repo}/blobs/{}", d.digest);
    let mut r = client.request("GET", &path, &[], Payload::Empty)?;
    if !r.status().is_success() {
        return Err(status_error(&client.url(&path), &mut r));
    }
    let mut body = Vec::new();
    r.body_mut()
        .as_reader()
        .take(import::MAX_CONFIG + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::io("read", &path, e))?;
    let got = Digest::of(&body);
    if got != d.digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("config {}", d.digest),
            expected: d.digest.to_string(),
            actual: got.to_string(),
        });
    }
    Ok(body)
}

/// Downloads blob `d` into the store: streamed to a temp file while hashed, resumed with
/// `Range` after a cut (from the start where the registry ignores `Range`), verified, and
/// only then given its name ([`crate::stream::BlobStream`] read to its end).
pub fn fetch_blob(
    store: &Store,
    client: &Client,
    repo: &str,
    d: &Descriptor,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let started = std::time::Instant::now();
    let path = store.temp_path("pull");
    let mut s = BlobStream::new(
        client.duplicate(),
        repo,
        d,
        path.clone(),
        store.blobs.clone(),
    )
    .map_err(|e| RegistryError::io("create", path.display(), e))?
    .restartable();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => progress(s.have()),
            Err(e) => {
                return Err(s
                    .take_failure()
                    .unwrap_or_else(|| RegistryError::io("download", &d.digest, e)))
            }
        }
    }
    tracing::debug!(
        blob = %d.digest,
        bytes = s.have(),
        ms = started.elapsed().as_millis() as u64,
        "blob downloaded and verified"
    );
    Ok(())
}

/// Pulls `r` into `store` and registers it under its name.
pub fn pull(store: &Store, client: &Client, r: &Reference, opts: &PullOptions) -> Result<Loaded> {
    // A lease, not the shared content lock: a gc need not wait for a slow registry
    // (layerstore::leases).
    let store = &store.leased()?;
    let repo = &r.repository;
    let (mut body, mut media_type, mut digest) = fetch_manifest(client, repo, r.target())?;
    if spec::is_index_type(&media_type) {
        let index: Index = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Protocol(format!("{repo}: bad index: {e}")))?;
        let wanted = opts
            .platform
            .clone()
            .unwrap_or_else(Platform::default_linux);
        let picked = import::select_platform(
            &index.manifests.unwrap_or_default(),
            &wanted,
            &format!("{}/{repo}", r.registry),
        )?;
        let first = picked.first().ok_or_else(|| {
            RegistryError::Protocol(format!("{repo}: the index lists no manifest"))
        })?;
        (body, media_type, digest) = fetch_manifest(client, repo, &first.digest.to_string())?;
    }
    if !spec::is_manifest_type(&media_type) {
        return Err(RegistryError::Protocol(format!(
            "{repo}:{}: unsupported manifest type {media_type} (schema 1 and others are refused)",
            r.target()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Protocol(format!("{repo}: bad manifest: {e}")))?;
    for l in &manifest.layers {
        if !spec::is_layer_type(&l.media_type) {
            return Err(RegistryError::Protocol(format!(
                "{repo}: layer {} has unsupported media type {}",
                l.digest, l.media_type
            )));
        }
    }
    // Named before they are looked for: a gc from now on keeps them.
    let mut named = vec![&manifest.config.digest];
    named.extend(manifest.layers.iter().map(|l| &l.digest));
    store.protect(&named)?;
    if !store.blobs.exists(&manifest.config.digest) {
        let cfg = fetch_small(client, repo, &manifest.config)?;
        store
            .blobs
            .put(&cfg, "config", Some(&manifest.config.digest))?;
    }
    let pending = |sources| Pending {
        sources,
        names: r.local_name().into_iter().collect(),
        manifest: body.clone(),
        manifest_media_type: media_type.clone(),
        config_digest: manifest.config.digest.clone(),
        layers: manifest
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.media_type.clone()))
            .collect(),
    };
    // Each missing layer applied as it downloads. Should that fail (a registry that will
    // not resume, a wrong digest), nothing of it was kept: the blobs are then downloaded
    // first and checked, and the error, if any, comes from there.
    if opts.stream {
        let sources = manifest
            .layers
            .iter()
            .map(|l| {
                if store.blobs.exists(&l.digest) {
                    return None;
                }
                let open = move || -> layerstore::Result<Box<dyn Read + Send>> {
                    let path = store.temp_path("pull");
                    let s = BlobStream::new(
                        client.duplicate(),
                        repo,
                        l,
                        path.clone(),
                        store.blobs.clone(),
                    )
                    .map_err(|e| layerstore::StoreError::io("create", &path, e))?;
                    Ok(Box::new(s))
                };
                Some(import::PendingSource {
                    open: Box::new(open),
                    stores_blob: true,
                })
            })
            .collect();
        match import::commit(store, pending(sources)) {
            Ok(l) => return Ok(l),
            Err(e) => tracing::info!(
                error = %e,
                "applying layers while they download failed; downloading them first"
            ),
        }
    }
    let missing: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| !store.blobs.exists(&l.digest))
        .collect();
    let next = AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    let workers = missing.len().min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = missing.get(i) else { break };
                let tell = |done: u64| {
                    if let Some(p) = &opts.progress {
                        p(&d.digest.to_string(), done, d.size);
                    }
                };
                if let Err(e) = fetch_blob(store, client, repo, d, &tell) {
                    if let Ok(mut v) = errors.lock() {
                        v.push(e);
                    }
                }
            });
        }
    });
    if let Some(e) = errors
        .into_inner()
        .ok()
        .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
    {
        return Err(e);
    }
    let _ = digest;
    Ok(import::commit(store, pending(Vec::new()))?)
}
