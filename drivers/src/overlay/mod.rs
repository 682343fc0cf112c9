//! The overlay2 driver: kernel overlayfs, laid out like Docker's so people who know it
//! feel at home: `<id>/diff` (the layer's own changes), `<id>/link` (a short name),
//! `<id>/lower` (`l/<short>:l/<short>...`, top first), `<id>/work`, `<id>/merged`, and the
//! short links under `l/`. Mounts use the new mount API with one `lowerdir+` per layer, so
//! deep images mount where Docker stops at ~125 layers.

mod changes;
pub mod mount;
pub mod whiteout;

use crate::changes::Change;
use crate::driver::{ChangesSource, Driver, DriverOptions, LayerKind};
use crate::error::{check_id, DriverError};
use crate::refcount::MountRefs;
use crate::staging::{check_removable, Staging};
use crate::whiteout::WhiteoutFormat;
use fsutil::{self, write_atomic, write_synced};
use mount::{is_mounted, mount_overlay, unmount_overlay, OverlaySpec};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use whiteout::OverlayWhiteouts;

/// Names under the driver home that are not layers.
const RESERVED: &[&str] = &["l", "tmp", "mounts", "check", "supported", "fallback"];

/// The overlay2 driver.
#[derive(Debug)]
pub struct Overlay {
    home: PathBuf,
    refs: MountRefs,
    staging: Staging,
    backing: &'static str,
    /// Set when a native diff met redirect or metacopy xattrs and fell back to a tree walk.
    fell_back: AtomicBool,
}

fn short_name(id: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(id.as_bytes());
    d.iter().take(13).map(|b| format!("{b:02X}")).collect()
}

impl Overlay {
    /// Opens the driver at `home`, refusing with the reason when overlayfs cannot work
    /// there, and repairing mount state a crash left behind.
    pub fn open(home: &Path, opts: &DriverOptions) -> Result<Overlay, DriverError> {
        opts.for_driver("overlay2")?;
        let links = home.join("l");
        fs::create_dir_all(&links).map_err(|e| DriverError::io("create", links, e))?;
        let backing = fsutil::backing_fs(home).map_err(|e| DriverError::io("statfs", home, e))?;
        let unsupported = |reason: String| DriverError::Unsupported {
            driver: "overlay2".into(),
            reason,
        };
        if backing == "overlayfs" {
            return Err(unsupported(format!(
                "{} is itself on overlayfs, which cannot be an upper layer: put the data root on ext4, xfs or btrfs",
                home.display()
            )));
        }
        let ov = Overlay {
            home: home.to_path_buf(),
            refs: MountRefs::new(&home.join("mounts"))?,
            staging: Staging::open(home)?,
            backing,
            fell_back: AtomicBool::new(false),
        };
        // Detect support once per backing filesystem: a real test mount, remembered by the
        // device number of the home directory.
        let dev = fs::metadata(home)
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .unwrap_or(0);
        let marker = home.join("supported");
        let known = fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            == Some(dev);
        if !known {
            ov.check_support().map_err(|e| {
                unsupported(format!("a test overlay mount on {backing} failed: {e}"))
            })?;
            write_atomic(&marker, dev.to_string().as_bytes())
                .map_err(|e| DriverError::io("write", &marker, e))?;
        }
        ov.repair_mounts()?;
        Ok(ov)
    }

