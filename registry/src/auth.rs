//! Credentials (Docker's `config.json` `auths` format, file mode 0600) and the
//! `WWW-Authenticate` challenges of the distribution spec (Basic, and Bearer tokens).

use crate::error::{RegistryError, Result};
use base64::Engine;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The default credentials file: `$HOME/.config/strata/auth.json`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".config/strata/auth.json")
}

/// Stored credentials by registry host.
#[derive(Debug, Default, Clone)]
pub struct AuthFile {
    path: PathBuf,
    doc: serde_json::Value,
}

impl AuthFile {
    /// Reads `path` (empty when missing).
    pub fn load(path: &Path) -> Result<AuthFile> {
        let doc = match std::fs::read(path) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| {
                RegistryError::Protocol(format!("{}: not a credentials file: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(RegistryError::io("read", path.display(), e)),
        };
        Ok(AuthFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The user and password stored for `registry`.
    pub fn get(&self, registry: &str) -> Option<(String, String)> {
        let auth = self.doc["auths"][registry]["auth"].as_str()?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// Stores credentials for `registry` and writes the file (0600, temp + rename).
    pub fn set(&mut self, registry: &str, user: &str, password: &str) -> Result<()> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if !self.doc["auths"].is_object() {
            self.doc["auths"] = serde_json::json!({});
        }
        self.doc["auths"][registry] = serde_json::json!({ "auth": auth });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::io("create", dir.display(), e))?;
        let data = serde_json::to_vec_pretty(&self.doc)
            .map_err(|e| RegistryError::Protocol(e.to_string()))?;
        // A new 0600 file under an unpredictable name (O_EXCL: never through a symlink).
        let (mut f, tmp) = fsutil::create_temp_beside(&self.path)
            .map_err(|e| RegistryError::io("create a temp file beside", self.path.display(), e))?;
        let mut write = || -> std::io::Result<()> {
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            RegistryError::io("write", self.path.display(), e)
        })
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        params: BTreeMap<String, String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        params.insert(k, v.to_string());
        s = next.trim_start_matches(',').trim();
    }
    let realm = params.remove("realm")?;
    Some(Challenge::Bearer { realm, params })
}

/// `Authorization: Basic` for `user:password`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge("Basic realm=\"r\""), Some(Challenge::Basic));
        let c = parse_challenge("Bearer realm=\"https://auth/token\",service=\"reg\",scope=\"repository:a/b:pull,push\"").unwrap();
        match c {
            Challenge::Bearer { realm, params } => {
                assert_eq!(realm, "https://auth/token");
                assert_eq!(params["service"], "reg");
                assert_eq!(params["scope"], "repository:a/b:pull,push");
            }
            _ => panic!(),
        }
    }
}
