//! Which devices a container may use: Docker's default allowlist, `--device` and
//! `--device-cgroup-rule`, in the OCI spec's `linux.resources.devices` form, enforced by
//! the cgroup v1 `devices` controller or, where a cgroup v2 hierarchy is mounted, by an
//! eBPF device program ([`bpf`]) as runc and crun attach. The kernel asks either one at
//! every open and mknod of a device node, so a node made with CAP_MKNOD, found in the
//! image or bind-mounted in cannot be opened unless a rule allows it.

pub mod bpf;

use crate::error::{Result, RuntimeError};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One device rule (the OCI `LinuxDeviceCgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `a` (all), `c` or `b`.
    pub kind: char,
    /// `None` is `*`.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of `r`, `w`, `m`.
    pub access: String,
}

impl Rule {
    fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    /// The OCI JSON form.
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"allow": self.allow, "type": self.kind.to_string(), "access": self.access});
        if let Some(m) = self.major {
            v["major"] = m.into();
        }
        if let Some(m) = self.minor {
            v["minor"] = m.into();
        }
        v
    }

    /// Reads the OCI JSON form (absent type is `a`, absent access `rwm`).
    pub fn from_json(v: &Value) -> Result<Rule> {
        let kind = v["type"].as_str().unwrap_or("a");
        let kind = match kind {
            "a" | "c" | "b" => kind.chars().next().unwrap_or('a'),
            other => return Err(RuntimeError::Spec(format!("device rule type {other:?}"))),
        };
        let access = v["access"].as_str().unwrap_or("rwm").to_string();
        check_access(&access)?;
        Ok(Rule {
            allow: v["allow"].as_bool().unwrap_or(false),
            kind,
            major: v["major"].as_i64(),
            minor: v["minor"].as_i64(),
            access,
        })
    }

    /// The line the v1 `devices.allow`/`devices.deny` files take: `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let n = |x: Option<i64>| x.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn check_access(a: &str) -> Result<()> {
    if a.is_empty() || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(RuntimeError::Spec(format!(
            "device access {a:?}: use letters of rwm"
        )));
    }
    Ok(())
}

/// Docker's default rules: nothing, then mknod of any node, then read/write/mknod of the
/// harmless character devices (null, zero, full, random, urandom, tty, console, ptmx and
/// the container's pseudo-terminals).
pub fn default_rules() -> Vec<Rule> {
    let mut r = vec![Rule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: "rwm".into(),
    }];
    r.push(Rule::allow('c', None, None, "m"));
    r.push(Rule::allow('b', None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        r.push(Rule::allow('c', Some(major), Some(minor), "rwm"));
    }
    r.push(Rule::allow('c', Some(136), None, "rwm"));
    r
}

/// Parses `--device-cgroup-rule` (`c 1:3 rwm`, `b 8:* r`, `a *:* rwm`): an allow rule.
pub fn parse_cgroup_rule(s: &str) -> Result<Rule> {
    let bad = || {
        RuntimeError::Spec(format!(
            "invalid device cgroup rule {s:?}: use TYPE MAJOR:MINOR ACCESS, like 'c 1:3 rwm' or 'b 8:* r'"
        ))
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [kind, nums, access] = parts.as_slice() else {
        return Err(bad());
    };
    let kind = match *kind {
        "a" | "c" | "b" => kind.chars().next().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    let (ma, mi) = nums.split_once(':').ok_or_else(bad)?;
    let num = |x: &str| -> Result<Option<i64>> {
        if x == "*" {
            Ok(None)
        } else {
            x.parse::<u32>().map(|n| Some(n as i64)).map_err(|_| bad())
        }
    };
    check_access(access).map_err(|_| bad())?;
    Ok(Rule::allow(kind, num(ma)?, num(mi)?, access))
}

/// A device node to create in the container's `/dev` (the OCI `LinuxDevice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Node {
    /// The OCI JSON form.
    pub fn to_json(&self) -> Value {
        json!({"path": self.path, "type": self.kind.to_string(), "major": self.major,
               "minor": self.minor, "fileMode": self.mode, "uid": self.uid, "gid": self.gid})
    }

    /// Reads the OCI JSON form.
    pub fn from_json(v: &Value) -> Result<Node> {
        let path = v["path"].as_str().unwrap_or("");
        if !path.starts_with("/dev/") || path.split('/').any(|c| c == "..") {
            return Err(RuntimeError::Spec(format!(
                "device path {path:?} must be under /dev"
            )));
        }
        let kind = match v["type"].as_str().unwrap_or("") {
            "c" | "u" => 'c',
            "b" => 'b',
            "p" => 'p',
            other => return Err(RuntimeError::Spec(format!("device type {other:?}"))),
        };
        Ok(Node {
            path: path.into(),
            kind,
            major: v["major"].as_i64().unwrap_or(0),
            minor: v["minor"].as_i64().unwrap_or(0),
            mode: v["fileMode"].as_u64().unwrap_or(0o666) as u32 & 0o7777,
            uid: v["uid"].as_u64().unwrap_or(0) as u32,
            gid: v["gid"].as_u64().unwrap_or(0) as u32,
        })
    }

    /// The host device at `host` (followed if a symlink), to appear at `path`.
    pub fn of_host(host: &Path, path: &str) -> Result<Node> {
        let md = std::fs::metadata(host).map_err(|e| RuntimeError::io("read device", host, e))?;
        let kind = if md.file_type().is_char_device() {
            'c'
        } else if md.file_type().is_block_device() {
            'b'
        } else {
            return Err(RuntimeError::Spec(format!(
                "{} is not a device node",
                host.display()
            )));
        };
        let rdev = md.rdev();
        Ok(Node {
            path: path.into(),
            kind,
            major: rustix::fs::major(rdev) as i64,
            minor: rustix::fs::minor(rdev) as i64,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
        })
    }
}

/// A host device given to a container (Docker's `DeviceMapping`): typed so the CLI's
/// `--device` string and the API's object meet in one form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceSpec {
    #[serde(rename = "PathOnHost")]
    pub host: std::path::PathBuf,
    #[serde(rename = "PathInContainer")]
    pub container: String,
    /// Any of `r`, `w`, `m` (read, write, mknod).
    #[serde(rename = "CgroupPermissions")]
    pub permissions: String,
}

