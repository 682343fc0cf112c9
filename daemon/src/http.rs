//! A request as handlers see it (hyper parses it; this is its head with the path decoded
//! and the query split), and the rules on top of hyper's: strict framing and Docker's
//! Content-Type rule for JSON bodies.

use std::io::Read;
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

impl Request {
    /// The head of a request hyper has parsed; refuses framing hyper let through but
    /// Docker's clients never send (see [`framing`]).
    pub fn from_parts<B>(req: &hyper::Request<B>) -> Result<Request, (u16, String)> {
        let mut headers = Vec::with_capacity(req.headers().len());
        for (k, v) in req.headers() {
            let v = v
                .to_str()
                .map_err(|_| (400, format!("header {k} is not visible ASCII")))?;
            headers.push((k.as_str().to_string(), v.trim().to_string()));
        }
        let framing = framing(&headers)?;
        let query = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k, true), decode(v, true))
            })
            .collect();
        Ok(Request {
            method: req.method().as_str().to_ascii_uppercase(),
            path: decode(req.uri().path(), false),
            query,
            headers,
            framing,
        })
    }
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
fn framing(headers: &[(String, String)]) -> Result<Framing, (u16, String)> {
    let bad = |m: &str| Err((400, m.to_string()));
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
