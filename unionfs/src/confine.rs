//! Confines the union server to its branches. Once the union is mounted, the server moves
//! into a mount namespace of its own whose root (`pivot_root`, the old root detached) is an
//! empty tmpfs holding only the branches, bound at `/b0` (the upper, writable) and `/b1`...
//! (the lowers, read-only), and a `/proc` for its own descriptors.
//!
//! The first defense against a container racing the server is in `branch`: every operation
//! resolves beneath a branch's root descriptor and refuses symlinks on the way. This is the
//! second: should any call still follow a symlink a container swapped in, a target such as
//! `/etc/shadow` or `../../..` can only lead to a branch, and every branch but the
//! container's own upper layer is read-only, so it can never reach a host file or another
//! container's image layers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The branches to confine the server to.
pub struct Prepared {
    branches: Vec<PathBuf>,
    at: PathBuf,
}

/// Where branch `i` is seen from inside the confined server.
pub fn inner_path(i: usize) -> PathBuf {
    PathBuf::from(format!("/b{i}"))
}

/// The branches (upper first). The new root is built on `/tmp` (or `/run`), covered only
/// inside the server's own mount namespace; never on a branch itself.
pub fn prepare(branches: &[&Path]) -> io::Result<Prepared> {
    let at = ["/tmp", "/run", "/mnt"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir() && !branches.iter().any(|b| b == d))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no /tmp, /run or /mnt to build the server's root on",
            )
        })?;
    Ok(Prepared {
        branches: branches.iter().map(|b| b.to_path_buf()).collect(),
        at,
    })
}

/// Opens the branches in the current mount namespace, before the new root covers any.
fn open_branches(branches: &[PathBuf]) -> io::Result<Vec<OwnedFd>> {
    branches
        .iter()
        .map(|b| {
            Ok(rustix::fs::open(
                b,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?)
        })
        .collect()
}

fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    fsutil::mount(src, &target.to_string_lossy(), fstype, flags, data)
}

/// Enters the confinement: a private mount namespace, a tmpfs root with the branches
/// bound in, `pivot_root` into it and detach the old root. Call while the process still
/// has one thread.
pub fn enter(p: Prepared) -> io::Result<()> {
    let step = |what: &'static str| {
        move |e: io::Error| io::Error::new(e.kind(), format!("confine the server: {what}: {e}"))
    };
    // SAFETY: unshare of the mount namespace only, with no other thread running.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| step("new mount namespace")(e.into()))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(step("make mounts private"))?;
    let fds = open_branches(&p.branches).map_err(step("open the branches"))?;
    let root = &p.at;
    mount(
        Some("strata-union-root"),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0700,size=64k"),
    )
    .map_err(step("mount the new root"))?;
    for (i, fd) in fds.iter().enumerate() {
        let target = root.join(format!("b{i}"));
        std::fs::create_dir(&target).map_err(step("make a branch mount point"))?;
        let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(&src),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(step("bind a branch"))?;
        if i > 0 {
            mount(
                None,
                &target,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )
            .map_err(step("make a lower branch read-only"))?;
        }
    }
    drop(fds);
    // /proc/self/fd: how the server changes an entry's mode and xattrs through a handle
    // it holds, where the kernel has no `*at` call that leaves a final symlink alone. Only
    // the process directories (`subset=pid`, where the kernel has it), nothing executable.
    let proc = root.join("proc");
    std::fs::create_dir(&proc).map_err(step("make the /proc mount point"))?;
    let pflags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        pflags,
        Some("subset=pid"),
    )
    .or_else(|_| mount(Some("proc"), &proc, Some("proc"), pflags, None))
    .map_err(step("mount /proc"))?;
    // pivot_root, then detach the old root: the namespace's copies of every other mount
    // (this union's own among them) go, so none is kept alive by the server (an unmount on
    // the host must end this union's connection, and must not leave other mounts pinned).
    rustix::process::chdir(root.as_path()).map_err(|e| step("enter the new root")(e.into()))?;
    rustix::process::pivot_root(".", ".").map_err(|e| step("pivot_root")(e.into()))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| step("detach the old root")(e.into()))?;
    rustix::process::chdir("/")?;
    Ok(())
}
