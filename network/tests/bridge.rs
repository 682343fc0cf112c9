//! Real namespaces, bridge and veth pairs (root only): two container namespaces on one
//! network talk over TCP, a third on another network cannot reach them, and the port
//! proxy forwards from the host to a container.

use network::bridge::{attach, detach, ensure_container, ensure_network, Attachment};
use network::netns;
use network::ports::{Forward, Proto};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Fails (never skips) without root: CI runs as root and these must run there.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let r = unsafe { libc::geteuid() } == 0;
    assert!(
        r,
        "needs root for network namespaces: run the tests as root (scripts/test.sh)"
    );
    r
}

struct Dir(tempfile::TempDir);

impl Drop for Dir {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.0.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            netns::remove(&e.path());
        }
    }
}

fn at(ip: [u8; 4], host_if: &str, gw: Ipv4Addr) -> Attachment {
    Attachment {
        host_if: host_if.into(),
        ip: Ipv4Addr::from(ip),
        prefix: 24,
        gateway: gw,
        default_route: true,
    }
}

/// Listens on `port` inside `ns` and answers one line per connection.
fn serve_in(ns: &Path, port: u16) -> std::thread::JoinHandle<()> {
    let f = netns::open(ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = netns::run_in(&f, || {
            let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            tx.send(()).unwrap();
            for c in l.incoming().take(2) {
                let mut c = c?;
                c.write_all(b"hello\n")?;
            }
            Ok(())
        });
    });
    rx.recv().unwrap();
    h
}

/// Echoes datagrams on `port` inside `ns` (a thread left running).
fn udp_echo_in(ns: &Path, port: u16) -> std::thread::JoinHandle<()> {
    let f = netns::open(ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = netns::run_in(&f, || {
            let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
            tx.send(()).unwrap();
            let mut b = [0u8; 64];
            let (n, from) = s.recv_from(&mut b)?;
            s.send_to(&b[..n], from)?;
            Ok(())
        });
    });
    rx.recv().unwrap();
    h
}

fn connect_from(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let f = netns::open(ns).unwrap();
    netns::run_in(&f, || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(500))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
}

#[test]
fn containers_on_one_bridge_talk_and_others_do_not() {
    if !root() {
        return;
    }
    let d = Dir(tempfile::tempdir().unwrap());
    let p = |n: &str| d.0.path().join(n);
    let gw1 = Ipv4Addr::new(10, 77, 1, 1);
    let gw2 = Ipv4Addr::new(10, 77, 2, 1);
    let n1 = ensure_network(&p("n1"), gw1, 24).unwrap();
    let n2 = ensure_network(&p("n2"), gw2, 24).unwrap();
    assert!(netns::is_live(&p("n1")));
    // Made again while live: the same namespace, no error.
    ensure_network(&p("n1"), gw1, 24).unwrap();
    let a = ensure_container(&p("a")).unwrap();
    let b = ensure_container(&p("b")).unwrap();
    let c = ensure_container(&p("c")).unwrap();
    assert_eq!(
        attach(&n1, &a, &at([10, 77, 1, 2], "va", gw1)).unwrap(),
        "eth0"
    );
    attach(&n1, &b, &at([10, 77, 1, 3], "vb", gw1)).unwrap();
    attach(&n2, &c, &at([10, 77, 2, 2], "vc", gw2)).unwrap();
    // Attached again (an interrupted attach redone): the old pair is replaced.
    assert_eq!(
        attach(&n1, &b, &at([10, 77, 1, 3], "vb", gw1)).unwrap(),
        "eth0"
    );
    let srv = serve_in(&p("a"), 8000);
    let got = connect_from(&p("b"), "10.77.1.2:8000".parse().unwrap()).unwrap();
    assert_eq!(got, "hello\n");
    let across = connect_from(&p("c"), "10.77.1.2:8000".parse().unwrap());
    assert!(
        across.is_err(),
        "a container of another network reached it: {across:?}"
    );

    // The proxy: listen on the host's loopback, connect from inside n1.
    let (stdin_r, stdin_w) = std::os::unix::net::UnixStream::pair().unwrap();
    let fwd = Forward {
        proto: Proto::Tcp,
        host: "127.0.0.1:0".parse().unwrap(),
        port: 8000,
    };
    let ufwd = Forward {
        proto: Proto::Udp,
        host: "127.0.0.1:0".parse().unwrap(),
        port: 9000,
    };
    let echo = udp_echo_in(&p("a"), 9000);
    let n1p = p("n1");
    let (tx, rx) = std::sync::mpsc::channel();
    let proxy = std::thread::spawn(move || {
        // The proxy joins the namespace with its whole (one-thread) process: here a
        // thread of the test plays that process.
        struct Send(std::sync::mpsc::Sender<Vec<u8>>);
        impl Write for Send {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.send(b.to_vec()).unwrap();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        network::proxy::serve(
            &n1p,
            Ipv4Addr::new(10, 77, 1, 2),
            &[fwd, ufwd],
            Send(tx),
            stdin_r,
        )
    });
    let rep: network::proxy::Report = serde_json::from_slice(&rx.recv().unwrap()).unwrap();
    assert!(rep.error.is_none(), "{rep:?}");
    let host = rep.bound[0].host;
    assert_ne!(host.port(), 0);
    let mut s = TcpStream::connect(host).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "hello\n");
    // UDP: a datagram to the host side comes back from the container's echo.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    u.send_to(b"ping", rep.bound[1].host).unwrap();
    let mut b = [0u8; 16];
    let n = u.recv(&mut b).unwrap();
    assert_eq!(&b[..n], b"ping");
    drop(echo);
    drop(stdin_w);
    assert_eq!(proxy.join().unwrap(), 0);
    srv.join().unwrap();

    detach(&n1, "vb").unwrap();
    assert!(connect_from(&p("b"), "10.77.1.2:8000".parse().unwrap()).is_err());
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fwd = Forward {
        proto: Proto::Tcp,
        host: l.local_addr().unwrap(),
        port: 80,
    };
    let mut out = Vec::new();
    let code = network::proxy::serve(
        Path::new("/nonexistent"),
        Ipv4Addr::LOCALHOST,
        &[fwd],
        &mut out,
        std::fs::File::open("/dev/null").unwrap(),
    );
    assert_eq!(code, 1);
    let rep: network::proxy::Report = serde_json::from_slice(&out).unwrap();
    let e = rep.error.unwrap();
    assert!(e.contains("already in use"), "{e}");
}
