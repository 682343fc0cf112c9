//! One reader of the events file per daemon, and every follower fed from it: the file is
//! written by every process on the data root (the CLI, shims, the daemon), so it stays the
//! source; what changes is that N `events` followers cost one inotify wake-up and one read
//! of the new lines, not N re-reads of the whole file every 100 ms.
//!
//! The reader keeps the last [`KEPT`] events in a ring numbered by a sequence; a follower
//! holds a cursor (the next sequence it wants) and waits on a condition variable with a
//! bound, so a follower whose client left is noticed within that bound. A follower that
//! falls further behind than the ring loses the events that left it, as dockerd's
//! followers do when their buffer overflows.

use super::{Event, FILE};
use crate::containers::watch::FolderWatch;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// How many recent events the ring keeps for followers that are behind.
pub const KEPT: usize = 4096;

/// How long the reader waits for a change it was not told of (a lost inotify event, no
/// watches left) before it looks at the file anyway.
const RESCAN: Duration = Duration::from_secs(1);

/// The longest line taken from the file: a longer one is not an event strata wrote.
const MAX_LINE: usize = 64 << 10;

/// How much of the file the reader takes per read.
const CHUNK: usize = 256 << 10;

/// Recent events of one data root, fed by one reader thread.
pub struct Feed {
    ring: Mutex<Ring>,
    changed: Condvar,
}

struct Ring {
    events: VecDeque<Event>,
    /// The sequence number of `events[0]`.
    first: u64,
}

impl Ring {
    fn next(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl Feed {
    /// Starts the reader of `data_root`'s events file at its current end; the reader
    /// stops when the last holder of the feed drops it.
    pub fn start(data_root: &Path) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                first: 0,
            }),
            changed: Condvar::new(),
        });
        let mut tail = Tail::at_end(data_root.join(FILE));
        let weak = Arc::downgrade(&feed);
        let root = data_root.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("events-feed".into())
            .spawn(move || {
                let mut watch = FolderWatch::new(&root);
                while let Some(feed) = Weak::upgrade(&weak) {
                    let new = tail.read_new();
                    if !new.is_empty() {
                        feed.push(new);
                    }
                    drop(feed);
                    watch.wait(RESCAN);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the events reader: followers get no new events");
        }
        feed
    }

    fn push(&self, new: Vec<Event>) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        for e in new {
            if ring.events.len() == KEPT {
                ring.events.pop_front();
                ring.first += 1;
            }
            ring.events.push_back(e);
        }
        drop(ring);
        self.changed.notify_all();
    }

    /// The cursor of a follower that wants only what comes from now on.
    pub fn cursor(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).next()
    }

    /// The events from `cursor` on, advancing it; waits up to `bound` for one when there
    /// are none yet (an empty answer means the bound passed).
    pub fn next_after(&self, cursor: &mut u64, bound: Duration) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (ring, _) = self
            .changed
            .wait_timeout_while(ring, bound, |r| r.next() <= *cursor)
            .unwrap_or_else(|e| e.into_inner());
        // Behind the ring: what left it is lost.
        let from = (*cursor).max(ring.first);
        let out: Vec<Event> = ring
            .events
            .iter()
            .skip((from - ring.first) as usize)
            .cloned()
            .collect();
        *cursor = ring.next();
        out
    }
}

/// The reader's place in the events file, across rotations.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    /// The inode `file` is, to notice a rotation (the name now names a new file).
    ino: u64,
    /// Bytes after the last whole line read.
    partial: Vec<u8>,
    /// The read buffer, [`CHUNK`] bytes, made once.
    buf: Vec<u8>,
}

impl Tail {
    fn at_end(path: PathBuf) -> Tail {
        let mut t = Tail {
            path,
            file: None,
            ino: 0,
            partial: Vec::new(),
            buf: vec![0u8; CHUNK],
        };
        if let Some((mut f, ino)) = t.open() {
            if f.seek(SeekFrom::End(0)).is_ok() {
                t.file = Some(f);
                t.ino = ino;
            }
        }
        t
    }

    fn open(&self) -> Option<(File, u64)> {
        let f = File::open(&self.path).ok()?;
        let ino = f.metadata().ok()?.ino();
        Some((f, ino))
    }

