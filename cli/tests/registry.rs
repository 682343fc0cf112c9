//! Pull and push against Debian's docker-registry (the CNCF distribution registry) started
//! on 127.0.0.1 with a free port and a temp storage dir, and against a scripted fake
//! registry for the bad replies a real one never sends: wrong bytes for a digest, a cut
//! connection, 404, 401, an oversized manifest.

mod common;

use common::registry::Registry;
use common::{fixture, require_tool, sh, Strata};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// `args` with `--tls-verify=false` after the verb (the test registries speak plain HTTP),
/// and `--authfile` moved after the verb too.
fn plain(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pre: Vec<String> = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if *a == "--authfile" {
            pre.push(a.to_string());
            pre.push(it.next().unwrap().to_string());
        } else if ["push", "pull", "login"].contains(a)
            && out
                .iter()
                .all(|x| x != "push" && x != "pull" && x != "login")
        {
            out.push(a.to_string());
            out.push("--tls-verify=false".into());
            out.append(&mut pre);
        } else {
            out.push(a.to_string());
        }
    }
    out
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn push_then_pull_round_trips_and_a_second_push_uploads_nothing() {
    let reg = Registry::start(None);
    let a = Strata::new();
    a.load("images/busybox-wh.docker.tar");
    // The archive's layers are uncompressed: kept as files plus tar-split records, no
    // layer blobs (only the config and the manifest). What is pushed is read back from
    // the files, and the registry checks every digest.
    let blobs = std::fs::read_dir(a.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2);
    let dest = format!("{}/test/bb:v1", reg.addr);
    let o = a.run(&strs(&plain(&["push", "busybox-wh:1", &dest])));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pushed = String::from_utf8_lossy(&o.stderr)
        .matches(": pushed")
        .count();
    assert_eq!(pushed, 8, "7 layers and the config");
    let digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // Again: everything is already there.
    let o = a.run(&strs(&plain(&["push", "busybox-wh:1", &dest])));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("already exists").count(), 8, "{err}");
    assert_eq!(err.matches(": pushed").count(), 0, "{err}");
    // Another repository of the same registry: blobs are mounted, not uploaded.
    let o = a.run(&strs(&plain(&[
        "push",
        "busybox-wh:1",
        &format!("{}/other/bb:v1", reg.addr),
    ])));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("mounted").count(), 8, "{err}");
    // skopeo sees what strata pushed, with the same manifest digest.
    let inspect = sh(Command::new(require_tool("skopeo"))
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{dest}")));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 7);
    // A fresh store pulls it by tag and by digest, with the same image id, and runs it.
    let b = Strata::new();
    b.ok(&strs(&plain(&["pull", &dest])));
    let imgs = b.images_json();
    assert_eq!(imgs[0]["Id"], a.images_json()[0]["Id"]);
    let o = b.run(&["run", "--rm", &dest, "/bin/busybox", "cat", "/data/keep/k4"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "keep 4\nchanged\n");
    let c = Strata::new();
    c.ok(&strs(&plain(&[
        "pull",
        &format!("{}/test/bb@{digest}", reg.addr),
    ])));
    assert_eq!(c.images_json()[0]["Id"], a.images_json()[0]["Id"]);
    c.assert_fsck_ok();
}

#[test]
fn strata_pulls_what_skopeo_pushed() {
    let reg = Registry::start(None);
    let dest = format!("{}/sk/bb:s1", reg.addr);
    sh(Command::new(require_tool("skopeo"))
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!(
            "docker-archive:{}",
            fixture("images/busybox-wh.docker.tar").display()
        ))
        .arg(format!("docker://{dest}")));
    let s = Strata::new();
    s.ok(&strs(&plain(&["pull", &dest])));
    let root = s.mounted(&dest, "c");
    assert!(!root.join("data/gone").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
    s.ok(&["umount", "c"]);
}

#[test]
fn basic_auth_registry_needs_login() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let authfile = s.dir.path().join("auth.json");
    let af = authfile.to_str().unwrap();
    let dest = format!("{}/a/b:1", reg.addr);
    let err = s.fails(
        &strs(&plain(&["--authfile", af, "push", "busybox-wh:1", &dest])),
        125,
    );
    assert!(err.contains("strata login"), "{err}");
    let err = s.fails(
        &strs(&plain(&[
            "--authfile",
            af,
            "login",
            "-u",
            "alice",
            "-p",
            "wrong",
            &reg.addr,
        ])),
        125,
    );
    assert!(err.contains("authentication"), "{err}");
    assert!(!authfile.exists(), "a failed login stores nothing");
    s.ok(&strs(&plain(&[
        "--authfile",
        af,
        "login",
        "-u",
        "alice",
        "-p",
        "s3cret",
        &reg.addr,
    ])));
    let md = std::fs::metadata(&authfile).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o600
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert!(doc["auths"][&reg.addr]["auth"].is_string(), "{doc}");
    s.ok(&strs(&plain(&[
        "--authfile",
        af,
        "push",
        "busybox-wh:1",
        &dest,
    ])));
    let t = Strata::new();
    t.ok(&strs(&plain(&["--authfile", af, "pull", &dest])));
    assert_eq!(t.images_json().len(), 1);
}

