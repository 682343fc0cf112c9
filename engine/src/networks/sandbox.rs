//! A container's side of networking: what it asked for at create (`network.json` in its
//! folder), its own network namespace (kept at `<data-root>/netns/<id>` from its first
//! start to its removal, so restarts, `exec` and `--network container:` find it), the
//! veth pairs into its networks' bridges, and its hosts file.

use super::etc;
use crate::containers::bundle::Bundle;
use crate::error::{EngineError, Result};
use network::bridge::{self, Attachment};
use network::netns;
use network::ports::PortMap;
use network::records::{Endpoint, NetworkRecord, Networks};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a container asked of the network at create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNet {
    /// `bridge` (on one or more bridge networks), `none`, `host` or `container:<id>`.
    pub mode: String,
    #[serde(default)]
    pub ports: PortMap,
    #[serde(default)]
    pub publish_all: bool,
    /// The image's and `--expose`'s ports (`80/tcp`), published by `-P`.
    #[serde(default)]
    pub exposed: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    /// Legacy links, written into its hosts file at each start.
    #[serde(default)]
    pub links: Vec<super::links::Link>,
}

impl ContainerNet {
    /// The one written at create, or `none` for a container made before networks.
    pub fn of(bundle: &Bundle) -> ContainerNet {
        bundle
            .read_json("network.json")
            .unwrap_or_else(|| ContainerNet {
                mode: "none".into(),
                ..Default::default()
            })
    }

    /// Writes it into the container's folder.
    pub fn save(&self, bundle: &Bundle, durable: bool) -> Result<()> {
        bundle.write("network.json", &serde_json::to_vec(self)?, durable)
    }

    /// Whether it has a namespace of its own joined to bridges.
    pub fn is_bridge(&self) -> bool {
        self.mode == "bridge"
    }
}

/// Where network namespaces are kept.
fn netns_dir(root: &Path) -> PathBuf {
    root.join("netns")
}

/// The namespace file of container `cid`.
pub fn container_ns(root: &Path, cid: &str) -> PathBuf {
    netns_dir(root).join(cid)
}

/// The namespace file of network `nid`.
pub fn network_ns(root: &Path, nid: &str) -> PathBuf {
    netns_dir(root).join(format!("n-{nid}"))
}

/// The veth end of container `cid` on a bridge (unique in a network's namespace).
fn host_if(cid: &str) -> String {
    format!("v{}", &cid[..cid.len().min(12)])
}

/// A bridge network's subnet.
fn subnet_of(n: &NetworkRecord) -> Result<network::ipam::Subnet> {
    n.subnet()
        .ok_or_else(|| EngineError::Invalid(format!("network {} has no subnet", n.name)))
}

/// A network's namespace with its bridge, made when missing (first use, or after a
/// reboot).
pub(crate) fn network_namespace(root: &Path, n: &NetworkRecord) -> Result<std::fs::File> {
    let subnet = subnet_of(n)?;
    Ok(bridge::ensure_network(
        &network_ns(root, &n.id),
        subnet.gateway(),
        subnet.prefix,
    )?)
}

/// Whether network `nid` gives the container on `mine` (its networks, as
/// [`Networks::of_container`] lists them) its default route: the first that is not
/// `--internal`.
fn routes_default(mine: &[(NetworkRecord, Endpoint)], nid: &str) -> bool {
    mine.iter()
        .find(|(n, _)| !n.internal)
        .is_some_and(|(n, _)| n.id == nid)
}

/// Puts the veth of container namespace `cns` on network `n` at endpoint `e`; `mine`
/// is every network the container is on.
fn attach_one(
    root: &Path,
    cns: &std::fs::File,
    cid: &str,
    (n, e): (&NetworkRecord, &Endpoint),
    mine: &[(NetworkRecord, Endpoint)],
) -> Result<()> {
    let nns = network_namespace(root, n)?;
    let subnet = subnet_of(n)?;
    bridge::attach(
        &nns,
        cns,
        &Attachment {
            host_if: host_if(cid),
            ip: e.ip,
            prefix: subnet.prefix,
            gateway: subnet.gateway(),
            default_route: routes_default(mine, &n.id),
        },
    )?;
    Ok(())
}

/// Before a start: the namespace the container joins (`None`: a new one, or the host's),
/// made and wired to every network it is on, and its hosts file written.
pub(crate) fn prepare(root: &Path, cid: &str) -> Result<Option<PathBuf>> {
    let bundle = Bundle::of(root, cid);
    let cn = ContainerNet::of(&bundle);
    if let Some(other) = cn.mode.strip_prefix("container:") {
        return shared_namespace(root, other).map(Some);
    }
    if !cn.is_bridge() {
        return Ok(None);
    }
    let path = container_ns(root, cid);
    let cns = bridge::ensure_container(&path)?;
    let nets = Networks::open(root)?;
    let mine = nets.of_container(cid)?;
    for (n, e) in &mine {
        attach_one(root, &cns, cid, (n, e), &mine)?;
    }
    write_hosts(root, cid, &nets)?;
    Ok(Some(path))
}

