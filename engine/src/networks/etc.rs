//! A container's `/etc/hosts` and `/etc/resolv.conf`, files of its folder bind mounted
//! over the image's. On a user-defined network the hosts file names every other
//! container of the network (name, aliases, short id), and is rewritten whenever one
//! joins or leaves, so containers find each other by name; the default `bridge` network
//! resolves no names, as Docker's does not. The files are derived state: every start
//! writes them again from the network records.

use crate::error::{EngineError, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

/// Docker's fixed lines of a container's hosts file.
const HOSTS_HEAD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Checks `--add-host HOST:IP` values and gives their lines.
pub(crate) fn extra_host_lines(extra: &[String]) -> Result<String> {
    let mut out = String::new();
    for h in extra {
        let (name, ip) = h.split_once(':').ok_or_else(|| {
            EngineError::Invalid(format!("invalid extra host {h:?}: use HOST:IP"))
        })?;
        if ip.parse::<std::net::IpAddr>().is_err()
            || name.is_empty()
            || name.contains(char::is_whitespace)
        {
            return Err(EngineError::Invalid(format!(
                "invalid extra host {h:?}: use HOST:IP with an IP address"
            )));
        }
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    Ok(out)
}

/// A hosts file: the fixed lines, the extra hosts, the container's own address (or
/// 127.0.1.1 without one) with its hostname, then the peers: `(address, names)`.
pub(crate) fn hosts(
    extra: &[String],
    hostname: &str,
    own: Option<Ipv4Addr>,
    peers: &[(Ipv4Addr, Vec<String>)],
) -> Result<String> {
    let mut s = HOSTS_HEAD.to_string();
    s.push_str(&extra_host_lines(extra)?);
    match own {
        Some(ip) => s.push_str(&format!("{ip}\t{hostname}\n")),
        None => s.push_str(&format!("127.0.1.1\t{hostname}\n")),
    }
    for (ip, names) in peers {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    Ok(s)
}

/// A resolv.conf from `--dns*`, `None` when none was given.
pub(crate) fn resolv_from_flags(
    dns: &[String],
    search: &[String],
    options: &[String],
) -> Result<Option<String>> {
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        return Ok(None);
    }
    let clean = |v: &[String]| v.iter().all(|s| !s.contains(['\n', '\r']));
    if !clean(search) || !clean(options) {
        return Err(EngineError::Invalid(
            "DNS search domains and options are single words".into(),
        ));
    }
    // dockerd's order: search, name servers, options.
    let mut conf = String::new();
    if !search.is_empty() {
        conf.push_str(&format!("search {}\n", search.join(" ")));
    }
    for d in dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(EngineError::Invalid(format!(
                "invalid DNS server {d:?}: give an IP address"
            )));
        }
        conf.push_str(&format!("nameserver {d}\n"));
    }
    if !options.is_empty() {
        conf.push_str(&format!("options {}\n", options.join(" ")));
    }
    Ok(Some(conf))
}

/// The host's resolv.conf without loopback name servers (unreachable from a container's
/// namespace), as Docker gives a container on a bridge network.
pub(crate) fn resolv_from_host() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            let local = ns
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(true);
            if local {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Rewrites a bind-mounted file in place (a new file by rename would leave the
/// container's mount on the old one).
pub(crate) fn rewrite_in_place(path: &Path, content: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| EngineError::io(format!("rewrite {}", path.display()), e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| EngineError::io(format!("rewrite {}", path.display()), e))
}
