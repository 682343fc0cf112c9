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
