//! The daemon's HTTP layer in-process, with raw requests a client library would never
//! send: keep-alive, chunked request bodies, an oversized head, a bad length, an unknown
//! path and API version. The server runs on a thread of this test process over a data
//! root of its own (vfs), so these need no container and no `strata` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// One server for the whole file: `serve` owns its signal handling and runs until the
/// process ends.
fn sock() -> &'static PathBuf {
    static SOCK: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &SOCK
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let sock = dir.path().join("s.sock");
            std::fs::write(dir.path().join("daemon.json"), b"{}").unwrap();
            let flags = engine::Flags {
                data_root: Some(dir.path().join("root")),
                storage_driver: Some("vfs".into()),
                storage_opts: Vec::new(),
            };
            let (cfg, _) =
                engine::config::load(Some(&dir.path().join("daemon.json")), &flags).unwrap();
            let opts = daemon::DaemonOptions {
                hosts: vec![format!("unix://{}", sock.display())],
                tls: None,
            };
            std::thread::spawn(move || daemon::serve(engine::Engine::new(cfg), &opts));
            for _ in 0..500 {
                if UnixStream::connect(&sock).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (dir, sock)
        })
        .1
}

fn connect() -> UnixStream {
    let c = UnixStream::connect(sock()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads one response: (status, body), by Content-Length or chunks.
fn response(r: &mut BufReader<UnixStream>) -> (u16, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body).unwrap();
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn exchange(raw: &[u8]) -> (u16, String) {
    let mut c = connect();
    c.write_all(raw).unwrap();
    response(&mut BufReader::new(c))
}

#[test]
fn two_requests_on_one_kept_alive_connection() {
    let mut c = connect();
    c.write_all(
        b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nGET /v1.41/_ping HTTP/1.1\r\nHost: d\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(response(&mut r), (200, "OK".to_string()));
    assert_eq!(response(&mut r), (200, "OK".to_string()));
}

#[test]
fn a_chunked_body_is_read_whole() {
    // A create of an image that is not there: the 404 names it, so the JSON split over
    // three chunks was read and parsed.
    let json = br#"{"Image":"nothere:1","Cmd":["true"]}"#;
    let mut raw = b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in [&json[..5], &json[5..20], &json[20..]] {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = exchange(&raw);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nothere"), "{body}");
}

/// hyper bounds the head by its read buffer (`max_buf_size`, 64 KiB): a head that does
/// not fit is a 431. The bound is not exact (a 100 KiB head was measured to get through,
/// hyper's buffer growing past it in one read); 256 KiB never does.
#[test]
fn an_oversized_head_is_refused() {
    let mut raw = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 256 << 10));
    raw.extend_from_slice(b"\r\n\r\n");
    let mut c = connect();
    // The server may answer and close before the whole head is written.
    let _ = c.write_all(&raw);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[test]
fn a_bad_length_and_a_bad_json_body_are_400s() {
    let (status, _) =
        exchange(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: ten\r\n\r\n");
    assert_eq!(status, 400);
    let body = b"{\"Image\": 5}";
    let raw = [
        format!("POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ]
    .concat();
    let (status, text) = exchange(&raw);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Image"), "the field is named: {text}");
}

#[test]
fn unknown_paths_and_versions_get_dockers_error_shape() {
    let (status, body) = exchange(b"GET /nope HTTP/1.1\r\nHost: d\r\n\r\n");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["message"].is_string(), "{body}");
    let (status, body) = exchange(b"GET /v1.99/_ping HTTP/1.1\r\nHost: d\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("1.99"), "{body}");
}
