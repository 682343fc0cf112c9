//! `/containers/...`: create, list, inspect, start, stop, restart, kill, wait, logs,
//! attach, changes, export, top, remove, prune, and `/commit`.

use super::filter::Filters;
use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use engine::containers::{ContainerView, LogOptions, LogSinks, StartOptions};
use engine::Status;
use network::records::NetworkRecord;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    let body = c.json()?;
    if !body.is_object() {
        return Err(ApiError::bad(
            "the body must be a container config (JSON object)",
        ));
    }
    let name = c
        .req
        .param("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.trim_start_matches('/').to_string());
    let o = super::create::options(name, body)?;
    let rec = c.engine.create_container(&o)?;
    Ok(Reply::Json(201, json!({"Id": rec.id, "Warnings": []})))
}

/// The `Ports` list of a container's summary from inspect's `Ports` map.
fn ports_list(ports: &Value) -> Value {
    let mut out = Vec::new();
    for (key, bindings) in ports.as_object().into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let port: u16 = port.parse().unwrap_or(0);
        for b in bindings.as_array().into_iter().flatten() {
            out.push(json!({
                "IP": b["HostIp"],
                "PrivatePort": port,
                "PublicPort": b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()),
                "Type": proto,
            }));
        }
    }
    json!(out)
}

/// Docker's list entry for a container.
pub fn summary(v: &ContainerView, nets: &[NetworkRecord]) -> Value {
    let spec = v.bundle.spec_shared().ok();
    let args: Vec<String> = spec
        .as_ref()
        .and_then(|s| s.process().as_ref().and_then(|p| p.args().clone()))
        .unwrap_or_default();
    let status = v.status_text();
    let hc = v.bundle.host_config_shared();
    let ns = v.network_settings_in(nets);
    json!({
        "Id": v.record.id,
        "Names": [format!("/{}", v.record.name)],
        "Image": v.record.image_ref,
        "ImageID": v.record.image.to_string(),
        "Command": args.join(" "),
        "Created": v.record.created,
        "State": v.state_word(),
        "Status": status,
        "Ports": ports_list(&ns["Ports"]),
        "Labels": hc.get("Labels").cloned().unwrap_or_else(|| json!({})),
        "SizeRw": 0,
        "HostConfig": {"NetworkMode": hc.get("NetworkMode").cloned().unwrap_or_else(|| json!("none"))},
        "NetworkSettings": {"Networks": ns["Networks"]},
        "Mounts": [],
    })
}

/// When container `v` was made, as finely as the host tells (its folder's birth time;
/// the record keeps whole seconds): what `before`/`since` order by.
fn created_at(v: &ContainerView) -> f64 {
    std::fs::metadata(v.bundle.dir())
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(v.record.created as f64)
}

/// The container filters dockerd's list takes.
const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// The container list's filters, checked and resolved once per request (the images and
/// containers they name are looked up here, not for each container listed).
struct ListFilter<'a> {
    f: &'a Filters,
    exited: Vec<i32>,
    /// Image ids `ancestor` names.
    ancestors: Vec<String>,
    /// Creation times of the containers `before` and `since` name.
    before: Option<f64>,
    since: Option<f64>,
}

