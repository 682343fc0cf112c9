//! Container records: a read-write layer on top of an image.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// A container as the store knows it (the run path adds its runtime state beside it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: Digest,
    /// The image reference the user gave.
    pub image_ref: String,
    /// The read-write layer's id in `driver`.
    pub layer: String,
    pub driver: String,
    pub created: u64,
}
