//! Docker's legacy links (`--link NAME[:ALIAS]`, the API's `HostConfig.Links`, what
//! Compose's `run` sends for a service's dependencies): the linked container's address
//! under the alias in the linking one's hosts file, rewritten at each start, and on the
//! default bridge the `ALIAS_PORT_...` environment of a running linked container.

use crate::error::{EngineError, Result};
use layerstore::Store;
use network::records::Networks;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// One link, by the linked container's id so a rename keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub container: String,
    pub alias: String,
}

impl Link {
    /// Parses `NAME[:ALIAS]` (a leading `/` is Docker's own form) and finds the container.
    pub(crate) fn resolve(store: &Store, spec: &str) -> Result<(Link, String)> {
        let (name, alias) = spec.split_once(':').unwrap_or((spec, spec));
        let name = name.trim_start_matches('/');
        // Docker's stored form is `/other:/self/alias`: the alias is the last part.
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        if name.is_empty() || alias.is_empty() || alias.contains(char::is_whitespace) {
            return Err(EngineError::Invalid(format!(
                "invalid link {spec:?}: use NAME[:ALIAS]"
            )));
        }
        let c = store.resolve_container(name).map_err(|_| {
            EngineError::NotFound(format!(
                "could not get container for {name}: No such container: {name}"
            ))
        })?;
        Ok((
            Link {
                container: c.id,
                alias: alias.to_string(),
            },
            c.name,
        ))
    }
}

/// The hosts lines of container `cid`'s links: each linked container's address (on a
/// network both share, else its first) with the alias, its name and short id. A linked
/// container that is gone or on no network is left out.
pub(crate) fn host_entries(
    nets: &Networks,
    cid: &str,
    links: &[Link],
) -> Result<Vec<(Ipv4Addr, Vec<String>)>> {
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let mine: Vec<String> = nets
        .of_container(cid)?
        .into_iter()
        .map(|(n, _)| n.id)
        .collect();
    let mut out = Vec::new();
    for l in links {
        let theirs = nets.of_container(&l.container)?;
        let pick = theirs
            .iter()
            .find(|(n, _)| mine.contains(&n.id))
            .or_else(|| theirs.first());
        let Some((_, e)) = pick else { continue };
        let mut names = vec![l.alias.clone()];
        if e.name != l.alias {
            names.push(e.name.clone());
        }
        names.push(l.container[..l.container.len().min(12)].to_string());
        out.push((e.ip, names));
    }
    Ok(out)
}

/// Docker's link environment for `alias` on the default bridge: `ALIAS_NAME`, and for
/// each exposed port `ALIAS_PORT_<port>_<PROTO>` with its `_ADDR`, `_PORT`, `_PROTO`, the
/// first as `ALIAS_PORT`; the linked container's own `ENV` as `ALIAS_ENV_<KEY>`.
pub(crate) fn environment(
    self_name: &str,
    alias: &str,
    ip: Ipv4Addr,
    exposed: &[String],
    env: &[String],
) -> Vec<String> {
    let prefix: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut out = vec![format!("{prefix}_NAME=/{self_name}/{alias}")];
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((n.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let key = format!("{prefix}_PORT_{p}_{}", proto.to_ascii_uppercase());
        out.push(format!("{key}={proto}://{ip}:{p}"));
        out.push(format!("{key}_ADDR={ip}"));
        out.push(format!("{key}_PORT={p}"));
        out.push(format!("{key}_PROTO={proto}"));
    }
    for e in env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if matches!(k, "HOME" | "HOSTNAME" | "PATH") {
            continue;
        }
        out.push(format!("{prefix}_ENV_{k}={v}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_environment_as_docker_writes_it() {
        let ip: Ipv4Addr = "172.17.0.2".parse().unwrap();
        let env = environment(
            "web",
            "db",
            ip,
            &["5432/tcp".into()],
            &["PATH=/bin".into(), "PGDATA=/data".into()],
        );
        assert_eq!(
            env,
            [
                "DB_NAME=/web/db",
                "DB_PORT=tcp://172.17.0.2:5432",
                "DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "DB_PORT_5432_TCP_PORT=5432",
                "DB_PORT_5432_TCP_PROTO=tcp",
                "DB_ENV_PGDATA=/data",
            ]
        );
    }
}
