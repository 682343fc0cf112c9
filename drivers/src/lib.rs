//! Storage drivers for strata.
//!
//! A driver manages layer directories, snapshots and mounts; it never parses a tar or a
//! manifest. The layer store owns the archive format and talks to a driver only through
//! [`Driver`], plus the small [`WhiteoutFormat`] hook that says how deletions are stored on
//! this driver's disk.

pub mod aufs;
pub mod btrfs;
pub mod changes;
pub mod driver;
pub mod error;
pub mod fsutil;
pub mod layer_meta;
pub mod lock;
pub mod loopfs;
pub mod overlay;
pub mod refcount;
pub mod staging;
pub mod upper_walk;
pub mod vfs;
pub mod whiteout;

pub use changes::{Change, ChangeKind};
pub use driver::{ChangesSource, Driver, DriverOptions, LayerKind};
pub use error::DriverError;
pub use whiteout::{RemoveWhiteouts, WhiteoutFormat};

use std::path::Path;

/// Names of every driver strata knows, in auto-detection order.
pub const DRIVER_NAMES: &[&str] = &["overlay2", "btrfs", "aufs", "vfs"];

/// Whether the driver `name` already holds layers under `home` (without opening it), so a
/// store keeps using the driver it has data in.
pub fn has_layers(name: &str, home: &Path) -> bool {
    let dir = match name {
        "vfs" => home.join("dir"),
        "btrfs" => home.join("subvolumes"),
        "aufs" => home.join("diff"),
        _ => home.to_path_buf(),
    };
    let reserved = [
        "l",
        "tmp",
        "mounts",
        "check",
        "supported",
        "fallback",
        "dir",
        "meta",
        "subvolumes",
    ];
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| !reserved.contains(&e.file_name().to_string_lossy().as_ref()))
        })
        .unwrap_or(false)
}

/// Opens the driver `name` with its state under `home` (normally `<data-root>/<name>`).
///
/// Fails with [`DriverError::Unsupported`] when the driver cannot work on the backing
/// filesystem, and [`DriverError::UnknownDriver`] for a name strata does not know.
pub fn open(name: &str, home: &Path, opts: &DriverOptions) -> Result<Box<dyn Driver>, DriverError> {
    match name {
        "vfs" => Ok(Box::new(vfs::Vfs::open(home, opts)?)),
        "overlay2" => Ok(Box::new(overlay::Overlay::open(home, opts)?)),
        "btrfs" => Ok(Box::new(btrfs::Btrfs::open(home, opts)?)),
        "aufs" => Ok(Box::new(aufs::Aufs::open(home, opts)?)),
        other => Err(DriverError::UnknownDriver(other.to_string())),
    }
}
