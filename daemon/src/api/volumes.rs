//! `/volumes/...`: create, list, inspect, remove, prune (driver `local`).

use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use serde_json::{json, Value};

/// Docker's document for a volume.
pub fn volume_doc(v: &layerstore::volumes::Volume) -> Value {
    let mut d = engine::volumes::volume_json(v);
    d["Labels"] = json!({});
    d["Options"] = json!({});
    d
}

pub fn list(c: &mut Call<'_>) -> ApiResult<Reply> {
    let filters = super::filters(c)?;
    let mut vols: Vec<Value> = c.engine.volumes()?.iter().map(volume_doc).collect();
    if let Some(names) = filters.get("name") {
        vols.retain(|v| {
            names
                .iter()
                .any(|n| v["Name"].as_str().is_some_and(|x| x.contains(n.as_str())))
        });
    }
    Ok(Reply::Json(200, json!({"Volumes": vols, "Warnings": []})))
}

pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    let body = c.json()?;
    let name = match body["Name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => format!("{:x}", layerstore::now()) + &layerstore::random_id()[..48],
    };
    if let Some(d) = body["Driver"]
        .as_str()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad(format!(
            "volume driver {d:?} is not available: use local"
        )));
    }
    let v = c.engine.create_volume(&name)?;
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

pub fn prune(c: &mut Call<'_>) -> ApiResult<Reply> {
    let gone = c.engine.prune_volumes()?;
    Ok(Reply::Json(
        200,
        json!({"VolumesDeleted": gone, "SpaceReclaimed": 0}),
    ))
}
