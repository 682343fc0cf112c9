//! Crash-safe small-file writes: temp name, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory of `path` and a temp name beside it owned by this process
/// (`.tmp-NAME-PID`), renamed over `path` once written.
fn temp_beside(path: &Path) -> io::Result<(&Path, PathBuf)> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".tmp-");
    tmp_name.push(name);
    tmp_name.push(format!("-{}", std::process::id()));
    Ok((dir, dir.join(tmp_name)))
}

/// Writes `data` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
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
    let (_, tmp) = temp_beside(path)?;
    let result = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, path));
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
