//! Layers: their records, making a layer's driver copy from its blob (one lock per
//! ChainID), adding a stack of layers in parallel where the driver allows, and writing a
//! layer's changes as a tar.

use super::{NewLayer, Store};
use crate::digest::{chain_id, Digest};
use crate::error::{Result, StoreError};
use crate::flush::damaged;
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use crate::tarfs::view::Gate;
use crate::tarfs::{apply_layer_onto, ApplyError, Target};
use drivers::LayerKind;
use std::path::Path;

impl Store {
    /// The record of layer `chain`.
    pub fn layer(&self, chain: &Digest) -> Result<LayerRecord> {
        self.layers.get(chain.hex())?.ok_or_else(|| {
            StoreError::Format(format!(
                "layer {chain} is not in the store: the store needs checking (fsck)"
            ))
        })
    }

    /// The driver id of layer `chain`, materialising it (and its parents) in the active
    /// driver from their blobs when this driver does not have it yet.
    pub fn ensure_layer(&self, chain: &Digest) -> Result<String> {
        self.check_chain(chain)?;
        if let Some(id) = self.cached_layer(chain)? {
            return Ok(id);
        }
        // This layer and the ones below it the driver lacks, locked bottom-up.
        let mut missing = vec![chain.clone()];
        let mut cur = self.layer(chain)?.parent;
        while let Some(c) = cur {
            if self.cached_layer(&c)?.is_some() || missing.len() > 10_000 {
                break;
            }
            cur = self.layer(&c)?.parent;
            missing.push(c);
        }
        missing.reverse();
        let _held = self.locks.layers(&missing)?;
        self.ensure_layer_held(chain)
    }

    /// Refuses a chain with a layer an unclean shutdown damaged (its own or one below).
    pub fn check_chain(&self, chain: &Digest) -> Result<()> {
        let mut cur = Some(chain.clone());
        let mut n = 0;
        while let Some(c) = cur {
            let rec = self.layer(&c)?;
            if rec.damaged {
                return Err(damaged(&rec));
            }
            cur = rec.parent;
            n += 1;
            if n > 10_000 {
                break;
            }
        }
        Ok(())
    }

    /// The active driver's layer of `chain`, if it has one.
    fn cached_layer(&self, chain: &Digest) -> Result<Option<String>> {
        let rec = self.layer(chain)?;
        Ok(rec
            .cache
            .get(self.driver.name())
            .filter(|id| self.driver.exists(id))
            .cloned())
    }

    /// [`Store::ensure_layer`] with the locks of `chain` and of the layers below it that
    /// the driver lacks held.
    fn ensure_layer_held(&self, chain: &Digest) -> Result<String> {
        let rec = self.layer(chain)?;
        if rec.damaged {
            return Err(damaged(&rec));
        }
        if let Some(id) = rec.cache.get(self.driver.name()) {
            if self.driver.exists(id) {
                return Ok(id.clone());
            }
        }
        let parent_id = match &rec.parent {
            Some(p) => Some(self.ensure_layer_held(p)?),
            None => None,
        };
        if rec.tar_split && !self.blobs.exists(&rec.blob) {
            return Err(StoreError::Unsupported(format!(
                "layer {} is kept as the files of another storage driver ({}) and this one ({}) has no copy: move the store with `strata migrate`, or load the image again",
                rec.chain_id,
                rec.cache.keys().cloned().collect::<Vec<_>>().join(", "),
                self.driver.name()
            )));
        }
        let what = format!("layer {}", rec.chain_id);
        let (id, _) = self.materialize(&rec.blob, &rec.diff_id, parent_id.as_deref(), &what)?;
        let mut rec = rec;
        self.journal
            .note_layer(&rec.chain_id, self.driver.name(), &id)?;
        rec.cache.insert(self.driver.name().to_string(), id.clone());
        self.layers.put(rec.chain_id.hex(), &rec)?;
        Ok(id)
    }

    /// Applies `blob` into the (new, empty) driver layer `id` over the layers below it,
    /// checking the DiffID. `gate` waits for layers below still being applied.
    pub(crate) fn apply_blob(
        &self,
        id: &str,
        blob: &Digest,
        diff_id: &Digest,
        what: &str,
        gate: Option<Gate<'_>>,
    ) -> Result<crate::tarfs::ApplyResult> {
        let f = self.blobs.open(blob)?;
        let from = format!("uncompressed content of blob {blob}");
        self.apply_stream(id, f, diff_id, what, &from, gate, None)
    }