/// How the fake registry misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    WrongLayerBytes,
    CutOnce,
    Unauthorized,
    HugeManifest,
    /// Asks for a Bearer token from a realm on its own host (and port).
    RealmHere,
    /// Asks for a Bearer token from a realm on another host over plain HTTP.
    RealmElsewhere,
}

/// A token server on 127.0.0.2 (another host than the registry's 127.0.0.1) that records
/// the Authorization header of every request and hands out the token `t`.
fn token_server(seen: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.2:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut auth = String::from("none");
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization: ") {
                    auth = v.trim().to_string();
                }
            }
            seen.lock().unwrap().push(auth);
            let body = b"{\"token\": \"t\"}";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(body);
        }
    });
    addr
}

/// A scripted registry serving the busybox-wh OCI layout's blobs.
struct Fake {
    addr: String,
    manifest_digest: String,
    hits: Arc<Mutex<Vec<String>>>,
    /// Authorization headers the token realm received (`none` when absent).
    token_auth: Arc<Mutex<Vec<String>>>,
}

fn layout_blobs() -> (HashMap<String, Vec<u8>>, String) {
    let f = std::fs::File::open(fixture("images/busybox-wh.oci.tar")).unwrap();
    let mut ar = tar::Archive::new(f);
    let mut blobs = HashMap::new();
    let mut index = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if let Some(hex) = p.split("blobs/sha256/").nth(1) {
            if !hex.is_empty() {
                blobs.insert(format!("sha256:{hex}"), data);
            }
        } else if p.ends_with("index.json") {
            index = data;
        }
    }
    let idx: serde_json::Value = serde_json::from_slice(&index).unwrap();
    (
        blobs,
        idx["manifests"][0]["digest"].as_str().unwrap().to_string(),
    )
}

