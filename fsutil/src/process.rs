//! Whether a recorded process still runs: a pid and its start time (field 22 of
//! `/proc/PID/stat`) name one process even after the pid is reused.
//!
//! Reading `/proc/PID/stat` costs tens of microseconds (the kernel formats 52 fields); a
//! daemon that lists 1,000 running containers per request paid that per container. With
//! [`keep_pidfds`] a long-lived process instead opens a pidfd once per recorded process,
//! checks at that moment that it is the recorded one, and afterwards asks the pidfd (one
//! `poll` with no wait: readable once the process has exited).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The start time of `pid` in clock ticks since boot, `None` when there is no such process
/// or it is a zombie (it has exited and waits for its parent).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    if rest.next() == Some("Z") {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// How many pidfds the cache may hold (0: off, the default; short-lived commands read
/// `/proc` and keep no descriptor).
static CAP: AtomicUsize = AtomicUsize::new(0);

/// The open pidfds by (pid, start time): each was checked to be that process when opened.
static PIDFDS: Mutex<Option<HashMap<(u32, u64), OwnedFd>>> = Mutex::new(None);

/// Lets this process keep up to `cap` pidfds so that [`alive`] asks the kernel through them
/// instead of reading `/proc`. For the daemon, which checks the same processes on every
/// listing; the cap bounds the descriptors whatever the number of containers.
pub fn keep_pidfds(cap: usize) {
    CAP.store(cap, Ordering::Relaxed);
}

/// Whether process `pid`, started at `start` (see [`start_time`]), still runs.
pub fn alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let cap = CAP.load(Ordering::Relaxed);
    if cap == 0 {
        return start_time(pid) == Some(start);
    }
    if let Ok(mut guard) = PIDFDS.lock() {
        if let Some(fd) = guard.as_ref().and_then(|m| m.get(&(pid, start))) {
            let gone = exited(fd);
            if gone {
                guard.as_mut().map(|m| m.remove(&(pid, start)));
            }
            return !gone;
        }
    }
    let Some(fd) = pidfd(pid, start) else {
        return false;
    };
    if let Ok(mut guard) = PIDFDS.lock() {
        let fds = guard.get_or_insert_with(HashMap::new);
        if fds.len() >= cap {
            // Full: drop the entries of processes that have exited; if all still run, this
            // one is answered from `/proc` next time too.
            fds.retain(|_, fd| !exited(fd));
        }
        if fds.len() < cap {
            fds.insert((pid, start), fd);
        }
    }
    true
}

/// A pidfd of process `pid` started at `start`; `None` when that process is gone (or the
/// pid now names another). The pidfd is opened before the check: if `/proc` then shows the
/// recorded start time, it was opened on that process (a reused pid shows a later start).
pub fn pidfd(pid: u32, start: u64) -> Option<OwnedFd> {
    let raw = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ok()?;
    (start_time(pid) == Some(start)).then_some(fd)
}

/// Whether the process behind `fd` has exited (the pidfd polls readable).
fn exited(fd: &OwnedFd) -> bool {
    let mut p = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    match rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default())) {
        Ok(n) => n > 0,
        Err(_) => true,
    }
}

/// How many pidfds the cache holds now.
#[cfg(test)]
fn kept() -> usize {
    PIDFDS
        .lock()
        .map(|g| g.as_ref().map_or(0, HashMap::len))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_pidfd_sees_the_exit_and_a_reused_start_time_is_refused() {
        keep_pidfds(2);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap();
        assert!(alive(pid, start));
        assert!(alive(pid, start), "answered from the pidfd");
        assert_eq!(kept(), 1);
        assert!(
            !alive(pid, start + 1),
            "another start time is another process"
        );
        child.kill().unwrap();
        // A zombie until reaped: exited already.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!alive(pid, start), "the pidfd polls readable once it exits");
        assert_eq!(kept(), 0);
        child.wait().unwrap();
        assert!(!alive(pid, start));
        // The cap: processes beyond it are still answered, from /proc.
        let mut kids: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in &kids {
            assert!(alive(k.id(), start_time(k.id()).unwrap()));
        }
        assert_eq!(kept(), 2);
        for k in &mut kids {
            k.kill().unwrap();
            k.wait().unwrap();
        }
    }
}
