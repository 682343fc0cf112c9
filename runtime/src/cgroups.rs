//! A small cgroupfs layer: one cgroup per container, limits for memory, pids and CPU, the
//! device allowlist, and the facts read back after it ran (was it OOM-killed). Limits use
//! cgroup v2 where the unified hierarchy has the controllers, else the v1 hierarchies
//! (this machine's hosts are hybrid: v1 memory, cpu and pids, an empty v2 beside them).
//!
//! Devices are enforced by an eBPF program on the container's v2 directory wherever a v2
//! hierarchy is mounted (pure or hybrid), else by the v1 `devices` controller.
//! `STRATA_DEVICE_CGROUP=v1|bpf` picks one by hand. The v2 directory is entered at clone
//! time (`CLONE_INTO_CGROUP`), which takes only the read side of the kernel's
//! threadgroup lock; joining a v1 hierarchy by writing `cgroup.procs` takes the write side
//! and waits for an RCU grace period (about 16 ms here), so v1 hierarchies are joined only
//! when a limit or the v1 device controller needs them.

use crate::devices::{self, Rule};
use crate::error::{Result, RuntimeError};
use crate::spec::Resources;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has for limits.
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

/// The mounted cgroup v2 hierarchy, with or without controllers.
pub fn v2_root() -> Option<PathBuf> {
    [PathBuf::from(ROOT), Path::new(ROOT).join("unified")]
        .into_iter()
        .find(|p| p.join("cgroup.controllers").exists())
}

/// How the device allowlist is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceMode {
    /// Nothing to enforce (the rules allow every device: `--privileged`).
    Unrestricted,
    /// An eBPF program on the container's cgroup v2 directory.
    Bpf,
    /// The cgroup v1 `devices` controller.
    V1,
}

impl DeviceMode {
    /// The mode for `rules` on this host; refuses where neither mechanism exists rather
    /// than run a container that could open any device.
    pub fn for_rules(rules: &[Rule]) -> Result<DeviceMode> {
        if devices::allows_all(rules) {
            return Ok(DeviceMode::Unrestricted);
        }
        let v1 = Path::new(ROOT).join("devices/devices.allow").exists();
        let v2 = v2_root().is_some();
        match std::env::var("STRATA_DEVICE_CGROUP").as_deref() {
            Ok("v1") if v1 => return Ok(DeviceMode::V1),
            Ok("bpf") if v2 => return Ok(DeviceMode::Bpf),
            Ok(other @ ("v1" | "bpf")) => {
                return Err(RuntimeError::Cgroup(format!(
                    "STRATA_DEVICE_CGROUP={other}, but this host does not mount it"
                )))
            }
            _ => {}
        }
        if v2 {
            Ok(DeviceMode::Bpf)
        } else if v1 {
            Ok(DeviceMode::V1)
        } else {
            Err(RuntimeError::Cgroup(
                "no device controller: mount cgroup2 (or the v1 devices hierarchy) on /sys/fs/cgroup, or run with --privileged".into(),
            ))
        }
    }
}

/// cgroup v2's `cpu.weight` (1..10000) for Docker's `--cpu-shares` (2..262144), the
/// mapping runc uses.
pub fn cpu_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// A container's cgroup (in every hierarchy it uses).
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// v1 hierarchies `(controller, dir)`, joined by writing `cgroup.procs`.
    v1: Vec<(String, PathBuf)>,
    /// The v2 directory, entered at clone time.
    v2: Option<PathBuf>,
    /// Whether the limits live in the v2 directory.
    v2_limits: bool,
    devices: DeviceMode,
    rules: Vec<Rule>,
}

/// A v1 cpuset cgroup starts with no CPUs and no memory nodes, and takes no task until
/// it has some: each level from the hierarchy's root down to `d` that has none gets its
/// parent's.
fn v1_cpuset_inherit(d: &Path) -> Result<()> {
    let root = Path::new(ROOT).join("cpuset");
    let mut chain: Vec<&Path> = d
        .ancestors()
        .take_while(|p| p.starts_with(&root) && *p != root)
        .collect();
    chain.reverse();
    for dir in chain {
        let Some(parent) = dir.parent() else { continue };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_to_string(dir.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read_to_string(parent.join(file))
                    .map_err(|e| RuntimeError::io("read", parent.join(file), e))?;
                write(&dir.join(file), theirs.trim())?;
            }
        }
    }
    Ok(())
}

fn write(p: &Path, v: &str) -> Result<()> {
    fs::write(p, v).map_err(|e| RuntimeError::io("write", p, e))
}

