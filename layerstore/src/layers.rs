//! Layer records, keyed by ChainID and independent of any driver, so changing drivers
//! never loses a layer: each record names the blob it came from and, per driver, the
//! cache id of its materialised copy.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the store knows about one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    #[serde(default)]
    pub parent: Option<Digest>,
    /// The blob the layer was applied from and its media type.
    pub blob: Digest,
    pub media_type: String,
    /// Uncompressed tar length (the size `docker save` writes for layer.tar).
    pub tar_size: u64,
    /// Bytes of file content in the layer.
    pub size: u64,
    /// driver name -> that driver's id for this layer.
    #[serde(default)]
    pub cache: BTreeMap<String, String>,
    /// Lost in an unclean shutdown before it reached the disk, with no source to apply it
    /// from again: unusable until the image is loaded or pulled again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
    /// Kept as its files plus a tar-split record (`tarsplit/<chain>`), with no blob: it
    /// arrived uncompressed (see [`crate::tarsplit`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tar_split: bool,
}
