//! The flush journal: what was written without being flushed to disk yet, so loads and
//! pulls never wait for the device while a power cut still never serves lost data.
//!
//! The crash model (docs/architecture.md, "Crash model"): blobs and applied layers are written to the
//! page cache only. Before a blob gets its name or a layer its record, one line naming it
//! (with the boot it was written in and the operation that wrote it) is appended to
//! `unflushed.jsonl` and that small file is flushed. A flusher (`strata flush`, started in
//! the background after each write, or any later command) flushes the whole filesystem
//! once and drops the lines of finished operations. Lines of an *earlier boot* mean the
//! machine went down before their data reached the disk: before anything is used, those
//! blobs are re-hashed and those layers re-applied from their source (or, where none was
//! kept, marked damaged; every command that touches them then says how to get them back).

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use drivers::lock::FileLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// One line of the journal.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Line {
    /// The boot the write happened in (`/proc/sys/kernel/random/boot_id`).
    pub boot: String,
    /// The writing operation: `<pid>-<process start time>`.
    pub op: String,
    /// A blob written unflushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Digest>,
    /// A layer (ChainID) applied unflushed into driver `driver`'s layer `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The operation finished writing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// The journal of one data root.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    lock: PathBuf,
    boot: String,
    op: String,
    /// Whether this operation wrote a line (so [`Journal::note_done`] has work).
    wrote: Arc<AtomicBool>,
}

/// The journal's file in a data root.
const FILE: &str = "unflushed.jsonl";

/// Operations of this process so far (each opened store is one).
static OPS: AtomicU64 = AtomicU64::new(0);

/// This boot's id; `STRATA_TEST_BOOT_ID` stands in for it in tests that simulate a
/// reboot.
pub fn boot_id() -> String {
    if let Ok(b) = std::env::var("STRATA_TEST_BOOT_ID") {
        return b;
    }
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// This boot's id and this process's `<pid>-<start time>`, read once per process (every
/// opened store makes a journal).
fn process_identity() -> &'static (String, String) {
    static ID: OnceLock<(String, String)> = OnceLock::new();
    ID.get_or_init(|| {
        let pid = std::process::id();
        (
            boot_id(),
            format!("{pid}-{}", start_time(pid).unwrap_or_default()),
        )
    })
}

/// Whether the journal of data root `root` lists anything waiting for a flush.
pub fn pending(root: &Path) -> bool {
    fs::metadata(root.join(FILE)).is_ok_and(|m| m.len() > 0)
}

/// The start time of process `pid` as text, `None` when it is gone.
fn start_time(pid: u32) -> Option<String> {
    fsutil::process::start_time(pid).map(|t| t.to_string())
}

/// Whether the process of operation `op` (`<pid>-<start>-<n>`) still runs.
pub(crate) fn op_alive(op: &str) -> bool {
    let mut parts = op.split('-');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse() {
        Ok(pid) => start_time(pid).as_deref() == Some(start),
        Err(_) => false,
    }
}

/// Flushes what the journal of data root `root` lists without opening the store (no
/// driver, nothing created): one syncfs of the data root's filesystem (and of any
/// filesystem mounted right below it), then the lines of settled operations go. Returns
/// false, doing nothing, when lines of an earlier boot need a repair first
/// ([`crate::Store::repair_unflushed`], which opening the store runs).
pub fn flush_root(root: &Path) -> Result<bool> {
    let j = Journal::new(root);
    if !j.pending() {
        return Ok(true);
    }
    if !j.from_earlier_boots()?.is_empty() {
        return Ok(false);
    }
    let settled = j.settled_ops()?;
    sync_tree(root)?;
    if !settled.is_empty() {
        j.forget(&settled, false)?;
    }
    Ok(true)
}

/// syncfs of `root`'s filesystem and of filesystems mounted on its subdirectories (a
/// driver's home on a filesystem of its own).
pub(crate) fn sync_tree(root: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let sync = |p: &Path| -> Result<()> {
        let fd = fsutil::open_root(p).map_err(|e| StoreError::io("open", p, e))?;
        rustix::fs::syncfs(&fd).map_err(|e| StoreError::io("sync", p, e))
    };
    sync(root)?;
    let dev = fs::metadata(root)
        .map_err(|e| StoreError::io("stat", root, e))?
        .dev();
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(md) = fs::symlink_metadata(&p) {
                if md.is_dir() && md.dev() != dev {
                    sync(&p)?;
                }
            }
        }
    }
    Ok(())
}

impl Journal {
    /// The journal under data root `root`, for this process's writes.
    pub fn new(root: &Path) -> Journal {
        let (boot, process) = process_identity();
        let n = OPS.fetch_add(1, Ordering::Relaxed);
        Journal {
            path: root.join(FILE),
            lock: root.join("unflushed.lock"),
            boot: boot.clone(),
            op: format!("{process}-{n}"),
            wrote: Arc::new(AtomicBool::new(false)),
        }
    }

