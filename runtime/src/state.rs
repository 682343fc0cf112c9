//! A container's runtime state (`state.json` in its folder): written by whoever started
//! it (the CLI in the foreground, the monitor for `-d`) and read by every other command.
//! Whether "running" is still true is checked against the kernel (the pid exists and has
//! the start time recorded), so a crash or a reboot never leaves a ghost running.

use crate::error::{Result, RuntimeError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where a container is in its life, as Docker names it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Its process was started (whether it still lives is [`State::is_running`]).
    Running,
    /// Its process ended (or never started: see [`State::error`]).
    Exited,
}

impl Status {
    /// The word Docker uses (`created`, `running`, `exited`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runtime state of one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub status: Status,
    #[serde(default)]
    pub pid: u32,
    /// The process's start time (clock ticks since boot), to tell it from a reused pid.
    #[serde(default)]
    pub pid_start: u64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// Seconds since the epoch.
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub finished_at: Option<f64>,
    /// The monitor process of a detached container.
    #[serde(default)]
    pub monitor_pid: u32,
    /// Frozen by `pause`.
    #[serde(default)]
    pub paused: bool,
    /// How many times its shim restarted it (restart policies).
    #[serde(default)]
    pub restart_count: u32,
    /// The error that kept it from starting, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The start time of `pid` (field 22 of /proc/PID/stat), if it exists and is not a zombie.
pub use fsutil::process::start_time;

/// Seconds since the epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl State {
    /// The state in folder `dir` (`created` when none was written yet).
    pub fn load(dir: &Path) -> Result<State> {
        let p = dir.join("state.json");
        match fsutil::parsed_cache::read_parsed(&p, |d| serde_json::from_slice::<State>(d)) {
            Ok(Some(Ok(s))) => Ok(s),
            Ok(Some(Err(e))) => Err(RuntimeError::Other(format!("{}: {e}", p.display()))),
            Ok(None) => Ok(State::default()),
            Err(e) => Err(RuntimeError::io("read", p, e)),
        }
    }

    /// Replaces the state atomically. Not flushed: runtime state does not outlive a reboot
    /// (a `running` whose process is gone reads as exited), so a power cut loses nothing
    /// that is still true.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("state.json");
        let data =
            serde_json::to_vec_pretty(self).map_err(|e| RuntimeError::Other(e.to_string()))?;
        fsutil::write_replace(&p, &data).map_err(|e| RuntimeError::io("write", p, e))
    }

    /// Whether the container's process is alive now.
    pub fn is_running(&self) -> bool {
        self.status == Status::Running && fsutil::process::alive(self.pid, self.pid_start)
    }

    /// The status as it really is: a `running` whose process is gone is reported as
    /// `exited` (its monitor died with it, e.g. a reboot).
    pub fn effective_status(&self) -> Status {
        if self.status == Status::Running && !self.is_running() {
            Status::Exited
        } else {
            self.status
        }
    }
}