/// The namespace of container `other` for `--network container:`: its kept namespace,
/// or its running process's.
fn shared_namespace(root: &Path, other: &str) -> Result<PathBuf> {
    let kept = container_ns(root, other);
    if netns::is_live(&kept) {
        return Ok(kept);
    }
    let st = Bundle::of(root, other).state_or_default();
    if st.is_running() {
        return Ok(PathBuf::from(format!("/proc/{}/ns/net", st.pid)));
    }
    Err(EngineError::Conflict(format!(
        "cannot join the network of container {}: it is not running; start it first",
        &other[..other.len().min(12)]
    )))
}

/// After `connect` of a running container: its veth on `n` now.
pub(crate) fn attach_running(
    root: &Path,
    cid: &str,
    n: &NetworkRecord,
    e: &Endpoint,
) -> Result<()> {
    let cns = netns::open(&container_ns(root, cid))?;
    let mine = Networks::open(root)?.of_container(cid)?;
    attach_one(root, &cns, cid, (n, e), &mine)
}

/// Takes container `cid`'s veth off network `n` (when the network's namespace is live).
pub(crate) fn detach(root: &Path, cid: &str, n: &NetworkRecord) -> Result<()> {
    let p = network_ns(root, &n.id);
    if netns::is_live(&p) {
        bridge::detach(&netns::open(&p)?, &host_if(cid))?;
    }
    Ok(())
}

/// On removal: off every network (addresses released, the others' hosts files
/// rewritten), and its namespace let go.
pub(crate) fn teardown(root: &Path, cid: &str) -> Result<()> {
    let nets = Networks::open(root)?;
    for (n, _) in nets.of_container(cid)? {
        let _ = detach(root, cid, &n);
        nets.disconnect(&n.id, cid)?;
        refresh(root, &nets, &n.id)?;
    }
    netns::remove(&container_ns(root, cid));
    Ok(())
}

/// After a rename: the new name on every network, in every peer's hosts file.
pub(crate) fn renamed(root: &Path, cid: &str, name: &str) -> Result<()> {
    let nets = Networks::open(root)?;
    nets.rename(cid, name)?;
    for (n, _) in nets.of_container(cid)? {
        refresh(root, &nets, &n.id)?;
    }
    Ok(())
}

/// The names container `peer`'s endpoint `e` answers to: its name, aliases, short id.
fn names_of(peer: &str, e: &Endpoint) -> Vec<String> {
    let mut v = vec![e.name.clone()];
    v.extend(e.aliases.iter().cloned());
    v.push(peer[..peer.len().min(12)].to_string());
    v
}

/// Writes container `cid`'s hosts file from the records (when it has one).
pub(crate) fn write_hosts(root: &Path, cid: &str, nets: &Networks) -> Result<()> {
    let bundle = Bundle::of(root, cid);
    let path = bundle.dir().join("hosts");
    if !path.exists() {
        return Ok(());
    }
    let cn = ContainerNet::of(&bundle);
    let mine = nets.of_container(cid)?;
    let own = mine.first().map(|(_, e)| e.ip);
    let mut peers = Vec::new();
    for (n, _) in &mine {
        // The default bridge resolves no names, as Docker's.
        if n.is_builtin() {
            continue;
        }
        for (peer, e) in &n.endpoints {
            if peer != cid {
                peers.push((e.ip, names_of(peer, e)));
            }
        }
    }
    peers.extend(super::links::host_entries(nets, cid, &cn.links)?);
    let content = etc::hosts(&cn.extra_hosts, &cn.hostname, own, &peers)?;
    etc::rewrite_in_place(&path, &content)
}

/// Rewrites the hosts file of every container on network `nid`.
pub(crate) fn refresh(root: &Path, nets: &Networks, nid: &str) -> Result<()> {
    let n = nets.resolve(nid)?;
    for cid in n.endpoints.keys() {
        write_hosts(root, cid, nets)?;
    }
    Ok(())
}

/// `fsck`: running containers whose veth on a network is missing (a `connect` cut
/// short); with `repair`, attached again.
pub(crate) fn check(root: &Path, repair: bool) -> Result<Vec<String>> {
    let nets = Networks::open(root)?;
    let mut found = Vec::new();
    for n in nets.list()? {
        if !n.is_bridge() {
            continue;
        }
        for (cid, e) in &n.endpoints {
            let running = Bundle::of(root, cid).state_or_default().is_running();
            let cpath = container_ns(root, cid);
            if !running || !netns::is_live(&cpath) {
                continue;
            }
            // Opened, never made: a check changes nothing (a missing one is repaired below).
            let hif = host_if(cid);
            let present = netns::open(&network_ns(root, &n.id)).is_ok_and(|nns| {
                netns::run_in(&nns, || Ok(network::netlink::index_of(&hif).is_some()))
                    .unwrap_or(false)
            });
            if present {
                continue;
            }
            found.push(format!(
                "network {}: running container {} has no interface on it (a connect cut short)",
                n.name, e.name
            ));
            if repair {
                let cns = netns::open(&cpath)?;
                attach_one(root, &cns, cid, (&n, e), &nets.of_container(cid)?)?;
                write_hosts(root, cid, &nets)?;
            }
        }
    }
    Ok(found)
}
