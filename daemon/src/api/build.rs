//! `POST /build`: the context arrives as a tar (plain, gzip or zstd), is unpacked into
//! the daemon's staging folder through the layer applier (nothing outside it can be
//! written), and the engine's build runs on it while its progress streams back as the
//! JSON messages `docker build` prints (`stream`, `aux` with the image id, and
//! `errorDetail` with the failed step's exit code).

use super::{stage_body, staged};
use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use engine::build::{BuildEvent, BuildOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;

/// A JSON object query parameter of string values (`buildargs`, `labels`).
fn map_param(c: &Call<'_>, name: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = c.req.param(name).filter(|r| !r.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad(format!("invalid {name} {raw:?}: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(format!("invalid {name}: give a JSON object")))?;
    // A build arg given without a value (`null`) is not set.
    Ok(obj
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect())
}

fn flag(c: &Call<'_>, name: &str) -> bool {
    matches!(c.req.param(name), Some("1" | "true" | "True"))
}

/// One message of the progress stream.
enum Msg {
    Text(String),
    Built(String),
}

pub fn build(c: &mut Call<'_>) -> ApiResult<Reply> {
    if c.req.param("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::new(
            501,
            "building from a remote context is not supported: send the context as the body",
        ));
    }
    if let Some(p) = c.req.param("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux/amd64") && p != "linux" {
            return Err(ApiError::bad(format!(
                "platform {p}: this daemon builds linux/amd64 only"
            )));
        }
    }
    let dockerfile = c
        .req
        .param("dockerfile")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d.trim_start_matches('/')));
    let mut o = BuildOptions {
        dockerfile,
        tags: c.req.params("t"),
        build_args: map_param(c, "buildargs")?,
        target: c
            .req
            .param("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        no_cache: flag(c, "nocache"),
        network: c
            .req
            .param("networkmode")
            .filter(|n| !n.is_empty() && *n != "default")
            .unwrap_or("bridge")
            .to_string(),
        labels: map_param(c, "labels")?,
        ..Default::default()
    };
    let quiet = flag(c, "q");
    // The context, unpacked where nothing of it can reach outside the folder.
    let tar = stage_body(c, "build-context.tar")?;
    let dir = staged(c.engine, "build-context")?;
    std::fs::create_dir(&dir.path)?;
    engine::build::context::unpack_context(&tar.path, &dir.path)?;
    drop(tar);
    o.context = dir.path.clone();

    let (tx, rx) = mpsc::channel::<Msg>();
    let out: engine::build::BuildOutput = std::sync::Arc::new(move |e| {
        let _ = tx.send(match e {
            BuildEvent::Text(s) => Msg::Text(s.to_string()),
            BuildEvent::Built(id) => Msg::Built(id.to_string()),
        });
    });
    let engine = c.engine;
    let mut w = c.resp.stream(200, "application/json", &[])?;
    let mut gone = false;
    let mut send = |w: &mut crate::respond::BodyWriter, v: Value| {
        if !gone {
            let mut line = v.to_string().into_bytes();
            line.extend_from_slice(b"\r\n");
            // A client that went away does not stop the build; it is just not told.
            gone = w.write_all(&line).and_then(|()| w.flush()).is_err();
        }
    };
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| engine.build(&o, out));
        for m in rx {
            match m {
                Msg::Text(t) if !quiet => send(&mut w, json!({ "stream": t })),
                Msg::Text(_) => {}
                Msg::Built(id) => send(&mut w, json!({"aux": {"ID": id}})),
            }
        }
        h.join()
    });
    match result {
        Ok(Ok(b)) => {
            if quiet {
                send(&mut w, json!({"stream": format!("{}\n", b.id)}));
            }
        }
        Ok(Err(e)) => {
            let code = match e.root() {
                engine::EngineError::StepFailed { code, .. } => *code,
                _ => 1,
            };
            let msg = e.to_string();
            send(
                &mut w,
                json!({"errorDetail": {"message": msg, "code": code}, "error": msg}),
            );
        }
        Err(_) => send(
            &mut w,
            json!({"errorDetail": {"message": "the build failed unexpectedly"}, "error": "the build failed unexpectedly"}),
        ),
    }
    if !gone {
        w.finish()?;
    }
    Ok(Reply::Sent)
}
