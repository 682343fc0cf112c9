//! `/networks/...`: create, list, inspect, remove, prune, connect, disconnect (Docker's
//! bridge driver semantics over the engine's networks).

use super::filter::Filters;
use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use engine::networks::{EndpointOptions, NetworkCreate};
use serde_json::{json, Value};

/// Whether network `n` passes `f` as dockerd's list applies it (values of one key: any
/// matches; keys: all must).
fn network_matches(f: &Filters, n: &layerstore::networks::NetworkRecord) -> ApiResult<bool> {
    let any = |k: &str, m: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|vs| vs.iter().any(|v| m(v)));
    for t in f.get("type").into_iter().flatten() {
        if !matches!(t.as_str(), "custom" | "builtin") {
            return Err(ApiError::bad(format!("invalid filter: 'type'='{t}'")));
        }
    }
    Ok(any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| n.driver == v)
        && any("scope", &|v| v == "local")
        && any("type", &|v| (v == "builtin") == n.is_builtin())
        && f.labels_match(&n.labels)
        && f.bool("dangling")?
            .is_none_or(|d| d == (n.endpoints.is_empty() && !n.is_builtin())))
}

pub fn list(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(
        c.req.param("filters"),
        &[
            "dangling", "driver", "id", "label", "label!", "name", "scope", "type",
        ],
    )?;
    let mut out = Vec::new();
    for n in c.engine.network_list()? {
        if network_matches(&f, &n)? {
            out.push(c.engine.network_json(&n));
        }
    }
    Ok(Reply::Json(200, json!(out)))
}

pub fn inspect(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let n = c.engine.network(id)?;
    Ok(Reply::Json(200, c.engine.network_json(&n)))
}

pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    let b = c.json()?;
    let name = b["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("a network needs a Name"))?
        .to_string();
    refuse_unsupported(&b)?;
    let configs = b["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad(
            "one IPAM config (one IPv4 subnet) per network is supported",
        ));
    }
    let subnet = configs
        .first()
        .and_then(|cfg| cfg["Subnet"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let labels = super::string_map(&b["Labels"]);
    let n = c.engine.network_create(&NetworkCreate {
        name,
        driver: b["Driver"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        subnet,
        internal: b["Internal"].as_bool().unwrap_or(false),
        labels,
    })?;
    if let Some(gw) = configs
        .first()
        .and_then(|cfg| cfg["Gateway"].as_str())
        .filter(|g| !g.is_empty())
    {
        let ours = n
            .subnet()
            .map(|s| s.gateway().to_string())
            .unwrap_or_default();
        if gw != ours {
            let _ = c.engine.network_remove(&n.id);
            return Err(ApiError::bad(format!(
                "gateway {gw}: strata's bridge takes the subnet's first address ({ours})"
            )));
        }
    }
    Ok(Reply::Json(201, json!({"Id": n.id, "Warning": ""})))
}

/// The fields of a network create that strata's bridge cannot honour, refused by name
/// rather than dropped: driver and IPAM options, IPv6, swarm's ingress and config-only
/// networks, a non-local scope.
fn refuse_unsupported(b: &Value) -> ApiResult<()> {
    let set = |v: &Value| match v {
        Value::Null => false,
        Value::Bool(x) => *x,
        Value::String(s) => !s.is_empty(),
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Number(_) => true,
    };
    if let Some(opts) = b["Options"].as_object().filter(|o| !o.is_empty()) {
        let names: Vec<&str> = opts.keys().map(String::as_str).collect();
        return Err(ApiError::bad(format!(
            "network Options {names:?} are not supported: strata's bridge driver takes no driver options"
        )));
    }
    for (field, why) in [
        ("EnableIPv6", "IPv6 networks are not supported by strata"),
        (
            "Ingress",
            "ingress networks belong to swarm, which strata does not run",
        ),
        (
            "ConfigOnly",
            "config-only networks are not supported by strata",
        ),
        (
            "ConfigFrom",
            "networks made from a config network are not supported by strata",
        ),
    ] {
        let v = &b[field];
        let given = match field {
            "ConfigFrom" => set(&v["Network"]),
            _ => set(v),
        };
        if given {
            return Err(ApiError::bad(format!("{field}: {why}")));
        }
    }
    if let Some(scope) = b["Scope"]
        .as_str()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::bad(format!(
            "Scope {scope:?}: strata's networks are local"
        )));
    }
    match b["IPAM"]["Driver"].as_str().unwrap_or("") {
        "" | "default" => {}
        d => {
            return Err(ApiError::bad(format!(
                "IPAM Driver {d:?} is not supported: strata assigns addresses itself (default)"
            )))
        }
    }
    if set(&b["IPAM"]["Options"]) {
        return Err(ApiError::bad("IPAM Options are not supported by strata"));
    }
    for cfg in b["IPAM"]["Config"].as_array().into_iter().flatten() {
        for k in ["IPRange", "AuxiliaryAddresses", "AuxAddress"] {
            if set(&cfg[k]) {
                return Err(ApiError::bad(format!(
                    "IPAM Config {k} is not supported by strata: give Subnet (and its first address as Gateway)"
                )));
            }
        }
    }
    Ok(())
}

