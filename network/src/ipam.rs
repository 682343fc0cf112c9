//! Address management for container networks (issue 18, started): IPv4 subnets, the
//! gateway a network's bridge takes, and a pool that hands each container the lowest free
//! address, never one held by another, and takes it back on release. The pool is plain
//! data (serde), so a network's record can hold it and be written whole (temp name, fsync,
//! rename): after a crash an address is held or free, never both.

use layerstore::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// An IPv4 subnet (`172.18.0.0/16`), its address aligned to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

fn bad(s: &str, why: &str) -> StoreError {
    StoreError::Invalid(format!("invalid subnet {s:?}: {why}"))
}

impl Subnet {
    /// Parses `A.B.C.D/N`; refuses host bits set, prefixes that leave no room for a
    /// gateway and a container (longer than /30) and shorter than /8.
    pub fn parse(s: &str) -> Result<Subnet> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad(s, "give ADDRESS/PREFIX, e.g. 172.20.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| {
            bad(
                s,
                "the address is not IPv4 (IPv6 networks are not supported)",
            )
        })?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| bad(s, "the prefix is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad(s, "use a prefix from /8 to /30"));
        }
        let net = Subnet { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(bad(
                s,
                &format!("host bits are set: did you mean {}?", net.aligned()),
            ));
        }
        Ok(net)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    fn aligned(&self) -> Subnet {
        Subnet {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    /// Whether `ip` is in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The gateway (the bridge's address): the first host address, as Docker takes it.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A subnet for a network made without `--subnet`: the first of Docker's default pools
/// (172.17-31.0.0/16, then 192.168.0-240.0/20) that overlaps none of `taken`.
pub fn default_subnet(taken: &[Subnet]) -> Option<Subnet> {
    let sixteens = (17u8..=31).map(|b| Subnet {
        addr: Ipv4Addr::new(172, b, 0, 0),
        prefix: 16,
    });
    let twenties = (0u8..=240).step_by(16).map(|c| Subnet {
        addr: Ipv4Addr::new(192, 168, c, 0),
        prefix: 20,
    });
    sixteens
        .chain(twenties)
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
}

/// The addresses of one network handed out, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Subnet,
    /// Address -> the container (or endpoint) holding it.
    pub held: BTreeMap<Ipv4Addr, String>,
}

impl Pool {
    /// An empty pool over `subnet`.
    pub fn new(subnet: Subnet) -> Pool {
        Pool {
            subnet,
            held: BTreeMap::new(),
        }
    }

    /// The lowest free host address for `owner` (the network address, the gateway and the
    /// broadcast address are never handed out); `owner` already holding one gets it again.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.of(owner) {
            return Ok(ip);
        }
        let gw = u32::from(self.subnet.gateway());
        let free = (gw + 1..self.subnet.last())
            .map(Ipv4Addr::from)
            .find(|ip| !self.held.contains_key(ip))
            .ok_or_else(|| {
                StoreError::InUse(format!(
                    "no free address left in {}: remove containers from the network or make one with a larger --subnet",
                    self.subnet
                ))
            })?;
        self.held.insert(free, owner.to_string());
        Ok(free)
    }

    /// Takes `ip` for `owner` (`--ip`): refused outside the subnet, on the gateway, or when
    /// another holds it.
    pub fn take(&mut self, ip: Ipv4Addr, owner: &str) -> Result<()> {
        let n = u32::from(ip);
        if !self.subnet.contains(ip)
            || n == self.subnet.first()
            || n == self.subnet.last()
            || ip == self.subnet.gateway()
        {
            return Err(StoreError::Invalid(format!(
                "{ip} is not a container address of {} (its gateway is {})",
                self.subnet,
                self.subnet.gateway()
            )));
        }
        match self.held.get(&ip) {
            Some(o) if o != owner => Err(StoreError::InUse(format!(
                "{ip} is already held by {o} on this network"
            ))),
            _ => {
                self.held.insert(ip, owner.to_string());
                Ok(())
            }
        }
    }

    /// The address `owner` holds, if any.
    pub fn of(&self, owner: &str) -> Option<Ipv4Addr> {
        self.held
            .iter()
            .find(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
    }

    /// Gives back what `owner` holds; returns the address.
    pub fn release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let ip = self.of(owner)?;
        self.held.remove(&ip);
        Some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_refuse_what_docker_refuses() {
        let s = Subnet::parse("172.20.0.0/16").unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 20, 0, 1));
        assert!(s.contains(Ipv4Addr::new(172, 20, 255, 254)));
        assert!(!s.contains(Ipv4Addr::new(172, 21, 0, 1)));
        let e = Subnet::parse("172.20.0.1/16").unwrap_err().to_string();
        assert!(e.contains("172.20.0.0/16"), "{e}");
        for bad in [
            "172.20.0.0",
            "fd00::/64",
            "10.0.0.0/31",
            "10.0.0.0/x",
            "10.0.0.0/4",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        assert!(s.overlaps(&Subnet::parse("172.20.128.0/17").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("172.21.0.0/16").unwrap()));
    }

    #[test]
    fn defaults_skip_subnets_in_use() {
        assert_eq!(default_subnet(&[]).unwrap().to_string(), "172.17.0.0/16");
        let taken = [
            Subnet::parse("172.17.0.0/16").unwrap(),
            Subnet::parse("172.18.5.0/24").unwrap(),
        ];
        assert_eq!(default_subnet(&taken).unwrap().to_string(), "172.19.0.0/16");
    }

    #[test]
    fn addresses_are_never_shared_and_come_back_on_release() {
        let mut p = Pool::new(Subnet::parse("10.9.0.0/29").unwrap());
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 for containers.
        let a = p.allocate("a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(
            p.allocate("a").unwrap(),
            a,
            "the same owner keeps its address"
        );
        p.take(Ipv4Addr::new(10, 9, 0, 3), "b").unwrap();
        assert!(p.take(Ipv4Addr::new(10, 9, 0, 3), "c").is_err());
        assert!(
            p.take(Ipv4Addr::new(10, 9, 0, 1), "c").is_err(),
            "the gateway"
        );
        assert!(p.take(Ipv4Addr::new(10, 9, 1, 3), "c").is_err(), "outside");
        for o in ["c", "d", "e"] {
            p.allocate(o).unwrap();
        }
        let full = p.allocate("f").unwrap_err().to_string();
        assert!(full.contains("no free address"), "{full}");
        assert_eq!(p.release("b"), Some(Ipv4Addr::new(10, 9, 0, 3)));
        assert_eq!(p.allocate("f").unwrap(), Ipv4Addr::new(10, 9, 0, 3));
        // Written whole and read back: the same holders.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Pool>(&json).unwrap(), p);
    }
}
