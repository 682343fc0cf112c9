//! Container networks (`network create/ls/inspect/rm/prune/connect/disconnect`), as
//! Docker's bridge driver has them but never in the host's own namespace: a network is
//! a bridge in a namespace of its own ([`network::bridge`]), its records (addresses,
//! endpoints) are in the store ([`network::records`]), a container's side is in
//! [`sandbox`], its `/etc` files in `etc`, published ports in [`proxy`].

pub(crate) mod etc;
pub mod links;
pub mod proxy;
pub mod sandbox;

use crate::containers::bundle::Bundle;
use crate::error::{EngineError, Result};
use crate::Engine;
use network::records::{NetworkRecord, Networks, NewNetwork};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What `network create` makes.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    /// Only `bridge` (the default) is made here.
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub internal: bool,
    /// Docker's `--attachable`: kept and shown (it matters only to swarm).
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

/// A container's wish to be on a network (`--network`, `NetworkingConfig`, `connect`).
#[derive(Debug, Clone, Default)]
pub struct EndpointOptions {
    pub network: String,
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
}

impl EndpointOptions {
    fn ip(&self) -> Result<Option<Ipv4Addr>> {
        self.ip
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    EngineError::Invalid(format!("invalid --ip {s:?}: give an IPv4 address"))
                })
            })
            .transpose()
    }
}

/// What `network inspect` says of the route out: there is none.
const NO_ROUTE: &str = "isolated: the bridge lives in a network namespace of its own with no route off this machine; containers reach each other and published ports, nothing outside";

impl Engine {
    fn networks(&self) -> Result<Networks> {
        Ok(Networks::open(&self.cfg.data_root)?)
    }

    /// Makes a bridge network (and its namespace with its bridge).
    pub fn network_create(&self, o: &NetworkCreate) -> Result<NetworkRecord> {
        if let Some(d) = o.driver.as_deref().filter(|d| *d != "bridge") {
            return Err(EngineError::Unsupported(format!(
                "network driver {d:?} is not supported: strata makes bridge networks"
            )));
        }
        let nets = self.networks()?;
        let n = nets.create(&NewNetwork {
            name: o.name.clone(),
            subnet: o.subnet.clone(),
            internal: o.internal,
            attachable: o.attachable,
            labels: o.labels.clone(),
        })?;
        if let Err(e) = sandbox::network_namespace(&self.cfg.data_root, &n) {
            let _ = nets.remove(&n.id);
            return Err(e);
        }
        crate::events::record(&self.cfg.data_root, "network", "create", &n.id, &n.name);
        Ok(n)
    }

    /// Every network, by name.
    pub fn network_list(&self) -> Result<Vec<NetworkRecord>> {
        Ok(Networks::open_listed(&self.cfg.data_root)?.1)
    }

    /// Network `key` (name, id or unique id prefix).
    pub fn network(&self, key: &str) -> Result<NetworkRecord> {
        Ok(self.networks()?.resolve(key)?)
    }

    /// Docker's document for a network (`network inspect`, `GET /networks/{id}`).
    pub fn network_json(&self, n: &NetworkRecord) -> Value {
        let config: Vec<Value> = n
            .subnet()
            .map(|s| vec![json!({"Subnet": s.to_string(), "Gateway": s.gateway().to_string()})])
            .unwrap_or_default();
        let containers: serde_json::Map<String, Value> = n
            .endpoints
            .iter()
            .map(|(cid, e)| {
                let prefix = n.subnet().map(|s| s.prefix).unwrap_or(0);
                (
                    cid.clone(),
                    json!({
                        "Name": e.name,
                        "EndpointID": endpoint_id(&n.id, cid),
                        "MacAddress": network::bridge::mac_string(network::bridge::mac_of(e.ip)),
                        "IPv4Address": format!("{}/{prefix}", e.ip),
                        "IPv6Address": "",
                    }),
                )
            })
            .collect();
        let mut doc = json!({
            "Name": n.name,
            "Id": n.id,
            "Created": layerstore::export::rfc3339(n.created),
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": null, "Config": config},
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            // What the client gave (strata's bridge takes no driver options).
            "Options": {},
            "Labels": n.labels,
        });
        // strata's own facts, apart from what the client set (a client that compares
        // Options with its own would otherwise see a change it never made).
        if n.is_bridge() {
            doc["Strata"] = json!({ "Route": NO_ROUTE });
        }
        doc
    }

