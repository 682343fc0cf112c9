//! Finding the `strata` executable, whose hidden verbs (the FUSE union server, the
//! container shim) are started with exec by the libraries: a fresh process, never a fork
//! of a caller that may be a long-running, many-threaded server.

use std::path::PathBuf;

/// The `strata` executable: `$STRATA_HELPER` (or the older `$STRATA_UNIONFS_HELPER`),
/// else the running `strata` itself, else a `strata` beside (or one level above) the
/// running executable (test binaries live in `target/*/deps`), else `strata` on `PATH`.
pub fn strata_binary() -> Option<PathBuf> {
    for var in ["STRATA_HELPER", "STRATA_UNIONFS_HELPER"] {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == "strata") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    for cand in [dir.join("strata"), dir.join("..").join("strata")] {
        if cand.is_file() {
            return Some(cand);
        }
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("strata"))
            .find(|f| f.is_file())
    })
}

/// Makes `cmd` start detached: in a session of its own (it survives the caller and
/// terminal signals) and as a grandchild (the process spawned forks it and exits at once),
/// so it is never a child, or a zombie, of the caller, which may be a long-running,
/// many-threaded server. The caller still waits for the process it spawned, which ends
/// at once. Only async-signal-safe calls run between fork and exec.
pub fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid, fork and _exit are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            match libc::fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => Ok(()),
                _ => libc::_exit(0),
            }
        });
    }
}
