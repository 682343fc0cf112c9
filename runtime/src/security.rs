//! The security options of a container, as Docker names them: `--privileged`,
//! `--cap-add`/`--cap-drop`, `--security-opt seccomp=…|no-new-privileges`, `--device`,
//! `--device-cgroup-rule` and `--ulimit`, and how each resolves into the runtime spec's
//! terms (capability names, a seccomp profile, device rules, rlimits).

use crate::error::{Result, RuntimeError};
use std::path::PathBuf;

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
pub const CAP_NAMES: &[&str] = &[
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

/// The number of capability `name` (`CAP_...`).
pub fn cap_number(name: &str) -> Option<u32> {
    CAP_NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// Which seccomp profile a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Builtin,
    /// No filter.
    Unconfined,
    /// A Docker-format profile read from this file (its text).
    File { path: PathBuf, text: String },
}

/// The security options given on the command line (or in an API request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub seccomp: Seccomp,
    /// strata sets `no_new_privs` unless told `no-new-privileges=false`.
    pub no_new_privs: bool,
    /// `--device HOST[:CONTAINER][:rwm]`.
    pub devices: Vec<crate::devices::DeviceSpec>,
    /// `--device-cgroup-rule 'c 1:3 rwm'`.
    pub device_cgroup_rules: Vec<String>,
    /// `--ulimit nofile=1024:2048`.
    pub ulimits: Vec<Ulimit>,
}

impl Default for SecurityOpts {
    fn default() -> Self {
        SecurityOpts {
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            seccomp: Seccomp::Builtin,
            no_new_privs: true,
            devices: Vec::new(),
            device_cgroup_rules: Vec::new(),
            ulimits: Vec::new(),
        }
    }
}

impl SecurityOpts {
    /// Applies one `--security-opt` value (`seccomp=unconfined`, `seccomp=PATH`,
    /// `no-new-privileges[=true|false]`; Docker's `:` separator is taken too).
    pub fn security_opt(&mut self, s: &str) -> Result<()> {
        let (key, value) = match s.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => self.seccomp = Seccomp::Unconfined,
            ("seccomp", Some("builtin" | "default")) => self.seccomp = Seccomp::Builtin,
            ("seccomp", Some(path)) if !path.is_empty() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| RuntimeError::io("read the seccomp profile", path, e))?;
                self.seccomp = Seccomp::File {
                    path: path.into(),
                    text,
                };
            }
            ("no-new-privileges", None | Some("true")) => self.no_new_privs = true,
            ("no-new-privileges", Some("false")) => self.no_new_privs = false,
            ("apparmor" | "label" | "systempaths", _) => {
                return Err(RuntimeError::Spec(format!(
                    "--security-opt {key} is not supported by strata: it has no AppArmor or SELinux support"
                )))
            }
            _ => {
                return Err(RuntimeError::Spec(format!(
                    "invalid --security-opt {s:?}: use seccomp=unconfined, seccomp=PATH or no-new-privileges[=true|false]"
                )))
            }
        }
        Ok(())
    }

    /// The capability names the container keeps: every one the host grants with
    /// `--privileged`, else Docker's set with `--cap-add`/`--cap-drop` applied.
    pub fn capabilities(&self) -> Result<Vec<String>> {
        let host = host_caps();
        if self.privileged {
            return Ok(host);
        }
        let norm = |list: &[String]| -> Result<Vec<String>> {
            list.iter()
                .map(|c| {
                    let up = c.to_ascii_uppercase();
                    if up == "ALL" {
                        return Ok(up);
                    }
                    let name = if up.starts_with("CAP_") {
                        up
                    } else {
                        format!("CAP_{up}")
                    };
                    match cap_number(&name) {
                        Some(_) => Ok(name),
                        None => Err(RuntimeError::Spec(format!(
                            "unknown capability {c:?}: use a name like NET_ADMIN or ALL"
                        ))),
                    }
                })
                .collect()
        };
        let add = norm(&self.cap_add)?;
        let drop = norm(&self.cap_drop)?;
        let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
            CAP_NAMES.iter().map(|s| s.to_string()).collect()
        } else if drop.iter().any(|c| c == "ALL") {
            Vec::new()
        } else {
            DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
        };
        for c in add.iter().filter(|c| *c != "ALL") {
            if !caps.contains(c) {
                caps.push(c.clone());
            }
        }
        if !add.iter().any(|c| c == "ALL") {
            caps.retain(|c| !drop.contains(c));
        } else {
            caps.retain(|c| !drop.contains(c) || add.contains(c));
        }
        // Nothing the host itself does not grant.
        caps.retain(|c| host.contains(c));
        Ok(caps)
    }

    /// The rlimits: Docker's default open-files limit, then `--ulimit` values.
    pub fn rlimits(&self) -> Result<Vec<Rlimit>> {
        let mut out = default_rlimits();
        for u in &self.ulimits {
            let r = u.to_rlimit()?;
            out.retain(|x| x.kind != r.kind);
            out.push(r);
        }
        Ok(out)
    }
}

/// What this host enforces for every container by default, in Docker's `info`
/// `SecurityOptions` form (`name=seccomp,profile=builtin`, ...).
pub fn host_security_options() -> Vec<String> {
    let mut out = Vec::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if status.lines().any(|l| l.starts_with("Seccomp:")) {
        out.push("name=seccomp,profile=builtin".to_string());
    }
    if std::path::Path::new("/proc/self/ns/cgroup").exists() {
        out.push("name=cgroupns".to_string());
    }
    out.push("name=no-new-privileges".to_string());
    let default = crate::devices::default_rules();
    match crate::cgroups::DeviceMode::for_rules(&default) {
        Ok(crate::cgroups::DeviceMode::Bpf) => out.push("name=devices,cgroup=bpf".into()),
        Ok(crate::cgroups::DeviceMode::V1) => out.push("name=devices,cgroup=v1".into()),
        _ => {}
    }
    out
}

