//! The OCI layer tar format: applying a layer into a driver's directory, and writing a
//! layer from a list of changes. This is the one place that knows tar and the OCI
//! whiteout names; drivers only see the [`drivers::WhiteoutFormat`] hook.

pub mod apply;
pub mod entry_path;
pub mod limits;
pub mod pax;
pub mod view;
pub mod write;

pub use apply::{apply_layer, apply_layer_onto, apply_to_layer, ApplyError, ApplyResult, Target};
pub use limits::Limits;
pub use write::{write_layer, write_layer_sized, write_tree, LayerTarWriter, WriteOptions};

pub use fsutil::whiteout_names::{AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX};
