//! Mount table queries shared by the mounting drivers.

use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
use std::ffi::CString;
use std::io;
use std::path::Path;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// mount(2) with classic flags (`MS_*`) and string arguments, for the container setup and
/// the union server's confinement, which need flag combinations (`MS_BIND|MS_REMOUNT|..`)
/// the typed wrappers split apart. Empty `data` is passed as none.
pub fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.filter(|d| !d.is_empty()).map(cstr).transpose()?;
    // SAFETY: every pointer is a valid NUL-terminated string or null, alive for the call.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags as libc::c_ulong,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `path` is a mount point: asked of `statx` (`STATX_ATTR_MOUNT_ROOT`, decided
/// by the VFS; `AT_STATX_DONT_SYNC` keeps a FUSE mount's server out of it), which is
/// cheap; read from /proc/self/mountinfo (cost grows with the mount table) only on a
/// kernel without that attribute or when `statx` fails, as on a dead FUSE mount.
pub fn is_mounted(path: &Path) -> bool {
    let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC;
    match rustix::fs::statx(CWD, path, flags, StatxFlags::BASIC_STATS) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => false,
        _ => in_mountinfo(path),
    }
}

/// Whether `path` is listed as a mount point in /proc/self/mountinfo.
pub fn in_mountinfo(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| m.replace("\\040", " ") == want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_from_plain_directories() {
        assert!(is_mounted(Path::new("/proc")));
        assert!(is_mounted(Path::new("/")));
        assert!(
            !is_mounted(Path::new("/proc/self/fd")) || in_mountinfo(Path::new("/proc/self/fd"))
        );
        let d = tempfile::tempdir().unwrap();
        assert!(!is_mounted(d.path()));
        assert!(!is_mounted(&d.path().join("missing")));
        assert_eq!(
            is_mounted(Path::new("/sys")),
            in_mountinfo(Path::new("/sys"))
        );
    }
}
