//! A container's health as inspect shows it (`State.Health`), kept in `health.json` in
//! its folder by the shim that runs the checks.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How many results are kept (dockerd's `maxLogEntries`).
const MAX_LOG: usize = 5;
/// How much of a probe's output is kept (dockerd's `maxOutputLen`).
pub const MAX_OUTPUT: usize = 4096;

/// Docker's `Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "FailingStreak")]
    pub failing_streak: u32,
    #[serde(rename = "Log")]
    pub log: Vec<ProbeResult>,
}

/// One probe's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    #[serde(rename = "Start")]
    pub start: String,
    #[serde(rename = "End")]
    pub end: String,
    /// 0 healthy, anything else a failure; -1 when the probe could not run or timed out.
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Output")]
    pub output: String,
}

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

impl Health {
    /// The state of a container just started: `starting`, nothing logged.
    pub fn starting() -> Health {
        Health {
            status: STARTING.into(),
            ..Default::default()
        }
    }

    /// The record in container folder `dir`, if its checks ever ran.
    pub fn read(dir: &Path) -> Option<Health> {
        let b = std::fs::read(dir.join("health.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Replaces the record (atomically: a reader sees the old or the new one). Health is
    /// not kept across a reboot (the container is not running then), so nothing is
    /// flushed.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let b = serde_json::to_vec(self)?;
        fsutil::atomic::write_replace(&dir.join("health.json"), &b)
    }

    /// Takes a probe's result as dockerd does: success resets the streak and makes it
    /// healthy; a failure counts unless the container is still `starting` within its
    /// start period, and `retries` failures in a row make it unhealthy. Returns whether
    /// the status changed.
    pub fn take(&mut self, r: ProbeResult, in_start_period: bool, retries: u32) -> bool {
        let before = self.status.clone();
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
        } else if !(self.status == STARTING && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = UNHEALTHY.into();
            }
        }
        self.log.push(r);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
        self.status != before
    }

    /// The words `ps` adds to `Up ...`: `health: starting`, `healthy`, `unhealthy`.
    pub fn ps_words(&self) -> String {
        if self.status == STARTING {
            "health: starting".into()
        } else {
            self.status.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> ProbeResult {
        ProbeResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn streaks_and_the_start_period_follow_dockerd() {
        let mut h = Health::starting();
        // Failures in the start period do not count while starting.
        assert!(!h.take(result(1), true, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        assert!(h.take(result(0), true, 2));
        assert_eq!(h.status, HEALTHY);
        // Once healthy, failures count even within the start period.
        assert!(!h.take(result(1), true, 2));
        assert_eq!(h.failing_streak, 1);
        assert!(h.take(result(7), false, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        for _ in 0..10 {
            h.take(result(1), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert!(h.take(result(0), false, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
    }
}
