//! The whiteout names of the OCI layer format, which are also AUFS's on-disk form: one
//! definition for the tar applier and writer, the aufs driver and the union server.

/// Prefix of a whiteout: `.wh.NAME` deletes `NAME` of the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// A directory holding this entry hides everything the layers below have in it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of AUFS's own bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`, temp files), never
/// part of an image's filesystem.
pub const AUFS_META_PREFIX: &str = ".wh..wh.";
/// Where AUFS keeps copied-up hardlinked files (pseudo-links).
pub const AUFS_PLINK_DIR: &str = ".wh..wh.plnk";