    /// This operation's name (`<pid>-<start>-<n>`), unique on this boot.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// This boot's id, as the journal records it.
    pub fn boot(&self) -> &str {
        &self.boot
    }

    fn append(&self, mut line: Line) -> Result<()> {
        line.boot = self.boot.clone();
        line.op = self.op.clone();
        let mut text = serde_json::to_vec(&line).map_err(|e| StoreError::json("journal", e))?;
        text.push(b'\n');
        let _l =
            FileLock::exclusive(&self.lock).map_err(|e| StoreError::io("lock", &self.lock, e))?;
        let new = !self.path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| StoreError::io("open", &self.path, e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_data())
            .map_err(|e| StoreError::io("write", &self.path, e))?;
        if new {
            let dir = self.path.parent().unwrap_or(Path::new("/"));
            fsutil::fsync_dir(dir).map_err(|e| StoreError::io("fsync", dir, e))?;
        }
        Ok(())
    }

    /// Notes blob `d` before it gets its name.
    pub fn note_blob(&self, d: &Digest) -> Result<()> {
        self.append(Line {
            blob: Some(d.clone()),
            ..Line::default()
        })?;
        self.wrote.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Notes layer `chain`, applied into `driver`'s layer `id`, before its record.
    pub fn note_layer(&self, chain: &Digest, driver: &str, id: &str) -> Result<()> {
        self.append(Line {
            layer: Some(chain.clone()),
            driver: Some(driver.to_string()),
            id: Some(id.to_string()),
            ..Line::default()
        })?;
        self.wrote.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Notes that this operation wrote all it will (its lines may go once flushed).
    pub fn note_done(&self) -> Result<()> {
        if !self.wrote.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        self.append(Line {
            done: true,
            ..Line::default()
        })
    }

    /// Every line (unreadable ones, a torn last line after a crash, are skipped).
    pub fn lines(&self) -> Result<Vec<Line>> {
        match fs::read(&self.path) {
            Ok(data) => Ok(data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("read", &self.path, e)),
        }
    }

    /// Whether anything waits for a flush.
    pub fn pending(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
    }

    /// Lines written in an earlier boot: their data may not have reached the disk.
    pub fn from_earlier_boots(&self) -> Result<Vec<Line>> {
        Ok(self
            .lines()?
            .into_iter()
            .filter(|l| l.boot != self.boot)
            .collect())
    }

    /// Operations of this boot whose lines may go after a flush that starts now: done
    /// ones and ones whose process is gone (killed: what they registered was complete).
    pub fn settled_ops(&self) -> Result<BTreeSet<String>> {
        let lines = self.lines()?;
        let mut out = BTreeSet::new();
        for l in &lines {
            if l.boot == self.boot && (l.done || !op_alive(&l.op)) {
                out.insert(l.op.clone());
            }
        }
        Ok(out)
    }

    /// Drops the lines of `ops` of this boot, and every line of earlier boots when
    /// `earlier` (after a repair).
    pub fn forget(&self, ops: &BTreeSet<String>, earlier: bool) -> Result<()> {
        let _l =
            FileLock::exclusive(&self.lock).map_err(|e| StoreError::io("lock", &self.lock, e))?;
        let keep: Vec<Line> = self
            .lines()?
            .into_iter()
            .filter(|l| {
                if l.boot != self.boot {
                    !earlier
                } else {
                    !ops.contains(&l.op)
                }
            })
            .collect();
        let mut text = Vec::new();
        for l in &keep {
            text.extend(serde_json::to_vec(l).map_err(|e| StoreError::json("journal", e))?);
            text.push(b'\n');
        }
        fsutil::write_atomic(&self.path, &text).map_err(|e| StoreError::io("write", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_finished_and_dead_operations_settle() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let d = Digest::of(b"x");
        j.note_blob(&d).unwrap();
        assert!(j.pending());
        // This process runs and has not said it is done.
        assert!(j.settled_ops().unwrap().is_empty());
        j.note_done().unwrap();
        let ops = j.settled_ops().unwrap();
        assert_eq!(ops.len(), 1);
        // A dead process's lines settle too.
        let mut dead = j.clone();
        dead.op = "999999999-1-0".into();
        dead.note_layer(&d, "vfs", "abc").unwrap();
        assert_eq!(j.settled_ops().unwrap().len(), 2);
        j.forget(&j.settled_ops().unwrap(), false).unwrap();
        assert!(j.lines().unwrap().is_empty());
        // Another boot's lines stay until a repair forgets them.
        let mut old = j.clone();
        old.boot = "old-boot".into();
        old.note_blob(&d).unwrap();
        assert_eq!(j.from_earlier_boots().unwrap().len(), 1);
        j.forget(&BTreeSet::new(), false).unwrap();
        assert_eq!(j.lines().unwrap().len(), 1);
        j.forget(&BTreeSet::new(), true).unwrap();
        assert!(!j.pending());
    }
}
