//! The OCI runtime spec (`config.json`) of a container, and the launch plan read from it.
//!
//! `create` writes the spec (through the `oci-spec` types, so it is a valid runtime bundle
//! a peer runtime could also start); `start` reads it back into a [`Plan`], the flat form
//! the launcher needs. Defaults follow Docker: its capability set, masked and read-only
//! paths, `/dev` contents, and `no_new_privs`.

use crate::devices;
use crate::error::{Result, RuntimeError};
pub use oci_spec::runtime::{Mount, Spec};
use serde_json::json;
use std::ffi::CString;
use std::path::{Path, PathBuf};

pub use crate::security::DEFAULT_CAPS;
use crate::security::{cap_number, Seccomp, SecurityOpts};

/// Docker's masked paths: hidden from the container (a file gets /dev/null, a dir an
/// empty read-only tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A bind mount into the container (`-v SRC:DST[:ro]`, or a named volume's data dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

/// What a container is asked to run with: the image config merged with the flags.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    /// Share the host's network namespace (`--network host`).
    pub network_host: bool,
    pub read_only: bool,
    pub binds: Vec<Bind>,
    /// tmpfs mounts: (container path, extra mount options such as `size=64m`).
    pub tmpfs: Vec<(String, String)>,
    /// Bytes (`-m`).
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    /// CPU bandwidth: quota and period in microseconds (`--cpus 1.5` is 150000/100000).
    pub cpu_max: Option<(i64, u64)>,
    /// Memory plus swap in bytes (`--memory-swap`; -1 unlimited swap). Unset with a
    /// memory limit: twice the memory, as Docker.
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (`--cpu-shares`, Docker's 2..262144, default 1024).
    pub cpu_shares: Option<u64>,
    pub terminal: bool,
    /// The cgroup path under each hierarchy (`strata/<id>`).
    pub cgroup: String,
    /// Privileges, seccomp, devices and rlimits.
    pub security: SecurityOpts,
    /// CPUs and memory nodes (cpuset lists like `0-1`).
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Bytes of /dev/shm (64 MiB when unset, as Docker).
    pub shm_size: Option<i64>,
    /// Replace Docker's masked and read-only paths (`None`: the defaults).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// The UTS domain name.
    pub domainname: Option<String>,
    /// The OOM killer's bias for the container's processes.
    pub oom_score_adj: Option<i32>,
    /// Namespaced kernel parameters, written in the container's namespaces.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// Share the host's PID, IPC or UTS namespace instead of a new one.
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_uts: bool,
    /// Give the container no /dev/shm (Docker's `--ipc none`).
    pub no_shm: bool,
    /// Run a minimal init as pid 1 that reaps and forwards signals ([`INIT_ANNOTATION`]).
    pub init: bool,
    /// The kernel's swap tendency for the container's memory (0-100; cgroup v1 only).
    pub memory_swappiness: Option<u64>,
    /// No OOM kills in the container's memory cgroup (cgroup v1 only).
    pub oom_kill_disable: bool,
}

/// The spec annotation that asks for strata's init as the container's pid 1.
pub const INIT_ANNOTATION: &str = "org.strata.init";

