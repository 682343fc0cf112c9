//! How a handler answers: whole replies, streamed bodies and hijacked connections.
//!
//! Handlers run on blocking threads (the engine is synchronous); hyper runs on the async
//! runtime. A [`Responder`] carries the response head from one to the other once, then a
//! streamed body through a bounded channel (a client that reads slowly slows the writer;
//! one that leaves makes its next write fail), or, after a `101`, the upgraded connection
//! as a `Write` for output and a pipe for input, the same on unix, TCP and TLS.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::convert::Infallible;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

/// Every response's body.
pub type ResponseBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// A response as hyper sends it.
pub type Response = hyper::Response<ResponseBody>;

/// How many chunks a streamed body may have in flight before its writer waits.
const BODY_CHANNEL: usize = 16;

/// The one head of a request's response, sent when the handler knows it.
pub struct Responder {
    head: Option<oneshot::Sender<Response>>,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    runtime: tokio::runtime::Handle,
}

impl Responder {
    /// A responder whose head goes to `head`; `upgrade` is the connection's upgrade if
    /// the client asked for one.
    pub fn new(
        head: oneshot::Sender<Response>,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
        runtime: tokio::runtime::Handle,
    ) -> Responder {
        Responder {
            head: Some(head),
            upgrade,
            runtime,
        }
    }

    /// Whether the head has been sent (a later error can only end the stream).
    pub fn started(&self) -> bool {
        self.head.is_none()
    }

    /// Sends a whole response.
    pub fn send(&mut self, resp: Response) -> io::Result<()> {
        let tx = self
            .head
            .take()
            .ok_or_else(|| io::Error::other("the response was already sent"))?;
        tx.send(resp)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone"))
    }

    /// Starts a streamed (chunked) body with `status`, `content_type` and `headers`; the
    /// body ends cleanly only through [`BodyWriter::finish`], so a stream cut by an error
    /// reaches the client as a cut transfer, never as a complete one.
    pub fn stream(
        &mut self,
        status: u16,
        content_type: &str,
        headers: &[(&str, String)],
    ) -> io::Result<BodyWriter> {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL);
        let complete = Arc::new(AtomicBool::new(false));
        let body = ChannelBody {
            rx,
            complete: complete.clone(),
        };
        let resp = response(status, content_type, headers, body.boxed());
        self.send(resp)?;
        Ok(BodyWriter {
            chunks: ChannelWriter { tx },
            complete,
        })
    }

    /// Takes the connection over for a raw stream (attach, exec start): with a `101` when
    /// the client asked to upgrade, its output and input then flow both ways; otherwise a
    /// `200` whose body is the stream and no input.
    pub fn hijack(&mut self, content_type: &str) -> io::Result<Hijack> {
        let Some(upgrade) = self.upgrade.take() else {
            let out = self.stream(200, content_type, &[])?;
            return Ok(Hijack {
                complete: Some(out.complete.clone()),
                output: Box::new(out),
                input: None,
                ctl: HijackCtl::default(),
            });
        };
        let resp = hyper::Response::builder()
            .status(101)
            .header("Content-Type", content_type)
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
            .body(empty())
            .map_err(io::Error::other)?;
        self.send(resp)?;
        let upgraded = self
            .runtime
            .block_on(upgrade)
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        let ctl = HijackCtl::default();
        let (in_r, in_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(BODY_CHANNEL);
        // Input: the client's bytes into the pipe until it closes its side or the
        // handler ends the input.
        let input_ctl = ctl.clone();
        let _guard = self.runtime.enter();
        let mut pipe_w = tokio::net::unix::pipe::Sender::from_owned_fd(in_w)?;
        self.runtime.spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                tokio::select! {
                    n = rd.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => if pipe_w.write_all(&buf[..n]).await.is_err() { break },
                    },
                    _ = input_ctl.end_input.notified() => break,
                    _ = input_ctl.close.notified() => break,
                }
            }
        });
        // Output: the handler's writes to the client; when the handler is done the
        // connection is closed (as dockerd does after a hijacked stream). The first bytes
        // go no sooner than UPGRADE_SETTLE after the 101: a client that reads the 101's
        // head through a buffered reader and the stream from the raw socket after it
        // (docker-py does) would lose bytes that arrived with the head.
        let output_ctl = ctl.clone();
        let upgraded_at = tokio::time::Instant::now();
        self.runtime.spawn(async move {
            let mut first = true;
            loop {
                tokio::select! {
                    chunk = rx.recv() => match chunk {
                        Some(b) => {
                            if std::mem::take(&mut first) {
                                tokio::time::sleep_until(upgraded_at + UPGRADE_SETTLE).await;
                            }
                            if wr.write_all(&b).await.is_err() { break }
                        }
                        None => break,
                    },
                    _ = output_ctl.close.notified() => break,
                }
            }
            let _ = wr.shutdown().await;
            output_ctl.close.notify_waiters();
            output_ctl.close.notify_one();
        });
        Ok(Hijack {
            output: Box::new(ChannelWriter { tx }),
            input: Some(in_r),
            ctl,
            complete: None,
        })
    }
}

