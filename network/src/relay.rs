//! The port proxy's event loop: one thread, epoll, nonblocking sockets. TCP bytes move
//! with `splice` through a pipe taken only once a direction carries data (an idle
//! connection holds its two sockets and nothing else); UDP clients each get a socket
//! inside the network so replies find their way back. Connections and UDP clients are
//! capped from the descriptor limit; at a cap the one idle longest is closed to make room,
//! and a UDP client silent for [`UDP_IDLE`] is forgotten.

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use rustix::pipe::{PipeFlags, SpliceFlags};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::proxy::Bound;

/// How long a UDP client is remembered without traffic (Docker's userland proxy: 90 s).
pub const UDP_IDLE: Duration = Duration::from_secs(90);

/// The bytes one pipe holds: enough to move data in large pieces, small enough that
/// connections whose far side does not read cannot pin much kernel memory.
const PIPE_SIZE: usize = 256 << 10;

/// Bytes one connection may move per turn before the others get theirs.
const TURN: usize = 4 << 20;

/// What the loop keeps at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TCP connections (each up to six descriptors: two sockets, two pipes).
    pub max_conns: usize,
    /// UDP clients (a socket each).
    pub max_udp: usize,
}

impl Limits {
    /// Caps that fit in `nofile` descriptors, leaving some for the proxy itself; never
    /// above 16,384 of each.
    pub fn for_descriptors(nofile: u64) -> Limits {
        let usable = nofile.saturating_sub(64) as usize;
        Limits {
            max_conns: (usable * 3 / 4 / 6).clamp(4, 16_384),
            max_udp: (usable / 4).clamp(4, 16_384),
        }
    }
}

/// One direction of a TCP connection.
#[derive(Default)]
struct Dir {
    pipe: Option<(OwnedFd, OwnedFd)>,
    in_pipe: usize,
    eof: bool,
    shut: bool,
}

struct Conn {
    client: TcpStream,
    up: TcpStream,
    connected: bool,
    /// 0: client to container, 1: container to client.
    dirs: [Dir; 2],
    last: Instant,
}

struct Flow {
    sock: UdpSocket,
    client: SocketAddr,
    host: u64,
    last: Instant,
}

enum Slot {
    Listener(std::net::TcpListener, SocketAddr),
    UdpHost(UdpSocket, SocketAddr, HashMap<SocketAddr, u64>),
    Conn(Box<Conn>),
    Flow(Flow),
}

/// Tokens: a slot's id times two, plus one for a connection's container side.
fn token(id: u64, side: u64) -> EventData {
    EventData::new_u64(id * 2 + side)
}

struct Loop {
    ep: OwnedFd,
    slots: HashMap<u64, Slot>,
    next: u64,
    limits: Limits,
    conns: usize,
    flows: usize,
    /// Connections that used up their turn with work left.
    again: Vec<u64>,
}

/// Serves `bound` (forwarding to `target`'s ports) until `stdin` reads end of file.
pub fn run(
    bound: Vec<Bound>,
    target: Ipv4Addr,
    stdin: impl AsFd,
    limits: Limits,
) -> io::Result<()> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let mut lp = Loop {
        ep,
        slots: HashMap::new(),
        next: 1,
        limits,
        conns: 0,
        flows: 0,
        again: Vec::new(),
    };
    // Token 0 is stdin.
    epoll::add(&lp.ep, stdin.as_fd(), EventData::new_u64(0), EventFlags::IN)?;
    for b in bound {
        let id = lp.id();
        match b {
            Bound::Tcp(l, f) => {
                l.set_nonblocking(true)?;
                epoll::add(&lp.ep, &l, token(id, 0), EventFlags::IN)?;
                lp.slots
                    .insert(id, Slot::Listener(l, SocketAddr::from((target, f.port))));
            }
            Bound::Udp(s, f) => {
                s.set_nonblocking(true)?;
                epoll::add(&lp.ep, &s, token(id, 0), EventFlags::IN)?;
                lp.slots.insert(
                    id,
                    Slot::UdpHost(s, SocketAddr::from((target, f.port)), HashMap::new()),
                );
            }
        }
    }
    let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
    let mut buf = vec![0u8; 65536];
    let mut last_sweep = Instant::now();
    loop {
        let timeout = rustix::event::Timespec {
            tv_sec: if lp.again.is_empty() { 1 } else { 0 },
            tv_nsec: 0,
        };
        events.clear();
        match epoll::wait(&lp.ep, spare(&mut events), Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<u64> = events.iter().map(|e| e.data.u64()).collect();
        let again = std::mem::take(&mut lp.again);
        for t in ready {
            if t == 0 {
                let mut b = [0u8; 64];
                match rustix::io::read(stdin.as_fd(), &mut b) {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
                continue;
            }
            lp.event(t / 2, t % 2, &mut buf);
        }
        for id in again {
            lp.progress(id);
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            lp.sweep_udp();
            last_sweep = Instant::now();
        }
    }
}

/// The unused capacity of `v`, for `epoll::wait` to fill.
fn spare(v: &mut Vec<epoll::Event>) -> rustix::buffer::SpareCapacity<'_, epoll::Event> {
    rustix::buffer::spare_capacity(v)
}

