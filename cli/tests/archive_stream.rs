//! `docker cp` out and `docker export` stream the tar from the container's files: a 1 TiB
//! sparse file a container made for free costs the data root nothing to send, and a client
//! that goes away ends the work (the container is unmounted again at once).

mod common;

use common::daemon::Daemon;
use common::Strata;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Bytes used on the filesystem holding `p`.
fn used(p: &std::path::Path) -> u64 {
    let st = rustix::fs::statvfs(p).unwrap();
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

/// Mounts of the data root's driver (a stopped container's rootfs is mounted only while
/// something works on it).
fn mounts_under(s: &Strata) -> usize {
    let root = s.root().join("overlay2").display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&root)))
        .count()
}

/// Starts `GET path`, reads `want` bytes of the body, then hangs up.
fn read_some_and_leave(d: &Daemon, path: &str, want: usize) -> String {
    let mut c = UnixStream::connect(&d.sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let mut got = vec![0u8; want];
    c.read_exact(&mut got).unwrap();
    String::from_utf8_lossy(&got[..200]).into_owned()
}

#[test]
fn a_terabyte_sparse_file_streams_without_staging_and_stops_with_its_client() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    s.ok(&[
        "run",
        "--name",
        "big",
        "--network",
        "none",
        "busybox-wh:1",
        "/bin/busybox",
        "truncate",
        "-s",
        "1099511627776",
        "/big",
    ]);
    let d = Daemon::start(&s);
    let before = used(&s.root());
    let head = read_some_and_leave(&d, "/containers/big/archive?path=/big", 64 << 20);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = read_some_and_leave(&d, "/containers/big/export", 64 << 20);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Nothing staged: the data root's filesystem holds what it held (a little slack for
    // the daemon's own records).
    let grown = used(&s.root()).saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "the data root's filesystem grew by {grown} bytes"
    );
    // The clients are gone: the work ends and the container is unmounted again.
    let t = Instant::now();
    while mounts_under(&s) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the container stayed mounted: the copy went on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = d.request("GET", "/_ping", b"");
    assert_eq!((status, body.as_str()), (200, "OK"));
}
