//! Mounting and running one union: what the `strata unionfs-serve` helper process does.

use crate::branches::Union;
use crate::fuse::UnionFs;
use fuser::{Config, MountOption, SessionACL};
use std::io::{self, Write};
use std::path::PathBuf;

/// One union mount.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The writable branch.
    pub upper: PathBuf,
    /// The read-only branches, nearest first.
    pub lowers: Vec<PathBuf>,
    pub mountpoint: PathBuf,
    /// Worker threads answering requests.
    pub threads: usize,
    /// Hand opened files to the kernel (FUSE passthrough) where it supports that; off
    /// only to measure what it buys.
    pub passthrough: bool,
}

/// Mounts the union and serves it until it is unmounted. Once mounted it writes `ready`,
/// its pid and a newline to `ready` (the parent waits for it), so the caller never sees a
/// half-made mount.
pub fn serve(opts: &ServeOptions, ready: &mut dyn Write) -> io::Result<()> {
    // The server sees the branches at /b0, /b1... once confined (see `confine`).
    let mut branches = vec![opts.upper.as_path()];
    branches.extend(opts.lowers.iter().map(PathBuf::as_path));
    let prepared = crate::confine::prepare(&branches)?;
    let union = Union::new(
        crate::confine::inner_path(0),
        (1..branches.len())
            .map(crate::confine::inner_path)
            .collect(),
    );
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("strata-union".into()),
        MountOption::Subtype("strata".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
        MountOption::Exec,
        MountOption::RW,
    ];
    cfg.acl = SessionACL::All;
    cfg.n_threads = Some(opts.threads.max(1));
    let session = fuser::Session::new(
        UnionFs::new(union, opts.passthrough),
        &opts.mountpoint,
        &cfg,
    )?;
    crate::confine::enter(prepared)?;
    writeln!(ready, "ready {}", std::process::id())?;
    ready.flush()?;
    session.run()
}
