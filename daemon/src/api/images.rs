//! `/images/...`: list, inspect, history, tag, remove, load, get (save), create (pull or
//! import), push, prune.

use super::filter::Filters;
use super::{stage_body, staged, stream_file};
use crate::router::{ApiVersion, Call, Reply};
use crate::{ApiError, ApiResult};
use engine::Engine;
use serde_json::{json, Value};

/// Docker's image summary of every image, as API `version` shapes it.
pub fn summaries(engine: &Engine, version: ApiVersion) -> ApiResult<Vec<Value>> {
    let in_use: Vec<String> = engine
        .containers(true)?
        .into_iter()
        .map(|v| v.record.image.to_string())
        .collect();
    Ok(engine
        .images()?
        .into_iter()
        .map(|i| {
            let digests: Vec<String> = i
                .names
                .iter()
                .map(|n| format!("{}@{}", layerstore::refs::split(n).0, i.manifest_digest))
                .collect();
            let mut doc = json!({
                "Id": i.id,
                "ParentId": "",
                "RepoTags": i.names,
                "RepoDigests": digests,
                "Created": i.created.as_deref().and_then(engine::images::parse_rfc3339).unwrap_or(0),
                "Size": i.size,
                "SharedSize": -1,
                "Labels": i.labels,
                "Containers": in_use.iter().filter(|x| **x == i.id).count(),
            });
            if !version.at_least(44) {
                doc["VirtualSize"] = json!(i.size);
            }
            doc
        })
        .collect())
}

pub fn list(c: &mut Call<'_>) -> ApiResult<Reply> {
    let filters = Filters::parse(
        c.req.param("filters"),
        &[
            "before",
            "dangling",
            "label",
            "label!",
            "reference",
            "since",
            "until",
        ],
    )?;
    let mut all = summaries(c.engine, c.version)?;
    if let Some(want) = filters.bool("dangling")? {
        all.retain(|i| i["RepoTags"].as_array().is_none_or(|a| a.is_empty()) == want);
    }
    // before/since: an image by reference, compared by creation time.
    for (k, earlier) in [("before", true), ("since", false)] {
        if let Some(r) = filters.get(k).and_then(|v| v.first()) {
            let t = c.engine.image_json(r)?["Created"]
                .as_str()
                .and_then(engine::images::parse_rfc3339)
                .unwrap_or(0) as i64;
            all.retain(|i| {
                let mine = i["Created"].as_i64().unwrap_or(0);
                if earlier {
                    mine < t
                } else {
                    mine > t
                }
            });
        }
    }
    let mut kept = Vec::new();
    for i in all {
        if filters.before_until(i["Created"].as_f64().unwrap_or(0.0))?
            && filters.labels_match(&super::string_map(&i["Labels"]))
        {
            kept.push(i);
        }
    }
    let mut all = kept;
    if let Some(refs) = filters.get("reference") {
        all.retain(|i| {
            i["RepoTags"].as_array().is_some_and(|tags| {
                tags.iter().filter_map(Value::as_str).any(|t| {
                    refs.iter().any(|r| {
                        let (rn, rt) = r.split_once(':').unwrap_or((r, ""));
                        let (tn, tt) = layerstore::refs::split(t);
                        glob(rn, tn) && (rt.is_empty() || glob(rt, tt))
                    })
                })
            })
        });
    }
    for i in &mut all {
        if i["RepoTags"].as_array().is_some_and(|a| a.is_empty()) {
            i["RepoTags"] = json!(["<none>:<none>"]);
            i["RepoDigests"] = json!(["<none>@<none>"]);
        }
    }
    Ok(Reply::Json(200, Value::Array(all)))
}

/// Shell-style `*` matching for reference filters.
fn glob(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((pre, rest)) => {
            s.starts_with(pre) && (0..=s.len() - pre.len()).any(|i| glob(rest, &s[pre.len() + i..]))
        }
    }
}

pub fn inspect(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    let mut doc = c.engine.image_json(name)?;
    let created = doc["Created"].clone();
    doc["Parent"] = json!("");
    doc["Comment"] = json!("");
    // Gone from dockerd's answer in 1.45 (Container, ContainerConfig) and 1.44
    // (VirtualSize); older clients still get them.
    if !c.version.at_least(45) {
        doc["Container"] = json!("");
        doc["ContainerConfig"] = doc["Config"].clone();
    }
    doc["DockerVersion"] = json!("");
    doc["Author"] = json!("");
    if !c.version.at_least(44) {
        doc["VirtualSize"] = doc["Size"].clone();
    }
    doc["Metadata"] = json!({"LastTagTime": created});
    Ok(Reply::Json(200, doc))
}

