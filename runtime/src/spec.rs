//! The OCI runtime spec (`config.json`) of a container, and the launch plan read from it.
//!
//! `create` writes the spec (through the `oci-spec` types, so it is a valid runtime bundle
//! a peer runtime could also start); `start` reads it back into a [`Plan`], the flat form
//! the launcher needs. Defaults follow Docker: its capability set, masked and read-only
//! paths, `/dev` contents, and `no_new_privs`.

use crate::error::{Result, RuntimeError};
use oci_spec::runtime::Spec;
use serde_json::json;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The capabilities Docker grants a container by default.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capability names by number (linux/capability.h).
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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
    /// Bytes (`-m`).
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    /// CPUs (`--cpus 1.5`).
    pub cpus: Option<f64>,
    pub terminal: bool,
    /// The cgroup path under each hierarchy (`strata/<id>`).
    pub cgroup: String,
}

/// Builds the OCI runtime spec for `r`.
pub fn build(r: &RunSpec) -> Result<Spec> {
    let caps: Vec<&str> = DEFAULT_CAPS.to_vec();
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "uts"}),
        json!({"type": "ipc"}),
    ];
    if !r.network_host {
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for b in &r.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if b.readonly {
            opts.push("ro");
        }
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": opts}));
    }
    let mut resources = json!({});
    if let Some(m) = r.memory {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(p) = r.pids {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(c) = r.cpus {
        resources["cpu"] = json!({"quota": (c * 100_000.0) as i64, "period": 100_000});
    }
    let v = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": r.terminal,
            "user": {"uid": r.uid, "gid": r.gid, "additionalGids": r.additional_gids},
            "args": r.args,
            "env": r.env,
            "cwd": if r.cwd.is_empty() { "/" } else { r.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
        },
        "root": {"path": r.rootfs, "readonly": r.read_only},
        "hostname": r.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": r.cgroup,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    serde_json::from_value(v).map_err(|e| RuntimeError::Spec(e.to_string()))
}

/// Writes `spec` as `config.json` in `bundle` (temp name, fsync, rename).
pub fn save(spec: &Spec, bundle: &Path) -> Result<()> {
    let p = bundle.join("config.json");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    drivers::fsutil::write_atomic(&p, &data).map_err(|e| RuntimeError::io("write", p, e))
}

/// Writes the spec a start resolved (its rootfs path and user) over `config.json`,
/// atomically but without a flush: it is made again at every start.
pub fn save_resolved(spec: &Spec, bundle: &Path) -> Result<()> {
    let p = bundle.join("config.json");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    drivers::fsutil::write_replace(&p, &data).map_err(|e| RuntimeError::io("write", p, e))
}

/// Reads `config.json` from `bundle`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let p = bundle.join("config.json");
    let data = std::fs::read(&p).map_err(|e| RuntimeError::io("read", &p, e))?;
    serde_json::from_slice(&data).map_err(|e| RuntimeError::Spec(format!("{}: {e}", p.display())))
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
}

/// Resource limits of the plan.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
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
    pub mounts: Vec<PlanMount>,
    /// CLONE_NEW* flags.
    pub namespaces: u64,
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub resources: Resources,
    pub cgroup: String,
    pub terminal: bool,
}

impl Plan {
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

fn cap_number(name: &str) -> Option<u32> {
    CAP_NAMES.iter().position(|n| *n == name).map(|i| i as u32)
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
    for ns in v["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
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
        let (flags, data, bind, readonly) = mount_flags(&strings(&m["options"]));
        let typ = m["type"].as_str().unwrap_or("none").to_string();
        mounts.push(PlanMount {
            destination: m["destination"].as_str().unwrap_or("").to_string(),
            bind: bind || typ == "bind",
            typ,
            source: PathBuf::from(m["source"].as_str().unwrap_or("none")),
            flags,
            data,
            readonly,
        });
    }
    let r = &v["linux"]["resources"];
    Ok(Plan {
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
        mounts,
        namespaces,
        masked: strings(&v["linux"]["maskedPaths"]),
        readonly_paths: strings(&v["linux"]["readonlyPaths"]),
        resources: Resources {
            memory: r["memory"]["limit"].as_i64(),
            pids: r["pids"]["limit"].as_i64(),
            cpu_quota: r["cpu"]["quota"].as_i64(),
            cpu_period: r["cpu"]["period"].as_u64(),
        },
        cgroup: v["linux"]["cgroupsPath"].as_str().unwrap_or("").to_string(),
        terminal: p["terminal"].as_bool().unwrap_or(false),
    })
}
