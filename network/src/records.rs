//! Network records: one JSON file per network under `<data-root>/networks`, holding its
//! settings, its address pool and its endpoints (which container holds which address,
//! under which aliases). A record is written whole (temp name, fsync, rename) under the
//! records lock, so after a crash an address is held by an endpoint or free, never both,
//! and an endpoint never exists without its address. The built-in `bridge`, `host` and
//! `none` networks are made on first use, as dockerd makes them at start.

use crate::ipam::{default_subnet, Pool, Subnet};
use layerstore::error::{Result, StoreError};
use layerstore::locks::StoreLocks;
use layerstore::records::JsonDir;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The built-in networks, which can be neither made nor removed.
pub const BUILTIN: &[&str] = &["bridge", "host", "none"];

/// One container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's name when it joined (kept for name resolution).
    pub name: String,
    pub ip: Ipv4Addr,
    /// Other names it answers to on this network (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null` (Docker's driver names).
    pub driver: String,
    /// Docker's `--internal`: containers get no default route.
    #[serde(default)]
    pub internal: bool,
    /// Docker's `--attachable`, as given (it matters only to swarm).
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created: u64,
    /// Addresses (bridge networks only).
    pub pool: Option<Pool>,
    /// Container id -> its endpoint.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl NetworkRecord {
    /// Whether containers on it get an address and a veth (the bridge driver).
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// Whether it is one of `bridge`, `host`, `none`.
    pub fn is_builtin(&self) -> bool {
        BUILTIN.contains(&self.name.as_str())
    }

    /// The subnet, for a bridge network.
    pub fn subnet(&self) -> Option<Subnet> {
        self.pool.as_ref().map(|p| p.subnet)
    }
}

/// Whether `name` can name a network (Docker's rule, as for containers).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether `a` can be a network alias (a host name: it is written into hosts files).
pub fn valid_alias(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 253
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// What to make.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    pub name: String,
    /// `--subnet`; a free one of Docker's default pools when `None`.
    pub subnet: Option<String>,
    pub internal: bool,
    /// Docker's `--attachable` (kept and shown; it matters only to swarm).
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

/// The networks of a data root.
pub struct Networks {
    records: JsonDir<NetworkRecord>,
    locks: StoreLocks,
    root: PathBuf,
}

/// The network named `key`, or with id (or unique id prefix) `key`, among `all` (read
/// once by a caller that resolves many).
pub fn resolve_in(all: &[NetworkRecord], key: &str) -> Result<NetworkRecord> {
    if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
        return Ok(n.clone());
    }
    let hits: Vec<&NetworkRecord> = all
        .iter()
        .filter(|n| !key.is_empty() && n.id.starts_with(key))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StoreError::NotFound(format!(
            "network {key} not found: `strata network ls` lists them"
        ))),
        _ => Err(StoreError::Ambiguous(format!(
            "network id prefix {key} matches {} networks: give more of it",
            hits.len()
        ))),
    }
}

impl Networks {
    /// The networks of the data root `root`, with the built-in ones made when missing.
    pub fn open(root: &Path) -> Result<Networks> {
        Ok(Networks::open_listed(root)?.0)
    }

