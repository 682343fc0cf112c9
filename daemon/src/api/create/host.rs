//! The create body's `HostConfig` and `NetworkingConfig` onto the engine's options.

use super::{given, refuse};
use crate::{ApiError, ApiResult};
use bollard_stubs::models::{
    HostConfig, HostConfigCgroupnsModeEnum, HostConfigIsolationEnum, HostConfigLogConfig,
    NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use engine::containers::{CpuLimit, CreateOptions, LogConfig};

/// Why a resource control is refused: strata's cgroup layer does not set it (yet).
const NO_CGROUP_CONTROL: &str = "strata does not set this cgroup control; leave it unset";
/// Why a Windows-only field is refused.
const WINDOWS_ONLY: &str = "it applies to Windows containers only";

/// Fills `o` from `h`: every field honoured or refused.
pub(super) fn apply(h: HostConfig, o: &mut CreateOptions) -> ApiResult<()> {
    let HostConfig {
        cpu_shares,
        memory,
        cgroup_parent,
        blkio_weight,
        blkio_weight_device,
        blkio_device_read_bps,
        blkio_device_write_bps,
        blkio_device_read_iops,
        blkio_device_write_iops,
        cpu_period,
        cpu_quota,
        cpu_realtime_period,
        cpu_realtime_runtime,
        cpuset_cpus,
        cpuset_mems,
        devices,
        device_cgroup_rules,
        device_requests,
        memory_reservation,
        memory_swap,
        memory_swappiness,
        nano_cpus,
        oom_kill_disable,
        init,
        pids_limit,
        ulimits,
        cpu_count,
        cpu_percent,
        io_maximum_iops,
        io_maximum_bandwidth,
        binds,
        container_id_file,
        log_config,
        network_mode,
        port_bindings,
        restart_policy,
        auto_remove,
        volume_driver,
        volumes_from,
        mounts,
        console_size,
        annotations,
        cap_add,
        cap_drop,
        cgroupns_mode,
        dns,
        dns_options,
        dns_search,
        extra_hosts,
        group_add,
        ipc_mode,
        cgroup,
        links,
        oom_score_adj,
        pid_mode,
        privileged,
        publish_all_ports,
        readonly_rootfs,
        security_opt,
        storage_opt,
        tmpfs,
        uts_mode,
        userns_mode,
        shm_size,
        sysctls,
        runtime,
        isolation,
        masked_paths,
        readonly_paths,
    } = h;

    // Resources.
    o.cpu_shares = match cpu_shares.filter(|s| *s != 0) {
        None => None,
        Some(s) => Some(
            u64::try_from(s)
                .map_err(|_| ApiError::bad(format!("HostConfig.CpuShares: {s} is negative")))?,
        ),
    };
    o.memory = non_negative("HostConfig.Memory", memory)?;
    o.memory_swap = memory_swap.filter(|m| *m != 0);
    if o.memory_swap.is_some_and(|m| m < -1) {
        return Err(ApiError::bad(
            "HostConfig.MemorySwap: give bytes, or -1 for unlimited swap",
        ));
    }
    o.pids_limit = pids_limit.filter(|p| *p > 0);
    o.cpu_limit = cpus(nano_cpus, cpu_quota, cpu_period)?;
    o.cpuset_cpus = cpuset_cpus.filter(|c| !c.is_empty());
    o.cpuset_mems = cpuset_mems.filter(|c| !c.is_empty());
    o.shm_size = non_negative("HostConfig.ShmSize", shm_size)?;
    // -1 is "the default"; the engine refuses a value where the host's cgroups lack it.
    o.memory_swappiness = memory_swappiness.filter(|s| *s != -1);
    o.oom_kill_disable = oom_kill_disable.unwrap_or(false);
    for (field, v) in [
        ("HostConfig.CpuRealtimePeriod", cpu_realtime_period),
        ("HostConfig.CpuRealtimeRuntime", cpu_realtime_runtime),
        ("HostConfig.MemoryReservation", memory_reservation),
    ] {
        if given(&v) {
            return Err(refuse(field, v, NO_CGROUP_CONTROL));
        }
    }
    if given(&blkio_weight) {
        return Err(refuse(
            "HostConfig.BlkioWeight",
            blkio_weight,
            NO_CGROUP_CONTROL,
        ));
    }
    if given(&blkio_weight_device) {
        return Err(refuse(
            "HostConfig.BlkioWeightDevice",
            blkio_weight_device,
            NO_CGROUP_CONTROL,
        ));
    }
    for (field, v) in [
        ("HostConfig.BlkioDeviceReadBps", blkio_device_read_bps),
        ("HostConfig.BlkioDeviceWriteBps", blkio_device_write_bps),
        ("HostConfig.BlkioDeviceReadIOps", blkio_device_read_iops),
        ("HostConfig.BlkioDeviceWriteIOps", blkio_device_write_iops),
    ] {
        if given(&v) {
            return Err(refuse(field, v, NO_CGROUP_CONTROL));
        }
    }
    if given(&device_requests) {
        return Err(refuse(
            "HostConfig.DeviceRequests",
            device_requests,
            "strata has no device drivers (GPUs); pass device nodes as Devices",
        ));
    }
    for (field, v) in [
        ("HostConfig.CpuCount", cpu_count),
        ("HostConfig.CpuPercent", cpu_percent),
        ("HostConfig.IOMaximumIOps", io_maximum_iops),
        ("HostConfig.IOMaximumBandwidth", io_maximum_bandwidth),
    ] {
        if given(&v) {
            return Err(refuse(field, v, WINDOWS_ONLY));
        }
    }
    match isolation {
        None | Some(HostConfigIsolationEnum::EMPTY) => {}
        Some(HostConfigIsolationEnum::DEFAULT) => keep(o, "Isolation", "default"),
        Some(other) => {
            return Err(refuse(
                "HostConfig.Isolation",
                other.to_string(),
                "Linux containers are isolated by namespaces only (default)",
            ))
        }
    }
    if given(&cgroup_parent) {
        return Err(refuse(
            "HostConfig.CgroupParent",
            cgroup_parent,
            "every container's cgroup is strata/<id>",
        ));
    }
    if given(&cgroup) {
        return Err(refuse(
            "HostConfig.Cgroup",
            cgroup,
            "every container has a cgroup of its own",
        ));
    }
    match cgroupns_mode {
        None | Some(HostConfigCgroupnsModeEnum::EMPTY) => {}
        Some(HostConfigCgroupnsModeEnum::PRIVATE) => keep(o, "CgroupnsMode", "private"),
        Some(HostConfigCgroupnsModeEnum::HOST) => {
            return Err(refuse(
                "HostConfig.CgroupnsMode",
                "host",
                "every container has a private cgroup namespace",
            ))
        }
    }

    // Security.
    o.security.privileged = privileged.unwrap_or(false);
    o.security.cap_add = cap_add.unwrap_or_default();
    o.security.cap_drop = cap_drop.unwrap_or_default();
    o.security.security_opt = security_opt.unwrap_or_default();
    o.security.device_cgroup_rules = device_cgroup_rules.unwrap_or_default();
    for d in devices.into_iter().flatten() {
        let host = d.path_on_host.unwrap_or_default();
        o.security.devices.push(runtime::devices::DeviceSpec {
            container: d
                .path_in_container
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| host.clone()),
            host: host.into(),
            permissions: d
                .cgroup_permissions
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rwm".into()),
        });
    }
    for u in ulimits.into_iter().flatten() {
        let name = u.name.unwrap_or_default();
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        let limit = runtime::security::Ulimit { name, soft, hard };
        limit
            .to_rlimit()
            .map_err(|e| ApiError::bad(format!("HostConfig.Ulimits: {e}")))?;
        o.security.ulimits.push(limit);
    }
    o.masked_paths = masked_paths;
    o.readonly_paths = readonly_paths;
    o.read_only = readonly_rootfs.unwrap_or(false);
    o.group_add = group_add.unwrap_or_default();
    o.sysctls = sysctls.unwrap_or_default().into_iter().collect();
    o.oom_score_adj = oom_score_adj.filter(|s| *s != 0);
    if o.oom_score_adj
        .is_some_and(|s| !(-1000..=1000).contains(&s))
    {
        return Err(ApiError::bad(
            "HostConfig.OomScoreAdj: give a value from -1000 to 1000",
        ));
    }
    o.init = init.unwrap_or(false);
    match userns_mode.as_deref() {
        None | Some("") => {}
        Some("host") => keep(o, "UsernsMode", "host"),
        Some(_) => {
            return Err(refuse(
                "HostConfig.UsernsMode",
                userns_mode,
                "containers share the host's user namespace (host)",
            ))
        }
    }
    if given(&runtime) {
        return Err(refuse(
            "HostConfig.Runtime",
            runtime,
            "containers run on strata's own runtime; leave it unset",
        ));
    }
    if given(&storage_opt) {
        return Err(refuse(
            "HostConfig.StorageOpt",
            storage_opt,
            "set the container layer's size for the daemon (storage-opts in daemon.json)",
        ));
    }
    if given(&annotations) {
        return Err(refuse(
            "HostConfig.Annotations",
            annotations,
            "strata's runtime takes no OCI annotations",
        ));
    }

    // Namespaces.
    o.pid_mode = namespace_mode("HostConfig.PidMode", pid_mode, &["host"])?;
    o.ipc_mode = namespace_mode(
        "HostConfig.IpcMode",
        ipc_mode,
        &["private", "shareable", "host", "none"],
    )?;
    o.uts_mode = namespace_mode("HostConfig.UTSMode", uts_mode, &["host"])?;

    // Filesystems.
    super::mounts::apply(binds, mounts, tmpfs, o)?;
    o.volumes_from = volumes_from.unwrap_or_default();
    match volume_driver.as_deref() {
        None | Some("") => {}
        Some("local") => keep(o, "VolumeDriver", "local"),
        Some(_) => {
            return Err(refuse(
                "HostConfig.VolumeDriver",
                volume_driver,
                "volumes are strata's local ones",
            ))
        }
    }

    // Networking.
    o.network = network_mode
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "default".into());
    o.port_bindings = match port_bindings {
        None => Default::default(),
        Some(p) => {
            let v = serde_json::to_value(p).map_err(|e| ApiError::bad(e.to_string()))?;
            serde_json::from_value(v)
                .map_err(|e| ApiError::bad(format!("HostConfig.PortBindings: {e}")))?
        }
    };
    o.publish_all = publish_all_ports.unwrap_or(false);
    o.dns = dns.unwrap_or_default();
    o.dns_options = dns_options.unwrap_or_default();
    o.dns_search = dns_search.unwrap_or_default();
    o.extra_hosts = extra_hosts.unwrap_or_default();
    o.links = links.unwrap_or_default();

    // Lifecycle and logs.
    o.auto_remove = auto_remove.unwrap_or(false);
    o.restart = restart(restart_policy)?;
    o.log_config = logging(log_config)?;
    o.console_size = console_size
        .filter(|c| c.iter().any(|x| *x != 0))
        .map(|c| match c.as_slice() {
            [h, w] => Ok([*h as u16, *w as u16]),
            _ => Err(ApiError::bad(
                "HostConfig.ConsoleSize: give [height, width]",
            )),
        })
        .transpose()?;
    o.container_id_file = container_id_file.filter(|f| !f.is_empty());
    Ok(())
}

