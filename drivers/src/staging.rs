//! Bookkeeping every directory-based driver shares: a `tmp/` area where layers are built
//! and deleted out of sight (so a crash never leaves a half-made or half-deleted layer under
//! its real name), cleaning what dead processes left there, and the checks before removal.

use crate::driver::Driver;
use crate::error::DriverError;
use fsutil;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A driver's temp area: `<home>/tmp`, entries named `<id>.<pid>`.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// The temp area under `home` (created), with what crashed processes left removed.
    pub fn open(home: &Path) -> Result<Staging, DriverError> {
        let dir = home.join("tmp");
        fs::create_dir_all(&dir).map_err(|e| DriverError::io("create", &dir, e))?;
        let s = Staging { dir };
        s.clean()?;
        Ok(s)
    }

    /// A temp path for layer `id`, owned by this process.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.{}", std::process::id()))
    }

    /// Removes entries whose process no longer runs (a crash mid-create or mid-remove). An
    /// entry that cannot be removed is reported and left: debris must never stop the store
    /// from opening (the next open tries again; `fsck` names it).
    fn clean(&self) -> Result<(), DriverError> {
        let rd = fs::read_dir(&self.dir).map_err(|e| DriverError::io("read", &self.dir, e))?;
        for e in rd.flatten() {
            let name = e.file_name();
            let pid = name
                .to_string_lossy()
                .rsplit('.')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                if let Err(e) = self.remove(&name) {
                    tracing::warn!("leaving {}: {e}", self.dir.join(&name).display());
                }
            }
        }
        Ok(())
    }

    fn remove(&self, name: &std::ffi::OsStr) -> Result<(), DriverError> {
        let fd = fsutil::open_root(&self.dir).map_err(|e| DriverError::io("open", &self.dir, e))?;
        fsutil::remove_all_at(fd.as_fd(), name)
            .map_err(|e| DriverError::io("remove", self.dir.join(name), e))
    }

    /// Removes a temp path of this process (after a failed create).
    pub fn discard(&self, tmp: &Path) {
        if let Some(name) = tmp.file_name() {
            let _ = self.remove(name);
        }
    }

    /// Deletes the directory `dir` of layer `id`: first renamed into the temp area, then
    /// removed there, never following symlinks.
    pub fn delete(&self, id: &str, dir: &Path) -> Result<(), DriverError> {
        let tmp = self.path(id);
        fs::rename(dir, &tmp).map_err(|e| DriverError::io("rename", dir, e))?;
        self.discard(&tmp);
        if tmp.exists() {
            return Err(DriverError::io(
                "remove",
                &tmp,
                std::io::Error::other("could not remove"),
            ));
        }
        Ok(())
    }
}

/// Refuses to remove `id` while it is mounted or is the parent of another layer.
pub fn check_removable<D: Driver + ?Sized>(d: &D, id: &str) -> Result<(), DriverError> {
    if !d.exists(id) {
        return Err(DriverError::NotFound(id.to_string()));
    }
    let n = d.mount_count(id)?;
    if n > 0 {
        return Err(DriverError::InUse {
            id: id.to_string(),
            what: format!("mounted {n} time(s)"),
        });
    }
    for other in d.list()? {
        // A layer without metadata (crash debris) names no parent.
        let parent = match d.parent(&other) {
            Err(DriverError::NotFound(_)) => None,
            r => r?,
        };
        if other != id && parent.as_deref() == Some(id) {
            return Err(DriverError::InUse {
                id: id.to_string(),
                what: format!("parent of layer {other}"),
            });
        }
    }
    Ok(())
}
