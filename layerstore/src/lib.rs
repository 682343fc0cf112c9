//! strata's layer store: content-addressed blobs, layers keyed by ChainID, images,
//! references and containers under one data root, with image import and export.
//!
//! The store knows archives, digests, manifests and the OCI whiteout form; it reaches the
//! storage driver only through [`drivers::Driver`].

pub mod blobs;
pub mod child;
pub mod commit;
pub mod compress;
pub mod containers;
pub mod digest;
pub mod error;
pub mod export;
pub mod flush;
pub mod fsck;
pub mod images;
pub mod import;
pub mod journal;
pub mod layers;
pub mod leases;
pub mod locks;
pub mod migrate;
pub mod readahead;
pub mod records;
pub mod reference;
pub mod refs;
pub mod spec;
pub mod split_layers;
pub mod store;
pub mod tarfs;
pub mod tarsplit;
pub mod time;
pub mod volumes;

pub use digest::{chain_id, Digest};
pub use error::{ErrorKind, Result, StoreError};
pub use store::{Store, StoreOptions};

/// A random 64-hex id for containers, driver cache ids and temp names.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    // getrandom only fails when the kernel has no entropy source at all.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return Digest::of(format!("{t}-{}", std::process::id()).as_bytes())
            .hex()
            .to_string();
    }
    hex::encode(b)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
