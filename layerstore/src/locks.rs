//! The store's locks: short critical sections per operation, right both for many short
//! CLI processes and for one long-running server with many threads.
//!
//! Each lock is an flock on a file of the data root, taken through a fresh open file
//! description each time, so it excludes other threads of the same process as surely as
//! other processes, and a crash releases it. Three locks, always taken in this order:
//!
//! - **content** (`lock`): shared by every operation that adds or uses layers and blobs
//!   (load, pull, import, commit, create, mount, save, push), exclusive for the ones that
//!   free them (garbage collection, migration, repair). A download holds it shared, so it
//!   never blocks reads (which take no lock) or other downloads, only a prune.
//! - **layers** (`layers.lock`): held while driver layers are made and their records
//!   written, so two loads never materialise the same layer twice.
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
            layers: root.join("layers.lock"),
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

    /// Driver layers being made and recorded.
    pub fn layers(&self) -> Result<FileLock> {
        take(&self.layers, "layers", FileLock::exclusive)
    }

    /// A read-modify-write of the records.
    pub fn records(&self) -> Result<FileLock> {
        take(&self.records, "records", FileLock::exclusive)
    }
}