impl<'a> ListFilter<'a> {
    fn new(c: &Call<'_>, f: &'a Filters) -> ApiResult<ListFilter<'a>> {
        for st in f.get("status").into_iter().flatten() {
            if !matches!(
                st.as_str(),
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                return Err(ApiError::bad(format!("Invalid filter 'status={st}'")));
            }
        }
        for h in f.get("health").into_iter().flatten() {
            if !matches!(h.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(ApiError::bad(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        let mut exited = Vec::new();
        for e in f.get("exited").into_iter().flatten() {
            exited.push(
                e.parse::<i32>()
                    .map_err(|_| ApiError::bad(format!("Invalid filter 'exited={e}'")))?,
            );
        }
        let ancestors = f
            .get("ancestor")
            .into_iter()
            .flatten()
            .filter_map(|a| c.engine.image_json(a).ok())
            .filter_map(|d| d["Id"].as_str().map(str::to_string))
            .collect();
        let order = |k: &str| -> ApiResult<Option<f64>> {
            match f.get(k).and_then(|vs| vs.first()) {
                None => Ok(None),
                Some(other) => Ok(Some(created_at(&c.engine.container(other)?))),
            }
        };
        Ok(ListFilter {
            f,
            exited,
            ancestors,
            before: order("before")?,
            since: order("since")?,
        })
    }

    /// Whether container `v` passes (values of one key: any matches; keys: all must). Its
    /// files are read only for the filters that need them; `nets` are the networks, read
    /// once per listing.
    fn matches(&self, v: &ContainerView, nets: &[network::records::NetworkRecord]) -> bool {
        let f = self.f;
        if f.0.is_empty() {
            return true;
        }
        let any =
            |k: &str, m: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|vs| vs.iter().any(|x| m(x)));
        let me = || created_at(v);
        let port_key = |p: &str| {
            if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            }
        };
        let cheap = any("id", &|x| v.record.id.starts_with(x))
            && any("name", &|x| {
                v.record.name.contains(x.trim_start_matches('/'))
            })
            && any("status", &|x| x == v.state_word())
            && any("health", &|x| x == v.health_word())
            && (self.exited.is_empty()
                || (v.state_word() == "exited"
                    && self.exited.contains(&v.state.exit_code.unwrap_or(0))))
            && (f.get("ancestor").is_none()
                || self.ancestors.contains(&v.record.image.to_string())
                || any("ancestor", &|x| x == v.record.image_ref))
            && self.before.is_none_or(|t| me() < t)
            && self.since.is_none_or(|t| me() > t)
            && any("isolation", &|x| x == "default")
            && any("is-task", &|x| x == "false");
        if !cheap {
            return false;
        }
        if (f.get("label").is_some() || f.get("label!").is_some())
            && !f.labels_match(&super::string_map(&v.bundle.host_config_shared()["Labels"]))
        {
            return false;
        }
        if ["network", "publish", "expose"]
            .iter()
            .any(|k| f.get(k).is_some())
        {
            let ns = v.network_settings_in(nets);
            let ports = ns["Ports"].as_object().cloned().unwrap_or_default();
            let net = any("network", &|x| {
                ns["Networks"].as_object().is_some_and(|m| {
                    m.iter().any(|(name, ep)| {
                        name == x || ep["NetworkID"].as_str().is_some_and(|id| id.starts_with(x))
                    })
                })
            }) && any("publish", &|x| {
                ports.values().any(|b| {
                    b.as_array().is_some_and(|a| {
                        a.iter().any(|b| {
                            b["HostPort"]
                                .as_str()
                                .is_some_and(|hp| port_key(hp) == port_key(x) || hp == x)
                        })
                    })
                })
            }) && any("expose", &|x| ports.contains_key(&port_key(x)));
            if !net {
                return false;
            }
        }
        f.get("volume").is_none() || {
            let mounts = runtime::spec::bind_sources_and_destinations(&v.bundle.spec().ok());
            any("volume", &|x| {
                mounts
                    .iter()
                    .any(|(src, dst)| dst == x || src.ends_with(format!("volumes/{x}/_data")))
            })
        }
    }
}

pub fn list(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(c.req.param("filters"), LIST_FILTERS)?;
    let all = c.req.flag("all") || f.get("status").is_some() || f.get("exited").is_some();
    let lf = ListFilter::new(c, &f)?;
    let mut out: Vec<ContainerView> = c.engine.containers(all)?;
    let nets = c.engine.network_list()?;
    out.retain(|v| lf.matches(v, &nets));
    if let Some(n) = c.req.param("limit").and_then(|l| l.parse::<usize>().ok()) {
        if n > 0 {
            out.truncate(n);
        }
    }
    Ok(Reply::Json(
        200,
        Value::Array(out.iter().map(|v| summary(v, &nets)).collect()),
    ))
}

/// The `Config` fields strata keeps beside the HostConfig (`hostconfig.json`).
const CONFIG_KEYS: &[&str] = &[
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "OpenStdin",
    "StdinOnce",
    "StopSignal",
    "StopTimeout",
    "Healthcheck",
    "Domainname",
    "ExposedPorts",
    "Volumes",
    "Cmd",
    "Entrypoint",
    "Labels",
    "NetworkDisabled",
];

/// Docker's inspect document: the engine's, with Config, Path/Args, Mounts and the
/// fields clients expect.
pub fn inspect_doc(c: &Call<'_>, id: &str) -> ApiResult<Value> {
    let v = c.engine.container(id)?;
    let mut doc = c.engine.container_json(id)?;
    let spec = v.bundle.spec().ok();
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let args: Vec<String> = process
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let env: Vec<String> = process
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let tty = process
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    let hostname = spec
        .as_ref()
        .and_then(|s| s.hostname().clone())
        .unwrap_or_default();
    let mounts: Vec<Value> = spec
        .as_ref()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .filter(|m| m.typ().as_deref() == Some("bind"))
        .map(|m| {
            let src = m.source().clone().unwrap_or_default();
            let ro = m
                .options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            let vol_root = c.engine.config().data_root.join("volumes");
            let name = src
                .strip_prefix(&vol_root)
                .ok()
                .and_then(|p| p.components().next())
                .map(|n| n.as_os_str().to_string_lossy().into_owned());
            json!({
                "Type": if name.is_some() { "volume" } else { "bind" },
                "Name": name.clone().unwrap_or_default(),
                "Source": src,
                "Destination": m.destination(),
                "Driver": if name.is_some() { "local" } else { "" },
                "Mode": if ro { "ro" } else { "" },
                "RW": !ro,
                "Propagation": "rprivate",
            })
        })
        .filter(|m| !m["Source"].as_str().unwrap_or("").starts_with("/proc"))
        .collect();
    // Docker's GraphDriver.Data is a map of strings: the layer's directories.
    let mut data = serde_json::Map::new();
    if let Some(d) = doc["GraphDriver"]["Data"].as_object() {
        for (k, val) in d {
            let s = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            data.insert(k.clone(), json!(s));
        }
    }
    doc["GraphDriver"]["Data"] = Value::Object(data);
    doc["Name"] = json!(format!("/{}", v.record.name));
    doc["Path"] = json!(args.first().cloned().unwrap_or_default());
    doc["Args"] = json!(args.iter().skip(1).collect::<Vec<_>>());
    doc["RestartCount"] = json!(v.state.restart_count);
    doc["State"]["Restarting"] = json!(false);
    doc["Driver"] = doc["GraphDriver"]["Name"].clone();
    doc["Platform"] = json!("linux");
    doc["Mounts"] = json!(mounts);
    doc["State"]["Restarting"] = json!(false);
    doc["State"]["Dead"] = json!(false);
    for t in ["StartedAt", "FinishedAt"] {
        if doc["State"][t].is_null() {
            doc["State"][t] = json!("0001-01-01T00:00:00Z");
        }
    }
    let hc = v.bundle.host_config();
    doc["Config"] = json!({
        "Hostname": hostname,
        "Domainname": "",
        "Image": v.record.image_ref,
        "Cmd": args,
        "Entrypoint": null,
        "Env": env,
        "Tty": tty,
        "User": v.bundle.user(),
        "WorkingDir": process.as_ref().map(|p| p.cwd().to_string_lossy().into_owned()).unwrap_or_default(),
        "Labels": {},
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Volumes": null,
        "OnBuild": null,
    });
    // The Config fields kept with the HostConfig at create (containers made before a
    // field was kept show the defaults above).
    for k in CONFIG_KEYS {
        if let Some(v) = hc.get(*k) {
            let empty_set = v.as_object().is_some_and(|m| m.is_empty());
            let empty_list = v.as_array().is_some_and(|a| a.is_empty());
            doc["Config"][*k] = match *k {
                "Volumes" | "Entrypoint" if empty_set || empty_list => Value::Null,
                _ => v.clone(),
            };
        }
        if let Some(h) = doc["HostConfig"].as_object_mut() {
            h.remove(*k);
        }
    }
    if doc["Config"]["ExposedPorts"]
        .as_object()
        .is_some_and(|m| m.is_empty())
    {
        doc["Config"]
            .as_object_mut()
            .map(|c| c.remove("ExposedPorts"));
    }
    endpoint_names(&mut doc, &v.record.id, &v.record.name, c.version);
    // The HostConfig fields clients read (the SDK reads LogConfig for every `run`).
    let hc_doc = &mut doc["HostConfig"];
    if !hc_doc.is_object() {
        *hc_doc = json!({});
    }
    for (k, v) in [
        ("LogConfig", json!({"Type": "json-file", "Config": {}})),
        (
            "RestartPolicy",
            json!({"Name": "no", "MaximumRetryCount": 0}),
        ),
        ("Binds", Value::Null),
        ("AutoRemove", json!(false)),
        ("PortBindings", json!({})),
    ] {
        if hc_doc.get(k).is_none() {
            hc_doc[k] = v;
        }
    }
    Ok(doc)
}

/// The names each user-defined network resolves the container by, as dockerd shows them
/// per version: `DNSNames` (name, short id, aliases) from 1.44; before 1.45 the short id
/// is also in `Aliases` (from 1.45 `Aliases` is exactly what the client gave).
fn endpoint_names(doc: &mut Value, id: &str, name: &str, version: crate::router::ApiVersion) {
    let short = &id[..id.len().min(12)];
    let Some(nets) = doc["NetworkSettings"]["Networks"].as_object_mut() else {
        return;
    };
    for ep in nets.values_mut() {
        let Some(aliases) = ep["Aliases"].as_array().cloned() else {
            continue; // a built-in network: no names
        };
        if version.at_least(44) {
            let mut names = vec![json!(name), json!(short)];
            names.extend(aliases.iter().filter(|a| **a != json!(name)).cloned());
            ep["DNSNames"] = Value::Array(names);
        }
        if !version.at_least(45) {
            let mut with_id = aliases;
            with_id.push(json!(short));
            ep["Aliases"] = Value::Array(with_id);
        } else if aliases.is_empty() {
            // Exactly what the client gave: none is null, as dockerd shows it.
            ep["Aliases"] = Value::Null;
        }
    }
}

pub fn inspect(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let doc = inspect_doc(c, id)?;
    Ok(Reply::Json(200, doc))
}

pub fn start(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let view = c.engine.container(id)?;
    if view.state.is_running() {
        return Ok(Reply::Empty(304));
    }
    let o = StartOptions {
        remove: view.bundle.host_config_shared()["AutoRemove"]
            .as_bool()
            .unwrap_or(false),
        interactive: false,
    };
    match c.engine.start_detached(id, o) {
        Ok(_) => Ok(Reply::Empty(204)),
        // Docker's clients pick `run`'s exit status (127, 126, else 125) from these words.
        Err(engine::EngineError::Start { message, code, .. }) => {
            let why = match code {
                127 if !message.contains("no such file or directory") => {
                    ": no such file or directory"
                }
                126 if !message.contains("permission denied") => ": permission denied",
                _ => "",
            };
            Err(ApiError::new(
                400,
                format!("failed to create task for container: {message}{why}: unknown"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn stop_secs(c: &Call<'_>) -> Option<u64> {
    c.req
        .param("t")
        .and_then(|t| t.parse::<i64>().ok())
        .map(|t| t.max(0) as u64)
}

pub fn stop(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let was_running = c.engine.container(id)?.state.is_running();
    // Even a container between restarts is stopped (its shim must not start it again).
    c.engine.stop_with(id, stop_secs(c))?;
    Ok(Reply::Empty(if was_running { 204 } else { 304 }))
}

pub fn restart(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.stop_with(id, stop_secs(c))?;
    start(c, id).map(|_| Reply::Empty(204))
}

pub fn kill(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let sig = engine::containers::parse_signal(c.req.param("signal").unwrap_or("KILL"))?;
    c.engine.kill(id, sig)?;
    Ok(Reply::Empty(204))
}

/// The exit status of a container that is gone, from its `die` event.
fn exit_from_events(engine: &engine::Engine, full_id: &str, since_nano: u128) -> Option<i32> {
    engine
        .events(None, None)
        .ok()?
        .into_iter()
        .rev()
        .find(|e| e.id == full_id && e.action == "die" && e.time_nano >= since_nano)
        .and_then(|e| e.exit_code)
}

pub fn wait(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let condition = c
        .req
        .param("condition")
        .unwrap_or("not-running")
        .to_string();
    let view = c.engine.container(id)?;
    let full = view.record.id.clone();
    let t0 = runtime::state::now();
    let t0_nano = (t0 * 1e9) as u128;
    // The status line goes out at once (the docker CLI starts the container meanwhile).
    let mut w = c.resp.stream(200, "application/json", &[])?;
    // The container's folder is watched directly (no store opened per poll); it goes away
    // with the container.
    let bundle = view.bundle.clone();
    let mut watch = engine::containers::watch::FolderWatch::new(bundle.dir());
    let code = loop {
        let state = if bundle.dir().exists() {
            bundle.state().ok()
        } else {
            None
        };
        match state {
            Some(st) => {
                let st = &st;
                // Its exit wakes the wait too (a runner writes nothing when it dies).
                let runner_gone = !watch.runner_alive(st.monitor_pid);
                let exited = st.status == Status::Exited
                    || (st.status == Status::Running && !st.is_running() && runner_gone);
                let done = match condition.as_str() {
                    "next-exit" => exited && st.finished_at.is_some_and(|f| f >= t0),
                    "removed" => false,
                    _ => st.status != Status::Running || (!st.is_running() && runner_gone),
                };
                if done {
                    break st.exit_code.unwrap_or(0);
                }
            }
            None => {
                break exit_from_events(c.engine, &full, t0_nano.saturating_sub(1_000_000_000))
                    .unwrap_or(0)
            }
        }
        // A client that went away ends the wait.
        if !(c.alive)() {
            return Ok(Reply::Sent);
        }
        // Every change is announced (state writes by inotify, the runner's exit by its
        // pidfd); the bound is for the client's departure, or a runner not yet watched.
        let bound = if watch.watches_a_process() { 1000 } else { 200 };
        watch.wait(Duration::from_millis(bound));
    };
    let body = json!({"StatusCode": code, "Error": null}).to_string();
    if w.write_all(body.as_bytes()).is_err() {
        return Ok(Reply::Sent);
    }
    w.finish()?;
    Ok(Reply::Sent)
}

/// Writes Docker's multiplexed frames (stream type, 3 zero bytes, big-endian length).
struct Framed<'a, W: Write> {
    out: &'a std::cell::RefCell<W>,
    stream: u8,
    raw: bool,
}

impl<W: Write> Write for Framed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = self.out.borrow_mut();
        if !self.raw {
            let mut head = [0u8; 8];
            head[0] = self.stream;
            head[4..].copy_from_slice(&(buf.len() as u32).to_be_bytes());
            let mut frame = head.to_vec();
            frame.extend_from_slice(buf);
            out.write_all(&frame)?;
        } else {
            out.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.borrow_mut().flush()
    }
}

/// Streams logs as frames to `out`; `None` when the client went away.
fn stream_logs<W: Write>(
    engine: &engine::Engine,
    id: &str,
    o: LogOptions,
    out: W,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Option<W> {
    let cell = std::cell::RefCell::new(out);
    let mut so = Framed {
        out: &cell,
        stream: 1,
        raw: tty,
    };
    let mut se = Framed {
        out: &cell,
        stream: 2,
        raw: tty,
    };
    let (mut null1, mut null2) = (std::io::sink(), std::io::sink());
    let sinks = LogSinks {
        stdout: if stdout { &mut so } else { &mut null1 },
        stderr: if stderr { &mut se } else { &mut null2 },
    };
    let ok = engine.logs(id, o, sinks).is_ok();
    ok.then(|| cell.into_inner())
}

/// `HostConfig.LogConfig` (`{"Type": ..., "Config": {...}}`): every option a string, as
/// the schema says; the driver and options themselves are checked by the engine.
fn is_tty(c: &Call<'_>, id: &str) -> bool {
    c.engine
        .container(id)
        .ok()
        .and_then(|v| v.bundle.spec().ok())
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false)
}

pub fn logs(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let (stdout, stderr) = (c.req.flag("stdout"), c.req.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad("you must choose at least one stream"));
    }
    let tty = is_tty(c, id);
    c.engine.container(id)?;
    let time = |k: &str| -> ApiResult<Option<std::time::SystemTime>> {
        match c.req.param(k) {
            None | Some("") => Ok(None),
            Some(v) => engine::containers::logs::parse_log_time(v)
                .map_err(|e| ApiError::bad(format!("{k}: {e}"))),
        }
    };
    let o = LogOptions {
        follow: c.req.flag("follow"),
        tail: c.req.param("tail").and_then(|t| t.parse().ok()),
        since: time("since")?,
        until: time("until")?,
        timestamps: c.req.flag("timestamps"),
        ..Default::default()
    };
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut w = c.resp.stream(200, ct, &[])?;
    let (engine, alive) = (c.engine, c.alive);
    // A follow of a quiet container ends when its client goes away, not at its next write.
    let stop = Arc::new(AtomicBool::new(false));
    let o = LogOptions {
        stop: Some(stop.clone()),
        ..o
    };
    // The client is looked at once a second (a hundred idle followers then cost next to
    // nothing); the end of the stream wakes the watcher at once.
    let (finished, done) = std::sync::mpsc::channel::<()>();
    let streamed = std::thread::scope(|s| {
        let watcher_stop = stop.clone();
        s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done.recv_timeout(Duration::from_secs(1))
            {
                if !alive() {
                    watcher_stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        });
        let r = stream_logs(engine, id, o, &mut w, stdout, stderr, tty).is_some();
        let _ = finished.send(());
        r
    });
    if !streamed || stop.load(Ordering::Relaxed) {
        return Ok(Reply::Sent);
    }
    w.finish()?;
    Ok(Reply::Sent)
}

/// Attach: the connection is taken over (HTTP upgrade) and carries the container's output
/// until it exits. Input from the client is not read yet.
pub fn attach(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.container(id)?;
    let tty = is_tty(c, id);
    // A terminal's input is watched for the detach keys (Docker only does so with -t).
    let escape = if tty {
        crate::detach::Escape::parse(c.req.param("detachKeys").unwrap_or(crate::detach::DEFAULT))?
    } else {
        None
    };
    // The client's input goes to the container's stdin FIFO until the client closes it
    // (or the container is gone). The FIFO is opened before the client hears back, so a
    // start it sends next finds the writer there.
    let done = Arc::new(AtomicBool::new(false));
    let detached = Arc::new(AtomicBool::new(false));
    let bundle = c.engine.container(id)?.bundle;
    let fifo = if c.req.flag("stdin") {
        let f = bundle.open_stdin_writer();
        tracing::debug!(fifo = ?f.as_ref().err(), "attach stdin");
        f.ok()
    } else {
        None
    };
    // Output from now on: taken before the client hears back and can send input.
    let running = c.engine.container(id)?.state.is_running();
    let from = if running && !c.req.flag("logs") {
        Some(c.engine.log_ends(id)?)
    } else {
        None
    };
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut hijack = c.resp.hijack(ct)?;
    if let (Some(fifo), Some(from_client)) = (fifo, hijack.input.take()) {
        let (done, detached) = (done.clone(), detached.clone());
        std::thread::spawn(move || {
            let mut input = Input {
                from: std::fs::File::from(from_client),
                escape,
            };
            if copy_stdin(&mut input, &fifo, &done) == Copied::Detached {
                detached.store(true, Ordering::Relaxed);
            }
            // A FIFO's buffered bytes go with its last open descriptor: the writer is
            // kept until the container has opened its end.
            while !done.load(Ordering::Relaxed)
                && bundle.state().is_ok_and(|s| s.status == Status::Created)
                && bundle.dir().exists()
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(fifo);
        });
    }
    if c.req.flag("stream") || c.req.flag("logs") {
        let o = LogOptions {
            follow: c.req.flag("stream"),
            from,
            wait_for_start: true,
            stop: Some(detached.clone()),
            ..Default::default()
        };
        let (so, se) = (c.req.flag("stdout"), c.req.flag("stderr"));
        let _ = stream_logs(c.engine, id, o, &mut hijack.output, so, se, tty);
    }
    done.store(true, Ordering::Relaxed);
    if detached.load(Ordering::Relaxed) {
        // Detached: the client's whole connection ends, the container runs on.
        hijack.ctl.close();
    } else {
        hijack.finish();
        hijack.ctl.end_input();
    }
    Ok(Reply::Sent)
}

/// A client's input, watched for the detach keys when it has them.
pub(crate) struct Input {
    pub from: std::fs::File,
    pub escape: Option<crate::detach::Escape>,
}

/// How a [`copy_stdin`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Copied {
    /// The client closed its input, the container stopped reading, or `done` was set.
    Ended,
    /// The client typed the detach keys.
    Detached,
}

/// Copies a client's input into a container's stdin (a FIFO opened non-blocking, or a
/// pipe), giving up once `done` is set: a container that stops reading never holds a
/// thread.
pub(crate) fn copy_stdin(input: &mut Input, mut to: &std::fs::File, done: &AtomicBool) -> Copied {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match input.from.read(&mut buf) {
            Ok(0) | Err(_) => return Copied::Ended,
            Ok(n) => n,
        };
        let (data, detach) = match &mut input.escape {
            Some(e) => e.feed(&buf[..n]),
            None => (buf[..n].to_vec(), false),
        };
        let mut off = 0;
        while off < data.len() {
            if done.load(Ordering::Relaxed) {
                return Copied::Ended;
            }
            match to.write(&data[off..]) {
                Ok(w) => off += w,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd: to.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 100) };
                }
                Err(_) => return Copied::Ended,
            }
        }
        if detach {
            return Copied::Detached;
        }
    }
}

