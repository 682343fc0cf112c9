//! `push`: every blob the registry lacks (asked with HEAD first), mounted from another
//! repository of the same registry when strata pushed or pulled it there before, else
//! uploaded (monolithic up to [`CHUNK`], chunked above), then the manifest, byte for byte,
//! so its digest is the one the store has.

use crate::client::{status_error, Client, Payload};
use crate::error::{RegistryError, Result};
use crate::reference::Reference;
use layerstore::spec::Manifest;
use layerstore::{Digest, Store};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// Blobs above this size are uploaded in chunks of this size.
pub const CHUNK: u64 = 16 << 20;

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub uploaded: Vec<Digest>,
    pub mounted: Vec<Digest>,
    pub existing: Vec<Digest>,
    /// The manifest digest the registry reported.
    pub digest: String,
}

/// Which repository of which registry strata knows holds a blob (for cross-repo mounts):
/// `<data-root>/registry-blobs.json`.
struct KnownBlobs {
    path: PathBuf,
    map: BTreeMap<String, BTreeMap<String, String>>,
}

impl KnownBlobs {
    fn load(store: &Store) -> KnownBlobs {
        let path = store.root.join("registry-blobs.json");
        let map = std::fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        KnownBlobs { path, map }
    }

    fn repo_of(&self, registry: &str, d: &Digest) -> Option<&String> {
        self.map.get(registry)?.get(&d.to_string())
    }

    fn note(&mut self, registry: &str, d: &Digest, repo: &str) {
        self.map
            .entry(registry.to_string())
            .or_default()
            .insert(d.to_string(), repo.to_string());
    }

    fn save(&self) {
        if let Ok(data) = serde_json::to_vec(&self.map) {
            let _ = fsutil::write_replace(&self.path, &data);
        }
    }
}

fn location(r: &ureq::http::Response<ureq::Body>, url: &str) -> Result<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| RegistryError::Protocol(format!("{url}: the upload reply has no Location")))
}

fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

/// Uploads blob `d` of `size` bytes read from `file` (a stored blob, or a layer's tar
/// read back from its files; the registry checks the digest either way).
fn upload(
    client: &Client,
    mut file: Box<dyn std::io::Read + Send>,
    repo: &str,
    d: &Digest,
    size: u64,
) -> Result<()> {
    let start = format!("/v2/{repo}/blobs/uploads/");
    let mut r = client.request("POST", &start, &[], Payload::Empty)?;
    if r.status().as_u16() != 202 {
        return Err(status_error(&client.url(&start), &mut r));
    }
    let mut loc = location(&r, &start)?;
    if size > CHUNK {
        let mut offset = 0u64;
        while offset < size {
            let n = CHUNK.min(size - offset);
            let mut part = (&mut file).take(n);
            let mut r = client.request(
                "PATCH",
                &loc,
                &[
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Range", format!("{offset}-{}", offset + n - 1)),
                    ("Content-Length", n.to_string()),
                ],
                Payload::Reader(&mut part),
            )?;
            if r.status().as_u16() != 202 {
                return Err(status_error(&client.url(&loc), &mut r));
            }
            loc = location(&r, &loc)?;
            offset += n;
        }
        let url = with_query(&loc, &format!("digest={d}"));
        let mut r = client.request(
            "PUT",
            &url,
            &[("Content-Length", "0".into())],
            Payload::Empty,
        )?;
        if r.status().as_u16() != 201 {
            return Err(status_error(&client.url(&url), &mut r));
        }
    } else {
        let url = with_query(&loc, &format!("digest={d}"));
        let mut r = client.request(
            "PUT",
            &url,
            &[
                ("Content-Type", "application/octet-stream".into()),
                ("Content-Length", size.to_string()),
            ],
            Payload::Reader(&mut file),
        )?;
        if r.status().as_u16() != 201 {
            return Err(status_error(&client.url(&url), &mut r));
        }
    }
    Ok(())
}

