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
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("invalid reference {0:?}: {1}")]
    BadReference(String, String),
    /// Something named does not exist (a volume, a layer record).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the store's state: a name taken, an image or volume
    /// in use, a container mounted or running.
    #[error("{0}")]
    InUse(String),
    /// An argument is malformed or makes no sense here (a bad name, a driver already in use).
    #[error("{0}")]
    Invalid(String),
    /// A short id or a store layout matches more than one thing.
    #[error("{0}")]
    Ambiguous(String),
    /// This host, driver or store cannot do it (no driver works, a container in another driver).
    #[error("{0}")]
    Unsupported(String),
    /// Content lost in an unclean shutdown before it reached the disk, with no source
    /// kept to rebuild it from (the message says how to get it back).
    #[error("{0}")]
    Damaged(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What kind of failure an error is, for a CLI's exit codes and a server's HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such image, container, volume or layer.
    NotFound,
    /// Conflicts with the current state (in use, name taken, running, mounted).
    Conflict,
    /// A malformed or unacceptable argument.
    InvalidArgument,
    /// A prefix or layout that matches several things.
    Ambiguous,
    /// Not possible on this host, driver or store.
    Unsupported,
    /// Content that failed verification (digests, sizes, formats) or a damaged store.
    BadContent,
    /// Anything else: I/O, the kernel, a driver.
    Other,
}

impl StoreError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NoSuchImage(_)
            | StoreError::NoSuchContainer(_)
            | StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::InUse(_) => ErrorKind::Conflict,
            StoreError::Invalid(_) | StoreError::BadReference(..) | StoreError::BadDigest(_) => {
                ErrorKind::InvalidArgument
            }
            StoreError::Ambiguous(_) => ErrorKind::Ambiguous,
            StoreError::Unsupported(_) => ErrorKind::Unsupported,
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::Missing { .. }
            | StoreError::Json { .. }
            | StoreError::MediaType { .. }
            | StoreError::Format(_)
            | StoreError::Damaged(_)
            | StoreError::Apply(_) => ErrorKind::BadContent,
            StoreError::Driver(_) | StoreError::Io { .. } => ErrorKind::Other,
        }
    }

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
