//! The daemon's connection limits against clients that hold connections and send nothing:
//! 2,000 silent connections (plain TCP, then TLS without a handshake) on a daemon started
//! with a soft descriptor limit of 1,024 (the usual default) must leave a new client on the
//! unix socket and on TCP served within a second, without a thread per connection; a
//! request head sent in part, or nothing at all, is dropped within the header timeout.

mod common;

use common::Strata;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const SILENT: usize = 2000;

struct Running {
    child: Child,
    sock: PathBuf,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft descriptor limit to the hard one (it holds the floods).
fn raise_own_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit structs.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    l.rlim_max
}

/// A daemon on a unix socket and a loopback TCP port (TLS with `tls_dir`'s certificates),
/// started with a soft descriptor limit of 1,024 and the hard limit of this process.
fn start(s: &Strata, tls_dir: Option<&Path>) -> Running {
    let sock = s.dir.path().join("d.sock");
    let port = common::free_port();
    let mut args = vec![
        "daemon".to_string(),
        "-H".into(),
        format!("unix://{}", sock.display()),
        "-H".into(),
        format!("tcp://127.0.0.1:{port}"),
    ];
    if let Some(dir) = tls_dir {
        args.extend(common::tls::daemon_args(dir));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = s.cmd(&args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
            l.rlim_cur = 1024.min(l.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let r = Running { child, sock, port };
    for _ in 0..500 {
        if UnixStream::connect(&r.sock).is_ok() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return r;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the daemon did not listen");
}

/// A `_ping` over `stream`: the time to a complete `OK`.
fn ping<S: Read + Write>(mut stream: S) -> Duration {
    let t = Instant::now();
    stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("OK"),
        "{out:?}"
    );
    t.elapsed()
}

fn unix_ping(r: &Running) -> Duration {
    let s = UnixStream::connect(&r.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ping(s)
}

fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Opens the flood and checks that others are still served.
fn flood_and_check(r: &Running, tls: bool) {
    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        match TcpStream::connect(("127.0.0.1", r.port)) {
            Ok(c) => silent.push(c),
            Err(e) => panic!("connection {i} of the flood: {e}"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let took = unix_ping(r);
    assert!(
        took < Duration::from_secs(1),
        "a unix client waited {took:?} behind {SILENT} silent connections"
    );
    if !tls {
        let c = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let took = ping(c);
        assert!(
            took < Duration::from_secs(1),
            "a TCP client waited {took:?} behind {SILENT} silent connections"
        );
    }
    let n = threads(r.child.id());
    assert!(
        n < 64,
        "{n} daemon threads for {SILENT} silent connections: a thread per connection"
    );
    drop(silent);
}

#[test]
fn two_thousand_silent_connections_lock_out_no_one() {
    let hard = raise_own_limit();
    assert!(
        hard >= 2 * SILENT as u64 + 512,
        "the hard descriptor limit here ({hard}) is too low for this test: raise it (ulimit -Hn)"
    );
    let s = Strata::new();
    let r = start(&s, None);
    flood_and_check(&r, false);
}

#[test]
fn two_thousand_silent_tls_connections_lock_out_no_one_and_are_dropped() {
    let hard = raise_own_limit();
    assert!(
        hard >= 2 * SILENT as u64 + 512,
        "hard descriptor limit {hard}"
    );
    let s = Strata::new();
    common::tls::make_certs(s.dir.path());
    let r = start(&s, Some(s.dir.path()));
    flood_and_check(&r, true);
    // A connection that never starts its handshake is closed after the handshake timeout.
    let mut c = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t = Instant::now();
    let n = c.read(&mut [0u8; 64]).unwrap_or(0);
    assert_eq!(n, 0, "a silent TLS connection got bytes");
    let limit = daemon::server::TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(5);
    assert!(
        t.elapsed() < limit,
        "a silent TLS connection was held {:?}",
        t.elapsed()
    );
}

#[test]
fn a_half_sent_head_and_a_silent_connection_are_dropped_within_the_timeout() {
    let s = Strata::new();
    let r = start(&s, None);
    let limit = daemon::server::HEADER_TIMEOUT + Duration::from_secs(5);
    let half = std::thread::spawn({
        let port = r.port;
        move || {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
            c.write_all(b"POST /containers/create HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
                .unwrap();
            let t = Instant::now();
            let mut out = Vec::new();
            let r = c.read_to_end(&mut out);
            (t.elapsed(), r.is_ok(), out)
        }
    });
    let mut silent = UnixStream::connect(&r.sock).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let closed = silent.read_to_end(&mut out).is_ok();
    let (silent_took, half) = (t.elapsed(), half.join().unwrap());
    assert!(
        closed && silent_took < limit,
        "a silent unix connection was held {silent_took:?} (closed: {closed})"
    );
    assert!(
        half.1 && half.0 < limit,
        "a half-sent head was held {:?} (closed: {})",
        half.0,
        half.1
    );
    // Nothing of the half request was answered as a request.
    let text = String::from_utf8_lossy(&half.2);
    assert!(!text.contains("HTTP/1.1 2"), "{text}");
    // The daemon still serves.
    assert!(unix_ping(&r) < Duration::from_secs(1));
}

#[test]
fn sigterm_ends_streams_and_the_daemon_while_containers_run_on() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let r = start(&s, None);
    let dk = |args: &[&str]| {
        let o = std::process::Command::new(common::require_tool("docker"))
            .env("DOCKER_HOST", format!("unix://{}", r.sock.display()))
            .env("DOCKER_CONFIG", s.dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    dk(&[
        "run",
        "-d",
        "--name",
        "stays",
        "--network",
        "none",
        "busybox-wh:1",
        "/bin/busybox",
        "sleep",
        "300",
    ]);
    // Two followers: events and logs -f, each a raw request that never ends by itself.
    let follow = |path: &str| {
        let mut c = UnixStream::connect(&r.sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let t = Instant::now();
            let ended = c.read_to_end(&mut out).is_ok();
            (ended, t.elapsed())
        })
    };
    let events = follow("/events");
    let logs = follow("/containers/stays/logs?follow=1&stdout=1");
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    // SAFETY: kill with a valid pid.
    unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
    let mut r = r;
    let status = loop {
        if let Some(st) = r.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the daemon did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the daemon stopped with {status}");
    for (what, h) in [("events", events), ("logs -f", logs)] {
        let (ended, took) = h.join().unwrap();
        assert!(
            ended && took < Duration::from_secs(12),
            "{what}: {ended} after {took:?}"
        );
    }
    // The container runs on under its shim.
    let ps = s.ok(&["ps"]);
    assert!(
        ps.lines().any(|l| l.contains("stays") && l.contains("Up")),
        "{ps}"
    );
    s.ok(&["rm", "-f", "stays"]);
}

/// A hundred `events` followers are fed by one reader of the events file: each gets what a
/// CLI on the same data root did after it came (and nothing from before, as dockerd), and
/// the daemon runs one reader thread for all of them.
#[test]
fn a_hundred_event_followers_share_one_reader_and_see_the_clis_work() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = common::daemon::Daemon::start(&s);
    let followers: Vec<UnixStream> = (0..100)
        .map(|_| {
            let mut c = UnixStream::connect(&d.sock).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(c, "GET /events HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
            c
        })
        .collect();
    // Every follower has its head, so it has joined the feed.
    let mut followers: Vec<(UnixStream, Vec<u8>)> = followers
        .into_iter()
        .map(|mut c| {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "a follower's connection ended");
                got.extend_from_slice(&buf[..n]);
            }
            (c, got)
        })
        .collect();
    s.ok(&["tag", "busybox-wh:1", "followed:1"]);
    for (c, got) in &mut followers {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(got).contains("\"tag\"") {
            let n = c.read(&mut buf).expect("the tag event within 20 s");
            assert!(n > 0, "a follower's stream ended");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(got);
        assert!(text.contains("followed:1"), "{text}");
        assert!(
            !text.contains("\"load\""),
            "an event from before the follower came: {text}"
        );
    }
    let readers = std::fs::read_dir(format!("/proc/{}/task", d.child.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "events-feed")
        .count();
    assert_eq!(
        readers, 1,
        "one reader of the events file for every follower"
    );
}
