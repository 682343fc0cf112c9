//! `POST /containers/create`: the request as the Engine API's schema types (moby's
//! swagger, through `bollard-stubs`), each field honoured into the engine's typed options
//! or refused with a 400 that names it.
//!
//! Why `bollard-stubs` and not types of our own: it is moby's `api/swagger.yaml` generated
//! into serde types and kept in step with each API version by the Bollard project, so the
//! contract is the schema itself, not our reading of it. The request is destructured
//! field by field (no `..`), so a field a newer schema adds fails the build until it is
//! honoured or refused here.

mod config;
mod host;
mod mounts;
pub mod update;

use crate::{ApiError, ApiResult};
use bollard_stubs::models::ContainerCreateBody;
use engine::containers::CreateOptions;

/// A 400 naming the field and why strata will not take it.
pub(crate) fn refuse(field: &str, value: impl std::fmt::Debug, why: &str) -> ApiError {
    ApiError::bad(format!("{field}: {value:?} is not supported: {why}"))
}

/// Whether a client set a field to something other than its zero value (clients send
/// every field, most at zero: `"CpuCount": 0`, `"Isolation": ""`, `"Links": null`).
pub(crate) fn given<T: Default + PartialEq>(v: &Option<T>) -> bool {
    v.as_ref().is_some_and(|x| *x != T::default())
}

/// A request body as schema type `T`; a value of the wrong type is a 400 that names the
/// field by its path (`HostConfig.LogConfig.Config.max-size: invalid type: integer 5,
/// expected a string`).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    body: serde_json::Value,
) -> ApiResult<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad(format!("invalid {what}: {}", e.inner()))
        } else {
            ApiError::bad(format!("invalid {what}: {path}: {}", e.inner()))
        }
    })
}

/// The engine's options for a create request's body.
pub fn options(name: Option<String>, body: serde_json::Value) -> ApiResult<CreateOptions> {
    let body: ContainerCreateBody = parse("container config", body)?;
    let mut o = CreateOptions {
        name,
        ..Default::default()
    };
    let rest = config::apply(body, &mut o)?;
    host::apply(rest.host, &mut o)?;
    host::networking(rest.networking, rest.network_disabled, &mut o)?;
    Ok(o)
}
