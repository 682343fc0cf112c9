//! The port proxy (`strata port-proxy`, one process per running container with published
//! ports): it binds the host side of every forward in the host's namespace, then joins
//! the network's namespace, so each connection it accepts is answered by one it opens
//! from inside the network to the container's address. It reports what it bound (or why
//! it could not) as one JSON line, and ends when its standard input closes: its runner
//! (the container's shim, or the caller of an attached run) holds the other end, so the
//! proxy never outlives the container.
//!
//! Anyone who can reach a published port is untrusted, so the proxy is one thread with
//! an event loop ([`crate::relay`]), not a thread per connection: idle connections cost
//! two descriptors each, a pipe pair is taken only while bytes move, the descriptor limit
//! is raised to the hard one, and the connections and UDP clients it keeps are capped; at
//! the cap the one idle longest makes room, so a flood of idle or spoofed clients never
//! locks out a new one.

use crate::error::{NetError, Result};
use crate::netns;
use crate::ports::{Forward, Proto};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The proxy's one-line report.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The forwards as bound (host ports the kernel picked filled in).
    pub bound: Vec<Forward>,
    /// Why it could not start.
    pub error: Option<String>,
}

/// A host socket bound for one forward.
pub enum Bound {
    Tcp(TcpListener, Forward),
    Udp(UdpSocket, Forward),
}

fn bind(f: &Forward) -> Result<Bound> {
    let in_use = |e: io::Error| {
        if e.kind() == io::ErrorKind::AddrInUse {
            NetError::InUse(format!(
                "cannot publish port {}/{}: {} is already in use on the host; pick another host port (-p HOST:{}) or stop what listens there",
                f.port,
                f.proto.name(),
                f.host,
                f.port
            ))
        } else {
            NetError::io(format!("listen on {} for port {}", f.host, f.port), e)
        }
    };
    let mut bound = *f;
    Ok(match f.proto {
        Proto::Tcp => {
            let l = TcpListener::bind(f.host).map_err(in_use)?;
            bound.host = l.local_addr().map_err(in_use)?;
            Bound::Tcp(l, bound)
        }
        Proto::Udp => {
            let s = UdpSocket::bind(f.host).map_err(in_use)?;
            bound.host = s.local_addr().map_err(in_use)?;
            Bound::Udp(s, bound)
        }
    })
}

/// Binds every forward, joins the network namespace at `netns_path`, reports on `report`
/// and serves until `stdin` ends. Returns the process's exit status.
pub fn serve(
    netns_path: &Path,
    target: Ipv4Addr,
    forwards: &[Forward],
    mut report: impl Write,
    stdin: impl std::os::fd::AsFd,
) -> i32 {
    let nofile = fsutil::limits::raise_nofile();
    let setup = (|| -> Result<Vec<Bound>> {
        let bound = forwards.iter().map(bind).collect::<Result<Vec<_>>>()?;
        let ns = netns::open(netns_path)?;
        // SAFETY: setns of this single-threaded process's only thread: every socket it
        // opens from now on (to the container) is inside the network's namespace.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(NetError::io(
                "join the network's namespace",
                io::Error::last_os_error(),
            ));
        }
        Ok(bound)
    })();
    let bound = match setup {
        Ok(b) => b,
        Err(e) => {
            let r = Report {
                bound: Vec::new(),
                error: Some(e.to_string()),
            };
            let _ = writeln!(report, "{}", serde_json::to_string(&r).unwrap_or_default());
            return 1;
        }
    };
    let r = Report {
        bound: bound
            .iter()
            .map(|b| match b {
                Bound::Tcp(_, f) | Bound::Udp(_, f) => *f,
            })
            .collect(),
        error: None,
    };
    let _ = writeln!(report, "{}", serde_json::to_string(&r).unwrap_or_default());
    drop(report);
    let limits = crate::relay::Limits::for_descriptors(nofile);
    match crate::relay::run(bound, target, stdin, limits) {
        Ok(()) => 0,
        Err(e) => {
            tracing::warn!("port proxy: {e}");
            1
        }
    }
}
