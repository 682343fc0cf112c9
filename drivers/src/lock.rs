//! Advisory file locks (flock) so several processes, and several threads of one, can share
//! one store: each lock is its own open file description, so threads exclude each other too.

use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// A held flock; released when dropped (or when the process dies, so a crash never
/// leaves a store locked).
#[derive(Debug)]
pub struct FileLock {
    _fd: OwnedFd,
}

impl FileLock {
    /// Blocks until an exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::take(path, FlockOperation::LockExclusive)
    }

    /// Blocks until a shared lock on `path` is held.
    pub fn shared(path: &Path) -> io::Result<FileLock> {
        Self::take(path, FlockOperation::LockShared)
    }

    /// An exclusive lock on `path` if nobody holds one now; `None` when it is held.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        match Self::take(path, FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn take(path: &Path, op: FlockOperation) -> io::Result<FileLock> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        rustix::fs::flock(&fd, op)?;
        Ok(FileLock { _fd: fd })
    }
}
