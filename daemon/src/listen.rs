//! Listening: unix sockets (0660, group `docker` when it exists, as dockerd makes them),
//! loopback TCP and TLS; what happens at start (staging cleaned, restart policies, the
//! background flush) before [`crate::server`] serves.

use crate::server::Bound as Listener;
use engine::Engine;
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

/// Serves `opts.hosts` until SIGTERM or SIGINT.
pub fn serve(engine: Engine, opts: &DaemonOptions) -> std::io::Result<()> {
    // A long-lived process: container records, states and host configs are parsed once
    // per change, not once per listing.
    fsutil::parsed_cache::enable();
    // Running containers are checked through pidfds kept open, up to a quarter of the
    // descriptor limit (the rest stays for connections and files).
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(4096);
    fsutil::process::keep_pidfds((nofile / 4).min(4096) as usize);
    let mut engine = engine;
    engine.keep_store_open();
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
    start_up_gc(&engine);
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
    crate::server::run(engine, listeners)
}

/// Frees, off the start's path, what an interrupted load, pull or commit left (layers
/// and blobs nothing names; fsck calls them "belongs to nothing"): they are not kept
/// until someone prunes. It waits for any load under way (the content lock) and keeps
/// what a pull's lease names.
fn start_up_gc(engine: &Engine) {
    let engine = engine.clone();
    std::thread::spawn(move || match engine.prune() {
        Ok((0, 0)) => {}
        Ok((layers, blobs)) => {
            tracing::info!(layers, blobs, "freed what interrupted commands left")
        }
        Err(e) => tracing::warn!(error = %e, "freeing what interrupted commands left failed"),
    });
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