/// Builds the OCI runtime spec for `r`.
pub fn build(r: &RunSpec) -> Result<Spec> {
    let sec = &r.security;
    let caps = sec.capabilities()?;
    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    for (kind, host) in [
        ("pid", r.host_pid),
        ("uts", r.host_uts),
        ("ipc", r.host_ipc),
    ] {
        if !host {
            namespaces.push(json!({"type": kind}));
        }
    }
    if r.host_uts && (r.domainname.is_some() || !r.hostname.is_empty()) {
        return Err(RuntimeError::Spec(
            "Conflicting options: a hostname or domain name with the host's UTS namespace".into(),
        ));
    }
    check_sysctls(r)?;
    let shm = format!("size={}", r.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20));
    if !r.network_host {
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", shm]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", if sec.privileged { "rw" } else { "ro" }]}),
    ];
    if r.no_shm {
        mounts.retain(|m| m["destination"] != "/dev/shm");
    }
    for b in &r.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if b.readonly {
            opts.push("ro");
        }
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": opts}));
    }
    for (dest, extra) in &r.tmpfs {
        let opts = tmpfs_options(extra);
        mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    let mut resources = json!({});
    if let Some(m) = r.memory {
        resources["memory"] = json!({"limit": m, "swap": swap_of(m, r.memory_swap)?});
    } else if r.memory_swap.is_some_and(|s| s > 0) {
        return Err(RuntimeError::Spec(
            "--memory-swap needs --memory: give both (the first is memory plus swap)".into(),
        ));
    }
    if let Some(sw) = r.memory_swappiness {
        resources["memory"]["swappiness"] = json!(sw);
    }
    if r.oom_kill_disable {
        resources["memory"]["disableOOMKiller"] = json!(true);
    }
    if let Some(s) = r.cpu_shares {
        resources["cpu"] = json!({"shares": s});
    }
    if let Some(p) = r.pids {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(c) = &r.cpuset_cpus {
        resources["cpu"]["cpus"] = json!(c);
    }
    if let Some(m) = &r.cpuset_mems {
        resources["cpu"]["mems"] = json!(m);
    }
    if let Some((quota, period)) = r.cpu_max {
        resources["cpu"]["quota"] = json!(quota);
        resources["cpu"]["period"] = json!(period);
    }
    // Devices: Docker's allowlist plus what was asked for; everything with --privileged.
    let mut nodes = Vec::new();
    let mut rules = devices::default_rules();
    if sec.privileged {
        nodes = devices::host_nodes();
        rules = vec![devices::Rule {
            allow: true,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }];
    } else {
        for d in &sec.devices {
            let (node, rule) = d.resolve()?;
            nodes.push(node);
            rules.push(rule);
        }
        for c in &sec.device_cgroup_rules {
            rules.push(devices::parse_cgroup_rule(c)?);
        }
    }
    resources["devices"] = rules.iter().map(devices::Rule::to_json).collect();
    let rlimits: Vec<serde_json::Value> = sec
        .rlimits()?
        .iter()
        .map(|l| json!({"type": l.kind, "soft": l.soft, "hard": l.hard}))
        .collect();
    let seccomp = if sec.privileged {
        None
    } else {
        let text = match &sec.seccomp {
            Seccomp::Unconfined => None,
            Seccomp::Builtin => Some(crate::seccomp::DOCKER_DEFAULT),
            Seccomp::File { text, .. } => Some(text.as_str()),
        };
        let target = crate::seccomp::profile::Target {
            caps: &caps,
            arch: crate::seccomp::profile::go_arch(),
            kernel: crate::seccomp::profile::kernel_version(),
        };
        text.map(|t| crate::seccomp::profile::resolve(t, &target))
            .transpose()?
    };
    let defaults = |given: &Option<Vec<String>>, dflt: &[&str]| -> Vec<String> {
        match given {
            Some(v) => v.clone(),
            None if sec.privileged => Vec::new(),
            None => dflt.iter().map(|s| s.to_string()).collect(),
        }
    };
    let masked = defaults(&r.masked_paths, MASKED_PATHS);
    let readonly = defaults(&r.readonly_paths, READONLY_PATHS);
    let v = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": r.terminal,
            "user": {"uid": r.uid, "gid": r.gid, "additionalGids": r.additional_gids},
            "args": r.args,
            "env": r.env,
            "cwd": if r.cwd.is_empty() { "/" } else { r.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": sec.no_new_privs,
            "rlimits": rlimits,
            "oomScoreAdj": r.oom_score_adj,
        },
        "root": {"path": r.rootfs, "readonly": r.read_only},
        "hostname": if r.host_uts { None } else { Some(&r.hostname) },
        "domainname": r.domainname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": r.cgroup,
            "sysctl": r.sysctls,
            "maskedPaths": masked,
            "readonlyPaths": readonly,
            "devices": nodes.iter().map(devices::Node::to_json).collect::<Vec<_>>(),
        },
    });
    let mut v = v;
    if let Some(sc) = seccomp {
        v["linux"]["seccomp"] = sc;
    }
    if r.init {
        v["annotations"] = json!({INIT_ANNOTATION: "true"});
    }
    serde_json::from_value(v).map_err(|e| RuntimeError::Spec(e.to_string()))
}