impl Cgroup {
    /// The cgroup at `rel` (e.g. `strata/<id>`) for a container with limits `r` and
    /// device rules `rules`, not created yet: only the hierarchies they need.
    pub fn for_container(rel: &str, r: &Resources, rules: &[Rule]) -> Result<Cgroup> {
        let devices = DeviceMode::for_rules(rules)?;
        let limited = r.any();
        let mut cg = Cgroup {
            v1: Vec::new(),
            v2: None,
            v2_limits: false,
            devices,
            rules: rules.to_vec(),
        };
        match layout() {
            Layout::V2(root) => {
                if limited || devices == DeviceMode::Bpf {
                    cg.v2 = Some(root.join(rel));
                    cg.v2_limits = limited;
                }
            }
            Layout::V1 => {
                let wanted = [
                    (
                        "memory",
                        r.memory.is_some() || r.swappiness.is_some() || r.oom_kill_disable,
                    ),
                    ("pids", r.pids.is_some()),
                    ("cpu", r.cpu_quota.is_some() || r.cpu_shares.is_some()),
                    ("devices", devices == DeviceMode::V1),
                    ("cpuset", r.cpuset_cpus.is_some() || r.cpuset_mems.is_some()),
                ];
                for (c, want) in wanted {
                    let d = Path::new(ROOT).join(c);
                    if want && d.is_dir() {
                        cg.v1.push((c.to_string(), d.join(rel)));
                    }
                }
                if devices == DeviceMode::Bpf {
                    cg.v2 = v2_root().map(|root| root.join(rel));
                }
            }
        }
        Ok(cg)
    }

