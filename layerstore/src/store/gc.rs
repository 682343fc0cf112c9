//! Garbage collection: layers, blobs, tar-split records and lock files nothing uses,
//! with reference counts derived from the records each time.

use super::Store;
use crate::digest::Digest;
use crate::error::Result;
use crate::layers::LayerRecord;
use drivers::lock::FileLock;
use std::collections::HashSet;
use std::fs;

impl Store {
    /// Runs [`Store::gc`] when nobody holds the content lock; false (nothing done) when
    /// another operation holds it. The image records are gone either way: only the space
    /// waits.
    pub fn gc_if_free(&self) -> Result<bool> {
        match self.locks.try_content_exclusive() {
            Some(held) => {
                self.gc_held(&held)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes layers and blobs that no image or container uses. Reference counts are
    /// derived from the records each time, so a crash can never leave them wrong.
    pub fn gc(&self) -> Result<(usize, usize)> {
        // Nothing is being added meanwhile: a layer or blob not yet recorded is not garbage.
        let held = self.locks.content_exclusive()?;
        self.gc_held(&held)
    }

    /// [`Store::gc`] for a caller holding the content lock exclusively (`_held`).
    pub fn gc_held(&self, _held: &FileLock) -> Result<(usize, usize)> {
        let images = self.images.all()?;
        let mut live_layers: HashSet<Digest> = HashSet::new();
        let mut live_blobs: HashSet<Digest> = HashSet::new();
        for (_, img) in &images {
            live_layers.extend(img.layers.iter().cloned());
            live_blobs.insert(img.id.clone());
            live_blobs.insert(img.manifest.clone());
        }
        let mut live_cache: HashSet<String> = HashSet::new();
        for (_, c) in self.containers.all()? {
            live_cache.insert(c.layer.clone());
            if let Some(img) = self.images.get(c.image.hex())? {
                live_layers.extend(img.layers.iter().cloned());
            }
        }
        let mut removed_layers = 0;
        let mut records = self.layers.all()?;
        // What live leases name (a pull holds no content lock), read after each listing:
        // whatever was listed was named before it was made (see crate::leases).
        let mut leased = crate::leases::live(&self.root);
        for (_, l) in &records {
            if leased.contains(&l.chain_id.to_string()) {
                live_layers.insert(l.chain_id.clone());
            }
        }
        for (_, l) in &records {
            if live_layers.contains(&l.chain_id) {
                live_blobs.insert(l.blob.clone());
            }
        }
        // Children before parents: the longest chains first.
        records.sort_by_key(|(_, l)| std::cmp::Reverse(self.chain_depth(l)));
        for (key, l) in records {
            if live_layers.contains(&l.chain_id) {
                if let Some(id) = l.cache.get(self.driver.name()) {
                    live_cache.insert(id.clone());
                }
                continue;
            }
            if let Some(id) = l.cache.get(self.driver.name()) {
                if self.driver.exists(id) {
                    self.driver.remove(id)?;
                }
            }
            self.layers.remove(&key)?;
            let _ = fs::remove_file(self.split_path(&l.chain_id));
            removed_layers += 1;
        }
        // Driver layers no record names: left by a crash between create and record. A
        // parent is refused while its child exists, so passes repeat until none goes.
        let mut orphans: Vec<String> = Vec::new();
        let listed = self.driver.list()?;
        leased.extend(crate::leases::live(&self.root));
        for id in listed {
            if !live_cache.contains(&id)
                && !leased.contains(&id)
                && self.driver.mount_count(&id)? == 0
            {
                orphans.push(id);
            }
        }
        while !orphans.is_empty() {
            let before = orphans.len();
            orphans.retain(|id| self.driver.remove(id).is_err());
            if orphans.len() == before {
                break;
            }
        }
        // Tar-split records no layer names (a crash between the record and the layer's).
        if let Ok(entries) = fs::read_dir(self.root.join("tarsplit")) {
            let entries: Vec<_> = entries.flatten().collect();
            leased.extend(crate::leases::live(&self.root));
            for e in entries {
                let name = e.file_name();
                let known = name.to_str().is_some_and(|n| {
                    leased.contains(&format!("sha256:{n}"))
                        || self.layers.get(n).ok().flatten().is_some()
                });
                if !known {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Locks of layers that are gone (nobody holds one: every holder holds the content
        // lock, shared, or names the layer in its lease before taking its lock).
        let mut recorded: HashSet<String> = self.layers.keys()?.into_iter().collect();
        leased.extend(crate::leases::live(&self.root));
        recorded.extend(
            leased
                .iter()
                .filter_map(|l| l.strip_prefix("sha256:"))
                .map(str::to_string),
        );
        self.locks.remove_layer_locks(_held, &recorded)?;
        let mut removed_blobs = 0;
        let blobs = self.blobs.list()?;
        leased.extend(crate::leases::live(&self.root));
        for d in blobs {
            if !live_blobs.contains(&d) && !leased.contains(&d.to_string()) {
                self.blobs.remove(&d)?;
                removed_blobs += 1;
            }
        }
        Ok((removed_layers, removed_blobs))
    }

    fn chain_depth(&self, l: &LayerRecord) -> usize {
        let mut n = 0;
        let mut cur = l.parent.clone();
        while let Some(p) = cur {
            n += 1;
            cur = self
                .layers
                .get(p.hex())
                .ok()
                .flatten()
                .and_then(|r| r.parent);
            if n > 10_000 {
                break;
            }
        }
        n
    }
}
