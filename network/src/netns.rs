//! Network namespaces that outlive the process that made them: the namespace is bind
//! mounted on a file (as `ip netns add` does), so a container's or a network's namespace
//! stays while strata comes and goes. After a reboot the file is still there but no
//! longer a namespace ([`is_live`] tells), and the next use makes it again.
//!
//! Work inside a namespace runs on a thread of its own that joins it ([`run_in`]): the
//! namespace of a thread is its own, so the caller (and the daemon's other threads) stay
//! where they are, and no process is forked.

use crate::error::{NetError, Result};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `NSFS_MAGIC`: the filesystem type of a namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Whether `path` is a namespace file (a live bind mount of one).
pub fn is_live(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == NSFS_MAGIC)
}

/// Opens the namespace at `path`, refusing anything that is not one.
pub fn open(path: &Path) -> Result<File> {
    let f = File::open(path).map_err(|e| NetError::io(format!("open {}", path.display()), e))?;
    let ok = rustix::fs::fstatfs(&f).is_ok_and(|s| s.f_type == NSFS_MAGIC);
    if !ok {
        return Err(NetError::io(
            format!("open {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, "not a network namespace"),
        ));
    }
    Ok(f)
}

/// Runs `f` on a thread that joined the network namespace `ns`.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on this thread only, with a descriptor the caller keeps open.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a network setup thread panicked")))
    })
}

/// Makes a new network namespace kept at `path` (a file made for it), runs `init` inside
/// it, and returns it open. A namespace already live at `path` is returned as it is
/// (without `init`); a stale file (after a reboot) gets a new namespace.
pub fn create(path: &Path, init: impl FnOnce() -> io::Result<()> + Send) -> Result<File> {
    if is_live(path) {
        return open(path);
    }
    let what = || format!("make the network namespace {}", path.display());
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| NetError::io(what(), e))?;
    // Two processes making the same namespace at once (two starts after a reboot) would
    // stack two mounts on one file: one makes it, the other finds it live.
    let lock = File::create(dir.join(".lock")).map_err(|e| NetError::io(what(), e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| NetError::io(what(), e.into()))?;
    if is_live(path) {
        return open(path);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| NetError::io(what(), e))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // SAFETY: unshare of this thread's network namespace only.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
                return Err(io::Error::last_os_error());
            }
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)?;
            init()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a network setup thread panicked")))
    });
    if let Err(e) = made {
        remove(path);
        return Err(NetError::io(what(), e));
    }
    open(path)
}

/// Lets go of the namespace at `path` (it ends once no process is in it) and removes
/// the file. Missing is fine.
pub fn remove(path: &Path) {
    let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
    let _ = std::fs::remove_file(path);
}
