//! Waiting for a folder to change instead of polling it: an inotify watch on the folder
//! wakes a waiter when a file is written or renamed into it (a container's state), a log
//! grows, or the folder goes. Waits keep a bound so the few facts no file change announces
//! (a runner that died, a client gone) are still looked at now and then.
//!
//! A waiter can also name a process ([`FolderWatch::watch_process`]): its pidfd wakes the
//! waiter when it exits, so a runner that dies without a word is seen at once too.
//!
//! One inotify instance serves every watch of the process, read by one thread: the kernel
//! allows a user 128 instances (`fs.inotify.max_user_instances`), and a daemon with a
//! hundred `logs -f` followers took one each, so the rest fell back to polling every few
//! milliseconds (3.6 % of a core for 200 idle followers, measured). Watches of one folder
//! share its watch descriptor; each waiter keeps the count of changes it has seen.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One folder's changes: a count, and a condition variable its waiters sleep on.
#[derive(Default)]
struct Slot {
    changes: Mutex<SlotState>,
    changed: Condvar,
}

impl Slot {
    /// Counts a change (and the watch's end when `gone`) and wakes the waiters.
    fn bump(&self, gone: bool) {
        let mut st = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        st.count += 1;
        st.gone |= gone;
        drop(st);
        self.changed.notify_all();
    }
}

#[derive(Default)]
struct SlotState {
    count: u64,
    /// The watch is gone (the folder was removed): waits end at once.
    gone: bool,
}

/// The process's inotify instance and its watches by descriptor, and the pidfds of the
/// processes waited on; one epoll instance gathers both for the reader thread.
struct Hub {
    fd: OwnedFd,
    epoll: OwnedFd,
    /// Watch descriptor -> (its slot, the FolderWatches using it).
    slots: Mutex<HashMap<i32, (Arc<Slot>, usize)>>,
    /// Epoll token -> (a waited process's pidfd, the slot its exit wakes).
    procs: Mutex<HashMap<u64, (OwnedFd, Arc<Slot>)>>,
    /// The next process token (0 is the inotify descriptor's).
    next: AtomicU64,
}

fn hub() -> Option<&'static Hub> {
    static HUB: OnceLock<Option<&'static Hub>> = OnceLock::new();
    *HUB.get_or_init(|| {
        use rustix::event::epoll;
        use rustix::fs::inotify::{self, CreateFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
        epoll::add(
            &ep,
            &fd,
            epoll::EventData::new_u64(0),
            epoll::EventFlags::IN,
        )
        .ok()?;
        let hub: &'static Hub = Box::leak(Box::new(Hub {
            fd,
            epoll: ep,
            slots: Mutex::new(HashMap::new()),
            procs: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }));
        std::thread::Builder::new()
            .name("folder-watch".into())
            .spawn(move || hub.read_events())
            .ok()?;
        Some(hub)
    })
}