    /// Mounts a real overlay with a whiteout on the backing filesystem once.
    fn check_support(&self) -> std::io::Result<()> {
        let dir =
            self.home
                .join("tmp")
                .join(format!("check.{}.{}", check_nonce(), std::process::id()));
        let _ = fsutil::remove_tree(&dir);
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir_all(dir.join(d))?;
        }
        fs::write(dir.join("lower/file"), b"x")?;
        fs::create_dir(dir.join("lower/sub"))?;
        fs::write(dir.join("lower/sub/inner"), b"y")?;
        let result = Self::check_d_type(&dir.join("lower")).and_then(|()| {
            let spec = OverlaySpec {
                lowers: &[dir.join("lower")],
                upper: Some((&dir.join("upper"), &dir.join("work"))),
            };
            let merged = dir.join("merged");
            mount_overlay(&spec, &merged)?;
            // A whiteout (a 0/0 device) and an opaque directory (a trusted xattr): both
            // must work for layers to be stored.
            let r = fs::remove_file(merged.join("file"))
                .and_then(|()| fsutil::remove_tree(merged.join("sub")))
                .and_then(|()| fs::create_dir(merged.join("sub")));
            let u = unmount_overlay(&merged);
            r.and(u)?;
            let opaque = fsutil::xattr::fget_all(&fsutil::open_root(&dir.join("upper/sub"))?)?;
            if !opaque.iter().any(|(k, _)| k == whiteout::OPAQUE_XATTR) {
                return Err(std::io::Error::other(
                    "the filesystem did not keep trusted.overlay.opaque (no xattr support)",
                ));
            }
            Ok(())
        });
        let _ = fsutil::remove_tree(&dir);
        result
    }

    /// overlayfs needs directory entry types (d_type); XFS made with ftype=0 lacks them.
    fn check_d_type(dir: &Path) -> std::io::Result<()> {
        let fd = fsutil::open_root(dir)?;
        let mut d = rustix::fs::Dir::read_from(&fd)?;
        while let Some(e) = d.read() {
            let e = e?;
            if e.file_name().to_bytes() == b"file" && e.file_type() == rustix::fs::FileType::Unknown
            {
                return Err(std::io::Error::other(
                    "the filesystem does not report d_type (xfs needs ftype=1): overlay cannot work on it",
                ));
            }
        }
        Ok(())
    }

    /// After a crash: counts whose mount is gone are reset; mounts nobody counts are removed.
    /// Each decision is taken again under the count's lock before it acts (see
    /// [`MountRefs::under_lock`]); the cheap checks outside only pick the candidates.
    fn repair_mounts(&self) -> Result<(), DriverError> {
        for (id, _) in self.refs.held()? {
            let merged = self.merged(&id);
            if self.has_parent(&id) && !is_mounted(&merged) {
                self.refs
                    .under_lock(&id, |n| Ok((n > 0 && !is_mounted(&merged)).then_some(0)))?;
            }
        }
        for id in self.list()? {
            let merged = self.merged(&id);
            if is_mounted(&merged) {
                self.refs.under_lock(&id, |n| {
                    if n == 0 && is_mounted(&merged) {
                        unmount_overlay(&merged)
                            .map_err(|e| DriverError::io("unmount", &merged, e))?;
                    }
                    Ok(None)
                })?;
            }
        }
        Ok(())
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    fn merged(&self, id: &str) -> PathBuf {
        self.dir(id).join("merged")
    }

    fn has_parent(&self, id: &str) -> bool {
        self.dir(id).join("lower").exists()
    }

    /// The diff directories of `id`'s parents, top first.
    fn lowers(&self, id: &str) -> Result<Vec<PathBuf>, DriverError> {
        let p = self.dir(id).join("lower");
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DriverError::io("read", p, e)),
        };
        Ok(text
            .trim()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(|s| self.home.join(s))
            .collect())
    }
}

