//! Errors of the run path.

use std::io;
use std::path::PathBuf;

/// Why running a container failed; messages say what to do where there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("runtime spec: {0}")]
    Spec(String),
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The command could not be found in the container (exit status 127, as Docker).
    #[error("exec {0}: no such file or directory in the container")]
    NotFound(String),
    /// The command exists but could not be run (exit status 126).
    #[error("exec {cmd}: {why}")]
    CannotInvoke { cmd: String, why: String },
    #[error("cgroups: {0}")]
    Cgroup(String),
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// Wraps an I/O error with the operation and path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// The exit status Docker gives this failure: 127 not found, 126 not invokable, 125
    /// for everything strata itself got wrong.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::NotFound(_) => 127,
            RuntimeError::CannotInvoke { .. } => 126,
            _ => 125,
        }
    }
}

pub type Result<T> = std::result::Result<T, RuntimeError>;