impl Hub {
    /// Waits for events for ever: folder changes and process exits, each counted on its
    /// slot and waking that slot's waiters.
    fn read_events(&self) {
        use rustix::event::epoll;
        let mut buf = vec![0u8; 64 << 10];
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "folder watches: waiting on epoll failed; waits fall back to their bounds");
                    return;
                }
            }
            for ev in &events {
                let data = ev.data;
                match data.u64() {
                    0 => {
                        if !self.read_inotify(&mut buf) {
                            return;
                        }
                    }
                    token => self.process_exited(token),
                }
            }
        }
    }

    /// A waited process exited: its pidfd goes, its slot counts a change.
    fn process_exited(&self, token: u64) {
        if let Some(slot) = self.forget_process(token) {
            slot.bump(false);
        }
    }

    /// Reads what inotify has queued; `false` when it cannot be read any more.
    fn read_inotify(&self, buf: &mut [u8]) -> bool {
        loop {
            let n = match rustix::io::read(&self.fd, &mut *buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "folder watches: reading inotify failed; waits fall back to their bounds");
                    return false;
                }
            };
            // struct inotify_event: wd (i32), mask (u32), cookie (u32), len (u32), name.
            let mut at = 0;
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            while at + 16 <= n {
                let wd = i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                let mask = u32::from_ne_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
                let len =
                    u32::from_ne_bytes([buf[at + 12], buf[at + 13], buf[at + 14], buf[at + 15]])
                        as usize;
                at += 16 + len;
                if let Some((slot, _)) = slots.get(&wd) {
                    // IN_IGNORED: the kernel dropped the watch (the folder is gone).
                    slot.bump(mask & 0x8000 != 0);
                }
            }
        }
    }

    /// Wakes `slot` when process `pid`, started at `start`, exits; the token to
    /// [`Hub::forget_process`] with, or `None` when it is not running (or has no pidfd).
    fn watch_process(&self, pid: u32, start: u64, slot: &Arc<Slot>) -> Option<u64> {
        use rustix::event::epoll;
        let fd = fsutil::process::pidfd(pid, start)?;
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        epoll::add(
            &self.epoll,
            &fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )
        .ok()?;
        procs.insert(token, (fd, slot.clone()));
        Some(token)
    }

    /// Stops waiting on process `token` (its pidfd closes); the slot it woke, if it was
    /// still watched.
    fn forget_process(&self, token: u64) -> Option<Arc<Slot>> {
        let (fd, slot) = self
            .procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token)?;
        let _ = rustix::event::epoll::delete(&self.epoll, &fd);
        Some(slot)
    }

    fn watch(&self, dir: &Path) -> Option<(i32, Arc<Slot>)> {
        use rustix::fs::inotify::{self, WatchFlags};
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let wd = inotify::add_watch(
            &self.fd,
            dir,
            WatchFlags::MOVED_TO
                | WatchFlags::CREATE
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::MODIFY
                | WatchFlags::DELETE
                | WatchFlags::DELETE_SELF
                | WatchFlags::MOVE_SELF,
        )
        .ok()?;
        let entry = slots.entry(wd).or_insert_with(|| (Arc::default(), 0));
        // A descriptor the kernel reuses after its folder went: a fresh slot.
        if entry.0.changes.lock().map(|s| s.gone).unwrap_or(true) {
            *entry = (Arc::default(), 0);
        }
        entry.1 += 1;
        Some((wd, entry.0.clone()))
    }

    fn unwatch(&self, wd: i32) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = slots.get_mut(&wd) {
            entry.1 -= 1;
            if entry.1 == 0 {
                let gone = entry.0.changes.lock().map(|s| s.gone).unwrap_or(true);
                slots.remove(&wd);
                if !gone {
                    let _ = rustix::fs::inotify::remove_watch(&self.fd, wd);
                }
            }
        }
    }
}

/// A watch on one folder.
pub struct FolderWatch {
    watch: Option<(i32, Arc<Slot>)>,
    /// The folder's change count this watcher has seen.
    seen: u64,
    /// The processes it also waits on: (pid, token).
    procs: Vec<(u32, u64)>,
}

impl FolderWatch {
    /// Watches `dir`. Where inotify cannot be had (no folder, no watches left) the watch
    /// is a plain sleep of a few milliseconds, as the polls it replaces were.
    pub fn new(dir: &Path) -> FolderWatch {
        let watch = hub().and_then(|h| h.watch(dir));
        let seen = watch
            .as_ref()
            .map(|(_, s)| s.changes.lock().map(|c| c.count).unwrap_or(0))
            .unwrap_or(0);
        FolderWatch {
            watch,
            seen,
            procs: Vec::new(),
        }
    }

    /// Also ends the next waits when process `pid` (started at `start`, see
    /// [`fsutil::process::start_time`]) exits: what a runner that dies never writes.
    /// `false` when that cannot be watched (it is gone already, or there is no watch):
    /// the caller keeps a short bound then.
    pub fn watch_process(&mut self, pid: u32, start: u64) -> bool {
        let (Some((_, slot)), Some(h)) = (&self.watch, hub()) else {
            return false;
        };
        match h.watch_process(pid, start, slot) {
            Some(token) => {
                self.procs.push((pid, token));
                true
            }
            None => false,
        }
    }