pub fn changes(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let out: Vec<Value> = c
        .engine
        .diff(id)?
        .iter()
        .map(|ch| {
            let kind = match ch.kind.letter() {
                'C' => 0,
                'A' => 1,
                _ => 2,
            };
            json!({"Path": format!("/{}", ch.path.display()), "Kind": kind})
        })
        .collect();
    Ok(Reply::Json(200, Value::Array(out)))
}

pub fn export(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.container(id)?;
    let engine = c.engine;
    super::stream_tar(c, &[], &format!("export {id}"), |w| {
        engine
            .export_to(id, w)
            .map(drop)
            .map_err(std::io::Error::other)
    })
}

/// The container's processes (`ps -ef` columns).
pub fn top(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let rows: Vec<Value> = c
        .engine
        .processes(id)?
        .iter()
        .map(|p| {
            let secs = p.cpu_ns / 1_000_000_000;
            json!([
                p.uid.to_string(),
                p.pid.to_string(),
                p.ppid.to_string(),
                "0",
                "",
                "?",
                format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                p.command
            ])
        })
        .collect();
    Ok(Reply::Json(
        200,
        json!({"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows}),
    ))
}

/// Docker's stats document from two readings `interval` apart (the previous one first).
fn stats_doc(
    id: &str,
    name: &str,
    now: &engine::containers::processes::Usage,
    pre: Option<&engine::containers::processes::Usage>,
    system_ns: u64,
    pre_system_ns: u64,
) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let limit = now.memory_limit.unwrap_or_else(super::total_memory);
    json!({
        "id": id,
        "name": format!("/{name}"),
        "read": super::rfc3339(layerstore::now()),
        "preread": super::rfc3339(layerstore::now()),
        "pids_stats": {"current": now.pids},
        "cpu_stats": {
            "cpu_usage": {"total_usage": now.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": now.cpu_ns},
            "system_cpu_usage": system_ns,
            "online_cpus": cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": pre.map(|p| p.cpu_ns).unwrap_or(0)},
            "system_cpu_usage": pre_system_ns,
            "online_cpus": cpus,
        },
        "memory_stats": {"usage": now.memory, "limit": limit, "stats": {}},
        "blkio_stats": {},
        "networks": {},
    })
}

/// The host's CPU time (all CPUs, nanoseconds), as Docker's `system_cpu_usage`.
fn system_cpu_ns() -> u64 {
    let ticks: u64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(7)
                    .filter_map(|x| x.parse::<u64>().ok())
                    .sum()
            })
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// `stats`: one document (`stream=false`) or one a second until the client goes.
pub fn stats(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let v = c.engine.container(id)?;
    let (full, name) = (v.record.id.clone(), v.record.name.clone());
    let stream = c
        .req
        .param("stream")
        .is_none_or(|s| s == "1" || s == "true");
    let one_shot = c.req.flag("one-shot");
    let reading = |e: &engine::Engine| -> engine::containers::processes::Usage {
        e.usage(&full)
            .unwrap_or(engine::containers::processes::Usage {
                cpu_ns: 0,
                memory: 0,
                memory_limit: None,
                pids: 0,
            })
    };
    let mut pre = reading(c.engine);
    let mut pre_sys = system_cpu_ns();
    if !stream {
        if !one_shot {
            std::thread::sleep(Duration::from_millis(500));
        }
        let now = reading(c.engine);
        let sys = system_cpu_ns();
        return Ok(Reply::Json(
            200,
            stats_doc(&full, &name, &now, Some(&pre), sys, pre_sys),
        ));
    }
    let engine = c.engine;
    let mut w = c.resp.stream(200, "application/json", &[])?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = reading(engine);
        let sys = system_cpu_ns();
        let mut line = stats_doc(&full, &name, &now, Some(&pre), sys, pre_sys).to_string();
        line.push('\n');
        if w.write_all(line.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return Ok(Reply::Sent);
        }
        if !engine.container(&full).is_ok_and(|v| v.state.is_running()) {
            break;
        }
        pre = now;
        pre_sys = sys;
    }
    w.finish()?;
    Ok(Reply::Sent)
}

