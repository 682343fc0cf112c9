//! Docker's seccomp profile format, resolved for one container into the OCI runtime spec's
//! `linux.seccomp` form: entries whose `includes`/`excludes` (capabilities, architectures,
//! minimum kernel) do not hold for this container are dropped, as dockerd does when it
//! writes a container's spec. The builtin profile is Docker's own default.

use crate::error::{Result, RuntimeError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Docker's default profile (moby `profiles/seccomp/default.json`, 20.10.24 as packaged by
/// Debian 12 in golang-github-docker-docker-dev; Apache-2.0).
pub const DOCKER_DEFAULT: &str = include_str!("../../profiles/docker-default.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Docker's (Go's) name for this machine's architecture, as profiles spell it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `(major, minor)` of the running kernel.
pub fn kernel_version() -> (u32, u32) {
    let rel = rustix::system::uname();
    let s = rel.release().to_string_lossy().to_string();
    parse_version(&s).unwrap_or((0, 0))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The facts about a container that a profile's conditions test.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Capability names (`CAP_...`) in the container's bounding set.
    pub caps: &'a [String],
    /// Go-style architecture name (`amd64`).
    pub arch: &'a str,
    pub kernel: (u32, u32),
}

impl Filter {
    fn arches_has(&self, arch: &str) -> bool {
        self.arches
            .as_ref()
            .is_some_and(|a| a.iter().any(|x| x == arch))
    }
}

/// Resolves a Docker-format profile (JSON text) for `t` into an OCI `linux.seccomp` value.
/// Refuses, with the reason, a profile that is not valid JSON of that shape.
pub fn resolve(profile: &str, t: &Target) -> Result<Value> {
    let p: Profile = serde_json::from_str(profile)
        .map_err(|e| RuntimeError::Spec(format!("seccomp profile: {e}")))?;
    let mut arches: Vec<String> = Vec::new();
    if let Some(map) = &p.arch_map {
        for m in map {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.clone().unwrap_or_default());
        }
    } else if let Some(a) = &p.architectures {
        arches = a.clone();
    }
    let mut syscalls = Vec::new();
    for s in p.syscalls.unwrap_or_default() {
        let inc = s.includes.unwrap_or_default();
        let exc = s.excludes.unwrap_or_default();
        if inc.arches.as_ref().is_some_and(|a| !a.is_empty()) && !inc.arches_has(t.arch) {
            continue;
        }
        if let Some(caps) = &inc.caps {
            if !caps.iter().all(|c| t.caps.contains(c)) {
                continue;
            }
        }
        if let Some(min) = &inc.min_kernel {
            let need = parse_version(min).ok_or_else(|| {
                RuntimeError::Spec(format!("seccomp profile: bad minKernel {min:?}"))
            })?;
            if t.kernel < need {
                continue;
            }
        }
        if exc.arches_has(t.arch) {
            continue;
        }
        if exc
            .caps
            .as_ref()
            .is_some_and(|caps| caps.iter().any(|c| t.caps.contains(c)))
        {
            continue;
        }
        let mut names = s.names.unwrap_or_default();
        if let Some(n) = s.name {
            names.push(n);
        }
        if names.is_empty() {
            continue;
        }
        let mut entry = json!({"names": names, "action": s.action});
        if let Some(e) = s.errno_ret {
            entry["errnoRet"] = e.into();
        }
        if let Some(args) = s.args.filter(|a| !a.is_empty()) {
            entry["args"] = Value::Array(args);
        }
        syscalls.push(entry);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = e.into();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn default_profile_follows_capabilities_and_arch() {
        let caps: Vec<String> = crate::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let v = resolve(DOCKER_DEFAULT, &t).unwrap();
        let names = names_of(&v);
        assert!(names.iter().any(|n| n == "read"));
        assert!(names.iter().any(|n| n == "arch_prctl"), "amd64 only entry");
        assert!(!names.iter().any(|n| n == "set_tls"), "arm only entry");
        assert!(!names.iter().any(|n| n == "keyctl"));
        assert!(!names.iter().any(|n| n == "mount"), "needs CAP_SYS_ADMIN");
        // clone3 is answered ENOSYS without CAP_SYS_ADMIN, so libc falls back to clone.
        let clone3 = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["names"][0] == "clone3")
            .unwrap();
        assert_eq!(clone3["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3["errnoRet"], 38);
        let mut admin = caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let t = Target { caps: &admin, ..t };
        let names = names_of(&resolve(DOCKER_DEFAULT, &t).unwrap());
        assert!(names.iter().any(|n| n == "mount"));
        let t = Target {
            kernel: (4, 4),
            ..t
        };
        let v = resolve(DOCKER_DEFAULT, &t).unwrap();
        assert!(!names_of(&v).iter().any(|n| n == "ptrace"), "minKernel 4.8");
    }

    #[test]
    fn bad_profiles_are_refused() {
        let t = Target {
            caps: &[],
            arch: "amd64",
            kernel: (6, 1),
        };
        assert!(resolve("{", &t).is_err());
        assert!(
            resolve("{\"syscalls\": []}", &t).is_err(),
            "no defaultAction"
        );
    }
}
