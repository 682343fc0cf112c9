//! `/volumes/...`: create, list, inspect, remove, prune (driver `local`).

use super::filter::Filters;
use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use serde_json::{json, Value};

/// Docker's document for a volume.
pub fn volume_doc(v: &layerstore::volumes::Volume) -> Value {
    engine::volumes::volume_json(v)
}

/// Whether volume `v` passes `f` (`name`, `driver`, `label`, `label!`, `dangling`).
fn volume_matches(c: &Call<'_>, f: &Filters, v: &layerstore::volumes::Volume) -> ApiResult<bool> {
    if let Some(names) = f.get("name") {
        if !names.iter().any(|n| v.name.contains(n.as_str())) {
            return Ok(false);
        }
    }
    if let Some(d) = f.get("driver") {
        if !d.iter().any(|d| d == "local") {
            return Ok(false);
        }
    }
    if !f.labels_match(&v.labels) {
        return Ok(false);
    }
    if let Some(dangling) = f.bool("dangling")? {
        if c.engine.volume_users(&v.name)?.is_empty() != dangling {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn list(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(
        c.req.param("filters"),
        &["name", "driver", "label", "label!", "dangling"],
    )?;
    let mut vols = Vec::new();
    for v in c.engine.volumes()? {
        if volume_matches(c, &f, &v)? {
            vols.push(volume_doc(&v));
        }
    }
    Ok(Reply::Json(200, json!({"Volumes": vols, "Warnings": []})))
}

/// `POST /volumes/create`: the schema's `VolumeCreateRequest`, each field honoured or
/// refused by name.
pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    use super::create::{given, refuse};
    let b: bollard_stubs::models::VolumeCreateRequest =
        super::create::parse("volume config", c.json()?)?;
    let bollard_stubs::models::VolumeCreateRequest {
        name,
        driver,
        driver_opts,
        labels,
        cluster_volume_spec,
    } = b;
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => format!("{:x}", layerstore::now()) + &layerstore::random_id()[..48],
    };
    if let Some(d) = driver.filter(|d| !d.is_empty() && d != "local") {
        return Err(ApiError::bad(format!(
            "volume driver {d:?} is not available: use local"
        )));
    }
    if given(&driver_opts) {
        return Err(refuse(
            "DriverOpts",
            driver_opts,
            "strata's local volumes are directories and take no options (type, device, o)",
        ));
    }
    if cluster_volume_spec.is_some() {
        return Err(ApiError::bad(
            "ClusterVolumeSpec: cluster volumes belong to swarm, which strata does not run",
        ));
    }
    let v = c
        .engine
        .create_volume_with(&name, labels.unwrap_or_default().into_iter().collect())?;
    Ok(Reply::Json(201, volume_doc(&v)))
}

pub fn inspect(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    Ok(Reply::Json(200, volume_doc(&c.engine.volume(name)?)))
}

pub fn remove(c: &mut Call<'_>, name: &str) -> ApiResult<Reply> {
    match c.engine.remove_volume(name) {
        Err(e) if e.kind() == engine::ErrorKind::NotFound && c.req.flag("force") => {}
        r => r?,
    }
    Ok(Reply::Empty(204))
}

/// Removes unused volumes that pass the filters: from API 1.42 only anonymous ones unless
/// `all=true`, as dockerd.
pub fn prune(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(c.req.param("filters"), &["label", "label!", "all"])?;
    let all = f.bool("all")?.unwrap_or(false) || c.version < crate::router::ApiVersion(1, 42);
    let mut gone = Vec::new();
    for v in c.engine.volumes()? {
        if (all || v.anonymous)
            && f.labels_match(&v.labels)
            && c.engine.volume_users(&v.name)?.is_empty()
            && c.engine.remove_volume(&v.name).is_ok()
        {
            gone.push(v.name);
        }
    }
    Ok(Reply::Json(
        200,
        json!({"VolumesDeleted": gone, "SpaceReclaimed": 0}),
    ))
}