/// Keeps a field whose value is strata's one behaviour, for inspect to show as given.
fn keep(o: &mut CreateOptions, field: &str, v: impl Into<serde_json::Value>) {
    o.as_given.insert(field.to_string(), v.into());
}

/// `Memory`, `ShmSize`: bytes, 0 for none.
pub(super) fn non_negative(field: &str, v: Option<i64>) -> ApiResult<Option<i64>> {
    match v.filter(|m| *m != 0) {
        Some(m) if m < 0 => Err(ApiError::bad(format!(
            "{field}: {m} is negative: give bytes"
        ))),
        m => Ok(m),
    }
}

/// The CPU limit from `NanoCpus`, or from `CpuQuota`/`CpuPeriod` (dockerd refuses both).
pub(super) fn cpus(
    nano: Option<i64>,
    quota: Option<i64>,
    period: Option<i64>,
) -> ApiResult<Option<CpuLimit>> {
    let nano = nano.filter(|n| *n != 0);
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    if nano.is_some() && (quota.is_some() || period.is_some()) {
        return Err(ApiError::bad(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
        ));
    }
    if let Some(n) = nano {
        if n < 0 {
            return Err(ApiError::bad("HostConfig.NanoCpus: give a positive number"));
        }
        return Ok(Some(CpuLimit::Nano(n)));
    }
    match (quota, period) {
        (None, None) => Ok(None),
        (Some(q), p) if q > 0 => {
            let p = p.unwrap_or(100_000);
            if !(1_000..=1_000_000).contains(&p) {
                return Err(ApiError::bad(
                    "HostConfig.CpuPeriod: give microseconds from 1000 to 1000000",
                ));
            }
            Ok(Some(CpuLimit::Quota {
                quota: q,
                period: p,
            }))
        }
        (q, p) => Err(refuse(
            "HostConfig.CpuPeriod",
            (q, p),
            "a period needs a positive CpuQuota (strata keeps the quota over the period)",
        )),
    }
}

