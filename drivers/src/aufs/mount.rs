//! Mounting an AUFS-style layer: kernel aufs where the kernel has it, else strata's FUSE
//! union (`strata unionfs-serve`, one process per mount, started here and ended by
//! unmounting).

use fsutil::is_mounted;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How unions are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounter {
    /// The kernel's aufs.
    Kernel,
    /// strata's FUSE union, served by this helper executable.
    Fuse(PathBuf),
}

/// The executable that serves FUSE unions (`strata unionfs-serve`).
pub fn find_helper() -> Option<PathBuf> {
    fsutil::strata_binary()
}

/// Mounts the union of `upper` over `lowers` (nearest first) on `target` with kernel aufs.
pub fn mount_kernel(upper: &Path, lowers: &[PathBuf], target: &Path) -> io::Result<()> {
    let mut br = format!("br:{}=rw", upper.display());
    for l in lowers {
        br.push_str(&format!(":{}=ro+wh", l.display()));
    }
    // The external inode table beside the mount point, inside the root-only data root: a
    // fixed name in /dev/shm would be shared by every mount and open to other users.
    br.push_str(&format!(",dio,xino={}.xino", target.display()));
    let data = std::ffi::CString::new(br).map_err(io::Error::other)?;
    rustix::mount::mount(
        "none",
        target,
        "aufs",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )?;
    Ok(())
}

/// Starts a FUSE union server for `upper` over `lowers` on `target` and waits until it is
/// mounted. The server runs in its own session, started by a double fork: the process this
/// one spawns forks the server and exits at once, and is reaped here, so the server is
/// never a child of the caller (which may be a long-running, many-threaded process) and
/// never left a zombie. It outlives the command that mounted and logs to `log`. Returns
/// its pid (which it reports itself).
pub fn mount_fuse(
    helper: &Path,
    upper: &Path,
    lowers: &[PathBuf],
    target: &Path,
    log: &Path,
) -> io::Result<u32> {
    let opts = unionfs::ServeOptions {
        upper: upper.to_path_buf(),
        lowers: lowers.to_vec(),
        mountpoint: target.to_path_buf(),
        threads: 1,
        passthrough: true,
    };
    let mut cmd = Command::new(helper);
    cmd.arg(unionfs::serve_args::SUBCOMMAND)
        .args(opts.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(log)?);
    fsutil::helper::detach(&mut cmd);
    let mut child = cmd.spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    // The intermediate process has exited (or does now): reap it.
    let _ = child.wait();
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => Ok(pid),
        None => {
            let why = fs::read_to_string(log).unwrap_or_default();
            Err(io::Error::other(format!(
                "the FUSE union server did not mount {}: {}",
                target.display(),
                why.trim()
            )))
        }
    }
}

/// Whether a union mount is alive: mounted and answering (a crashed FUSE server leaves a
/// mount whose every request fails with ENOTCONN). `statfs` is asked because FUSE never
/// answers it from a cache, unlike `stat`.
pub fn is_alive(target: &Path) -> bool {
    is_mounted(target)
        && !matches!(
            rustix::fs::statfs(target),
            Err(rustix::io::Errno::NOTCONN) | Err(rustix::io::Errno::IO)
        )
}

/// Unmounts a union (lazily when its server is dead) and waits for its server to exit.
pub fn unmount(target: &Path, pid: Option<u32>) -> io::Result<()> {
    use rustix::mount::{unmount, UnmountFlags};
    if is_mounted(target) {
        let dead = !is_alive(target);
        let flags = if dead {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
        // A file closed just before may still be released by the kernel a moment later
        // (a deferred final put), which reads as EBUSY: retry briefly before calling it busy.
        let mut tries = 0;
        loop {
            match unmount(target, flags) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => break,
                Err(rustix::io::Errno::BUSY) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(pid) = pid {
        let deadline = Instant::now() + Duration::from_secs(5);
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        while proc_dir.exists() && Instant::now() < deadline {
            // A zombie left by a parent that has not reaped it yet counts as gone.
            if fs::read_to_string(proc_dir.join("stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if proc_dir.exists() && Instant::now() >= deadline {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
    Ok(())
}
