//! A network's namespace with its bridge, and a container's veth pair into it.
//!
//! The bridge (`br0`, holding the gateway address) lives in the network's own namespace,
//! which has no other interface: a container can reach the other containers of its
//! network and the gateway, nothing of the host and nothing outside the machine.

use crate::error::{NetError, Result};
use crate::netlink::{index_of, require, Netlink};
use crate::netns;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The bridge's name inside a network's namespace.
pub const BRIDGE: &str = "br0";

/// Brings the loopback interface of the current namespace up.
fn loopback_up(nl: &Netlink) -> io::Result<()> {
    nl.set_up(require("lo")?)
}

/// The namespace of a network kept at `path`, made (with its bridge at
/// `gateway/prefix`) when missing or stale.
pub fn ensure_network(path: &Path, gateway: Ipv4Addr, prefix: u8) -> Result<File> {
    netns::create(path, || {
        let nl = Netlink::open()?;
        loopback_up(&nl)?;
        nl.add_bridge(BRIDGE)?;
        let br = require(BRIDGE)?;
        nl.add_address(br, gateway, prefix)?;
        nl.set_up(br)
    })
}

/// A container's own namespace kept at `path` (loopback up), made when missing or stale.
pub fn ensure_container(path: &Path) -> Result<File> {
    netns::create(path, || loopback_up(&Netlink::open()?))
}

/// Docker's MAC for an address: `02:42` and the address's four bytes.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:...` for a MAC.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One container's place on one network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The veth end on the bridge, in the network's namespace (unique there).
    pub host_if: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Whether the container's default route goes through this network's gateway.
    pub default_route: bool,
}

/// Joins the container namespace `container` to the bridge of the network namespace
/// `net`: a veth pair (a leftover pair of an interrupted attach is replaced), the
/// container's end named `ethN` (the first free N) with its address and MAC, up, and the
/// default route when asked for. Returns the container-side name.
pub fn attach(net: &File, container: &File, a: &Attachment) -> Result<String> {
    let cfd = container.as_raw_fd();
    let what = |e: io::Error| NetError::io(format!("attach {} to the bridge", a.host_if), e);
    // The name in the container: the first free ethN (after the old pair is gone).
    netns::run_in(net, || {
        let nl = Netlink::open()?;
        if let Some(old) = index_of(&a.host_if) {
            nl.delete_link(old)?;
        }
        Ok(())
    })
    .map_err(what)?;
    let ifname = netns::run_in(container, || {
        Ok((0..)
            .map(|n| format!("eth{n}"))
            .find(|n| index_of(n).is_none())
            .unwrap_or_else(|| "eth0".into()))
    })
    .map_err(what)?;
    netns::run_in(net, || {
        let nl = Netlink::open()?;
        let br = require(BRIDGE)?;
        nl.add_veth(&a.host_if, br, &ifname, mac_of(a.ip), cfd)?;
        nl.set_up(require(&a.host_if)?)
    })
    .map_err(what)?;
    netns::run_in(container, || {
        let nl = Netlink::open()?;
        let i = require(&ifname)?;
        nl.add_address(i, a.ip, a.prefix)?;
        nl.set_up(i)?;
        if a.default_route {
            match nl.add_default_route(i, a.gateway) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                r => r?,
            }
        }
        Ok(())
    })
    .map_err(what)?;
    Ok(ifname)
}

/// Takes the container's veth pair `host_if` off the network `net` (gone already is fine).
pub fn detach(net: &File, host_if: &str) -> Result<()> {
    netns::run_in(net, || {
        if let Some(i) = index_of(host_if) {
            Netlink::open()?.delete_link(i)?;
        }
        Ok(())
    })
    .map_err(|e| NetError::io(format!("detach {host_if} from the bridge"), e))
}