/// The kernel parameters Docker lets a container set: those its own IPC or network
/// namespace scopes (nothing that reaches the host).
fn sysctl_namespace(key: &str) -> Option<&'static str> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("network")
    } else {
        None
    }
}

/// The file under /proc/sys for `key`, checked to stay there: dot-separated words of
/// letters, digits, `_` and `-`.
pub fn sysctl_key_path(key: &str) -> Result<PathBuf> {
    let ok = !key.is_empty()
        && key.split('.').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !ok {
        return Err(RuntimeError::Spec(format!("invalid sysctl {key:?}")));
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// Each sysctl must be one a namespace of the container's own scopes: `kernel.shm*` and
/// the other IPC ones need its IPC namespace, `net.*` its network namespace.
fn check_sysctls(r: &RunSpec) -> Result<()> {
    for (k, v) in &r.sysctls {
        sysctl_key_path(k)?;
        if v.contains(['\n', '\0']) {
            return Err(RuntimeError::Spec(format!("invalid sysctl value for {k}")));
        }
        match sysctl_namespace(k) {
            Some("ipc") if r.host_ipc => {
                return Err(RuntimeError::Spec(format!(
                    "sysctl {k} is not allowed with the host's IPC namespace"
                )))
            }
            Some("network") if r.network_host => {
                return Err(RuntimeError::Spec(format!(
                    "sysctl {k} is not allowed with the host's network namespace"
                )))
            }
            Some(_) => {}
            None => {
                return Err(RuntimeError::Spec(format!(
                    "sysctl {k} is not allowed: only namespaced ones (net.*, fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem) can be set in a container"
                )))
            }
        }
    }
    Ok(())
}

/// Writes `spec` as `config.json` in `bundle` (temp name, fsync, rename).
pub fn save(spec: &Spec, bundle: &Path) -> Result<()> {
    let p = bundle.join("config.json");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    fsutil::write_atomic(&p, &data).map_err(|e| RuntimeError::io("write", p, e))
}

/// Writes the spec a start resolved (its rootfs path and user) over `config.json`,
/// atomically but without a flush: it is made again at every start.
pub fn save_resolved(spec: &Spec, bundle: &Path) -> Result<()> {
    let p = bundle.join("config.json");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    fsutil::write_replace(&p, &data).map_err(|e| RuntimeError::io("write", p, e))
}

/// Reads `config.json` from `bundle`.
pub fn load(bundle: &Path) -> Result<Spec> {
    load_shared(bundle).map(|s| (*s).clone())
}

/// [`load`] shared with the long-lived process's cache: no copy of the document.
pub fn load_shared(bundle: &Path) -> Result<std::sync::Arc<Spec>> {
    let p = bundle.join("config.json");
    match fsutil::parsed_cache::read_shared(&p, |d| serde_json::from_slice::<Spec>(d)) {
        Ok(Some(r)) => r.map_err(|e| RuntimeError::Spec(format!("{}: {e}", p.display()))),
        Ok(None) => Err(RuntimeError::io(
            "read",
            &p,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )),
        Err(e) => Err(RuntimeError::io("read", &p, e)),
    }
}

/// One mount of the plan.
#[derive(Debug, Clone)]
pub struct PlanMount {
    pub destination: String,
    pub typ: String,
    pub source: PathBuf,
    pub flags: u64,
    pub data: String,
    pub bind: bool,
    pub readonly: bool,
    /// Only where the destination exists already ([`OPTIONAL_MOUNT`]).
    pub optional: bool,
}

/// A mount option of strata's own: mount only over a destination the rootfs has, never
/// make it (a build step's `/etc/hosts`, which must not land in its layer).
pub const OPTIONAL_MOUNT: &str = "x-strata-optional";

/// Resource limits of the plan.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub memory: Option<i64>,
    /// Memory plus swap (-1: unlimited swap).
    pub swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub swappiness: Option<u64>,
    pub oom_kill_disable: bool,
}

impl Resources {
    /// Whether any limit is set (a cgroup with controllers is needed).
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.swap.is_some()
            || self.cpu_shares.is_some()
            || self.pids.is_some()
            || self.cpu_quota.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.swappiness.is_some()
            || self.oom_kill_disable
    }
}