    /// Applies the layer tar read from `r` (`from` names it in errors) into the (new,
    /// empty) driver layer `id` over the layers below it, checking the DiffID; records a
    /// tar-split at `split_to` when given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_stream<R: std::io::Read + Send>(
        &self,
        id: &str,
        r: R,
        diff_id: &Digest,
        what: &str,
        from: &str,
        gate: Option<Gate<'_>>,
        split_to: Option<&Path>,
    ) -> Result<crate::tarfs::ApplyResult> {
        let started = std::time::Instant::now();
        let dir = self.driver.diff_dir(id)?;
        let lowers = self.driver.lower_dirs(id)?;
        let target = Target {
            root: &dir,
            format: self.driver.whiteout_format(),
            lowers: &lowers,
            gate,
            split_to,
        };
        let res = apply_layer_onto(r, &target, &self.limits)?;
        tracing::debug!(
            layer = what,
            entries = res.entries,
            bytes = res.data_size,
            lowers = lowers.len(),
            ms = started.elapsed().as_millis() as u64,
            "layer applied"
        );
        if res.diff_id != *diff_id {
            return Err(StoreError::DigestMismatch {
                what: format!("{what}: {from} (config rootfs.diff_ids)"),
                expected: diff_id.clone(),
                actual: res.diff_id,
            });
        }
        Ok(res)
    }

    /// Flushes the data root's filesystem and the driver's (one syncfs each covers
    /// every blob and applied layer written so far).
    pub(crate) fn sync_all(&self) -> Result<()> {
        // The driver's home is a folder of the data root (on its filesystem, or mounted
        // there): one walk covers both.
        crate::journal::sync_tree(&self.root)
    }

    /// Creates a driver layer on `parent` and applies `blob` into it, checking the DiffID,
    /// and flushes it. On any failure the half-applied layer is removed, so it is never visible.
    fn materialize(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        parent: Option<&str>,
        what: &str,
    ) -> Result<(String, crate::tarfs::ApplyResult)> {
        let id = crate::random_id();
        self.note_created(&id)?;
        self.driver.create(&id, parent, LayerKind::ReadOnly)?;
        let result = self.apply_blob(&id, blob, diff_id, what, None);
        match result {
            Ok(res) => Ok((id, res)),
            Err(e) => {
                let _ = self.driver.remove(&id);
                Err(e)
            }
        }
    }

    /// Registers the layer `diff_id` on `parent` from blob `blob` (already stored),
    /// applying it in the active driver. Returns the ChainID. Existing layers are reused.
    pub fn add_layer(
        &self,
        parent: Option<&Digest>,
        diff_id: &Digest,
        blob: &Digest,
        media_type: &str,
        what: &str,
    ) -> Result<Digest> {
        let layer = NewLayer {
            diff_id,
            blob,
            media_type,
            source: None,
        };
        let chains = self.add_layers(parent, std::slice::from_ref(&layer), what)?;
        Ok(chains
            .into_iter()
            .next()
            .unwrap_or_else(|| chain_id(parent, diff_id)))
    }

    /// Registers layer `l` on `parent` from its stored blob without applying it in the
    /// driver: the blob is the durable copy, and the driver's copy is made on first use
    /// ([`Store::ensure_layer`]). `commit` uses this, so it costs one tar write and no
    /// second pass over the files. `tar_size` and `size` are the tar's and its files' bytes.
    pub fn register_layer(
        &self,
        parent: Option<&Digest>,
        l: NewLayer<'_>,
        tar_size: u64,
        size: u64,
    ) -> Result<Digest> {
        let chain = chain_id(parent, l.diff_id);
        let _held = self.locks.layer(&chain)?;
        if self.layers.get(chain.hex())?.is_none() {
            let rec = LayerRecord {
                chain_id: chain.clone(),
                diff_id: l.diff_id.clone(),
                parent: parent.cloned(),
                blob: l.blob.clone(),
                media_type: l.media_type.to_string(),
                tar_size,
                size,
                cache: Default::default(),
                damaged: false,
                tar_split: false,
            };
            self.layers.put(chain.hex(), &rec)?;
        }
        Ok(chain)
    }

    /// Registers a chain of layers on `parent`, bottom-up; returns their ChainIDs. Layers
    /// the driver already has are reused. Where a driver's layers are independent
    /// directories (overlay2), all new layers are applied in parallel; where each layer is a
    /// copy of its parent (vfs), one after the other. One flush covers them all, then the
    /// records are written in order; on any failure every new driver layer is removed.
    pub fn add_layers(
        &self,
        parent: Option<&Digest>,
        layers: &[NewLayer<'_>],
        what: &str,
    ) -> Result<Vec<Digest>> {
        if parent.is_none() && layers.len() > self.limits.max_layers {
            return Err(ApplyError::Limit(format!(
                "the image has {} layers, over the limit of {} (daemon.json max-image-layers)",
                layers.len(),
                self.limits.max_layers
            ))
            .into());
        }
        let full_tree = self.driver.whiteout_format().full_tree();
        // Each layer to make is made and recorded under its own lock, so two loads sharing
        // layers never make one twice while loads of other layers go on; a load whose
        // layers all exist already takes no lock.
        let all_chains: Vec<Digest> = {
            let mut pc = parent.cloned();
            layers
                .iter()
                .map(|l| {
                    let c = chain_id(pc.as_ref(), l.diff_id);
                    pc = Some(c.clone());
                    c
                })
                .collect()
        };
        let mut first_missing = None;
        for (i, chain) in all_chains.iter().enumerate() {
            let ok = self.layers.get(chain.hex())?.is_some_and(|r| {
                !r.damaged
                    && r.cache
                        .get(self.driver.name())
                        .is_some_and(|id| self.driver.exists(id))
            });
            if !ok {
                first_missing = Some(i);
                break;
            }
        }
        // The layer below the first one made, ready before this stack's locks are taken
        // (bottom-up: its own locks come first).
        let parent_ready = match (first_missing, parent) {
            (Some(0), Some(p)) => Some(self.ensure_layer(p)?),
            _ => None,
        };
        let _held = match first_missing {
            Some(i) => self.locks.layers(&all_chains[i..])?,
            None => Vec::new(),
        };
        let mut chains = Vec::with_capacity(layers.len());
        let mut created: Vec<(usize, String)> = Vec::new();
        let mut results: Vec<Option<Result<crate::tarfs::ApplyResult>>> = Vec::new();
        let mut parent_chain = parent.cloned();
        let mut parent_id: Option<String> = None;
        let cleanup = |created: &[(usize, String)]| {
            for (_, id) in created.iter().rev() {
                let _ = self.driver.remove(id);
            }
        };
        for (i, l) in layers.iter().enumerate() {
            let chain = chain_id(parent_chain.as_ref(), l.diff_id);
            // Above a layer made now (a damaged one made again), every layer is made
            // again too: the old ones are stacked on the old, damaged copy.
            let existing = self
                .layers
                .get(chain.hex())?
                .filter(|r| !r.damaged && created.is_empty())
                .and_then(|r| r.cache.get(self.driver.name()).cloned())
                .filter(|id| self.driver.exists(id));
            match existing {
                Some(id) => parent_id = Some(id),
                None => {
                    let pid = match (&parent_id, &parent_chain) {
                        (Some(id), _) => Some(id.clone()),
                        (None, Some(pc)) => match &parent_ready {
                            Some(id) => Some(id.clone()),
                            None => Some(self.ensure_layer(pc)?),
                        },
                        (None, None) => None,
                    };
                    let id = crate::random_id();
                    if let Err(e) = self.note_created(&id).and_then(|()| {
                        Ok(self
                            .driver
                            .create(&id, pid.as_deref(), LayerKind::ReadOnly)?)
                    }) {
                        cleanup(&created);
                        return Err(e);
                    }
                    created.push((i, id.clone()));
                    let what = format!("{what} {}/{}", i + 1, layers.len());
                    if full_tree {
                        // The next layer copies this one: apply it now.
                        let r = self.apply_new(&id, l, &chain, &what, None);
                        if let Err(e) = r {
                            cleanup(&created);
                            return Err(e);
                        }
                        self.report("Applying layers", i + 1, layers.len());
                        results.push(Some(r));
                    } else {
                        results.push(None);
                    }
                    parent_id = Some(id);
                }
            }
            chains.push(chain.clone());
            parent_chain = Some(chain);
        }
        if !full_tree && !created.is_empty() {
            // Each layer is applied over the ones below; it waits for them only when it
            // first needs to look below (most layers never do until a whiteout).
            let finished = LayerGates::new(created.len());
            let next = std::sync::atomic::AtomicUsize::new(0);
            let done = std::sync::atomic::AtomicUsize::new(0);
            let slots: Vec<std::sync::Mutex<Option<Result<crate::tarfs::ApplyResult>>>> = created
                .iter()
                .map(|_| std::sync::Mutex::new(None))
                .collect();
            let workers = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(created.len());
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((i, id)) = created.get(k) else { break };
                        let l = &layers[*i];
                        let gate = || finished.wait_below(k);
                        let r = self.apply_new(
                            id,
                            l,
                            &chains[*i],
                            &format!("{what} {}/{}", i + 1, layers.len()),
                            Some(&gate),
                        );
                        finished.done(k, r.is_ok());
                        if let Ok(mut slot) = slots[k].lock() {
                            *slot = Some(r);
                        }
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        self.report("Applying layers", n, created.len());
                    });
                }
            });
            results = slots
                .into_iter()
                .map(|m| m.into_inner().ok().flatten())
                .collect();
        }
        let mut applied = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Some(Ok(res)) => applied.push(res),
                Some(Err(e)) => {
                    cleanup(&created);
                    return Err(e);
                }
                None => {
                    cleanup(&created);
                    return Err(StoreError::Format(format!(
                        "{what}: a layer was not applied"
                    )));
                }
            }
        }
        for ((i, id), res) in created.into_iter().zip(applied) {
            let l = &layers[i];
            let chain = &chains[i];
            let mut rec = self.layers.get(chain.hex())?.unwrap_or(LayerRecord {
                chain_id: chain.clone(),
                diff_id: l.diff_id.clone(),
                parent: if i == 0 {
                    parent.cloned()
                } else {
                    Some(chains[i - 1].clone())
                },
                blob: l.blob.clone(),
                media_type: l.media_type.to_string(),
                tar_size: res.tar_size,
                size: res.data_size,
                cache: Default::default(),
                damaged: false,
                tar_split: false,
            });
            self.forget_damaged(&mut rec);
            // Kept as files only when no blob is stored for it (an earlier image may have
            // brought the blob).
            rec.tar_split = res.split == Some(true) && !self.blobs.exists(&rec.blob);
            // Flushed later: the journal line goes first, so a crash before the flush
            // has this layer checked before use.
            self.journal.note_layer(chain, self.driver.name(), &id)?;
            rec.cache.insert(self.driver.name().to_string(), id);
            self.layers.put(chain.hex(), &rec)?;
        }
        Ok(chains)
    }

    /// Writes the changes of driver layer `layer` as a layer tar to `out`, read from the
    /// driver's own copy of them where it has one, else from a mount (released after).
    /// Returns `out` and the bytes of file content written; `path` names `out` in errors.
    pub fn write_layer_changes<W: std::io::Write>(
        &self,
        layer: &str,
        out: W,
        path: &Path,
    ) -> Result<(W, u64)> {
        self.write_layer_changes_with(layer, out, path, crate::tarfs::WriteOptions::default())
    }

    /// [`Store::write_layer_changes`] with the tar's options (a build's clamped times and
    /// parent directories); the private xattrs are the driver's.
    pub fn write_layer_changes_with<W: std::io::Write>(
        &self,
        layer: &str,
        out: W,
        path: &Path,
        opts: crate::tarfs::WriteOptions,
    ) -> Result<(W, u64)> {
        let (changes, source) = self.driver.changes_with_source(layer)?;
        self.write_changes(layer, &changes, source, out, path, opts)
    }

    /// Writes `changes` of driver layer `layer` (from [`drivers::Driver::changes_with_source`])
    /// as a layer tar to `out`.
    pub fn write_changes<W: std::io::Write>(
        &self,
        layer: &str,
        changes: &[drivers::Change],
        source: Option<drivers::ChangesSource>,
        out: W,
        path: &Path,
        mut opts: crate::tarfs::WriteOptions,
    ) -> Result<(W, u64)> {
        let (root, mounted) = match source {
            Some(s) => {
                opts.private_xattrs = s.private_xattrs;
                (s.dir, false)
            }
            None => (self.driver.get(layer)?, true),
        };
        let written = crate::tarfs::write_layer_sized(&root, changes, out, &opts);
        if mounted {
            self.driver.put(layer)?;
        }
        written.map_err(|e| StoreError::io("write layer changes", path, e))
    }

    /// Writes the image record and points `names` at it: the last step of any import, so a
    /// crash before it leaves no half-loaded image visible.
    pub fn register_image(&self, img: &ImageRecord, names: &[String]) -> Result<()> {
        let held = self.locks.records()?;
        self.images.put(img.id.hex(), img)?;
        self.refs.update_held(&held, |all| {
            for n in names {
                all.insert(n.clone(), img.id.clone());
            }
            Ok(())
        })
    }
}

/// Which layers of a parallel apply have finished, so a layer can wait for the ones below.
struct LayerGates {
    state: std::sync::Mutex<Vec<Option<bool>>>,
    changed: std::sync::Condvar,
}

impl LayerGates {
    fn new(n: usize) -> LayerGates {
        LayerGates {
            state: std::sync::Mutex::new(vec![None; n]),
            changed: std::sync::Condvar::new(),
        }
    }

    /// Layer `k` is done, applied or failed.
    fn done(&self, k: usize, ok: bool) {
        if let Ok(mut s) = self.state.lock() {
            s[k] = Some(ok);
        }
        self.changed.notify_all();
    }

    /// Waits until every layer below `k` is applied; an error when one of them failed.
    fn wait_below(&self, k: usize) -> std::io::Result<()> {
        let poisoned = || std::io::Error::other("a thread applying layers panicked");
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if s[..k].contains(&Some(false)) {
                return Err(std::io::Error::other(
                    "a layer below this one failed to apply",
                ));
            }
            if s[..k].iter().all(|x| *x == Some(true)) {
                return Ok(());
            }
            s = self.changed.wait(s).map_err(|_| poisoned())?;
        }
    }
}
