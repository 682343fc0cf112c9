//! The OCI `linux.seccomp` form compiled to one classic BPF program.
//!
//! The program checks the architecture, then finds the syscall's rules with a binary
//! search over ranges of syscall numbers that share an answer (Docker's profile allows
//! long runs of consecutive numbers), so it is about a tenth the size of a linear
//! compare-per-syscall filter: the kernel verifies, JIT-compiles and pre-evaluates every
//! filter at install time, once per container, and that cost follows the size.
//!
//! Semantics, as libseccomp's: a syscall with an unconditional rule gets its action (the
//! most severe one if several); otherwise its conditional rules are tried, most severe
//! action first, and the first whose conditions (64-bit compares of the arguments) all
//! hold answers; anything else gets the default action.

use super::syscalls;
use crate::error::{Result, RuntimeError};
use serde_json::Value;
use std::collections::BTreeMap;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter.
pub type Program = Vec<SockFilter>;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// System calls of the x32 ABI carry this bit in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn bad(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Spec(format!("seccomp: {}", msg.into()))
}

/// An action as the kernel's return value.
fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<u32> {
    let data = |e: Option<u32>| e.unwrap_or(default_errno) & 0xffff;
    Ok(match name {
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_ERRNO" => RET_ERRNO | data(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_TRACE" => RET_TRACE | data(errno),
        other => {
            return Err(bad(format!(
                "action {other} is not supported: use ALLOW, ERRNO, KILL, KILL_PROCESS, TRAP, LOG or TRACE"
            )))
        }
    })
}

/// How severe an action is (the kernel's precedence): higher wins.
fn severity(ret: u32) -> u32 {
    match ret & 0xffff_0000 {
        RET_KILL_PROCESS => 7,
        0 => 6,
        RET_TRAP => 5,
        RET_ERRNO => 4,
        RET_TRACE => 2,
        RET_LOG => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    arg: u32,
    op: Op,
    value: u64,
}

fn condition(arg: &Value) -> Result<Cond> {
    let index = arg["index"]
        .as_u64()
        .filter(|i| *i < 6)
        .ok_or_else(|| bad(format!("argument index must be 0 to 5: {arg}")))?;
    let value = arg["value"].as_u64().unwrap_or(0);
    let two = arg["valueTwo"].as_u64().unwrap_or(0);
    let (op, value) = match arg["op"].as_str().unwrap_or("") {
        "SCMP_CMP_EQ" => (Op::Eq, value),
        "SCMP_CMP_NE" => (Op::Ne, value),
        "SCMP_CMP_LT" => (Op::Lt, value),
        "SCMP_CMP_LE" => (Op::Le, value),
        "SCMP_CMP_GT" => (Op::Gt, value),
        "SCMP_CMP_GE" => (Op::Ge, value),
        // libseccomp's masked compare: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq(value), two & value),
        other => return Err(bad(format!("unknown argument operator {other:?}"))),
    };
    Ok(Cond {
        arg: index as u32,
        op,
        value,
    })
}

/// What one syscall number gets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    /// Rules tried in order: conditions (all must hold), action.
    Rules(Vec<(Vec<Cond>, u32)>),
}

