//! The health checks of one run of a container, run by its shim on the relay's one
//! thread (so they go on while no daemon runs): each probe is an exec shim (`strata shim
//! exec`, a fresh process that joins the container) whose output comes back on a pipe and
//! whose exit the loop sees through a pidfd. A probe that outlives the timeout is killed
//! inside the container by its helper; the exec shim itself is killed shortly after if
//! it is still there.

use super::config::{go_duration, HealthConfig};
use super::record::{Health, ProbeResult, MAX_OUTPUT};
use crate::containers::logging::copier::Sidecar;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long after its timeout a probe's exec shim is killed if its helper has not ended
/// it.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Makes the command line of a probe (the exec shim of a command).
pub type ProbeCommand = Box<dyn Fn(&[String], Duration) -> Option<Command>>;

/// One probe in flight.
struct Probe {
    child: Child,
    pidfd: OwnedFd,
    out: std::fs::File,
    /// The pipe reached end of file: it is no longer polled (a hung-up pipe is always
    /// ready).
    out_done: bool,
    output: Vec<u8>,
    start: SystemTime,
    began: Instant,
}

/// The checks of one run.
pub struct Monitor {
    cfg: HealthConfig,
    dir: PathBuf,
    on_change: Box<dyn Fn(&str)>,
    command: ProbeCommand,
    started: Instant,
    next: Instant,
    health: Health,
    probe: Option<Probe>,
}

impl Monitor {
    /// Checks for a run started now: `starting` is recorded in `dir` at once; the first
    /// probe runs after one interval, as dockerd's; `on_change` hears each new status.
    pub fn start(
        cfg: HealthConfig,
        dir: PathBuf,
        command: ProbeCommand,
        on_change: Box<dyn Fn(&str)>,
    ) -> Monitor {
        let health = Health::starting();
        let _ = health.write(&dir);
        let now = Instant::now();
        let mut m = Monitor {
            cfg,
            dir,
            on_change,
            command,
            started: now,
            next: now,
            health,
            probe: None,
        };
        m.next = now + m.interval();
        m
    }

    /// dockerd's choice of the wait before the next probe: the start interval while the
    /// container is starting within its start period, else the interval.
    fn interval(&self) -> Duration {
        if self.started.elapsed() < self.cfg.start_period() && self.health.status == "starting" {
            self.cfg.start_interval()
        } else {
            self.cfg.interval()
        }
    }

    fn launch(&mut self) {
        let start = SystemTime::now();
        let began = Instant::now();
        let failed = |m: &mut Monitor, why: String| {
            m.finish(ProbeResult {
                start: crate::containers::logging::timestamp(start),
                end: crate::containers::logging::timestamp(SystemTime::now()),
                exit_code: -1,
                output: why,
            })
        };
        let Some(mut cmd) = (self.command)(&self.cfg.command(), self.cfg.timeout()) else {
            return failed(
                self,
                "cannot find the strata executable to run the check".into(),
            );
        };
        let (r, w) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
            Ok(p) => p,
            Err(e) => return failed(self, format!("pipe: {e}")),
        };
        let _ = rustix::io::ioctl_fionbio(&r, true);
        let w2 = match w.try_clone() {
            Ok(w2) => w2,
            Err(e) => return failed(self, format!("pipe: {e}")),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2));
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return failed(self, format!("start the check: {e}")),
        };
        drop(cmd);
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let Some(pidfd) = pidfd else {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return failed(self, "pidfd_open failed".into());
        };
        self.probe = Some(Probe {
            child,
            pidfd,
            out: std::fs::File::from(r),
            out_done: false,
            output: Vec::new(),
            start,
            began,
        });
    }

    /// Reads what the probe wrote (the first [`MAX_OUTPUT`] bytes are kept, the rest is
    /// read and dropped so the probe never blocks on a full pipe).
    fn drain(p: &mut Probe) {
        let mut buf = [0u8; 8192];
        while !p.out_done {
            match p.out.read(&mut buf) {
                Ok(0) => p.out_done = true,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(p.output.len());
                    p.output.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => p.out_done = true,
            }
        }
    }

    fn finish(&mut self, r: ProbeResult) {
        let in_start = self.started.elapsed() < self.cfg.start_period();
        let changed = self.health.take(r, in_start, self.cfg.retries());
        let _ = self.health.write(&self.dir);
        if changed {
            (self.on_change)(&self.health.status);
        }
        self.next = Instant::now() + self.interval();
    }

    /// Ends a probe that has exited or outlived its time.
    fn check_probe(&mut self) {
        let Some(p) = self.probe.as_mut() else {
            return;
        };
        Self::drain(p);
        let timeout = self.cfg.timeout();
        let exited = matches!(p.child.try_wait(), Ok(Some(_)));
        let overdue = p.began.elapsed() >= timeout + KILL_GRACE;
        if !exited && !overdue {
            return;
        }
        let Some(mut p) = self.probe.take() else {
            return;
        };
        if !exited {
            let _ = p.child.kill();
        }
        let status = p.child.wait().ok();
        Self::drain(&mut p);
        let timed_out = p.began.elapsed() >= timeout;
        let (exit_code, output) = if timed_out {
            (
                -1,
                format!("Health check exceeded timeout ({})", go_duration(timeout)),
            )
        } else {
            (
                status.and_then(|s| s.code()).unwrap_or(-1),
                String::from_utf8_lossy(&p.output).into_owned(),
            )
        };
        self.finish(ProbeResult {
            start: crate::containers::logging::timestamp(p.start),
            end: crate::containers::logging::timestamp(SystemTime::now()),
            exit_code,
            output,
        });
    }
}

impl Sidecar for Monitor {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        match &self.probe {
            Some(p) if p.out_done => vec![p.pidfd.as_fd()],
            Some(p) => vec![p.out.as_fd(), p.pidfd.as_fd()],
            None => Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        Some(match &self.probe {
            Some(p) => p.began + self.cfg.timeout() + KILL_GRACE,
            None => self.next,
        })
    }

    fn turn(&mut self) {
        self.check_probe();
        if self.probe.is_none() && Instant::now() >= self.next {
            self.launch();
        }
    }
}

impl Drop for Monitor {
    /// A probe still running when the container exits is ended with it.
    fn drop(&mut self) {
        if let Some(mut p) = self.probe.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
