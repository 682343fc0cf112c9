//! A small cgroupfs layer: one cgroup per container, limits for memory, pids and CPU, and
//! the facts read back after it ran (was it OOM-killed). Uses cgroup v2 where the unified
//! hierarchy has the controllers, else the v1 hierarchies (this machine's hosts are
//! hybrid: v1 memory, cpu and pids).

use crate::error::{Result, RuntimeError};
use crate::spec::Resources;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy at this path, with the controllers we need.
    V2(PathBuf),
    /// One v1 hierarchy per controller under /sys/fs/cgroup.
    V1,
}

fn v2_has(dir: &Path, controllers: &[&str]) -> bool {
    fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| {
            let have: Vec<&str> = s.split_whitespace().collect();
            controllers.iter().all(|c| have.contains(c))
        })
        .unwrap_or(false)
}

/// Detects the layout: v2 at the root (pure v2) or at `unified` (hybrid) when it has
/// memory, pids and cpu; v1 otherwise.
pub fn layout() -> Layout {
    let need = ["memory", "pids", "cpu"];
    for p in [PathBuf::from(ROOT), Path::new(ROOT).join("unified")] {
        if v2_has(&p, &need) {
            return Layout::V2(p);
        }
    }
    Layout::V1
}

/// A container's cgroup (in every hierarchy it uses).
#[derive(Debug, Clone)]
pub struct Cgroup {
    dirs: Vec<(String, PathBuf)>,
    v2: bool,
}

fn write(p: &Path, v: &str) -> Result<()> {
    fs::write(p, v).map_err(|e| RuntimeError::io("write", p, e))
}

impl Cgroup {
    /// The cgroup at `rel` (e.g. `strata/<id>`) in the hierarchies that `r` needs: only
    /// controllers with a limit are joined. Joining a v1 hierarchy waits for an RCU grace
    /// period (~16 ms here), so a container without limits skips them; the pid namespace
    /// already ends every process of the container with its first one.
    pub fn for_limits(rel: &str, r: &Resources) -> Cgroup {
        let mut cg = Cgroup::at(rel);
        let wanted = |c: &str| match c {
            "memory" => r.memory.is_some(),
            "pids" => r.pids.is_some(),
            "cpu" => r.cpu_quota.is_some(),
            _ => true,
        };
        if cg.v2 {
            if r.memory.is_none() && r.pids.is_none() && r.cpu_quota.is_none() {
                cg.dirs.clear();
            }
        } else {
            cg.dirs.retain(|(c, _)| wanted(c));
        }
        cg
    }

    /// The cgroup at `rel` (e.g. `strata/<id>`) in every hierarchy, not created yet.
    pub fn at(rel: &str) -> Cgroup {
        match layout() {
            Layout::V2(root) => Cgroup {
                dirs: vec![("unified".into(), root.join(rel))],
                v2: true,
            },
            Layout::V1 => Cgroup {
                dirs: ["memory", "pids", "cpu"]
                    .iter()
                    .filter(|c| Path::new(ROOT).join(c).is_dir())
                    .map(|c| (c.to_string(), Path::new(ROOT).join(c).join(rel)))
                    .collect(),
                v2: false,
            },
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        if self.v2 {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Creates the cgroup and sets the limits.
    pub fn create(&self, r: &Resources) -> Result<()> {
        for (_, d) in &self.dirs {
            fs::create_dir_all(d).map_err(|e| RuntimeError::io("create cgroup", d, e))?;
        }
        if self.v2 {
            if let Some(parent) = self.dirs[0].1.parent() {
                // Delegate the controllers down to our cgroup (ignored where already on).
                let mut p = parent.to_path_buf();
                let mut chain = Vec::new();
                while p.starts_with(ROOT) && p != Path::new(ROOT) {
                    chain.push(p.clone());
                    match p.parent() {
                        Some(q) => p = q.to_path_buf(),
                        None => break,
                    }
                }
                chain.push(p);
                for d in chain.iter().rev() {
                    let _ = fs::write(d.join("cgroup.subtree_control"), "+memory +pids +cpu");
                }
            }
        }
        let need = |c: &str, what: &str| -> Result<&Path> {
            self.dir(c).ok_or_else(|| {
                RuntimeError::Cgroup(format!(
                    "{what} needs the {c} controller, which this host does not mount"
                ))
            })
        };
        if let Some(m) = r.memory {
            let d = need("memory", "--memory")?;
            if self.v2 {
                write(&d.join("memory.max"), &m.to_string())?;
                let _ = fs::write(d.join("memory.swap.max"), "0");
            } else {
                write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                // Without swap accounting the file is absent; with it, no swap either.
                let memsw = d.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &m.to_string())?;
                }
                let _ = fs::write(d.join("memory.swappiness"), "0");
            }
        }
        if let Some(p) = r.pids {
            let d = need("pids", "--pids-limit")?;
            let v = if p <= 0 {
                "max".to_string()
            } else {
                p.to_string()
            };
            write(&d.join("pids.max"), &v)?;
        }
        if let Some(q) = r.cpu_quota {
            let d = need("cpu", "--cpus")?;
            let period = r.cpu_period.unwrap_or(100_000);
            if self.v2 {
                write(&d.join("cpu.max"), &format!("{q} {period}"))?;
            } else {
                write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup.
    pub fn add(&self, pid: u32) -> Result<()> {
        for (_, d) in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(d) = self.dir("memory") else {
            return false;
        };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(d.join(file))
            .map(|s| {
                s.lines().any(|l| {
                    let mut it = l.split_whitespace();
                    it.next() == Some("oom_kill")
                        && it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
                })
            })
            .unwrap_or(false)
    }

    /// Removes the cgroup (after its processes are gone).
    pub fn remove(&self) {
        for (_, d) in &self.dirs {
            for _ in 0..50 {
                match fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        self.dirs
            .first()
            .and_then(|(_, d)| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}
