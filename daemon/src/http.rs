//! A small HTTP/1.1 server side: requests read from a stream (Content-Length or chunked
//! bodies, keep-alive), responses written whole, chunked (streams) or as a hijacked raw
//! stream (attach). Enough for the Docker Engine API, which is plain HTTP/1.1 over a unix
//! socket; every size is bounded so a client cannot make the daemon hold unbounded memory.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Headers larger than this are refused (431).
const MAX_HEAD: usize = 64 << 10;
/// JSON bodies larger than this are refused (413); archives are streamed, never held.
pub const MAX_JSON_BODY: u64 = 16 << 20;

/// One request.
pub struct Request {
    pub method: String,
    /// The path without the query, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// How its body is delimited, checked when the head was read.
    pub framing: Framing,
}

impl Request {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated query parameter (`changes=...&changes=...`), empty ones
    /// left out.
    pub fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean query parameter (`1`, `true`, `True`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("1" | "true" | "True" | "yes"))
    }

    /// Whether the client wants the connection kept open.
    pub fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection between requests.
    Closed,
    /// A malformed or oversized request, with the status to answer.
    Bad(u16, String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Percent-decodes a URL component (`+` is a space in queries).
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one request head from `r`.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Request, ReadError> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Err(ReadError::Closed);
            }
            return Err(ReadError::Bad(
                400,
                "the request ended inside its headers".into(),
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(ReadError::Bad(431, "request headers too large".into()));
        }
        let line = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between requests
            }
            break;
        }
        lines.push(line);
    }
    let mut parts = lines[0].split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(ReadError::Bad(
            400,
            format!("bad request line {:?}", lines[0]),
        ));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect();
    let mut headers = Vec::with_capacity(lines.len() - 1);
    for l in &lines[1..] {
        // A line that is no `name: value` (obsolete folding, a bare word) is refused,
        // never dropped: another reader could take it for something else.
        let Some((k, v)) = l
            .split_once(':')
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
        else {
            return Err(ReadError::Bad(400, format!("malformed header line {l:?}")));
        };
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let framing = framing(&headers)?;
    Ok(Request {
        method: method.to_ascii_uppercase(),
        path: decode(path, false),
        query,
        headers,
        framing,
    })
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// The body's framing, strictly: one `Transfer-Encoding: chunked` or one valid
/// `Content-Length` (repeats only if identical), never both; anything else is a 400.
/// Reading a doubled, negative or non-numeric length as 0 or as the first one let a body
/// run as a hidden second request (smuggling).
fn framing(headers: &[(String, String)]) -> Result<Framing, ReadError> {
    let bad = |m: &str| Err(ReadError::Bad(400, m.to_string()));
    let all = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .collect()
    };
    let te = all("transfer-encoding");
    let cl = all("content-length");
    if !te.is_empty() {
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return bad("unsupported Transfer-Encoding: only a single \"chunked\" is accepted");
        }
        if !cl.is_empty() {
            return bad("a request may not have both Transfer-Encoding and Content-Length");
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = cl.first() else {
        return Ok(Framing::Length(0));
    };
    if cl.iter().any(|v| v != first) {
        return bad("conflicting Content-Length headers");
    }
    if first.is_empty() || first.len() > 19 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return bad("invalid Content-Length");
    }
    first
        .parse()
        .map(Framing::Length)
        .or_else(|_| bad("invalid Content-Length"))
}

/// The body of `req` as a reader: Content-Length bytes, or a chunked body decoded.
pub fn body<'a, R: BufRead + 'a>(req: &Request, r: &'a mut R) -> Box<dyn Read + 'a> {
    match req.framing {
        Framing::Chunked => Box::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        }),
        Framing::Length(len) => Box::new(r.take(len)),
    }
}

/// Docker's rule for a JSON body (`CheckForJSON`): a request with a body must say
/// `Content-Type: application/json` (parameters allowed). A browser can send a
/// `text/plain` POST to a loopback port without asking first; refusing it keeps a web
/// page from creating and starting containers.
pub fn check_json_content_type(req: &Request, body: &[u8]) -> Result<(), (u16, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let ct = req.header("content-type").unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err((
        400,
        format!("unsupported Content-Type header ({ct}): must be 'application/json'"),
    ))
}

/// Reads a JSON body of at most [`MAX_JSON_BODY`] bytes (an empty body is `null`), sent
/// with Docker's Content-Type (see [`check_json_content_type`]).
pub fn read_json_body<R: Read>(
    req: &Request,
    mut body: R,
) -> Result<serde_json::Value, (u16, String)> {
    let mut buf = Vec::new();
    body.by_ref()
        .take(MAX_JSON_BODY + 1)
        .read_to_end(&mut buf)
        .map_err(|e| (400, format!("reading the request body: {e}")))?;
    if buf.len() as u64 > MAX_JSON_BODY {
        return Err((413, "request body too large".into()));
    }
    check_json_content_type(req, &buf)?;
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&buf)
        .map_err(|e| (400, format!("invalid JSON in the request body: {e}")))
}

/// A chunked body being decoded.
struct Chunked<'a, R: BufRead> {
    inner: &'a mut R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.by_ref().take(1024).read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let n = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if n == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut l = String::new();
                    if self.inner.by_ref().take(8192).read_line(&mut l)? == 0 || l.trim().is_empty()
                    {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "UPGRADED",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

/// A whole response: status, content type and body.
pub fn write_response<W: Write + ?Sized>(
    w: &mut W,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra_headers: &[(&str, String)],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: strata\r\nApi-Version: {}\r\nContent-Length: {}\r\n",
        reason(status),
        crate::API_VERSION,
        body.len()
    );
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// A response whose body is streamed in chunks; finish with [`ChunkedWriter::finish`].
pub struct ChunkedWriter<'a, W: Write + ?Sized> {
    w: &'a mut W,
}

impl<'a, W: Write + ?Sized> ChunkedWriter<'a, W> {
    /// Writes the head of a streamed response.
    pub fn start(w: &'a mut W, status: u16, content_type: &str) -> io::Result<Self> {
        Self::start_with(w, status, content_type, &[])
    }

    /// [`ChunkedWriter::start`] with more headers.
    pub fn start_with(
        w: &'a mut W,
        status: u16,
        content_type: &str,
        headers: &[(&str, String)],
    ) -> io::Result<Self> {
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let head = format!(
            "HTTP/1.1 {status} {}\r\nServer: strata\r\nApi-Version: {}\r\nContent-Type: {content_type}\r\n{extra}Transfer-Encoding: chunked\r\n\r\n",
            reason(status),
            crate::API_VERSION,
        );
        w.write_all(head.as_bytes())?;
        w.flush()?;
        Ok(ChunkedWriter { w })
    }

    /// Ends the body.
    pub fn finish(self) -> io::Result<()> {
        self.w.write_all(b"0\r\n\r\n")?;
        self.w.flush()
    }
}

impl<W: Write + ?Sized> Write for ChunkedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.w
            .write_all(format!("{:x}\r\n", buf.len()).as_bytes())?;
        self.w.write_all(buf)?;
        self.w.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Reads requests from a buffered stream.
pub type Conn<S> = BufReader<S>;
