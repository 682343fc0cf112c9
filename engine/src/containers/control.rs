//! Signals to running containers: stop (TERM, then KILL), kill, and waiting for an exit.
//! A running container holds no lock, so these work while others use the store.

use crate::error::{EngineError, Result};
use crate::Engine;
use runtime::state::Status;
use std::time::{Duration, Instant};

/// A signal by name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<rustix::process::Signal> {
    use rustix::process::Signal;
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let sig = match name.as_str() {
        "KILL" | "9" => Signal::KILL,
        "TERM" | "15" => Signal::TERM,
        "INT" | "2" => Signal::INT,
        "HUP" | "1" => Signal::HUP,
        "QUIT" | "3" => Signal::QUIT,
        "USR1" | "10" => Signal::USR1,
        "USR2" | "12" => Signal::USR2,
        "STOP" | "19" => Signal::STOP,
        "CONT" | "18" => Signal::CONT,
        _ => {
            return Err(EngineError::Invalid(format!(
                "invalid signal {s:?}: use a name like TERM or a number"
            )))
        }
    };
    Ok(sig)
}

fn signal(pid: u32, sig: rustix::process::Signal) -> Result<()> {
    let p = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| EngineError::Invalid(format!("bad pid {pid}")))?;
    rustix::process::kill_process(p, sig)?;
    Ok(())
}

impl Engine {
    /// Waits until the container's process and whoever runs it are done (state `exited`,
    /// and its shim or foreground runner gone, so its unmount and cleanup are over too);
    /// `false` when `timeout` passed first.
    pub fn wait_exited(&self, key: &str, timeout: Option<Duration>) -> Result<bool> {
        let bundle = self.container(key)?.bundle;
        let t0 = Instant::now();
        let mut watch = super::watch::FolderWatch::new(bundle.dir());
        loop {
            let st = bundle.state()?;
            let runner_alive =
                st.monitor_pid != std::process::id() && watch.runner_alive(st.monitor_pid);
            if !runner_alive && (st.status != Status::Running || !st.is_running()) {
                return Ok(true);
            }
            if timeout.is_some_and(|t| t0.elapsed() >= t) {
                return Ok(false);
            }
            // The exit is a state write into the folder, the runner's death its pidfd's
            // wake; a runner not watched (no pidfd) is looked at again after a bound.
            let left = timeout.map(|t| t.saturating_sub(t0.elapsed()));
            let bound = if watch.watches_a_process() { 5000 } else { 200 };
            watch.wait(
                left.unwrap_or(Duration::MAX)
                    .min(Duration::from_millis(bound)),
            );
        }
    }

    /// Stops a container: SIGTERM, then SIGKILL after `secs`. A stopped one is left alone.
    pub fn stop(&self, key: &str, secs: u64) -> Result<()> {
        self.stop_with(key, Some(secs))
    }

    /// [`Engine::stop`] with the container's own stop signal, and its own timeout where
    /// `secs` is `None` (default 10 s).
    pub fn stop_with(&self, key: &str, secs: Option<u64>) -> Result<()> {
        let view = self.container(key)?;
        let hc = view.bundle.host_config();
        let secs = secs.or_else(|| hc["StopTimeout"].as_u64()).unwrap_or(10);
        let first = hc["StopSignal"]
            .as_str()
            .map(parse_signal)
            .transpose()?
            .unwrap_or(rustix::process::Signal::TERM);
        if view.state.paused {
            let _ = self.unpause(key);
        }
        let st = view.state;
        // Also between restarts: the shim then sees the mark and does not start it again.
        view.bundle.set_stopped_by_user(true);
        if !st.is_running() {
            self.wait_exited(key, Some(Duration::from_secs(30)))?;
            return Ok(());
        }
        let _ = signal(st.pid, first);
        if !self.wait_exited(key, Some(Duration::from_secs(secs)))? {
            let _ = signal(st.pid, rustix::process::Signal::KILL);
            self.wait_exited(key, Some(Duration::from_secs(30)))?;
        }
        Ok(())
    }

    /// Sends `sig` to a running container's pid 1.
    pub fn kill(&self, key: &str, sig: rustix::process::Signal) -> Result<()> {
        let view = self.container(key)?;
        let st = view.state;
        if !st.is_running() {
            return Err(EngineError::Conflict(format!(
                "cannot kill container {key}: it is not running"
            )));
        }
        if matches!(
            sig,
            rustix::process::Signal::KILL
                | rustix::process::Signal::TERM
                | rustix::process::Signal::INT
        ) {
            view.bundle.set_stopped_by_user(true);
        }
        signal(st.pid, sig)
    }

    /// Freezes every process of a running container (its cgroup's freezer).
    pub fn pause(&self, key: &str) -> Result<()> {
        self.set_paused(key, true)
    }