/// The flat form of a spec the launcher works from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Bitmask of the capabilities kept (bounding, and effective for root).
    pub caps: u64,
    pub no_new_privs: bool,
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Whether strata's init runs as pid 1 with the command as its child.
    pub init: bool,
    pub oom_score_adj: Option<i32>,
    /// `(key, value)` of `linux.sysctl`, checked.
    pub sysctls: Vec<(String, String)>,
    pub mounts: Vec<PlanMount>,
    /// CLONE_NEW* flags.
    pub namespaces: u64,
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub resources: Resources,
    pub cgroup: String,
    pub terminal: bool,
    /// `(resource, soft, hard)`.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// The OCI `linux.seccomp` value, if any.
    pub seccomp: Option<serde_json::Value>,
    /// Where compiled seccomp programs are cached (set by the caller; `None`: compile).
    pub seccomp_cache: Option<PathBuf>,
    /// A network namespace to join (a file the engine keeps one at) instead of a new one.
    pub net_path: Option<PathBuf>,
    /// PID, IPC and UTS namespaces to join (another container's) instead of new ones:
    /// `(CLONE_NEW* flag, /proc/PID/ns/... file)`.
    pub join: Vec<(u64, PathBuf)>,
    /// Device nodes to make in the container's `/dev`.
    pub device_nodes: Vec<devices::Node>,
    /// The device allowlist.
    pub device_rules: Vec<devices::Rule>,
}

impl Plan {
    /// The container's cgroup: the hierarchies its limits and device rules need.
    pub fn cgroup(&self) -> Result<crate::cgroups::Cgroup> {
        crate::cgroups::Cgroup::for_container(&self.cgroup, &self.resources, &self.device_rules)
    }

    /// The compiled seccomp filters (cached under [`Plan::seccomp_cache`]), if any.
    pub fn seccomp_program(&self) -> Result<Option<crate::seccomp::compile::Program>> {
        self.seccomp
            .as_ref()
            .map(|v| crate::seccomp::program(v, self.seccomp_cache.as_deref()))
            .transpose()
    }

    /// Whether the container gets its own network namespace.
    pub fn new_net(&self) -> bool {
        self.namespaces & libc::CLONE_NEWNET as u64 != 0
    }

    /// The environment as C strings, and the argument vector.
    pub fn c_env(&self) -> Vec<CString> {
        self.env
            .iter()
            .filter_map(|e| CString::new(e.as_bytes()).ok())
            .collect()
    }
}

fn mount_flags(options: &[String]) -> (u64, String, bool, bool) {
    let mut flags = 0u64;
    let mut data = Vec::new();
    let mut bind = false;
    let mut ro = false;
    for o in options {
        match o.as_str() {
            "nosuid" => flags |= libc::MS_NOSUID,
            "noexec" => flags |= libc::MS_NOEXEC,
            "nodev" => flags |= libc::MS_NODEV,
            // Their opposites, as mount(8) reads them: the later option wins (a `--tmpfs
            // PATH:exec` over the default `noexec`).
            "suid" => flags &= !libc::MS_NOSUID,
            "exec" => flags &= !libc::MS_NOEXEC,
            "dev" => flags &= !libc::MS_NODEV,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "ro" => ro = true,
            "rw" => {}
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                flags |= libc::MS_REC;
            }
            "rprivate" | "private" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","), bind, ro)
}

