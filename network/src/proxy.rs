//! The port proxy (`strata port-proxy`, one process per running container with published
//! ports): it binds the host side of every forward in the host's namespace, then joins
//! the network's namespace, so each connection it accepts is answered by one it opens
//! from inside the network to the container's address. Bytes move with `splice` through
//! a pipe, never through user memory. It reports what it bound (or why it could not) as
//! one JSON line, and ends when its standard input closes: its runner (the container's
//! shim, or the caller of an attached run) holds the other end, so the proxy never
//! outlives the container.

use crate::error::{NetError, Result};
use crate::netns;
use crate::ports::{Forward, Proto};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The proxy's one-line report.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// The forwards as bound (host ports the kernel picked filled in).
    pub bound: Vec<Forward>,
    /// Why it could not start.
    pub error: Option<String>,
}

enum Bound {
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
    mut stdin: impl Read,
) -> i32 {
    let setup = (|| -> Result<Vec<Bound>> {
        let bound = forwards.iter().map(bind).collect::<Result<Vec<_>>>()?;
        let ns = netns::open(netns_path)?;
        // SAFETY: setns of this (still single-threaded) process's only thread; threads
        // spawned from now on start in the network's namespace.
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
    for b in bound {
        match b {
            Bound::Tcp(l, f) => {
                std::thread::spawn(move || accept_loop(l, SocketAddr::from((target, f.port))));
            }
            Bound::Udp(s, f) => {
                std::thread::spawn(move || udp_loop(s, SocketAddr::from((target, f.port))));
            }
        }
    }
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    0
}

fn accept_loop(l: TcpListener, to: SocketAddr) {
    loop {
        let Ok((client, _)) = l.accept() else {
            // Out of descriptors, say: wait rather than spin.
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        std::thread::spawn(move || {
            // Opened on this thread, inside the network's namespace.
            let Ok(up) = TcpStream::connect(to) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let (Ok(c2), Ok(u2)) = (client.try_clone(), up.try_clone()) else {
                return;
            };
            let back = std::thread::spawn(move || pump(&u2, &c2));
            pump(&client, &up);
            let _ = back.join();
        });
    }
}

/// Copies `from` to `to` until end of file, then half-closes `to`.
fn pump(from: &TcpStream, to: &TcpStream) {
    if splice_pump(from, to).is_err() {
        let (mut r, mut w) = (from, to);
        let _ = io::copy(&mut r, &mut w);
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn splice_pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
    let (pr, pw) = pipe_with(PipeFlags::CLOEXEC)?;
    const CHUNK: usize = 1 << 20;
    let _ = rustix::pipe::fcntl_setpipe_size(&pw, CHUNK);
    loop {
        let n = splice(from, None, &pw, None, CHUNK, SpliceFlags::MOVE)?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let m = splice(&pr, None, to, None, left, SpliceFlags::MOVE)?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
    }
}

/// How long a UDP client's socket is kept without a reply from the container (Docker's
/// userland proxy keeps 90 s too).
const UDP_IDLE: std::time::Duration = std::time::Duration::from_secs(90);

type Peers = Arc<Mutex<HashMap<SocketAddr, UdpSocket>>>;

/// UDP: each client gets a socket of its own inside the network (so replies find their
/// way back), and a thread sending the container's replies to that client; both go
/// after [`UDP_IDLE`] without a reply.
fn udp_loop(host: UdpSocket, to: SocketAddr) {
    let host = Arc::new(host);
    let peers: Peers = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
        let peer = match map.entry(client) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let Ok(s) = udp_peer(&host, client, to, peers.clone()) else {
                    continue;
                };
                v.insert(s)
            }
        };
        let _ = peer.send(&buf[..n]);
    }
}

/// A socket inside the network for one UDP client, and the thread sending the
/// container's replies back to that client through the host socket (it forgets the
/// client when the container stays silent for [`UDP_IDLE`]).
fn udp_peer(
    host: &Arc<UdpSocket>,
    client: SocketAddr,
    to: SocketAddr,
    peers: Peers,
) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.connect(to)?;
    let back = s.try_clone()?;
    back.set_read_timeout(Some(UDP_IDLE))?;
    let h = host.clone();
    std::thread::spawn(move || {
        let mut b = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut b) {
            if h.send_to(&b[..n], client).is_err() {
                break;
            }
        }
        peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
    });
    Ok(s)
}
