//! The container's filesystem view, set up by the container's first process in its new
//! mount namespace: the rootfs bind-mounted on itself, `/proc`, a minimal `/dev`, `/sys`
//! read-only, the bind mounts and volumes, then `pivot_root` into it, then Docker's masked
//! and read-only paths. Every mount target is opened inside the rootfs (openat2
//! `RESOLVE_IN_ROOT`) and mounted through its `/proc/self/fd` path, so a symlink in the
//! image can never redirect a mount onto the host (CVE-2019-16884 / -19921 style).

use crate::devices::Node;
use crate::spec::{Plan, PlanMount};
use fsutil::mount;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path};

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn open_at_root(root: &OwnedFd, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Creates `dest` (and its parents) inside the tree open as `root`, as a directory or an
/// empty file, and returns an `O_PATH` handle to it; symlinks resolve inside the root.
pub fn make_target(root: &OwnedFd, dest: &Path, dir: bool) -> io::Result<OwnedFd> {
    let comps: Vec<_> = dest
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur = std::path::PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        let parent = open_at_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY)?;
        cur.push(c);
        let last = i + 1 == comps.len();
        match open_at_root(root, &cur, OFlags::PATH) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if last && !dir {
                    let f = rustix::fs::openat(
                        &parent,
                        c.as_os_str(),
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    )?;
                    drop(f);
                } else {
                    match rustix::fs::mkdirat(&parent, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    open_at_root(root, &cur, OFlags::PATH)
}

fn make_devices(dev: &OwnedFd) -> io::Result<()> {
    use rustix::fs::{makedev, mknodat, symlinkat, FileType};
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknodat(
            dev,
            name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            makedev(major, minor),
        )?;
        rustix::fs::chmodat(
            dev,
            name,
            Mode::from_raw_mode(0o666),
            rustix::fs::AtFlags::empty(),
        )?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlinkat(target, dev, name)?;
    }
    Ok(())
}

/// Makes the mount open as `fd` and all its submounts read-only (`mount_setattr` with
/// `AT_RECURSIVE`): a `:ro` bind of a tree with mounts inside is read-only all through,
/// where a remount would change only its top.
fn read_only_recursive(fd: &OwnedFd) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an empty path relative to a descriptor we own, a valid mount_attr and its
    // size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Err(io::Error::new(
                e.kind(),
                "read-only binds need mount_setattr (Linux 5.12 or later)",
            ));
        }
        return Err(e);
    }
    Ok(())
}

/// Makes the device nodes the spec lists (`--device`, `--privileged`) in the container's
/// `/dev`, with their owner and mode, replacing whatever was at the path.
fn make_nodes(root: &OwnedFd, nodes: &[Node]) -> io::Result<()> {
    use rustix::fs::{makedev, mknodat, FileType};
    for n in nodes {
        let rel = Path::new(n.path.trim_start_matches('/'));
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let dir = make_target(root, parent, true)?;
        let _ = rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty());
        let kind = match n.kind {
            'b' => FileType::BlockDevice,
            'p' => FileType::Fifo,
            _ => FileType::CharacterDevice,
        };
        mknodat(
            &dir,
            name,
            kind,
            Mode::from_raw_mode(n.mode & 0o777),
            makedev(n.major as u32, n.minor as u32),
        )?;
        rustix::fs::chownat(
            &dir,
            name,
            Some(rustix::process::Uid::from_raw(n.uid)),
            Some(rustix::process::Gid::from_raw(n.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        rustix::fs::chmodat(
            &dir,
            name,
            Mode::from_raw_mode(n.mode & 0o7777),
            rustix::fs::AtFlags::empty(),
        )?;
    }
    Ok(())
}

fn do_mount(root: &OwnedFd, m: &PlanMount) -> io::Result<()> {
    let dest = Path::new(m.destination.trim_start_matches('/'));
    if dest.as_os_str().is_empty() {
        return Ok(());
    }
    let is_dir = !m.bind || m.source.is_dir();
    if m.optional {
        match open_at_root(root, dest, OFlags::PATH) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            _ => {}
        }
    }
    let target = make_target(root, dest, is_dir)?;
    let tpath = fd_path(&target);
    if m.bind {
        let src = m.source.to_string_lossy();
        mount(
            Some(&src),
            &tpath,
            None,
            libc::MS_BIND | (m.flags & libc::MS_REC),
            None,
        )?;
        if m.readonly {
            // The handle opened before the mount names the directory under it: reopen to
            // reach the new mount, then make it and every mount under it read-only.
            let mounted = make_target(root, dest, is_dir)?;
            read_only_recursive(&mounted)?;
        }
    } else {
        let src = m.source.to_string_lossy();
        let ro = if m.readonly { libc::MS_RDONLY } else { 0 };
        mount(
            Some(&src),
            &tpath,
            Some(&m.typ),
            m.flags | ro,
            Some(&m.data),
        )?;
    }
    if m.destination == "/dev" && m.typ == "tmpfs" {
        let dev = open_at_root(root, Path::new("dev"), OFlags::RDONLY | OFlags::DIRECTORY)?;
        make_devices(&dev)?;
    }
    Ok(())
}

fn mask(path: &str) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(_) => return Ok(()),
    };
    if md.is_dir() {
        mount(Some("tmpfs"), path, Some("tmpfs"), libc::MS_RDONLY, None)
    } else {
        mount(Some("/dev/null"), path, None, libc::MS_BIND, None)
    }
}

fn read_only(path: &str) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        None,
        path,
        None,
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
        None,
    )
}

/// Builds the container's view and pivots into it. Runs in the container's first process,
/// in its own mount namespace; on error says which step failed.
pub fn setup(plan: &Plan) -> Result<(), String> {
    let step = |what: &str, e: io::Error| format!("{what}: {e}");
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| step("make / private", e))?;
    let rootfs = plan.rootfs.to_string_lossy().to_string();
    mount(
        Some(&rootfs),
        &rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| step("bind the rootfs", e))?;
    let root = rustix::fs::open(
        &plan.rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("open the rootfs", e.into()))?;
    for m in &plan.mounts {
        do_mount(&root, m)
            .map_err(|e| step(&format!("mount {} on {}", m.typ, m.destination), e))?;
    }
    make_nodes(&root, &plan.device_nodes).map_err(|e| step("create the device nodes", e))?;
    let cwd = Path::new(plan.cwd.trim_start_matches('/'));
    if !cwd.as_os_str().is_empty() {
        make_target(&root, cwd, true)
            .map_err(|e| step(&format!("create the working directory {}", plan.cwd), e))?;
    }
    if plan.readonly_root {
        mount(
            None,
            &rootfs,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
        .map_err(|e| step("make the rootfs read-only", e))?;
    }
    drop(root);
    rustix::process::chdir(&plan.rootfs).map_err(|e| step("chdir to the rootfs", e.into()))?;
    rustix::process::pivot_root(".", ".").map_err(|e| step("pivot_root", e.into()))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| step("detach the old root", e.into()))?;
    rustix::process::chdir("/").map_err(|e| step("chdir /", e.into()))?;
    for p in &plan.masked {
        mask(p).map_err(|e| step(&format!("mask {p}"), e))?;
    }
    for p in &plan.readonly_paths {
        read_only(p).map_err(|e| step(&format!("make {p} read-only"), e))?;
    }
    Ok(())
}
