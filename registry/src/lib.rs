//! A client for OCI distribution registries: `pull` and `push` of strata images, `login`.
//!
//! Its own crate because it is a network protocol with its own concerns (HTTP, TLS via
//! rustls, authentication, retries) that the storage crates should not carry. It speaks
//! to the store only through its public API: blobs, `import::commit`, image records.

pub mod auth;
pub mod client;
pub mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod stream;

pub use client::Client;
pub use error::{RegistryError, Result};
pub use reference::Reference;