/// A `PidMode`/`IpcMode`/`UTSMode`: empty (the container's own), one of `allowed`, or
/// `container:NAME`.
fn namespace_mode(field: &str, v: Option<String>, allowed: &[&str]) -> ApiResult<Option<String>> {
    match v.filter(|m| !m.is_empty()) {
        None => Ok(None),
        Some(m) if allowed.contains(&m.as_str()) => Ok(Some(m)),
        Some(m) if m.strip_prefix("container:").is_some_and(|c| !c.is_empty()) => Ok(Some(m)),
        Some(m) => Err(ApiError::bad(format!(
            "{field}: invalid value {m:?}: use {} or container:NAME",
            allowed.join(", ")
        ))),
    }
}

pub(super) fn restart(p: Option<RestartPolicy>) -> ApiResult<engine::containers::RestartPolicy> {
    let Some(p) = p else {
        return Ok(Default::default());
    };
    let name = match p.name {
        None | Some(RestartPolicyNameEnum::EMPTY) => String::new(),
        Some(n) => n.to_string(),
    };
    let max_retries = u32::try_from(p.maximum_retry_count.unwrap_or(0)).map_err(|_| {
        ApiError::bad("HostConfig.RestartPolicy.MaximumRetryCount: give a count from 0")
    })?;
    if max_retries > 0 && name != "on-failure" {
        return Err(ApiError::bad(format!(
            "invalid restart policy: maximum retry count can only be used with 'on-failure', not {name:?}"
        )));
    }
    Ok(engine::containers::RestartPolicy { name, max_retries })
}

