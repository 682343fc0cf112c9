//! Errors of registry operations, each saying what to do where there is a fix.

/// Why a pull, push or login failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {0:?}: use [REGISTRY/]NAME[:TAG|@sha256:DIGEST]")]
    BadReference(String),
    #[error("{url}: {status} {what}")]
    Status {
        url: String,
        status: u16,
        what: String,
    },
    #[error("{0}: not found in the registry (check the name and tag)")]
    NotFound(String),
    #[error(
        "{0}: authentication required or denied: log in to the registry (or check the credentials)"
    )]
    Unauthorized(String),
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{what}: expected {expected}, the registry sent {actual}: nothing was stored")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] layerstore::StoreError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Wraps an I/O error.
    pub fn io(op: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        RegistryError::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;