impl Loop {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn event(&mut self, id: u64, side: u64, buf: &mut [u8]) {
        match self.slots.get(&id) {
            Some(Slot::Listener(..)) => self.accept(id),
            Some(Slot::UdpHost(..)) => self.udp_in(id, buf),
            Some(Slot::Flow(_)) => self.udp_back(id, buf),
            Some(Slot::Conn(_)) => {
                if side == 1 {
                    self.check_connected(id);
                }
                self.progress(id);
            }
            None => {} // closed earlier in this batch
        }
    }

    /// Closes the connection or UDP client idle longest, of the kind given.
    fn evict_oldest(&mut self, conns: bool) {
        let oldest = self
            .slots
            .iter()
            .filter_map(|(id, s)| match s {
                Slot::Conn(c) if conns => Some((c.last, *id)),
                Slot::Flow(f) if !conns => Some((f.last, *id)),
                _ => None,
            })
            .min();
        if let Some((_, id)) = oldest {
            self.close(id);
        }
    }

    /// Closes a connection or a UDP client (listeners and host sockets stay).
    fn close(&mut self, id: u64) {
        if !matches!(
            self.slots.get(&id),
            Some(Slot::Conn(_)) | Some(Slot::Flow(_))
        ) {
            return;
        }
        match self.slots.remove(&id) {
            Some(Slot::Conn(c)) => {
                let _ = epoll::delete(&self.ep, &c.client);
                let _ = epoll::delete(&self.ep, &c.up);
                self.conns -= 1;
            }
            Some(Slot::Flow(f)) => {
                let _ = epoll::delete(&self.ep, &f.sock);
                if let Some(Slot::UdpHost(_, _, map)) = self.slots.get_mut(&f.host) {
                    map.remove(&f.client);
                }
                self.flows -= 1;
            }
            _ => {}
        }
    }