fn logging(l: Option<HostConfigLogConfig>) -> ApiResult<LogConfig> {
    let Some(l) = l else {
        return Ok(Default::default());
    };
    Ok(LogConfig {
        driver: l.typ.unwrap_or_default(),
        opts: l.config.unwrap_or_default().into_iter().collect(),
    })
}

/// `NetworkingConfig` over the network mode: the entry of the primary network (keyed by
/// the network or by the mode as sent: today's docker CLI sends `default` for both) gives
/// its aliases and address; any other entry is one more network to join.
pub(super) fn networking(
    n: NetworkingConfig,
    disabled: bool,
    o: &mut CreateOptions,
) -> ApiResult<()> {
    let mode = o.network.clone();
    let primary = match mode.as_str() {
        "" | "default" => "bridge",
        m => m,
    };
    if disabled {
        o.network = "none".into();
    }
    let NetworkingConfig { endpoints_config } = n;
    let mut entries: Vec<_> = endpoints_config.unwrap_or_default().into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (net, ep) in entries {
        let e = super::super::networks::endpoint_settings(&net, ep)?;
        if net == primary || net == mode {
            o.network_aliases = e.aliases;
            o.ip = e.ip;
        } else {
            o.more_networks.push(e);
        }
    }
    Ok(())
}
