//! The HTTP server: hyper 1 on a tokio runtime, one task per connection (a silent
//! connection costs a task and its descriptors, never a thread) and one blocking thread
//! per request being handled (the engine is synchronous).
//!
//! Limits, so no client can lock out the others: connections per listener capped from the
//! descriptor limit (raised to the hard one at start; at the cap a listener stops
//! accepting until one ends, so the others, the unix socket among them, go on serving);
//! a request head must arrive whole within [`HEADER_TIMEOUT`] (the same bound holds a
//! kept-alive connection between requests); a TLS handshake within
//! [`TLS_HANDSHAKE_TIMEOUT`]; a client that reads nothing of a reply for
//! [`WRITE_TIMEOUT`] is dropped; an accept error (EMFILE) pauses that listener instead of
//! spinning. SIGTERM stops accepting, ends streams and waits briefly for replies in flight;
//! containers run on under their shims.

use crate::body::BodyReader;
use crate::http::Request;
use crate::respond::{self, Responder, Response};
use engine::Engine;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};

/// A request head must be read whole within this (and an idle kept-alive connection is
/// closed after it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// A TLS client must finish its handshake within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes nothing of a reply for this long is dropped, so it cannot hold a
/// handler (and what it holds, such as a mounted container for `cp`) forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The read buffer's bound, which bounds a request head: hyper answers 431 to a head that
/// does not fit. Not exact: a 100 KiB head was measured to get through (the buffer grows
/// past the bound in one read); `daemon/tests/http.rs` checks that 256 KiB never does.
const MAX_HEAD: usize = 64 << 10;
/// How long replies in flight get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Set once the daemon is stopping: long streams (events, logs, attach) end.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Where a connection came from: TCP connections get the browser guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Unix,
    Tcp,
}

/// A bound listener, ready to serve.
pub enum Bound {
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
    Tcp(std::net::TcpListener, Option<Arc<rustls::ServerConfig>>),
}

/// What every connection shares.
struct Shared {
    engine: Engine,
    runtime: tokio::runtime::Handle,
    stop: watch::Receiver<bool>,
}

/// Connections one listener may hold, from the descriptor limit: each takes its socket,
/// a duplicate for hang-up checks and, hijacked, a pipe.
fn per_listener_cap(nofile: u64, listeners: usize) -> usize {
    let usable = nofile.saturating_sub(512) as usize;
    (usable / (4 * listeners.max(1))).clamp(32, 8192)
}

