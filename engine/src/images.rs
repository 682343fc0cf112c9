//! Images: load, save, import, list, tag, remove, history, inspect.

use crate::error::{Context as _, EngineError, Result};
use crate::Engine;
use layerstore::export::Format;
use layerstore::images::ImageRecord;
use layerstore::import::{self, LoadOptions, Loaded};
use layerstore::spec::Platform;
use layerstore::Store;
use serde::Serialize;
use serde_json::json;
use std::path::Path;

/// One image as `images` lists it (Docker's field names in JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoTags")]
    pub names: Vec<String>,
    /// RFC 3339, from the image config.
    #[serde(rename = "Created")]
    pub created: Option<String>,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Layers")]
    pub layers: usize,
    #[serde(rename = "ManifestDigest")]
    pub manifest_digest: String,
    /// The short id (12 hex digits).
    #[serde(skip)]
    pub short_id: String,
    /// The image config's labels.
    #[serde(skip)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One row of an image's history, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    #[serde(rename = "Created")]
    pub created: Option<String>,
    #[serde(rename = "CreatedBy")]
    pub created_by: Option<String>,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Comment")]
    pub comment: Option<String>,
}

pub use layerstore::time::parse_rfc3339;

/// A `--platform` value.
pub fn parse_platform(p: &str) -> Result<Platform> {
    Platform::parse(p).ok_or_else(|| {
        EngineError::Invalid(format!("invalid --platform {p:?}: use os/arch[/variant]"))
    })
}

/// A `save --format` value.
pub fn parse_save_format(f: &str) -> Result<Format> {
    match f {
        "docker" | "docker-archive" => Ok(Format::Docker),
        "oci" | "oci-dir" | "oci-archive" => Ok(Format::Oci),
        f => Err(EngineError::Invalid(format!(
            "invalid --format {f:?}: use docker or oci"
        ))),
    }
}

impl Engine {
    /// Loads images from a docker-archive, OCI archive or OCI layout directory.
    pub fn load(&self, input: &Path, platform: Option<Platform>) -> Result<Vec<Loaded>> {
        let store = self.store()?;
        let loaded = import::load(&store, input, &LoadOptions { platform })
            .ctx(|| format!("load {}", input.display()))?;
        for l in &loaded {
            crate::events::record(
                &store.root,
                "image",
                "load",
                &l.id.to_string(),
                &l.names.join(","),
            );
        }
        Ok(loaded)
    }

    /// Saves images as a docker-archive or an OCI layout.
    pub fn save(&self, images: &[String], out: &Path, format: Format) -> Result<()> {
        let store = self.store_ro()?;
        layerstore::export::save(&store, images, out, format)
            .ctx(|| format!("save {}", out.display()))
    }

    /// Imports a rootfs tarball as a one-layer image named `reference`.
    pub fn import(&self, file: &Path, reference: &str, changes: &[String]) -> Result<Loaded> {
        let changes = crate::build::config_change::parse_all(changes)?;
        let store = self.store()?;
        let edit = |c: &mut serde_json::Value| crate::build::config_change::apply(c, &changes);
        let l = import::import_rootfs(&store, file, reference, &edit)
            .ctx(|| format!("import {}", file.display()))?;
        crate::events::record(&store.root, "image", "import", &l.id.to_string(), reference);
        Ok(l)
    }

