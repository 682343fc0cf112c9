//! The store's locks: short critical sections per operation, right both for many short
//! CLI processes and for one long-running server with many threads.
//!
//! Each lock is an flock on a file of the data root, taken through a fresh open file
//! description each time, so it excludes other threads of the same process as surely as
//! other processes, and a crash releases it. Three kinds, always taken in this order:
//!
//! - **content** (`lock`): shared by every operation that adds or uses layers and blobs
//!   (load, import, commit, create, mount, save, push), exclusive for the ones that free
//!   them (garbage collection, migration, repair). A pull holds it only for the moments
//!   it names what it will use in its lease ([`crate::leases`]), so a slow registry never
//!   holds up a prune; reads take no lock.
//! - **layer** (`locks/<chain hex>`, one per ChainID): held while that layer's driver copy
//!   is made and its record written, so two loads never materialise the same layer twice,
//!   while loads, pulls and commits of other layers go on beside it (a pull from a slow
//!   registry streams into its own layers only). Taken bottom-up along a stack, so two
//!   operations can never wait for each other. The files are removed by garbage
//!   collection, under the exclusive content lock, except those of layers a live lease
//!   names (a pull takes a layer's lock only after naming the layer).
//! - **records** (`records.lock`): held for each read-modify-write of `refs.json` and for
//!   the check-then-write of a container's unique name; never across slow work.

use crate::error::{Result, StoreError};
use drivers::lock::FileLock;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The lock files of one data root.
#[derive(Debug, Clone)]
pub struct StoreLocks {
    content: PathBuf,
    /// The folder of the per-layer locks.
    layers: PathBuf,
    records: PathBuf,
}

fn take(path: &Path, what: &str, f: fn(&Path) -> std::io::Result<FileLock>) -> Result<FileLock> {
    let t0 = Instant::now();
    let l = f(path).map_err(|e| StoreError::io("lock", path, e))?;
    let waited = t0.elapsed();
    if waited.as_millis() >= 100 {
        tracing::info!(
            lock = what,
            waited_ms = waited.as_millis() as u64,
            "waited for a store lock held by other work"
        );
    }
    Ok(l)
}

impl StoreLocks {
    /// The locks of the data root `root`.
    pub fn new(root: &Path) -> StoreLocks {
        StoreLocks {
            content: root.join("lock"),
            layers: root.join("locks"),
            records: root.join("records.lock"),
        }
    }

    /// Content in use (adding or reading layers and blobs): shared.
    pub fn content_shared(&self) -> Result<FileLock> {
        take(&self.content, "content (shared)", FileLock::shared)
    }

    /// Content being freed (gc, migrate, repair): exclusive.
    pub fn content_exclusive(&self) -> Result<FileLock> {
        take(&self.content, "content (exclusive)", FileLock::exclusive)
    }

    /// The content lock exclusively if nobody holds it now, else `None`.
    pub fn try_content_exclusive(&self) -> Option<FileLock> {
        FileLock::try_exclusive(&self.content).ok().flatten()
    }

    /// Layer `chain`'s driver copy being made and recorded. The caller holds the content
    /// lock (shared), and takes the locks of a stack bottom-up.
    pub fn layer(&self, chain: &crate::digest::Digest) -> Result<FileLock> {
        if !self.layers.is_dir() {
            std::fs::create_dir_all(&self.layers)
                .map_err(|e| StoreError::io("create", &self.layers, e))?;
        }
        take(&self.layers.join(chain.hex()), "layer", FileLock::exclusive)
    }

    /// Removes the lock files of layers not in `live` (hex ChainIDs, the leased ones
    /// included). Only with the content lock held exclusively (`_held`): nobody else holds
    /// or opens a layer lock but a leased pull, which named its layers first.
    pub fn remove_layer_locks(
        &self,
        _held: &FileLock,
        live: &std::collections::HashSet<String>,
    ) -> Result<usize> {
        let Ok(entries) = std::fs::read_dir(&self.layers) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            if !name.to_str().is_some_and(|h| live.contains(h)) {
                let p = e.path();
                std::fs::remove_file(&p).map_err(|e| StoreError::io("remove", &p, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Layer locks of `chains`, taken in the order given (bottom-up).
    pub fn layers(&self, chains: &[crate::digest::Digest]) -> Result<Vec<FileLock>> {
        chains.iter().map(|c| self.layer(c)).collect()
    }

    /// A read-modify-write of the records.
    pub fn records(&self) -> Result<FileLock> {
        take(&self.records, "records", FileLock::exclusive)
    }
}