pub fn update(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let o = super::create::update::options(c.json()?)?;
    c.engine.update(id, &o)?;
    Ok(Reply::Json(200, json!({"Warnings": []})))
}

/// `POST /containers/{id}/resize?h=&w=`: the size of a `Tty` container's terminal.
pub fn resize(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let (rows, cols) = super::exec::size_of(c)?;
    c.engine.resize(id, rows, cols)?;
    Ok(Reply::Empty(200))
}

pub fn pause(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.pause(id)?;
    Ok(Reply::Empty(204))
}

pub fn unpause(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.unpause(id)?;
    Ok(Reply::Empty(204))
}

pub fn rename(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let name = c
        .req
        .param("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("give the new name"))?
        .trim_start_matches('/')
        .to_string();
    c.engine.rename(id, &name)?;
    Ok(Reply::Empty(204))
}

pub fn remove(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let force = c.req.flag("force");
    c.engine.stop_for_removal(id, force)?;
    c.engine.remove_container(id, force)?;
    Ok(Reply::Empty(204))
}

/// Removes the stopped containers that pass `until`, `label` and `label!`.
pub fn prune(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(c.req.param("filters"), &["until", "label", "label!"])?;
    let mut deleted = Vec::new();
    for v in c.engine.containers(true)? {
        let labels = super::string_map(&v.bundle.host_config_shared()["Labels"]);
        if v.status() != Status::Running
            && f.labels_match(&labels)
            && f.before_until(created_at(&v))?
            && c.engine.remove_container(&v.record.id, false).is_ok()
        {
            deleted.push(v.record.id.clone());
        }
    }
    Ok(Reply::Json(
        200,
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}),
    ))
}

pub fn commit(c: &mut Call<'_>) -> ApiResult<Reply> {
    let container = c
        .req
        .param("container")
        .ok_or_else(|| ApiError::bad("give the container"))?
        .to_string();
    let reference = c.req.param("repo").filter(|r| !r.is_empty()).map(|r| {
        match c.req.param("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{r}:{t}"),
            None => r.to_string(),
        }
    });
    let o = layerstore::commit::CommitOptions {
        reference,
        message: c
            .req
            .param("comment")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        author: c
            .req
            .param("author")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
    };
    let id = c.engine.commit(&container, &o, &c.req.params("changes"))?;
    Ok(Reply::Json(201, json!({"Id": id.to_string()})))
}