/// Makes the container join the `kind` (`pid`, `ipc`, `uts`) namespace at `path`
/// (another container's `/proc/PID/ns/...`) instead of making its own.
pub fn set_namespace_path(spec: &mut Spec, kind: &str, path: &Path) -> Result<()> {
    let mut v = serde_json::to_value(&*spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let mut found = false;
    for ns in v["linux"]["namespaces"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if ns["type"] == kind {
            ns["path"] = json!(path);
            found = true;
        }
    }
    if !found {
        return Err(RuntimeError::Spec(format!(
            "the container has no {kind} namespace of its own to replace"
        )));
    }
    *spec = serde_json::from_value(v).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    Ok(())
}

/// Makes the container join the network namespace kept at `path` (`None`: a new one of
/// its own, or the host's when the spec has no network namespace).
pub fn set_network_path(spec: &mut Spec, path: Option<&Path>) -> Result<()> {
    let Some(linux) = spec.linux().clone() else {
        return Ok(());
    };
    let mut l = linux;
    let mut list = l.namespaces().clone().unwrap_or_default();
    for ns in list.iter_mut() {
        if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
            ns.set_path(path.map(Path::to_path_buf));
        }
    }
    l.set_namespaces(Some(list));
    spec.set_linux(Some(l));
    Ok(())
}

