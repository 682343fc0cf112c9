//! Errors of the engine: one type whose [`ErrorKind`] a CLI maps to exit codes and a
//! server to HTTP statuses, and whose message says what failed and how to fix it.

pub use layerstore::ErrorKind;
use layerstore::StoreError;
use registry::RegistryError;
use runtime::error::RuntimeError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Driver(#[from] drivers::DriverError),
    #[error(transparent)]
    Network(#[from] network::NetError),
    /// No such container, image or volume.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state: running, in use, name taken.
    #[error("{0}")]
    Conflict(String),
    /// A malformed or unacceptable argument.
    #[error("{0}")]
    Invalid(String),
    /// Not possible here.
    #[error("{0}")]
    Unsupported(String),
    /// The container's process could not be started; `code` is Docker's exit status
    /// for it (127 command not found, 126 not runnable, 125 otherwise).
    #[error("{message}")]
    Start {
        name: String,
        code: i32,
        message: String,
    },
    /// A build step's command exited with `code` (Docker's "returned a non-zero code").
    #[error("{message}")]
    StepFailed { code: i32, message: String },
    /// An I/O error from a step whose caller says what it was doing.
    #[error(transparent)]
    RawIo(#[from] std::io::Error),
    /// The message holds the cause (so no `source()`: a chain printer would repeat it).
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// `inner` while doing `what` (printed `what: inner`, as anyhow's `{:#}` does).
    #[error("{what}: {inner}")]
    Context {
        what: String,
        inner: Box<EngineError>,
    },
}

impl EngineError {
    /// The kind of failure, seen through any context added on the way up.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Store(e) => e.kind(),
            EngineError::Runtime(_)
            | EngineError::Driver(_)
            | EngineError::Io { .. }
            | EngineError::RawIo(_)
            | EngineError::Start { .. }
            | EngineError::StepFailed { .. } => ErrorKind::Other,
            EngineError::Registry(e) => match e {
                RegistryError::Store(s) => s.kind(),
                RegistryError::NotFound(_) => ErrorKind::NotFound,
                RegistryError::BadReference(_) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Other,
            },
            EngineError::Network(e) => match e {
                network::NetError::Invalid(_) => ErrorKind::InvalidArgument,
                network::NetError::InUse(_) => ErrorKind::Conflict,
                network::NetError::Io { .. } => ErrorKind::Other,
            },
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Invalid(_) => ErrorKind::InvalidArgument,
            EngineError::Unsupported(_) => ErrorKind::Unsupported,
            EngineError::Context { inner, .. } => inner.kind(),
        }
    }

    /// The error itself, under any context added on the way up.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Context { inner, .. } => inner.root(),
            e => e,
        }
    }

    /// The exit status a CLI gives this failure: the container's own for a start that
    /// failed (126, 127), else 125 (strata's own failure, as Docker).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Start { code, .. } | EngineError::StepFailed { code, .. } => *code,
            EngineError::Context { inner, .. } => inner.exit_code(),
            _ => 125,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        EngineError::Io {
            what: what.into(),
            cause: source.into(),
        }
    }
}

impl From<rustix::io::Errno> for EngineError {
    fn from(e: rustix::io::Errno) -> Self {
        std::io::Error::from(e).into()
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        EngineError::Invalid(format!("invalid JSON: {e}"))
    }
}

/// Adds what was being done to an error, keeping its kind.
pub trait Context<T> {
    /// `what: error` on failure.
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<EngineError>> Context<T> for std::result::Result<T, E> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| EngineError::Context {
            what: what().into(),
            inner: Box::new(e.into()),
        })
    }
}

/// Shorthand for engine results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
