//! Request routing: the `/v1.NN` prefix (version negotiation), then the path onto a
//! handler, and the handler's reply (or error) written back.

use crate::api;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Request};
use crate::respond::{self, Responder};
use engine::Engine;
use serde_json::Value;
use std::io::Read;

/// What a handler answers.
pub enum Reply {
    /// A JSON document with a status.
    Json(u16, Value),
    /// No body (204, 304, 201 with nothing to say).
    Empty(u16),
    /// A body of another type.
    Bytes(u16, &'static str, Vec<u8>),
    /// A body with more headers.
    Full {
        status: u16,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// The handler sent the head itself (a stream or a hijack) and is done with it.
    Sent,
}

/// One request being handled.
pub struct Call<'a> {
    pub engine: &'a Engine,
    pub req: &'a Request,
    /// The API version the client speaks.
    pub version: ApiVersion,
    /// The path below the version prefix, e.g. `/containers/abc/start`.
    pub path: String,
    pub body: &'a mut dyn Read,
    /// Where the response goes: whole, streamed or hijacked.
    pub resp: &'a mut Responder,
    /// Whether the client is still connected and the daemon not stopping (for long
    /// streams that rarely write).
    pub alive: &'a (dyn Fn() -> bool + Sync),
}

impl Call<'_> {
    /// The request body as JSON (`null` when empty).
    pub fn json(&mut self) -> ApiResult<Value> {
        http::read_json_body(self.req, &mut *self.body).map_err(|(s, m)| ApiError::new(s, m))
    }
}

/// An Engine API version (`1.45`): what the client asked for in the path, or the served
/// one when it gave none. Handlers shape answers by it where dockerd's changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// Parses `1.45`.
    pub fn parse(v: &str) -> Option<ApiVersion> {
        let (a, b) = v.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    /// The version served.
    pub fn served() -> ApiVersion {
        ApiVersion::parse(crate::API_VERSION).unwrap_or(ApiVersion(1, 45))
    }

    /// Whether this is `1.minor` or later.
    pub fn at_least(self, minor: u32) -> bool {
        self >= ApiVersion(1, minor)
    }
}

/// Strips `/v1.NN`: the version asked for and the rest of the path. Refuses versions
/// older than [`crate::MIN_API_VERSION`] or newer than the one served.
fn strip_version(path: &str) -> ApiResult<(ApiVersion, String)> {
    let served = ApiVersion::served();
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((served, path.to_string()));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some(v) = ApiVersion::parse(ver) else {
        return Ok((served, path.to_string()));
    };
    let min = ApiVersion::parse(crate::MIN_API_VERSION).unwrap_or(ApiVersion(1, 24));
    if v < min {
        return Err(ApiError::bad(format!(
            "client version {ver} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            crate::MIN_API_VERSION
        )));
    }
    if v > served {
        return Err(ApiError::bad(format!(
            "client version {ver} is too new. Maximum supported API version is {}",
            crate::API_VERSION
        )));
    }
    Ok((v, tail.to_string()))
}

/// Handles one request: routes it, runs its handler and sends what it answers (unless
/// the handler sent a stream or hijacked the connection itself).
pub fn handle(
    engine: &Engine,
    req: &Request,
    body: &mut dyn Read,
    resp: &mut Responder,
    alive: &(dyn Fn() -> bool + Sync),
) {
    let result = strip_version(&req.path).and_then(|(version, path)| {
        tracing::debug!(method = %req.method, %path, ?version, "API request");
        let mut call = Call {
            engine,
            req,
            version,
            path,
            body,
            resp: &mut *resp,
            alive,
        };
        dispatch(&mut call)
    });
    let reply = match result {
        Ok(reply) => match response_of(reply) {
            Some(r) => r,
            None => return,
        },
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(method = %req.method, path = %req.path, error = %e.message, "API request failed");
            }
            if resp.started() {
                // The stream is out: it can only end short, which it has.
                return;
            }
            respond::error(e.status, &e.message)
        }
    };
    let _ = resp.send(reply);
}

/// Answers, without a blocking thread or the engine, the requests that touch nothing but
/// memory (`_ping`, half of what health-checking clients and the load benchmark send): the
/// hand-off to the blocking pool costs more than the answer. `None` for everything else.
/// The server asks here before [`handle`], so these routes are not in [`dispatch`].
pub fn inline(req: &Request) -> Option<respond::Response> {
    let (_, path) = strip_version(&req.path).ok()?;
    match (req.method.as_str(), path.trim_end_matches('/')) {
        ("GET" | "HEAD", "/_ping") => response_of(api::system::ping(req)),
        _ => None,
    }
}

/// The HTTP response for a handler's reply; `None` when the handler sent its own.
fn response_of(reply: Reply) -> Option<respond::Response> {
    Some(match reply {
        Reply::Json(status, v) => {
            let b = serde_json::to_vec(&v).unwrap_or_default();
            respond::response(status, "application/json", &[], respond::full(b))
        }
        Reply::Empty(status) => respond::response(status, "", &[], respond::empty()),
        Reply::Bytes(status, ct, b) => respond::response(status, ct, &[], respond::full(b)),
        Reply::Full {
            status,
            content_type,
            headers,
            body,
        } => respond::response(status, content_type, &headers, respond::full(body)),
        Reply::Sent => return None,
    })
}

