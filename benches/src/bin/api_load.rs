//! A load generator for a Docker Engine API socket (strata's daemon or dockerd), the same
//! client for both so the numbers compare: `scripts/api-load.sh` runs it against each.
//!
//! Usage: `api_load SOCKET SECONDS` with the image `busybox-wh:1` loaded. All at once for
//! SECONDS: 64 clients pinging and listing, 16 clients churning containers (create, start,
//! wait, delete `/bin/busybox true`), 1,000 half-open connections, 100 `events` and 100
//! `logs -f` followers. Then, idle with the 200 followers, the server's CPU over 5 s; then
//! `containers/json?all=1` at 1,000 containers. Prints one JSON object.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One keep-alive connection speaking just enough HTTP/1.1.
struct Conn {
    r: BufReader<UnixStream>,
}

impl Conn {
    fn open(sock: &str) -> std::io::Result<Conn> {
        let s = UnixStream::connect(sock)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            r: BufReader::new(s),
        })
    }

    /// Sends one request and reads the whole answer: (status, body).
    fn call(&mut self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.r.get_mut().write_all(head.as_bytes())?;
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            self.r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                let mut chunk = vec![0u8; n + 2];
                self.r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            out.resize(n, 0);
            self.r.read_exact(&mut out)?;
        }
        Ok((status, out))
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Tally {
    fn note(&self, t0: Instant, good: bool) {
        if good {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(t0.elapsed().as_micros() as u64);
        }
    }

    fn p(&self, q: f64) -> f64 {
        let mut l = self
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        if l.is_empty() {
            return 0.0;
        }
        l.sort_unstable();
        let i = ((l.len() as f64 - 1.0) * q).round() as usize;
        l[i] as f64 / 1000.0
    }
}

/// The server's CPU seconds so far (user + system), from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The pid of the process listening on `sock` (SO_PEERCRED of a connection).
fn server_pid(sock: &str) -> u32 {
    let s = UnixStream::connect(sock).expect("connect");
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket and a ucred-sized buffer.
    unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
    }
    cred.pid as u32
}

const CREATE: &str =
    r#"{"Image":"busybox-wh:1","Cmd":["/bin/busybox","true"],"HostConfig":{"NetworkMode":"none"}}"#;

