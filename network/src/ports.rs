//! Published ports: `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` (ranges too) into
//! Docker's `PortBindings` map, and that map into the forwards the proxy serves.

use crate::error::{NetError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One host address a container port is published on (Docker's `PortBinding`); empty
/// fields mean every address and a port the kernel picks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HostBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// `"80/tcp"` -> where it is published (Docker's `PortBindings` and `Ports`).
pub type PortMap = BTreeMap<String, Vec<HostBinding>>;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn parse(s: &str, spec: &str) -> Result<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(bad(spec, "the protocol must be tcp or udp")),
        }
    }

    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

fn bad(spec: &str, why: &str) -> NetError {
    NetError::Invalid(format!("invalid port {spec:?}: {why}"))
}

/// `N` or `N-M` into the ports it names.
fn range(s: &str, spec: &str) -> Result<Vec<u16>> {
    let port = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| bad(spec, &format!("{p:?} is not a port (1-65535)")))
    };
    match s.split_once('-') {
        None => Ok(vec![port(s)?]),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(bad(spec, "a range goes from low to high"));
            }
            Ok((a..=b).collect())
        }
    }
}

/// A container port key (`80`, `80/tcp`, `53/udp`) in its normal form `80/tcp`.
pub fn port_key(s: &str) -> Result<(u16, Proto)> {
    let (p, proto) = s.split_once('/').unwrap_or((s, ""));
    let ports = range(p, s)?;
    if ports.len() != 1 {
        return Err(bad(s, "give one port"));
    }
    Ok((ports[0], Proto::parse(proto, s)?))
}

/// Adds `-p SPEC` to `map`.
pub fn parse_publish(spec: &str, map: &mut PortMap) -> Result<()> {
    let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, ""));
    let proto = Proto::parse(proto, spec)?;
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| bad(spec, "an unclosed [ in the address"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad(spec, "give [IP]:HOST_PORT:CONTAINER_PORT"))?;
        (Some(ip.to_string()), after.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest.to_string()),
            3 => (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => return Err(bad(spec, "use [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]")),
        }
    };
    if let Some(ip) = &ip {
        if ip.parse::<IpAddr>().is_err() {
            return Err(bad(spec, &format!("{ip:?} is not an IP address")));
        }
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest.as_str()),
    };
    let cports = range(container, spec)?;
    let hports: Vec<Option<u16>> = if host.is_empty() {
        vec![None; cports.len()]
    } else {
        let h = range(host, spec)?;
        if h.len() == cports.len() {
            h.into_iter().map(Some).collect()
        } else if cports.len() == 1 && h.len() > 1 {
            return Err(bad(
                spec,
                "a host port range needs a container range of the same size",
            ));
        } else {
            return Err(bad(spec, "the host and container ranges differ in size"));
        }
    };
    for (c, h) in cports.into_iter().zip(hports) {
        map.entry(format!("{c}/{}", proto.name()))
            .or_default()
            .push(HostBinding {
                host_ip: ip.clone().unwrap_or_default(),
                host_port: h.map(|p| p.to_string()).unwrap_or_default(),
            });
    }
    Ok(())
}

/// One forward the proxy serves: connections (or datagrams) to `host` go to the
/// container's `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    pub proto: Proto,
    pub host: SocketAddr,
    pub port: u16,
}

impl Forward {
    /// `tcp:127.0.0.1:8080=80`, the proxy's argument form.
    pub fn arg(&self) -> String {
        format!("{}:{}={}", self.proto.name(), self.host, self.port)
    }

    /// Reads [`Forward::arg`]'s form back.
    pub fn parse_arg(s: &str) -> Result<Forward> {
        let bad = || NetError::Invalid(format!("bad forward {s:?}: use PROTO:HOST:PORT=PORT"));
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once('=').ok_or_else(bad)?;
        Ok(Forward {
            proto: Proto::parse(proto, s)?,
            host: host.parse().map_err(|_| bad())?,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// The forwards of a container: its bindings, plus (with `-P`) every exposed port not
/// bound, on a port the kernel picks.
pub fn forwards(map: &PortMap, publish_all: bool, exposed: &[String]) -> Result<Vec<Forward>> {
    let mut all = map.clone();
    if publish_all {
        for e in exposed {
            let (p, proto) = port_key(e)?;
            all.entry(format!("{p}/{}", proto.name()))
                .or_insert_with(|| vec![HostBinding::default()]);
        }
    }
    let mut out = Vec::new();
    for (key, bindings) in &all {
        let (port, proto) = port_key(key)?;
        for b in bindings {
            let ip: IpAddr = if b.host_ip.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                b.host_ip
                    .parse()
                    .map_err(|_| bad(key, &format!("{:?} is not an IP address", b.host_ip)))?
            };
            let hp: u16 = if b.host_port.is_empty() {
                0
            } else {
                b.host_port
                    .parse()
                    .map_err(|_| bad(key, &format!("{:?} is not a host port", b.host_port)))?
            };
            out.push(Forward {
                proto,
                host: SocketAddr::new(ip, hp),
                port,
            });
        }
    }
    Ok(out)
}

/// The `Ports` map of inspect for forwards as bound (actual host ports).
pub fn bound_map(bound: &[Forward]) -> PortMap {
    let mut m = PortMap::new();
    for f in bound {
        m.entry(format!("{}/{}", f.port, f.proto.name()))
            .or_default()
            .push(HostBinding {
                host_ip: f.host.ip().to_string(),
                host_port: f.host.port().to_string(),
            });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMap {
        let mut m = PortMap::new();
        parse_publish(spec, &mut m).unwrap();
        m
    }

    #[test]
    fn publish_specs_read_as_docker_reads_them() {
        let m = one("127.0.0.1:8080:80");
        assert_eq!(m["80/tcp"][0].host_ip, "127.0.0.1");
        assert_eq!(m["80/tcp"][0].host_port, "8080");
        assert_eq!(one("8080:80/udp")["80/udp"][0].host_ip, "");
        assert_eq!(one("80")["80/tcp"][0].host_port, "");
        assert_eq!(one("127.0.0.1::80")["80/tcp"][0].host_port, "");
        assert_eq!(one("[::1]:9000:90")["90/tcp"][0].host_ip, "::1");
        let r = one("8000-8002:80-82");
        assert_eq!(r.len(), 3);
        assert_eq!(r["82/tcp"][0].host_port, "8002");
        for b in [
            "x:80",
            "80/sctp",
            "0",
            "70000",
            "1.2.3:80:80",
            "8000-8001:80",
            "82-80",
            "a:b:c:d",
        ] {
            let mut m = PortMap::new();
            assert!(parse_publish(b, &mut m).is_err(), "{b}");
        }
    }

    #[test]
    fn forwards_cover_bindings_and_publish_all() {
        let mut m = one("127.0.0.1:8080:80");
        parse_publish("53/udp", &mut m).unwrap();
        let f = forwards(&m, true, &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert_eq!(f.len(), 3);
        assert!(f.iter().any(|f| f.port == 443 && f.host.port() == 0));
        let back = Forward::parse_arg(&f[0].arg()).unwrap();
        assert_eq!(back, f[0]);
    }
}