impl DeviceSpec {
    /// Parses `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub fn parse(s: &str) -> Result<DeviceSpec> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, dest, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if is_permissions(p) => (*h, *h, *p),
            [h, d] => (*h, *d, "rwm"),
            [h, d, p] if is_permissions(p) => (*h, *d, *p),
            _ => {
                return Err(RuntimeError::Spec(format!(
                    "invalid --device {s:?}: use HOST[:CONTAINER][:rwm]"
                )))
            }
        };
        Ok(DeviceSpec {
            host: host.into(),
            container: dest.into(),
            permissions: perms.into(),
        })
    }

    /// The node to make in the container and its allow rule, checked: an absolute host
    /// path that is a device node, a container path under /dev, permissions of `rwm`.
    pub fn resolve(&self) -> Result<(Node, Rule)> {
        let container = if self.container.is_empty() {
            self.host.to_string_lossy().into_owned()
        } else {
            self.container.clone()
        };
        let perms = if self.permissions.is_empty() {
            "rwm"
        } else {
            self.permissions.as_str()
        };
        if !is_permissions(perms) {
            return Err(RuntimeError::Spec(format!(
                "invalid device permissions {perms:?} for {}: use any of r, w, m",
                self.host.display()
            )));
        }
        if !self.host.is_absolute() || !container.starts_with("/dev/") {
            return Err(RuntimeError::Spec(format!(
                "invalid device {} -> {container}: the host path must be absolute and the container path under /dev",
                self.host.display()
            )));
        }
        let node = Node::of_host(&self.host, &container)?;
        let rule = Rule::allow(node.kind, Some(node.major), Some(node.minor), perms);
        Ok((node, rule))
    }
}

fn is_permissions(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// Parses `--device HOST[:CONTAINER][:PERMISSIONS]` into the node and its allow rule.
pub fn parse_device(s: &str) -> Result<(Node, Rule)> {
    DeviceSpec::parse(s)?.resolve()
}

/// Every device node of the host's `/dev` (as `--privileged` gives them), but those that
/// belong to the host's own terminals and the container's own mounts.
pub fn host_nodes() -> Vec<Node> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            let rel = p
                .strip_prefix("/dev")
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            if ft.is_dir() {
                if !matches!(rel.as_str(), "pts" | "shm" | "mqueue" | ".lxc" | ".udev") {
                    stack.push(p);
                }
                continue;
            }
            if matches!(
                rel.as_str(),
                "console" | "ptmx" | "tty" | "full" | "null" | "zero" | "random" | "urandom"
            ) {
                continue;
            }
            if ft.is_char_device() || ft.is_block_device() {
                if let Ok(n) = Node::of_host(&p, &format!("/dev/{rel}")) {
                    out.push(n);
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether `rules` allow everything (`a *:* rwm` last, as `--privileged` writes): then no
/// device controller is needed at all.
pub fn allows_all(rules: &[Rule]) -> bool {
    rules.last().is_some_and(|r| {
        r.allow && r.kind == 'a' && r.major.is_none() && r.minor.is_none() && {
            let a = &r.access;
            a.contains('r') && a.contains('w') && a.contains('m')
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        let r = parse_cgroup_rule("c 1:3 rwm").unwrap();
        assert_eq!(r.v1_line(), "c 1:3 rwm");
        let r = parse_cgroup_rule("b 8:* r").unwrap();
        assert_eq!((r.major, r.minor), (Some(8), None));
        assert_eq!(Rule::from_json(&r.to_json()).unwrap(), r);
        for bad in ["c 1:3", "x 1:3 rw", "c 1:3 rwx", "c a:3 r", "c 13 r", ""] {
            assert!(parse_cgroup_rule(bad).is_err(), "{bad}");
        }
        assert!(!allows_all(&default_rules()));
        assert!(allows_all(&[Rule::allow('a', None, None, "rwm")]));
    }

    #[test]
    fn device_flags_parse() {
        let (n, r) = parse_device("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!((n.kind, n.major, n.minor), ('c', 1, 3));
        assert_eq!(n.path, "/dev/mynull");
        assert_eq!(r.access, "r");
        let (n, r) = parse_device("/dev/zero").unwrap();
        assert_eq!((n.path.as_str(), r.access.as_str()), ("/dev/zero", "rwm"));
        assert!(parse_device("/etc/passwd").is_err(), "not a device");
        assert!(parse_device("/dev/null:/etc/x").is_err(), "outside /dev");
        assert!(parse_device("dev/null").is_err());
        assert!(Node::from_json(&json!({"path": "/dev/../etc/x", "type": "c"})).is_err());
    }
}
