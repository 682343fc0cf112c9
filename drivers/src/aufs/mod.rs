//! The AUFS-style driver: Docker's aufs layout and on-disk form, mounted with kernel aufs
//! where the kernel has it and with strata's own FUSE union everywhere else.
//!
//! Layout under the driver home: `diff/<id>` (the layer's own changes, whiteouts as
//! `.wh.NAME` files), `layers/<id>` (its ancestors, nearest first, one a line), `mnt/<id>`
//! (where it is mounted), plus `mounts/` (reference counts), `servers/` (the pid of each
//! FUSE server), `logs/` and `tmp/`.

pub mod mount;
pub mod whiteout;

use crate::changes::Change;
use crate::driver::{ChangesSource, Driver, DriverOptions, LayerKind};
use crate::error::{check_id, DriverError};
use crate::refcount::MountRefs;
use crate::staging::{check_removable, Staging};
use crate::upper_walk::native_or_walk;
use crate::whiteout::WhiteoutFormat;
use fsutil::kernel_has;
use fsutil::{self, write_atomic, write_replace};
use mount::Mounter;
use std::fs;
use std::path::{Path, PathBuf};
use whiteout::{AufsLayerDir, AufsWhiteouts};

/// The AUFS-style driver.
#[derive(Debug)]
pub struct Aufs {
    home: PathBuf,
    refs: MountRefs,
    staging: Staging,
    mounter: Mounter,
}

impl Aufs {
    /// Opens (creating) the driver home. Refused where neither kernel aufs nor FUSE (with
    /// the union server) is available; mounts whose FUSE server died are cleaned up.
    pub fn open(home: &Path, opts: &DriverOptions) -> Result<Aufs, DriverError> {
        opts.for_driver("aufs")?;
        let unsupported = |reason: String| DriverError::Unsupported {
            driver: "aufs".into(),
            reason,
        };
        let mounter = if kernel_has("aufs") {
            Mounter::Kernel
        } else if !kernel_has("fuse") || !Path::new("/dev/fuse").exists() {
            return Err(unsupported(
                "the kernel has neither aufs nor FUSE (/dev/fuse)".into(),
            ));
        } else {
            match mount::find_helper() {
                Some(h) => Mounter::Fuse(h),
                None => {
                    return Err(unsupported(
                        "no kernel aufs, and the FUSE union server (the strata binary) was not found: set STRATA_UNIONFS_HELPER".into(),
                    ))
                }
            }
        };
        for sub in ["diff", "layers", "mnt", "servers", "logs"] {
            let p = home.join(sub);
            fs::create_dir_all(&p).map_err(|e| DriverError::io("create", p, e))?;
        }
        let d = Aufs {
            home: home.to_path_buf(),
            refs: MountRefs::new(&home.join("mounts"))?,
            staging: Staging::open(home)?,
            mounter,
        };
        d.repair()?;
        Ok(d)
    }

    fn diff(&self, id: &str) -> PathBuf {
        self.home.join("diff").join(id)
    }

    fn layers_file(&self, id: &str) -> PathBuf {
        self.home.join("layers").join(id)
    }

    fn mnt(&self, id: &str) -> PathBuf {
        self.home.join("mnt").join(id)
    }

    fn server_file(&self, id: &str) -> PathBuf {
        self.home.join("servers").join(id)
    }

    /// The ancestors of `id`, nearest first.
    fn ancestors(&self, id: &str) -> Result<Vec<String>, DriverError> {
        let p = self.layers_file(id);
        let s = fs::read_to_string(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DriverError::NotFound(id.to_string())
            } else {
                DriverError::io("read", &p, e)
            }
        })?;
        Ok(s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn ancestor_dirs(&self, id: &str) -> Result<Vec<PathBuf>, DriverError> {
        Ok(self.ancestors(id)?.iter().map(|a| self.diff(a)).collect())
    }

    fn server_pid(&self, id: &str) -> Option<u32> {
        fs::read_to_string(self.server_file(id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Mount counts whose mount is gone or whose server died are reset (after unmounting
    /// what is left), and mounts nothing counts are unmounted.
    fn repair(&self) -> Result<(), DriverError> {
        // Each decision is taken again under the count's lock before it acts.
        for (id, _) in self.refs.held()? {
            let m = self.mnt(&id);
            if !mount::is_alive(&m) {
                self.refs.under_lock(&id, |n| {
                    if n == 0 || mount::is_alive(&m) {
                        return Ok(None);
                    }
                    let _ = mount::unmount(&m, self.server_pid(&id));
                    let _ = fs::remove_file(self.server_file(&id));
                    Ok(Some(0))
                })?;
            }
        }
        let mnt = self.home.join("mnt");
        if let Ok(rd) = fs::read_dir(&mnt) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if crate::error::check_id(&id).is_err() || !fsutil::is_mounted(&e.path()) {
                    continue;
                }
                self.refs.under_lock(&id, |n| {
                    if n == 0 && fsutil::is_mounted(&e.path()) {
                        let _ = mount::unmount(&e.path(), self.server_pid(&id));
                        let _ = fs::remove_file(self.server_file(&id));
                    }
                    Ok(None)
                })?;
            }
        }
        Ok(())
    }

    fn do_mount(&self, id: &str) -> Result<(), DriverError> {
        let upper = self.diff(id);
        let lowers = self.ancestor_dirs(id)?;
        let target = self.mnt(id);
        if fsutil::is_mounted(&target) {
            // A dead server's leftover.
            let _ = mount::unmount(&target, self.server_pid(id));
        }
        match &self.mounter {
            Mounter::Kernel => mount::mount_kernel(&upper, &lowers, &target)
                .map_err(|e| DriverError::io("mount aufs", &target, e)),
            Mounter::Fuse(helper) => {
                let log = self.home.join("logs").join(format!("{id}.log"));
                let pid = mount::mount_fuse(helper, &upper, &lowers, &target, &log)
                    .map_err(|e| DriverError::io("mount FUSE union", &target, e))?;
                write_replace(&self.server_file(id), pid.to_string().as_bytes())
                    .map_err(|e| DriverError::io("write", self.server_file(id), e))
            }
        }
    }

    fn do_unmount(&self, id: &str) -> Result<(), DriverError> {
        let target = self.mnt(id);
        mount::unmount(&target, self.server_pid(id)).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                DriverError::InUse {
                    id: id.to_string(),
                    what: "files are open in its mount".into(),
                }
            } else {
                DriverError::io("unmount", &target, e)
            }
        })?;
        let _ = fs::remove_file(self.server_file(id));
        Ok(())
    }
}