    fn accept(&mut self, id: u64) {
        // Bounded per turn so a flood of connections cannot starve the others.
        for _ in 0..256 {
            let Some(Slot::Listener(l, to)) = self.slots.get(&id) else {
                return;
            };
            let to = *to;
            let client = match l.accept() {
                Ok((c, _)) => c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Out of descriptors, say: make room; the listener stays ready and
                    // the next turn accepts.
                    self.evict_oldest(true);
                    return;
                }
            };
            if self.conns >= self.limits.max_conns {
                self.evict_oldest(true);
            }
            if let Err(e) = self.open(client, to) {
                tracing::debug!("port proxy: a connection to {to}: {e}");
            }
        }
    }

    /// Starts the container side of an accepted connection and watches both.
    fn open(&mut self, client: TcpStream, to: SocketAddr) -> io::Result<()> {
        client.set_nonblocking(true)?;
        let _ = client.set_nodelay(true);
        let sock = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&sock, &to) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let up = TcpStream::from(sock);
        let _ = up.set_nodelay(true);
        let id = self.id();
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(&self.ep, &client, token(id, 0), flags)?;
        if let Err(e) = epoll::add(&self.ep, &up, token(id, 1), flags) {
            let _ = epoll::delete(&self.ep, &client);
            return Err(e.into());
        }
        self.slots.insert(
            id,
            Slot::Conn(Box::new(Conn {
                client,
                up,
                connected: false,
                dirs: Default::default(),
                last: Instant::now(),
            })),
        );
        self.conns += 1;
        Ok(())
    }

    /// The container side became writable: connected, or failed.
    fn check_connected(&mut self, id: u64) {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&id) else {
            return;
        };
        if c.connected {
            return;
        }
        match rustix::net::sockopt::socket_error(&c.up) {
            Ok(Ok(())) => {
                // Writable only once connected: a peer address means it is.
                if c.up.peer_addr().is_ok() {
                    c.connected = true;
                }
            }
            _ => self.close(id),
        }
    }

    /// Moves what can move on connection `id` without blocking, for one turn.
    fn progress(&mut self, id: u64) {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&id) else {
            return;
        };
        if !c.connected {
            return;
        }
        let mut budget = TURN;
        let alive = loop {
            let mut moved = false;
            let mut failed = false;
            for d in 0..2 {
                let (src, dst) = if d == 0 {
                    (&c.client, &c.up)
                } else {
                    (&c.up, &c.client)
                };
                match step(&mut c.dirs[d], src, dst) {
                    Ok(n) => {
                        if n > 0 {
                            moved = true;
                            budget = budget.saturating_sub(n);
                        }
                    }
                    Err(_) => failed = true,
                }
            }
            if failed || c.dirs.iter().all(|d| d.shut) {
                break false;
            }
            if moved {
                c.last = Instant::now();
            }
            if !moved {
                break true;
            }
            if budget == 0 {
                self.again.push(id);
                break true;
            }
        };
        if !alive {
            self.close(id);
        }
    }

    /// A datagram from a client on the host: to the container from that client's socket
    /// inside the network (made for a new client, the oldest making room at the cap).
    fn udp_in(&mut self, id: u64, buf: &mut [u8]) {
        for _ in 0..256 {
            let Some(Slot::UdpHost(s, to, map)) = self.slots.get(&id) else {
                return;
            };
            let to = *to;
            let (n, client) = match s.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let flow = match map.get(&client) {
                Some(f) => *f,
                None => {
                    if self.flows >= self.limits.max_udp {
                        self.evict_oldest(false);
                    }
                    match self.udp_flow(id, client, to) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::debug!("port proxy: a UDP client {client}: {e}");
                            continue;
                        }
                    }
                }
            };
            if let Some(Slot::Flow(f)) = self.slots.get_mut(&flow) {
                f.last = Instant::now();
                let _ = f.sock.send(&buf[..n]);
            }
        }
    }

    fn udp_flow(&mut self, host: u64, client: SocketAddr, to: SocketAddr) -> io::Result<u64> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.connect(to)?;
        sock.set_nonblocking(true)?;
        let id = self.id();
        epoll::add(&self.ep, &sock, token(id, 0), EventFlags::IN)?;
        self.slots.insert(
            id,
            Slot::Flow(Flow {
                sock,
                client,
                host,
                last: Instant::now(),
            }),
        );
        if let Some(Slot::UdpHost(_, _, map)) = self.slots.get_mut(&host) {
            map.insert(client, id);
        }
        self.flows += 1;
        Ok(id)
    }

    /// The container's replies to one UDP client, sent back from the host socket.
    fn udp_back(&mut self, id: u64, buf: &mut [u8]) {
        for _ in 0..256 {
            let Some(Slot::Flow(f)) = self.slots.get_mut(&id) else {
                return;
            };
            let n = match f.sock.recv(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            f.last = Instant::now();
            let (client, host) = (f.client, f.host);
            if let Some(Slot::UdpHost(s, _, _)) = self.slots.get(&host) {
                let _ = s.send_to(&buf[..n], client);
            }
        }
    }

    /// Forgets UDP clients silent for [`UDP_IDLE`].
    fn sweep_udp(&mut self) {
        let idle: Vec<u64> = self
            .slots
            .iter()
            .filter_map(|(id, s)| match s {
                Slot::Flow(f) if f.last.elapsed() >= UDP_IDLE => Some(*id),
                _ => None,
            })
            .collect();
        for id in idle {
            self.close(id);
        }
    }
}

/// One direction's work: what is in its pipe goes to `dst`, then (the pipe empty) what
/// `src` has comes into the pipe; at `src`'s end `dst` is half-closed. Returns the bytes
/// moved; an error ends the connection.
fn step(d: &mut Dir, src: &TcpStream, dst: &TcpStream) -> io::Result<usize> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut moved = 0;
    while d.in_pipe > 0 {
        let Some((r, _)) = &d.pipe else { break };
        match rustix::pipe::splice(r, None, dst, None, d.in_pipe, flags) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                d.in_pipe -= n;
                moved += n;
            }
            Err(rustix::io::Errno::AGAIN) => return Ok(moved),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if d.eof {
        if !d.shut {
            let _ = dst.shutdown(Shutdown::Write);
            d.shut = true;
            // The pipe is not needed any more.
            d.pipe = None;
        }
        return Ok(moved);
    }
    if d.pipe.is_none() {
        // A pipe only once there is something to move: an idle connection holds none.
        let mut one = [0u8; 1];
        match rustix::net::recv(src, &mut one, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((0, _)) => {
                d.eof = true;
                return Ok(moved + 1);
            }
            Ok(_) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(moved),
            Err(rustix::io::Errno::INTR) => return Ok(moved),
            Err(e) => return Err(e.into()),
        }
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let _ = rustix::pipe::fcntl_setpipe_size(&w, PIPE_SIZE);
        d.pipe = Some((r, w));
    }
    let Some((_, w)) = &d.pipe else {
        return Ok(moved);
    };
    loop {
        match rustix::pipe::splice(src, None, w, None, PIPE_SIZE, flags) {
            Ok(0) => {
                d.eof = true;
                return Ok(moved + 1); // the end is news too
            }
            Ok(n) => {
                d.in_pipe = n;
                return Ok(moved + n);
            }
            Err(rustix::io::Errno::AGAIN) => return Ok(moved),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
