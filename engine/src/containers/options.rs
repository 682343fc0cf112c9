//! How to make a container: Docker's `create`/`run` options as the engine takes them,
//! typed (mounts as specs, byte counts as numbers) so the CLI and the daemon each fill
//! them from their own input.

pub use super::mounts::{MountSource, MountSpec, TmpfsSpec};
use crate::error::{EngineError, Result};
use serde::Serialize;

/// How to make a container (Docker's `create`/`run` options).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    /// The command and its arguments (the image's Cmd when empty).
    pub command: Vec<String>,
    /// Replaces the image's entrypoint (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Labels, kept for inspect and filters.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Remove the container once it exits (Docker's `AutoRemove`, `run --rm`).
    pub auto_remove: bool,
    /// Whether its shim starts it again when it exits.
    pub restart: RestartPolicy,
    /// The signal `stop` sends first (default SIGTERM) and how long it waits before SIGKILL.
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    /// A health check over the image's (Docker's `Healthcheck`; `["NONE"]` turns the
    /// image's off).
    pub healthcheck: Option<super::health::HealthConfig>,
    /// The logging driver and options (an empty driver: the engine's default).
    pub log_config: super::LogConfig,
    /// Keep a stdin for the container (Docker's `OpenStdin`): a FIFO in its folder that an
    /// attached client writes to. With `stdin_once` the container sees end of file when
    /// the first attached client closes its input.
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// Whether its creator attaches to its stdin (Docker's `AttachStdin`): kept for
    /// inspect, which clients read to decide how to attach (Compose's `run`).
    pub attach_stdin: bool,
    /// tmpfs mounts (`--tmpfs`, the API's `Tmpfs`): shown as `HostConfig.Tmpfs`.
    pub tmpfs: Vec<MountSpec>,
    /// DNS servers, search domains and resolver options for the container's
    /// /etc/resolv.conf (written only when one is given).
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `HOST:IP` lines added to the container's /etc/hosts (written only when given).
    pub extra_hosts: Vec<String>,
    /// `K=V`, over the image's.
    pub env: Vec<String>,
    /// Volumes and host paths given as `-v` (the API's `Binds`): shown as
    /// `HostConfig.Binds`.
    pub binds: Vec<MountSpec>,
    /// Volumes, host paths and tmpfs given as the API's `Mounts`: shown as
    /// `HostConfig.Mounts`.
    pub mounts: Vec<MountSpec>,
    pub workdir: Option<String>,
    /// `UID[:GID]` or a name from the image's /etc/passwd.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// A memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes, or -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (Docker's default 1024).
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    /// A CPU bandwidth limit.
    pub cpu_limit: Option<CpuLimit>,
    /// Docker's `--network`: `bridge` (the default), a user-defined network's name or
    /// id, `none` (a namespace with loopback only), `host`, or `container:NAME`.
    pub network: String,
    /// `--network-alias`, `--ip` on that network.
    pub network_aliases: Vec<String>,
    pub ip: Option<String>,
    /// More networks to join at create (the Engine API's `NetworkingConfig`).
    pub more_networks: Vec<crate::networks::EndpointOptions>,
    /// Published ports in Docker's `PortBindings` form (the CLI parses `-p` into it with
    /// `network::ports::parse_publish`).
    pub port_bindings: network::ports::PortMap,
    /// `-P`: every exposed port on a port the kernel picks.
    pub publish_all: bool,
    /// `--expose`, over the image's `ExposedPorts`.
    pub expose: Vec<String>,
    pub read_only: bool,
    pub tty: bool,
    pub security: SecurityOptions,
    /// The UTS domain name (Docker's `Domainname`).
    pub domainname: Option<String>,
    /// Whether its creator attaches to its output (Docker's `AttachStdout`/`AttachStderr`):
    /// kept for inspect.
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Paths that get a fresh volume each (Docker's `Config.Volumes`, `-v /path`).
    pub anonymous_volumes: Vec<String>,
    /// Containers whose volumes and binds this one mounts too (`NAME[:ro|rw]`).
    pub volumes_from: Vec<String>,
    /// Legacy links (`NAME[:ALIAS]`): the other's address in /etc/hosts.
    pub links: Vec<String>,
    /// CPUs and memory nodes it may use (cpuset lists like `0-1`).
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// The kernel's swap tendency for its memory (0-100) and no OOM kills in its memory
    /// cgroup: cgroup v1 controls (refused where the host has cgroup v2).
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: bool,
    /// Bytes of /dev/shm (Docker's default 64 MiB).
    pub shm_size: Option<i64>,
    /// Paths masked or made read-only instead of Docker's defaults (`None`: the defaults).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// More groups for its process: names from the image's /etc/group or numbers.
    pub group_add: Vec<String>,
    /// Namespaced kernel parameters (`net.*`, `kernel.shm*`, ...).
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// The OOM killer's bias for its processes (-1000..1000).
    pub oom_score_adj: Option<i64>,
    /// Run a minimal init as pid 1 that reaps zombies and forwards signals.
    pub init: bool,
    /// Namespaces shared with the host or another container (`host`, `container:NAME`).
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
    pub uts_mode: Option<String>,
    /// The terminal size to start with, `[height, width]`.
    pub console_size: Option<[u16; 2]>,
    /// Fields whose given value selects the one behaviour strata has (`Isolation:
    /// default`, `UsernsMode: host`, `CgroupnsMode: private`): shown by inspect as given.
    pub as_given: std::collections::BTreeMap<String, serde_json::Value>,
    /// Where the client writes the new id (the client's own business; kept for inspect).
    pub container_id_file: Option<String>,
    /// Made for `run --rm`: its records are not flushed (a crash removes it anyway).
    pub scratch: bool,
    /// Bind `/etc/hosts` and `/etc/resolv.conf` only where the image has them (a build
    /// step: a mountpoint made for them would land in its layer).
    pub etc_if_present: bool,
}