    /// Removes network `key`: refused for `bridge`, `host`, `none` and while a container
    /// is on it.
    pub fn network_remove(&self, key: &str) -> Result<NetworkRecord> {
        let nets = self.networks()?;
        let n = nets.resolve(key)?;
        nets.remove(&n.id)?;
        network::netns::remove(&sandbox::network_ns(&self.cfg.data_root, &n.id));
        crate::events::record(&self.cfg.data_root, "network", "destroy", &n.id, &n.name);
        Ok(n)
    }

    /// Removes every user-defined network no container is on; returns their names.
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.network_list()? {
            if !n.is_builtin() && n.endpoints.is_empty() && self.network_remove(&n.id).is_ok() {
                out.push(n.name);
            }
        }
        Ok(out)
    }

    /// Puts container `container` on network `o.network` (at once when it runs).
    pub fn network_connect(&self, container: &str, o: &EndpointOptions) -> Result<()> {
        let c = self.container(container)?.record;
        let root = &self.cfg.data_root;
        let cn = sandbox::ContainerNet::of(&Bundle::of(root, &c.id));
        if !cn.is_bridge() {
            return Err(EngineError::Conflict(format!(
                "container {} uses network mode {}: it cannot be connected to other networks",
                c.name, cn.mode
            )));
        }
        let nets = self.networks()?;
        let n = nets.resolve(&o.network)?;
        let e = nets.connect(&n.id, &c.id, &c.name, o.ip()?, &o.aliases)?;
        test_pause("STRATA_TEST_CONNECT_PAUSE_MS");
        let running = Bundle::of(root, &c.id).state_or_default().is_running();
        if running {
            if let Err(err) = sandbox::attach_running(root, &c.id, &n, &e) {
                let _ = nets.disconnect(&n.id, &c.id);
                return Err(err);
            }
        }
        sandbox::refresh(root, &nets, &n.id)?;
        crate::events::record(root, "network", "connect", &n.id, &n.name);
        Ok(())
    }

    /// Takes container `container` off network `network` (its address released).
    pub fn network_disconnect(&self, container: &str, network: &str) -> Result<()> {
        let c = self.container(container)?.record;
        let root = &self.cfg.data_root;
        let nets = self.networks()?;
        let n = nets.resolve(network)?;
        if !n.endpoints.contains_key(&c.id) {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {}",
                c.name, n.name
            )));
        }
        sandbox::detach(root, &c.id, &n)?;
        nets.disconnect(&n.id, &c.id)?;
        sandbox::refresh(root, &nets, &n.id)?;
        sandbox::write_hosts(root, &c.id, &nets)?;
        crate::events::record(root, "network", "disconnect", &n.id, &n.name);
        Ok(())
    }

    /// The ports container `key` publishes now, as bound (empty when it is not running).
    pub fn published_ports(&self, key: &str) -> Result<network::ports::PortMap> {
        let c = self.container(key)?;
        if !c.state.is_running() {
            return Ok(Default::default());
        }
        Ok(proxy::published(&c.bundle))
    }

    /// Joins a container just made to the networks it asked for; on failure it is on none.
    pub(crate) fn join_networks(
        &self,
        cid: &str,
        name: &str,
        wants: &[EndpointOptions],
    ) -> Result<()> {
        let nets = self.networks()?;
        let joined = (|| -> Result<()> {
            for w in wants {
                nets.connect(&w.network, cid, name, w.ip()?, &w.aliases)?;
            }
            Ok(())
        })();
        if joined.is_err() {
            let _ = sandbox::teardown(&self.cfg.data_root, cid);
        }
        joined?;
        for (n, _) in nets.of_container(cid)? {
            sandbox::refresh(&self.cfg.data_root, &nets, &n.id)?;
        }
        Ok(())
    }
}

