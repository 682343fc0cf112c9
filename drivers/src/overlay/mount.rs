//! Mounting overlayfs with the new mount API: one `lowerdir+` per layer, so there is no
//! page-size limit on the option string (Docker's ~125-layer limit, moby#26380).

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};
use std::io;
use std::path::{Path, PathBuf};

/// What to mount: lower directories top-first, the upper and work directories.
pub struct OverlaySpec<'a> {
    pub lowers: &'a [PathBuf],
    pub upper: Option<(&'a Path, &'a Path)>,
}

fn set(fd: &std::os::fd::OwnedFd, key: &str, value: &str) -> io::Result<()> {
    fsconfig_set_string(fd, key, value).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("overlay option {key}={value}: {e}"),
        )
    })
}

/// Mounts `spec` on `target`. Index, redirect_dir and metacopy are off so that an upper
/// directory is exactly the layer's changes (what the native diff relies on).
pub fn mount_overlay(spec: &OverlaySpec<'_>, target: &Path) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in spec.lowers {
        set(&fs, "lowerdir+", &l.to_string_lossy())?;
    }
    if let Some((upper, work)) = spec.upper {
        set(&fs, "upperdir", &upper.to_string_lossy())?;
        set(&fs, "workdir", &work.to_string_lossy())?;
    }
    for (k, v) in [
        ("index", "off"),
        ("redirect_dir", "off"),
        ("metacopy", "off"),
    ] {
        // Older kernels lack some of these keys; their defaults are off there too.
        let _ = fsconfig_set_string(&fs, k, v);
    }
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    // The fds are dropped here, before anyone unmounts (else EBUSY).
    Ok(())
}

/// Unmounts `target`.
pub fn unmount_overlay(target: &Path) -> io::Result<()> {
    match unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) => Ok(()), // not mounted
        Err(rustix::io::Errno::BUSY) => Ok(unmount(target, UnmountFlags::DETACH)?),
        Err(e) => Err(e.into()),
    }
}

pub use fsutil::is_mounted;
