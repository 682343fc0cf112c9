//! A running container's processes and what they use, read from /proc: every process in
//! the container's pid namespace (`top`), and their CPU time, memory and count (`stats`).
//! Works whether or not the container has a cgroup of its own; a memory limit, when set,
//! is read from it.

use super::ContainerView;
use crate::error::{EngineError, Result};
use crate::Engine;
use serde::Serialize;

/// One process of a container.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// User plus system time, nanoseconds.
    pub cpu_ns: u64,
    /// Resident memory, bytes.
    pub rss: u64,
    pub command: String,
}

/// What a container uses now.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory: u64,
    /// The memory limit, when one is set.
    pub memory_limit: Option<u64>,
    pub pids: usize,
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn read_process(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * page;
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    Some(ProcessInfo {
        pid,
        ppid,
        uid,
        cpu_ns: ticks * 1_000_000_000 / ticks_per_sec(),
        rss,
        command,
    })
}

/// The processes in the pid namespace of running container `v`.
fn processes_of(v: &ContainerView) -> Result<Vec<ProcessInfo>> {
    if !v.state.is_running() {
        return Err(EngineError::Conflict(format!(
            "container {} is not running",
            v.record.name
        )));
    }
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid", v.state.pid))
        .map_err(|e| EngineError::io("read the container's pid namespace", e))?;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc")
        .map_err(|e| EngineError::io("read /proc", e))?
        .flatten()
    {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        if let Some(p) = read_process(pid) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

impl Engine {
    /// The processes of running container `key`.
    pub fn processes(&self, key: &str) -> Result<Vec<ProcessInfo>> {
        processes_of(&self.container(key)?)
    }

    /// What running container `key` uses now.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let v = self.container(key)?;
        let procs = processes_of(&v)?;
        let memory_limit = v
            .bundle
            .spec()
            .ok()
            .and_then(|s| s.linux().clone())
            .and_then(|l| l.resources().clone())
            .and_then(|r| *r.memory())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64);
        Ok(Usage {
            cpu_ns: procs.iter().map(|p| p.cpu_ns).sum(),
            memory: procs.iter().map(|p| p.rss).sum(),
            memory_limit,
            pids: procs.len(),
        })
    }
}
