//! Seccomp for containers: Docker's default profile (or one given with `--security-opt
//! seccomp=PATH`) resolved for the container's capabilities into the runtime spec
//! ([`profile`]), compiled to BPF once per distinct profile and cached under the data root
//! ([`compile`], [`program`]; the cache file name also carries the compiler's version),
//! and installed by the container's process just before it
//! runs the command ([`install`]).

pub mod compile;
pub mod profile;
mod syscalls;

use crate::error::{Result, RuntimeError};
use compile::Program;
use serde_json::Value;
use sha2::Digest;
use std::path::Path;

pub use profile::DOCKER_DEFAULT;

/// Changes whenever [`compile`] would build a different program for the same profile, so
/// cached programs of an older strata are not used.
const COMPILER_VERSION: &[u8] = b"strata-seccomp-2";

/// The compiled program for an OCI `linux.seccomp` value: read from `cache` (a folder;
/// the file is named by the value's sha256) when it was built before, else compiled and
/// stored there (temp name and rename, no flush: a lost entry is built again).
pub fn program(v: &Value, cache: Option<&Path>) -> Result<Program> {
    let key = match cache {
        Some(dir) => {
            let text = serde_json::to_vec(v).map_err(|e| RuntimeError::Spec(e.to_string()))?;
            let mut h = sha2::Sha256::new();
            h.update(&text);
            h.update(std::env::consts::ARCH.as_bytes());
            h.update(COMPILER_VERSION);
            Some(dir.join(format!("{}.bpf", hex::encode(h.finalize()))))
        }
        None => None,
    };
    if let Some(p) = &key {
        if let Some(prog) = std::fs::read(p).ok().and_then(|b| compile::from_bytes(&b)) {
            return Ok(prog);
        }
    }
    let prog = compile::compile(v)?;
    if let Some(p) = &key {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = fsutil::write_replace(p, &compile::to_bytes(&prog));
    }
    Ok(prog)
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const compile::SockFilter,
}

/// Installs the filter on the calling thread. Without `no_new_privs` the caller needs
/// CAP_SYS_ADMIN, so it runs before privileges are dropped. Allocates nothing (it runs in
/// a forked child).
pub fn install(p: &Program) -> std::io::Result<()> {
    let prog = SockFprog {
        len: p.len() as libc::c_ushort,
        filter: p.as_ptr(),
    };
    // SAFETY: the kernel copies the program from a valid sock_fprog for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const SockFprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
