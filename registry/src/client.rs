//! One registry's HTTP API (OCI distribution spec), with authentication: a 401 answer's
//! `WWW-Authenticate` challenge is met with Basic credentials or a Bearer token fetched
//! from the realm, and the request is sent again.

use crate::auth::{basic_header, parse_challenge, Challenge};
use crate::error::{RegistryError, Result};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// A client for one registry.
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port` or `https://host`.
    pub base: String,
    creds: Option<(String, String)>,
    /// The Authorization header that worked last (Basic or Bearer).
    authz: Mutex<Option<String>>,
}

/// What a request sends.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read),
}

impl Client {
    /// A client for `registry` (`host[:port]`); plain HTTP when `tls_verify` is false.
    pub fn new(registry: &str, tls_verify: bool, creds: Option<(String, String)>) -> Client {
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if tls_verify { "https" } else { "http" };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .max_redirects(5)
            .build()
            .into();
        Client {
            agent,
            base: format!("{scheme}://{host}"),
            creds,
            authz: Mutex::new(None),
        }
    }

    /// Another client for the same registry with the same credentials and the
    /// authorization that worked so far (for a download that outlives the caller's
    /// borrow).
    pub fn duplicate(&self) -> Client {
        Client {
            agent: self.agent.clone(),
            base: self.base.clone(),
            creds: self.creds.clone(),
            authz: Mutex::new(self.authz.lock().ok().and_then(|a| a.clone())),
        }
    }

    /// The full URL of `path_or_url` (registries answer with relative `Location`s).
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    /// Whether `url` is on this registry's own host (scheme, host and port).
    fn same_origin(&self, url: &str) -> bool {
        origin(url).is_some() && origin(url) == origin(&self.base)
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        payload: &mut Payload<'_>,
        authz: Option<&str>,
    ) -> Result<Response<Body>> {
        let err = |e: ureq::Error| RegistryError::Http {
            url: url.to_string(),
            source: Box::new(e),
        };
        macro_rules! with_headers {
            ($b:expr) => {{
                let mut b = $b;
                for (k, v) in headers {
                    b = b.header(*k, v.as_str());
                }
                if let Some(a) = authz {
                    b = b.header("Authorization", a);
                }
                b
            }};
        }
        match method {
            "GET" => with_headers!(self.agent.get(url)).call().map_err(err),
            "HEAD" => with_headers!(self.agent.head(url)).call().map_err(err),
            "DELETE" => with_headers!(self.agent.delete(url)).call().map_err(err),
            "POST" | "PUT" | "PATCH" => {
                let b = match method {
                    "POST" => with_headers!(self.agent.post(url)),
                    "PUT" => with_headers!(self.agent.put(url)),
                    _ => with_headers!(self.agent.patch(url)),
                };
                match payload {
                    Payload::Empty => b.send_empty().map_err(err),
                    Payload::Bytes(d) => b.send(*d).map_err(err),
                    Payload::Reader(r) => b.send(ureq::SendBody::from_reader(*r)).map_err(err),
                }
            }
            other => Err(RegistryError::Protocol(format!(
                "unsupported method {other}"
            ))),
        }
    }

