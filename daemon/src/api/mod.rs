//! The Docker Engine API's endpoints, one module per resource.

pub mod archive;
pub mod build;
pub mod containers;
pub mod create;
pub mod exec;
pub mod filter;
pub mod images;
pub mod networks;
pub mod system;
pub mod volumes;

/// A JSON string array (or one string) as strings; anything else is empty.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// A non-empty JSON string, if that is what `v` is.
pub fn opt_str(v: &serde_json::Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The host's memory in bytes (`MemTotal`).
pub fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Docker's time format for a time in seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    layerstore::export::rfc3339(secs)
}

/// A JSON object of strings (`Labels`) as a map; anything else is empty, a non-string
/// value an empty string.
pub fn string_map(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A file for a request body or a response being made (image archives), in the data
/// root's own staging folder (same filesystem, root-only); removed when dropped.
pub struct Staged {
    pub path: std::path::PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = fsutil::remove_tree(&self.path);
    }
}

fn staging_dir(engine: &engine::Engine) -> std::path::PathBuf {
    engine.config().data_root.join("daemon-tmp")
}

/// Removes what a daemon that died left staged.
pub fn staging_clean(engine: &engine::Engine) {
    let _ = fsutil::remove_tree(staging_dir(engine));
}

/// A fresh staging path named `name` (nothing is created).
pub fn staged(engine: &engine::Engine, name: &str) -> crate::ApiResult<Staged> {
    let dir = staging_dir(engine);
    std::fs::create_dir_all(&dir)?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Staged {
        path: dir.join(format!("{}-{n}-{name}", std::process::id())),
    })
}

/// Copies the request body to a staged file.
pub fn stage_body(c: &mut crate::router::Call<'_>, name: &str) -> crate::ApiResult<Staged> {
    let s = staged(c.engine, name)?;
    let mut f = std::fs::File::create(&s.path)?;
    std::io::copy(&mut c.body, &mut f)
        .map_err(|e| crate::ApiError::bad(format!("reading the request body: {e}")))?;
    Ok(s)
}

/// Streams a tar that `write` makes as the response body (chunked, through a 256 KiB
/// buffer), so nothing is staged; once the head is out, a failure (a client gone) can
/// only end the stream short, and is logged as `what`.
pub fn stream_tar(
    c: &mut crate::router::Call<'_>,
    headers: &[(&str, String)],
    what: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> crate::ApiResult<crate::router::Reply> {
    let mut w = c.resp.stream(200, "application/x-tar", headers)?;
    let sent = (|| {
        let mut b = std::io::BufWriter::with_capacity(1 << 18, &mut w);
        write(&mut b)?;
        b.into_inner().map_err(|e| e.into_error()).map(drop)
    })();
    match sent {
        Ok(()) => {
            w.finish()?;
            Ok(crate::router::Reply::Sent)
        }
        Err(e) => {
            tracing::warn!("{what}: {e}");
            Ok(crate::router::Reply::Sent)
        }
    }
}

/// Streams a file as the response body (chunked), e.g. an image archive.
pub fn stream_file(
    c: &mut crate::router::Call<'_>,
    path: &std::path::Path,
    content_type: &str,
) -> crate::ApiResult<crate::router::Reply> {
    let mut f = std::fs::File::open(path)?;
    let mut w = c.resp.stream(200, content_type, &[])?;
    if std::io::copy(&mut f, &mut w).is_err() {
        return Ok(crate::router::Reply::Sent);
    }
    w.finish()?;
    Ok(crate::router::Reply::Sent)
}

/// A value as base64 of its JSON, as Docker sends stats in headers
/// (`X-Docker-Container-Path-Stat`).
pub fn base64_json<T: serde::Serialize>(v: &T) -> crate::ApiResult<String> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(v)?))
}
