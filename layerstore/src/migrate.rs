//! `migrate`: moves every image layer and every (stopped) container's read-write layer from
//! one driver to another, any to any.
//!
//! Image layers are applied again in the target from their blobs, so their DiffIDs are
//! checked as on any import. A container's changes are carried as a layer tar made from the
//! source driver's diff and applied onto the image in the target; its whole mounted view is
//! compared entry by entry (type, mode, owner, times, content, links, xattrs) before and
//! after. Crash-safe and resumable: the data root's `driver` file keeps naming the source
//! driver until everything is in the target, so an interrupted run leaves a store that works
//! as before, and running it again continues (layers already moved are reused). The source
//! driver's data is removed only with `prune`.

use crate::error::{Result, StoreError};
use crate::store::{Store, ACTIVE_DRIVER_FILE};
use drivers::{DriverOptions, LayerKind};
use fsutil::{tree_manifest, write_atomic};
use std::collections::BTreeSet;
use std::io::{BufWriter, Write};

/// What a migration moves.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub from: String,
    pub to: String,
    /// Image layers (ChainIDs) the target does not have yet.
    pub layers: Vec<crate::Digest>,
    /// Containers (names) whose read-write layer moves.
    pub containers: Vec<String>,
    /// Bytes the target will need (layer data plus container changes).
    pub bytes: u64,
}

/// Works out what moving from the store's driver to `to` involves.
pub fn plan(store: &Store, to: &str) -> Result<Plan> {
    let from = store.driver.name().to_string();
    let mut chains = BTreeSet::new();
    for (_, img) in store.images.all()? {
        chains.extend(img.layers.iter().cloned());
    }
    let mut p = Plan {
        from: from.clone(),
        to: to.to_string(),
        ..Default::default()
    };
    for c in chains {
        let rec = store.layer(&c)?;
        if !rec.cache.contains_key(to) {
            p.bytes += rec.size;
            p.layers.push(c);
        }
    }
    for (_, c) in store.containers.all()? {
        if c.driver == from {
            if store.driver.exists(&c.layer) {
                p.bytes += store.driver.diff_size(&c.layer).unwrap_or(0);
            }
            p.containers.push(c.name);
        }
    }
    Ok(p)
}

/// Moves everything to driver `to` (see the module docs). `running` are containers that
/// must be stopped first; the migration is refused while there are any.
pub fn migrate(
    store: &mut Store,
    to: &str,
    opts: &DriverOptions,
    running: &[String],
    prune: bool,
) -> Result<Plan> {
    // Nothing is added or freed by anyone else while layers move.
    let _content = store.locks.content_exclusive()?;
    // A pull holds a lease, not the content lock: it may be applying layers into the
    // driver being left.
    if crate::leases::held(&store.root) {
        return Err(StoreError::InUse(
            "a pull is under way: migrate once it has finished".into(),
        ));
    }
    let from = store.driver.name().to_string();
    if from == to {
        return Err(StoreError::Invalid(format!("the store already uses {to}")));
    }
    if !running.is_empty() {
        return Err(StoreError::InUse(format!(
            "containers are running: {}: stop them first (strata stop)",
            running.join(", ")
        )));
    }
    let target: std::sync::Arc<dyn drivers::Driver> =
        drivers::open(to, &store.root.join(to), opts)?.into();
    let p = plan(store, to)?;
    let pin = store.root.join(ACTIVE_DRIVER_FILE);
    write_atomic(&pin, from.as_bytes()).map_err(|e| StoreError::io("write", &pin, e))?;

    // 1. Each container's changes as a tar, and its view, from the source driver.
    let work = store.temp_dir()?;
    let mut moves = Vec::new();
    for (_, c) in store.containers.all()? {
        if c.driver != from || !store.driver.exists(&c.layer) {
            continue;
        }
        let tar = work.join(format!("{}.tar", c.id));
        let f = std::fs::File::create(&tar).map_err(|e| StoreError::io("create", &tar, e))?;
        let (w, _) = store.write_layer_changes(&c.layer, BufWriter::new(f), &tar)?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.flush())
            .map_err(|e| StoreError::io("write container changes", &tar, e))?;
        let view = store.driver.get(&c.layer)?;
        let before = tree_manifest(&view);
        store.driver.put(&c.layer)?;
        let before = before.map_err(|e| StoreError::io("read", &view, e))?;
        moves.push((c, tar, before));
    }

    // 2. Image layers, applied in the target from their blobs (DiffIDs checked). A layer
    //    kept as the source driver's files gets its blob first, read back from them.
    for chain in &p.layers {
        let rec = store.layer(chain)?;
        store.keep_blob(&rec)?;
    }
    let source = std::mem::replace(&mut store.driver, target);
    let result = (|| -> Result<()> {
        let n = p.layers.len();
        for (i, chain) in p.layers.iter().enumerate() {
            store.ensure_layer(chain)?;
            store.report_progress("Migrating layers", i + 1, n);
        }
        // 3. Containers: their layer on the image's top layer, their changes applied, their
        //    view compared with the one they had.
        for (c, tar, before) in &moves {
            let img = store
                .images
                .get(c.image.hex())?
                .ok_or_else(|| StoreError::NoSuchImage(c.image.to_string()))?;
            let parent = match img.layers.last() {
                Some(top) => Some(store.ensure_layer(top)?),
                None => None,
            };
            if store.driver.exists(&c.layer) {
                store.driver.remove(&c.layer)?; // left by an interrupted run
            }
            store
                .driver
                .create(&c.layer, parent.as_deref(), LayerKind::ReadWrite)?;
            let f = std::fs::File::open(tar).map_err(|e| StoreError::io("open", tar, e))?;
            crate::tarfs::apply_to_layer(f, store.driver.as_ref(), &c.layer, &store.limits)?;
            let view = store.driver.get(&c.layer)?;
            let after = tree_manifest(&view);
            store.driver.put(&c.layer)?;
            let after = after.map_err(|e| StoreError::io("read", &view, e))?;
            if &after != before {
                let diff: Vec<&String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|k| before.get(*k) != after.get(*k))
                    .take(5)
                    .collect();
                return Err(StoreError::Format(format!(
                    "container {}: its files differ after the move ({diff:?}); nothing was switched, the store still uses {from}",
                    c.name
                )));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        store.driver = source;
        let _ = fsutil::remove_tree(&work);
        return Err(e);
    }
    // 4. Switch: containers' records, then the driver in use.
    for (c, _, _) in &moves {
        let mut c = c.clone();
        c.driver = to.to_string();
        store.containers.put(&c.id, &c)?;
    }
    write_atomic(&pin, to.as_bytes()).map_err(|e| StoreError::io("write", &pin, e))?;
    let _ = fsutil::remove_tree(&work);
    // 5. The source driver's data, only when asked.
    if prune {
        let mut left = source.list()?;
        while !left.is_empty() {
            let before = left.len();
            left.retain(|id| source.remove(id).is_err());
            if left.len() == before {
                break;
            }
        }
        let home = source.home().to_path_buf();
        let _ = source.cleanup();
        drop(source);
        if left.is_empty() {
            let _ = fsutil::remove_tree(&home);
        }
        for (_, mut l) in store.layers.all()? {
            if l.cache.remove(&from).is_some() {
                store.layers.put(l.chain_id.hex(), &l)?;
            }
        }
    }
    Ok(p)
}
