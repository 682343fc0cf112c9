//! Listening: unix sockets (0660, group `docker` when it exists, as dockerd makes them) and
//! loopback TCP; one thread per connection, requests read and answered in turn.

use crate::http::{self, ReadError};
use engine::Engine;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `unix:///path` or `tcp://ADDR:PORT` (repeatable).
    pub hosts: Vec<String>,
    /// TLS with client verification for TCP hosts (`--tlsverify`).
    pub tls: Option<crate::tls::TlsFiles>,
}

/// A listening socket.
enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener, Option<std::sync::Arc<rustls::ServerConfig>>),
}

/// The gid of group `name` from /etc/group, if it exists.
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

fn bind(host: &str, tls: Option<&crate::tls::TlsFiles>) -> std::io::Result<Listener> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A socket left by a daemon that is gone; a live one is refused.
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::other(format!(
                    "{} is in use by a running daemon: stop it or choose another -H",
                    path.display()
                )));
            }
            std::fs::remove_file(&path)?;
        }
        let l = bind_private(&path)?;
        return Ok(Listener::Unix(l, path));
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        let l = TcpListener::bind(addr)?;
        if let Some(files) = tls {
            return Ok(Listener::Tcp(l, Some(crate::tls::server_config(files)?)));
        }
        let ip = l.local_addr()?.ip();
        if !ip.is_loopback() {
            return Err(std::io::Error::other(format!(
                "-H {host}: plain TCP is only served on a loopback address: use --tlsverify with --tlscacert, --tlscert and --tlskey, or unix://, or 127.0.0.1"
            )));
        }
        tracing::warn!(%host, "serving the API on TCP without TLS: anyone on this machine can reach it");
        return Ok(Listener::Tcp(l, None));
    }
    Err(std::io::Error::other(format!(
        "-H {host}: use unix:///path or tcp://127.0.0.1:PORT"
    )))
}

/// Binds a unix socket at `path` that no other user can ever connect to: it is bound in a
/// fresh folder only root can enter (whatever the umask), given its mode (0660) and group
/// there, and only then renamed into place. Binding at `path` and chmodding after left a
/// window in which a socket made under a loose umask answered anyone.
fn bind_private(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = fsutil::temp_name_beside(path)?;
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let result = (|| {
        // The folder's mode is 0700 at most under any umask; make it exactly that.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let inner = dir.join("s");
        let l = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = group_id("docker") {
            let _ = rustix::fs::chown(&inner, None, Some(rustix::fs::Gid::from_raw(gid)));
        }
        std::fs::rename(&inner, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_dir(&dir);
    result
}

/// A client that reads nothing for this long while a reply is being written to it is
/// dropped, so it cannot hold a thread (and what the thread holds, such as a mounted
/// container for `cp`) forever.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves `opts.hosts` until the process is stopped.
pub fn serve(engine: Engine, opts: &DaemonOptions) -> std::io::Result<()> {
    let hosts = if opts.hosts.is_empty() {
        vec!["unix:///run/strata.sock".to_string()]
    } else {
        opts.hosts.clone()
    };
    let listeners = hosts
        .iter()
        .map(|h| bind(h, opts.tls.as_ref()))
        .collect::<std::io::Result<Vec<_>>>()?;
    crate::api::staging_clean(&engine);
    restart_on_boot(&engine);
    // What requests wrote reaches the disk off their critical path.
    let flusher = engine.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if std::env::var_os("STRATA_TEST_NO_FLUSH").is_none() && flusher.flush_pending() {
            if let Err(e) = flusher.flush() {
                tracing::warn!(error = %e, "flushing recent writes failed; retrying");
            }
        }
    });
    std::thread::scope(|scope| {
        for l in listeners {
            let engine = engine.clone();
            scope.spawn(move || match l {
                Listener::Unix(l, path) => {
                    tracing::info!(socket = %path.display(), "serving the Docker Engine API");
                    for s in l.incoming().flatten() {
                        let engine = engine.clone();
                        let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                        std::thread::spawn(move || {
                            if let Ok(r) = s.try_clone() {
                                connection(&engine, BufReader::new(r), s, true, Via::Unix);
                            }
                        });
                    }
                }
                Listener::Tcp(l, tls) => {
                    for s in l.incoming().flatten() {
                        let engine = engine.clone();
                        let tls = tls.clone();
                        let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                        std::thread::spawn(move || match tls {
                            Some(cfg) => {
                                if let Ok((r, w)) = crate::tls::accept(&cfg, s) {
                                    connection(&engine, BufReader::new(r), w, false, Via::Tcp);
                                }
                            }
                            None => {
                                if let Ok(r) = s.try_clone() {
                                    connection(&engine, BufReader::new(r), s, true, Via::Tcp);
                                }
                            }
                        });
                    }
                }
            });
        }
    });
    Ok(())
}

/// Answers requests on one connection until the client closes it (or a stream or hijack
/// ends it).
/// `raw_input`: whether the socket itself may be read after a hijack (not under TLS).
/// Where a connection came from: TCP connections get the browser guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Unix,
    Tcp,
}