/// The image name in `/images/NAME/ACTION` (names may hold slashes).
fn image_and_action(rest: &str) -> (String, String) {
    for action in ["json", "history", "tag", "push", "get"] {
        if let Some(name) = rest.strip_suffix(&format!("/{action}")) {
            return (name.to_string(), action.to_string());
        }
    }
    (rest.to_string(), String::new())
}

fn dispatch(c: &mut Call<'_>) -> ApiResult<Reply> {
    let method = c.req.method.clone();
    let path = c.path.trim_end_matches('/').to_string();
    let segs: Vec<String> = path.split('/').skip(1).map(str::to_string).collect();
    let seg = |i: usize| segs.get(i).map(String::as_str).unwrap_or("");
    match (method.as_str(), seg(0)) {
        ("GET", "version") => api::system::version(c),
        ("GET", "info") => api::system::info(c),
        ("GET", "system") if seg(1) == "df" => api::system::df(c),
        ("GET", "events") => api::system::events(c),
        (_, "images") => {
            let rest = path.strip_prefix("/images").unwrap_or("");
            match (method.as_str(), rest) {
                ("GET", "/json") => api::images::list(c),
                ("POST", "/load") => api::images::load(c),
                ("GET", "/get") => api::images::get(c, None),
                ("POST", "/create") => api::images::create(c),
                ("POST", "/prune") => api::images::prune(c),
                _ => {
                    let (name, action) = image_and_action(rest.trim_start_matches('/'));
                    match (method.as_str(), action.as_str()) {
                        ("GET", "json") => api::images::inspect(c, &name),
                        ("GET", "history") => api::images::history(c, &name),
                        ("POST", "tag") => api::images::tag(c, &name),
                        ("GET", "get") => api::images::get(c, Some(&name)),
                        ("POST", "push") => api::images::push(c, &name),
                        ("DELETE", "") => api::images::remove(c, &name),
                        _ => Err(not_found(c)),
                    }
                }
            }
        }
        ("POST", "commit") => api::containers::commit(c),
        ("POST", "auth") => api::images::auth(c),
        (_, "containers") => {
            let id = seg(1).to_string();
            match (method.as_str(), seg(1), seg(2)) {
                ("GET", "json", "") => api::containers::list(c),
                ("POST", "create", "") => api::containers::create(c),
                ("POST", "prune", "") => api::containers::prune(c),
                ("GET", _, "json") => api::containers::inspect(c, &id),
                ("POST", _, "start") => api::containers::start(c, &id),
                ("POST", _, "stop") => api::containers::stop(c, &id),
                ("POST", _, "restart") => api::containers::restart(c, &id),
                ("POST", _, "kill") => api::containers::kill(c, &id),
                ("POST", _, "wait") => api::containers::wait(c, &id),
                ("GET", _, "logs") => api::containers::logs(c, &id),
                ("POST", _, "attach") => api::containers::attach(c, &id),
                ("POST", _, "resize") => api::containers::resize(c, &id),
                ("GET", _, "changes") => api::containers::changes(c, &id),
                ("GET", _, "export") => api::containers::export(c, &id),
                ("GET", _, "top") => api::containers::top(c, &id),
                ("GET", _, "stats") => api::containers::stats(c, &id),
                ("POST", _, "rename") => api::containers::rename(c, &id),
                ("POST", _, "pause") => api::containers::pause(c, &id),
                ("POST", _, "unpause") => api::containers::unpause(c, &id),
                ("POST", _, "update") => api::containers::update(c, &id),
                ("POST", _, "exec") => api::exec::create(c, &id),
                ("GET" | "HEAD" | "PUT", _, "archive") => api::archive::handle(c, &id),
                ("DELETE", _, "") => api::containers::remove(c, &id),
                _ => Err(not_found(c)),
            }
        }
        (_, "exec") => match (method.as_str(), seg(2)) {
            ("POST", "start") => api::exec::start(c, seg(1)),
            ("POST", "resize") => api::exec::resize(c, seg(1)),
            ("GET", "json") => api::exec::inspect(c, seg(1)),
            _ => Err(not_found(c)),
        },
        (_, "volumes") => match (method.as_str(), seg(1)) {
            ("GET", "") => api::volumes::list(c),
            ("POST", "create") => api::volumes::create(c),
            ("POST", "prune") => api::volumes::prune(c),
            ("GET", name) => api::volumes::inspect(c, name),
            ("DELETE", name) => api::volumes::remove(c, name),
            _ => Err(not_found(c)),
        },
        ("POST", "build") if seg(1).is_empty() => api::build::build(c),
        (_, "networks") => match (method.as_str(), seg(1), seg(2)) {
            ("GET", "", "") => api::networks::list(c),
            ("POST", "create", "") => api::networks::create(c),
            ("POST", "prune", "") => api::networks::prune(c),
            ("GET", id, "") => api::networks::inspect(c, id),
            ("DELETE", id, "") => api::networks::remove(c, id),
            ("POST", id, "connect") => api::networks::connect(c, id),
            ("POST", id, "disconnect") => api::networks::disconnect(c, id),
            _ => Err(not_found(c)),
        },
        (_, "swarm")
        | (_, "services")
        | (_, "nodes")
        | (_, "plugins")
        | (_, "secrets")
        | (_, "configs") => Err(ApiError::new(
            501,
            format!("{} is not implemented by strata yet", seg(0)),
        )),
        _ => Err(not_found(c)),
    }
}

fn not_found(c: &Call<'_>) -> ApiError {
    ApiError::not_found(format!("page not found: {} {}", c.req.method, c.path))
}
