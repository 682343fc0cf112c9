//! A request body as a blocking `Read` for handlers: a task forwards hyper's frames
//! through a small bounded channel, so a large upload is never held whole and a client
//! that stops sending only stalls its own handler.

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use std::io::{self, Read};
use tokio::sync::mpsc;

/// The body of one request.
pub struct BodyReader {
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts forwarding `body` on `runtime`.
    pub fn new(body: hyper::body::Incoming, runtime: &tokio::runtime::Handle) -> BodyReader {
        let (tx, rx) = mpsc::channel(4);
        runtime.spawn(async move {
            let mut body = body;
            loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() && tx.send(Ok(data)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let e = io::Error::new(io::ErrorKind::InvalidData, e);
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        BodyReader {
            rx: Some(rx),
            current: Bytes::new(),
        }
    }

    /// A body with nothing in it.
    pub fn empty() -> BodyReader {
        BodyReader {
            rx: None,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            let Some(rx) = self.rx.as_mut() else {
                return Ok(0);
            };
            match rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                None => {
                    self.rx = None;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
