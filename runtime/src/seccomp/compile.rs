//! The OCI `linux.seccomp` form compiled to classic BPF with `seccompiler`.
//!
//! seccompiler builds one filter per on-match action, so a profile becomes a short stack:
//! first the allow list (its mismatch action is the profile's default), then one filter
//! per other action (`ERRNO(ENOSYS)` for clone3, say) whose mismatch action is allow. The
//! kernel runs every filter and keeps the most severe answer, the latest installed among
//! equals, which is libseccomp's "a rule for this syscall beats the default".

use super::syscalls;
use crate::error::{Result, RuntimeError};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use serde_json::Value;
use std::collections::BTreeMap;

pub use seccompiler::sock_filter;

/// Filters in installation order.
pub type Program = Vec<Vec<sock_filter>>;

fn bad(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Spec(format!("seccomp: {}", msg.into()))
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<SeccompAction> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(default_errno)),
        other => {
            return Err(bad(format!(
                "action {other} is not supported: use ALLOW, ERRNO, KILL, KILL_PROCESS, TRAP, LOG or TRACE"
            )))
        }
    })
}

fn condition(arg: &Value) -> Result<SeccompCondition> {
    let index = arg["index"]
        .as_u64()
        .filter(|i| *i < 6)
        .ok_or_else(|| bad(format!("argument index must be 0 to 5: {arg}")))?;
    let value = arg["value"].as_u64().unwrap_or(0);
    let two = arg["valueTwo"].as_u64().unwrap_or(0);
    let (op, v) = match arg["op"].as_str().unwrap_or("") {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, value),
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, value),
        // libseccomp's masked compare: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(value), two),
        other => return Err(bad(format!("unknown argument operator {other:?}"))),
    };
    SeccompCondition::new(index as u8, SeccompCmpArgLen::Qword, op, v)
        .map_err(|e| bad(e.to_string()))
}

/// The syscall table of the architecture this build runs on.
fn target() -> Result<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else {
        Err(bad(format!(
            "filters are built for x86_64 only in this build, not {}: use --security-opt seccomp=unconfined",
            std::env::consts::ARCH
        )))
    }
}

/// The rules of one action by syscall number; `None` means unconditional.
type Group = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Compiles an OCI `linux.seccomp` value.
pub fn compile(v: &Value) -> Result<Program> {
    let arch = target()?;
    let default_errno = v["defaultErrnoRet"].as_u64().unwrap_or(libc::EPERM as u64) as u32;
    let default = action(
        v["defaultAction"]
            .as_str()
            .ok_or_else(|| bad("no defaultAction"))?,
        Some(default_errno),
        default_errno,
    )?;
    let mut groups: Vec<(SeccompAction, Group)> = Vec::new();
    for s in v["syscalls"].as_array().cloned().unwrap_or_default() {
        let act = action(
            s["action"]
                .as_str()
                .ok_or_else(|| bad("a rule has no action"))?,
            s["errnoRet"].as_u64().map(|e| e as u32),
            default_errno,
        )?;
        if act == default {
            continue;
        }
        let args = s["args"].as_array().cloned().unwrap_or_default();
        let rule = if args.is_empty() {
            None
        } else {
            let conds = args.iter().map(condition).collect::<Result<Vec<_>>>()?;
            Some(SeccompRule::new(conds).map_err(|e| bad(e.to_string()))?)
        };
        let idx = match groups.iter().position(|(a, _)| *a == act) {
            Some(i) => i,
            None => {
                groups.push((act, BTreeMap::new()));
                groups.len() - 1
            }
        };
        for name in s["names"].as_array().cloned().unwrap_or_default() {
            let Some(nr) = name.as_str().and_then(syscalls::number) else {
                continue;
            };
            let slot = groups[idx].1.entry(nr).or_insert_with(|| Some(Vec::new()));
            match (&rule, slot.as_mut()) {
                (None, _) => *slot = None,
                (Some(r), Some(list)) => list.push(r.clone()),
                (Some(_), None) => {}
            }
        }
    }
    // The allow list first, so that later filters' answers win among equals.
    groups.sort_by_key(|(a, _)| *a != SeccompAction::Allow);
    let mut program = Program::new();
    for (act, rules) in groups {
        if rules.is_empty() {
            continue;
        }
        let mismatch = if act == SeccompAction::Allow {
            default.clone()
        } else {
            SeccompAction::Allow
        };
        let rules: BTreeMap<i64, Vec<SeccompRule>> = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter =
            SeccompFilter::new(rules, mismatch, act, arch).map_err(|e| bad(e.to_string()))?;
        let bpf: Vec<sock_filter> = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| bad(e.to_string()))?;
        program.push(bpf);
    }
    if program.is_empty() && default != SeccompAction::Allow {
        // Every syscall gets the default: one filter with nothing allowed.
        let filter = SeccompFilter::new(BTreeMap::new(), default, SeccompAction::Allow, arch)
            .map_err(|e| bad(e.to_string()))?;
        program.push(
            filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| bad(e.to_string()))?,
        );
    }
    Ok(program)
}

/// Serializes a program for the on-disk cache: per filter, a little-endian u32 count then
/// the instructions (code u16, jt u8, jf u8, k u32).
pub fn to_bytes(p: &Program) -> Vec<u8> {
    let mut out = Vec::new();
    for f in p {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        for i in f {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
    }
    out
}

/// Reads back [`to_bytes`]; `None` for anything malformed (the cache entry is then rebuilt).
pub fn from_bytes(mut b: &[u8]) -> Option<Program> {
    let mut p = Program::new();
    while !b.is_empty() {
        let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
        b = &b[4..];
        if n == 0 || n > 4096 || b.len() < n * 8 {
            return None;
        }
        let mut f = Vec::with_capacity(n);
        for c in b[..n * 8].chunks_exact(8) {
            f.push(sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            });
        }
        b = &b[n * 8..];
        p.push(f);
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_compiles_and_round_trips() {
        let caps: Vec<String> = crate::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = super::super::profile::Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let v = super::super::profile::resolve(super::super::profile::DOCKER_DEFAULT, &t).unwrap();
        let p = compile(&v).unwrap();
        assert_eq!(p.len(), 2, "allow list, then ENOSYS for clone3");
        assert!(p[0].len() > 300);
        assert_eq!(from_bytes(&to_bytes(&p)).unwrap(), p);
        assert!(from_bytes(&[1, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn unknown_actions_and_operators_are_refused() {
        let v = serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"});
        assert!(compile(&v).is_err());
        let v = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ODD"}]}]});
        assert!(compile(&v).is_err());
        let v = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]});
        assert!(compile(&v).is_err());
    }
}
