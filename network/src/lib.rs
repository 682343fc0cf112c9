//! Container networks, as Docker's bridge driver gives them, without touching the host's
//! own network: each network is a Linux bridge inside a network namespace strata makes for
//! it, each container a namespace of its own joined to that bridge by a veth pair, and a
//! published port a userspace proxy that accepts on the host and connects from inside the
//! network's namespace (no iptables, no host routes or addresses).
//!
//! - [`netlink`]: the few rtnetlink requests this needs (links, addresses, a route).
//! - [`netns`]: network namespaces kept alive by a bind mount on a file, and running
//!   work inside one.
//! - [`bridge`]: a network's namespace and bridge; a container's veth into it.
//! - [`ports`]: `-p` specs and Docker's `PortBindings` form.
//! - [`proxy`]: the port proxy process's work; [`relay`]: its event loop.
//! - [`records`]: networks and their endpoints as records in the data root (beside the
//!   store's, under its locks); [`ipam`]: subnets and the addresses handed out in them.

pub mod bridge;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod proxy;
pub mod proxy_args;
pub mod records;
pub mod relay;

pub use error::{NetError, Result};