    /// Whether `pid` (a container's runner: its shim or a foreground command; 0 for none)
    /// is alive; the first time it is, later waits also end when it exits.
    pub fn runner_alive(&mut self, pid: u32) -> bool {
        let Some(start) = (pid != 0)
            .then(|| fsutil::process::start_time(pid))
            .flatten()
        else {
            return false;
        };
        if !self.procs.iter().any(|(p, _)| *p == pid) {
            self.watch_process(pid, start);
        }
        true
    }

    /// Whether a process's exit wakes this watch (so a wait needs no short bound).
    pub fn watches_a_process(&self) -> bool {
        !self.procs.is_empty()
    }

    /// Returns once something in the folder changed since the last wait (or since the
    /// watch was made), or after `bound` at the most.
    pub fn wait(&mut self, bound: Duration) {
        let Some((_, slot)) = &self.watch else {
            std::thread::sleep(bound.min(Duration::from_millis(5)));
            return;
        };
        let deadline = Instant::now() + bound;
        let mut st = slot.changes.lock().unwrap_or_else(|e| e.into_inner());
        while st.count == self.seen && !st.gone {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = slot
                .changed
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if st.gone && st.count == self.seen {
            // Nothing will come: the caller looks again after a short pause.
            drop(st);
            std::thread::sleep(bound.min(Duration::from_millis(5)));
            return;
        }
        self.seen = st.count;
    }
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        if let Some(h) = hub() {
            for (_, t) in &self.procs {
                h.forget_process(*t);
            }
            if let Some((wd, _)) = &self.watch {
                h.unwatch(*wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_into_the_folder_wakes_the_waiter_at_once() {
        let d = tempfile::tempdir().unwrap();
        let mut w = FolderWatch::new(d.path());
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
        // the first woke the waiter, and the reader thread counts them a moment later:
        // taken now, before the quiet wait.
        std::thread::sleep(Duration::from_millis(50));
        w.wait(Duration::ZERO);
        // Nothing more: the bound ends the wait.
        let t0 = std::time::Instant::now();
        w.wait(Duration::from_millis(100));
        assert!(t0.elapsed() >= Duration::from_millis(90));
    }

    /// A process that exits writes nothing into the folder: its pidfd wakes the waiter.
    #[test]
    fn a_watched_process_that_exits_wakes_the_waiter_at_once() {
        let d = tempfile::tempdir().unwrap();
        let mut w = FolderWatch::new(d.path());
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let start = fsutil::process::start_time(child.id()).unwrap();
        assert!(!w.watch_process(child.id(), start + 1), "another process");
        assert!(w.watch_process(child.id(), start));
        let t0 = std::time::Instant::now();
        w.wait(Duration::from_secs(10));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "woken by the exit, not the bound"
        );
        child.wait().unwrap();
        assert!(
            !w.watch_process(child.id(), start),
            "gone: nothing to watch"
        );
        drop(w);
        let h = hub().unwrap();
        assert!(h.procs.lock().unwrap().is_empty(), "a pidfd was kept");
    }

    /// More watches than the kernel's 128 inotify instances a user may have: every one
    /// is woken by its own folder's change (one instance serves them all), none by
    /// another's.
    #[test]
    fn two_hundred_watches_share_one_instance() {
        let d = tempfile::tempdir().unwrap();
        let dirs: Vec<std::path::PathBuf> = (0..200)
            .map(|i| {
                let p = d.path().join(i.to_string());
                std::fs::create_dir(&p).unwrap();
                p
            })
            .collect();
        let mut watches: Vec<FolderWatch> = dirs.iter().map(|p| FolderWatch::new(p)).collect();
        assert!(
            watches.iter().all(|w| w.watch.is_some()),
            "a watch fell back to polling"
        );
        std::fs::write(dirs[197].join("f"), b"x").unwrap();
        let t0 = Instant::now();
        watches[197].wait(Duration::from_secs(10));
        assert!(t0.elapsed() < Duration::from_secs(5), "woken by its change");
        let t0 = Instant::now();
        watches[198].wait(Duration::from_millis(100));
        assert!(
            t0.elapsed() >= Duration::from_millis(90),
            "not woken by another folder's"
        );
    }
}
