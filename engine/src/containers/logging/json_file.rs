//! Docker's json-file log: one JSON object a line (`{"log":"...","stream":"stdout",
//! "time":"..."}`) in `container.log`, rotated to `container.log.1`, `.2`, ... when the
//! next entry would take the file past `max-size`, keeping at most `max-file` files. Each
//! entry is one `write` to a file only the shim appends to, so a reader sees whole lines
//! (a partial last line is left for the next read). With `compress`, each rotated file
//! is gzipped (`container.log.N.gz`, written under a temporary name and renamed, then the
//! plain one removed); readers decompress them as they go.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The live log file of a container folder.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("container.log")
}

/// The `n`th rotated file (`container.log.N`).
fn rotated(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("container.log.{n}"))
}

/// The `n`th rotated file compressed (`container.log.N.gz`).
fn rotated_gz(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("container.log.{n}.gz"))
}

/// Renames `from` to `to` when it exists.
fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_if_there(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Gzips rotated file `plain` into `gz` (temporary name, renamed), then removes `plain`.
fn compress(plain: &Path, gz: &Path) -> io::Result<()> {
    let tmp = gz.with_extension("gz.tmp");
    let mut src = File::open(plain)?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    io::copy(&mut src, &mut enc)?;
    enc.finish()?;
    std::fs::rename(&tmp, gz)?;
    std::fs::remove_file(plain)
}

/// One entry as it is written.
#[derive(serde::Serialize, serde::Deserialize)]
struct Line<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: std::borrow::Cow<'a, str>,
}

/// Which stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends entries to a container's log, rotating it.
pub struct Writer {
    dir: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
    compress: bool,
}

impl Writer {
    /// Opens (or makes) the log in container folder `dir`.
    pub fn open(dir: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<Writer> {
        let file = open_append(&log_path(dir))?;
        let size = file.metadata()?.len();
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            compress: false,
        })
    }

    /// Whether rotated files are gzipped.
    pub fn compressed(mut self, compress: bool) -> Writer {
        self.compress = compress;
        self
    }

    /// The most bytes of output one entry carries: small enough that an entry, escaped
    /// at worst six bytes a byte, fits in `max-size`, so no file ever passes it.
    pub fn max_message(&self) -> usize {
        const DOCKER: usize = 16 << 10; // dockerd splits longer lines the same way
        match self.max_size {
            Some(m) => ((m.saturating_sub(128) / 6) as usize).clamp(1, DOCKER),
            None => DOCKER,
        }
    }

    /// Writes one entry of `msg` (at most [`Writer::max_message`] bytes) from `stream`.
    pub fn write(
        &mut self,
        stream: Stream,
        msg: &[u8],
        time: std::time::SystemTime,
    ) -> io::Result<()> {
        let line = Line {
            log: String::from_utf8_lossy(msg),
            stream: stream.name().into(),
            time: super::timestamp(time).into(),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + bytes.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// `container.log` becomes `.1`, `.1` becomes `.2`, ...; the oldest beyond
    /// `max-file` goes. With one file the log starts again empty.
    fn rotate(&mut self) -> io::Result<()> {
        let live = log_path(&self.dir);
        if self.max_files == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let last = self.max_files - 1;
        remove_if_there(&rotated(&self.dir, last))?;
        remove_if_there(&rotated_gz(&self.dir, last))?;
        for n in (1..last).rev() {
            rename_if_there(&rotated(&self.dir, n), &rotated(&self.dir, n + 1))?;
            rename_if_there(&rotated_gz(&self.dir, n), &rotated_gz(&self.dir, n + 1))?;
        }
        std::fs::rename(&live, rotated(&self.dir, 1))?;
        self.file = open_append(&live)?;
        self.size = 0;
        if self.compress {
            compress(&rotated(&self.dir, 1), &rotated_gz(&self.dir, 1))?;
        }
        Ok(())
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
}

/// Makes the live log file if it is not there yet, so a reader can hold it open before
/// the container starts (and read it even once the container's folder is removed).
pub fn ensure(dir: &Path) -> io::Result<()> {
    open_append(&log_path(dir)).map(drop)
}

/// A place in a container's log: the file (by inode) and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogPos {
    pub ino: u64,
    pub offset: u64,
}

/// Where the log ends now (nothing written yet: inode 0).
pub fn end(dir: &Path) -> LogPos {
    std::fs::metadata(log_path(dir))
        .map(|m| LogPos {
            ino: m.ino(),
            offset: m.len(),
        })
        .unwrap_or_default()
}

/// The log's files, oldest first, that exist now (a rotated file that is there both
/// plain and compressed, mid-compression, is read plain).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated_files: std::collections::BTreeMap<u32, PathBuf> = Default::default();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("container.log.") else {
            continue;
        };
        if let Ok(n) = rest.parse::<u32>() {
            rotated_files.insert(n, e.path());
        } else if let Some(n) = rest.strip_suffix(".gz").and_then(|n| n.parse::<u32>().ok()) {
            rotated_files.entry(n).or_insert_with(|| e.path());
        }
    }
    let mut out: Vec<PathBuf> = rotated_files.into_values().rev().collect();
    out.push(log_path(dir));
    out
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// The number of entries (lines) of compressed file `p`.
fn gz_lines(p: &Path) -> io::Result<usize> {
    let mut r = BufReader::new(flate2::read::GzDecoder::new(File::open(p)?));
    let mut n = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += buf.iter().filter(|b| **b == b'\n').count();
        let len = buf.len();
        r.consume(len);
    }
}

