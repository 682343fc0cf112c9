//! Images and their names: resolving a reference, tagging, removing (`rmi`), registering a
//! new image's record and names.

use super::Store;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::refs::{self};
use crate::spec::ImageConfig;

impl Store {
    /// Finds an image by `name[:tag]`, `name@sha256:<manifest digest>`, full or short id.
    pub fn resolve_image(&self, reference: &str) -> Result<ImageRecord> {
        let not_found = || StoreError::NoSuchImage(reference.to_string());
        if let Some((_, digest)) = reference.split_once('@') {
            let d: Digest = digest.parse()?;
            for (_, img) in self.images.all()? {
                if img.manifest == d || img.id == d {
                    return Ok(img);
                }
            }
            return Err(not_found());
        }
        if let Ok(d) = reference.parse::<Digest>() {
            return self.images.get(d.hex())?.ok_or_else(not_found);
        }
        if let Ok(norm) = refs::normalize(reference) {
            if let Some(id) = self.refs.load()?.get(&norm) {
                return self.images.get(id.hex())?.ok_or_else(not_found);
            }
        }
        let hexpart = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hexpart.len() >= 4 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<String> = self
                .images
                .keys()?
                .into_iter()
                .filter(|k| k.starts_with(hexpart))
                .collect();
            match hits.len() {
                1 => return self.images.get(&hits[0])?.ok_or_else(not_found),
                0 => {}
                _ => {
                    return Err(StoreError::Ambiguous(format!(
                        "image id prefix {reference} is ambiguous: give more digits"
                    )))
                }
            }
        }
        Err(not_found())
    }

    /// The parsed config of an image.
    pub fn image_config(&self, img: &ImageRecord) -> Result<ImageConfig> {
        let data = self.blobs.read(&img.id)?;
        serde_json::from_slice(&data).map_err(|e| StoreError::json(format!("config {}", img.id), e))
    }

    /// Tags image `src` as `dst`.
    pub fn tag(&self, src: &str, dst: &str) -> Result<()> {
        let img = self.resolve_image(src)?;
        let norm = refs::normalize(dst)?;
        self.refs.set(&norm, &img.id)
    }

    /// Removes a reference, or an image with all its references. Refused while a container
    /// uses the image unless `force`. Frees nothing: the caller collects after
    /// ([`Store::gc_if_free`], so a pull of another image does not make it wait).
    /// Returns what was untagged and what was deleted, in Docker's words.
    pub fn rmi(&self, reference: &str, force: bool) -> Result<Vec<String>> {
        let img = self.resolve_image(reference)?;
        let by_name = refs::normalize(reference).ok();
        let held = self.locks.records()?;
        let untagged = self.refs.update_held(&held, |all| {
            let tags = all.values().filter(|v| **v == img.id).count();
            match by_name.as_ref().filter(|n| all.contains_key(*n)) {
                Some(name) if tags > 1 && !force => {
                    all.remove(name);
                    Ok(Some(vec![format!("Untagged: {name}")]))
                }
                _ => Ok(None),
            }
        })?;
        if let Some(out) = untagged {
            return Ok(out);
        }
        // Checked and removed in one critical section with container creation, so no
        // container is made on an image being deleted.
        let users: Vec<String> = self
            .containers
            .all()?
            .into_iter()
            .filter(|(_, c)| c.image == img.id)
            .map(|(_, c)| c.name)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::InUse(format!(
                "image {} is used by container(s) {}: remove them first (strata rm)",
                img.id.short(),
                users.join(", ")
            )));
        }
        let mut out = self.refs.update_held(&held, |all| {
            let tags: Vec<String> = all
                .iter()
                .filter(|(_, v)| **v == img.id)
                .map(|(k, _)| k.clone())
                .collect();
            for t in &tags {
                all.remove(t);
            }
            Ok(tags
                .into_iter()
                .map(|t| format!("Untagged: {t}"))
                .collect::<Vec<_>>())
        })?;
        self.images.remove(img.id.hex())?;
        out.push(format!("Deleted: {}", img.id));
        // A build's intermediate images go with the last image made from them, as Docker
        // deletes untagged parents: each while it has no name, no container and no other
        // child.
        let mut parent = img.parent.clone();
        while let Some(p) = parent.take() {
            let Some(rec) = self.images.get(p.hex())? else {
                break;
            };
            let named = self.refs.load()?.values().any(|v| *v == p);
            let used = self.containers.all()?.iter().any(|(_, c)| c.image == p);
            let has_child = self
                .images
                .all()?
                .iter()
                .any(|(_, i)| i.parent.as_ref() == Some(&p));
            if named || used || has_child {
                break;
            }
            self.images.remove(p.hex())?;
            out.push(format!("Deleted: {p}"));
            parent = rec.parent;
        }
        Ok(out)
    }
}