impl Fake {
    fn start(fault: Fault) -> Fake {
        let (blobs, manifest_digest) = layout_blobs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h2 = hits.clone();
        let md = manifest_digest.clone();
        let cut_done = Arc::new(Mutex::new(false));
        let token_auth = Arc::new(Mutex::new(Vec::new()));
        let realm = match fault {
            Fault::RealmElsewhere => format!("http://{}/token", token_server(token_auth.clone())),
            _ => format!("http://{addr}/token"),
        };
        let ta = token_auth.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let blobs = blobs.clone();
                let hits = h2.clone();
                let md = md.clone();
                let cut_done = cut_done.clone();
                let realm = realm.clone();
                let token_auth = ta.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let parts: Vec<&str> = line.split_whitespace().collect();
                        if parts.len() < 2 {
                            return;
                        }
                        let (method, path) = (parts[0].to_string(), parts[1].to_string());
                        let mut range: Option<u64> = None;
                        let mut auth = String::from("none");
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).unwrap();
                            if h == "\r\n" || h.is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization: ")
                            {
                                auth = v.trim().to_string();
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                                range = v.trim().trim_end_matches('-').parse().ok();
                            }
                        }
                        hits.lock()
                            .unwrap()
                            .push(format!("{method} {path} {range:?}"));
                        let reply =
                            |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
                                let _ = write!(
                                    conn,
                                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}\r\n",
                                    body.len()
                                );
                                let _ = conn.write_all(body);
                            };
                        if path.starts_with("/token") {
                            token_auth.lock().unwrap().push(auth.clone());
                            reply(&mut conn, "200 OK", "", b"{\"token\": \"t\"}");
                            continue;
                        }
                        if matches!(fault, Fault::RealmHere | Fault::RealmElsewhere)
                            && auth != "bearer t"
                        {
                            let h = format!(
                                "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n"
                            );
                            reply(&mut conn, "401 Unauthorized", &h, b"{}");
                            continue;
                        }
                        if fault == Fault::Unauthorized {
                            reply(
                                &mut conn,
                                "401 Unauthorized",
                                "WWW-Authenticate: Basic realm=\"x\"\r\n",
                                b"{}",
                            );
                            continue;
                        }
                        if path == "/v2/" {
                            reply(&mut conn, "200 OK", "", b"{}");
                        } else if let Some(rest) = path.strip_prefix("/v2/t/bb/manifests/") {
                            if fault == Fault::HugeManifest {
                                let huge = vec![b' '; 5 << 20];
                                reply(
                                    &mut conn,
                                    "200 OK",
                                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                                    &huge,
                                );
                            } else if rest == "v1" || rest == md {
                                let m = &blobs[&md];
                                reply(
                                    &mut conn,
                                    "200 OK",
                                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                                    m,
                                );
                            } else {
                                reply(&mut conn, "404 Not Found", "", b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}");
                            }
                        } else if let Some(d) = path.strip_prefix("/v2/t/bb/blobs/") {
                            let Some(data) = blobs.get(d) else {
                                reply(&mut conn, "404 Not Found", "", b"{}");
                                continue;
                            };
                            let is_layer = data.len() > 10_000;
                            if is_layer && fault == Fault::WrongLayerBytes {
                                let mut bad = data.clone();
                                let n = bad.len() / 2;
                                bad[n] ^= 0xff;
                                reply(&mut conn, "200 OK", "", &bad);
                            } else if is_layer
                                && fault == Fault::CutOnce
                                && !*cut_done.lock().unwrap()
                            {
                                *cut_done.lock().unwrap() = true;
                                let _ = write!(
                                    conn,
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                                    data.len()
                                );
                                let _ = conn.write_all(&data[..data.len() / 2]);
                                let _ = conn.shutdown(std::net::Shutdown::Both);
                                return;
                            } else if let Some(from) = range {
                                let part = &data[from as usize..];
                                let hdr = format!(
                                    "Content-Range: bytes {from}-{}/{}\r\n",
                                    data.len() - 1,
                                    data.len()
                                );
                                reply(&mut conn, "206 Partial Content", &hdr, part);
                            } else {
                                reply(&mut conn, "200 OK", "", data);
                            }
                        } else {
                            reply(&mut conn, "404 Not Found", "", b"{}");
                        }
                    }
                });
            }
        });
        Fake {
            addr,
            manifest_digest,
            hits,
            token_auth,
        }
    }
}

/// No image, a store fsck accepts (every blob hashes to its name), and no blob under the
/// digest of the layer the registry corrupted. Other layers, verified, may stay until gc.
fn assert_nothing_stored(s: &Strata) {
    assert!(s.images_json().is_empty());
    s.assert_fsck_ok();
    let (blobs, _) = layout_blobs();
    for (d, data) in blobs {
        if data.len() > 10_000 {
            let hex = d.trim_start_matches("sha256:");
            assert!(
                !s.root().join("blobs/sha256").join(hex).exists(),
                "the corrupted layer {d} was stored"
            );
        }
    }
}