/// The offset where the last `n` lines of `f` begin, and how many lines it has fewer
/// than `n` (read backwards in 64 KiB pieces).
fn tail_offset(f: &mut File, n: usize) -> io::Result<(u64, usize)> {
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut newlines = 0;
    let mut buf = vec![0u8; 64 << 10];
    while pos > 0 {
        let take = (pos as usize).min(buf.len());
        pos -= take as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..take])?;
        for i in (0..take).rev() {
            // Every entry ends with a newline: the one that ends the file starts nothing.
            if buf[i] == b'\n' && pos + i as u64 != len - 1 {
                newlines += 1;
                if newlines == n {
                    return Ok((pos + i as u64 + 1, 0));
                }
            }
        }
    }
    let lines = if len > 0 { newlines + 1 } else { 0 };
    Ok((0, n.saturating_sub(lines)))
}

/// Where reading starts.
pub enum From {
    /// The oldest entry kept.
    Start,
    /// The last `n` entries.
    Tail(usize),
    /// A place taken earlier with [`end`].
    Pos(LogPos),
}

/// Reads a container's log entries in order across its rotated files, and on when
/// following: an entry is handed on whole, never a partial line.
pub struct Reader {
    dir: PathBuf,
    file: Option<Source>,
    /// Entries of the first file to pass over (a tail that starts in a compressed one).
    skip: usize,
    ino: u64,
    /// Older files still to read before the live one (oldest first).
    queue: Vec<PathBuf>,
    partial: Vec<u8>,
    /// The live file was seen renamed: this one is read to its end once more (entries
    /// written before the rename) before moving on.
    rotated: bool,
}

/// One entry read back.
pub struct Entry {
    pub stream: Stream,
    pub msg: Vec<u8>,
    /// RFC 3339 with nanoseconds, fixed width ([`super::timestamp`]): compares as text.
    pub time: String,
}

/// One file being read: the live or a rotated one, or a compressed rotated one.
enum Source {
    Plain(BufReader<File>),
    Gz(Box<BufReader<flate2::read::GzDecoder<File>>>),
}

impl Source {
    fn read_until(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read_until(b'\n', buf),
            Source::Gz(r) => r.read_until(b'\n', buf),
        }
    }
}

