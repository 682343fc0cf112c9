//! `/networks/...`: create, list, inspect, remove, prune, connect, disconnect (Docker's
//! bridge driver semantics over the engine's networks).

use super::filter::Filters;
use crate::router::{Call, Reply};
use crate::{ApiError, ApiResult};
use engine::networks::{EndpointOptions, NetworkCreate};
use serde_json::{json, Value};

/// Whether network `n` passes `f` as dockerd's list applies it (values of one key: any
/// matches; keys: all must).
fn network_matches(f: &Filters, n: &network::records::NetworkRecord) -> ApiResult<bool> {
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

/// `POST /networks/create`: the schema's `NetworkCreateRequest`, each field honoured or
/// refused by name (driver and IPAM options, IPv6, swarm's ingress, attachable and
/// config-only networks, a non-local scope).
pub fn create(c: &mut Call<'_>) -> ApiResult<Reply> {
    use super::create::{given, refuse};
    let b: bollard_stubs::models::NetworkCreateRequest =
        super::create::parse("network config", c.json()?)?;
    let bollard_stubs::models::NetworkCreateRequest {
        name,
        driver,
        scope,
        internal,
        attachable,
        ingress,
        config_only,
        config_from,
        ipam,
        enable_ipv4,
        enable_ipv6,
        options,
        labels,
    } = b;
    if name.is_empty() {
        return Err(ApiError::bad("a network needs a Name"));
    }
    if let Some(opts) = options.filter(|o| !o.is_empty()) {
        let mut names: Vec<&String> = opts.keys().collect();
        names.sort();
        return Err(ApiError::bad(format!(
            "network Options {names:?} are not supported: strata's bridge driver takes no driver options"
        )));
    }
    let swarm = "it belongs to swarm, which strata does not run";
    for (field, set, why) in [
        (
            "EnableIPv6",
            enable_ipv6 == Some(true),
            "IPv6 networks are not supported by strata",
        ),
        (
            "EnableIPv4",
            enable_ipv4 == Some(false),
            "strata's networks are IPv4 networks",
        ),
        ("Ingress", ingress == Some(true), swarm),
        (
            "ConfigOnly",
            config_only == Some(true),
            "config-only networks are not supported by strata",
        ),
        (
            "ConfigFrom",
            config_from.as_ref().is_some_and(|c| given(&c.network)),
            "networks made from a config network are not supported by strata",
        ),
    ] {
        if set {
            return Err(ApiError::bad(format!("{field}: {why}")));
        }
    }
    if let Some(scope) = scope.filter(|s| !s.is_empty() && s != "local") {
        return Err(refuse("Scope", scope, "strata's networks are local"));
    }
    let mut subnet = None;
    let mut gateway = None;
    if let Some(ipam) = ipam {
        let bollard_stubs::models::Ipam {
            driver,
            config,
            options,
        } = ipam;
        if !matches!(driver.as_deref(), None | Some("") | Some("default")) {
            return Err(refuse(
                "IPAM.Driver",
                driver,
                "strata assigns addresses itself (default)",
            ));
        }
        if given(&options) {
            return Err(refuse(
                "IPAM.Options",
                options,
                "strata's IPAM takes no options",
            ));
        }
        let configs = config.unwrap_or_default();
        if configs.len() > 1 {
            return Err(ApiError::bad(
                "one IPAM config (one IPv4 subnet) per network is supported",
            ));
        }
        if let Some(cfg) = configs.into_iter().next() {
            let bollard_stubs::models::IpamConfig {
                subnet: s,
                ip_range,
                gateway: g,
                auxiliary_addresses,
            } = cfg;
            let why = "give Subnet (and its first address as Gateway)";
            if given(&ip_range) {
                return Err(refuse("IPAM.Config.IPRange", ip_range, why));
            }
            if given(&auxiliary_addresses) {
                return Err(refuse(
                    "IPAM.Config.AuxiliaryAddresses",
                    auxiliary_addresses,
                    why,
                ));
            }
            subnet = s.filter(|s| !s.is_empty());
            gateway = g.filter(|g| !g.is_empty());
        }
    }
    let n = c.engine.network_create(&NetworkCreate {
        name,
        driver: driver.filter(|d| !d.is_empty()),
        subnet,
        internal: internal.unwrap_or(false),
        attachable: attachable.unwrap_or(false),
        labels: labels.unwrap_or_default().into_iter().collect(),
    })?;
    if let Some(gw) = gateway {
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
        v => super::create::parse("EndpointConfig", v.clone()),
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