    /// [`Networks::open`] and every network, by name, from one read of the records.
    pub fn open_listed(root: &Path) -> Result<(Networks, Vec<NetworkRecord>)> {
        let n = Networks::read(root)?;
        let missing = |all: &[NetworkRecord]| -> Vec<&'static str> {
            BUILTIN
                .iter()
                .copied()
                .filter(|b| !all.iter().any(|x| x.name == *b))
                .collect()
        };
        let all = n.list()?;
        if missing(&all).is_empty() {
            return Ok((n, all));
        }
        {
            let _l = n.locks.records()?;
            for b in missing(&n.all_unlocked()?) {
                let (driver, pool) = match b {
                    "bridge" => ("bridge", Some(Pool::new(Subnet::parse("172.17.0.0/16")?))),
                    "host" => ("host", None),
                    _ => ("null", None),
                };
                let id = layerstore::random_id();
                n.records.put(
                    &id,
                    &NetworkRecord {
                        id: id.clone(),
                        name: b.to_string(),
                        driver: driver.into(),
                        internal: false,
                        attachable: false,
                        labels: BTreeMap::new(),
                        created: layerstore::now(),
                        pool,
                        endpoints: BTreeMap::new(),
                    },
                )?;
            }
        }
        let all = n.list()?;
        Ok((n, all))
    }

    /// The networks of `root` as they are (`fsck` reads without making anything).
    pub fn read(root: &Path) -> Result<Networks> {
        Ok(Networks {
            records: JsonDir::new(root.join("networks"))?,
            locks: StoreLocks::new(root),
            root: root.to_path_buf(),
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn all_unlocked(&self) -> Result<Vec<NetworkRecord>> {
        Ok(self
            .records
            .all()?
            .into_iter()
            .map(|(id, mut r)| {
                r.id = id;
                r
            })
            .collect())
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut all = self.all_unlocked()?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The network named `key`, or with id (or unique id prefix) `key`.
    pub fn resolve(&self, key: &str) -> Result<NetworkRecord> {
        resolve_in(&self.all_unlocked()?, key)
    }

    /// Makes a bridge network: its name unused, its subnet overlapping no other's.
    pub fn create(&self, n: &NewNetwork) -> Result<NetworkRecord> {
        if !valid_name(&n.name) {
            return Err(StoreError::Invalid(format!(
                "invalid network name {:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                n.name
            )));
        }
        let _l = self.locks.records()?;
        let all = self.all_unlocked()?;
        if all.iter().any(|x| x.name == n.name) {
            return Err(StoreError::InUse(format!(
                "network with name {} already exists",
                n.name
            )));
        }
        let taken: Vec<Subnet> = all.iter().filter_map(NetworkRecord::subnet).collect();
        let subnet = match &n.subnet {
            Some(s) => {
                let s = Subnet::parse(s)?;
                if let Some(o) = all
                    .iter()
                    .find(|x| x.subnet().is_some_and(|t| t.overlaps(&s)))
                {
                    return Err(StoreError::InUse(format!(
                        "subnet {s} overlaps network {} ({}): pick another --subnet",
                        o.name,
                        o.subnet().map(|t| t.to_string()).unwrap_or_default()
                    )));
                }
                s
            }
            None => default_subnet(&taken).ok_or_else(|| {
                StoreError::InUse(
                    "every default address pool is in use: remove a network or give --subnet"
                        .into(),
                )
            })?,
        };
        let id = layerstore::random_id();
        let rec = NetworkRecord {
            id: id.clone(),
            name: n.name.clone(),
            driver: "bridge".into(),
            internal: n.internal,
            attachable: n.attachable,
            labels: n.labels.clone(),
            created: layerstore::now(),
            pool: Some(Pool::new(subnet)),
            endpoints: BTreeMap::new(),
        };
        self.records.put(&id, &rec)?;
        Ok(rec)
    }

    /// Removes network `id`: refused for a built-in one and while a container is on it.
    pub fn remove(&self, id: &str) -> Result<()> {
        let _l = self.locks.records()?;
        let n = self.resolve(id)?;
        if n.is_builtin() {
            return Err(StoreError::InUse(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !n.endpoints.is_empty() {
            let names: Vec<&str> = n.endpoints.values().map(|e| e.name.as_str()).collect();
            return Err(StoreError::InUse(format!(
                "network {} has active endpoints ({}): disconnect or remove them first",
                n.name,
                names.join(", ")
            )));
        }
        self.records.remove(&n.id)
    }

    /// Changes network `id` under the records lock and writes it whole.
    fn update<T>(&self, id: &str, f: impl FnOnce(&mut NetworkRecord) -> Result<T>) -> Result<T> {
        let _l = self.locks.records()?;
        let mut n = self.resolve(id)?;
        let out = f(&mut n)?;
        let key = n.id.clone();
        self.records.put(&key, &n)?;
        Ok(out)
    }

    /// Puts container `cid` (named `name`) on network `id`: an address (`ip` when asked
    /// for, else the lowest free one) and its aliases. Joined already: refused.
    pub fn connect(
        &self,
        id: &str,
        cid: &str,
        name: &str,
        ip: Option<Ipv4Addr>,
        aliases: &[String],
    ) -> Result<Endpoint> {
        // Aliases go into other containers' hosts files: one word of host-name characters,
        // so none can add a line of its own there.
        if let Some(a) = aliases.iter().find(|a| !valid_alias(a)) {
            return Err(StoreError::Invalid(format!(
                "invalid network alias {a:?}: use letters, digits, '.', '-' and '_' (at most 253)"
            )));
        }
        self.update(id, |n| {
            if !aliases.is_empty() && n.is_builtin() {
                return Err(StoreError::Invalid(
                    "network-scoped aliases are only supported for user-defined networks".into(),
                ));
            }
            if n.endpoints.contains_key(cid) {
                return Err(StoreError::InUse(format!(
                    "container {name} is already connected to network {}",
                    n.name
                )));
            }
            let pool = n.pool.as_mut().ok_or_else(|| {
                StoreError::Invalid(format!(
                    "network {} ({}) takes no container connections: use a bridge network",
                    n.name, n.driver
                ))
            })?;
            let ip = match ip {
                Some(ip) => {
                    pool.take(ip, cid)?;
                    ip
                }
                None => pool.allocate(cid)?,
            };
            let e = Endpoint {
                name: name.to_string(),
                ip,
                aliases: aliases.to_vec(),
            };
            n.endpoints.insert(cid.to_string(), e.clone());
            Ok(e)
        })
    }

    /// Takes container `cid` off network `id`, releasing its address; returns its
    /// endpoint, `None` when it was not on it.
    pub fn disconnect(&self, id: &str, cid: &str) -> Result<Option<Endpoint>> {
        self.update(id, |n| {
            if let Some(p) = n.pool.as_mut() {
                p.release(cid);
            }
            Ok(n.endpoints.remove(cid))
        })
    }

    /// Container `cid` is now called `name` (its hosts-file name on every network).
    pub fn rename(&self, cid: &str, name: &str) -> Result<()> {
        for n in self.of_container(cid)? {
            self.update(&n.0.id, |rec| {
                if let Some(e) = rec.endpoints.get_mut(cid) {
                    e.name = name.to_string();
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Every network container `cid` is on, with its endpoint, in the order joined
    /// (lowest address first within one network: one endpoint each).
    pub fn of_container(&self, cid: &str) -> Result<Vec<(NetworkRecord, Endpoint)>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|n| {
                let e = n.endpoints.get(cid).cloned()?;
                Some((n, e))
            })
            .collect())
    }

    /// `fsck`: endpoints of containers that no longer exist (a removal or a connect cut
    /// short) and addresses held without an endpoint. With `repair`, both are released.
    /// Returns what it found (and fixed).
    pub fn check(&self, containers: &HashSet<String>, repair: bool) -> Result<Vec<String>> {
        let _l = self.locks.records()?;
        let mut found = Vec::new();
        for mut n in self.all_unlocked()? {
            let mut changed = false;
            let gone: Vec<String> = n
                .endpoints
                .keys()
                .filter(|c| !containers.contains(*c))
                .cloned()
                .collect();
            for c in gone {
                found.push(format!(
                    "network {}: endpoint of container {c}, which no longer exists",
                    n.name
                ));
                n.endpoints.remove(&c);
                if let Some(p) = n.pool.as_mut() {
                    p.release(&c);
                }
                changed = true;
            }
            if let Some(p) = n.pool.as_mut() {
                let stray: Vec<(Ipv4Addr, String)> = p
                    .held
                    .iter()
                    .filter(|(_, o)| !n.endpoints.contains_key(*o))
                    .map(|(ip, o)| (*ip, o.clone()))
                    .collect();
                for (ip, o) in stray {
                    found.push(format!(
                        "network {}: address {ip} held by {o} without an endpoint",
                        n.name
                    ));
                    p.held.remove(&ip);
                    changed = true;
                }
            }
            if changed && repair {
                let key = n.id.clone();
                self.records.put(&key, &n)?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hold_addresses_and_refuse_what_docker_refuses() {
        let d = tempfile::tempdir().unwrap();
        let n = Networks::open(d.path()).unwrap();
        let names: Vec<String> = n.list().unwrap().into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["bridge", "host", "none"]);
        let a = n
            .create(&NewNetwork {
                name: "front".into(),
                ..Default::default()
            })
            .unwrap();
        // 172.17/16 is the default bridge's: the next pool.
        assert_eq!(a.subnet().unwrap().to_string(), "172.18.0.0/16");
        assert!(n
            .create(&NewNetwork {
                name: "front".into(),
                ..Default::default()
            })
            .is_err());
        let e = n
            .create(&NewNetwork {
                name: "over".into(),
                subnet: Some("172.18.4.0/24".into()),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps network front"), "{e}");
        let e1 = n.connect("front", "c1", "one", None, &[]).unwrap();
        assert_eq!(e1.ip, Ipv4Addr::new(172, 18, 0, 2));
        assert!(n.connect("front", "c1", "one", None, &[]).is_err());
        for bad in ["two words", "x\n10.0.0.1 bank", ""] {
            assert!(
                n.connect("front", "c9", "nine", None, &[bad.into()])
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(n.remove("front").unwrap_err().to_string().contains("one"));
        assert!(n.remove("bridge").is_err());
        assert_eq!(n.disconnect(&a.id[..12], "c1").unwrap().unwrap().ip, e1.ip);
        // A crash between a container's removal and its disconnect: fsck releases it.
        n.connect("front", "c2", "two", None, &[]).unwrap();
        let found = n.check(&HashSet::new(), true).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(n.check(&HashSet::new(), false).unwrap().is_empty());
        assert_eq!(
            n.connect("front", "c3", "three", None, &[]).unwrap().ip,
            e1.ip,
            "the address came back"
        );
        n.disconnect("front", "c3").unwrap();
        n.remove("front").unwrap();
        assert!(n.resolve("front").is_err());
    }
}