    /// The cgroup of a running container at `rel`, as it was made (for `exec`): every
    /// hierarchy where its directory exists.
    pub fn existing(rel: &str) -> Cgroup {
        let v1 = ["memory", "pids", "cpu", "devices", "cpuset"]
            .iter()
            .map(|c| (c.to_string(), Path::new(ROOT).join(c).join(rel)))
            .filter(|(_, d)| d.is_dir())
            .collect();
        let v2 = v2_root().map(|r| r.join(rel)).filter(|d| d.is_dir());
        let v2_limits = matches!(layout(), Layout::V2(_)) && v2.is_some();
        Cgroup {
            v1,
            v2,
            v2_limits,
            devices: DeviceMode::Unrestricted,
            rules: Vec::new(),
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        if self.v2_limits {
            return self.v2.as_deref();
        }
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// The v2 directory, open for `CLONE_INTO_CGROUP`.
    pub fn v2_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(d) = &self.v2 else {
            return Ok(None);
        };
        let fd = rustix::fs::open(
            d,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open cgroup", d, std::io::Error::from(e)))?;
        Ok(Some(fd))
    }

    /// Creates the cgroup, sets the limits and installs the device allowlist.
    pub fn create(&self, r: &Resources) -> Result<()> {
        for d in self.v1.iter().map(|(_, d)| d).chain(self.v2.iter()) {
            fs::create_dir_all(d).map_err(|e| RuntimeError::io("create cgroup", d, e))?;
        }
        if let Some(d) = self.dir_v1("cpuset") {
            v1_cpuset_inherit(d)?;
        }
        if let (true, Some(d), Layout::V2(root)) = (self.v2_limits, &self.v2, layout()) {
            // Delegate the controllers down to our cgroup, from the hierarchy's root
            // (ignored where already on).
            let mut chain: Vec<&Path> = d
                .ancestors()
                .skip(1)
                .take_while(|p| p.starts_with(&root))
                .collect();
            chain.reverse();
            let controllers = if r.cpuset_cpus.is_some() || r.cpuset_mems.is_some() {
                "+memory +pids +cpu +cpuset"
            } else {
                "+memory +pids +cpu"
            };
            for p in chain {
                let _ = fs::write(p.join("cgroup.subtree_control"), controllers);
            }
        }
        self.set_limits(r)?;
        match self.devices {
            DeviceMode::Unrestricted => {}
            DeviceMode::V1 => {
                let d = self.dir_v1("devices").ok_or_else(|| {
                    RuntimeError::Cgroup("the v1 devices hierarchy is not mounted".into())
                })?;
                for rule in &self.rules {
                    let file = if rule.allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write(&d.join(file), &rule.v1_line())?;
                }
            }
            DeviceMode::Bpf => {
                let d = self.v2.as_ref().ok_or_else(|| {
                    RuntimeError::Cgroup("no cgroup v2 hierarchy for the device program".into())
                })?;
                let dirfd = rustix::fs::open(
                    d,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| RuntimeError::io("open cgroup", d, std::io::Error::from(e)))?;
                let prog = devices::bpf::load(&self.rules).map_err(|e| {
                    RuntimeError::Cgroup(format!(
                        "load the device program: {e} (set STRATA_DEVICE_CGROUP=v1 to use the v1 devices controller)"
                    ))
                })?;
                devices::bpf::attach(&prog, &dirfd).map_err(|e| {
                    RuntimeError::Cgroup(format!(
                        "attach the device program to {}: {e}",
                        d.display()
                    ))
                })?;
            }
        }
        Ok(())
    }

    fn dir_v1(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Changes the limits of a running container's cgroup (`update`): only controllers it
    /// was made with can be changed.
    pub fn update(&self, r: &Resources) -> Result<()> {
        self.set_limits(r)
    }

    fn set_limits(&self, r: &Resources) -> Result<()> {
        let need = |c: &str, what: &str| -> Result<&Path> {
            self.dir(c).ok_or_else(|| {
                RuntimeError::Cgroup(format!(
                    "{what} needs the {c} controller, which this host does not mount"
                ))
            })
        };
        let v2 = self.v2_limits;
        if let Some(m) = r.memory {
            let d = need("memory", "--memory")?;
            let total = r.swap.unwrap_or(m);
            if v2 {
                write(&d.join("memory.max"), &m.to_string())?;
                let swap = if total < 0 {
                    "max".to_string()
                } else {
                    (total - m).max(0).to_string()
                };
                // Absent without swap accounting: then there is no swap to limit.
                let _ = fs::write(d.join("memory.swap.max"), swap);
            } else {
                // memsw must stay at least the limit: raise it first, lower it after.
                let memsw = d.join("memory.memsw.limit_in_bytes");
                let has_memsw = memsw.exists();
                if has_memsw {
                    let _ = fs::write(&memsw, total.to_string());
                }
                write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                if has_memsw {
                    write(&memsw, &total.to_string())?;
                }
                if total == m {
                    let _ = fs::write(d.join("memory.swappiness"), "0");
                }
            }
        }
        if let Some(shares) = r.cpu_shares {
            let d = need("cpu", "--cpu-shares")?;
            if v2 {
                write(&d.join("cpu.weight"), &cpu_weight(shares).to_string())?;
            } else {
                write(&d.join("cpu.shares"), &shares.clamp(2, 262_144).to_string())?;
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
        if r.swappiness.is_some() || r.oom_kill_disable {
            if v2 {
                return Err(RuntimeError::Cgroup(
                    "memory swappiness and disabling the OOM killer need cgroup v1 (cgroup v2 has neither)".into(),
                ));
            }
            let d = need("memory", "memory swappiness")?;
            if let Some(sw) = r.swappiness {
                write(&d.join("memory.swappiness"), &sw.to_string())?;
            }
            if r.oom_kill_disable {
                write(&d.join("memory.oom_control"), "1")?;
            }
        }
        for (file, v) in [
            ("cpuset.cpus", &r.cpuset_cpus),
            ("cpuset.mems", &r.cpuset_mems),
        ] {
            let Some(v) = v else { continue };
            let d = need("cpuset", file)?;
            write(&d.join(file), v)?;
        }
        if let Some(q) = r.cpu_quota {
            let d = need("cpu", "--cpus")?;
            let period = r.cpu_period.unwrap_or(100_000);
            if v2 {
                write(&d.join("cpu.max"), &format!("{q} {period}"))?;
            } else {
                write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the v1 hierarchies (the v2 one is entered at clone).
    pub fn add(&self, pid: u32) -> Result<()> {
        for (_, d) in &self.v1 {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(d) = self.dir("memory") else {
            return false;
        };
        let file = if self.v2_limits {
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

    /// Removes the cgroup (after its processes are gone); the device program goes with it.
    pub fn remove(&self) {
        for d in self.v1.iter().map(|(_, d)| d).chain(self.v2.iter()) {
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

    /// Freezes (or thaws) every process of the cgroup: `cgroup.freeze` in its v2 directory,
    /// else the v1 freezer. Refused when the container has neither.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(d) = self
            .v2
            .as_ref()
            .filter(|d| d.join("cgroup.freeze").exists())
        {
            write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            // Frozen means every task stopped: the kernel reports it in cgroup.events.
            for _ in 0..500 {
                let state = fs::read_to_string(d.join("cgroup.events")).unwrap_or_default();
                let now = state.lines().any(|l| l.trim() == "frozen 1");
                if now == frozen {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            return Ok(());
        }
        let v1 = Path::new(ROOT).join("freezer");
        if let Some(rel) = self
            .v1
            .first()
            .and_then(|(c, d)| d.strip_prefix(Path::new(ROOT).join(c)).ok())
        {
            let d = v1.join(rel);
            if d.is_dir() {
                return write(
                    &d.join("freezer.state"),
                    if frozen { "FROZEN" } else { "THAWED" },
                );
            }
        }
        Err(RuntimeError::Other(
            "the container has no cgroup to freeze (no cgroup v2 directory and no v1 freezer)"
                .into(),
        ))
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        self.v2
            .iter()
            .chain(self.v1.iter().map(|(_, d)| d))
            .next()
            .and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}
