//! A `strata daemon` of a test's own, and raw HTTP to it.

use super::Strata;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A running `strata daemon` on a socket of its own; stopped when dropped.
pub struct Daemon {
    pub child: Child,
    pub sock: PathBuf,
}

impl Daemon {
    pub fn start(s: &Strata) -> Daemon {
        let sock = s.dir.path().join("strata.sock");
        let child = s
            .cmd(&["daemon", "-H", &format!("unix://{}", sock.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut d = Daemon { child, sock };
        for _ in 0..500 {
            if UnixStream::connect(&d.sock).is_ok() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        d.stop();
        panic!("the daemon did not listen on {}", d.sock.display());
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One raw HTTP request; returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
