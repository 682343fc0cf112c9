//! Errors of network setup.

use std::io;

/// Why a network operation failed; messages say what to do where there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A bad `-p` spec or address.
    #[error("{0}")]
    Invalid(String),
    /// A host port another program (or container) already listens on.
    #[error("{0}")]
    InUse(String),
}

impl NetError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> NetError {
        NetError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, NetError>;