#[test]
fn bad_registry_replies_store_nothing() {
    // Wrong bytes for a layer digest.
    let f = Fake::start(Fault::WrongLayerBytes);
    let s = Strata::new();
    let err = s.fails(
        &strs(&plain(&["pull", &format!("{}/t/bb:v1", f.addr)])),
        125,
    );
    assert!(
        err.contains("expected sha256:") && err.contains("nothing was stored"),
        "{err}"
    );
    assert_nothing_stored(&s);
    // 404 for an unknown tag.
    let err = s.fails(
        &strs(&plain(&["pull", &format!("{}/t/bb:nope", f.addr)])),
        125,
    );
    assert!(err.contains("not found"), "{err}");
    // 401 with no credentials.
    let f = Fake::start(Fault::Unauthorized);
    let err = s.fails(
        &strs(&plain(&["pull", &format!("{}/t/bb:v1", f.addr)])),
        125,
    );
    assert!(err.contains("strata login"), "{err}");
    // A manifest over the size limit.
    let f = Fake::start(Fault::HugeManifest);
    let err = s.fails(
        &strs(&plain(&["pull", &format!("{}/t/bb:v1", f.addr)])),
        125,
    );
    assert!(err.contains("limit"), "{err}");
    assert_nothing_stored(&s);
}

