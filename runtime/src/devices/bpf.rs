//! The device allowlist as an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the
//! container's cgroup v2 directory (what cgroup v2 has instead of the `devices` files).
//! The kernel runs it at every open or mknod of a device node with the device's type,
//! numbers and the access asked for; it answers 1 (allow) or 0 (deny: EPERM).
//!
//! The program checks the rules from the last to the first and answers with the first one
//! that matches, so a later rule overrides an earlier one as in the v1 files; no match is
//! a denial.

use super::Rule;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
// access_type = access << 16 | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(a: &str) -> i32 {
    a.chars()
        .map(|c| match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        })
        .fold(0, |x, y| x | y)
}

/// Builds the program for `rules`.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each test jumps past the block when it fails; offsets are filled in below.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match r.kind {
            'c' => block.push((insn(JMP_JNE_K, 2, 0, 0, DEV_CHAR), true)),
            'b' => block.push((insn(JMP_JNE_K, 2, 0, 0, DEV_BLOCK), true)),
            _ => {}
        }
        let bits = access_bits(&r.access);
        if r.allow && bits == ACC_READ | ACC_WRITE | ACC_MKNOD {
            // Grants every access: nothing to check.
        } else if r.allow {
            // Every access asked for must be in the rule.
            block.push((insn(ALU32_MOV_X, 6, 3, 0, 0), false));
            block.push((insn(ALU32_AND_K, 6, 0, 0, !bits & 7), false));
            block.push((insn(JMP_JNE_K, 6, 0, 0, 0), true));
        } else {
            // A denial applies when any access asked for is in it.
            block.push((insn(ALU32_MOV_X, 6, 3, 0, 0), false));
            block.push((insn(ALU32_AND_K, 6, 0, 0, bits), false));
            block.push((insn(JMP_JEQ_K, 6, 0, 0, 0), true));
        }
        if let Some(m) = r.major {
            block.push((insn(JMP_JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            block.push((insn(JMP_JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(ALU64_MOV_K, 0, 0, 0, r.allow as i32), false));
        block.push((insn(JMP_EXIT, 0, 0, 0, 0), false));
        let n = block.len();
        for (i, (mut ins, jump)) in block.into_iter().enumerate() {
            if jump {
                ins.off = (n - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, zero-padded bpf_attr prefix of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` into the kernel (the verifier checks it).
pub fn load(rules: &[Rule]) -> io::Result<OwnedFd> {
    let prog = program(rules);
    let license = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"strata_devices");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: the kernel returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches a loaded device program to the cgroup v2 directory open as `cgroup`. The
/// attachment lives as long as the cgroup; the program descriptor may then be closed.
pub fn attach(prog: &OwnedFd, cgroup: &OwnedFd) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program as the kernel would, for one device access.
    fn eval(p: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[(i.off / 4) as usize] as i64,
                ALU32_AND_K => r[dst] = ((r[dst] as u32) & (i.imm as u32)) as i64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as i64,
                ALU32_MOV_X => r[dst] = (r[src] as u32) as i64,
                ALU64_MOV_K => r[dst] = i.imm as i64,
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                JMP_JEQ_K => {
                    if r[dst] == i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn default_rules_allow_mknod_and_the_safe_devices_only() {
        let p = program(&super::super::default_rules());
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(eval(&p, DEV_CHAR, rw, 1, 3), 1, "null");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 9), 1, "urandom");
        assert_eq!(eval(&p, DEV_CHAR, rw, 136, 7), 1, "a pts");
        assert_eq!(
            eval(&p, DEV_BLOCK, ACC_MKNOD, 7, 3),
            1,
            "mknod of a loop device"
        );
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 7, 3), 0, "reading it");
        assert_eq!(eval(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 0, "writing a disk");
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, DEV_CHAR, rw, 10, 229), 0, "fuse unless asked");
        let mut rules = super::super::default_rules();
        rules.push(super::super::parse_cgroup_rule("b 7:* r").unwrap());
        let p = program(&rules);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 7, 3), 1);
        assert_eq!(eval(&p, DEV_BLOCK, rw, 7, 3), 0, "write not granted");
        // A later denial wins over an earlier allow.
        rules.push(Rule {
            allow: false,
            kind: 'c',
            major: Some(1),
            minor: Some(3),
            access: "w".into(),
        });
        let p = program(&rules);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
    }
}