/// Whether a request on a TCP listener may come from a browser: one with an `Origin`
/// (a page's fetch or form) or a `Host` that is not an address or a `localhost` name (a
/// page on a DNS name rebound to 127.0.0.1) is refused, as nothing but a browser sends
/// those to the Engine API.
fn browser_refusal(req: &http::Request) -> Option<String> {
    if let Some(o) = req.header("origin") {
        return Some(format!(
            "requests from a web page (Origin: {o}) are refused on TCP listeners"
        ));
    }
    let host = req.header("host")?;
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let lower = name.to_ascii_lowercase();
    let ok = lower.parse::<std::net::IpAddr>().is_ok()
        || lower == "localhost"
        || lower.ends_with(".localhost")
        || lower == "docker";
    (!ok).then(|| {
        format!("Host {host:?} is refused on TCP listeners: use an address or localhost (a DNS name can be rebound by a web page)")
    })
}

fn connection<R, W>(engine: &Engine, mut r: BufReader<R>, mut w: W, raw_input: bool, via: Via)
where
    R: std::io::Read,
    W: Write + Send + std::os::fd::AsFd,
{
    loop {
        let req = match http::read_head(&mut r) {
            Ok(req) => req,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(ReadError::Bad(status, msg)) => {
                let body = serde_json::json!({ "message": msg }).to_string();
                let _ =
                    http::write_response(&mut w, status, "application/json", body.as_bytes(), &[]);
                return;
            }
        };
        if via == Via::Tcp {
            if let Some(msg) = browser_refusal(&req) {
                let body = serde_json::json!({ "message": msg }).to_string();
                let _ = http::write_response(&mut w, 403, "application/json", body.as_bytes(), &[]);
                return;
            }
        }
        let fd = match w.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(_) => return,
        };
        // What a hijacked stream's client sends after the response head (stdin), read
        // from the socket itself: clients wait for the upgrade before sending it, so
        // nothing of it is buffered once the handler has read the request body.
        let input = if raw_input { fd.try_clone().ok() } else { None };
        let alive = move || peer_open(&fd);
        let keep = crate::router::handle(engine, &req, &mut r, &mut w, &alive, input);
        if !keep || !req.keep_alive() {
            return;
        }
    }
}

/// Whether the client is still connected (no hang-up seen), asked without blocking.
fn peer_open(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    match unsafe { libc::poll(&mut p, 1, 0) } {
        0 => true,
        n if n > 0 => p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) == 0,
        _ => false,
    }
}

/// What dockerd does when it starts: containers whose policy is `always`, or
/// `unless-stopped` and not stopped by a user, are started again if they are not running
/// (after a reboot, say). Failures are logged, never fatal.
fn restart_on_boot(engine: &Engine) {
    let Ok(all) = engine.containers(true) else {
        return;
    };
    for v in all {
        if v.state.is_running() || v.state.status == engine::Status::Created {
            continue;
        }
        let policy = v.bundle.restart_policy();
        let wanted = match policy.name.as_str() {
            "always" => true,
            "unless-stopped" => !v.bundle.stopped_by_user(),
            _ => false,
        };
        if !wanted {
            continue;
        }
        match engine.start_detached(&v.record.id, engine::containers::StartOptions::default()) {
            Ok(_) => tracing::info!(container = %v.record.name, "restarted by its restart policy"),
            Err(e) => {
                tracing::warn!(container = %v.record.name, error = %e, "restart policy: start failed")
            }
        }
    }
}
