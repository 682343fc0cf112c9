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

/// Set in a helper's environment by [`detach`] to the spawner's pid; [`detach_self`] acts
/// on it only when that is its parent (a variable left in a user's shell does nothing).
const DETACH_ENV: &str = "STRATA_DETACH";

/// Makes `cmd` (a `strata` helper) start detached: in a session of its own (it survives
/// the caller and terminal signals) and as a grandchild, so it is never a child, or a
/// zombie, of the caller, which may be a long-running, many-threaded server. The caller
/// still waits for the process it spawned, which ends at once.
///
/// The detaching is done by the helper itself ([`detach_self`], first thing in `strata`'s
/// main), not between fork and exec here: a `pre_exec` hook makes the standard library
/// fork the caller, and forking the daemon copied its page tables and made every thread
/// fault on its next write (measured: 40 % of the daemon's CPU under container churn).
/// Without the hook the spawn is a `posix_spawn` (vfork-like, nothing copied).
pub fn detach(cmd: &mut std::process::Command) {
    cmd.env(DETACH_ENV, std::process::id().to_string());
}

/// The helper's half of [`detach`]: when asked to, a new session and a fork whose parent
/// exits at once (the spawner reaps it). Call before any thread is started.
pub fn detach_self() {
    let Some(spawner) = std::env::var_os(DETACH_ENV) else {
        return;
    };
    // At the start of main, with one thread: the variable must not reach the helper's own
    // children.
    std::env::remove_var(DETACH_ENV);
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    if spawner.to_str() != Some(parent.to_string().as_str()) {
        return;
    }
    if let Err(e) = rustix::process::setsid() {
        eprintln!("strata: cannot start a session for a detached helper: {e}");
        std::process::exit(125);
    }
    // SAFETY: one thread: the child continues as a normal process.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!(
                "strata: cannot fork a detached helper: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(125);
        }
        0 => {}
        // SAFETY: the intermediate process leaves without running anything else.
        _ => unsafe { libc::_exit(0) },
    }
}
