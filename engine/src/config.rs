//! The daemon.json-style configuration file and how it combines with flags into the
//! settings every operation shares.

use crate::error::{EngineError, Result};
use drivers::DriverOptions;
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
    /// The logging driver of containers made without one (default json-file).
    #[serde(rename = "log-driver")]
    pub log_driver: Option<String>,
    /// Its options (`max-size`, `max-file`), for containers that use that driver.
    #[serde(rename = "log-opts", default)]
    pub log_opts: std::collections::BTreeMap<String, String>,
}

impl FileConfig {
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
            Err(e) => {
                return Err(EngineError::io(
                    format!("reading config {}", p.display()),
                    e,
                ))
            }
        };
        let cfg: FileConfig = serde_json::from_slice(&data)
            .map_err(|e| EngineError::Invalid(format!("config {} is invalid: {e}", p.display())))?;
        if let Some(d) = &cfg.storage_driver {
            if !drivers::DRIVER_NAMES.contains(&d.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "config {}: unknown storage-driver {d:?}: use one of {}",
                    p.display(),
                    drivers::DRIVER_NAMES.join(", ")
                )));
            }
        }
        if let Some(root) = &cfg.data_root {
            if !root.is_absolute() {
                return Err(EngineError::Invalid(format!(
                    "config {}: data-root {:?} must be an absolute path",
                    p.display(),
                    root
                )));
            }
        }
        Ok(cfg)
    }

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

/// What flags say, before they are combined with the file.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub data_root: Option<PathBuf>,
    pub storage_driver: Option<String>,
    pub storage_opts: Vec<String>,
}

/// Settings every operation shares: the data root and driver choice.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    /// `None`: the driver the data root already uses, else auto-detected.
    pub driver: Option<String>,
    pub driver_opts: DriverOptions,
    /// The raw `--storage-opt`/`storage-opts` given (handed on to a container's shim).
    pub storage_opts: Vec<String>,
    /// `--storage-opt size=`: a per-container limit (Docker's `create --storage-opt`),
    /// not a driver option.
    pub container_size: Option<u64>,
    /// What one untrusted layer or image may ask for (daemon.json).
    pub limits: layerstore::tarfs::Limits,
    /// The logging driver and options of containers made without their own (daemon.json).
    pub log: crate::containers::LogConfig,
}

impl Config {
    /// Combines flags with the config file already read (flags win).
    pub fn merge(flags: &Flags, file: &FileConfig) -> Result<Config> {
        let data_root = flags
            .data_root
            .clone()
            .or_else(|| file.data_root.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
        let driver = flags
            .storage_driver
            .clone()
            .or_else(|| file.storage_driver.clone());
        let mut given = file.storage_opts.clone();
        given.extend(flags.storage_opts.iter().cloned());
        let mut opts = given.clone();
        let mut container_size = None;
        opts.retain(|o| match o.split_once('=') {
            Some((k, v)) if k.trim() == "size" => {
                container_size = Some(DriverOptions::parse_size("size", v));
                false
            }
            _ => true,
        });
        let log = crate::containers::LogConfig {
            driver: file
                .log_driver
                .clone()
                .unwrap_or_else(|| "json-file".into()),
            opts: file.log_opts.clone(),
        };
        log.policy()
            .map_err(|e| EngineError::Invalid(format!("daemon.json log-driver/log-opts: {e}")))?;
        Ok(Config {
            log,
            data_root,
            driver,
            driver_opts: DriverOptions::parse(&opts)?,
            storage_opts: given,
            container_size: container_size.transpose()?,
            limits: file.limits(),
        })
    }

    /// The same settings with another driver (`migrate --from`).
    pub fn with_driver(&self, driver: Option<String>) -> Config {
        Config {
            driver,
            container_size: None,
            ..self.clone()
        }
    }
}

/// Reads the config file and combines it with flags: what every front end does first.
pub fn load(config_file: Option<&Path>, flags: &Flags) -> Result<(Config, FileConfig)> {
    let file = FileConfig::read(config_file)?;
    let cfg = Config::merge(flags, &file)?;
    Ok((cfg, file))
}
