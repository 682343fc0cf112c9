//! Image export: `save` as a docker-archive (what `docker load` takes) or an OCI image
//! layout (directory, or a tar of one when the path ends in `.tar`). Blobs are written
//! exactly as stored, so digests survive a round trip; the output appears under its
//! final name only once complete.

mod docker;
mod oci;

use crate::error::{Result, StoreError};
use crate::images::ImageRecord;
use crate::store::Store;
use std::path::Path;

/// The archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

/// An image to save with the names to write for it.
pub(crate) struct Selected {
    pub img: ImageRecord,
    pub names: Vec<String>,
}

/// Saves `images` (references or ids) to `path`.
pub fn save(store: &Store, images: &[String], path: &Path, format: Format) -> Result<()> {
    let _content = store.locks.content_shared()?;
    if images.is_empty() {
        return Err(StoreError::Format("save needs at least one image".into()));
    }
    let mut sel = Vec::new();
    for r in images {
        let img = store.resolve_image(r)?;
        let names = match crate::refs::normalize(r) {
            Ok(n) if store.refs.load()?.contains_key(&n) => vec![n],
            _ => store.refs.of(&img.id)?,
        };
        sel.push(Selected { img, names });
    }
    match format {
        Format::Docker => docker::save(store, &sel, path),
        Format::Oci => oci::save(store, &sel, path),
    }
}

/// Writes the whole tree at `root` as one tar to `path` (a flattened filesystem, as
/// `docker export` writes), appearing under its name only when complete.
pub fn export_rootfs(root: &Path, path: &Path) -> Result<()> {
    let (f, tmp) = temp_file_beside(path)?;
    let result = (|| -> std::io::Result<()> {
        let w = export_rootfs_to(root, std::io::BufWriter::with_capacity(1 << 20, f))?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::io("write", path, e));
    }
    Ok(())
}

/// The tree at `root` as one tar streamed to `out` (entries relative to the root, in path
/// order), read by descriptor as [`crate::tarfs::write_tree`] reads.
pub fn export_rootfs_to<W: std::io::Write>(root: &Path, out: W) -> std::io::Result<W> {
    let fd = fsutil::open_root(root)?;
    crate::tarfs::write_tree(
        std::os::fd::AsFd::as_fd(&fd),
        std::ffi::OsStr::new("."),
        Path::new(""),
        false,
        out,
    )
}

/// A new temp file beside `path` (unpredictable name, `O_EXCL`, 0600: the folder may be
/// one other users can write to, like /tmp), renamed into place when complete.
pub(crate) fn temp_file_beside(path: &Path) -> Result<(std::fs::File, std::path::PathBuf)> {
    fsutil::create_temp_beside(path)
        .map_err(|e| StoreError::io("create a temp file beside", path, e))
}

pub use crate::time::rfc3339;

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
