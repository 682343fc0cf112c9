//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`.

use crate::router::{Call, Reply};
use crate::ApiResult;
use serde_json::json;
use std::io::Write;

pub fn ping(req: &crate::http::Request) -> Reply {
    let body: &[u8] = if req.method == "HEAD" { b"" } else { b"OK" };
    Reply::Full {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        headers: vec![
            (
                "Cache-Control",
                "no-cache, no-store, must-revalidate".into(),
            ),
            ("Pragma", "no-cache".into()),
        ],
        body: body.to_vec(),
    }
}

fn kernel() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub fn version(_c: &mut Call<'_>) -> ApiResult<Reply> {
    let v = env!("CARGO_PKG_VERSION");
    Ok(Reply::Json(
        200,
        json!({
            "Platform": {"Name": "strata"},
            "Components": [{"Name": "Engine", "Version": v, "Details": {"ApiVersion": crate::API_VERSION, "MinAPIVersion": crate::MIN_API_VERSION, "Os": "linux", "Arch": "amd64", "KernelVersion": kernel()}}],
            "Version": v,
            "ApiVersion": crate::API_VERSION,
            "MinAPIVersion": crate::MIN_API_VERSION,
            "GitCommit": "strata",
            "GoVersion": "rust",
            "Os": "linux",
            "Arch": std::env::consts::ARCH.replace("x86_64", "amd64"),
            "KernelVersion": kernel(),
            "BuildTime": "",
        }),
    ))
}

pub fn info(c: &mut Call<'_>) -> ApiResult<Reply> {
    let info = c.engine.info()?;
    let all = c.engine.containers(true)?;
    let running = all.iter().filter(|v| v.state.is_running()).count();
    let status: Vec<[String; 2]> = info
        .driver_status
        .iter()
        .map(|(k, v)| [k.clone(), v.clone()])
        .collect();
    let mem = super::total_memory();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Ok(Reply::Json(
        200,
        json!({
            "ID": "strata",
            "Containers": info.containers,
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": all.len() - running,
            "Images": info.images,
            "Driver": info.driver,
            "DriverStatus": status,
            "DockerRootDir": info.data_root,
            "MemoryLimit": true,
            "SwapLimit": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "PidsLimit": true,
            "OomKillDisable": false,
            "Debug": false,
            "NFd": 0,
            "NGoroutines": 0,
            "SystemTime": rfc3339_now(),
            "LoggingDriver": c.engine.config().log.driver,
            "CgroupDriver": "cgroupfs",
            "KernelVersion": kernel(),
            "OperatingSystem": "strata",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem,
            "Name": host,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "SecurityOptions": info.security_options,
            "Plugins": {"Volume": ["local"], "Network": ["none", "host"], "Log": ["json-file", "local", "none"]},
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
            "Runtimes": {"strata": {"path": "strata"}},
            "DefaultRuntime": "strata",
            "Swarm": {"LocalNodeState": "inactive"},
            "Labels": [],
            "Warnings": [],
        }),
    ))
}

fn rfc3339_now() -> String {
    super::rfc3339(layerstore::now())
}

pub fn df(c: &mut Call<'_>) -> ApiResult<Reply> {
    let images = super::images::summaries(c.engine, c.version)?;
    let nets = c.engine.network_list()?;
    let containers: Vec<_> = c
        .engine
        .containers(true)?
        .iter()
        .map(|v| super::containers::summary(v, &nets))
        .collect();
    let volumes: Vec<_> = c
        .engine
        .volumes()?
        .iter()
        .map(super::volumes::volume_doc)
        .collect();
    let layers: u64 = c
        .engine
        .disk_usage()?
        .iter()
        .filter(|r| r.kind == "Images")
        .map(|r| r.size)
        .sum();
    Ok(Reply::Json(
        200,
        json!({"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}),
    ))
}

/// Docker's JSON for one event.
fn event_doc(e: &engine::events::Event) -> serde_json::Value {
    let mut attrs = serde_json::Map::new();
    if !e.name.is_empty() {
        attrs.insert("name".into(), e.name.clone().into());
    }
    if let Some(code) = e.exit_code {
        attrs.insert("exitCode".into(), code.to_string().into());
    }
    json!({
        "Type": e.typ, "Action": e.action, "status": e.action, "id": e.id,
        "Actor": {"ID": e.id, "Attributes": attrs},
        "scope": "local",
        "time": (e.time_nano / 1_000_000_000) as u64,
        "timeNano": e.time_nano as u64,
    })
}

/// How often a follower with nothing to send looks whether its client is still there.
const FOLLOW_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Events since `since`; up to `until`, or followed (streamed as they happen) without it.
pub fn events(c: &mut Call<'_>) -> ApiResult<Reply> {
    let num = |k: &str| {
        c.req
            .param(k)
            .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
    };
    let (since, until) = (num("since"), num("until"));
    let filters = super::filter::Filters::parse(
        c.req.param("filters"),
        &[
            "config",
            "container",
            "daemon",
            "event",
            "image",
            "label",
            "network",
            "node",
            "plugin",
            "scope",
            "secret",
            "service",
            "type",
            "volume",
        ],
    )?;
    // An object filter matches events of that type by id (prefix) or name; the kinds strata
    // has no events of (swarm's, plugins, the daemon) match none.
    let object = |kind: &str, e: &engine::events::Event| {
        filters.get(kind).is_none_or(|t| {
            e.typ == kind
                && t.iter()
                    .any(|x| e.id.starts_with(x.as_str()) || *x == e.name)
        })
    };
    let keep = |e: &engine::events::Event| {
        filters.get("type").is_none_or(|t| t.contains(&e.typ))
            && filters.get("event").is_none_or(|t| {
                // `health_status` matches `health_status: healthy`, as dockerd's filter.
                let kind = e.action.split(':').next().unwrap_or("");
                t.iter().any(|x| *x == e.action || x == kind)
            })
            && ["container", "image", "network", "volume"]
                .iter()
                .all(|k| object(k, e))
            && [
                "config", "daemon", "node", "plugin", "secret", "service", "label",
            ]
            .iter()
            .all(|k| filters.get(k).is_none())
            && filters
                .get("scope")
                .is_none_or(|s| s.iter().any(|x| x == "local"))
    };
    let (engine, alive) = (c.engine, c.alive);
    let mut w = c.resp.stream(200, "application/json", &[])?;
    let mut send = |e: &engine::events::Event| {
        if !keep(e) {
            return true;
        }
        let mut line = event_doc(e).to_string();
        line.push('\n');
        w.write_all(line.as_bytes()).and_then(|_| w.flush()).is_ok()
    };
    // Followers join the feed before reading the file, so nothing recorded in between is
    // missed; what both hold is sent once (by time).
    let feed = until.is_none().then(|| engine.event_feed());
    let mut cursor = feed.as_ref().map(|f| f.cursor());
    let mut last_nano = 0u128;
    // As dockerd: past events when a window is asked for, else only new ones.
    if since.is_some() || until.is_some() {
        for e in engine.events(since, until)? {
            last_nano = last_nano.max(e.time_nano);
            if !send(&e) {
                return Ok(Reply::Sent);
            }
        }
    }
    if let (Some(feed), Some(cursor)) = (feed, cursor.as_mut()) {
        while alive() {
            for e in feed.next_after(cursor, FOLLOW_CHECK) {
                if e.time_nano <= last_nano {
                    continue;
                }
                if !send(&e) {
                    return Ok(Reply::Sent);
                }
            }
        }
        return Ok(Reply::Sent);
    }
    w.finish()?;
    Ok(Reply::Sent)
}