impl Reader {
    /// A reader of the log in container folder `dir`, starting at `from`.
    pub fn open(dir: &Path, from: From) -> io::Result<Reader> {
        let mut all = files(dir);
        let mut r = Reader {
            dir: dir.to_path_buf(),
            file: None,
            skip: 0,
            ino: 0,
            queue: Vec::new(),
            partial: Vec::new(),
            rotated: false,
        };
        match from {
            From::Start => {
                r.queue = all;
                r.next_file()?;
            }
            From::Tail(n) => {
                // From the newest file back until n lines are found.
                let mut want = n;
                while let Some(p) = all.pop() {
                    if is_gz(&p) {
                        let Ok(lines) = gz_lines(&p) else { continue };
                        if want <= lines || all.is_empty() {
                            r.skip = lines.saturating_sub(want);
                            r.queue.push(p);
                            r.queue.reverse();
                            r.next_file()?;
                            return Ok(r);
                        }
                        want -= lines;
                        r.queue.push(p);
                        continue;
                    }
                    let Ok(mut f) = File::open(&p) else { continue };
                    let (off, missing) = if want == 0 {
                        (f.metadata()?.len(), 0)
                    } else {
                        tail_offset(&mut f, want)?
                    };
                    if missing == 0 || all.is_empty() {
                        r.queue.push(p);
                        r.queue.reverse();
                        r.next_file()?;
                        if let Some(Source::Plain(file)) = r.file.as_mut() {
                            file.seek(SeekFrom::Start(off))?;
                        }
                        return Ok(r);
                    }
                    want = missing;
                    r.queue.push(p);
                }
                r.queue.reverse();
                r.next_file()?;
            }
            From::Pos(pos) => {
                // The file that held the place (it may have been rotated since); one gone
                // (rotated out) means everything kept is newer.
                let at = all
                    .iter()
                    .position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == pos.ino));
                match at {
                    Some(i) => {
                        r.queue = all.split_off(i);
                        r.next_file()?;
                        if let Some(Source::Plain(file)) = r.file.as_mut() {
                            file.seek(SeekFrom::Start(pos.offset))?;
                        }
                    }
                    None => {
                        r.queue = all;
                        r.next_file()?;
                    }
                }
            }
        }
        Ok(r)
    }

    /// Opens the next file of the queue (the live one once the rotated ones are read).
    fn next_file(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            let p = self.queue.remove(0);
            match File::open(&p) {
                Ok(f) => {
                    self.ino = f.metadata()?.ino();
                    self.file = Some(if is_gz(&p) {
                        Source::Gz(Box::new(BufReader::new(flate2::read::GzDecoder::new(f))))
                    } else {
                        Source::Plain(BufReader::with_capacity(64 << 10, f))
                    });
                    self.partial.clear();
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        self.file = None;
        Ok(())
    }

    /// The next whole entry, `None` when there is none now. At the end of the live file
    /// a rotation is noticed (the name holds another file) and reading goes on there.
    pub fn next_entry(&mut self) -> io::Result<Option<(Stream, Vec<u8>)>> {
        Ok(self.next_timed()?.map(|e| (e.stream, e.msg)))
    }

    /// [`Reader::next_entry`] with the entry's time.
    pub fn next_timed(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let Some(f) = self.file.as_mut() else {
                // No log yet: it appears with the container's first output.
                self.queue = vec![log_path(&self.dir)];
                self.next_file()?;
                if self.file.is_none() {
                    return Ok(None);
                }
                continue;
            };
            let n = f.read_until(&mut self.partial)?;
            if n > 0 && self.partial.last() == Some(&b'\n') {
                let line = std::mem::take(&mut self.partial);
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                match serde_json::from_slice::<Line<'_>>(&line) {
                    Ok(l) => {
                        let s = if l.stream == "stderr" {
                            Stream::Stderr
                        } else {
                            Stream::Stdout
                        };
                        return Ok(Some(Entry {
                            stream: s,
                            msg: l.log.into_owned().into_bytes(),
                            time: l.time.into_owned(),
                        }));
                    }
                    Err(_) => continue, // not an entry (a torn write after a crash)
                }
            }
            // At the end of this file: on to the next if there is one.
            if !self.queue.is_empty() {
                self.next_file()?;
                continue;
            }
            let live = std::fs::metadata(log_path(&self.dir)).ok();
            let live_ino = live.as_ref().map(|m| m.ino());
            if let (Some(m), true, Source::Plain(f)) = (&live, live_ino == Some(self.ino), f) {
                // With one file the log is emptied where it would rotate: start it again.
                if m.len() < f.stream_position()? {
                    f.seek(SeekFrom::Start(0))?;
                    self.partial.clear();
                    continue;
                }
            }
            if live_ino.is_some_and(|i| i != self.ino) {
                if !self.rotated {
                    // Whatever was written here before the rename is read first.
                    self.rotated = true;
                    continue;
                }
                // Rotated while read: this file is complete; the live one is new.
                self.rotated = false;
                self.queue = vec![log_path(&self.dir)];
                self.next_file()?;
                continue;
            }
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut Reader) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((s, m)) = r.next_entry().unwrap() {
            let tag = if s == Stream::Stderr { "E:" } else { "" };
            out.push(format!("{tag}{}", String::from_utf8(m).unwrap()));
        }
        out
    }

    #[test]
    fn entries_rotate_within_the_bound_and_read_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), Some(1000), 3).unwrap();
        let now = std::time::SystemTime::now();
        for i in 0..100 {
            let s = if i % 10 == 9 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            w.write(s, format!("line {i}\n").as_bytes(), now).unwrap();
        }
        let sizes: Vec<u64> = files(d.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        assert_eq!(sizes.len(), 3);
        assert!(sizes.iter().all(|n| *n <= 1000), "{sizes:?}");
        let got = all(&mut Reader::open(d.path(), From::Start).unwrap());
        assert_eq!(got.last().unwrap(), "E:line 99\n");
        let first: usize = got[0].trim_start_matches("E:")[5..].trim().parse().unwrap();
        assert_eq!(got.len(), 100 - first, "every kept entry, in order");
        let tail = all(&mut Reader::open(d.path(), From::Tail(25)).unwrap());
        assert_eq!(tail.len(), 25);
        assert_eq!(tail[0], "line 75\n");
        // Following across a rotation: the place taken before it is found again.
        let pos = end(d.path());
        let mut r = Reader::open(d.path(), From::Pos(pos)).unwrap();
        assert!(all(&mut r).is_empty());
        for i in 100..130 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes(), now)
                .unwrap();
        }
        let more = all(&mut r);
        assert_eq!(more.first().unwrap(), "line 100\n");
        assert_eq!(more.last().unwrap(), "line 129\n");
    }

    #[test]
    fn compressed_rotations_read_back_in_order_and_tail() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), Some(1000), 4)
            .unwrap()
            .compressed(true);
        let now = std::time::SystemTime::now();
        // A follower from the start sees every entry across the compressions.
        let mut follower = Reader::open(d.path(), From::Start).unwrap();
        let mut followed = Vec::new();
        for i in 0..100 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes(), now)
                .unwrap();
            followed.extend(all(&mut follower));
        }
        let names: Vec<String> = files(d.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "container.log.3.gz",
                "container.log.2.gz",
                "container.log.1.gz",
                "container.log"
            ]
        );
        let gz = std::fs::read(d.path().join("container.log.1.gz")).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
        let got = all(&mut Reader::open(d.path(), From::Start).unwrap());
        assert_eq!(got.last().unwrap(), "line 99\n");
        let first: usize = got[0][5..].trim().parse().unwrap();
        assert_eq!(got.len(), 100 - first, "every kept entry, in order");
        let live_lines = std::fs::read_to_string(d.path().join("container.log"))
            .unwrap()
            .lines()
            .count();
        // A tail that starts inside a compressed file.
        let n = live_lines + 5;
        let tail = all(&mut Reader::open(d.path(), From::Tail(n)).unwrap());
        assert_eq!(tail.len(), n);
        assert_eq!(tail[0], format!("line {}\n", 100 - n));
        assert_eq!(followed.len(), 100, "the follower missed nothing");
        assert_eq!(followed[99], "line 99\n");
    }

    #[test]
    fn one_file_starts_again_where_it_would_rotate() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), Some(500), 1).unwrap();
        let now = std::time::SystemTime::now();
        let mut r = Reader::open(d.path(), From::Start).unwrap();
        for i in 0..5 {
            w.write(Stream::Stdout, format!("a{i}\n").as_bytes(), now)
                .unwrap();
        }
        assert_eq!(all(&mut r).len(), 5);
        for i in 0..40 {
            w.write(Stream::Stdout, format!("b{i}\n").as_bytes(), now)
                .unwrap();
        }
        assert!(std::fs::metadata(log_path(d.path())).unwrap().len() <= 500);
        let more = all(&mut r);
        assert_eq!(more.last().unwrap(), "b39\n");
    }

    #[test]
    fn a_long_message_is_cut_to_fit_max_size() {
        let d = tempfile::tempdir().unwrap();
        let w = Writer::open(d.path(), Some(1 << 10), 2).unwrap();
        // Escaped at worst six bytes a byte, plus the entry's own fields.
        assert!(w.max_message() * 6 + 128 <= 1 << 10);
        let w = Writer::open(d.path(), None, 1).unwrap();
        assert_eq!(w.max_message(), 16 << 10);
    }
}
