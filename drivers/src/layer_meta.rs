//! What the directory-based drivers without on-disk links of their own (vfs, btrfs)
//! remember about a layer: `<home>/meta/<id>.json` with its parent, whether it is writable
//! and a size limit. Written atomically before the layer's directory is renamed into place,
//! so a layer that exists always has its metadata.

use crate::error::DriverError;
use fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// One layer's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LayerMeta {
    pub parent: Option<String>,
    pub rw: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<u64>,
}

/// The metadata files of a driver home.
#[derive(Debug, Clone)]
pub struct MetaDir {
    dir: PathBuf,
}

impl MetaDir {
    /// `<home>/meta` (created).
    pub fn open(home: &Path) -> Result<MetaDir, DriverError> {
        let dir = home.join("meta");
        fs::create_dir_all(&dir).map_err(|e| DriverError::io("create", &dir, e))?;
        Ok(MetaDir { dir })
    }

    /// The file of layer `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Whether layer `id` has metadata.
    pub fn exists(&self, id: &str) -> bool {
        self.path(id).is_file()
    }

    /// Reads layer `id`'s metadata ([`DriverError::NotFound`] when it has none).
    pub fn read(&self, id: &str) -> Result<LayerMeta, DriverError> {
        let p = self.path(id);
        let data = fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DriverError::NotFound(id.to_string())
            } else {
                DriverError::io("read", &p, e)
            }
        })?;
        serde_json::from_slice(&data)
            .map_err(|e| DriverError::io("parse", p, std::io::Error::other(e)))
    }

    /// Writes layer `id`'s metadata (temp, fsync, rename).
    pub fn write(&self, id: &str, m: &LayerMeta) -> Result<(), DriverError> {
        let p = self.path(id);
        let json = serde_json::to_vec(m)
            .map_err(|e| DriverError::io("encode", &p, std::io::Error::other(e)))?;
        write_atomic(&p, &json).map_err(|e| DriverError::io("write", p, e))
    }

    /// Removes layer `id`'s metadata (a missing one is fine).
    pub fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.path(id));
    }
}

/// The layer ids in `dir` (one entry per layer), sorted.
pub fn list_layer_dirs(dir: &Path) -> Result<Vec<String>, DriverError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| DriverError::io("read", dir, e))? {
        let e = e.map_err(|e| DriverError::io("read", dir, e))?;
        if let Some(name) = e.file_name().to_str() {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}