/// Whether the registry has blob `d` in `repo`.
fn exists(client: &Client, repo: &str, d: &Digest) -> Result<bool> {
    let path = format!("/v2/{repo}/blobs/{d}");
    let mut r = client.request("HEAD", &path, &[], Payload::Empty)?;
    match r.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(status_error(&client.url(&path), &mut r)),
    }
}

/// Mounts blob `d` from repository `from` into `repo`; false when the registry would not.
fn mount(client: &Client, repo: &str, d: &Digest, from: &str) -> Result<bool> {
    let path = format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}");
    let r = client.request("POST", &path, &[], Payload::Empty)?;
    Ok(r.status().as_u16() == 201)
}

/// Pushes local image `local` as `r`.
pub fn push(store: &Store, client: &Client, local: &str, r: &Reference) -> Result<PushReport> {
    let _content = store.locks.content_shared()?;
    let img = store.resolve_image(local)?;
    let mbytes = store.blobs.read(&img.manifest)?;
    let manifest: Manifest = serde_json::from_slice(&mbytes)
        .map_err(|e| RegistryError::Protocol(format!("stored manifest {}: {e}", img.manifest)))?;
    let tag = r.tag.clone().ok_or_else(|| {
        RegistryError::BadReference(format!("{}: push needs a tag", r.repository))
    })?;
    let repo = &r.repository;
    let mut report = PushReport::default();
    let mut known = KnownBlobs::load(store);
    // Each blob with the layer it belongs to (a layer kept as files has no blob file).
    let mut blobs: Vec<(Digest, u64, Option<&Digest>)> = manifest
        .layers
        .iter()
        .zip(img.layers.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(l, chain)| (l.digest.clone(), l.size, chain))
        .collect();
    blobs.push((
        manifest.config.digest.clone(),
        manifest.config.size as u64,
        None,
    ));
    let open = |d: &Digest, chain: Option<&Digest>| -> Result<Box<dyn std::io::Read + Send>> {
        if store.blobs.exists(d) {
            return Ok(Box::new(store.blobs.open(d)?));
        }
        match chain {
            Some(c) => Ok(store.layer_tar(&store.layer(c)?)?),
            None => Ok(Box::new(store.blobs.open(d)?)),
        }
    };
    for (d, size, chain) in blobs {
        if exists(client, repo, &d)? {
            report.existing.push(d.clone());
        } else if let Some(from) = known
            .repo_of(&r.registry, &d)
            .filter(|f| *f != repo)
            .cloned()
        {
            if mount(client, repo, &d, &from)? {
                report.mounted.push(d.clone());
            } else {
                upload(client, open(&d, chain)?, repo, &d, size)?;
                report.uploaded.push(d.clone());
            }
        } else {
            upload(client, open(&d, chain)?, repo, &d, size)?;
            report.uploaded.push(d.clone());
        }
        known.note(&r.registry, &d, repo);
    }
    known.save();
    let path = format!("/v2/{repo}/manifests/{tag}");
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| img.manifest_media_type.clone());
    let mut resp = client.request(
        "PUT",
        &path,
        &[("Content-Type", media_type)],
        Payload::Bytes(&mbytes),
    )?;
    if resp.status().as_u16() != 201 {
        return Err(status_error(&client.url(&path), &mut resp));
    }
    report.digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !report.digest.is_empty() && report.digest != img.manifest.to_string() {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest pushed to {repo}:{tag}"),
            expected: img.manifest.to_string(),
            actual: report.digest.clone(),
        });
    }
    report.digest = img.manifest.to_string();
    Ok(report)
}

/// Notes that `repo` of `registry` holds the layers of a pulled manifest (for later mounts).
pub fn note_pulled(store: &Store, registry: &str, repo: &str, digests: &[Digest]) {
    let mut known = KnownBlobs::load(store);
    for d in digests {
        known.note(registry, d, repo);
    }
    known.save();
}
