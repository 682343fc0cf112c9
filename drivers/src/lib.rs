//! Storage drivers for strata.
//!
//! A driver manages layer directories, snapshots and mounts; it never parses a tar or a
//! manifest. The layer store owns the archive format and talks to a driver only through
//! [`Driver`], plus the small [`WhiteoutFormat`] hook that says how deletions are stored on
//! this driver's disk.

pub mod aufs;
pub mod btrfs;
pub mod changes;
pub mod dir_layers;
pub mod driver;
pub mod error;
pub mod layer_meta;
pub mod lock;
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

/// How a registered driver is opened.
pub type OpenFn = fn(&Path, &DriverOptions) -> Result<Box<dyn Driver>, DriverError>;

/// One driver strata knows: the one place a new driver is added.
pub struct Registration {
    /// The name used in `--storage-driver` and daemon.json.
    pub name: &'static str,
    /// The directory under the driver's home holding its layers (`""` for the home
    /// itself), to tell whether a data root already uses it without opening it.
    pub layers_dir: &'static str,
    /// Its option keys (`--storage-opt NAME.KEY=V`), without the prefix.
    pub options: &'static [&'static str],
    /// Opens the driver with its state under a home; fails with
    /// [`DriverError::Unsupported`] (saying why) where it cannot work, so opening is also
    /// the probe.
    pub open: OpenFn,
}

/// Every driver strata knows, in auto-detection order.
pub const DRIVERS: &[Registration] = &[
    Registration {
        name: "overlay2",
        layers_dir: "",
        options: &[],
        open: |h, o| Ok(Box::new(overlay::Overlay::open(h, o)?)),
    },
    Registration {
        name: "btrfs",
        layers_dir: "subvolumes",
        options: &["min_space"],
        open: |h, o| Ok(Box::new(btrfs::Btrfs::open(h, o)?)),
    },
    Registration {
        name: "aufs",
        layers_dir: "diff",
        options: &[],
        open: |h, o| Ok(Box::new(aufs::Aufs::open(h, o)?)),
    },
    Registration {
        name: "vfs",
        layers_dir: "dir",
        options: &["reflink"],
        open: |h, o| Ok(Box::new(vfs::Vfs::open(h, o)?)),
    },
];

/// Names of every driver strata knows, in auto-detection order.
pub const DRIVER_NAMES: &[&str] = &{
    let mut names = [""; DRIVERS.len()];
    let mut i = 0;
    while i < DRIVERS.len() {
        names[i] = DRIVERS[i].name;
        i += 1;
    }
    names
};

fn registration(name: &str) -> Option<&'static Registration> {
    DRIVERS.iter().find(|r| r.name == name)
}

/// Whether the driver `name` already holds layers under `home` (without opening it), so a
/// store keeps using the driver it has data in.
pub fn has_layers(name: &str, home: &Path) -> bool {
    let dir = match registration(name) {
        Some(r) if !r.layers_dir.is_empty() => home.join(r.layers_dir),
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
    match registration(name) {
        Some(r) => (r.open)(home, opts),
        None => Err(DriverError::UnknownDriver(name.to_string())),
    }
}
