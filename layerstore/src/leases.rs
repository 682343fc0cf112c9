//! Leases: what an operation that holds no store-wide lock is adding, so that gc keeps it.
//!
//! A pull from a slow registry can take minutes. Holding the shared content lock for all
//! of it made every gc (`system prune`, `image prune`, the daemon's start-up repair) wait
//! for it. A pull instead takes a lease: a file `leases/<op>` listing the blobs and layers
//! it will use or make and the driver layers it creates, and gc keeps whatever a lease of a
//! live operation names.
//!
//! The rules that make it safe:
//! - Things that may exist already (a blob or layer the pull would reuse) are named with
//!   [`Lease::protect`], which appends them under the shared content lock. gc runs under
//!   the exclusive one, so the whole append falls before a gc (which then reads it) or
//!   after it (and the operation's checks that follow see what that gc left).
//! - Things the operation creates (a driver layer under a fresh id, a blob under its
//!   digest) are named before they are made, and gc reads the leases after listing what
//!   exists: anything it lists was made after its name was written, so gc sees the name.
//! - A lease whose process is gone (a crash) names nothing; gc removes its file.

use crate::error::{Result, StoreError};
use crate::locks::StoreLocks;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The leases' folder in a data root.
const DIR: &str = "leases";

/// One operation's lease; its file goes when it is dropped.
pub struct Lease {
    path: PathBuf,
    file: Mutex<File>,
    locks: StoreLocks,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("path", &self.path).finish()
    }
}

impl Lease {
    /// A new lease in data root `root` for operation `op` (`<pid>-<start>-<n>`, see
    /// [`crate::journal`]).
    pub fn open(root: &Path, locks: &StoreLocks, op: &str) -> Result<Lease> {
        let dir = root.join(DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        let path = dir.join(op);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        Ok(Lease {
            path,
            file: Mutex::new(file),
            locks: locks.clone(),
        })
    }

    /// Names things that may already exist (blobs, layers) before the operation looks for
    /// them: written under the shared content lock, so no gc is between its listing and
    /// its removals meanwhile.
    pub fn protect(&self, items: &[String]) -> Result<()> {
        let _content = self.locks.content_shared()?;
        self.note(items)
    }

    /// Names things the operation is about to create (a driver layer's fresh id).
    pub fn note(&self, items: &[String]) -> Result<()> {
        let mut text = String::new();
        for i in items {
            text.push_str(i);
            text.push('\n');
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(text.as_bytes())
            .map_err(|e| StoreError::io("write", &self.path, e))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether a live operation holds a lease in data root `root` (named anything yet or not).
pub fn held(root: &Path) -> bool {
    fs::read_dir(root.join(DIR)).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| crate::journal::op_alive(&e.file_name().to_string_lossy()))
    })
}

/// What the leases of live operations in data root `root` name (blob and layer digests as
/// `sha256:...`, driver layer ids); the files of dead operations are removed. gc calls it
/// after listing what it might remove.
pub fn live(root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(entries) = fs::read_dir(root.join(DIR)) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !crate::journal::op_alive(&name) {
            let _ = fs::remove_file(e.path());
            continue;
        }
        // A live operation's lease is small (its image's parts): read whole, bounded all
        // the same.
        if let Ok(text) = fs::read_to_string(e.path()) {
            out.extend(text.lines().take(1 << 20).map(str::to_string));
        }
    }
    out
}
