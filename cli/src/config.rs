//! The daemon.json-style configuration file and how it combines with flags.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where strata keeps everything unless told otherwise.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/strata";
/// The configuration file read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/strata/daemon.json";

/// The keys strata reads from daemon.json; any other key is an error naming it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(rename = "data-root")]
    pub data_root: Option<PathBuf>,
    #[serde(rename = "storage-driver")]
    pub storage_driver: Option<String>,
    #[serde(rename = "storage-opts", default)]
    pub storage_opts: Vec<String>,
    /// Bytes of file data one layer may hold once expanded (default 1 TiB).
    #[serde(rename = "max-layer-size")]
    pub max_layer_size: Option<u64>,
    /// Entries one layer tar may hold (default 10,000,000).
    #[serde(rename = "max-layer-entries")]
    pub max_layer_entries: Option<u64>,
    /// Layers one image may have (default 1,000).
    #[serde(rename = "max-image-layers")]
    pub max_image_layers: Option<usize>,
    /// Bytes of one PAX or GNU long-name record (default 1 MiB, as Go's archive/tar).
    #[serde(rename = "max-tar-header-record")]
    pub max_tar_header_record: Option<u64>,
    /// What strata logs to stderr: error, warn (default), info, debug or trace.
    #[serde(rename = "log-level")]
    pub log_level: Option<String>,
}

impl FileConfig {
    /// The layer limits, the defaults where the file says nothing.
    pub fn limits(&self) -> layerstore::tarfs::Limits {
        let d = layerstore::tarfs::Limits::default();
        layerstore::tarfs::Limits {
            max_layer_bytes: self.max_layer_size.unwrap_or(d.max_layer_bytes),
            max_entries: self.max_layer_entries.unwrap_or(d.max_entries),
            max_layers: self.max_image_layers.unwrap_or(d.max_layers),
            max_header_record: self.max_tar_header_record.unwrap_or(d.max_header_record),
        }
    }
}

/// Reads `path`; a missing default file is an empty config, a missing named file an error.
pub fn read(path: Option<&Path>) -> Result<FileConfig> {
    let (p, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let data = match std::fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default())
        }
        Err(e) => return Err(e).with_context(|| format!("reading config {}", p.display())),
    };
    let cfg: FileConfig = serde_json::from_slice(&data)
        .with_context(|| format!("config {} is invalid", p.display()))?;
    if let Some(d) = &cfg.storage_driver {
        if !drivers::DRIVER_NAMES.contains(&d.as_str()) {
            bail!(
                "config {}: unknown storage-driver {d:?}: use one of {}",
                p.display(),
                drivers::DRIVER_NAMES.join(", ")
            );
        }
    }
    if let Some(root) = &cfg.data_root {
        if !root.is_absolute() {
            bail!(
                "config {}: data-root {:?} must be an absolute path",
                p.display(),
                root
            );
        }
    }
    Ok(cfg)
}