pub fn history(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    let (_, rows) = c.engine.history(name)?;
    let doc = c.engine.image_json(name)?;
    let (id, tags) = (doc["Id"].clone(), doc["RepoTags"].clone());
    let out: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "Id": if i == 0 { id.clone() } else { json!("<missing>") },
                "Created": h.created.as_deref().and_then(engine::images::parse_rfc3339).unwrap_or(0),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": if i == 0 { tags.clone() } else { Value::Null },
                "Size": h.size,
                "Comment": h.comment.clone().unwrap_or_default(),
            })
        })
        .collect();
    Ok(Reply::Json(200, Value::Array(out)))
}

pub fn tag(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    let repo = c
        .req
        .param("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad("repo is required"))?;
    let target = match c.req.param("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    c.engine.tag(name, &target)?;
    Ok(Reply::Empty(201))
}

pub fn remove(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    let lines = c.engine.remove_image(name, c.req.flag("force"))?;
    let out: Vec<Value> = lines
        .iter()
        .filter_map(|l| {
            if let Some(t) = l.strip_prefix("Untagged: ") {
                Some(json!({"Untagged": t}))
            } else {
                l.strip_prefix("Deleted: ").map(|d| json!({"Deleted": d}))
            }
        })
        .collect();
    Ok(Reply::Json(200, Value::Array(out)))
}

/// Writes a JSON-lines progress stream (what `docker load` and `pull` print).
fn progress_stream(lines: &[Value]) -> ApiResult<Reply> {
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l.to_string().as_bytes());
        body.push(b'\n');
    }
    Ok(Reply::Bytes(200, "application/json", body))
}

pub fn load(c: &mut Call<'_>) -> ApiResult<Reply> {
    let file = stage_body(c, "load.tar")?;
    let loaded = match c.engine.load(&file.path, None) {
        Ok(l) => l,
        // Docker answers a bad archive inside the stream, after a 200.
        Err(e) => {
            return progress_stream(&[
                json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}),
            ])
        }
    };
    let mut lines = Vec::new();
    for l in loaded {
        if l.names.is_empty() {
            lines.push(json!({"stream": format!("Loaded image ID: {}\n", l.id)}));
        }
        for n in &l.names {
            lines.push(json!({"stream": format!("Loaded image: {n}\n")}));
        }
    }
    progress_stream(&lines)
}

pub fn get(c: &mut Call<'_>, name: Option<&str>) -> ApiResult<Reply> {
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => c
            .req
            .query
            .iter()
            .filter(|(k, _)| k == "names")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    if names.is_empty() {
        return Err(ApiError::bad("give the images to save with names="));
    }
    let out = staged(c.engine, "save.tar")?;
    c.engine
        .save(&names, &out.path, layerstore::export::Format::Docker)?;
    stream_file(c, &out.path, "application/x-tar")
}

/// The credentials of `X-Registry-Auth` (base64 JSON with `username` and `password`).
fn registry_auth(c: &Call<'_>) -> ApiResult<Option<(String, String)>> {
    let Some(h) = c
        .req
        .header("x-registry-auth")
        .filter(|h| !h.trim().is_empty())
    else {
        return Ok(None);
    };
    let raw = decode_auth(h).ok_or_else(|| ApiError::bad("X-Registry-Auth is not base64"))?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad(format!("X-Registry-Auth is not JSON: {e}")))?;
    match (v["username"].as_str(), v["password"].as_str()) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some((u.to_string(), p.to_string()))),
        _ => Ok(None),
    }
}

/// `X-Registry-Auth` as clients send it: URL-safe base64 (the docker CLI) or standard
/// (some SDKs), padded or not.
fn decode_auth(h: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let t = h.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| STANDARD_NO_PAD.decode(t))
        .ok()
}

/// Plain HTTP for registries on loopback (Docker treats 127.0.0.0/8 as insecure).
fn connection_for(reference: &str) -> engine::registry::Connection {
    let host = reference.split('/').next().unwrap_or("");
    let local = reference.contains('/')
        && (host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]"));
    engine::registry::Connection {
        tls_verify: !local,
        authfile: None,
        credentials: None,
    }
}

pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    if let Some(src) = c.req.param("fromSrc") {
        if src != "-" {
            return Err(ApiError::new(
                501,
                "importing from a URL is not supported: send the tar as the body (fromSrc=-)",
            ));
        }
        let repo = c.req.param("repo").unwrap_or("").to_string();
        let tag = c.req.param("tag").filter(|t| !t.is_empty());
        // `repo` may carry its tag already (the docker CLI sends `repo=name:tag`).
        let reference = match (repo.is_empty(), tag) {
            (true, _) => format!("import-{}:{}", layerstore::now(), tag.unwrap_or("latest")),
            (false, Some(t)) => format!("{repo}:{t}"),
            (false, None) => repo,
        };
        let file = stage_body(c, "import.tar")?;
        let l = c
            .engine
            .import(&file.path, &reference, &c.req.params("changes"))?;
        return progress_stream(&[json!({"status": l.id.to_string()})]);
    }
    let image = c
        .req
        .param("fromImage")
        .ok_or_else(|| ApiError::bad("give fromImage or fromSrc"))?
        .to_string();
    let reference = match c.req.param("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    let mut conn = connection_for(&reference);
    conn.credentials = registry_auth(c)?;
    match c.engine.pull(&reference, None, &conn, None) {
        Ok(l) => progress_stream(&[
            json!({"status": format!("Pulling from {image}")}),
            json!({"status": format!("Digest: {}", l.id)}),
            json!({"status": format!("Status: Downloaded newer image for {reference}")}),
        ]),
        Err(e) if e.kind() == engine::ErrorKind::NotFound => Err(e.into()),
        Err(e) => progress_stream(&[
            json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}),
        ]),
    }
}

pub fn push(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    let reference = match c.req.param("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let mut conn = connection_for(&reference);
    conn.credentials = registry_auth(c)?;
    match c.engine.push(&reference, None, &conn) {
        Ok(rep) => progress_stream(&[
            json!({"status": format!("The push refers to repository [{name}]")}),
            json!({"status": format!("{}: digest: {} size: 0", c.req.param("tag").unwrap_or("latest"), rep.digest)}),
            json!({"progressDetail": {}, "aux": {"Tag": c.req.param("tag").unwrap_or("latest"), "Digest": rep.digest.to_string(), "Size": 0}}),
        ]),
        Err(e) => progress_stream(&[
            json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()}),
        ]),
    }
}

/// Removes dangling images (no name, no container) or, with `dangling=false`, every image
/// no container uses.
pub fn prune(c: &mut Call<'_>) -> ApiResult<Reply> {
    let filters = Filters::parse(
        c.req.param("filters"),
        &["dangling", "until", "label", "label!"],
    )?;
    let all_unused = filters.bool("dangling")? == Some(false);
    let mut deleted = Vec::new();
    for i in summaries(c.engine, c.version)? {
        let unnamed = i["RepoTags"].as_array().is_none_or(|a| a.is_empty());
        if i["Containers"].as_u64().unwrap_or(0) > 0
            || !(unnamed || all_unused)
            || !filters.labels_match(&super::string_map(&i["Labels"]))
            || !filters.before_until(i["Created"].as_f64().unwrap_or(0.0))?
        {
            continue;
        }
        let id = i["Id"].as_str().unwrap_or("").to_string();
        if let Ok(lines) = c.engine.remove_image(&id, true) {
            for l in lines {
                if let Some(t) = l.strip_prefix("Untagged: ") {
                    deleted.push(json!({"Untagged": t}));
                } else if let Some(d) = l.strip_prefix("Deleted: ") {
                    deleted.push(json!({"Deleted": d}));
                }
            }
        }
    }
    let (_, blobs) = c.engine.prune()?;
    let _ = blobs;
    Ok(Reply::Json(
        200,
        json!({"ImagesDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

/// `/auth`: checks credentials against a registry (the client keeps them).
pub fn auth(c: &mut Call<'_>) -> ApiResult<Reply> {
    let b = c.json()?;
    let user = b["username"].as_str().unwrap_or("");
    let pass = b["password"].as_str().unwrap_or("");
    let server = b["serveraddress"].as_str().unwrap_or("");
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2");
    if user.is_empty() || host.is_empty() {
        return Err(ApiError::bad("give username, password and serveraddress"));
    }
    let conn = connection_for(&format!("{host}/x"));
    c.engine
        .verify_login(host, user, pass, &conn)
        .map_err(|e| ApiError::new(401, e.to_string()))?;
    Ok(Reply::Json(
        200,
        json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