    /// Every image with its names, newest first, less a build's intermediate images
    /// (untagged, and the parent of another), as `docker images` lists them.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        self.list_images(false)
    }

    /// [`Engine::images`], with the intermediate images too when `all` (`images -a`).
    pub fn list_images(&self, all: bool) -> Result<Vec<ImageSummary>> {
        let store = self.store_ro()?;
        let refs = store.refs.load()?;
        let mut all_images = store.images.all()?;
        if !all {
            let parents: std::collections::HashSet<layerstore::Digest> = all_images
                .iter()
                .filter_map(|(_, i)| i.parent.clone())
                .collect();
            let named: std::collections::HashSet<&layerstore::Digest> = refs.values().collect();
            all_images.retain(|(_, i)| named.contains(&i.id) || !parents.contains(&i.id));
        }
        let mut all = all_images;
        all.sort_by_key(|(_, i)| std::cmp::Reverse(i.added));
        Ok(all
            .iter()
            .map(|(_, img)| {
                let cfg = store.image_config(img).ok();
                let labels = cfg
                    .as_ref()
                    .and_then(|c| c.config.as_ref())
                    .and_then(|c| c["Labels"].as_object().cloned())
                    .map(|m| {
                        m.into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                ImageSummary {
                    id: img.id.to_string(),
                    short_id: img.id.short().to_string(),
                    names: refs
                        .iter()
                        .filter(|(_, v)| **v == img.id)
                        .map(|(k, _)| k.clone())
                        .collect(),
                    created: cfg.and_then(|c| c.created),
                    size: img.size,
                    layers: img.layers.len(),
                    manifest_digest: img.manifest.to_string(),
                    labels,
                }
            })
            .collect())
    }

    /// Gives image `source` the name `target`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let store = self.store()?;
        store
            .tag(source, target)
            .ctx(|| format!("tag {source} {target}"))?;
        crate::events::record(&store.root, "image", "tag", source, target);
        Ok(())
    }

    /// Removes a name, or an image with all its names (refused while a container uses it);
    /// returns what was untagged and deleted, in Docker's words.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Vec<String>> {
        let store = self.store()?;
        let lines = store.rmi(reference, force)?;
        crate::events::record(&store.root, "image", "delete", reference, "");
        // The space now, unless a pull or load holds the content: then a detached
        // collector waits for it, and this answer does not.
        if !store.gc_if_free()? {
            self.gc_in_background()?;
        }
        Ok(lines)
    }

    /// The image's id (short) and its history, newest first.
    pub fn history(&self, image: &str) -> Result<(String, Vec<HistoryRow>)> {
        let store = self.store_ro()?;
        let img = store
            .resolve_image(image)
            .ctx(|| format!("history {image}"))?;
        let cfg = store.image_config(&img)?;
        let mut layers = img.layers.iter();
        let mut rows = Vec::new();
        for h in &cfg.history {
            let size = if h.empty_layer {
                0
            } else {
                match layers.next() {
                    Some(c) => store.layer(c)?.size,
                    None => 0,
                }
            };
            rows.push(HistoryRow {
                created: h.created.clone(),
                created_by: h.created_by.clone(),
                size,
                comment: h.comment.clone(),
            });
        }
        rows.reverse();
        Ok((img.id.short().to_string(), rows))
    }

    /// The `inspect` documents of `names`: a container where one has the name, else an
    /// image.
    pub fn inspect(&self, names: &[String]) -> Result<Vec<serde_json::Value>> {
        let store = self.store_ro()?;
        let mut out = Vec::new();
        for n in names {
            if let Ok(c) = store.resolve_container(n) {
                out.push(crate::containers::ContainerView::of_record(&store, c).to_json(&store)?);
                continue;
            }
            let img = store.resolve_image(n).ctx(|| format!("inspect {n}"))?;
            out.push(image_json(&store, &img)?);
        }
        Ok(out)
    }

    /// The `inspect` document of one image.
    pub fn image_json(&self, reference: &str) -> Result<serde_json::Value> {
        let store = self.store_ro()?;
        let img = store.resolve_image(reference)?;
        image_json(&store, &img)
    }
}

/// The document `inspect` prints for an image, shaped like Docker's.
fn image_json(store: &Store, img: &ImageRecord) -> Result<serde_json::Value> {
    let cfg_raw: serde_json::Value = serde_json::from_slice(&store.blobs.read(&img.id)?)?;
    let cfg = store.image_config(img)?;
    let tags = store.refs.of(&img.id)?;
    let digests: Vec<String> = tags
        .iter()
        .map(|t| format!("{}@{}", layerstore::refs::split(t).0, img.manifest))
        .collect();
    let top = match img.layers.last() {
        Some(c) => store.layer(c)?.cache.get(store.driver.name()).cloned(),
        None => None,
    };
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": cfg.created,
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": img.size,
        "Config": cfg_raw.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "RootFS": {"Type": "layers", "Layers": cfg.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Manifest": {"Digest": img.manifest.to_string(), "MediaType": img.manifest_media_type},
        "GraphDriver": {"Name": store.driver.name(), "Data": {"Layer": top}},
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_rfc3339() {
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(super::parse_rfc3339("bad"), None);
    }
}
