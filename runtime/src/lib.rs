//! strata's run path: containers on any storage driver, in new namespaces and cgroups,
//! with no external runtime.
//!
//! Its own crate because it is a different concern from storage: it knows nothing of
//! layers or drivers (it is handed a mounted rootfs), only of the OCI runtime spec
//! ([`spec`]), cgroups ([`cgroups`]), the container's filesystem view ([`rootfs`]),
//! starting and joining processes ([`launch`]) and their recorded [`state`]; and the
//! isolation Docker gives by default: [`security`] options (capabilities, rlimits),
//! [`seccomp`] filters and the [`devices`] allowlist.

pub mod cgroups;
pub mod devices;
pub mod error;
mod init;
pub mod launch;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
pub mod tty;

pub use error::{Result, RuntimeError};