/// Code for one condition: falls through when it holds; every instruction whose jump
/// means "fails" is listed so the caller can aim it at the next rule.
fn cond_code(c: &Cond) -> (Vec<SockFilter>, Vec<(usize, bool)>) {
    let lo_off = 16 + 8 * c.arg;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let mut code = Vec::new();
    // (index, true: the jt field is the failure, false: jf).
    let mut fails = Vec::new();
    match c.op {
        Op::Eq => {
            code.push(stmt(LD_W_ABS, hi_off));
            fails.push((code.len(), false));
            code.push(jump(JEQ_K, vhi, 0, 0));
            code.push(stmt(LD_W_ABS, lo_off));
            fails.push((code.len(), false));
            code.push(jump(JEQ_K, vlo, 0, 0));
        }
        Op::MaskedEq(mask) => {
            code.push(stmt(LD_W_ABS, hi_off));
            code.push(stmt(AND_K, (mask >> 32) as u32));
            fails.push((code.len(), false));
            code.push(jump(JEQ_K, vhi, 0, 0));
            code.push(stmt(LD_W_ABS, lo_off));
            code.push(stmt(AND_K, mask as u32));
            fails.push((code.len(), false));
            code.push(jump(JEQ_K, vlo, 0, 0));
        }
        Op::Ne => {
            // Holds when either half differs.
            code.push(stmt(LD_W_ABS, hi_off));
            code.push(jump(JEQ_K, vhi, 0, 2));
            code.push(stmt(LD_W_ABS, lo_off));
            fails.push((code.len(), true));
            code.push(jump(JEQ_K, vlo, 0, 0));
        }
        Op::Gt | Op::Ge => {
            // hi > vhi holds; hi < vhi fails; equal: compare the low halves.
            code.push(stmt(LD_W_ABS, hi_off));
            code.push(jump(JGT_K, vhi, 3, 0));
            fails.push((code.len(), false));
            code.push(jump(JEQ_K, vhi, 0, 0));
            code.push(stmt(LD_W_ABS, lo_off));
            fails.push((code.len(), false));
            code.push(jump(if c.op == Op::Gt { JGT_K } else { JGE_K }, vlo, 0, 0));
        }
        Op::Lt | Op::Le => {
            // hi > vhi fails; hi < vhi holds; equal: compare the low halves.
            code.push(stmt(LD_W_ABS, hi_off));
            fails.push((code.len(), true));
            code.push(jump(JGT_K, vhi, 0, 0));
            code.push(jump(JEQ_K, vhi, 0, 2));
            code.push(stmt(LD_W_ABS, lo_off));
            fails.push((code.len(), true));
            code.push(jump(if c.op == Op::Lt { JGE_K } else { JGT_K }, vlo, 0, 0));
        }
    }
    (code, fails)
}

fn leaf_code(leaf: &Leaf, default: u32) -> Result<Vec<SockFilter>> {
    let rules = match leaf {
        Leaf::Ret(r) => return Ok(vec![stmt(RET_K, *r)]),
        Leaf::Rules(r) => r,
    };
    let mut out = Vec::new();
    for (conds, act) in rules {
        let start = out.len();
        let mut fails = Vec::new();
        for c in conds {
            let (code, f) = cond_code(c);
            let base = out.len();
            fails.extend(f.into_iter().map(|(i, jt)| (base + i, jt)));
            out.extend(code);
        }
        out.push(stmt(RET_K, *act));
        let next = out.len();
        for (i, jt) in fails {
            let off = u8::try_from(next - i - 1).map_err(|_| {
                bad(format!(
                    "a rule with {} conditions is too long",
                    conds.len()
                ))
            })?;
            if jt {
                out[i].jt = off;
            } else {
                out[i].jf = off;
            }
        }
        debug_assert!(out.len() > start);
    }
    out.push(stmt(RET_K, default));
    Ok(out)
}

/// The binary search over `ranges[lo..hi]` (start number, leaf index).
fn tree(
    ranges: &[(u32, usize)],
    leaves: &[Vec<SockFilter>],
    out: &mut Vec<SockFilter>,
) -> Result<()> {
    if ranges.len() == 1 {
        out.extend_from_slice(&leaves[ranges[0].1]);
        return Ok(());
    }
    let mid = ranges.len() / 2;
    let mut left = Vec::new();
    tree(&ranges[..mid], leaves, &mut left)?;
    let split = ranges[mid].0;
    match u8::try_from(left.len()) {
        Ok(n) => out.push(jump(JGE_K, split, n, 0)),
        Err(_) => {
            // Too far for a conditional jump: hop over an unconditional one.
            out.push(jump(JGE_K, split, 0, 1));
            out.push(stmt(JA, left.len() as u32));
        }
    }
    out.extend(left);
    tree(&ranges[mid..], leaves, out)
}

/// The architecture check this build's filters start with.
fn native_arch() -> Result<u32> {
    if cfg!(target_arch = "x86_64") {
        Ok(AUDIT_ARCH_X86_64)
    } else {
        Err(bad(format!(
            "filters are built for x86_64 only in this build, not {}: use --security-opt seccomp=unconfined",
            std::env::consts::ARCH
        )))
    }
}

/// A syscall's rules: its unconditional action, and conditional rules with theirs.
type Entry = (Option<u32>, Vec<(Vec<Cond>, u32)>);

