//! Waiting for a container's folder to change instead of polling it: an inotify watch on
//! the folder wakes a waiter when its state is written (an atomic rename into the
//! folder), its log grows, or the folder goes. Waits keep a bound so the few facts no file
//! change announces (a runner that died) are still looked at now and then.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

/// A watch on one container folder.
pub struct FolderWatch {
    fd: Option<OwnedFd>,
}

impl FolderWatch {
    /// Watches `dir`. Where inotify cannot be had (no folder, no watches left) the watch
    /// is a plain sleep of a few milliseconds, as the polls it replaces were.
    pub fn new(dir: &Path) -> FolderWatch {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .ok()
            .filter(|fd| {
                inotify::add_watch(
                    fd,
                    dir,
                    WatchFlags::MOVED_TO
                        | WatchFlags::CREATE
                        | WatchFlags::CLOSE_WRITE
                        | WatchFlags::MODIFY
                        | WatchFlags::DELETE
                        | WatchFlags::DELETE_SELF
                        | WatchFlags::MOVE_SELF,
                )
                .is_ok()
            });
        FolderWatch { fd }
    }

    /// Returns once something in the folder changed, or after `bound` at the most.
    pub fn wait(&self, bound: Duration) {
        let Some(fd) = &self.fd else {
            std::thread::sleep(bound.min(Duration::from_millis(5)));
            return;
        };
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let t = rustix::event::Timespec {
            tv_sec: bound.as_secs() as i64,
            tv_nsec: bound.subsec_nanos() as i64,
        };
        let _ = rustix::event::poll(&mut fds, Some(&t));
        // The events themselves say nothing the caller does not read again: drained.
        let mut buf = [0u8; 4096];
        while matches!(rustix::io::read(fd, &mut buf), Ok(n) if n > 0) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_into_the_folder_wakes_the_waiter_at_once() {
        let d = tempfile::tempdir().unwrap();
        let w = FolderWatch::new(d.path());
        let p = d.path().to_path_buf();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(p.join("tmp"), b"x").unwrap();
            std::fs::rename(p.join("tmp"), p.join("state.json")).unwrap();
        });
        let t0 = std::time::Instant::now();
        w.wait(Duration::from_secs(10));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "woken by the change, not the bound"
        );
        t.join().unwrap();
        // The writer's later events (the file written, then renamed) may have come after
        // the first woke the waiter: taken now, before the quiet wait.
        w.wait(Duration::ZERO);
        // Nothing more: the bound ends the wait.
        let t0 = std::time::Instant::now();
        w.wait(Duration::from_millis(100));
        assert!(t0.elapsed() >= Duration::from_millis(90));
    }
}