    /// Gets a token from a Bearer challenge's realm.
    fn token(
        &self,
        realm: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<String> {
        let mut url = realm.to_string();
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", k, urlencode(v)))
            .collect();
        if !q.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&q.join("&"));
        }
        // Credentials go only to the registry's own host, or to a realm over HTTPS: never
        // to another host in clear text (a registry could name any realm).
        let trusted =
            self.same_origin(realm) || (realm.starts_with("https://") && origin(realm).is_some());
        let basic = self
            .creds
            .as_ref()
            .filter(|_| trusted)
            .map(|(u, p)| basic_header(u, p));
        let mut resp = self.send_once("GET", &url, &[], &mut Payload::Empty, basic.as_deref())?;
        if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 {
            return Err(RegistryError::Unauthorized(realm.to_string()));
        }
        if !resp.status().is_success() {
            return Err(status_error(&url, &mut resp));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| RegistryError::Http {
                url: url.clone(),
                source: Box::new(e),
            })?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Protocol(format!("{realm}: token reply is not JSON: {e}"))
        })?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| {
                RegistryError::Protocol(format!("{realm}: the token reply has no token"))
            })
    }

    /// Sends a request, authenticating on a 401 challenge and sending it once more. A
    /// reader payload cannot be replayed, so uploads that stream should be preceded by a
    /// cheap authenticated request (as pushes do).
    pub fn request(
        &self,
        method: &str,
        path_or_url: &str,
        headers: &[(&str, String)],
        mut payload: Payload<'_>,
    ) -> Result<Response<Body>> {
        let url = self.url(path_or_url);
        tracing::trace!(method, url = %url, "registry request");
        // An absolute `Location` on another host (an upload or a blob elsewhere) gets no
        // Authorization of this registry's.
        let own = self.same_origin(&url);
        let current = self
            .authz
            .lock()
            .ok()
            .and_then(|a| a.clone())
            .filter(|_| own);
        let resp = self.send_once(method, &url, headers, &mut payload, current.as_deref())?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        if !own {
            return Err(RegistryError::Unauthorized(url));
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let authz = match challenge {
            Some(Challenge::Basic) => match &self.creds {
                Some((u, p)) => basic_header(u, p),
                None => return Err(RegistryError::Unauthorized(url)),
            },
            Some(Challenge::Bearer { realm, params }) => self.token(&realm, &params)?,
            None => return Err(RegistryError::Unauthorized(url)),
        };
        if current.as_deref() == Some(authz.as_str()) {
            return Err(RegistryError::Unauthorized(url));
        }
        if let Ok(mut a) = self.authz.lock() {
            *a = Some(authz.clone());
        }
        if matches!(payload, Payload::Reader(_)) {
            return Err(RegistryError::Protocol(format!(
                "{url}: authentication was asked in the middle of an upload"
            )));
        }
        let resp = self.send_once(method, &url, headers, &mut payload, Some(&authz))?;
        if resp.status().as_u16() == 401 {
            return Err(RegistryError::Unauthorized(url));
        }
        Ok(resp)
    }

    /// Checks that the registry speaks the v2 API and the credentials are accepted.
    pub fn ping(&self) -> Result<()> {
        let mut r = self.request("GET", "/v2/", &[], Payload::Empty)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(status_error(&self.url("/v2/"), &mut r))
        }
    }
}

/// An error for an unexpected status, with the registry's own error message.
pub fn status_error(url: &str, r: &mut Response<Body>) -> RegistryError {
    let status = r.status().as_u16();
    if status == 404 {
        return RegistryError::NotFound(url.to_string());
    }
    if status == 401 || status == 403 {
        return RegistryError::Unauthorized(url.to_string());
    }
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    let what = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    RegistryError::Status {
        url: url.to_string(),
        status,
        what,
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of an absolute URL, lower-cased, the port made explicit.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let auth = rest.split(['/', '?', '#']).next()?;
    // Userinfo is never part of where a request goes.
    let auth = auth.rsplit('@').next()?.to_ascii_lowercase();
    if auth.is_empty() {
        return None;
    }
    let has_port = match auth.rfind(':') {
        Some(i) => !auth[i..].contains(']'),
        None => false,
    };
    let default = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    Some(if has_port {
        format!("{scheme}://{auth}")
    } else {
        format!("{scheme}://{auth}:{default}")
    })
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("http://127.0.0.1:5000/v2/"),
            Some("http://127.0.0.1:5000".into())
        );
        assert_eq!(
            origin("https://Reg.example/x"),
            origin("https://reg.example:443/y")
        );
        assert_ne!(
            origin("http://reg.example/x"),
            origin("https://reg.example/x")
        );
        assert_ne!(
            origin("http://127.0.0.1:5000/"),
            origin("http://127.0.0.2:5000/")
        );
        assert_eq!(
            origin("http://evil@127.0.0.1:5000/"),
            origin("http://127.0.0.1:5000/")
        );
        assert_eq!(origin("/v2/relative"), None);
        assert_eq!(origin("ftp://x/"), None);
        let c = Client::new("127.0.0.1:5000", false, Some(("u".into(), "p".into())));
        assert!(c.same_origin("http://127.0.0.1:5000/v2/t/blobs/uploads/1"));
        assert!(!c.same_origin("http://127.0.0.1:5001/upload"));
        assert!(!c.same_origin("http://127.0.0.1.evil:5000/upload"));
    }
}