/// Compiles an OCI `linux.seccomp` value.
pub fn compile(v: &Value) -> Result<Program> {
    let arch = native_arch()?;
    let default_errno = v["defaultErrnoRet"].as_u64().unwrap_or(libc::EPERM as u64) as u32;
    let default = action(
        v["defaultAction"]
            .as_str()
            .ok_or_else(|| bad("no defaultAction"))?,
        Some(default_errno),
        default_errno,
    )?;
    // Per syscall number: unconditional action, conditional rules.
    let mut per: BTreeMap<u32, Entry> = BTreeMap::new();
    for s in v["syscalls"].as_array().cloned().unwrap_or_default() {
        let act = action(
            s["action"]
                .as_str()
                .ok_or_else(|| bad("a rule has no action"))?,
            s["errnoRet"].as_u64().map(|e| e as u32),
            default_errno,
        )?;
        let conds = s["args"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(condition)
            .collect::<Result<Vec<_>>>()?;
        for name in s["names"].as_array().cloned().unwrap_or_default() {
            let Some(nr) = name.as_str().and_then(syscalls::number) else {
                continue;
            };
            let e = per.entry(nr as u32).or_default();
            if conds.is_empty() {
                e.0 = Some(match e.0 {
                    Some(a) if severity(a) >= severity(act) => a,
                    _ => act,
                });
            } else {
                e.1.push((conds.clone(), act));
            }
        }
    }
    // Leaves, and the ranges of numbers that lead to each: `(first number, leaf)`, from 0
    // up, neighbours with the same plain answer merged.
    let mut leaves: Vec<Leaf> = vec![Leaf::Ret(default)];
    let mut ranges: Vec<(u32, usize)> = Vec::new();
    let push = |ranges: &mut Vec<(u32, usize)>, start: u32, leaf: usize| {
        if ranges.last().map(|r| r.1) != Some(leaf) {
            ranges.push((start, leaf));
        }
    };
    let mut next = 0u32;
    for (nr, (uncond, mut rules)) in per {
        if nr > next {
            push(&mut ranges, next, 0);
        }
        let leaf = match uncond {
            Some(a) => match leaves.iter().position(|l| *l == Leaf::Ret(a)) {
                Some(i) => i,
                None => {
                    leaves.push(Leaf::Ret(a));
                    leaves.len() - 1
                }
            },
            None => {
                rules.sort_by_key(|(_, a)| std::cmp::Reverse(severity(*a)));
                leaves.push(Leaf::Rules(rules));
                leaves.len() - 1
            }
        };
        push(&mut ranges, nr, leaf);
        next = nr + 1;
    }
    push(&mut ranges, next, 0);
    let merged = ranges;
    let leaf_code: Vec<Vec<SockFilter>> = leaves
        .iter()
        .map(|l| leaf_code(l, default))
        .collect::<Result<_>>()?;
    let mut p = vec![
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, 0),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, default),
    ];
    tree(&merged, &leaf_code, &mut p)?;
    if p.len() > 4096 {
        return Err(bad(format!(
            "the profile needs {} instructions; the kernel takes 4096",
            p.len()
        )));
    }
    Ok(p)
}

