//! Starting and stopping a container's port proxy (`strata port-proxy`, see
//! [`network::proxy`]). Whoever runs the container (its shim, or the caller of an
//! attached run) starts the proxy before the container and holds the proxy's stdin: the
//! proxy ends when its runner does, so published ports live exactly as long as the
//! container. The ports as bound are kept in the container's folder (`ports.json`) for
//! `inspect` and `port`.

use super::sandbox::{network_ns, ContainerNet};
use crate::containers::bundle::Bundle;
use crate::error::{EngineError, Result};
use crate::Engine;
use network::ports::{bound_map, forwards, PortMap};
use network::proxy::Report;
use network::records::Networks;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Stdio};

/// A running port proxy; dropping it stops it.
pub struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
    bundle: Bundle,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.bundle.dir().join("ports.json"));
    }
}

/// The ports container `cid` has published now (empty when it is not running).
pub fn published(bundle: &Bundle) -> PortMap {
    bundle.read_json("ports.json").unwrap_or_default()
}

/// Starts container `cid`'s proxy when it publishes ports; a host port in use is an
/// error that says so.
pub(crate) fn start(engine: &Engine, cid: &str) -> Result<Option<Proxy>> {
    let root = &engine.config().data_root;
    let bundle = Bundle::of(root, cid);
    let cn = ContainerNet::of(&bundle);
    let fwd = forwards(&cn.ports, cn.publish_all, &cn.exposed)?;
    if fwd.is_empty() || !cn.is_bridge() {
        return Ok(None);
    }
    let nets = Networks::open(root)?;
    let mine = nets.of_container(cid)?;
    if mine.is_empty() {
        return Err(EngineError::Invalid(
            "published ports need the container on a network: connect it to one".into(),
        ));
    }
    // Ports are published through the network that routes to the outside, as the default
    // route goes: an `--internal` network is not reachable from the host, so a container
    // on internal networks only publishes nothing (dockerd's rule).
    let Some((n, e)) = mine.into_iter().find(|(n, _)| !n.internal) else {
        tracing::warn!(
            "container {cid}: its networks are all internal; its ports are not published"
        );
        return Ok(None);
    };
    let mut cmd = crate::shim::strata_command(engine, None, "publish the container's ports")?;
    let args = network::proxy_args::ProxyArgs {
        netns: network_ns(root, &n.id),
        target: e.ip,
        forwards: fwd.clone(),
    };
    cmd.arg(network::proxy_args::SUBCOMMAND)
        .args(args.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::io("start the port proxy", e))?;
    let stdin = child.stdin.take();
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let proxy = Proxy {
        child,
        stdin,
        bundle: bundle.clone(),
    };
    let report: Report = serde_json::from_str(line.trim())
        .map_err(|_| EngineError::Unsupported("the port proxy died before it reported".into()))?;
    if let Some(e) = report.error {
        return Err(EngineError::Conflict(e));
    }
    bundle.write(
        "ports.json",
        &serde_json::to_vec(&bound_map(&report.bound))?,
        false,
    )?;
    Ok(Some(proxy))
}