fn id_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["Id"].as_str().map(str::to_string)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(sock), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: api_load SOCKET SECONDS");
        std::process::exit(2);
    };
    let sock = sock.clone();
    let pid = server_pid(&sock);
    let stop = Arc::new(AtomicBool::new(false));
    let (list, churn) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let starts_failed = Arc::new(AtomicU64::new(0));
    // A container whose logs are followed.
    let mut c = Conn::open(&sock).expect("connect");
    let (_, body) = c
        .call(
            "POST",
            "/containers/create?name=load-logs",
            r#"{"Image":"busybox-wh:1","Cmd":["/bin/busybox","sleep","3600"],"HostConfig":{"NetworkMode":"none"}}"#,
        )
        .expect("create");
    let logs_id = id_of(&body).unwrap_or_else(|| "load-logs".into());
    let _ = c.call("POST", &format!("/containers/{logs_id}/start"), "");
    // 1,000 half-open connections: half a request head each.
    let half_open: Vec<UnixStream> = (0..1000)
        .filter_map(|_| {
            let mut s = UnixStream::connect(&sock).ok()?;
            let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: dock");
            Some(s)
        })
        .collect();
    // 100 events and 100 logs followers.
    let followers: Vec<UnixStream> = (0..200u32)
        .filter_map(|i| {
            let mut s = UnixStream::connect(&sock).ok()?;
            let path = if i.is_multiple_of(2) {
                "/events".to_string()
            } else {
                format!("/containers/{logs_id}/logs?follow=1&stdout=1&stderr=1")
            };
            let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n");
            Some(s)
        })
        .collect();
    let t_start = Instant::now();
    let cpu0 = cpu_secs(pid);
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (sock, stop, list) = (sock.clone(), stop.clone(), list.clone());
        workers.push(std::thread::spawn(move || {
            let mut conn = Conn::open(&sock).ok();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let path = if k.is_multiple_of(2) {
                    "/_ping"
                } else {
                    "/containers/json"
                };
                k += 1;
                let good = match conn.as_mut().map(|c| c.call("GET", path, "")) {
                    Some(Ok((200, _))) => true,
                    _ => {
                        conn = Conn::open(&sock).ok();
                        false
                    }
                };
                list.note(t0, good);
            }
        }));
    }
    // API_LOAD_CHURN sets the number of churning clients (default 16): 0 measures the
    // request path alone, to tell its cost from the containers' own.
    let churners = std::env::var("API_LOAD_CHURN")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(16);
    for _ in 0..churners {
        let (sock, stop, churn, sf) = (
            sock.clone(),
            stop.clone(),
            churn.clone(),
            starts_failed.clone(),
        );
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let Ok(mut c) = Conn::open(&sock) else {
                    churn.note(t0, false);
                    continue;
                };
                let good = (|| -> Option<()> {
                    let (st, body) = c.call("POST", "/containers/create", CREATE).ok()?;
                    if st != 201 {
                        return None;
                    }
                    let id = id_of(&body)?;
                    let (st, _) = c
                        .call("POST", &format!("/containers/{id}/start"), "")
                        .ok()?;
                    if st != 204 {
                        sf.fetch_add(1, Ordering::Relaxed);
                        let _ = c.call("DELETE", &format!("/containers/{id}?force=1"), "");
                        return None;
                    }
                    let (st, _) = c.call("POST", &format!("/containers/{id}/wait"), "").ok()?;
                    if st != 200 {
                        return None;
                    }
                    let (st, _) = c.call("DELETE", &format!("/containers/{id}"), "").ok()?;
                    (st == 204).then_some(())
                })()
                .is_some();
                churn.note(t0, good);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = t_start.elapsed().as_secs_f64();
    let cpu_load = cpu_secs(pid) - cpu0;
    drop(half_open);
    // Idle with the followers: what they cost.
    let cpu1 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu_pct = (cpu_secs(pid) - cpu1) / 5.0 * 100.0;
    let followers_alive = followers
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 1];
            !matches!((&**s).read(&mut b), Ok(0))
        })
        .count();
    drop(followers);
    // The list at 1,000 containers.
    let mut c = Conn::open(&sock).expect("connect");
    let _ = c.call("POST", &format!("/containers/{logs_id}/kill"), "");
    let _ = c.call("DELETE", &format!("/containers/{logs_id}?force=1"), "");
    let mut made = Vec::new();
    for _ in 0..1000 {
        if let Ok((201, body)) = c.call("POST", "/containers/create", CREATE) {
            made.extend(id_of(&body));
        }
    }
    let mut times = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        let _ = c.call("GET", "/containers/json?all=1", "");
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    for id in &made {
        let _ = c.call("DELETE", &format!("/containers/{id}"), "");
    }
    let out = serde_json::json!({
        "seconds": elapsed,
        "ping_list": {
            "requests_per_s": list.ok.load(Ordering::Relaxed) as f64 / elapsed,
            "failed": list.failed.load(Ordering::Relaxed),
            "p50_ms": list.p(0.5),
            "p99_ms": list.p(0.99),
        },
        "churn": {
            "containers_per_s": churn.ok.load(Ordering::Relaxed) as f64 / elapsed,
            "failed": churn.failed.load(Ordering::Relaxed),
            "failed_starts": starts_failed.load(Ordering::Relaxed),
        },
        "server_cpu_under_load_pct": cpu_load / elapsed * 100.0,
        "server_cpu_idle_with_200_followers_pct": idle_cpu_pct,
        "followers_still_open": followers_alive,
        "list_1000_ms_median": times[times.len() / 2],
        "list_1000_created": made.len(),
    });
    println!("{out}");
}
