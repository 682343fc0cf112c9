//! A long-lived process's memory of the small files it parsed (container records, states,
//! host configs), checked by one `statx` per use: `docker ps` at a thousand containers in
//! the daemon then parses only what changed since the last listing, while a CLI working on
//! the same data root is still seen at once (no writer has to tell the daemon anything).
//!
//! The key is the file's identity and change stamp (device, inode, size, mtime, ctime, to
//! the nanosecond). Records are replaced by rename (a new inode), and the kernels strata
//! runs on (6.13+) give a file whose stamps were looked at fine-grained stamps on its next
//! change, so two versions never share a key. Only processes that call [`enable`] (the
//! daemon) keep anything: a one-shot command would pay the extra `statx` for nothing.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Entries kept at most; past this the cache starts over (a bound, not a policy: a
/// thousand containers take about 3,000).
pub const MAX_ENTRIES: usize = 65_536;

/// Files larger than this are parsed every time (nothing strata lists is this big).
const MAX_FILE: u64 = 1 << 20;

static ENABLED: AtomicBool = AtomicBool::new(false);

type Stamp = (u64, u64, u64, i64, u32, i64, u32);

struct Entry {
    stamp: Stamp,
    value: Arc<dyn Any + Send + Sync>,
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Entry>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Turns the cache on for this process (the daemon, at start).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The file's stamp; `Ok(None)` when there is no file, `Some(None)` when it is too big
/// to keep.
fn stamp(path: &Path) -> io::Result<Option<Option<Stamp>>> {
    use rustix::fs::{AtFlags, StatxFlags};
    let st = match rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if st.stx_size > MAX_FILE {
        return Ok(Some(None));
    }
    let dev = (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor);
    Ok(Some(Some((
        dev,
        st.stx_ino,
        st.stx_size,
        st.stx_mtime.tv_sec,
        st.stx_mtime.tv_nsec,
        st.stx_ctime.tv_sec,
        st.stx_ctime.tv_nsec,
    ))))
}

/// The file at `path` parsed by `parse`: from memory when the file has not changed since
/// it was last parsed here, else read and parsed (and remembered when that succeeds).
/// `Ok(None)` when there is no such file.
pub fn read_parsed<T, E>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> io::Result<Option<Result<T, E>>>
where
    T: Clone + Send + Sync + 'static,
{
    Ok(read_shared(path, parse)?.map(|r| r.map(|v| (*v).clone())))
}

/// [`read_parsed`] without a copy: the value is shared with the cache (for big documents,
/// such as a runtime spec, that a listing only looks at).
pub fn read_shared<T, E>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> io::Result<Option<Result<Arc<T>, E>>>
where
    T: Send + Sync + 'static,
{
    let read = |parse: fn_once::Parse<'_, T, E>| -> io::Result<Option<Result<Arc<T>, E>>> {
        match std::fs::read(path) {
            Ok(data) => Ok(Some(parse(&data).map(Arc::new))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    if !ENABLED.load(Ordering::Relaxed) {
        return read(Box::new(parse));
    }
    // Stamped before the read: what is read is at least as new as the stamp, so a change
    // that races the read only causes one more read later.
    let stamp = match stamp(path)? {
        None => return Ok(None),
        Some(None) => return read(Box::new(parse)),
        Some(Some(stamp)) => stamp,
    };
    {
        let map = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(path) {
            if e.stamp == stamp {
                if let Ok(v) = e.value.clone().downcast::<T>() {
                    return Ok(Some(Ok(v)));
                }
            }
        }
    }
    let got = read(Box::new(parse))?;
    if let Some(Ok(v)) = &got {
        let mut map = cache().lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            path.to_path_buf(),
            Entry {
                stamp,
                value: v.clone(),
            },
        );
    }
    Ok(got)
}

/// Forgets `path` (its file was removed: the entry would only take room).
pub fn forget(path: &Path) {
    if ENABLED.load(Ordering::Relaxed) {
        cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}

mod fn_once {
    /// The caller's parser, taken by whichever read path runs.
    pub type Parse<'a, T, E> = Box<dyn FnOnce(&[u8]) -> Result<T, E> + 'a>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The cache is the process's: tests that count its parses or entries take turns.
    static TURN: Mutex<()> = Mutex::new(());

    /// Attack: more files than the bound, and a file past the size bound. The cache never
    /// holds more than [`MAX_ENTRIES`], and keeps nothing of the big file.
    #[test]
    fn the_cache_is_bounded_in_entries_and_file_size() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        enable();
        // 65,636 files: on a tmpfs where there is one (the disk's journal is not the test).
        let d = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let len = || cache().lock().unwrap().len();
        let mut most = 0;
        for i in 0..MAX_ENTRIES + 100 {
            let p = d.path().join(i.to_string());
            std::fs::write(&p, b"1").unwrap();
            read_parsed(&p, |b| Ok::<_, ()>(b.len())).unwrap();
            most = most.max(len());
        }
        assert!(most <= MAX_ENTRIES, "the cache held {most} entries");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b' '; MAX_FILE as usize + 1]).unwrap();
        let parses = AtomicUsize::new(0);
        for _ in 0..3 {
            read_parsed(&big, |b| {
                parses.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(b.len())
            })
            .unwrap();
        }
        assert_eq!(parses.load(Ordering::SeqCst), 3, "a big file is never kept");
        assert!(!cache().lock().unwrap().contains_key(&big));
    }

    #[test]
    fn a_file_is_parsed_again_only_when_it_changed() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        enable();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        let parses = AtomicUsize::new(0);
        let get = || {
            read_parsed(&p, |b| {
                parses.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(String::from_utf8_lossy(b).into_owned())
            })
            .unwrap()
        };
        assert!(get().is_none(), "no file");
        // Replaced by rename, as records are, many times within one clock tick: each
        // version is seen, with the same size every time.
        for i in 0..50 {
            crate::write_replace(&p, format!("v{i:02}").as_bytes()).unwrap();
            assert_eq!(get(), Some(Ok(format!("v{i:02}"))));
            assert_eq!(get(), Some(Ok(format!("v{i:02}"))));
        }
        assert_eq!(
            parses.load(Ordering::SeqCst),
            50,
            "the second read of each came from memory"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(get().is_none(), "a removed file is not served from memory");
    }
}