    /// Whole lines added since the last read: the rest of a rotated file first, then the
    /// new file from its start.
    fn read_new(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        for _ in 0..2 {
            // In chunks: however much was appended, the reader holds at most a chunk and
            // one line (a longer line is dropped), never the whole growth at once.
            let mut buf = std::mem::take(&mut self.buf);
            while let Some(f) = &mut self.file {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.take_lines(&buf[..n], &mut out),
                }
            }
            self.buf = buf;
            let now = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            if now.is_none() || now == Some(self.ino) {
                break;
            }
            // Rotated (or made): the old file is read to its end above; on to the new one.
            self.partial.clear();
            match self.open() {
                Some((f, ino)) => {
                    self.file = Some(f);
                    self.ino = ino;
                }
                None => break,
            }
        }
        out
    }

    fn take_lines(&mut self, buf: &[u8], out: &mut Vec<Event>) {
        self.partial.extend_from_slice(buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
            }
            return;
        };
        for line in self.partial[..end].split(|b| *b == b'\n') {
            if let Ok(e) = serde_json::from_slice::<Event>(line) {
                out.push(e);
            }
        }
        self.partial.drain(..=end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(feed: &Feed, cursor: &mut u64, n: usize) -> Vec<Event> {
        let mut got = Vec::new();
        let t = std::time::Instant::now();
        while got.len() < n && t.elapsed() < Duration::from_secs(10) {
            got.extend(feed.next_after(cursor, Duration::from_millis(200)));
        }
        got
    }

    #[test]
    fn followers_get_events_recorded_after_they_came_in_order() {
        let d = tempfile::tempdir().unwrap();
        super::super::record(d.path(), "container", "create", "old", "x");
        let feed = Feed::start(d.path());
        let (mut a, mut b) = (feed.cursor(), feed.cursor());
        for i in 0..5 {
            super::super::record(d.path(), "container", "start", &format!("c{i}"), "x");
        }
        for cursor in [&mut a, &mut b] {
            let got = wait_for(&feed, cursor, 5);
            let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
            assert_eq!(
                ids,
                ["c0", "c1", "c2", "c3", "c4"],
                "the earlier event is history, not new"
            );
        }
        // Nothing new: the bound passes with nothing.
        assert!(feed
            .next_after(&mut a, Duration::from_millis(50))
            .is_empty());
    }

    /// Attack: a line with no end, megabytes long, appended to the events file. The reader
    /// keeps at most one line's bound of it and reads the events after it.
    #[test]
    fn an_endless_line_is_dropped_not_kept() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(FILE);
        std::fs::write(&path, b"").unwrap();
        let mut tail = Tail::at_end(path.clone());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &vec![b'x'; 8 << 20]).unwrap();
        assert!(tail.read_new().is_empty());
        assert!(
            tail.partial.len() <= MAX_LINE + CHUNK,
            "kept {} bytes of one line",
            tail.partial.len()
        );
        drop(f);
        super::super::record(d.path(), "container", "start", "after", "x");
        let got = tail.read_new();
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["after"], "the event after the garbage is read");
    }

    #[test]
    fn a_rotation_loses_no_event() {
        let d = tempfile::tempdir().unwrap();
        super::super::record(d.path(), "image", "load", "history", "");
        let feed = Feed::start(d.path());
        let mut c = feed.cursor();
        super::super::record(d.path(), "image", "load", "before", "");
        // What `record` does at 4 MiB, done by hand between two events.
        std::fs::rename(d.path().join(FILE), d.path().join(format!("{FILE}.1"))).unwrap();
        super::super::record(d.path(), "image", "load", "after", "");
        let got = wait_for(&feed, &mut c, 2);
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["before", "after"]);
    }

    #[test]
    fn a_follower_behind_the_ring_gets_the_newest() {
        let feed = Feed {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                first: 0,
            }),
            changed: Condvar::new(),
        };
        let mut c = feed.cursor();
        let ev = |i: usize| Event {
            typ: "image".into(),
            action: "tag".into(),
            id: i.to_string(),
            name: String::new(),
            time_nano: i as u128,
            exit_code: None,
        };
        feed.push((0..KEPT + 10).map(ev).collect());
        let got = feed.next_after(&mut c, Duration::ZERO);
        assert_eq!(got.len(), KEPT);
        assert_eq!(got[0].id, "10");
        assert_eq!(c, (KEPT + 10) as u64);
    }
}
