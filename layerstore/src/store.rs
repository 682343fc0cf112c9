//! The store: one data root, one active driver, and the records that tie them together.
//!
//! Layout: `blobs/sha256/<hex>`, `layers/<chain hex>.json`, `images/<config hex>.json`,
//! `refs.json`, `containers/<id>.json`, `tmp/`, and one folder per driver. Metadata does not
//! depend on the driver, so a driver change never loses an image.

use crate::blobs::BlobStore;
use crate::containers::ContainerRecord;
use crate::digest::{chain_id, Digest};
use crate::error::{Result, StoreError};
use crate::flush::damaged;
use crate::images::ImageRecord;
use crate::journal::Journal;
use crate::layers::LayerRecord;
use crate::locks::StoreLocks;
use crate::records::JsonDir;
use crate::refs::{self, Refs};
use crate::spec::ImageConfig;
use crate::tarfs::view::Gate;
use crate::tarfs::{apply_layer_onto, ApplyError, Limits, Target};
use drivers::lock::FileLock;
use drivers::{Driver, DriverOptions, LayerKind};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The file naming the driver in use when several hold layers (written by `migrate`).
pub const ACTIVE_DRIVER_FILE: &str = "driver";

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub data_root: PathBuf,
    /// The driver to use; `None` keeps the one the data root already uses, else auto-detects.
    pub driver: Option<String>,
    pub driver_opts: DriverOptions,
    /// Only reads follow: leave the temp area alone.
    pub read_only: bool,
    /// What one untrusted layer or image may ask for.
    pub limits: Limits,
}

/// An open store. It holds no lock between calls: each operation takes the locks of
/// [`crate::locks`] it needs for as long as it needs them, so one store can be shared by
/// many threads and used beside other processes.
pub struct Store {
    pub root: PathBuf,
    /// Shared by the store's forks ([`Store::fork`]): opened, checked and repaired once.
    pub driver: std::sync::Arc<dyn Driver>,
    pub blobs: BlobStore,
    pub layers: JsonDir<LayerRecord>,
    pub images: JsonDir<ImageRecord>,
    pub containers: JsonDir<ContainerRecord>,
    pub refs: Refs,
    pub(crate) tmp: PathBuf,
    progress: Option<ProgressFn>,
    /// What one untrusted layer or image may ask for.
    pub limits: Limits,
    /// The data root's locks (see [`crate::locks`]); the store holds none between calls.
    pub locks: StoreLocks,
    /// What was written and not flushed yet (see [`crate::journal`]).
    pub journal: Journal,
}

impl Drop for Store {
    /// What this store wrote unflushed may be flushed by anyone from now on.
    fn drop(&mut self) {
        if let Err(e) = self.journal.note_done() {
            tracing::warn!(error = %e, "could not note the end of writes in the flush journal");
        }
    }
}

/// Receives progress of long work: (what, done, total). Called from worker threads too.
pub type ProgressFn = Box<dyn Fn(&str, usize, usize) + Send + Sync>;

/// A layer to add with [`Store::add_layers`]: its DiffID and the stored blob it comes from.
#[derive(Debug, Clone, Copy)]
pub struct NewLayer<'a> {
    pub diff_id: &'a Digest,
    pub blob: &'a Digest,
    pub media_type: &'a str,
    /// Where to read the tar when `blob` is not stored (applied from there, kept as
    /// files plus a tar-split record).
    pub source: Option<crate::split_layers::LayerSource<'a>>,
}

/// Why each driver could or could not be used, for `info`.
pub fn probe_drivers(
    data_root: &Path,
    opts: &DriverOptions,
) -> Vec<(String, std::result::Result<(), String>)> {
    drivers::DRIVER_NAMES
        .iter()
        .map(|name| {
            let home = data_root.join(name);
            let existed = home.exists();
            let r = drivers::open(name, &home, opts)
                .map(|_| ())
                .map_err(|e| e.to_string());
            if !existed {
                let _ = fsutil::remove_tree(&home);
            }
            (name.to_string(), r)
        })
        .collect()
}

