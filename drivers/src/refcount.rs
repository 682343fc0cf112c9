//! Mount reference counts shared by every process using a driver.
//!
//! The CLI is daemonless: `strata mount` in one process and `strata umount` in another
//! must agree on how many users a mount has. Counts live in small files under the driver's
//! home, changed under a flock and replaced atomically, so a crash mid-update leaves either
//! the old count or the new one. They are not flushed to disk: a reboot takes the mounts
//! with it, and drivers reset counts whose mount is gone when they open.

use crate::error::DriverError;
use crate::lock::FileLock;
use fsutil::write_replace;
use std::fs;
use std::path::{Path, PathBuf};

/// How many locks the counts of one driver are spread over.
pub const STRIPES: u8 = 64;

/// The stripe of `id` (a hash of the whole id: ids that share a prefix spread too).
fn stripe(id: &str) -> u8 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % u64::from(STRIPES)) as u8
}

/// Per-layer mount counts stored under one directory.
#[derive(Debug, Clone)]
pub struct MountRefs {
    dir: PathBuf,
}

impl MountRefs {
    /// Counts kept in `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<MountRefs, DriverError> {
        fs::create_dir_all(dir).map_err(|e| DriverError::io("create", dir, e))?;
        Ok(MountRefs {
            dir: dir.to_path_buf(),
        })
    }

    /// The lock of `id`'s count: one of [`STRIPES`] files, chosen by the id, so mounts and
    /// unmounts of different layers (the starts and stops of different containers) go on
    /// at once, while one layer's check, mount and count stay one critical section. Each
    /// operation takes exactly one, so they cannot wait for each other in a cycle, and the
    /// set of files is fixed (nothing to clean up when layers go).
    fn lock(&self, id: &str) -> Result<FileLock, DriverError> {
        let p = self.dir.join(format!(".lock-{:02x}", stripe(id)));
        FileLock::exclusive(&p).map_err(|e| DriverError::io("lock", p, e))
    }

    fn read(&self, id: &str) -> u32 {
        fs::read_to_string(self.dir.join(id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn write(&self, id: &str, n: u32) -> Result<(), DriverError> {
        let p = self.dir.join(id);
        if n == 0 {
            match fs::remove_file(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(DriverError::io("remove", p, e)),
            }
        } else {
            write_replace(&p, n.to_string().as_bytes()).map_err(|e| DriverError::io("write", p, e))
        }
    }

    /// The current count of `id`.
    pub fn count(&self, id: &str) -> Result<u32, DriverError> {
        let _l = self.lock(id)?;
        Ok(self.read(id))
    }

    /// Runs `mount` when the count goes 0 -> 1, then increments. The count is only raised
    /// when the mount succeeded.
    pub fn acquire<F>(&self, id: &str, mount: F) -> Result<u32, DriverError>
    where
        F: FnOnce(bool) -> Result<(), DriverError>,
    {
        let _l = self.lock(id)?;
        let n = self.read(id);
        mount(n == 0)?;
        self.write(id, n + 1)?;
        Ok(n + 1)
    }

    /// Decrements; runs `unmount` when the count reaches 0. Refuses when nothing is held.
    pub fn release<F>(&self, id: &str, unmount: F) -> Result<u32, DriverError>
    where
        F: FnOnce() -> Result<(), DriverError>,
    {
        let _l = self.lock(id)?;
        let n = self.read(id);
        if n == 0 {
            return Err(DriverError::NotMounted(id.to_string()));
        }
        if n == 1 {
            unmount()?;
        }
        self.write(id, n - 1)?;
        Ok(n - 1)
    }

    /// `get` for a driver whose layers need no mount (vfs, btrfs): one more reference.
    pub fn take(&self, id: &str) -> Result<u32, DriverError> {
        crate::error::check_id(id)?;
        self.acquire(id, |_| Ok(()))
    }

    /// `put` for a driver whose layers need no mount: one reference less.
    pub fn give_back(&self, id: &str) -> Result<(), DriverError> {
        crate::error::check_id(id)?;
        self.release(id, || Ok(())).map(|_| ())
    }

    /// `mount_count` with the id checked.
    pub fn count_of(&self, id: &str) -> Result<u32, DriverError> {
        crate::error::check_id(id)?;
        self.count(id)
    }

    /// Every id with a count above zero (each count read whole: they are replaced
    /// atomically; a caller that acts on one takes its lock with [`MountRefs::under_lock`]).
    pub fn held(&self) -> Result<Vec<(String, u32)>, DriverError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| DriverError::io("read", &self.dir, e))? {
            let e = e.map_err(|e| DriverError::io("read", &self.dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') {
                let n = self.read(&name);
                if n > 0 {
                    out.push((name, n));
                }
            }
        }
        Ok(out)
    }

    /// Runs `f` with `id`'s count under the lock, and stores the count it returns (if
    /// any): a repair decides and acts (an unmount) with no other process able to mount or
    /// count in between. Checking outside the lock and unmounting after unmounted mounts
    /// another process had just made, and its container started on an empty root.
    pub fn under_lock<F>(&self, id: &str, f: F) -> Result<(), DriverError>
    where
        F: FnOnce(u32) -> Result<Option<u32>, DriverError>,
    {
        let _l = self.lock(id)?;
        if let Some(n) = f(self.read(id))? {
            self.write(id, n)?;
        }
        Ok(())
    }

    /// Sets the count of `id` (repairing one a crash left wrong).
    pub fn set(&self, id: &str, n: u32) -> Result<(), DriverError> {
        let _l = self.lock(id)?;
        self.write(id, n)
    }

    /// Forgets every count (after the driver unmounted everything), each under its lock.
    pub fn reset(&self) -> Result<(), DriverError> {
        for (id, _) in self.held()? {
            self.set(&id, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_slow_mount_of_one_layer_does_not_hold_up_another() {
        let d = tempfile::tempdir().unwrap();
        let refs = MountRefs::new(d.path()).unwrap();
        let a = "a".repeat(64);
        let b = (0..)
            .map(|i| format!("{i:064x}"))
            .find(|b| stripe(b) != stripe(&a))
            .unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let (refs, a) = (&refs, &a);
            let slow = s.spawn(move || {
                // A mount that lasts until the other layer's mount is done (a FUSE
                // server starting, say): with one lock for all, the other never gets in.
                refs.acquire(a, |_| {
                    done_rx
                        .recv_timeout(Duration::from_secs(10))
                        .map_err(|_| DriverError::NotMounted("the other mount waited".into()))
                })
            });
            refs.acquire(&b, |_| Ok(())).unwrap();
            done_tx.send(()).unwrap();
            assert_eq!(slow.join().unwrap().unwrap(), 1);
        });
        assert_eq!(refs.held().unwrap().len(), 2);
        refs.reset().unwrap();
        assert!(refs.held().unwrap().is_empty());
    }
}
