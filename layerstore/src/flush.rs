//! Flushing what the journal lists, and repairing what an unclean shutdown lost before
//! it was flushed (the crash model of [`crate::journal`]).

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layers::LayerRecord;
use crate::store::Store;
use drivers::LayerKind;
use std::collections::BTreeSet;

/// The error for a layer an unclean shutdown lost, saying how to get it back.
pub(crate) fn damaged(rec: &LayerRecord) -> StoreError {
    StoreError::Damaged(format!(
        "layer {} was lost in an unclean shutdown before it reached the disk, and no copy of its source was kept: load or pull the image again (`strata images` lists it; `strata fsck` shows every damaged layer)",
        rec.diff_id
    ))
}

/// What a repair found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Blobs whose content did not survive (removed).
    pub blobs_lost: Vec<Digest>,
    /// Layers applied again from their blobs, or kept as files and found whole.
    pub layers_checked: Vec<Digest>,
    /// Layers with no source left: marked damaged.
    pub layers_damaged: Vec<Digest>,
    /// Images whose config or manifest was lost: removed.
    pub images_lost: Vec<Digest>,
}

impl Store {
    /// Flushes everything written so far to disk and forgets the journal lines of the
    /// operations that had finished when the flush began. Repairs first if an earlier
    /// boot left unflushed writes.
    pub fn flush(&self) -> Result<()> {
        self.repair_unflushed()?;
        crate::journal::flush_root(&self.root)?;
        Ok(())
    }

    /// Checks what an earlier boot wrote and never flushed, before anything uses it: blobs
    /// are re-hashed (and removed when wrong), layers applied again from their blobs in
    /// place (so layers and containers above keep working), or marked damaged where no
    /// source is left. Nothing to do (the common case) costs one `stat`.
    pub fn repair_unflushed(&self) -> Result<Repair> {
        let mut report = Repair::default();
        if !self.journal.pending() || self.journal.from_earlier_boots()?.is_empty() {
            return Ok(report);
        }
        let _content = self.locks.content_exclusive()?;
        // Another process may have repaired while this one waited.
        let lines = self.journal.from_earlier_boots()?;
        if lines.is_empty() {
            return Ok(report);
        }
        tracing::warn!(
            entries = lines.len(),
            "the machine went down before recent writes reached the disk: checking them"
        );
        for d in lines.iter().filter_map(|l| l.blob.as_ref()) {
            let good = self.blobs.exists(d) && self.blobs.rehash(d).ok().as_ref() == Some(d);
            if !good {
                self.blobs.remove(d)?;
                report.blobs_lost.push(d.clone());
            }
        }
        if !report.blobs_lost.is_empty() {
            // An image whose config or manifest did not survive cannot be used at all:
            // its record and names go (loading or pulling it again brings it back).
            for (key, img) in self.images.all()? {
                if self.blobs.exists(&img.id) && self.blobs.exists(&img.manifest) {
                    continue;
                }
                tracing::warn!(image = %img.id, "image lost in the shutdown: load or pull it again");
                self.refs.update(|refs| {
                    refs.retain(|_, id| *id != img.id);
                    Ok(())
                })?;
                self.images.remove(&key)?;
                report.images_lost.push(img.id.clone());
            }
        }
        // The content lock (exclusive) keeps every layer operation out: no layer lock.
        // In the order they were written: parents before the layers above them.
        for l in &lines {
            let (Some(chain), Some(drv), Some(id)) = (&l.layer, &l.driver, &l.id) else {
                continue;
            };
            let Some(mut rec) = self.layers.get(chain.hex())? else {
                // Down before its record was written: an orphan nothing refers to.
                if drv == self.driver.name() && self.driver.exists(id) {
                    let _ = self.driver.remove(id);
                }
                continue;
            };
            if rec.cache.get(drv) != Some(id) || rec.damaged {
                continue;
            }
            if drv != self.driver.name() {
                // Another driver's copy: dropped, made again from the blob when used.
                rec.cache.remove(drv);
                self.layers.put(chain.hex(), &rec)?;
                continue;
            }
            match self.reapply(&rec, id) {
                Ok(()) => report.layers_checked.push(chain.clone()),
                Err(e) => {
                    tracing::warn!(layer = %chain, error = %e, "layer lost in the shutdown");
                    rec.damaged = true;
                    self.layers.put(chain.hex(), &rec)?;
                    report.layers_damaged.push(chain.clone());
                }
            }
        }
        self.sync_all()?;
        self.journal.forget(&BTreeSet::new(), true)?;
        tracing::warn!(?report, "repaired what the shutdown lost");
        Ok(report)
    }

    /// Applies layer `rec` again into its driver layer `id`, which keeps its id.
    fn reapply(&self, rec: &LayerRecord, id: &str) -> Result<()> {
        if rec.tar_split && !self.blobs.exists(&rec.blob) {
            // Kept as files only: they are checked, and are either whole or lost.
            let mut tar = self.layer_tar(rec).map_err(|_| damaged(rec))?;
            return std::io::copy(&mut tar, &mut std::io::sink())
                .map(|_| ())
                .map_err(|_| damaged(rec));
        }
        if !self.blobs.exists(&rec.blob) {
            return Err(damaged(rec));
        }
        if self.driver.whiteout_format().full_tree() {
            // The layer is a copy of its parent plus its changes: copied again.
            let parent_id = match &rec.parent {
                Some(p) => {
                    let prec = self.layer(p)?;
                    if prec.damaged {
                        return Err(damaged(&prec));
                    }
                    prec.cache.get(self.driver.name()).cloned()
                }
                None => None,
            };
            self.driver.remove(id)?;
            self.driver
                .create(id, parent_id.as_deref(), LayerKind::ReadOnly)?;
        } else {
            let dir = self.driver.diff_dir(id)?;
            let fd = fsutil::open_root(&dir).map_err(|e| StoreError::io("open", &dir, e))?;
            fsutil::clear_dir_at(std::os::fd::AsFd::as_fd(&fd), &|_| false)
                .map_err(|e| StoreError::io("clear", &dir, e))?;
        }
        let what = format!("layer {} (repair)", rec.chain_id);
        self.apply_blob(id, &rec.blob, &rec.diff_id, &what, None)?;
        Ok(())
    }

    /// A damaged record being made again: its old driver layer goes (best effort: layers
    /// above it may still name it) and the mark is cleared.
    pub(crate) fn forget_damaged(&self, rec: &mut LayerRecord) {
        if !rec.damaged {
            return;
        }
        if let Some(old) = rec.cache.remove(self.driver.name()) {
            let _ = self.driver.remove(&old);
        }
        rec.damaged = false;
    }
}