/// Serializes a program for the on-disk cache: the instructions, each as code u16, jt u8,
/// jf u8, k u32, little-endian.
pub fn to_bytes(p: &Program) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() * 8);
    for i in p {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// Reads back [`to_bytes`]; `None` for anything malformed (the cache entry is then rebuilt).
pub fn from_bytes(b: &[u8]) -> Option<Program> {
    if b.is_empty() || b.len() % 8 != 0 || b.len() / 8 > 4096 {
        return None;
    }
    Some(
        b.chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `p` as the kernel would for one system call.
    fn run(p: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u32; 16];
        data[0] = nr;
        data[1] = arch;
        for (i, a) in args.iter().enumerate() {
            data[4 + 2 * i] = *a as u32;
            data[5 + 2 * i] = (*a >> 32) as u32;
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = data[(i.k / 4) as usize],
                AND_K => acc &= i.k,
                RET_K => return i.k,
                JA => pc += i.k as usize,
                JEQ_K | JGT_K | JGE_K => {
                    let t = match i.code {
                        JEQ_K => acc == i.k,
                        JGT_K => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn docker_default() -> Program {
        let caps: Vec<String> = crate::security::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = super::super::profile::Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let v = super::super::profile::resolve(super::super::profile::DOCKER_DEFAULT, &t).unwrap();
        compile(&v).unwrap()
    }

    #[test]
    fn dockers_profile_answers_as_written() {
        let p = docker_default();
        assert!(p.len() < 400, "{} instructions", p.len());
        let a = AUDIT_ARCH_X86_64;
        let nr = |n: &str| syscalls::number(n).unwrap() as u32;
        let eperm = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(&p, a, nr("read"), [0; 6]), RET_ALLOW);
        assert_eq!(run(&p, a, nr("execve"), [0; 6]), RET_ALLOW);
        assert_eq!(run(&p, a, 0, [0; 6]), RET_ALLOW, "read is 0");
        assert_eq!(run(&p, a, nr("keyctl"), [0; 6]), eperm);
        assert_eq!(run(&p, a, nr("kexec_load"), [0; 6]), eperm);
        assert_eq!(run(&p, a, nr("mount"), [0; 6]), eperm);
        assert_eq!(
            run(&p, a, nr("clone3"), [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // clone: allowed unless it asks for new namespaces.
        let clone = nr("clone");
        assert_eq!(
            run(&p, a, clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(&p, a, clone, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(
            run(
                &p,
                a,
                clone,
                [(libc::CLONE_NEWNS | libc::CLONE_VM) as u64, 0, 0, 0, 0, 0]
            ),
            eperm
        );
        // personality: only the listed values.
        let pers = nr("personality");
        for ok in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(run(&p, a, pers, [ok, 0, 0, 0, 0, 0]), RET_ALLOW, "{ok:#x}");
        }
        assert_eq!(run(&p, a, pers, [1, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(
            run(&p, a, pers, [0x1_0000_0008, 0, 0, 0, 0, 0]),
            eperm,
            "high half"
        );
        // Numbers past the table, x32 numbers and other architectures.
        assert_eq!(run(&p, a, 4000, [0; 6]), eperm);
        assert_eq!(run(&p, a, X32_SYSCALL_BIT | nr("read"), [0; 6]), eperm);
        assert_eq!(run(&p, 0x4000_0003, 3, [0; 6]), RET_KILL_PROCESS);
        // Every number gets what a plain lookup of the resolved profile says.
        let caps: Vec<String> = crate::security::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = super::super::profile::Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let v = super::super::profile::resolve(super::super::profile::DOCKER_DEFAULT, &t).unwrap();
        let mut plain = std::collections::HashMap::new();
        for s in v["syscalls"].as_array().unwrap() {
            if s.get("args").is_some() {
                continue;
            }
            let r = action(
                s["action"].as_str().unwrap(),
                s["errnoRet"].as_u64().map(|e| e as u32),
                1,
            )
            .unwrap();
            for n in s["names"].as_array().unwrap() {
                if let Some(nr) = syscalls::number(n.as_str().unwrap()) {
                    plain.insert(nr as u32, r);
                }
            }
        }
        let conditional = [clone, pers];
        for n in (0..500u32).filter(|n| !conditional.contains(n)) {
            let want = plain.get(&n).copied().unwrap_or(eperm);
            assert_eq!(run(&p, a, n, [0; 6]), want, "syscall {n}");
        }
    }

    #[test]
    fn comparisons_hold_for_64_bit_arguments() {
        let prog = |op: &str, value: u64| {
            let v = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 2, "value": value, "valueTwo": 0x10, "op": op}]}]});
            compile(&v).unwrap()
        };
        let read = syscalls::number("read").unwrap() as u32;
        let a = AUDIT_ARCH_X86_64;
        let check = |p: &Program, x: u64| run(p, a, read, [0, 0, x, 0, 0, 0]) == RET_ALLOW;
        let big = 0x1_0000_0005u64;
        for (op, v) in [
            ("SCMP_CMP_EQ", big),
            ("SCMP_CMP_NE", big),
            ("SCMP_CMP_LT", big),
            ("SCMP_CMP_LE", big),
            ("SCMP_CMP_GT", big),
            ("SCMP_CMP_GE", big),
        ] {
            let p = prog(op, v);
            for x in [0, 5, big - 1, big, big + 1, 0x2_0000_0000, u64::MAX] {
                let want = match op {
                    "SCMP_CMP_EQ" => x == v,
                    "SCMP_CMP_NE" => x != v,
                    "SCMP_CMP_LT" => x < v,
                    "SCMP_CMP_LE" => x <= v,
                    "SCMP_CMP_GT" => x > v,
                    _ => x >= v,
                };
                assert_eq!(check(&p, x), want, "{op} {x:#x} vs {v:#x}");
            }
        }
        let p = prog("SCMP_CMP_MASKED_EQ", 0xf0);
        assert!(check(&p, 0x1_0000_0013));
        assert!(!check(&p, 0x23));
    }

    #[test]
    fn cache_bytes_round_trip_and_bad_input_is_refused() {
        let p = docker_default();
        assert_eq!(from_bytes(&to_bytes(&p)).unwrap(), p);
        assert!(from_bytes(&[1, 0, 0]).is_none());
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
