//! Image records, keyed by config digest (the image id).

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// An image: its manifest and config blobs and its layers bottom-up by ChainID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    pub manifest_media_type: String,
    pub layers: Vec<Digest>,
    /// Seconds since the epoch when it entered the store.
    pub added: u64,
    /// Sum of the layers' content bytes.
    pub size: u64,
}