/// Reads the plan out of a spec.
pub fn plan(spec: &Spec) -> Result<Plan> {
    // Through JSON: the spec's own serialization is its stable interface.
    let v = serde_json::to_value(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let p = &v["process"];
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let args = strings(&p["args"]);
    if args.is_empty() {
        return Err(RuntimeError::Spec(
            "no command: give one after the image, or use an image with Cmd or Entrypoint".into(),
        ));
    }
    let mut caps = 0u64;
    for c in strings(&p["capabilities"]["bounding"]) {
        if let Some(n) = cap_number(&c) {
            caps |= 1 << n;
        }
    }
    let mut namespaces = 0u64;
    let mut net_path = None;
    let mut join = Vec::new();
    for ns in v["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(p) = ns["path"].as_str().filter(|p| !p.is_empty()) {
            let flag = match ns["type"].as_str().unwrap_or("") {
                "network" => {
                    net_path = Some(PathBuf::from(p));
                    continue;
                }
                "pid" => libc::CLONE_NEWPID,
                "ipc" => libc::CLONE_NEWIPC,
                "uts" => libc::CLONE_NEWUTS,
                other => {
                    return Err(RuntimeError::Spec(format!(
                        "joining an existing {other} namespace is not supported"
                    )))
                }
            };
            join.push((flag as u64, PathBuf::from(p)));
            continue;
        }
        namespaces |= match ns["type"].as_str().unwrap_or("") {
            "pid" => libc::CLONE_NEWPID,
            "mount" => libc::CLONE_NEWNS,
            "uts" => libc::CLONE_NEWUTS,
            "ipc" => libc::CLONE_NEWIPC,
            "network" => libc::CLONE_NEWNET,
            "cgroup" => libc::CLONE_NEWCGROUP,
            other => {
                return Err(RuntimeError::Spec(format!(
                    "unsupported namespace {other:?}"
                )))
            }
        } as u64;
    }
    let mut mounts = Vec::new();
    for m in v["mounts"].as_array().cloned().unwrap_or_default() {
        let options = strings(&m["options"]);
        let optional = options.iter().any(|o| o == OPTIONAL_MOUNT);
        let options: Vec<String> = options
            .into_iter()
            .filter(|o| o != OPTIONAL_MOUNT)
            .collect();
        let (flags, data, bind, readonly) = mount_flags(&options);
        let typ = m["type"].as_str().unwrap_or("none").to_string();
        mounts.push(PlanMount {
            destination: m["destination"].as_str().unwrap_or("").to_string(),
            bind: bind || typ == "bind",
            typ,
            source: PathBuf::from(m["source"].as_str().unwrap_or("none")),
            flags,
            data,
            readonly,
            optional,
        });
    }
    // Only sysctls that a namespace of the container's own scopes, whatever the spec says.
    let mut sysctls = Vec::new();
    for (k, val) in v["linux"]["sysctl"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        let val = val.as_str().unwrap_or_default().to_string();
        sysctl_key_path(&k)?;
        let own = match sysctl_namespace(&k) {
            Some("ipc") => namespaces & libc::CLONE_NEWIPC as u64 != 0,
            Some("network") => namespaces & libc::CLONE_NEWNET as u64 != 0 || net_path.is_some(),
            _ => false,
        };
        if !own {
            return Err(RuntimeError::Spec(format!(
                "sysctl {k} would change the host: the container has no namespace of its own for it"
            )));
        }
        sysctls.push((k, val));
    }
    let r = &v["linux"]["resources"];
    let mut rlimits = Vec::new();
    for l in p["rlimits"].as_array().cloned().unwrap_or_default() {
        let kind = l["type"].as_str().unwrap_or("");
        let res = crate::security::rlimit_resource(kind)
            .ok_or_else(|| RuntimeError::Spec(format!("unknown rlimit {kind:?}")))?;
        rlimits.push((
            res,
            l["soft"].as_u64().unwrap_or(0),
            l["hard"].as_u64().unwrap_or(0),
        ));
    }
    // A spec written before device rules existed gets Docker's defaults, never none.
    let device_rules = match r["devices"].as_array() {
        Some(list) => list
            .iter()
            .map(devices::Rule::from_json)
            .collect::<Result<Vec<_>>>()?,
        None => devices::default_rules(),
    };
    let device_nodes = v["linux"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(devices::Node::from_json)
        .collect::<Result<Vec<_>>>()?;
    let seccomp = Some(v["linux"]["seccomp"].clone()).filter(|s| !s.is_null());
    Ok(Plan {
        net_path,
        join,
        args,
        env: strings(&p["env"]),
        cwd: p["cwd"].as_str().unwrap_or("/").to_string(),
        uid: p["user"]["uid"].as_u64().unwrap_or(0) as u32,
        gid: p["user"]["gid"].as_u64().unwrap_or(0) as u32,
        additional_gids: p["user"]["additionalGids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_u64())
                    .map(|g| g as u32)
                    .collect()
            })
            .unwrap_or_default(),
        caps,
        no_new_privs: p["noNewPrivileges"].as_bool().unwrap_or(true),
        rootfs: PathBuf::from(v["root"]["path"].as_str().unwrap_or("")),
        readonly_root: v["root"]["readonly"].as_bool().unwrap_or(false),
        hostname: v["hostname"].as_str().map(str::to_string),
        domainname: v["domainname"].as_str().map(str::to_string),
        init: v["annotations"][INIT_ANNOTATION] == "true",
        oom_score_adj: p["oomScoreAdj"].as_i64().map(|a| a as i32),
        sysctls,
        mounts,
        namespaces,
        masked: strings(&v["linux"]["maskedPaths"]),
        readonly_paths: strings(&v["linux"]["readonlyPaths"]),
        resources: Resources {
            memory: r["memory"]["limit"].as_i64(),
            swap: r["memory"]["swap"].as_i64(),
            cpu_shares: r["cpu"]["shares"].as_u64(),
            pids: r["pids"]["limit"].as_i64(),
            cpu_quota: r["cpu"]["quota"].as_i64(),
            cpu_period: r["cpu"]["period"].as_u64(),
            cpuset_cpus: r["cpu"]["cpus"].as_str().map(str::to_string),
            cpuset_mems: r["cpu"]["mems"].as_str().map(str::to_string),
            swappiness: r["memory"]["swappiness"].as_u64(),
            oom_kill_disable: r["memory"]["disableOOMKiller"].as_bool().unwrap_or(false),
        },
        cgroup: v["linux"]["cgroupsPath"].as_str().unwrap_or("").to_string(),
        terminal: p["terminal"].as_bool().unwrap_or(false),
        rlimits,
        seccomp,
        seccomp_cache: None,
        device_nodes,
        device_rules,
    })
}

