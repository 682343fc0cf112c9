//! `strata daemon`: the Docker Engine API over the engine, so the `docker` CLI and the
//! Docker SDKs drive strata unchanged. A second front end over the same operations as the
//! CLI (never a copy of them); both may use one data root at the same time.
//!
//! HTTP/1.1 (hyper) over unix sockets, loopback TCP and TLS; handlers run on blocking
//! threads and map Docker's requests onto [`engine::Engine`] and its results onto
//! Docker's JSON shapes.
//! Containers run under their shims, so they outlive the daemon.

pub mod api;
pub mod body;
pub mod detach;
pub mod error;
pub mod http;
pub mod listen;
pub mod respond;
pub mod router;
pub mod server;
pub mod tls;

pub use error::{ApiError, ApiResult};
pub use listen::{serve, DaemonOptions};

/// The newest API version served (Docker 26.1's); older clients get the answers of their
/// version where dockerd's changed (see [`router::ApiVersion`]).
pub const API_VERSION: &str = "1.45";
/// The oldest API version a client may ask for.
pub const MIN_API_VERSION: &str = "1.24";