pub fn remove(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    c.engine.network_remove(id)?;
    Ok(Reply::Empty(204))
}

/// Removes the unused user-defined networks that pass `until`, `label` and `label!`.
pub fn prune(c: &mut Call<'_>) -> ApiResult<Reply> {
    let f = Filters::parse(c.req.param("filters"), &["until", "label", "label!"])?;
    let mut gone = Vec::new();
    for n in c.engine.network_list()? {
        if !n.is_builtin()
            && n.endpoints.is_empty()
            && f.labels_match(&n.labels)
            && f.before_until(n.created as f64)?
            && c.engine.network_remove(&n.id).is_ok()
        {
            gone.push(n.name);
        }
    }
    Ok(Reply::Json(200, json!({"NetworksDeleted": gone})))
}

/// Docker's `EndpointSettings` (container create's `NetworkingConfig`, connect's
/// `EndpointConfig`) for network `network`: its aliases and IPv4 address are honoured,
/// the rest refused by name; the fields the schema marks as operational data (the
/// endpoint's id, gateway and addresses as inspect shows them) are read-only and ignored,
/// as dockerd ignores them.
pub fn endpoint_settings(
    network: &str,
    ep: bollard_stubs::models::EndpointSettings,
) -> ApiResult<EndpointOptions> {
    use super::create::{given, refuse};
    let bollard_stubs::models::EndpointSettings {
        ipam_config,
        links,
        mac_address,
        aliases,
        driver_opts,
        gw_priority,
        network_id: _,
        endpoint_id: _,
        gateway: _,
        ip_address: _,
        ip_prefix_len: _,
        ipv6_gateway: _,
        global_ipv6_address: _,
        global_ipv6_prefix_len: _,
        dns_names: _,
    } = ep;
    let why = "strata's endpoints take aliases and an IPv4 address";
    if given(&links) {
        return Err(refuse("EndpointSettings.Links", links, why));
    }
    if given(&mac_address) {
        return Err(refuse("EndpointSettings.MacAddress", mac_address, why));
    }
    if given(&driver_opts) {
        return Err(refuse("EndpointSettings.DriverOpts", driver_opts, why));
    }
    if given(&gw_priority) {
        return Err(refuse("EndpointSettings.GwPriority", gw_priority, why));
    }
    let mut ip = None;
    if let Some(ipam) = ipam_config {
        if given(&ipam.ipv6_address) {
            return Err(refuse(
                "IPAMConfig.IPv6Address",
                ipam.ipv6_address,
                "networks are IPv4 only",
            ));
        }
        if given(&ipam.link_local_ips) {
            return Err(refuse("IPAMConfig.LinkLocalIPs", ipam.link_local_ips, why));
        }
        ip = ipam.ipv4_address.filter(|a| !a.is_empty());
    }
    Ok(EndpointOptions {
        network: network.to_string(),
        aliases: aliases.unwrap_or_default(),
        ip,
    })
}

/// A connect request's `EndpointConfig` as the schema's type.
fn endpoint_config(b: &Value) -> ApiResult<bollard_stubs::models::EndpointSettings> {
    match &b["EndpointConfig"] {
        Value::Null => Ok(Default::default()),
        v => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad(format!("invalid EndpointConfig: {e}"))),
    }
}

fn container_of(b: &Value) -> ApiResult<String> {
    b["Container"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad("give the Container to connect or disconnect"))
}

pub fn connect(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let b = c.json()?;
    let container = container_of(&b)?;
    c.engine
        .network_connect(&container, &endpoint_settings(id, endpoint_config(&b)?)?)?;
    Ok(Reply::Empty(200))
}

pub fn disconnect(c: &mut Call<'_>, id: &str) -> ApiResult<Reply> {
    let b = c.json()?;
    let container = container_of(&b)?;
    c.engine.network_disconnect(&container, id)?;
    Ok(Reply::Empty(200))
}
