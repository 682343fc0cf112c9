//! Errors a storage driver reports.

use std::io;
use std::path::PathBuf;

/// Why a driver operation failed; each message says what to do where there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("unknown storage driver {0:?}: use one of overlay2, btrfs, aufs, vfs")]
    UnknownDriver(String),
    #[error("storage driver {driver} is not supported here: {reason}")]
    Unsupported { driver: String, reason: String },
    #[error("invalid storage option {0:?}: {1}")]
    BadOption(String, String),
    #[error("layer {0} does not exist in this driver")]
    NotFound(String),
    #[error("layer {0} already exists in this driver")]
    Exists(String),
    #[error("layer {id} is in use ({what}): unmount or remove its users first")]
    InUse { id: String, what: String },
    #[error("layer {0} is not mounted")]
    NotMounted(String),
    #[error("invalid layer id {0:?}: ids are 1-128 characters of [A-Za-z0-9_-]")]
    BadId(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DriverError {
    /// Wraps an I/O error with the operation and path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        DriverError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Checks that a layer id is safe to use as a single path component.
pub fn check_id(id: &str) -> Result<(), DriverError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DriverError::BadId(id.to_string()))
    }
}
