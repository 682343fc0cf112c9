//! strata's userspace union filesystem: AUFS's on-disk form (`.wh.` whiteouts, opaque
//! markers, pseudo-links) served over FUSE, for hosts whose kernel has no aufs.
//!
//! A separate crate because it is a filesystem in its own right: it runs as its own
//! process per mount (started by the aufs driver's `mount`, ended by `umount`), and its
//! branch logic ([`branches`]) is useful and testable without FUSE.

pub mod branch;
pub mod branches;
pub mod confine;
pub mod fuse;
pub mod serve;
pub mod serve_args;

pub use branches::Union;
pub use serve::{serve, ServeOptions};
