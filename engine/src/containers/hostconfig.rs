//! What `inspect` shows under `HostConfig` (and the `Config` fields only the create call
//! knows), in Docker's names: written once at create as `hostconfig.json`, so inspect
//! returns what create was given, with Docker's defaults where nothing was.

use super::options::{CpuLimit, CreateOptions, MountSource, RestartPolicy, SecurityOptions};
use serde::Serialize;
use std::collections::BTreeMap;

/// The stored form; limits are shown as the runtime spec has them at inspect (`update`
/// changes them), everything else as made.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HostConfig<'a> {
    #[serde(flatten)]
    pub security: &'a SecurityOptions,
    pub binds: Vec<String>,
    pub mounts: &'a [super::mounts::MountSpec],
    pub tmpfs: BTreeMap<&'a str, String>,
    pub readonly_rootfs: bool,
    pub network_mode: &'a str,
    pub port_bindings: &'a network::ports::PortMap,
    pub publish_all_ports: bool,
    pub auto_remove: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub attach_stdin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<&'a super::health::HealthConfig>,
    pub log_config: &'a super::LogConfig,
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
    pub extra_hosts: &'a [String],
    pub links: Vec<String>,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: u64,
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub pids_limit: Option<i64>,
    pub cpuset_cpus: &'a str,
    pub cpuset_mems: &'a str,
    pub shm_size: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub sysctls: &'a BTreeMap<String, String>,
    pub oom_score_adj: i64,
    pub pid_mode: &'a str,
    pub ipc_mode: &'a str,
    #[serde(rename = "UTSMode")]
    pub uts_mode: &'a str,
    pub group_add: &'a [String],
    pub volumes_from: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    #[serde(flatten)]
    pub as_given: &'a BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_size: Option<[u16; 2]>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: &'a str,
    // The `Config` fields only create knows (inspect moves them under `Config`).
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub domainname: &'a str,
    pub exposed_ports: BTreeMap<String, Empty>,
    pub volumes: BTreeMap<&'a str, Empty>,
    /// The command and entrypoint as made: the client's over the image's.
    pub cmd: &'a [String],
    pub entrypoint: &'a [String],
}

/// Docker's `{}` in a set written as a map (`ExposedPorts`, `Volumes`).
#[derive(Serialize)]
pub(crate) struct Empty {}

/// What create resolved from the image and the options.
pub(crate) struct Resolved<'a> {
    pub ports: &'a network::ports::PortMap,
    pub exposed: &'a [String],
    pub health: Option<&'a super::health::HealthConfig>,
    pub log_config: &'a super::LogConfig,
    pub cmd: &'a [String],
    pub entrypoint: &'a [String],
    /// Links in Docker's form (`/other:/self/alias`).
    pub links: Vec<String>,
}

impl<'a> HostConfig<'a> {
    /// The document for `o`, with what create resolved: the ports, health check,
    /// logging and command it settled on.
    pub fn of(o: &'a CreateOptions, r: Resolved<'a>) -> HostConfig<'a> {
        let (nano_cpus, cpu_quota, cpu_period) = CpuLimit::fields(o.cpu_limit);
        HostConfig {
            security: &o.security,
            binds: o.binds.iter().map(|b| b.bind_string()).collect(),
            mounts: &o.mounts,
            tmpfs: o
                .tmpfs
                .iter()
                .map(|m| {
                    let opts = match &m.source {
                        MountSource::Tmpfs(t) => t.shown(),
                        _ => String::new(),
                    };
                    (m.target.as_str(), opts)
                })
                .collect(),
            readonly_rootfs: o.read_only,
            network_mode: if o.network.is_empty() {
                "default"
            } else {
                &o.network
            },
            port_bindings: r.ports,
            publish_all_ports: o.publish_all,
            auto_remove: o.auto_remove,
            labels: &o.labels,
            restart_policy: RestartPolicy {
                name: if o.restart.name.is_empty() {
                    "no".into()
                } else {
                    o.restart.name.clone()
                },
                max_retries: o.restart.max_retries,
            },
            open_stdin: o.open_stdin,
            stdin_once: o.stdin_once,
            attach_stdin: o.attach_stdin,
            stop_signal: o.stop_signal.as_deref(),
            stop_timeout: o.stop_timeout,
            healthcheck: r.health,
            log_config: r.log_config,
            dns: &o.dns,
            dns_search: &o.dns_search,
            dns_options: &o.dns_options,
            extra_hosts: &o.extra_hosts,
            console_size: o.console_size,
            container_id_file: o.container_id_file.as_deref().unwrap_or(""),
            attach_stdout: o.attach_stdout,
            attach_stderr: o.attach_stderr,
            domainname: o.domainname.as_deref().unwrap_or(""),
            exposed_ports: r.exposed.iter().map(|p| (p.clone(), Empty {})).collect(),
            volumes: o
                .anonymous_volumes
                .iter()
                .map(|v| (v.as_str(), Empty {}))
                .collect(),
            cmd: r.cmd,
            entrypoint: r.entrypoint,
            links: r.links,
            memory: o.memory.unwrap_or(0),
            // dockerd's default swap: as much again as the memory.
            memory_swap: match (o.memory, o.memory_swap) {
                (_, Some(s)) => s,
                (Some(m), None) => m.saturating_mul(2),
                (None, None) => 0,
            },
            cpu_shares: o.cpu_shares.unwrap_or(0),
            nano_cpus,
            cpu_quota,
            cpu_period,
            pids_limit: o.pids_limit,
            cpuset_cpus: o.cpuset_cpus.as_deref().unwrap_or(""),
            cpuset_mems: o.cpuset_mems.as_deref().unwrap_or(""),
            shm_size: o.shm_size.unwrap_or(64 << 20),
            memory_swappiness: o.memory_swappiness,
            oom_kill_disable: o.oom_kill_disable,
            masked_paths: paths(
                &o.masked_paths,
                runtime::spec::MASKED_PATHS,
                o.security.privileged,
            ),
            readonly_paths: paths(
                &o.readonly_paths,
                runtime::spec::READONLY_PATHS,
                o.security.privileged,
            ),
            sysctls: &o.sysctls,
            oom_score_adj: o.oom_score_adj.unwrap_or(0),
            pid_mode: o.pid_mode.as_deref().unwrap_or(""),
            ipc_mode: o.ipc_mode.as_deref().unwrap_or("private"),
            uts_mode: o.uts_mode.as_deref().unwrap_or(""),
            group_add: &o.group_add,
            volumes_from: &o.volumes_from,
            init: o.init,
            as_given: &o.as_given,
        }
    }
}

/// Masked or read-only paths as applied: the given ones, else Docker's defaults (none
/// for a privileged container).
fn paths(given: &Option<Vec<String>>, defaults: &[&str], privileged: bool) -> Vec<String> {
    match given {
        Some(v) => v.clone(),
        None if privileged => Vec::new(),
        None => defaults.iter().map(|s| s.to_string()).collect(),
    }
}
