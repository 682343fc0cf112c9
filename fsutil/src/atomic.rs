//! Crash-safe small-file writes: temp name, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A fresh temp name beside `path`: `.tmp-NAME-PID-NONCE`, the nonce random, so no
/// other user can guess it and plant a symlink there first.
pub fn temp_name_beside(path: &Path) -> io::Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let nonce = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mut tmp_name = std::ffi::OsString::from(".tmp-");
    tmp_name.push(name);
    tmp_name.push(format!("-{}-{nonce:016x}", std::process::id()));
    Ok(dir.join(tmp_name))
}

/// Creates a new temp file beside `path` (see [`temp_name_beside`]) with `O_EXCL`, so it
/// is never an existing file or a symlink to one, readable by its owner only.
pub fn create_temp_beside(path: &Path) -> io::Result<(File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for _ in 0..8 {
        let tmp = temp_name_beside(path)?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temp name")))
}

/// Writes `data` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let (mut f, tmp) = create_temp_beside(path)?;
    let result = (|| {
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` atomically (temp name, rename) without flushing: for state that does
/// not outlive a reboot (mount counts), where a process crash must leave the old or the new
/// content but a power cut loses the mounts along with it.
pub fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let (mut f, tmp) = create_temp_beside(path)?;
    let result = f.write_all(data).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` with `data` and flushes it, without a rename: for files inside a staging
/// directory that is itself renamed into place (and its directory flushed) afterwards.
pub fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Flushes a directory's entries (after a rename or create) to disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes directory `dir` reachable by its owner only (`mode`, e.g. 0o700 or 0o710) when it
/// is more open than that: the data root and what holds image files, so no local user can
/// reach a setuid binary of an image or a container's environment and logs.
pub fn restrict_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = fs::metadata(dir)?;
    if md.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_files_are_new_private_and_unpredictable() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out.tar");
        let (a, b) = (
            temp_name_beside(&target).unwrap(),
            temp_name_beside(&target).unwrap(),
        );
        assert_ne!(a, b, "a random part in every name");
        let (_, tmp) = create_temp_beside(&target).unwrap();
        let mode = fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // write_atomic never writes through a symlink already at the final name's temp:
        // it only ever creates new files, and replaces the target itself.
        std::os::unix::fs::symlink("/etc/hostname", &target).unwrap();
        write_atomic(&target, b"new").unwrap();
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