/// The capability names in this process's bounding set (what the host grants).
pub fn host_caps() -> Vec<String> {
    let bits = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0);
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// One resource limit, as the OCI spec writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE` and so on.
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// The kernel's resource number for `RLIMIT_<NAME>`.
pub fn rlimit_resource(kind: &str) -> Option<libc::__rlimit_resource_t> {
    let name = kind.strip_prefix("RLIMIT_")?.to_ascii_lowercase();
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Docker's default: 1,048,576 open files, soft and hard (what dockerd's containers get
/// from containerd's service limit), but never above this process's own hard limit, which
/// a container could not be given without CAP_SYS_RESOURCE.
pub fn default_rlimits() -> Vec<Rlimit> {
    let mut cap = 1_048_576u64;
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } == 0 {
        cap = cap.min(cur.rlim_max);
    }
    vec![Rlimit {
        kind: "RLIMIT_NOFILE".into(),
        soft: cap,
        hard: cap,
    }]
}

/// A resource limit as Docker's API gives it (`Ulimit`): a name like `nofile` and soft
/// and hard values, -1 for unlimited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Soft")]
    pub soft: i64,
    #[serde(rename = "Hard")]
    pub hard: i64,
}

const ULIMIT_HELP: &str = "use NAME=SOFT[:HARD], like nofile=1024:2048";

impl Ulimit {
    /// Parses `--ulimit NAME=SOFT[:HARD]` (`-1` or `unlimited` for no limit).
    pub fn parse(s: &str) -> Result<Ulimit> {
        let bad =
            |why: &str| RuntimeError::Spec(format!("invalid --ulimit {s:?}: {why}; {ULIMIT_HELP}"));
        let (name, vals) = s.split_once('=').ok_or_else(|| bad("no ="))?;
        let num = |v: &str| -> Result<i64> {
            match v {
                "-1" | "unlimited" => Ok(-1),
                _ => v
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| bad("not a number")),
            }
        };
        let (soft, hard) = match vals.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(vals)?, num(vals)?),
        };
        let u = Ulimit {
            name: name.to_string(),
            soft,
            hard,
        };
        u.to_rlimit()?;
        Ok(u)
    }

    /// The OCI form, checked: a known name, values of -1 (unlimited) or more, soft not
    /// above hard.
    pub fn to_rlimit(&self) -> Result<Rlimit> {
        let bad = |why: &str| {
            RuntimeError::Spec(format!(
                "invalid ulimit {}={}:{}: {why}; {ULIMIT_HELP}",
                self.name, self.soft, self.hard
            ))
        };
        if !RLIMITS.iter().any(|(n, _)| *n == self.name) {
            return Err(bad("unknown limit name"));
        }
        let value = |v: i64| -> Result<u64> {
            match v {
                -1 => Ok(u64::MAX),
                v if v >= 0 => Ok(v as u64),
                _ => Err(bad("a value below -1")),
            }
        };
        let (soft, hard) = (value(self.soft)?, value(self.hard)?);
        if soft > hard {
            return Err(bad("the soft limit is above the hard one"));
        }
        Ok(Rlimit {
            kind: format!("RLIMIT_{}", self.name.to_ascii_uppercase()),
            soft,
            hard,
        })
    }
}

/// Parses `--ulimit NAME=SOFT[:HARD]` into the OCI form.
pub fn parse_ulimit(s: &str) -> Result<Rlimit> {
    Ulimit::parse(s)?.to_rlimit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_docker_rules() {
        let host = host_caps();
        let mut o = SecurityOpts::default();
        let d = o.capabilities().unwrap();
        assert!(d.iter().all(|c| DEFAULT_CAPS.contains(&c.as_str())));
        o.cap_add = vec!["net_admin".into()];
        o.cap_drop = vec!["CAP_MKNOD".into(), "chown".into()];
        let c = o.capabilities().unwrap();
        assert_eq!(
            c.contains(&"CAP_NET_ADMIN".to_string()),
            host.contains(&"CAP_NET_ADMIN".to_string())
        );
        assert!(!c.contains(&"CAP_MKNOD".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        o.cap_drop = vec!["ALL".into()];
        o.cap_add = vec!["KILL".into()];
        assert_eq!(o.capabilities().unwrap(), vec!["CAP_KILL".to_string()]);
        o.cap_add = vec!["NOPE".into()];
        assert!(o.capabilities().is_err());
        o.privileged = true;
        assert_eq!(o.capabilities().unwrap(), host);
    }

    #[test]
    fn security_opts_and_ulimits_parse() {
        let mut o = SecurityOpts::default();
        o.security_opt("seccomp=unconfined").unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        o.security_opt("no-new-privileges=false").unwrap();
        assert!(!o.no_new_privs);
        o.security_opt("no-new-privileges").unwrap();
        assert!(o.no_new_privs);
        assert!(o.security_opt("seccomp=/no/such/file").is_err());
        assert!(o.security_opt("apparmor=x").is_err());
        assert!(o.security_opt("bogus").is_err());
        let r = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.soft, r.hard),
            ("RLIMIT_NOFILE", 1024, 2048)
        );
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, u64::MAX);
        for bad in ["nofile", "nofile=2:1", "bogus=1", "nofile=x"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
        assert!(rlimit_resource("RLIMIT_NOFILE").is_some());
    }
}