/// The `NetworkSettings` of container `cid` in Docker's shape.
pub fn network_settings(root: &std::path::Path, cid: &str) -> Value {
    let all = Networks::open(root)
        .and_then(|n| n.list())
        .unwrap_or_default();
    network_settings_in(&all, root, cid)
}

/// [`network_settings`] with every network record read once by the caller (a listing of
/// many containers).
pub fn network_settings_in(all: &[NetworkRecord], root: &std::path::Path, cid: &str) -> Value {
    let bundle = Bundle::of(root, cid);
    let ports = proxy::published(&bundle);
    let mut networks = serde_json::Map::new();
    // The default bridge's endpoint is repeated at the top, as dockerd does.
    let mut top = Endpoint::default();
    let cn = sandbox::ContainerNet::of(&bundle);
    {
        // `none` and `host` have no endpoint record, but dockerd lists them.
        if !cn.is_bridge() && !cn.mode.starts_with("container:") {
            if let Ok(n) = network::records::resolve_in(all, &cn.mode) {
                let doc = Endpoint {
                    network_id: n.id.clone(),
                    ..Default::default()
                };
                networks.insert(n.name.clone(), doc.to_json());
            }
        }
        for (n, e) in all.iter().filter_map(|n| Some((n, n.endpoints.get(cid)?))) {
            let s = n.subnet();
            let doc = Endpoint {
                network_id: n.id.clone(),
                endpoint_id: endpoint_id(&n.id, cid),
                aliases: (!n.is_builtin()).then(|| e.aliases.clone()),
                gateway: s.map(|s| s.gateway().to_string()).unwrap_or_default(),
                ip: e.ip.to_string(),
                prefix: s.map(|s| s.prefix).unwrap_or(0),
                mac: network::bridge::mac_string(network::bridge::mac_of(e.ip)),
            };
            if n.name == "bridge" {
                top = doc.clone();
            }
            networks.insert(n.name.clone(), doc.to_json());
        }
    }
    let sandbox_key = if cn.is_bridge() {
        sandbox::container_ns(root, cid).display().to_string()
    } else {
        String::new()
    };
    json!({
        "Bridge": "",
        "SandboxID": if cn.is_bridge() { cid } else { "" },
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": top.endpoint_id,
        "Gateway": top.gateway,
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.ip,
        "IPPrefixLen": top.prefix,
        "IPv6Gateway": "",
        "MacAddress": top.mac,
        "Networks": networks,
    })
}

/// A container's endpoint on one network, as inspect shows it (IPv6 fields empty).
#[derive(Debug, Clone, Default)]
struct Endpoint {
    network_id: String,
    endpoint_id: String,
    aliases: Option<Vec<String>>,
    gateway: String,
    ip: String,
    prefix: u8,
    mac: String,
}

impl Endpoint {
    /// Docker's `EndpointSettings`.
    fn to_json(&self) -> Value {
        json!({
            "IPAMConfig": null,
            "Links": null,
            "Aliases": self.aliases,
            "NetworkID": self.network_id,
            "EndpointID": self.endpoint_id,
            "Gateway": self.gateway,
            "IPAddress": self.ip,
            "IPPrefixLen": self.prefix,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": self.mac,
            "DriverOpts": null,
        })
    }
}

/// A stable endpoint id: the network's and the container's ids hashed.
fn endpoint_id(nid: &str, cid: &str) -> String {
    layerstore::Digest::of(format!("{nid}/{cid}").as_bytes())
        .hex()
        .to_string()
}

/// Test hook: waits so a test can kill the process between two steps.
fn test_pause(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