/// Fills what only a start knows into `spec`: the mounted rootfs and the user resolved
/// from the image's files.
pub fn resolve(spec: &mut Spec, rootfs: &Path, uid: u32, gid: u32, groups: Vec<u32>) -> Result<()> {
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::Other("config.json has no process".into()))?;
    let mut user = process.user().clone();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids(Some(groups));
    process.set_user(user);
    spec.set_process(Some(process));
    Ok(())
}

/// The host paths bound into the container (its volumes and bind mounts).
pub fn bind_sources(spec: &Spec) -> Vec<PathBuf> {
    spec.mounts()
        .iter()
        .flatten()
        .filter_map(|m| m.source().clone())
        .collect()
}

/// Each bind mount's host source and container destination.
pub fn bind_sources_and_destinations(spec: &Option<Spec>) -> Vec<(PathBuf, String)> {
    spec.iter()
        .flat_map(|s| s.mounts().iter().flatten())
        .filter(|m| m.typ().as_deref() == Some("bind"))
        .filter_map(|m| {
            Some((
                m.source().clone()?,
                m.destination().to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

/// Memory plus swap for memory limit `m` and the asked total `swap` (Docker's rules:
/// unset is twice the memory, -1 unlimited, anything else at least the memory).
pub fn swap_of(m: i64, swap: Option<i64>) -> Result<i64> {
    match swap {
        None | Some(0) => Ok(m.saturating_mul(2)),
        Some(-1) => Ok(-1),
        Some(s) if s >= m => Ok(s),
        Some(s) => Err(RuntimeError::Spec(format!(
            "--memory-swap {s} is less than --memory {m}: it is memory plus swap, so give at least the memory (or -1 for unlimited swap)"
        ))),
    }
}

/// Sets the limits a start applies (`update`): memory and swap bytes, pids, CPU quota and
/// period; `None` leaves one as it is.
pub fn set_limits(spec: &mut Spec, r: &Resources) -> Result<()> {
    use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res: LinuxResources = linux.resources().clone().unwrap_or_default();
    if r.memory.is_some() || r.swap.is_some() {
        let mut mem: LinuxMemory = res.memory().unwrap_or_default();
        let m = match r.memory.or(mem.limit()) {
            Some(m) => m,
            None => {
                return Err(RuntimeError::Spec(
                    "--memory-swap needs a memory limit: give --memory too".into(),
                ))
            }
        };
        // A new memory limit without a new swap keeps Docker's default (twice it).
        let swap = match (r.swap, r.memory) {
            (Some(s), _) => swap_of(m, Some(s))?,
            (None, Some(_)) => swap_of(m, None)?,
            (None, None) => mem.swap().unwrap_or(m),
        };
        mem.set_limit(Some(m));
        mem.set_swap(Some(swap));
        res.set_memory(Some(mem));
    }
    if let Some(s) = r.cpu_shares {
        let mut cpu: LinuxCpu = res.cpu().clone().unwrap_or_default();
        cpu.set_shares(Some(s));
        res.set_cpu(Some(cpu));
    }
    if let Some(p) = r.pids {
        let mut pids: LinuxPids = res.pids().unwrap_or_default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    if let Some(q) = r.cpu_quota {
        let mut cpu: LinuxCpu = res.cpu().clone().unwrap_or_default();
        cpu.set_quota(Some(q));
        cpu.set_period(Some(r.cpu_period.unwrap_or(100_000)));
        res.set_cpu(Some(cpu));
    }
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    Ok(())
}

/// A `--tmpfs` mount's options: Docker's `nosuid,nodev,noexec` unless the given ones say
/// the opposite (`exec`, `suid`, `dev`), then the given ones, each once.
fn tmpfs_options(given: &str) -> Vec<&str> {
    let given: Vec<&str> = given
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    let mut opts: Vec<&str> = ["nosuid", "nodev", "noexec"]
        .into_iter()
        .filter(|d| !given.contains(&&d[2..]))
        .collect();
    for o in given {
        if !opts.contains(&o) {
            opts.push(o);
        }
    }
    opts
}