impl Driver for Overlay {
    fn name(&self) -> &'static str {
        "overlay2"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<(), DriverError> {
        check_id(id)?;
        if RESERVED.contains(&id) {
            return Err(DriverError::BadId(id.to_string()));
        }
        if self.exists(id) {
            return Err(DriverError::Exists(id.to_string()));
        }
        let lower = match parent {
            Some(p) => {
                check_id(p)?;
                if !self.exists(p) {
                    return Err(DriverError::NotFound(p.to_string()));
                }
                let plink = fs::read_to_string(self.dir(p).join("link"))
                    .map_err(|e| DriverError::io("read", self.dir(p).join("link"), e))?;
                let mut lower = format!("l/{}", plink.trim());
                if let Ok(pl) = fs::read_to_string(self.dir(p).join("lower")) {
                    lower.push(':');
                    lower.push_str(pl.trim());
                }
                Some(lower)
            }
            None => None,
        };
        let tmp = self.staging.path(id);
        self.staging.discard(&tmp);
        let short = short_name(id);
        let build = || -> std::io::Result<()> {
            fs::create_dir_all(&tmp)?;
            for d in ["diff", "work", "merged"] {
                fs::create_dir(tmp.join(d))?;
            }
            fs::set_permissions(
                tmp.join("diff"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )?;
            // Files of the staging dir are flushed, then the dir once, then it is renamed.
            // A scratch layer (`run --rm`) is not flushed: a crash makes it debris anyway.
            let durable = kind != LayerKind::Scratch;
            let write = |p: &Path, d: &[u8]| {
                if durable {
                    write_synced(p, d)
                } else {
                    fs::write(p, d)
                }
            };
            write(&tmp.join("link"), short.as_bytes())?;
            if let Some(l) = &lower {
                write(&tmp.join("lower"), l.as_bytes())?;
                write(&tmp.join("parent"), parent.unwrap_or_default().as_bytes())?;
            }
            if durable {
                fsutil::fsync_dir(&tmp)?;
            }
            let links = self.home.join("l");
            let link = links.join(&short);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../{id}/diff"), &link)?;
            fs::rename(&tmp, self.dir(id))?;
            if !durable {
                return Ok(());
            }
            fsutil::fsync_dir(&links)?;
            fsutil::fsync_dir(&self.home)
        };
        build().map_err(|e| {
            self.staging.discard(&tmp);
            let _ = fs::remove_file(self.home.join("l").join(&short));
            DriverError::io("create layer", self.dir(id), e)
        })
    }

    fn remove(&self, id: &str) -> Result<(), DriverError> {
        check_id(id)?;
        check_removable(self, id)?;
        if is_mounted(&self.merged(id)) {
            unmount_overlay(&self.merged(id))
                .map_err(|e| DriverError::io("unmount", self.merged(id), e))?;
        }
        self.staging.delete(id, &self.dir(id))?;
        let _ = fs::remove_file(self.home.join("l").join(short_name(id)));
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && !RESERVED.contains(&id) && self.dir(id).join("diff").is_dir()
    }

    fn parent(&self, id: &str) -> Result<Option<String>, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        match fs::read_to_string(self.dir(id).join("parent")) {
            Ok(p) => Ok(Some(p.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DriverError::io("read", self.dir(id).join("parent"), e)),
        }
    }

    fn list(&self) -> Result<Vec<String>, DriverError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.home).map_err(|e| DriverError::io("read", &self.home, e))? {
            let e = e.map_err(|e| DriverError::io("read", &self.home, e))?;
            if let Some(name) = e.file_name().to_str() {
                if self.exists(name) {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn get(&self, id: &str) -> Result<PathBuf, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        if !self.has_parent(id) {
            // A base layer is its own diff directory: nothing to mount.
            self.refs.acquire(id, |_| Ok(()))?;
            return Ok(self.dir(id).join("diff"));
        }
        let merged = self.merged(id);
        self.refs.acquire(id, |first| {
            if first || !is_mounted(&merged) {
                let lowers = self.lowers(id)?;
                let upper = self.dir(id).join("diff");
                let work = self.dir(id).join("work");
                let spec = OverlaySpec {
                    lowers: &lowers,
                    upper: Some((&upper, &work)),
                };
                let t = std::time::Instant::now();
                mount_overlay(&spec, &merged)
                    .map_err(|e| DriverError::io("mount overlay", &merged, e))?;
                tracing::debug!(
                    layer = id,
                    lowers = lowers.len(),
                    us = t.elapsed().as_micros() as u64,
                    "overlay mounted"
                );
            }
            Ok(())
        })?;
        Ok(merged)
    }

    fn put(&self, id: &str) -> Result<(), DriverError> {
        check_id(id)?;
        let merged = self.merged(id);
        let mounts = self.has_parent(id);
        self.refs.release(id, || {
            if mounts {
                unmount_overlay(&merged).map_err(|e| DriverError::io("unmount", &merged, e))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn mount_count(&self, id: &str) -> Result<u32, DriverError> {
        self.refs.count_of(id)
    }

    fn diff_dir(&self, id: &str) -> Result<PathBuf, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        Ok(self.dir(id).join("diff"))
    }

    fn whiteout_format(&self) -> &dyn WhiteoutFormat {
        &OverlayWhiteouts
    }

    fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>, DriverError> {
        self.lowers(id)
    }

    fn changes(&self, id: &str) -> Result<Vec<Change>, DriverError> {
        Ok(self.changes_with_source(id)?.0)
    }

    /// With a native diff the upper dir holds every changed path in full (no metacopy, no
    /// redirects), so it is the source; after a fallback the merged view must be read.
    fn changes_with_source(
        &self,
        id: &str,
    ) -> Result<(Vec<Change>, Option<ChangesSource>), DriverError> {
        let lowers = self.lowers(id)?;
        let upper = self.diff_dir(id)?;
        changes::native_or_walk(self, id, upper, &lowers, || {
            // Remembered on disk so `info` in any later process says so too.
            let _ = write_atomic(&self.home.join("fallback"), id.as_bytes());
            self.fell_back.store(true, Ordering::Relaxed);
        })
    }

    fn status(&self) -> Vec<(String, String)> {
        let native =
            if self.fell_back.load(Ordering::Relaxed) || self.home.join("fallback").exists() {
                "false (redirect_dir or metacopy entries found; using the tree walk)"
            } else {
                "true"
            };
        vec![
            ("Backing Filesystem".into(), self.backing.into()),
            ("Supports d_type".into(), "true".into()),
            ("Native Overlay Diff".into(), native.into()),
            (
                "Mount Options".into(),
                "index=off,redirect_dir=off,metacopy=off".into(),
            ),
            (
                "Layer Limit".into(),
                "none (new mount API, one lowerdir+ per layer)".into(),
            ),
            (
                "Layers".into(),
                self.list().map(|l| l.len()).unwrap_or(0).to_string(),
            ),
        ]
    }

    fn cleanup(&self) -> Result<(), DriverError> {
        for (id, _) in self.refs.held()? {
            let merged = self.merged(&id);
            if is_mounted(&merged) {
                unmount_overlay(&merged).map_err(|e| DriverError::io("unmount", merged, e))?;
            }
        }
        self.refs.reset()
    }
}

/// A number no other check of this process uses (threads of one process may open the
/// driver at the same moment); the pid stays last, where the staging cleaner reads it.
fn check_nonce() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