/// Docker's restart policies: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RestartPolicy {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "MaximumRetryCount", default)]
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Docker's `--restart` value: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, n) = s.split_once(':').unwrap_or((s, ""));
        let max_retries = if n.is_empty() {
            0
        } else if name == "on-failure" {
            n.parse().map_err(|_| {
                EngineError::Invalid(format!(
                    "invalid restart policy {s:?}: the count must be a number"
                ))
            })?
        } else {
            return Err(EngineError::Invalid(format!(
                "invalid restart policy {s:?}: only on-failure takes a count"
            )));
        };
        let p = RestartPolicy {
            name: name.to_string(),
            max_retries,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the name.
    pub fn validate(&self) -> Result<()> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
            other => Err(EngineError::Invalid(format!(
                "invalid restart policy {other:?}: use no, always, unless-stopped or on-failure[:N]"
            ))),
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts is started
    /// again (never after a stop asked for by a user).
    pub fn restarts(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0 && (self.max_retries == 0 || restarts < self.max_retries),
            _ => false,
        }
    }
}

/// Docker's isolation options.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecurityOptions {
    #[serde(rename = "Privileged")]
    pub privileged: bool,
    #[serde(rename = "CapAdd")]
    pub cap_add: Vec<String>,
    #[serde(rename = "CapDrop")]
    pub cap_drop: Vec<String>,
    #[serde(rename = "SecurityOpt")]
    pub security_opt: Vec<String>,
    #[serde(rename = "Devices")]
    pub devices: Vec<runtime::devices::DeviceSpec>,
    #[serde(rename = "DeviceCgroupRules")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(rename = "Ulimits")]
    pub ulimits: Vec<runtime::security::Ulimit>,
}

impl SecurityOptions {
    /// The runtime's form, every option checked before anything is made.
    pub(crate) fn to_runtime(&self) -> Result<runtime::security::SecurityOpts> {
        let mut s = runtime::security::SecurityOpts {
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            devices: self.devices.clone(),
            device_cgroup_rules: self.device_cgroup_rules.clone(),
            ulimits: self.ulimits.clone(),
            ..Default::default()
        };
        for opt in &self.security_opt {
            s.security_opt(opt)?;
        }
        Ok(s)
    }
}

/// A CPU bandwidth limit as Docker takes it: CPUs in billionths (`NanoCpus`, `--cpus`),
/// or a quota of microseconds per period (`CpuQuota`/`CpuPeriod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuLimit {
    Nano(i64),
    Quota { quota: i64, period: i64 },
}

impl CpuLimit {
    /// `--cpus 1.5`.
    pub fn from_cpus(cpus: f64) -> Result<CpuLimit> {
        if !(cpus > 0.0 && cpus <= 1e6) {
            return Err(EngineError::Invalid(format!(
                "invalid --cpus {cpus}: give a positive number of CPUs"
            )));
        }
        Ok(CpuLimit::Nano((cpus * 1e9).round() as i64))
    }

    /// The cgroup's `cpu.max`: quota and period in microseconds.
    pub fn quota_period(&self) -> (i64, u64) {
        match *self {
            CpuLimit::Nano(n) => (n / 10_000, 100_000),
            CpuLimit::Quota { quota, period } => (quota, period as u64),
        }
    }

    /// Docker's three fields as they are shown: `NanoCpus`, `CpuQuota`, `CpuPeriod`.
    pub fn fields(limit: Option<CpuLimit>) -> (i64, i64, i64) {
        match limit {
            None => (0, 0, 0),
            Some(CpuLimit::Nano(n)) => (n, 0, 0),
            Some(CpuLimit::Quota { quota, period }) => (0, quota, period),
        }
    }
}