impl Driver for Aufs {
    fn name(&self) -> &'static str {
        "aufs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, _kind: LayerKind) -> Result<(), DriverError> {
        check_id(id)?;
        if self.exists(id) {
            return Err(DriverError::Exists(id.to_string()));
        }
        let mut chain = Vec::new();
        if let Some(p) = parent {
            check_id(p)?;
            if !self.exists(p) {
                return Err(DriverError::NotFound(p.to_string()));
            }
            chain.push(p.to_string());
            chain.extend(self.ancestors(p)?);
        }
        let tmp = self.staging.path(id);
        let build = || -> std::io::Result<()> {
            fs::create_dir(&tmp)?;
            fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            let mut text = chain.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            write_atomic(&self.layers_file(id), text.as_bytes())?;
            match fs::create_dir(self.mnt(id)) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            // The rename is the commit point: before it the layer does not exist.
            fs::rename(&tmp, self.diff(id))?;
            fsutil::fsync_dir(&self.home.join("diff"))
        };
        build().map_err(|e| {
            self.staging.discard(&tmp);
            let _ = fs::remove_file(self.layers_file(id));
            let _ = fs::remove_dir(self.mnt(id));
            DriverError::io("create layer", self.diff(id), e)
        })
    }

    fn remove(&self, id: &str) -> Result<(), DriverError> {
        check_id(id)?;
        check_removable(self, id)?;
        if fsutil::is_mounted(&self.mnt(id)) {
            self.do_unmount(id)?;
        }
        self.staging.delete(id, &self.diff(id))?;
        let _ = fs::remove_file(self.layers_file(id));
        let _ = fs::remove_dir(self.mnt(id));
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.diff(id).is_dir() && self.layers_file(id).is_file()
    }

    fn parent(&self, id: &str) -> Result<Option<String>, DriverError> {
        Ok(self.ancestors(id)?.into_iter().next())
    }

    fn list(&self) -> Result<Vec<String>, DriverError> {
        crate::layer_meta::list_layer_dirs(&self.home.join("diff"))
    }

    fn get(&self, id: &str) -> Result<PathBuf, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        // A mount whose server died is remounted, whatever its count says: decided under
        // the count's lock, so two processes never both remount it.
        self.refs.acquire(id, |first| {
            if first || !mount::is_alive(&self.mnt(id)) {
                self.do_mount(id)
            } else {
                Ok(())
            }
        })?;
        Ok(self.mnt(id))
    }

    fn put(&self, id: &str) -> Result<(), DriverError> {
        check_id(id)?;
        self.refs.release(id, || self.do_unmount(id))?;
        Ok(())
    }

    fn mount_count(&self, id: &str) -> Result<u32, DriverError> {
        self.refs.count_of(id)
    }

    fn diff_dir(&self, id: &str) -> Result<PathBuf, DriverError> {
        if !self.exists(id) {
            return Err(DriverError::NotFound(id.to_string()));
        }
        Ok(self.diff(id))
    }

    fn whiteout_format(&self) -> &dyn WhiteoutFormat {
        &AufsWhiteouts
    }

    fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>, DriverError> {
        self.ancestor_dirs(id)
    }

    fn changes(&self, id: &str) -> Result<Vec<Change>, DriverError> {
        Ok(self.changes_with_source(id)?.0)
    }

    /// A layer's changes are exactly its `diff/<id>`, whiteouts included, so only that is
    /// walked, and it is where a commit reads the changed files from.
    fn changes_with_source(
        &self,
        id: &str,
    ) -> Result<(Vec<Change>, Option<ChangesSource>), DriverError> {
        let lowers = self.ancestor_dirs(id)?;
        native_or_walk(
            self,
            id,
            self.diff_dir(id)?,
            &lowers,
            &AufsLayerDir,
            None,
            || {},
        )
    }

    fn status(&self) -> Vec<(String, String)> {
        let backing = fsutil::backing_fs(&self.home).unwrap_or("unknown");
        let mounter = match &self.mounter {
            Mounter::Kernel => "kernel aufs".to_string(),
            Mounter::Fuse(h) => format!("FUSE union ({} unionfs-serve)", h.display()),
        };
        vec![
            ("Backing Filesystem".into(), backing.into()),
            ("Mount".into(), mounter),
            ("Native Diff".into(), "true".into()),
            (
                "Layers".into(),
                self.list().map(|l| l.len()).unwrap_or(0).to_string(),
            ),
        ]
    }

    fn cleanup(&self) -> Result<(), DriverError> {
        for (id, _) in self.refs.held()? {
            let _ = self.do_unmount(&id);
        }
        self.refs.reset()
    }
}
