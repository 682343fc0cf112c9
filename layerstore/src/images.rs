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
    /// The image a build step made this one from (Docker's `Parent`): an untagged image
    /// that is another's parent is an intermediate one, which `images` leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}