impl Store {
    /// Opens (creating) the store at `opts.data_root`.
    pub fn open(opts: &StoreOptions) -> Result<Store> {
        let root = opts.data_root.clone();
        fs::create_dir_all(&root).map_err(|e| StoreError::io("create data root", &root, e))?;
        // Root's only (moby's CVE-2021-41091): image files, setuid binaries among them,
        // container specs with their environment, and logs live below. Stores made before
        // are closed when opened.
        fsutil::restrict_dir(&root, 0o700)
            .map_err(|e| StoreError::io("restrict the data root to root", &root, e))?;
        let locks = StoreLocks::new(&root);
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        if !opts.read_only {
            // Work in progress holds the content lock (shared); when nobody holds it at
            // all, whatever is in tmp/ was left by a crash. Only its entries go: another
            // process that opened the store already may take the lock next and use tmp/.
            if let Some(_l) = locks.try_content_exclusive() {
                if let Ok(fd) = fsutil::open_root(&tmp) {
                    let _ = fsutil::clear_dir_at(std::os::fd::AsFd::as_fd(&fd), &|_| false);
                }
            }
        }
        let driver: std::sync::Arc<dyn Driver> = match &opts.driver {
            Some(n) => drivers::open(n, &root.join(n), &opts.driver_opts)?.into(),
            None => Self::detect_driver(&root, &opts.driver_opts)?.into(),
        };
        tracing::debug!(
            data_root = %root.display(),
            driver = driver.name(),
            chosen = if opts.driver.is_some() { "by flag or config" } else { "auto-detected" },
            "store opened"
        );
        // The driver's home too, in case the data root is ever opened up again.
        let home = root.join(driver.name());
        if home.is_dir() {
            fsutil::restrict_dir(&home, 0o700)
                .map_err(|e| StoreError::io("restrict the driver's folder to root", &home, e))?;
        }
        let journal = Journal::new(&root);
        let store = Store {
            blobs: BlobStore::new(root.join("blobs").join("sha256"), tmp.clone())?
                .with_journal(journal.clone()),
            layers: JsonDir::new(root.join("layers"))?,
            images: JsonDir::new(root.join("images"))?,
            containers: JsonDir::new(root.join("containers"))?,
            refs: Refs::new(root.join("refs.json"), locks.clone()),
            root,
            driver,
            tmp,
            progress: None,
            limits: opts.limits,
            locks,
            journal,
        };
        // Writes of a boot that ended before they were flushed are checked before use.
        store.repair_unflushed()?;
        Ok(store)
    }

    /// The same store for another operation: its own flush journal (so what this one
    /// writes settles when it ends), and none of the work of [`Store::open`] again (the
    /// driver's support check and mount repair, the temp area's cleaning, the repair of
    /// an earlier boot's writes). A long-lived process opens once and forks per request.
    pub fn fork(&self) -> Store {
        let journal = Journal::new(&self.root);
        Store {
            root: self.root.clone(),
            driver: self.driver.clone(),
            blobs: self.blobs.clone().with_journal(journal.clone()),
            layers: self.layers.clone(),
            images: self.images.clone(),
            containers: self.containers.clone(),
            refs: self.refs.clone(),
            tmp: self.tmp.clone(),
            progress: None,
            limits: self.limits,
            locks: self.locks.clone(),
            journal,
        }
    }

    /// Keeps using the driver whose folder already holds layers; else opens the first that
    /// works (and only that one: later drivers are not tried, and it is not opened twice).
    fn detect_driver(root: &Path, opts: &DriverOptions) -> Result<Box<dyn Driver>> {
        // A migration pins the driver in use (`<data-root>/driver`) while both hold layers.
        if let Ok(name) = fs::read_to_string(root.join(ACTIVE_DRIVER_FILE)) {
            let name = name.trim();
            if drivers::DRIVER_NAMES.contains(&name) {
                return Ok(drivers::open(name, &root.join(name), opts)?);
            }
        }
        let used: Vec<&str> = drivers::DRIVER_NAMES
            .iter()
            .copied()
            .filter(|n| drivers::has_layers(n, &root.join(n)))
            .collect();
        if used.len() == 1 {
            return Ok(drivers::open(used[0], &root.join(used[0]), opts)?);
        }
        if used.len() > 1 {
            return Err(StoreError::Ambiguous(format!(
                "the data root {} holds layers of several drivers ({}): choose one with --storage-driver",
                root.display(),
                used.join(", ")
            )));
        }
        let mut reasons = Vec::new();
        for name in drivers::DRIVER_NAMES {
            let home = root.join(name);
            let existed = home.exists();
            match drivers::open(name, &home, opts) {
                Ok(d) => return Ok(d),
                Err(e) => {
                    if !existed {
                        let _ = fsutil::remove_tree(&home);
                    }
                    tracing::info!(driver = name, reason = %e, "driver skipped in auto-detection");
                    reasons.push(e.to_string());
                }
            }
        }
        Err(StoreError::Unsupported(format!(
            "no storage driver works here: {}",
            reasons.join("; ")
        )))
    }

