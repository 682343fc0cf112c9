//! Changes to an entry of an open directory that must not follow the entry if it is a
//! symlink, where the kernel has no such `*at` flag (`fchmodat` ignores
//! `AT_SYMLINK_NOFOLLOW` before Linux 6.6): done through an `O_PATH` handle to the entry.

use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `chmod` of `name` in `dir` itself. A symlink is refused (symlinks have no mode of
/// their own); nothing is ever followed, so a name swapped for a symlink to a host file
/// cannot redirect the change.
pub fn chmod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let node = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&node)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    // The magic link names exactly the inode the handle holds.
    let proc = format!("/proc/self/fd/{}", node.as_raw_fd());
    rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode))?;
    Ok(())
}
