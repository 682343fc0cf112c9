//! `POST /containers/{id}/update`: the schema's `ContainerUpdateBody` onto the engine's
//! update options, each field honoured or refused by name.

use super::{given, refuse};
use crate::{ApiError, ApiResult};
use bollard_stubs::models::{ContainerUpdateBody, RestartPolicyNameEnum};
use engine::containers::UpdateOptions;

/// Why a field cannot change on a container that exists.
const NOT_UPDATABLE: &str =
    "strata changes memory, swap, CPU shares and quota, pids and the restart policy of a container; re-create it for the rest";

/// The engine's options for an update request's body.
pub fn options(body: serde_json::Value) -> ApiResult<UpdateOptions> {
    let b: ContainerUpdateBody =
        serde_json::from_value(body).map_err(|e| ApiError::bad(format!("invalid update: {e}")))?;
    let ContainerUpdateBody {
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
        restart_policy,
    } = b;
    let fixed: [(&str, bool); 23] = [
        ("CgroupParent", given(&cgroup_parent)),
        ("BlkioWeight", given(&blkio_weight)),
        ("BlkioWeightDevice", given(&blkio_weight_device)),
        ("BlkioDeviceReadBps", given(&blkio_device_read_bps)),
        ("BlkioDeviceWriteBps", given(&blkio_device_write_bps)),
        ("BlkioDeviceReadIOps", given(&blkio_device_read_iops)),
        ("BlkioDeviceWriteIOps", given(&blkio_device_write_iops)),
        ("CpuRealtimePeriod", given(&cpu_realtime_period)),
        ("CpuRealtimeRuntime", given(&cpu_realtime_runtime)),
        ("CpusetCpus", given(&cpuset_cpus)),
        ("CpusetMems", given(&cpuset_mems)),
        ("Devices", given(&devices)),
        ("DeviceCgroupRules", given(&device_cgroup_rules)),
        ("DeviceRequests", given(&device_requests)),
        ("MemoryReservation", given(&memory_reservation)),
        (
            "MemorySwappiness",
            memory_swappiness.is_some_and(|s| s != -1),
        ),
        ("OomKillDisable", oom_kill_disable == Some(true)),
        ("Init", init == Some(true)),
        ("Ulimits", given(&ulimits)),
        ("CpuCount", given(&cpu_count)),
        ("CpuPercent", given(&cpu_percent)),
        ("IOMaximumIOps", given(&io_maximum_iops)),
        ("IOMaximumBandwidth", given(&io_maximum_bandwidth)),
    ];
    if let Some((name, _)) = fixed.iter().find(|(_, set)| *set) {
        return Err(refuse(name, "a value", NOT_UPDATABLE));
    }
    let restart = match restart_policy {
        Some(p) if !matches!(p.name, None | Some(RestartPolicyNameEnum::EMPTY)) => {
            Some(super::host::restart(Some(p))?)
        }
        _ => None,
    };
    Ok(UpdateOptions {
        memory: super::host::non_negative("Memory", memory)?,
        memory_swap: memory_swap.filter(|m| *m != 0),
        cpu_shares: match cpu_shares.filter(|s| *s != 0) {
            None => None,
            Some(s) => Some(
                u64::try_from(s)
                    .map_err(|_| ApiError::bad(format!("CpuShares: {s} is negative")))?,
            ),
        },
        pids: pids_limit.filter(|p| *p != 0),
        cpu_limit: super::host::cpus(nano_cpus, cpu_quota, cpu_period)?,
        restart,
    })
}