#[test]
fn a_connection_cut_mid_blob_is_resumed_with_a_range_request() {
    let f = Fake::start(Fault::CutOnce);
    let s = Strata::new();
    s.ok(&strs(&plain(&[
        "pull",
        &format!("{}/t/bb@{}", f.addr, f.manifest_digest),
    ])));
    let hits = f.hits.lock().unwrap().clone();
    assert!(
        hits.iter()
            .any(|h| h.contains("/blobs/") && h.contains("Some(")),
        "a Range request resumed the cut download: {hits:?}"
    );
    let root = s.mounted(s.images_json()[0]["Id"].as_str().unwrap(), "c");
    assert_eq!(
        std::fs::read_to_string(root.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
    s.ok(&["umount", "c"]);
    s.assert_fsck_ok();
}

#[test]
fn a_layer_over_the_chunk_size_is_pushed_in_chunks_and_pulled_back() {
    let reg = Registry::start(None);
    let s = Strata::new();
    // A rootfs tar with 20 MiB of incompressible data: one layer above the 16 MiB chunk.
    let tar_path = s.dir.path().join("big.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let mut data = vec![0u8; 20 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "big.bin", &data[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    s.ok(&["import", tar_path.to_str().unwrap(), "big:1"]);
    let dest = format!("{}/big/img:1", reg.addr);
    s.ok(&strs(&plain(&["push", "big:1", &dest])));
    let t = Strata::new();
    t.ok(&strs(&plain(&["pull", &dest])));
    assert_eq!(t.images_json()[0]["Id"], s.images_json()[0]["Id"]);
    let root = t.mounted(&dest, "c");
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);
    t.ok(&["umount", "c"]);
}

#[test]
fn credentials_never_go_to_a_realm_on_another_host_in_clear_text() {
    let s = Strata::new();
    let authfile = s.dir.path().join("auth.json");
    let write_creds = |registry: &str| {
        let v = serde_json::json!({"auths": {registry: {"auth": "YWxpY2U6czNjcjN0"}}});
        std::fs::write(&authfile, v.to_string()).unwrap();
    };
    // Control: a realm on the registry's own host gets the stored credentials.
    let f = Fake::start(Fault::RealmHere);
    write_creds(&f.addr);
    let af = authfile.to_str().unwrap().to_string();
    s.ok(&strs(&plain(&[
        "--authfile",
        &af,
        "pull",
        &format!("{}/t/bb:v1", f.addr),
    ])));
    let seen = f.token_auth.lock().unwrap().clone();
    assert!(seen.iter().any(|a| a.starts_with("basic ")), "{seen:?}");
    // A registry naming a realm on another host over HTTP: the token is asked for without
    // them, and the pull still works with the anonymous token.
    let s = Strata::new();
    let f = Fake::start(Fault::RealmElsewhere);
    write_creds(&f.addr);
    s.ok(&strs(&plain(&[
        "--authfile",
        &af,
        "pull",
        &format!("{}/t/bb:v1", f.addr),
    ])));
    let seen = f.token_auth.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the realm was asked");
    assert!(
        seen.iter().all(|a| a == "none"),
        "credentials sent to another host: {seen:?}"
    );
}

/// A TCP proxy to `to` whose replies trickle at `rate` bytes a second (a slow registry);
/// returns its address and the count of reply bytes passed so far.
fn throttled_proxy(to: String, rate: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let passed = Arc::new(AtomicUsize::new(0));
    let count = passed.clone();
    std::thread::spawn(move || {
        for client in l.incoming() {
            let Ok(mut client) = client else { break };
            let Ok(mut server) = TcpStream::connect(&to) else {
                break;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            let count = count.clone();
            std::thread::spawn(move || {
                let chunk = rate / 20;
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    count.fetch_add(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, passed)
}

/// A pull from a registry that trickles at 512 KB/s holds only its own layers and a lease:
/// a load of another image, an `rmi` of a third and a `system prune` finish while it is
/// still downloading, the removed image's space is freed at once (the collector keeps what
/// the pull's lease names), and the store is whole afterwards.
#[test]
fn a_slow_pull_delays_no_load_rmi_or_prune_of_other_images() {
    use std::sync::atomic::Ordering;
    let reg = Registry::start(None);
    let a = Strata::new();
    a.load("images/busybox-wh.docker.tar");
    let dest = format!("{}/test/bb:v1", reg.addr);
    a.ok(&strs(&plain(&["push", "busybox-wh:1", &dest])));
    // Two small images of their own layers, as archives.
    for name in ["other", "gone"] {
        let ctx = a.dir.path().join(name);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("f"), name).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
        a.ok(&["build", "-t", &format!("{name}:1"), ctx.to_str().unwrap()]);
        let tar = a.dir.path().join(format!("{name}.tar"));
        a.ok(&["save", "-o", tar.to_str().unwrap(), &format!("{name}:1")]);
    }
    let b = Strata::new();
    b.ok(&[
        "load",
        "-i",
        a.dir.path().join("gone.tar").to_str().unwrap(),
    ]);
    let (proxy, passed) = throttled_proxy(reg.addr.clone(), 512 << 10);
    // Logged at info: a pull whose streamed apply fails (its temp file taken by another
    // command's cleanup, say) says so and downloads again.
    let pull_owned = plain(&["pull", &format!("{proxy}/test/bb:v1")]);
    let mut pull_args = strs(&pull_owned);
    pull_args.extend(["--log-level", "info"]);
    let mut pull = b
        .cmd(&pull_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Under way: past the manifest and config, into the layers.
    let t = std::time::Instant::now();
    while passed.load(Ordering::SeqCst) < 200 << 10 {
        assert!(t.elapsed().as_secs() < 30, "the pull did not start");
        assert!(pull.try_wait().unwrap().is_none(), "the pull ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    b.ok(&[
        "load",
        "-i",
        a.dir.path().join("other.tar").to_str().unwrap(),
    ]);
    assert!(
        pull.try_wait().unwrap().is_none(),
        "the load waited for the pull ({} bytes passed)",
        passed.load(Ordering::SeqCst)
    );
    let gone: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "gone:1"])).unwrap();
    let gone_layer = gone[0]["RootFS"]["Layers"][0].as_str().unwrap().to_string();
    // A loaded layer is kept as its files and a tar-split record (named by its ChainID,
    // which for a bottom layer is its DiffID).
    let gone_blob = b
        .root()
        .join("tarsplit")
        .join(gone_layer.trim_start_matches("sha256:"));
    assert!(gone_blob.exists(), "{}", gone_blob.display());
    b.ok(&["rmi", "gone:1"]);
    assert!(
        pull.try_wait().unwrap().is_none(),
        "the rmi waited for the pull ({} bytes passed)",
        passed.load(Ordering::SeqCst)
    );
    // The pull holds a lease, not the content lock: a prune beside it runs at once, frees
    // what nothing names, and keeps what the pull is bringing in.
    b.ok(&["system", "prune"]);
    assert!(
        pull.try_wait().unwrap().is_none(),
        "the prune waited for the pull ({} bytes passed)",
        passed.load(Ordering::SeqCst)
    );
    assert!(
        !gone_blob.exists(),
        "the removed image's layer is still there while the pull runs"
    );
    let out = pull.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("downloading them first"),
        "the pull's streamed apply failed beside the other commands: {log}"
    );
    assert!(b.ok(&["images"]).contains("other"));
    // Nothing of `gone` is left, the pulled image is whole, and its lease is gone.
    let fsck = b.run(&["fsck"]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let leases = std::fs::read_dir(b.root().join("leases"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leases, 0, "the pull's lease outlived it");
    b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{proxy}/test/bb:v1"),
        "true",
    ]);
}