    /// Sets where progress of long work (applying layers) is reported; the CLI draws it on
    /// a terminal and stays quiet when piped.
    pub fn set_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    fn report(&self, what: &str, done: usize, total: usize) {
        if let Some(f) = &self.progress {
            f(what, done, total);
        }
    }

    /// Reports progress of long work done outside the store (a migration).
    pub fn report_progress(&self, what: &str, done: usize, total: usize) {
        self.report(what, done, total);
    }

    /// A fresh file name in the store's temp area (the caller removes what it makes).
    pub fn temp_path(&self, stem: &str) -> PathBuf {
        self.tmp.join(format!("{stem}-{}", crate::random_id()))
    }

    /// A fresh directory under the store's temp area (same filesystem as the store).
    pub fn temp_dir(&self) -> Result<PathBuf> {
        let p = self.tmp.join(format!("work-{}", crate::random_id()));
        fs::create_dir(&p).map_err(|e| StoreError::io("create", &p, e))?;
        Ok(p)
    }

    // ---- images and references -------------------------------------------------------

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
        for id in self.driver.list()? {
            if !live_cache.contains(&id) && self.driver.mount_count(&id)? == 0 {
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
            for e in entries.flatten() {
                let name = e.file_name();
                let known = name
                    .to_str()
                    .is_some_and(|n| self.layers.get(n).ok().flatten().is_some());
                if !known {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Locks of layers that are gone (nobody holds one: every holder holds the content
        // lock, shared).
        let recorded: HashSet<String> = self.layers.keys()?.into_iter().collect();
        self.locks.remove_layer_locks(_held, &recorded)?;
        let mut removed_blobs = 0;
        for d in self.blobs.list()? {
            if !live_blobs.contains(&d) {
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

    // ---- layers ----------------------------------------------------------------------

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
                    if let Err(e) = self.driver.create(&id, pid.as_deref(), LayerKind::ReadOnly) {
                        cleanup(&created);
                        return Err(e.into());
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

    // ---- containers ------------------------------------------------------------------

    /// Finds a container by name, full id or unique id prefix.
    pub fn resolve_container(&self, key: &str) -> Result<ContainerRecord> {
        let all = self.containers.all()?;
        if let Some((_, c)) = all.iter().find(|(_, c)| c.name == key || c.id == key) {
            return Ok(c.clone());
        }
        let hits: Vec<&ContainerRecord> = all
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.id.starts_with(key))
            .collect();
        match hits.len() {
            1 if !key.is_empty() => Ok(hits[0].clone()),
            n if n > 1 => Err(StoreError::Ambiguous(format!(
                "container id prefix {key} is ambiguous"
            ))),
            _ => Err(StoreError::NoSuchContainer(key.to_string())),
        }
    }

    /// Creates a container's read-write layer on an image.
    pub fn create_container(&self, image: &str, name: Option<&str>) -> Result<ContainerRecord> {
        self.create_container_sized(image, name, None)
    }

    /// [`Store::create_container`] with a limit on the space its layer may use
    /// (`--storage-opt size=`), for drivers that can enforce one.
    pub fn create_container_sized(
        &self,
        image: &str,
        name: Option<&str>,
        size_limit: Option<u64>,
    ) -> Result<ContainerRecord> {
        self.create_container_with(image, name, size_limit, false)
    }

    /// [`Store::create_container_sized`]; a `scratch` container (`run --rm`) is not
    /// flushed to disk, as a crash would remove it anyway (`system prune` frees what is
    /// left).
    pub fn create_container_with(
        &self,
        image: &str,
        name: Option<&str>,
        size_limit: Option<u64>,
        scratch: bool,
    ) -> Result<ContainerRecord> {
        let img = self.resolve_image(image)?;
        let id = crate::random_id();
        let name = match name {
            Some(n) => {
                check_container_name(n)?;
                n.to_string()
            }
            None => format!("strata_{}", &id[..12]),
        };
        let name_taken = |name: &str| -> Result<()> {
            if self.containers.all()?.iter().any(|(_, c)| c.name == name) {
                return Err(StoreError::InUse(format!(
                    "the container name {name:?} is already in use: remove that container or pick another name"
                )));
            }
            Ok(())
        };
        // Checked early (no layer made for a name that is taken) and again below, under
        // the records lock, where the record is written.
        name_taken(&name)?;
        // The layer is made before its record: no garbage collection meanwhile.
        let _content = self.locks.content_shared()?;
        let parent = match img.layers.last() {
            Some(top) => Some(self.ensure_layer(top)?),
            None => None,
        };
        let kind = if scratch {
            LayerKind::Scratch
        } else {
            LayerKind::ReadWrite
        };
        self.driver.create(&id, parent.as_deref(), kind)?;
        if let Some(bytes) = size_limit {
            if let Err(e) = self.driver.set_size_limit(&id, bytes) {
                let _ = self.driver.remove(&id);
                return Err(e.into());
            }
        }
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            image: img.id.clone(),
            image_ref: image.to_string(),
            layer: id.clone(),
            driver: self.driver.name().to_string(),
            created: crate::now(),
        };
        let put = self.locks.records().and_then(|_held| {
            name_taken(&rec.name)?;
            if self.images.get(img.id.hex())?.is_none() {
                return Err(StoreError::NoSuchImage(image.to_string()));
            }
            if scratch {
                self.containers.put_volatile(&id, &rec)
            } else {
                self.containers.put(&id, &rec)
            }
        });
        if let Err(e) = put {
            let _ = self.driver.remove(&id);
            return Err(e);
        }
        Ok(rec)
    }

    /// Mounts a container's rootfs and returns its path (one reference per call).
    pub fn mount_container(&self, key: &str) -> Result<PathBuf> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        Ok(self.driver.get(&c.layer)?)
    }

    /// Releases one mount reference of a container's rootfs.
    pub fn umount_container(&self, key: &str) -> Result<()> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        Ok(self.driver.put(&c.layer)?)
    }

    /// Gives container `key` the name `new_name` (refused when another container has it).
    pub fn rename_container(&self, key: &str, new_name: &str) -> Result<ContainerRecord> {
        check_container_name(new_name)?;
        let _held = self.locks.records()?;
        let mut c = self.resolve_container(key)?;
        if self
            .containers
            .all()?
            .iter()
            .any(|(_, o)| o.name == new_name && o.id != c.id)
        {
            return Err(StoreError::InUse(format!(
                "the container name {new_name:?} is already in use: remove that container or pick another name"
            )));
        }
        c.name = new_name.to_string();
        self.containers.put(&c.id, &c)?;
        Ok(c)
    }

    /// Removes a container and its read-write layer; refused while mounted unless `force`.
    pub fn remove_container(&self, key: &str, force: bool) -> Result<ContainerRecord> {
        let c = self.resolve_container(key)?;
        self.check_driver(&c)?;
        if self.driver.exists(&c.layer) {
            let n = self.driver.mount_count(&c.layer)?;
            if n > 0 {
                if !force {
                    return Err(StoreError::InUse(format!(
                        "container {} is mounted ({n}): unmount it first, or remove it with force",
                        c.name
                    )));
                }
                for _ in 0..n {
                    // Another process (the container's shim) may release its own
                    // reference meanwhile: only a count still held is an error.
                    if let Err(e) = self.driver.put(&c.layer) {
                        if self.driver.mount_count(&c.layer)? > 0 {
                            return Err(e.into());
                        }
                        break;
                    }
                }
            }
            self.driver.remove(&c.layer)?;
        }
        self.containers.remove(&c.id)?;
        Ok(c)
    }

    fn check_driver(&self, c: &ContainerRecord) -> Result<()> {
        if c.driver != self.driver.name() {
            return Err(StoreError::Unsupported(format!(
                "container {} lives in driver {} but the store is open with {}: open the store with driver {}, or migrate it to this one",
                c.name,
                c.driver,
                self.driver.name(),
                c.driver
            )));
        }
        Ok(())
    }
}

/// Container names as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_container_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && n.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid container name {n:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
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
