//! API errors: a status and the one-line `{"message": ...}` Docker clients print.

use engine::{EngineError, ErrorKind};

/// A failed request.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: a bad parameter.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }
}

/// The status Docker gives each kind of engine failure.
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::InvalidArgument | ErrorKind::Ambiguous | ErrorKind::BadContent => 400,
        ErrorKind::Unsupported => 501,
        ErrorKind::Other => 500,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::new(status_of(e.kind()), e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::new(500, e.to_string())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::bad(format!("invalid JSON: {e}"))
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
