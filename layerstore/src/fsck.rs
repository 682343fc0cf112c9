//! `fsck`: re-hashes every blob and checks every layer, image, reference and container.

use crate::compress::decompress;
use crate::digest::{chain_id, HashReader};
use crate::error::Result;
use crate::store::Store;
use std::collections::HashSet;

/// What `fsck` found. Problems make the store unhealthy; notes are harmless leftovers.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub blobs: usize,
    pub layers: usize,
    pub images: usize,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub repaired: Vec<String>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the whole store; with `repair`, drops what cannot be trusted and collects garbage.
pub fn fsck(store: &Store, repair: bool) -> Result<Report> {
    // A repair removes what it finds broken: nothing may be half-added meanwhile.
    let held = if repair {
        Some(store.locks.content_exclusive()?)
    } else {
        None
    };
    let mut r = Report::default();
    let mut bad_blobs = HashSet::new();
    for d in store.blobs.list()? {
        r.blobs += 1;
        let actual = store.blobs.rehash(&d)?;
        if actual != d {
            r.problems.push(format!(
                "blob {d} is corrupt: its content hashes to {actual}"
            ));
            bad_blobs.insert(d);
        }
    }
    let driver = store.driver.name();
    let mut bad_layers = HashSet::new();
    let mut known_cache = HashSet::new();
    let unflushed = store.journal.lines()?.iter().filter(|l| !l.done).count();
    if unflushed > 0 {
        r.notes.push(format!(
            "{unflushed} recent write(s) not flushed to disk yet (a background `strata flush` does it; they are checked after an unclean shutdown)"
        ));
    }
    for (_, l) in store.layers.all()? {
        r.layers += 1;
        if l.damaged {
            r.problems.push(format!(
                "layer {}: {}",
                l.chain_id,
                crate::flush::damaged(&l)
            ));
            bad_layers.insert(l.chain_id.clone());
        }
        if chain_id(l.parent.as_ref(), &l.diff_id) != l.chain_id {
            r.problems.push(format!(
                "layer {}: chain id does not match its parent and diff id",
                l.chain_id
            ));
            bad_layers.insert(l.chain_id.clone());
        }
        if let Some(p) = &l.parent {
            if store.layers.get(p.hex())?.is_none() {
                r.problems
                    .push(format!("layer {}: parent layer {p} is missing", l.chain_id));
                bad_layers.insert(l.chain_id.clone());
            }
        }
        if l.tar_split && !store.blobs.exists(&l.blob) {
            // Kept as files: they must give back the exact tar (checked to its end).
            match store.layer_tar(&l) {
                Ok(mut tar) => {
                    if let Err(e) = std::io::copy(&mut tar, &mut std::io::sink()) {
                        r.problems.push(format!(
                            "layer {}: its files do not give back its tar: {e}",
                            l.chain_id
                        ));
                        bad_layers.insert(l.chain_id.clone());
                    }
                }
                Err(crate::StoreError::Unsupported(why)) => r.notes.push(why),
                Err(e) => {
                    r.problems.push(format!("layer {}: {e}", l.chain_id));
                    bad_layers.insert(l.chain_id.clone());
                }
            }
        } else if !store.blobs.exists(&l.blob) || bad_blobs.contains(&l.blob) {
            r.problems.push(format!(
                "layer {}: its blob {} is missing or corrupt",
                l.chain_id, l.blob
            ));
            bad_layers.insert(l.chain_id.clone());
        } else {
            let (_, plain) = decompress(store.blobs.open(&l.blob)?)
                .map_err(|e| crate::StoreError::io("read", store.blobs.path(&l.blob), e))?;
            match HashReader::new(plain).finish() {
                Ok((d, _)) if d == l.diff_id => {}
                Ok((d, _)) => {
                    r.problems.push(format!(
                        "layer {}: blob uncompresses to {d}, not diff id {}",
                        l.chain_id, l.diff_id
                    ));
                    bad_layers.insert(l.chain_id.clone());
                }
                Err(e) => {
                    r.problems.push(format!(
                        "layer {}: blob {} does not decompress: {e}",
                        l.chain_id, l.blob
                    ));
                    bad_layers.insert(l.chain_id.clone());
                }
            }
        }
        if let Some(id) = l.cache.get(driver) {
            known_cache.insert(id.clone());
            if !store.driver.exists(id) {
                r.notes.push(format!(
                    "layer {} is not materialised in {driver} (it will be on first use)",
                    l.chain_id
                ));
            }
        }
    }
    let mut bad_images = Vec::new();
    for (key, img) in store.images.all()? {
        r.images += 1;
        let mut bad = false;
        for d in [&img.id, &img.manifest] {
            if !store.blobs.exists(d) || bad_blobs.contains(d) {
                r.problems.push(format!(
                    "image {}: blob {d} is missing or corrupt",
                    img.id.short()
                ));
                bad = true;
            }
        }
        for l in &img.layers {
            if store.layers.get(l.hex())?.is_none() || bad_layers.contains(l) {
                r.problems.push(format!(
                    "image {}: layer {l} is missing or broken",
                    img.id.short()
                ));
                bad = true;
            }
        }
        if bad {
            bad_images.push(key);
        }
    }
    for (name, id) in store.refs.load()? {
        if store.images.get(id.hex())?.is_none() {
            r.problems.push(format!(
                "reference {name} points to missing image {}",
                id.short()
            ));
        }
    }
    for (_, c) in store.containers.all()? {
        known_cache.insert(c.layer.clone());
        if c.driver == driver && !store.driver.exists(&c.layer) {
            r.problems.push(format!(
                "container {}: its read-write layer is missing",
                c.name
            ));
        }
        if store.images.get(c.image.hex())?.is_none() {
            r.problems.push(format!(
                "container {}: its image {} is missing",
                c.name,
                c.image.short()
            ));
        }
    }
    for id in store.driver.list()? {
        if !known_cache.contains(&id) {
            r.notes.push(format!("{driver} layer {id} belongs to nothing (left by an interrupted command; `fsck --repair` or `system prune` frees it)"));
        }
    }
    if repair {
        for key in bad_images {
            store.images.remove(&key)?;
            r.repaired.push(format!("removed broken image {key}"));
        }
        let removed = store.refs.update(|refs| {
            let before = refs.len();
            refs.retain(|_, id| store.images.get(id.hex()).ok().flatten().is_some());
            Ok(before - refs.len())
        })?;
        if removed > 0 {
            r.repaired
                .push(format!("removed {removed} dangling reference(s)"));
        }
        for d in &bad_blobs {
            store.blobs.remove(d)?;
        }
        let (layers, blobs) = match &held {
            Some(h) => store.gc_held(h)?,
            None => store.gc()?,
        };
        r.repaired
            .push(format!("freed {layers} layer(s) and {blobs} blob(s)"));
        // What was found is now history; what is still wrong after the repair is reported.
        let after = fsck(store, false)?;
        r.notes
            .extend(r.problems.drain(..).map(|p| format!("fixed: {p}")));
        r.problems = after.problems;
    }
    Ok(r)
}
