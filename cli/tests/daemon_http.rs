//! The daemon's HTTP layer against what a web page or a confused proxy sends: a JSON body
//! must say `application/json` (a page's `text/plain` POST pair — create a privileged
//! container binding `/`, start it — must create nothing), TCP listeners refuse browser
//! origins and rebound host names, and a request's framing is one valid Content-Length or
//! chunked, never a hidden second request.

mod common;

use common::Strata;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

struct Tcp {
    child: Child,
    port: u16,
}

impl Drop for Tcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon_on_tcp(s: &Strata) -> Tcp {
    let port = common::free_port();
    let child = s
        .cmd(&["daemon", "-H", &format!("tcp://127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Tcp { child, port };
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the daemon did not listen on {port}");
}

/// Sends `raw` as is and returns everything the daemon answers until it closes.
fn exchange(port: u16, raw: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(raw).unwrap();
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn post(host: &str, path: &str, ct: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ct}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

#[test]
fn a_web_pages_text_plain_pair_creates_and_starts_nothing() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = daemon_on_tcp(&s);
    let host = format!("127.0.0.1:{}", d.port);
    let evil = r#"{"Image":"busybox-wh:1","Cmd":["/bin/busybox","touch","/host/pwned"],"HostConfig":{"Privileged":true,"Binds":["/:/host"],"NetworkMode":"none"}}"#;
    let r = exchange(
        d.port,
        &post(
            &host,
            "/containers/create?name=evil",
            "text/plain",
            "",
            evil,
        ),
    );
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("must be 'application/json'"),
        "{r}"
    );
    let r = exchange(
        d.port,
        &post(&host, "/containers/evil/start", "text/plain", "", "{}"),
    );
    assert!(!r.starts_with("HTTP/1.1 2"), "{r}");
    // The same from a page's fetch (an Origin), or through a rebound DNS name.
    let r = exchange(
        d.port,
        &post(
            &host,
            "/containers/create?name=evil",
            "application/json",
            "Origin: http://evil.example\r\n",
            evil,
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let r = exchange(
        d.port,
        &post(
            &format!("evil.example:{}", d.port),
            "/containers/create?name=evil",
            "application/json",
            "",
            evil,
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "", "a container was made");
    // The control: a client's own request is served.
    let ok = r#"{"Image":"busybox-wh:1","Cmd":["/bin/busybox","true"],"HostConfig":{"NetworkMode":"none"}}"#;
    let r = exchange(
        d.port,
        &post(
            &host,
            "/containers/create?name=fine",
            "application/json; charset=utf-8",
            "",
            ok,
        ),
    );
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    let r = exchange(
        d.port,
        &post(
            "localhost",
            "/containers/fine/start",
            "application/json",
            "",
            "",
        ),
    );
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
}

#[test]
fn framing_is_one_valid_length_or_chunked_and_never_a_second_request() {
    let s = Strata::new();
    let d = daemon_on_tcp(&s);
    let smuggled = "GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (what, headers) in [
        (
            "doubled",
            format!(
                "Content-Length: 0\r\nContent-Length: {}\r\n",
                smuggled.len()
            ),
        ),
        (
            "listed",
            format!("Content-Length: 0, {}\r\n", smuggled.len()),
        ),
        ("negative", "Content-Length: -1\r\n".to_string()),
        ("non-numeric", "Content-Length: 1e3\r\n".to_string()),
        (
            "plus sign",
            format!("Content-Length: +{}\r\n", smuggled.len()),
        ),
        (
            "both",
            format!(
                "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                smuggled.len()
            ),
        ),
        (
            "odd encoding",
            "Transfer-Encoding: gzip, chunked\r\n".to_string(),
        ),
        (
            "unknown encoding",
            "Transfer-Encoding: xchunked\r\n".to_string(),
        ),
    ] {
        let raw = format!("POST /containers/prune HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}\r\n{smuggled}");
        let r = exchange(d.port, raw.as_bytes());
        if what == "both" {
            // RFC 9112 6.3: Transfer-Encoding overrides Content-Length and the connection
            // is closed after the request (hyper's choice; refusing is the other one).
            assert!(r.contains("\r\nconnection: close\r\n"), "{what}: {r}");
        } else {
            assert!(r.starts_with("HTTP/1.1 400"), "{what}: {r}");
        }
        assert_eq!(
            responses(&r),
            1,
            "{what}: a second request was answered: {r}"
        );
    }
    // A header line that is not `name: value` is refused, not skipped.
    let r = exchange(
        d.port,
        b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n folded\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // The control: a valid chunked body is read and the connection carries the next one.
    let raw = "POST /containers/prune HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nGET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let r = exchange(d.port, raw.as_bytes());
    assert_eq!(responses(&r), 2, "{r}");
    assert!(r.trim_end().ends_with("OK"), "{r}");
}

#[test]
fn answers_take_the_shape_of_the_version_asked_for() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = common::daemon::Daemon::start(&s);
    let inspect = |v: &str| -> serde_json::Value {
        let (st, body) = d.request("GET", &format!("/v{v}/images/busybox-wh:1/json"), b"");
        assert_eq!(st, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // Gone in 1.44 (VirtualSize) and 1.45 (Container, ContainerConfig), as in dockerd.
    let old = inspect("1.43");
    assert!(old.get("VirtualSize").is_some() && old.get("ContainerConfig").is_some());
    let v44 = inspect("1.44");
    assert!(v44.get("VirtualSize").is_none() && v44.get("ContainerConfig").is_some());
    let new = inspect(daemon::API_VERSION);
    assert!(new.get("VirtualSize").is_none() && new.get("ContainerConfig").is_none());
    let list = |v: &str| -> serde_json::Value {
        let (_, body) = d.request("GET", &format!("/v{v}/images/json"), b"");
        serde_json::from_str(&body).unwrap()
    };
    assert!(list("1.43")[0].get("VirtualSize").is_some());
    assert!(list("1.45")[0].get("VirtualSize").is_none());
    // Versions outside the range are refused with dockerd's words.
    let (st, body) = d.request("GET", "/v1.99/version", b"");
    assert_eq!(st, 400);
    assert!(body.contains("is too new"), "{body}");
    let (st, body) = d.request("GET", "/v1.12/version", b"");
    assert_eq!(st, 400);
    assert!(body.contains("is too old"), "{body}");
}

/// A layer an interrupted command left (fsck: "belongs to nothing") is freed when the
/// daemon starts, not kept until a prune.
#[test]
fn the_daemon_frees_what_an_interrupted_command_left_when_it_starts() {
    let s = common::Strata::with_driver("vfs");
    s.load("images/busybox-wh.docker.tar");
    // A driver layer no record names: what a crash between making and recording leaves.
    let orphan = s.root().join(format!("vfs/dir/{}", "0123abcd".repeat(8)));
    std::fs::create_dir_all(orphan.join("etc")).unwrap();
    let notes = s.ok(&["fsck"]);
    assert!(
        notes.contains("0123abcd") && notes.contains("belongs to nothing"),
        "{notes}"
    );
    let _d = common::daemon::Daemon::start(&s);
    for _ in 0..200 {
        if !orphan.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!orphan.exists(), "the daemon's start left the orphan layer");
    let notes = s.ok(&["fsck"]);
    assert!(!notes.contains("belongs to nothing"), "{notes}");
    // What images use is kept.
    assert!(s.ok(&["images"]).contains("busybox-wh"));
}