/// The least time between a 101 and the first bytes of the stream after it.
const UPGRADE_SETTLE: std::time::Duration = std::time::Duration::from_millis(25);

/// A hijacked connection.
pub struct Hijack {
    /// What goes to the client.
    pub output: Box<dyn Write + Send>,
    /// What the client sends, as a pipe (end of file when it closes its side or the
    /// input is ended); `None` when the client did not upgrade.
    pub input: Option<OwnedFd>,
    /// Ends input or the whole connection from another thread.
    pub ctl: HijackCtl,
    /// Without an upgrade: marks the body as ended cleanly.
    complete: Option<Arc<AtomicBool>>,
}

impl Hijack {
    /// The stream ended as it should: without an upgrade the body ends cleanly (a body
    /// not finished is cut, so the client sees it was not whole).
    pub fn finish(&self) {
        if let Some(c) = &self.complete {
            c.store(true, Ordering::Release);
        }
    }
}

/// Ends a hijacked connection's input or the whole connection.
#[derive(Clone, Default)]
pub struct HijackCtl {
    end_input: Arc<Notify>,
    close: Arc<Notify>,
}

impl HijackCtl {
    /// The input pipe sees end of file (the client's later bytes are not read).
    pub fn end_input(&self) {
        self.end_input.notify_one();
    }

    /// The connection is closed now, output not yet sent included (a detach).
    pub fn close(&self) {
        self.close.notify_waiters();
        self.close.notify_one();
        self.end_input.notify_one();
    }
}

/// A `Write` into a channel of chunks (a streamed body, the hijacked output).
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client is gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writing end of a streamed body: each write is a chunk.
pub struct BodyWriter {
    chunks: ChannelWriter,
    complete: Arc<AtomicBool>,
}

impl BodyWriter {
    /// Ends the body cleanly.
    pub fn finish(self) -> io::Result<()> {
        self.complete.store(true, Ordering::Release);
        Ok(())
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunks.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end of a streamed body.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) if self.complete.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::other(
                "the response stream was cut short",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// An empty body.
pub fn empty() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// A body held whole.
pub fn full(b: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// A response with the headers every answer carries.
pub fn response(
    status: u16,
    content_type: &str,
    headers: &[(&str, String)],
    body: ResponseBody,
) -> Response {
    let mut b = hyper::Response::builder()
        .status(status)
        .header("Server", concat!("strata/", env!("CARGO_PKG_VERSION")))
        .header("Api-Version", crate::API_VERSION)
        .header("Docker-Experimental", "false")
        .header("Ostype", "linux");
    if !content_type.is_empty() {
        b = b.header("Content-Type", content_type);
    }
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(body).unwrap_or_else(|e| {
        let mut r = hyper::Response::new(full(format!("{{\"message\":\"bad header: {e}\"}}")));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// A JSON error response (`{"message": ...}`), as Docker's clients print it.
pub fn error(status: u16, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    response(status, "application/json", &[], full(body))
}
