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

    fn lock(&self) -> Result<FileLock, DriverError> {
        let p = self.dir.join(".lock");
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
        let _l = self.lock()?;
        Ok(self.read(id))
    }

    /// Runs `mount` when the count goes 0 -> 1, then increments. The count is only raised
    /// when the mount succeeded.
    pub fn acquire<F>(&self, id: &str, mount: F) -> Result<u32, DriverError>
    where
        F: FnOnce(bool) -> Result<(), DriverError>,
    {
        let _l = self.lock()?;
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
        let _l = self.lock()?;
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

    /// Every id with a count above zero.
    pub fn held(&self) -> Result<Vec<(String, u32)>, DriverError> {
        let _l = self.lock()?;
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| DriverError::io("read", &self.dir, e))? {
            let e = e.map_err(|e| DriverError::io("read", &self.dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name != ".lock" && !name.starts_with(".tmp-") {
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
        let _l = self.lock()?;
        if let Some(n) = f(self.read(id))? {
            self.write(id, n)?;
        }
        Ok(())
    }

    /// Sets the count of `id` (repairing one a crash left wrong).
    pub fn set(&self, id: &str, n: u32) -> Result<(), DriverError> {
        let _l = self.lock()?;
        self.write(id, n)
    }

    /// Forgets every count (after the driver unmounted everything).
    pub fn reset(&self) -> Result<(), DriverError> {
        let _l = self.lock()?;
        for e in fs::read_dir(&self.dir).map_err(|e| DriverError::io("read", &self.dir, e))? {
            let e = e.map_err(|e| DriverError::io("read", &self.dir, e))?;
            if e.file_name() != ".lock" {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}
