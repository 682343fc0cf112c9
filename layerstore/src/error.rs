//! Errors of the layer store. Each names what failed and, where there is one, the fix.

use crate::digest::{BadDigest, Digest};
use crate::tarfs::ApplyError;
use drivers::DriverError;
use std::io;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    BadDigest(#[from] BadDigest),
    #[error("digest mismatch for {what}: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {what}: descriptor says {expected} bytes, found {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("missing {what} in {source_name}: the archive is incomplete")]
    Missing { what: String, source_name: String },
    #[error("invalid JSON in {what}: {err}")]
    Json {
        what: String,
        err: serde_json::Error,
    },
    #[error("unsupported media type {media_type:?} for {what}")]
    MediaType { what: String, media_type: String },
    #[error("{0}")]
    Format(String),
    #[error("no such image: {0} (see `strata images`)")]
    NoSuchImage(String),
    #[error("no such container: {0} (see `strata ps -a`)")]
    NoSuchContainer(String),
    #[error("invalid reference {0:?}: {1}")]
    BadReference(String, String),
    #[error("{0}")]
    Conflict(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// Wraps a JSON error with what was being parsed.
    pub fn json(what: impl Into<String>, err: serde_json::Error) -> Self {
        StoreError::Json {
            what: what.into(),
            err,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