/// Serves `listeners` until SIGTERM or SIGINT.
pub fn run(engine: Engine, listeners: Vec<Bound>) -> std::io::Result<()> {
    // A client that hangs up mid-reply is a failed write (EPIPE) for its connection,
    // never a signal that ends the daemon (hyper writes with writev, which raises it).
    // Containers start with every signal at its default (runtime::launch).
    // SAFETY: setting one signal's disposition; nothing else here handles SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let nofile = fsutil::limits::raise_nofile();
    let cap = per_listener_cap(nofile, listeners.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cap * listeners.len() + 64)
        .thread_name("strata-api")
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        engine,
        runtime: runtime.handle().clone(),
        stop: stop_rx,
    });
    tracing::debug!(nofile, cap, "connection caps");
    let result = runtime.block_on(async {
        let mut loops = Vec::new();
        for l in listeners {
            let sem = Arc::new(Semaphore::new(cap));
            let shared = shared.clone();
            loops.push(match l {
                Bound::Unix(l, path) => {
                    tracing::info!(socket = %path.display(), "serving the Docker Engine API");
                    l.set_nonblocking(true)?;
                    let l = tokio::net::UnixListener::from_std(l)?;
                    tokio::spawn(accept_unix(l, sem, shared))
                }
                Bound::Tcp(l, tls) => {
                    tracing::info!(address = ?l.local_addr().ok(), tls = tls.is_some(), "serving the Docker Engine API");
                    l.set_nonblocking(true)?;
                    let l = tokio::net::TcpListener::from_std(l)?;
                    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
                    tokio::spawn(accept_tcp(l, tls, sem, shared))
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("stopping: no new connections; containers keep running");
        STOPPING.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        for l in &loops {
            l.abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<(), std::io::Error>(())
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// Waits for a free connection slot, or for the stop.
async fn slot(sem: &Arc<Semaphore>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    sem.clone().acquire_owned().await.ok()
}

/// After an accept error (EMFILE, ENFILE, ENOMEM) the listener pauses instead of trying
/// again at once: a loop on a failing accept takes a core and serves nobody.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accepting a connection failed; pausing this listener for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The next connection and its slot: a slot is taken before accepting (at the cap the
/// listener waits, never accepts and drops), and an accept error pauses it.
async fn next_connection<S, A, F, Fut>(
    sem: &Arc<Semaphore>,
    mut accept: F,
) -> Option<(tokio::sync::OwnedSemaphorePermit, S)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<(S, A)>>,
{
    let permit = slot(sem).await?;
    loop {
        match accept().await {
            Ok((s, _)) => return Some((permit, s)),
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_unix(l: tokio::net::UnixListener, sem: Arc<Semaphore>, shared: Arc<Shared>) {
    while let Some((permit, s)) = next_connection(&sem, || l.accept()).await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(fd) = s.as_fd().try_clone_to_owned() else {
                return;
            };
            serve_connection(s, fd, Via::Unix, shared).await;
            drop(permit);
        });
    }
}

async fn accept_tcp(
    l: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sem: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    while let Some((permit, s)) = next_connection(&sem, || l.accept()).await {
        let _ = s.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(fd) = s.as_fd().try_clone_to_owned() else {
                return;
            };
            match tls {
                None => serve_connection(s, fd, Via::Tcp, shared).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                        Ok(Ok(s)) => serve_connection(s, fd, Via::Tcp, shared).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Answers requests on one connection until it ends, times out or the daemon stops.
async fn serve_connection<S>(s: S, fd: OwnedFd, via: Via, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut io = tokio_io_timeout::TimeoutStream::new(s);
    io.set_write_timeout(Some(WRITE_TIMEOUT));
    let io = hyper_util::rt::TokioIo::new(Box::pin(io));
    let fd = Arc::new(fd);
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let (shared, fd) = (svc_shared.clone(), fd.clone());
        async move { Ok::<_, std::convert::Infallible>(answer(req, via, fd, shared).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        // A client may close its side once its request is out and still wait for the
        // answer (curl, tests that send a whole request then shut down writing).
        .half_close(true)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = stopped(shared.stop.clone()) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// Resolves once the daemon is stopping.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One request: the guards, then its handler on a blocking thread; the response head
/// comes back when the handler sends it (streams go on after).
async fn answer(
    mut req: hyper::Request<hyper::body::Incoming>,
    via: Via,
    fd: Arc<OwnedFd>,
    shared: Arc<Shared>,
) -> Response {
    let request = match Request::from_parts(&req) {
        Ok(r) => r,
        Err((status, msg)) => return closing(respond::error(status, &msg)),
    };
    if via == Via::Tcp {
        if let Some(msg) = browser_refusal(&request) {
            return closing(respond::error(403, &msg));
        }
    }
    if let Some(resp) = crate::router::inline(&request) {
        return resp;
    }
    let upgrade = request
        .header("upgrade")
        .is_some()
        .then(|| hyper::upgrade::on(&mut req));
    let body = BodyReader::new(req.into_body(), &shared.runtime);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let responder = Responder::new(head_tx, upgrade, shared.runtime.clone());
    let engine = shared.engine.clone();
    let handler = tokio::task::spawn_blocking(move || {
        let alive = move || !STOPPING.load(Ordering::Relaxed) && peer_open(&fd);
        let mut body = body;
        let mut responder = responder;
        crate::router::handle(&engine, &request, &mut body, &mut responder, &alive);
    });
    match head_rx.await {
        Ok(resp) => resp,
        Err(_) => {
            let why = match handler.await {
                Err(e) if e.is_panic() => "the handler failed (a bug: see the daemon's log)",
                _ => "the handler sent no response",
            };
            tracing::error!("{why}");
            respond::error(500, why)
        }
    }
}

/// A response after which the connection is closed (the request's framing or origin was
/// refused: nothing more is read from it).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    resp
}

/// Whether a request on a TCP listener may come from a browser: one with an `Origin`
/// (a page's fetch or form) or a `Host` that is not an address or a `localhost` name (a
/// page on a DNS name rebound to 127.0.0.1) is refused, as nothing but a browser sends
/// those to the Engine API.
fn browser_refusal(req: &Request) -> Option<String> {
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

/// Whether the client is still connected (no hang-up seen), asked without blocking.
fn peer_open(fd: &OwnedFd) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        assert_eq!(per_listener_cap(1024, 1), 128);
        assert_eq!(per_listener_cap(20000, 2), 2436);
        assert_eq!(per_listener_cap(100, 3), 32);
        assert_eq!(per_listener_cap(1 << 20, 1), 8192);
    }
}