    /// Thaws a paused container.
    pub fn unpause(&self, key: &str) -> Result<()> {
        self.set_paused(key, false)
    }

    fn set_paused(&self, key: &str, paused: bool) -> Result<()> {
        let view = self.container(key)?;
        let mut st = view.state.clone();
        if !st.is_running() {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                view.record.name
            )));
        }
        if st.paused == paused {
            return Err(EngineError::Conflict(format!(
                "container {} is {}paused",
                view.record.name,
                if paused { "already " } else { "not " }
            )));
        }
        let rel = format!("strata/{}", view.record.id);
        runtime::cgroups::Cgroup::existing(&rel)
            .freeze(paused)
            .map_err(|e| EngineError::Unsupported(format!("cannot pause: {e}")))?;
        st.paused = paused;
        view.bundle.save_state(&st)?;
        crate::events::record(
            &self.cfg.data_root,
            "container",
            if paused { "pause" } else { "unpause" },
            &view.record.id,
            &view.record.name,
        );
        Ok(())
    }

    /// Waits for a container to exit; returns its exit status.
    pub fn wait(&self, key: &str) -> Result<i32> {
        self.wait_exited(key, None)?;
        Ok(self.container(key)?.state.exit_code.unwrap_or(0))
    }
}

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<i64>,
    pub cpu_limit: Option<super::options::CpuLimit>,
    pub restart: Option<super::options::RestartPolicy>,
}

impl Engine {
    /// Changes a container's limits (kept for its next starts, and applied to its cgroup
    /// when it runs) and its restart policy.
    pub fn update(&self, key: &str, o: &UpdateOptions) -> Result<()> {
        let view = self.container(key)?;
        let bundle = &view.bundle;
        if let Some(r) = &o.restart {
            r.validate()?;
            let mut hc = bundle.host_config();
            if hc["AutoRemove"].as_bool().unwrap_or(false) && !matches!(r.name.as_str(), "" | "no")
            {
                return Err(EngineError::Invalid(
                    "conflicting options: a restart policy and auto-remove (--rm)".into(),
                ));
            }
            hc["RestartPolicy"] = serde_json::to_value(r)?;
            bundle.write("hostconfig.json", &serde_json::to_vec(&hc)?, true)?;
        }
        let res = runtime::spec::Resources {
            memory: o.memory,
            swap: o.memory_swap,
            cpu_shares: o.cpu_shares,
            pids: o.pids,
            cpu_quota: o.cpu_limit.map(|c| c.quota_period().0),
            cpu_period: o.cpu_limit.map(|c| c.quota_period().1),
            ..Default::default()
        };
        if !res.any() {
            return Ok(());
        }
        let mut spec = bundle.spec()?;
        runtime::spec::set_limits(&mut spec, &res)?;
        runtime::spec::save(&spec, bundle.dir())?;
        // Inspect shows the limits as given, now these.
        let mut hc = bundle.host_config();
        let mem = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref().map(|m| (m.limit(), m.swap())));
        if o.memory.is_some() || o.memory_swap.is_some() {
            if let Some((limit, swap)) = mem {
                hc["Memory"] = limit.unwrap_or(0).into();
                hc["MemorySwap"] = swap.unwrap_or(0).into();
            }
        }
        if let Some(s) = o.cpu_shares {
            hc["CpuShares"] = s.into();
        }
        if let Some(p) = o.pids {
            hc["PidsLimit"] = p.into();
        }
        if o.cpu_limit.is_some() {
            let (n, q, p) = super::options::CpuLimit::fields(o.cpu_limit);
            hc["NanoCpus"] = n.into();
            hc["CpuQuota"] = q.into();
            hc["CpuPeriod"] = p.into();
        }
        bundle.write("hostconfig.json", &serde_json::to_vec(&hc)?, true)?;
        // Memory and swap go to the cgroup together, as the spec now has them.
        let mut res = res;
        if res.memory.is_some() || res.swap.is_some() {
            let mem = spec
                .linux()
                .as_ref()
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.memory().as_ref().map(|m| (m.limit(), m.swap())));
            if let Some((limit, swap)) = mem {
                res.memory = limit;
                res.swap = swap;
            }
        }
        if view.state.is_running() {
            runtime::cgroups::Cgroup::existing(&format!("strata/{}", view.record.id))
                .update(&res)
                .map_err(|e| {
                    EngineError::Unsupported(format!(
                        "the new limits apply from the next start: {e} (a running container keeps the controllers it was started with)"
                    ))
                })?;
        }
        crate::events::record(
            &self.cfg.data_root,
            "container",
            "update",
            &view.record.id,
            &view.record.name,
        );
        Ok(())
    }
}
