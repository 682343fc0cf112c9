//! The store: one data root, one active driver, and the records that tie them together.
//!
//! Layout: `blobs/sha256/<hex>`, `layers/<chain hex>.json`, `images/<config hex>.json`,
//! `refs.json`, `containers/<id>.json`, `tmp/`, and one folder per driver. Metadata does not
//! depend on the driver, so a driver change never loses an image.
//!
//! Opening and forking are here; the operations are split by what they work on:
//! [`images`], [`layers`], [`containers`] and [`gc`].

mod containers;
mod gc;
mod images;
mod layers;

use crate::blobs::BlobStore;
use crate::containers::ContainerRecord;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::journal::Journal;
use crate::layers::LayerRecord;
use crate::locks::StoreLocks;
use crate::records::JsonDir;
use crate::refs::Refs;
use crate::tarfs::Limits;
use drivers::{Driver, DriverOptions};
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
    progress: Option<std::sync::Arc<ProgressFn>>,
    /// What one untrusted layer or image may ask for.
    pub limits: Limits,
    /// The data root's locks (see [`crate::locks`]); the store holds none between calls.
    pub locks: StoreLocks,
    /// What was written and not flushed yet (see [`crate::journal`]).
    pub journal: Journal,
    /// The lease of an operation that holds no content lock ([`Store::leased`]).
    lease: Option<std::sync::Arc<crate::leases::Lease>>,
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
            // Work in progress holds the content lock (shared) or a lease; when nobody
            // holds either, whatever is in tmp/ was left by a crash. Only its entries go:
            // another process that opened the store already may take the lock next and use
            // tmp/. (A pull makes its temp files only after naming its first blobs, which
            // waits for the exclusive lock held here.)
            if let Some(_l) = locks.try_content_exclusive() {
                let leased = crate::leases::held(&root);
                if let (false, Ok(fd)) = (leased, fsutil::open_root(&tmp)) {
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
            lease: None,
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
            lease: None,
        }
    }

    /// A fork for an operation that holds a lease instead of the shared content lock (a
    /// pull: gc need not wait for it). It names what it reuses with [`Store::protect`]
    /// before looking for it; the driver layers it creates are named by the store itself.
    pub fn leased(&self) -> Result<Store> {
        let mut s = self.fork();
        s.progress = self.progress.clone();
        s.lease = Some(std::sync::Arc::new(crate::leases::Lease::open(
            &s.root,
            &s.locks,
            s.journal.op(),
        )?));
        Ok(s)
    }

    /// Names blobs and layers (digests) this operation will use or make, before it looks
    /// for them (see [`crate::leases`]). Nothing to do without a lease: the caller holds
    /// the shared content lock.
    pub fn protect(&self, digests: &[&Digest]) -> Result<()> {
        match &self.lease {
            Some(l) => l.protect(&digests.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
            None => Ok(()),
        }
    }

    /// Names a driver layer about to be created under a fresh id.
    pub(crate) fn note_created(&self, id: &str) -> Result<()> {
        match &self.lease {
            Some(l) => l.note(&[id.to_string()]),
            None => Ok(()),
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
        self.progress = Some(std::sync::Arc::new(f));
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
}
